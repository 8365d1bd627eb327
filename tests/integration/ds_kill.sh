#!/bin/bash
# kill -9 of a data server while fio writes a file with --verify=crc32c on the
# mount (replica count 2): fio finishes without an error and its verify pass
# reads every block back right; the stall is reported.  The MDS re-replicates
# every chunk that lost its copy on ds2 (timed); then ds1 is killed too and
# the whole file still reads right from the new copies.  Both come back:
# ds2's copies that missed writes are deleted (the MDS bumped those chunks'
# versions), every chunk is back to 2 replicas, and the file reads right.
. "$(dirname "$0")/lib.sh"
start_cluster
SIZE=512M # 8 chunks: the killed server holds some; 400 writes a second: 5 s of writing
# A clone with writes of its own: its delta chunks must be copied only next
# to copies of their bases.
dd if=/dev/urandom of="$WORK/base" bs=1M count=128 status=none
cp "$WORK/base" "$MNT/base.img"
vdifs-clone "$MNT/base.img" "$MNT/desk.img" || fail "clone"
cp "$WORK/base" "$WORK/desk"
python3 - "$MNT/desk.img" "$WORK/desk" <<'PY' || fail "writes to the clone"
import os, random, sys
rnd = random.Random(7)
fds = [os.open(p, os.O_WRONLY) for p in sys.argv[1:]]
for _ in range(300):
    off, data = rnd.randrange(0, (128 << 20) - 4096), os.urandom(4096)
    for fd in fds:
        os.pwrite(fd, data, off)
for fd in fds:
    os.fsync(fd)
    os.close(fd)
PY
log "fio writes $SIZE (random 256 KiB writes, 400 a second: the kill lands mid-way) and kill -9 of ds2 a second in"
fio --name=killds --filename="$MNT/f.dat" --size="$SIZE" --rw=randwrite --bs=256k --ioengine=psync --rate_iops=400 \
	--verify=crc32c --verify_fatal=1 --do_verify=1 --verify_state_save=0 --output-format=json \
	--output="$WORK/fio.json" >"$WORK/fio.log" 2>&1 &
FIO=$!
EXTRA_PIDS+=($FIO)
sleep 1
ds2=$(pid_of ds2)
kill -9 "$ds2"
killed_at=$(date +%s.%N)
rc=0
wait $FIO || rc=$?
[ $rc -eq 0 ] || { cat "$WORK/fio.log" "$WORK/fio.json" >&2; fail "fio failed ($rc) across the kill of ds2"; }
python3 - "$WORK/fio.json" <<'PY' || fail "fio reported errors"
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
assert j["error"] == 0, "fio error %d" % j["error"]
w = j["write"]
print("[ds_kill] wrote %d MiB; longest write %.2f s (the stall), median %.1f ms"
      % (w["io_bytes"] >> 20, w["clat_ns"]["max"] / 1e9, w["clat_ns"]["percentile"]["50.000000"] / 1e6))
PY
grep -q "dropped" "$C/logs/mds.log" || fail "the MDS dropped no replica of ds2 (was ds2 written to?)"
status() { vdifs-admin -C "$C" status --json | python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
log "re-replication while ds2 is down: $(status under_replicated) chunks short"
t0=$(date +%s.%N)
timeout 180 vdifs-admin -C "$C" status --wait >/dev/null || fail "re-replication did not finish in 180 s"
log "every chunk has 2 replicas again after $(python3 -c "print('%.1f' % ($(date +%s.%N) - $t0))") s ($(status recovered) copies)"
[ "$(status under_replicated)" = 0 ] || fail "chunks still short of replicas"
verify() {
	drop_caches
	cmp "$MNT/base.img" "$WORK/base" || fail "the base image differs $1"
	cmp "$MNT/desk.img" "$WORK/desk" || fail "the clone differs $1"
	fio --name=killds --filename="$MNT/f.dat" --size="$SIZE" --rw=randwrite --bs=256k --ioengine=psync \
		--verify=crc32c --verify_fatal=1 --verify_only=1 --verify_state_save=0 >"$WORK/verify.log" 2>&1 ||
		{ cat "$WORK/verify.log" >&2; fail "data differs $1"; }
}
# The new copies are real: with ds1 gone too, every chunk still reads right.
log "kill -9 ds1 as well and read everything back"
kill -9 "$(pid_of ds1)"
verify "with ds1 and ds2 down"
log "restart ds1 and ds2"
reports() { grep -c "reported .* to the MDS" "$C/logs/ds2.log" || true; }
before=$(reports)
vdifs-cluster start "$C" >/dev/null || fail "restart ds1 and ds2"
for _ in $(seq 1 100); do
	[ "$(reports)" -gt "$before" ] && break
	sleep 0.1
done
[ "$(reports)" -gt "$before" ] || fail "ds2 did not report its chunks after the restart"
line=$(grep "reported .* to the MDS" "$C/logs/ds2.log" | tail -1)
log "ds2: ${line#*: }"
deleted=$(sed -n 's/.*(\([0-9]*\) stale or unknown deleted).*/\1/p' <<<"$line")
[ "${deleted:-0}" -gt 0 ] || fail "ds2 came back with no stale copy deleted"
timeout 180 vdifs-admin -C "$C" status --wait >/dev/null || fail "re-replication after the restarts did not finish"
verify "after ds1 and ds2 came back"
vdifs-admin -C "$C" fsck >"$WORK/fsck.out" || { cat "$WORK/fsck.out" >&2; fail "fsck after the failures"; }
log "fsck: the MDS and the data servers agree"
log "ok"
