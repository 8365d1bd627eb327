#!/bin/bash
# Disk full.  (1) Placement avoids a full data server: ds1's disk (a small
# tmpfs) is filled up; a 1 GiB file is written and every one of its chunks
# lands on ds2 and ds3.  (2) When no server has room, a write gets ENOSPC,
# not corruption: with ds2's and ds3's disks small too, a large copy fails
# with "No space left on device", what it wrote before reads back right,
# and once the file is deleted the space comes back and writing works.
. "$(dirname "$0")/lib.sh"
mkdir -p "$C"
# Small disks and 8 MiB chunks keep it quick: every size here is 1/8 of a
# real one (reserve 16 MiB instead of 128).
for ds in ds1 ds2 ds3; do
	mkdir -p "$C/$ds"
	mount -t tmpfs -o size=56M tmpfs "$C/$ds" || fail "cannot mount a tmpfs for $ds"
	EXTRA_CLEANUP+=("umount -l $C/$ds")
done
printf 'ds_reserve = 16M\n' >"$C/mds.conf"
start_cluster --chunk-size 8M
status() { vdifs-admin -C "$C" status --json | python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
avail_of() {
	vdifs-admin -C "$C" ds list --json |
		python3 -c "import json,sys; print([d['avail'] for d in json.load(sys.stdin) if d['address'].endswith(':$1')][0])"
}
# (1) ds1 full: a filler file leaves it 8 MiB.
fallocate -l $(( $(df --output=avail -B1 "$C/ds1" | tail -1) - (8 << 20) )) "$C/ds1/filler" || fail "filling ds1"
for _ in $(seq 1 50); do
	[ "$(avail_of $((PORT + 1)))" -lt $((16 << 20)) ] && break
	sleep 0.1
done
[ "$(avail_of $((PORT + 1)))" -lt $((16 << 20)) ] || fail "ds1 does not report its disk full"
dd if=/dev/urandom of="$WORK/a" bs=1M count=32 status=none
cp "$WORK/a" "$MNT/a" || fail "writing with ds1 full"
n1=$(find "$C/ds1" -name '*.chk' | wc -l)
[ "$n1" = 0 ] || fail "$n1 chunks were placed on the full ds1"
cmp "$MNT/a" "$WORK/a" || fail "data differs"
log "ds1 full: the 4 chunks of a 32 MiB file went to ds2 and ds3 only"
# (2) No room anywhere: ds2 and ds3 take about 24 MiB more each.
dd if=/dev/urandom of="$WORK/big" bs=1M count=80 status=none
if timeout 120 cp "$WORK/big" "$MNT/big" 2>"$WORK/cp.err"; then
	fail "80 MiB fit on two 56 MiB disks already holding 32 MiB each"
fi
grep -q "No space left on device" "$WORK/cp.err" || { cat "$WORK/cp.err" >&2; fail "cp failed, but not with ENOSPC"; }
log "a copy that does not fit: $(tail -1 "$WORK/cp.err")"
size=$(stat -c %s "$MNT/big")
cmp -n "$size" "$MNT/big" "$WORK/big" || fail "the part written before ENOSPC differs"
drop_caches
cmp "$MNT/a" "$WORK/a" || fail "an earlier file differs after ENOSPC"
log "the $((size >> 20)) MiB written before ENOSPC read back right"
rm -f "$MNT/big"
rm -f "$C/ds1/filler"
for _ in $(seq 1 100); do
	[ "$(avail_of $((PORT + 2)))" -gt $((20 << 20)) ] && [ "$(avail_of $((PORT + 3)))" -gt $((20 << 20)) ] && break
	sleep 0.2
done
dd if=/dev/urandom of="$WORK/c" bs=1M count=16 status=none
cp "$WORK/c" "$MNT/c" || fail "writing after the space came back"
drop_caches
cmp "$MNT/c" "$WORK/c" || fail "data written after the space came back differs"
log "ok"
