#!/bin/bash
# Two mounts of one volume: close-to-open consistency between them.
. "$(dirname "$0")/lib.sh"
start_cluster
M2="$WORK/m2"
mount_again "$M2"
log "write in A, read in B"
echo v1 >"$MNT/shared"
[ "$(cat "$M2/shared")" = v1 ] || fail "B does not see A's file"
dd if=/dev/urandom of="$WORK/r1" bs=1M count=20 status=none
cp "$WORK/r1" "$MNT/img"
cmp "$M2/img" "$WORK/r1" || fail "B reads different bytes than A wrote"
log "overwrite in A while B has it cached; B reopens"
dd if=/dev/urandom of="$WORK/patch" bs=4k count=8 status=none
dd if="$WORK/patch" of="$MNT/img" bs=4k seek=100 conv=notrunc,fsync status=none
dd if="$WORK/patch" of="$WORK/r1" bs=4k seek=100 conv=notrunc status=none
cmp "$M2/img" "$WORK/r1" || fail "B reads stale data after A's overwrite"
log "append in B, A reopens"
dd if=/dev/urandom of="$WORK/tail" bs=1M count=3 status=none
cat "$WORK/tail" >>"$M2/img"
cat "$WORK/tail" >>"$WORK/r1"
cmp "$MNT/img" "$WORK/r1" || fail "A does not see B's append"
log "truncate in A, B reopens"
truncate -s 5M "$MNT/img"
truncate -s 5M "$WORK/r1"
sleep 1.2 # B's kernel may cache the old size for the attribute timeout
cmp "$M2/img" "$WORK/r1" || fail "B does not see A's truncate"
log "directory changes show within the attribute timeout"
mkdir "$MNT/newdir" && touch "$MNT/newdir/x"
sleep 1.2
[ -e "$M2/newdir/x" ] || fail "B does not see A's new directory"
rm -r "$MNT/newdir"
sleep 1.2
[ ! -e "$M2/newdir" ] || fail "B still sees a removed directory"
log "ok"
