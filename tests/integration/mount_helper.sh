#!/bin/bash
# The mount(8) helper: mount.fuse.vdifs called as mount(8) calls it
# ("SRC MNT -o opts"), read-only mounts, and clear errors for bad sources.
. "$(dirname "$0")/lib.sh"
start_cluster
echo data >"$MNT/file"
ln -s "$BUILD/client/vdifs-mount" "$WORK/mount.fuse.vdifs"
RO="$WORK/ro"
mkdir -p "$RO"
log "mount.fuse.vdifs SRC MNT -o ro,... (daemonizes)"
"$WORK/mount.fuse.vdifs" "$MDS/vdi" "$RO" -o "ro,keyfile=$KEY,_netdev,nofail,noatime" ||
	fail "mount.fuse.vdifs returned $?"
EXTRA_MOUNTS+=("$RO")
mountpoint -q "$RO" || fail "not mounted"
grep " $RO " /proc/mounts | grep -q "fuse.vdifs ro," || fail "not a read-only fuse.vdifs mount: $(grep " $RO " /proc/mounts)"
[ "$(cat "$RO/file")" = data ] || fail "read on the ro mount"
out=$( (echo x >"$RO/new") 2>&1 || true)
echo "$out" | grep -q "Read-only file system" || fail "write on a ro mount: $out"
out=$(mkdir "$RO/d" 2>&1 || true)
echo "$out" | grep -q "Read-only file system" || fail "mkdir on a ro mount: $out"
fusermount3 -u "$RO"

log "errors name the thing and the cause, with a non-zero exit"
set +e
out=$("$BUILD/client/vdifs-mount" -o "keyfile=$KEY" "$MDS/novolume" "$RO" 2>&1); rc=$?
set -e
[ $rc -ne 0 ] && echo "$out" | grep -q "novolume" || fail "missing volume: rc=$rc: $out"
set +e
out=$("$BUILD/client/vdifs-mount" -o "keyfile=$KEY" "127.0.0.1:1/vdi" "$RO" 2>&1); rc=$?
set -e
[ $rc -ne 0 ] && echo "$out" | grep -q "127.0.0.1:1" || fail "unreachable MDS: rc=$rc: $out"
set +e
out=$("$BUILD/client/vdifs-mount" -o insecure "$MDS/vdi" "$RO" 2>&1); rc=$?
set -e
[ $rc -ne 0 ] || fail "a keyless mount of a keyed cluster succeeded"
mountpoint -q "$RO" && fail "a failed mount left $RO mounted"
"$BUILD/client/vdifs-mount" --help | grep -q "usage" || fail "vdifs-mount --help"
log "ok"
