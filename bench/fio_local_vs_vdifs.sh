#!/bin/bash
# Runs the same fio jobs on the local disk and on a vdifs mount (3 data
# servers, replica count 2) in one run and prints medians and ratios.
# Not a test: numbers depend on the machine; compare ratios, not absolutes.
#
#   bench/fio_local_vs_vdifs.sh [REPEATS]      (default 3)
#
# Env: BUILD (default ./build), BENCH_DIR (default /var/tmp), SIZE (default 2G),
#      RUNTIME (seconds for random jobs, default 15).
set -euo pipefail
cd "$(dirname "$0")/.."
REPEATS=${1:-3}
BUILD=${BUILD:-$PWD/build}
SIZE=${SIZE:-2G}
RUNTIME=${RUNTIME:-15}
WORK=$(mktemp -d "${BENCH_DIR:-/var/tmp}/vdifs-bench.XXXXXX")
C="$WORK/cluster"
cleanup() { "$BUILD/tools/vdifs-cluster" stop "$C" >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT
. scripts/free_port.sh
PORT=$(free_port_base)
"$BUILD/tools/vdifs-cluster" start "$C" --port "$PORT" >/dev/null
mkdir -p "$WORK/local"
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# job NAME DIR -> prints one number (MB/s or IOPS)
job() {
	local name=$1 dir=$2 out
	case $name in
	seqwrite)
		rm -f "$dir/seq.dat"
		out=$(fio --name=w --filename="$dir/seq.dat" --size="$SIZE" --rw=write --bs=1M --ioengine=psync \
			--end_fsync=1 --output-format=json)
		echo "$out" | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["jobs"][0]["write"]["bw_bytes"]/1e6,1))' ;;
	seqread)
		drop
		out=$(fio --name=r --filename="$dir/seq.dat" --size="$SIZE" --rw=read --bs=1M --ioengine=psync \
			--output-format=json)
		echo "$out" | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["jobs"][0]["read"]["bw_bytes"]/1e6,1))' ;;
	randwrite|randread)
		local rw=${name}
		out=$(fio --name=x --filename="$dir/seq.dat" --size="$SIZE" --rw="$rw" --bs=4k --ioengine=libaio \
			--iodepth=16 --direct=1 --time_based --runtime="$RUNTIME" --output-format=json)
		local key=${name#rand}
		echo "$out" | python3 -c "import json,sys; print(round(json.load(sys.stdin)['jobs'][0]['$key']['iops']))" ;;
	esac
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

printf '| job | local disk | vdifs | vdifs/local |\n|---|---|---|---|\n'
for j in seqwrite seqread randwrite randread; do
	loc=(); vd=()
	for _ in $(seq 1 "$REPEATS"); do
		loc+=("$(job $j "$WORK/local")")
		vd+=("$(job $j "$C/mnt")")
	done
	ml=$(printf '%s\n' "${loc[@]}" | median)
	mv=$(printf '%s\n' "${vd[@]}" | median)
	unit=MB/s; case $j in rand*) unit=IOPS;; esac
	printf '| %s (%s) | %s | %s | %s |\n' "$j" "$unit" "$ml" "$mv" "$(awk -v a="$mv" -v b="$ml" 'BEGIN { printf "%.2f", a / b }')"
done
