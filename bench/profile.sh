#!/bin/bash
# Where the time goes in one job on vdifs: a fresh local cluster (MDS + 3
# data servers, replica count 2, mounted), the job run under a system-wide
# `perf record` (the mount, the servers, fio and the kernel all count), and a
# report of the job's figure, the CPU seconds of each process, the share of
# samples per process, and the hottest symbols.  Not a test, and not a
# figure to compare: perf itself costs a few per cent.
#
#   bench/profile.sh JOB...      JOB: seqwrite seqread randwrite randread
#                                     create unlink (default: all of them)
#
# Writes bench/results/profile-JOB-<UTC>.txt (the perf.data is left in the
# work directory only with KEEP=1).  Env: BUILD (default ./build), BENCH_DIR
# (default /var/tmp), SIZE (default 2G), RUNTIME (random jobs, s, default
# 20), NFILES (metadata jobs, default 10000).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
BUILD=$(realpath -m "${BUILD:-$REPO/build}")
SIZE=${SIZE:-2G}
RUNTIME=${RUNTIME:-20}
NFILES=${NFILES:-10000}
JOBS=("$@")
[ ${#JOBS[@]} -gt 0 ] || JOBS=(seqwrite seqread randwrite randread create unlink)
for j in "${JOBS[@]}"; do
	case $j in
	seqwrite | seqread | randwrite | randread | create | unlink) ;;
	-h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "profile.sh: unknown job '$j' (seqwrite seqread randwrite randread create unlink)" >&2; exit 2 ;;
	esac
done
bench/deps.sh # perf, fio
for t in perf fio python3; do
	command -v "$t" >/dev/null || { echo "profile.sh: $t is missing (bench/deps.sh installs it)" >&2; exit 1; }
done
[ -x "$BUILD/tools/vdifs-cluster" ] || { echo "profile.sh: no build in $BUILD (scripts/build.sh)" >&2; exit 1; }

WORK=$(mktemp -d "${BENCH_DIR:-/var/tmp}/vdifs-profile.XXXXXX")
C="$WORK/cluster"
PERF=
cleanup() {
	[ -z "$PERF" ] || kill -INT "$PERF" 2>/dev/null || true
	"$BUILD/tools/vdifs-cluster" stop "$C" >/dev/null 2>&1 || true
	[ "${KEEP:-0}" = 1 ] && echo "profile.sh: kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT
. scripts/free_port.sh
PORT=$(free_port_base)
"$BUILD/tools/vdifs-cluster" start "$C" --port "$PORT" >"$WORK/start.log" 2>&1 ||
	{ cat "$WORK/start.log" >&2; exit 1; }
MNT="$C/mnt"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$REPO/bench/results"
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# CPU seconds (utime + stime) of the cluster's processes, one "name secs" a line.
cpu() {
	local f
	for f in "$C"/run/*.pid; do
		awk -v n="$(basename "$f" .pid)" '{ printf "%s %.2f\n", n, ($14 + $15) / 100 }' "/proc/$(cat "$f")/stat"
	done
}

fio_job() { # NAME fio-args... -> prints the figure
	local name=$1
	shift
	fio --name="$name" --filename="$MNT/prof.dat" --size="$SIZE" --output-format=json "$@" >"$WORK/fio.json"
	python3 - "$WORK/fio.json" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
for k in ("read", "write"):
    if j[k]["io_bytes"]:
        print("%s: %.0f MB/s, %.0f IOPS, fio CPU %.1f%% usr %.1f%% sys" % (k, j[k]["bw_bytes"] / 1e6, j[k]["iops"], j["usr_cpu"], j["sys_cpu"]))
EOF
}

meta_job() { # create|unlink -> prints the figure
	python3 - "$1" "$MNT/meta" "$NFILES" <<'EOF'
import os, sys, time
op, d, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
names = [os.path.join(d, "f%05d" % i) for i in range(n)]
t0 = time.perf_counter()
if op == "create":
    os.makedirs(d, exist_ok=True)
    for p in names:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, b"x" * 1024)
        os.close(fd)
else:
    for p in names:
        os.unlink(p)
dt = time.perf_counter() - t0
print("%s: %.0f files/s (%.0f us each)" % (op, n / dt, dt / n * 1e6))
EOF
}

# Setup a job needs before it is measured (not profiled).
prepare() {
	case $1 in
	seqread | randwrite | randread)
		[ -f "$MNT/prof.dat" ] || fio --name=fill --filename="$MNT/prof.dat" --size="$SIZE" --rw=write --bs=1M \
			--end_fsync=1 >/dev/null ;;
	unlink) [ -d "$MNT/meta" ] || meta_job create >/dev/null ;;
	create) rm -rf "$MNT/meta" ;;
	esac
	case $1 in seqread | unlink) drop ;; esac
}

run() {
	case $1 in
	seqwrite) rm -f "$MNT/prof.dat"; fio_job seqwrite --rw=write --bs=1M --ioengine=psync --end_fsync=1 ;;
	seqread) fio_job seqread --rw=read --bs=1M --ioengine=psync ;;
	randwrite | randread)
		fio_job "$1" --rw="$1" --bs=4k --ioengine=libaio --iodepth=16 --direct=1 --time_based --runtime="$RUNTIME" ;;
	create | unlink) meta_job "$1" ;;
	esac
}

for j in "${JOBS[@]}"; do
	out="$REPO/bench/results/profile-$j-$STAMP.txt"
	prepare "$j"
	cpu >"$WORK/cpu.a"
	perf record -a -g -F 999 -o "$WORK/$j.perf" >"$WORK/$j.perf.log" 2>&1 &
	PERF=$!
	sleep 1 # perf is recording
	run "$j" >"$WORK/$j.fig"
	kill -INT "$PERF"
	wait "$PERF" || true
	PERF=
	cpu >"$WORK/cpu.b"
	{
		echo "# profile: $j on vdifs ($(git -C "$REPO" describe --always --dirty), $STAMP)"
		echo "# machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)"
		echo "# size $SIZE, runtime $RUNTIME s, files $NFILES"
		echo
		echo "## figure (under perf)"
		cat "$WORK/$j.fig"
		echo
		echo "## CPU seconds of the cluster's processes during the job"
		join "$WORK/cpu.a" "$WORK/cpu.b" | awk '{ printf "%-6s %6.2f\n", $1, $3 - $2 }'
		echo
		echo "## samples by process (all CPUs; idle is swapper)"
		perf report -i "$WORK/$j.perf" --no-children --sort comm --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -15
		echo
		echo "## hottest symbols (self), by process"
		perf report -i "$WORK/$j.perf" --no-children --sort comm,dso,sym --stdio -g none --percent-limit 0.7 2>/dev/null |
			grep -v '^#' | grep -v '^$' | head -45
	} >"$out"
	echo "$out: $(head -c 300 "$WORK/$j.fig" | tr '\n' ' ')"
done
