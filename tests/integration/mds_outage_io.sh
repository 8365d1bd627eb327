#!/bin/bash
# Data I/O across an MDS outage longer than the data servers' lease: the
# MDS is killed, the data servers stop serving after their 2 s lease, and a
# read and a write of files the mount already has open wait instead of
# failing; when the MDS is back they finish, and the data is right.
. "$(dirname "$0")/lib.sh"
start_cluster
dd if=/dev/urandom of="$WORK/ref" bs=1M count=64 status=none
dd if=/dev/urandom of="$WORK/patch" bs=1M count=4 status=none
cp "$WORK/ref" "$MNT/f"
cp "$WORK/ref" "$MNT/g"
sync "$MNT/f" "$MNT/g"
# Open the files before the outage (open needs the MDS), keep them open:
# f is read, g is written.
exec 7<"$MNT/f"
exec 8<>"$MNT/g"
drop_caches
log "kill -9 the MDS; the data servers fence themselves 2 s later"
kill -9 "$(pid_of mds)"
sleep 3.5
# Through the descriptors opened before (a new open would wait for the MDS
# on its own): the data path.
( cmp - "$WORK/ref" <&7 >"$WORK/read.out" 2>&1; echo $? >"$WORK/read.rc" ) &
READER=$!
EXTRA_PIDS+=($READER)
( dd if="$WORK/patch" bs=1M seek=8 conv=notrunc,fsync status=none 2>"$WORK/write.err" >&8
  echo $? >"$WORK/write.rc" ) &
WRITER=$!
EXTRA_PIDS+=($WRITER)
sleep 2
[ -e "$WORK/read.rc" ] && fail "the read ended while the MDS was down: $(cat "$WORK/read.out")"
[ -e "$WORK/write.rc" ] && fail "the write ended while the MDS was down: $(cat "$WORK/write.err")"
log "read and write are waiting; restart the MDS"
vdifs-cluster start "$C" >/dev/null || fail "MDS restart"
for _ in $(seq 1 600); do
	[ -e "$WORK/read.rc" ] && [ -e "$WORK/write.rc" ] && break
	sleep 0.1
done
[ "$(cat "$WORK/read.rc" 2>/dev/null)" = 0 ] || fail "the read failed or differs: $(cat "$WORK/read.out" 2>/dev/null)"
[ "$(cat "$WORK/write.rc" 2>/dev/null)" = 0 ] || fail "the write failed: $(cat "$WORK/write.err" 2>/dev/null)"
exec 7<&- 8<&-
drop_caches
cmp "$MNT/f" "$WORK/ref" || fail "f differs after the outage"
dd if="$WORK/patch" of="$WORK/ref" bs=1M seek=8 conv=notrunc status=none
cmp "$MNT/g" "$WORK/ref" || fail "g differs after the outage"
log "the read and the write waited for the MDS (down about 6 s) and finished"
log "ok"
