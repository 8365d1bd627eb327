#!/bin/bash
# Clones and snapshots with copy-on-write on the data servers: 50 clones of a
# 1 GiB random base each read as the base plus their own writes (4 KiB, 1 MiB
# and unaligned), the base never changes, snapshots stay frozen, revert
# restores a snapshot byte for byte, deleting the base leaves its clones
# intact, and deleting everything empties the data servers.  Also checks on
# the servers: making clones creates no chunk, and one 4 KiB write into a
# clone copies at most one extent per replica while the client sends 4 KiB.
. "$(dirname "$0")/lib.sh"
start_cluster
NCLONES=${NCLONES:-50}
REF="$WORK/base.ref"

log "1 GiB base of random data"
head -c $((1 << 30)) /dev/urandom >"$REF"
cp --reflink=never "$REF" "$MNT/base.img" 2>/dev/null || dd if="$REF" of="$MNT/base.img" bs=1M status=none
sync "$MNT/base.img"
cmp "$REF" "$MNT/base.img" || fail "base does not read back"
before=$(chunks)

log "$NCLONES clones (vdifs-clone, and cp for a few)"
start=$(date +%s%N)
for i in $(seq 1 "$NCLONES"); do
	if [ $((i % 10)) = 3 ]; then
		cp "$MNT/base.img" "$MNT/desk$i.img"
	else
		vdifs-clone "$MNT/base.img" "$MNT/desk$i.img" || fail "vdifs-clone desk$i"
	fi
done
ms=$((($(date +%s%N) - start) / 1000000))
log "made $NCLONES clones in $ms ms (tool start-up included)"
[ "$(chunks)" = "$before" ] || fail "making clones created chunks: $before -> $(chunks)"
vdifs-snap info "$MNT/desk3.img" | grep -q "owns 0 B" || fail "cp did not clone: $(vdifs-snap info "$MNT/desk3.img")"
[ "$(stat -c %s "$MNT/desk3.img")" = $((1 << 30)) ] || fail "size of a cp clone"

log "one 4 KiB write into a fresh clone: at most one extent copied per replica"
sleep 2.5 # ds.stats is written at most once a second
c0=$(stat_sum cow_extents); r0=$(stat_sum write_client_bytes)
python3 - "$MNT/desk1.img" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
os.pwrite(fd, b"\x5a" * 4096, 4096 * 30001)
os.fsync(fd)
os.close(fd)
PY
sleep 2.5
c1=$(stat_sum cow_extents); r1=$(stat_sum write_client_bytes)
copied=$((c1 - c0)); sent=$((r1 - r0))
log "extents copied on all replicas: $copied, client bytes received by primaries: $sent"
[ "$copied" -le 2 ] || fail "a 4 KiB write copied $copied extents over 2 replicas"
[ "$sent" = 4096 ] || fail "the client sent $sent bytes for a 4 KiB write"
python3 - "$REF" <<'PY' || fail "the written bytes or their neighbours read wrong"
import sys
off = 4096 * 30001
ref = open(sys.argv[1], "rb")
ref.seek(off - 8192); before = ref.read(8192); ref.seek(off + 4096); after = ref.read(8192)
f = open(sys.argv[1].replace("base.ref", "cluster/mnt/desk1.img"), "rb")
f.seek(off - 8192)
got = f.read(8192 + 4096 + 8192)
assert got == before + b"\x5a" * 4096 + after
PY

