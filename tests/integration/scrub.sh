#!/bin/bash
# Bad bytes: one byte flipped in every chunk file of ds1.  Reading the file
# back returns the right data (a block that fails its CRC on ds1 is read
# from the other replica), and the bad copies ds1's reads hit are reported
# and replaced.  `vdifs-admin scrub` then finds the others; the MDS drops
# every bad copy and re-replicates the chunk from a good one.  Afterwards
# the file reads right and a second scrub finds nothing bad anywhere.
. "$(dirname "$0")/lib.sh"
mkdir -p "$C"
printf 'scrub_mb_s = 400\n' >"$C/ds.conf"
# 8 MiB chunks: 16 chunks in a 128 MiB file, quick to copy and scrub.
start_cluster --chunk-size 8M
dd if=/dev/urandom of="$WORK/ref" bs=1M count=128 status=none
cp "$WORK/ref" "$MNT/f"
sync "$MNT/f"
mapfile -t files < <(find "$C/ds1" -name '*.chk' | sort)
n=${#files[@]}
[ "$n" -ge 4 ] || fail "ds1 holds only $n chunks of the file"
# An 8 MiB plain chunk: header 4096, block table 128 * 8 bytes rounded up
# to 4096, then the data (docs/ARCHITECTURE.md, "Chunk files").
python3 - "${files[@]}" <<'PY' || fail "flipping bytes"
import sys
for path in sys.argv[1:]:
    with open(path, "r+b") as f:
        at = 4096 + 4096 + 5 * 65536 + 1234
        f.seek(at)
        b = f.read(1)
        f.seek(at)
        f.write(bytes([b[0] ^ 0x5A]))
PY
log "flipped a byte in each of ds1's $n chunk files"
drop_caches
cmp "$MNT/f" "$WORK/ref" || fail "a read returned bad data"
replaced() { grep -c "has a bad block: replaced" "$C/logs/mds.log" || true; }
for _ in $(seq 1 40); do
	[ "$(replaced)" -gt 0 ] && break
	sleep 0.25
done
read_found=$(replaced)
[ "$read_found" -gt 0 ] || fail "no bad copy reported after reads hit them"
log "reads found $read_found bad copies on ds1 and got the data from the other replica"
vdifs-admin -C "$C" scrub || fail "vdifs-admin scrub"
for _ in $(seq 1 240); do
	[ "$(replaced)" -ge "$n" ] && break
	sleep 0.25
done
[ "$(replaced)" -ge "$n" ] || fail "only $(replaced) of $n bad copies replaced after the scrub"
timeout 120 vdifs-admin -C "$C" status --wait >/dev/null || fail "re-replication after the scrub did not finish"
log "the scrub found the rest: $(replaced) bad copies replaced, every chunk has 2 replicas"
drop_caches
cmp "$MNT/f" "$WORK/ref" || fail "data differs after the repair"
passes() { grep -c "scrub pass done" "$C/logs/$1.log" || true; }
# The first pass (ds2 and ds3 ran one too) ends before the second is asked.
declare -A before
for ds in ds1 ds2 ds3; do
	for _ in $(seq 1 240); do
		[ "$(passes $ds)" -ge 1 ] && break
		sleep 0.25
	done
	[ "$(passes $ds)" -ge 1 ] || fail "the first scrub of $ds did not finish"
	before[$ds]=$(passes $ds)
done
vdifs-admin -C "$C" scrub || fail "second scrub"
for ds in ds1 ds2 ds3; do
	for _ in $(seq 1 240); do
		[ "$(passes $ds)" -gt "${before[$ds]}" ] && break
		sleep 0.25
	done
	[ "$(passes $ds)" -gt "${before[$ds]}" ] || fail "the second scrub of $ds did not finish"
	last=$(grep "scrub pass done" "$C/logs/$ds.log" | tail -1)
	grep -q " 0 with a bad block" <<<"$last" || fail "$ds still has bad copies: $last"
	log "second scrub, $ds: ${last#*: }"
done
log "ok"
