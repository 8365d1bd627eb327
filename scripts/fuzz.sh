#!/bin/bash
# Builds the libFuzzer targets of tests/fuzz in build-fuzz (clang,
# -Dfuzz=true, no cmocka needed) and runs each for SECONDS (default 60), two
# at a time, from its seed corpus (written by fuzz_seeds) plus what earlier
# runs found (build-fuzz/fuzz-corpus/<target>).  Prints per target the
# executions done and exec/s; exits non-zero on any crash, sanitizer report,
# leak, timeout (-timeout) or out-of-memory (-rss_limit_mb, -malloc_limit_mb:
# an unbounded allocation fails).  Failing inputs go to a temp dir that is
# printed and kept.  usage: scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
[[ $secs =~ ^[0-9]+$ ]] || { echo "usage: $0 [SECONDS]" >&2; exit 2; }
TARGETS=(fuzz_frame fuzz_proto fuzz_config fuzz_chunkfile fuzz_rpc_server)
PARALLEL=2

scripts/deps.sh
[ -f build-fuzz/build.ninja ] || CC=clang meson setup build-fuzz -Dfuzz=true -Dtests=false >/dev/null
ninja -C build-fuzz >/dev/null

work=$(mktemp -d "${TMPDIR:-/tmp}/vdifs-fuzz.XXXXXX")
# Chunk files of fuzz_chunkfile are synced: keep them in memory when we can.
scratch=$(mktemp -d /dev/shm/vdifs-fuzz.XXXXXX 2>/dev/null || mktemp -d "$work/scratch.XXXXXX")
cleanup() {
	rm -rf "$scratch" "$work/seeds"
	rm -f "$work"/*.rc
	rmdir "$work/artifacts" 2>/dev/null || true
	if [ -d "$work/artifacts" ]; then
		echo "fuzz: failing inputs and logs kept in $work"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
mkdir -p "$work/artifacts"
build-fuzz/tests/fuzz/fuzz_seeds "$work/seeds"

run_one() {
	local t=$1 name=${1#fuzz_} extra=()
	[ "$t" = fuzz_chunkfile ] && extra=(-max_len=65536)
	local corpus=build-fuzz/fuzz-corpus/$name
	mkdir -p "$corpus" "$scratch/$name"
	local rc=0
	TMPDIR="$scratch/$name" build-fuzz/tests/fuzz/$t -max_total_time="$secs" -timeout=10 \
		-rss_limit_mb=2048 -malloc_limit_mb=512 -print_final_stats=1 \
		-artifact_prefix="$work/artifacts/$name-" "${extra[@]}" \
		"$corpus" "$work/seeds/$name" >"$work/$name.log" 2>&1 || rc=$?
	echo "$rc" >"$work/$name.rc"
}

start=$SECONDS
echo "fuzz: ${#TARGETS[@]} targets, ${secs}s each, $PARALLEL at a time"
running=0
for t in "${TARGETS[@]}"; do
	if [ "$running" -ge "$PARALLEL" ]; then
		wait -n || true
		running=$((running - 1))
	fi
	run_one "$t" &
	running=$((running + 1))
done
wait

failed=0
for t in "${TARGETS[@]}"; do
	name=${t#fuzz_}
	rc=$(cat "$work/$name.rc")
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$name.log")
	eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/$name.log")
	rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$work/$name.log")
	if [ "$rc" = 0 ]; then
		printf '%-16s %12s execs %8s exec/s  peak %s MB  ok\n' "$t" "${execs:-?}" "${eps:-?}" "${rss:-?}"
		rm -f "$work/$name.log"
	else
		failed=1
		printf '%-16s FAILED (exit %s) after %s execs; log %s\n' "$t" "$rc" "${execs:-?}" "$work/artifacts/$name.log"
		mv "$work/$name.log" "$work/artifacts/$name.log"
		grep -E -A40 '^==[0-9]+==ERROR|runtime error|fuzz check failed|ALARM|out-of-memory|malloc\(' \
			"$work/artifacts/$name.log" | head -n 60 || true
	fi
done
echo "fuzz: done in $((SECONDS - start))s"
exit "$failed"
