#!/bin/bash
# Sparse files use no space, cp --sparse=always keeps them sparse,
# SEEK_DATA/SEEK_HOLE are exact, and punching a hole gives space back in df.
. "$(dirname "$0")/lib.sh"
start_cluster
log "10 GiB sparse file"
truncate -s 10G "$MNT/sparse"
[ "$(stat -c %s "$MNT/sparse")" = 10737418240 ] || fail "size of the sparse file"
[ "$(stat -c %b "$MNT/sparse")" = 0 ] || fail "a sparse file has $(stat -c %b "$MNT/sparse") blocks"
cp --sparse=always "$MNT/sparse" "$MNT/sparse-copy"
[ "$(stat -c %s "$MNT/sparse-copy")" = 10737418240 ] || fail "size of the copy"
[ "$(stat -c %b "$MNT/sparse-copy")" = 0 ] || fail "cp --sparse=always made $(stat -c %b "$MNT/sparse-copy") blocks"

log "SEEK_DATA / SEEK_HOLE"
python3 - "$MNT/sparse" <<'PY' || fail "lseek semantics"
import errno, os, sys
G = 1 << 30
fd = os.open(sys.argv[1], os.O_RDWR)
def enxio(off, whence):
    try:
        os.lseek(fd, off, whence)
    except OSError as e:
        return e.errno == errno.ENXIO
    return False
assert enxio(0, os.SEEK_DATA), "SEEK_DATA on an all-hole file must be ENXIO"
assert os.lseek(fd, 0, os.SEEK_HOLE) == 0
assert os.lseek(fd, 10 * G - 1, os.SEEK_HOLE) == 10 * G - 1
assert enxio(10 * G, os.SEEK_HOLE), "SEEK_HOLE at EOF must be ENXIO"
os.pwrite(fd, b"x" * (1 << 20), 5 * G)
os.fsync(fd)
assert os.lseek(fd, 0, os.SEEK_DATA) == 5 * G, os.lseek(fd, 0, os.SEEK_DATA)
assert os.lseek(fd, 5 * G + 100, os.SEEK_DATA) == 5 * G + 100
assert os.lseek(fd, 5 * G, os.SEEK_HOLE) == 5 * G + (1 << 20)
assert enxio(5 * G + (1 << 20), os.SEEK_DATA)
assert enxio(11 * G, os.SEEK_DATA)
os.close(fd)
PY
[ "$(stat -c %b "$MNT/sparse")" -ge 2048 ] || fail "1 MiB written shows $(stat -c %b "$MNT/sparse") blocks"

log "punch a hole and see space come back"
dd if=/dev/urandom of="$MNT/big" bs=1M count=256 conv=fsync status=none
blocks=$(stat -c %b "$MNT/big")
[ "$blocks" -ge $((256 * 2048)) ] || fail "256 MiB file has only $blocks blocks"
sleep 2.5 # let every data server report its space (heartbeats)
used_before=$(df -B1 --output=used "$MNT" | tail -n1)
ds_before=$(du -s -B1 "$C"/ds[0-9]* | awk '{ t += $1 } END { print t }')
fallocate -p -o 0 -l 256M "$MNT/big"
[ "$(stat -c %s "$MNT/big")" = $((256 << 20)) ] || fail "punch changed the size"
[ "$(stat -c %b "$MNT/big")" -lt 2048 ] || fail "punched file still has $(stat -c %b "$MNT/big") blocks"
cmp -n $((256 << 20)) "$MNT/big" /dev/zero || fail "punched range does not read as zeros"
# The data servers' own directories are the exact measure; df (the disk the
# servers share with everything else on this machine) follows them within a
# heartbeat when nothing else writes, and is only reported.  (Whole chunks
# punched leave through the deletion queues: allow a few heartbeats.)
ds_freed=0
for _ in $(seq 1 40); do
	ds_freed=$((ds_before - $(du -s -B1 "$C"/ds[0-9]* | awk '{ t += $1 } END { print t }')))
	[ $ds_freed -ge $((400 << 20)) ] && break
	sleep 0.25
done
[ $ds_freed -ge $((400 << 20)) ] || fail "the data servers freed only $ds_freed bytes after punching 256 MiB x 2 replicas"
freed=0
for _ in $(seq 1 40); do
	used_after=$(df -B1 --output=used "$MNT" | tail -n1)
	freed=$((used_before - used_after))
	[ $freed -ge $((400 << 20)) ] && break
	sleep 0.25
done
[ $freed -ge $((400 << 20)) ] || log "df shows $freed bytes freed (something else on this disk wrote meanwhile?)"
log "fallocate modes"
fallocate -l 10M "$MNT/falloc"
[ "$(stat -c %s "$MNT/falloc")" = $((10 << 20)) ] || fail "fallocate (mode 0) did not set the size"
fallocate -n -o 10M -l 6M "$MNT/falloc"
[ "$(stat -c %s "$MNT/falloc")" = $((10 << 20)) ] || fail "fallocate --keep-size changed the size"
dd if=/dev/urandom of="$MNT/falloc" bs=1M count=10 conv=notrunc,fsync status=none
fallocate -z -o 1M -l 2M "$MNT/falloc"
cmp -i 1M -n 2M "$MNT/falloc" /dev/zero || fail "fallocate --zero-range does not read as zeros"
fallocate -z -o 9M -l 3M "$MNT/falloc"
[ "$(stat -c %s "$MNT/falloc")" = $((12 << 20)) ] || fail "fallocate --zero-range past EOF did not extend"
fallocate -p -o 4M -l 1M "$MNT/falloc"
cmp -i 4M -n 1M "$MNT/falloc" /dev/zero || fail "punch in the middle"
log "ok (data servers freed $((ds_freed >> 20)) MiB, df $((freed >> 20)) MiB)"