log "random writes into every clone (4 KiB, 1 MiB, unaligned), then check them"
python3 - "$MNT" "$REF" "$NCLONES" <<'PY' || fail "a clone does not read as base + its writes"
import os, random, sys, hashlib
mnt, ref, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
G = 1 << 30
def plan(i):
    r = random.Random(i)
    w = []
    for _ in range(16): w.append((r.randrange(0, G // 4096) * 4096, 4096))
    for _ in range(2): w.append((r.randrange(0, G // (1 << 20)) << 20, 1 << 20))
    for _ in range(6): w.append((r.randrange(0, G - 70000), r.randrange(1, 70000)))
    return [(off, ln, r.randbytes(ln)) for off, ln in w]
reff = open(ref, "rb")
for i in range(1, n + 1):
    fd = os.open(f"{mnt}/desk{i}.img", os.O_RDWR)
    for off, ln, data in plan(i):
        os.pwrite(fd, data, off)
    os.fsync(fd)
    os.close(fd)
def expected(i, off, ln):
    reff.seek(off); b = bytearray(reff.read(ln))
    if i == 1:  # the single write of the step before
        o = 4096 * 30001
        for k in range(max(off, o), min(off + ln, o + 4096)): b[k - off] = 0x5a
    for woff, wln, data in plan(i):
        lo, hi = max(off, woff), min(off + ln, woff + wln)
        if lo < hi: b[lo - off:hi - off] = data[lo - woff:hi - woff]
    return bytes(b)
r = random.Random(99)
for i in range(1, n + 1):
    f = open(f"{mnt}/desk{i}.img", "rb")
    checks = [(off, ln) for off, ln, _ in plan(i)] + [(r.randrange(0, G - 65536), 65536) for _ in range(32)]
    for off, ln in checks:
        lo = max(0, off - 4096); hi = min(G, off + ln + 4096)
        f.seek(lo)
        assert f.read(hi - lo) == expected(i, lo, hi - lo), f"desk{i} at {lo}+{hi - lo}"
    f.close()
# Whole-file comparison for a few clones.
for i in (1, 2, 3):
    f = open(f"{mnt}/desk{i}.img", "rb")
    for off in range(0, G, 8 << 20):
        assert f.read(8 << 20) == expected(i, off, 8 << 20), f"desk{i} chunk at {off}"
PY
cmp "$REF" "$MNT/base.img" || fail "the base changed under its clones"

log "fio --verify on clones"
for i in 4 5; do
	fio --name=c$i --filename="$MNT/desk$i.img" --rw=randwrite --bsrange=4k-1m --size=1g --io_size=96m \
		--ioengine=psync --verify=crc32c --verify_fatal=1 --randrepeat=0 --output="$WORK/fio$i.log" \
		|| { cat "$WORK/fio$i.log"; fail "fio verify on desk$i"; }
done

log "snapshots stay frozen; revert restores; snapshots are read-only files in .snap"
h0=$(sha256sum <"$MNT/desk2.img")
vdifs-snap create "$MNT/desk2.img" s1 || fail "snapshot"
[ -f "$MNT/.snap/desk2.img@s1" ] || fail "snapshot file missing"
ls -a "$MNT" | grep -q '^\.snap$' && fail ".snap shows in readdir"
echo x >"$MNT/.snap/new" 2>/dev/null && fail "created a file in .snap"
dd if=/dev/zero of="$MNT/.snap/desk2.img@s1" bs=4k count=1 conv=notrunc status=none 2>/dev/null && fail "wrote a snapshot"
dd if=/dev/urandom of="$MNT/desk2.img" bs=1M count=8 seek=100 conv=notrunc,fsync status=none
[ "$(sha256sum <"$MNT/.snap/desk2.img@s1")" = "$h0" ] || fail "snapshot changed when its file was written"
[ "$(sha256sum <"$MNT/desk2.img")" != "$h0" ] || fail "the write did not land"
vdifs-snap list "$MNT/desk2.img" | grep -q '^s1 ' || fail "snapshot list: $(vdifs-snap list "$MNT/desk2.img")"
vdifs-snap list --json "$MNT/desk2.img" | python3 -c 'import json,sys; assert json.load(sys.stdin)[0]["name"] == "s1"' \
	|| fail "snapshot list --json"
vdifs-snap revert "$MNT/desk2.img" s1 || fail "revert"
[ "$(sha256sum <"$MNT/desk2.img")" = "$h0" ] || fail "revert did not restore the snapshot"
vdifs-clone "$MNT/.snap/desk2.img@s1" "$MNT/from-snap.img" || fail "clone of a snapshot"
[ "$(sha256sum <"$MNT/from-snap.img")" = "$h0" ] || fail "clone of a snapshot differs"
out=$(vdifs-snap revert "$MNT/desk2.img" nope 2>&1) && fail "revert to a missing snapshot succeeded"
echo "$out" | grep -q "no such snapshot" || fail "error for a missing snapshot: $out"
out=$(vdifs-clone /etc/hostname "$MNT/x" 2>&1) && fail "clone from outside vdifs succeeded"
echo "$out" | grep -q "not on a vdifs mount" || fail "error for a non-vdifs file: $out"

log "delete the base while clones live"
h3=$(sha256sum <"$MNT/desk3.img")
rm "$MNT/base.img"
drop_caches
[ "$(sha256sum <"$MNT/desk3.img")" = "$h3" ] || fail "a clone changed when its base was deleted"

log "delete everything: the data servers empty out"
vdifs-snap delete "$MNT/desk2.img" s1 || fail "snapshot delete"
rm -f "$MNT"/*.img
expect_empty_servers
log ok
