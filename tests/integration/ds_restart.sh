#!/bin/bash
# Restart each data server (SIGTERM, then one with kill -9): data is intact.
. "$(dirname "$0")/lib.sh"
start_cluster
dd if=/dev/urandom of="$WORK/ref" bs=1M count=200 status=none
cp "$WORK/ref" "$MNT/file"
sync "$MNT/file"
restart() {
	local ds=$1 sig=$2 pid
	pid=$(pid_of "$ds")
	kill "-$sig" "$pid"
	while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
	vdifs-cluster start "$C" >/dev/null || fail "restart $ds"
}
for ds in ds1 ds2 ds3; do
	log "restart $ds"
	restart "$ds" TERM
	drop_caches
	cmp "$MNT/file" "$WORK/ref" || fail "data differs after restarting $ds"
done
log "kill -9 ds2 and restart"
restart ds2 KILL
drop_caches
cmp "$MNT/file" "$WORK/ref" || fail "data differs after kill -9 of ds2"
# Writes work again on every server.
dd if=/dev/urandom of="$WORK/ref2" bs=1M count=300 status=none
cp "$WORK/ref2" "$MNT/file2" && drop_caches && cmp "$MNT/file2" "$WORK/ref2" || fail "write after restarts"
log "ok"
