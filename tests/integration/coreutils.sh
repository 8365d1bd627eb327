#!/bin/bash
# Ordinary tools on the mount: cp -a of a /usr/share tree, diff -r, rename,
# hard links, symlinks, chmod/chown, xattrs, FIFOs and device nodes,
# permissions for an unprivileged user, rm -r.
. "$(dirname "$0")/lib.sh"
start_cluster
SRC=/usr/share/doc
log "cp -a $SRC"
cp -a "$SRC" "$MNT/doc"
diff -r --no-dereference "$SRC" "$MNT/doc" || fail "diff -r after cp -a"
# Symlinks in the tree were copied as symlinks with the same targets.
n_src=$(find "$SRC" -type l | wc -l)
n_dst=$(find "$MNT/doc" -type l | wc -l)
[ "$n_src" = "$n_dst" ] || fail "symlink count $n_dst != $n_src"

log "rename, hard link, symlink"
mkdir -p "$MNT/a/b" "$MNT/c"
echo hello >"$MNT/a/b/f"
mv "$MNT/a/b/f" "$MNT/c/g"
[ "$(cat "$MNT/c/g")" = hello ] || fail "rename across dirs"
[ ! -e "$MNT/a/b/f" ] || fail "old name still there"
echo other >"$MNT/c/h"
mv "$MNT/c/h" "$MNT/c/g"
[ "$(cat "$MNT/c/g")" = other ] || fail "rename over an existing file"
mv "$MNT/a/b" "$MNT/c/b2"
[ -d "$MNT/c/b2" ] || fail "rename a directory"
mkdir "$MNT/c/full" && touch "$MNT/c/full/x" && mkdir "$MNT/c/empty"
if mv -T "$MNT/c/empty" "$MNT/c/full" 2>/dev/null; then fail "rename over a non-empty dir succeeded"; fi
mv -T "$MNT/c/b2" "$MNT/c/empty" || fail "rename a dir over an empty dir"
if mv "$MNT/c" "$MNT/c/empty/inside" 2>/dev/null; then fail "rename into own subtree succeeded"; fi
ln "$MNT/c/g" "$MNT/c/g-link"
[ "$(stat -c %h "$MNT/c/g")" = 2 ] || fail "nlink after link"
echo more >>"$MNT/c/g-link"
[ "$(tail -n1 "$MNT/c/g")" = more ] || fail "hard link shares data"
rm "$MNT/c/g"
[ "$(stat -c %h "$MNT/c/g-link")" = 1 ] || fail "nlink after unlink"
ln -s ../c/g-link "$MNT/a/sym"
[ "$(readlink "$MNT/a/sym")" = ../c/g-link ] || fail "readlink"
[ "$(head -n1 "$MNT/a/sym")" = other ] || fail "read through symlink"

log "chmod, chown, times"
touch "$MNT/perm"
chmod 0640 "$MNT/perm"
[ "$(stat -c %a "$MNT/perm")" = 640 ] || fail "chmod"
chown 1234:5678 "$MNT/perm"
[ "$(stat -c %u:%g "$MNT/perm")" = 1234:5678 ] || fail "chown"
touch -d '2001-02-03 04:05:06.123456789' "$MNT/perm"
[ "$(stat -c %y "$MNT/perm")" = "2001-02-03 04:05:06.123456789 +0000" ] ||
	[ "$(TZ=UTC stat -c %y "$MNT/perm")" = "2001-02-03 04:05:06.123456789 +0000" ] ||
	[ "$(date -u -d "$(stat -c %y "$MNT/perm")" +%s.%N)" = "$(date -u -d '2001-02-03 04:05:06.123456789' +%s.%N)" ] ||
	fail "nanosecond mtime: $(stat -c %y "$MNT/perm")"
touch -d '2090-01-01 00:00:00' "$MNT/perm"
[ "$(stat -c %Y "$MNT/perm")" = "$(date -d '2090-01-01 00:00:00' +%s)" ] || fail "64-bit time"

log "xattrs"
setfattr -n user.color -v blue "$MNT/perm"
[ "$(getfattr --absolute-names --only-values -n user.color "$MNT/perm")" = blue ] || fail "getfattr"
setfattr -n user.size -v 12345 "$MNT/perm"
getfattr --absolute-names -d "$MNT/perm" | grep -q 'user.size="12345"' || fail "listxattr"
setfattr -x user.color "$MNT/perm"
if getfattr --absolute-names -n user.color "$MNT/perm" 2>/dev/null; then fail "removed xattr still there"; fi

log "fifo, device node, permissions as an unprivileged user"
mkfifo "$MNT/fifo"
[ -p "$MNT/fifo" ] || fail "mkfifo"
mknod "$MNT/null" c 1 3
[ -c "$MNT/null" ] && [ "$(stat -c %t:%T "$MNT/null")" = 1:3 ] || fail "mknod char device"
echo secret >"$MNT/private"
chmod 0600 "$MNT/private"
if setpriv --reuid=65534 --regid=65534 --clear-groups cat "$MNT/private" 2>/dev/null; then
	fail "nobody read a 0600 root file"
fi
chmod 0644 "$MNT/private"
setpriv --reuid=65534 --regid=65534 --clear-groups cat "$MNT/private" >/dev/null || fail "nobody cannot read a 0644 file"
if setpriv --reuid=65534 --regid=65534 --clear-groups sh -c "echo x >>'$MNT/private'" 2>/dev/null; then
	fail "nobody wrote a 0644 root file"
fi
chmod 0600 "$MNT/fifo"
if setpriv --reuid=65534 --regid=65534 --clear-groups sh -c "exec 3<>'$MNT/fifo'" 2>/dev/null; then
	fail "nobody opened a 0600 root fifo"
fi
mkdir -m 0755 "$MNT/rootdir"
if setpriv --reuid=65534 --regid=65534 --clear-groups touch "$MNT/rootdir/x" 2>/dev/null; then
	fail "nobody created a file in a 0755 root dir"
fi

log "rm -r"
rm -r "$MNT/doc" "$MNT/a" "$MNT/c"
[ -z "$(ls -A "$MNT/" | grep -E '^(doc|a|c)$' || true)" ] || fail "rm -r left entries"
log "ok"
