#!/bin/bash
# README's second command: install what is missing, build, and run the whole
# test suite: unit and integration tests, then the unit tests and a set of
# integration tests again in an ASan/UBSan build, then a short run of each
# libFuzzer target (scripts/fuzz.sh 20: about 2 minutes with its build).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
echo "== build"
scripts/build.sh build
echo "== tests"
# fio jobs of 512 MiB (16 chunks of 64 MiB per job at most) keep CI short.
VDIFS_TEST_FIO_SIZE=512M meson test -C build --print-errorlogs --num-processes 2
echo "== ASan/UBSan build"
scripts/build.sh build-asan -Db_sanitize=address,undefined -Db_lundef=false
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
meson test -C build-asan --print-errorlogs --suite unit --num-processes 2
VDIFS_SANITIZE=1 VDIFS_TEST_FIO_SIZE=128M meson test -C build-asan --print-errorlogs \
	malformed_frames two_mounts mds_crash fio_verify flatten hostile_clients ds_kill scrub partition fsck_data \
	mds_outage_io
echo "== fuzz (libFuzzer, 20 s per target)"
scripts/fuzz.sh 20
echo "== all tests passed"
