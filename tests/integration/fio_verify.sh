#!/bin/bash
# fio --verify=crc32c on the mount: 1 GiB with 1 MiB sequential and 4 KiB random
# I/O, buffered and with --direct=1 (O_DIRECT, as qemu cache=none).
. "$(dirname "$0")/lib.sh"
start_cluster
SIZE=${VDIFS_TEST_FIO_SIZE:-1G}
run_fio() {
	local name=$1; shift
	log "fio $name"
	fio --name="$name" --directory="$MNT" --filename="$name.dat" --size="$SIZE" \
		--ioengine=psync --verify=crc32c --verify_fatal=1 --do_verify=1 --verify_state_save=0 \
		--output-format=terse --minimal "$@" >"$WORK/$name.out" 2>&1 ||
		{ cat "$WORK/$name.out" >&2; fail "fio $name"; }
	rm -f "$MNT/$name.dat"
}
mds_rchar() { awk '/^rchar/ {print $2}' "/proc/$(pid_of mds)/io"; }
before=$(mds_rchar)
run_fio seq1m --rw=write --bs=1M
# Data goes straight to the data servers: the MDS read a few KiB of metadata
# requests for a whole GiB written and read back.
mds_read=$(( $(mds_rchar) - before ))
[ $mds_read -lt $((4 << 20)) ] || fail "the MDS read $mds_read bytes while 1 GiB of data moved"
log "the MDS read $mds_read bytes during the 1 GiB job"
run_fio rand4k --rw=randwrite --bs=4k --norandommap=0
run_fio seq1m-direct --rw=write --bs=1M --direct=1
run_fio rand4k-direct --rw=randwrite --bs=4k --direct=1 --ioengine=libaio --iodepth=16
log "ok"
