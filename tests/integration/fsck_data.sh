#!/bin/bash
# vdifs-admin fsck against the data servers: a clean cluster checks clean
# (the data servers' chunk lists match the MDS's replica sets); a chunk
# file lost on ds1 is reported as a missing replica (exit 1); --repair
# leaves that copy out, re-replication makes a new one, and fsck is clean
# again with the data intact.
. "$(dirname "$0")/lib.sh"
start_cluster --chunk-size 8M
dd if=/dev/urandom of="$WORK/ref" bs=1M count=64 status=none
cp "$WORK/ref" "$MNT/f"
sync "$MNT/f"
vdifs-admin -C "$C" fsck >"$WORK/fsck0.out" || { cat "$WORK/fsck0.out" >&2; fail "fsck of a clean cluster"; }
grep -q "with the data servers' chunk lists" "$C/logs/mds.log" || fail "fsck did not compare with the data servers"
victim=$(find "$C/ds1" -name '*.chk' | sort | head -1)
[ -n "$victim" ] || fail "no chunk file on ds1"
log "ds1 loses $(basename "$victim") while it is stopped"
pid=$(pid_of ds1)
kill "$pid"
while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
rm -f "$victim"
vdifs-cluster start "$C" >/dev/null || fail "restart ds1"
for _ in $(seq 1 100); do
	[ "$(vdifs-admin -C "$C" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["ds_up"])')" = 3 ] && break
	sleep 0.1
done
rc=0
vdifs-admin -C "$C" fsck >"$WORK/fsck1.out" || rc=$?
[ $rc -eq 1 ] || { cat "$WORK/fsck1.out" >&2; fail "fsck exit $rc with a replica missing (want 1)"; }
grep -q "does not hold its replica" "$WORK/fsck1.out" || { cat "$WORK/fsck1.out" >&2; fail "the missing replica is not named"; }
log "fsck: $(grep -m1 'does not hold its replica' "$WORK/fsck1.out")"
vdifs-admin -C "$C" fsck --repair >"$WORK/fsck2.out" || { cat "$WORK/fsck2.out" >&2; fail "fsck --repair"; }
timeout 120 vdifs-admin -C "$C" status --wait >/dev/null || fail "re-replication after the repair"
vdifs-admin -C "$C" fsck >"$WORK/fsck3.out" || { cat "$WORK/fsck3.out" >&2; fail "fsck after the repair"; }
drop_caches
cmp "$MNT/f" "$WORK/ref" || fail "data differs after the repair"
log "ok"
