#!/bin/bash
# The one-command benchmark suite: the same jobs, in one run, on four
# systems: the local disk (the physical limit), a FUSE passthrough (the FUSE
# ceiling), MooseFS and vdifs.  All the systems stay up for the whole run and
# every repeat runs each job on each of them back to back (order rotated),
# so the ratios are medians of pairs that saw the same moment of the machine.
# Prints one table (each figure per system, vdifs/moosefs, vdifs/passthrough,
# target, PASS/MISS) and writes bench/results/suite-<UTC time>.{md,json,svg}.
# Not a test: numbers depend on the machine; compare ratios, not absolutes.
#
#   bench/suite.sh                                   full run (about 1.5 hours on 2 cores)
#   QUICK=1 bench/suite.sh                           smoke run (a few minutes)
#   SYSTEMS="local vdifs" QUICK=1 bench/suite.sh     a subset
#
# Env: BUILD (default ./build), BENCH_DIR (default /var/tmp), REPEATS
#      (default 5, QUICK 2), SYSTEMS (default "local passthrough moosefs vdifs"),
#      QUICK=1, KEEP=1 (leave the systems' directories, for a look after).
# Needs root (FUSE mounts, drop_caches), fio, python3; qemu-img and qemu-io
# for the QCOW2 rows.  See bench/README.md, section suite.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
case ${1:-} in
-h | --help) usage; exit 0 ;;
"") ;;
*) usage >&2; exit 2 ;;
esac
BUILD=$(realpath -m "${BUILD:-$PWD/build}")
export BUILD # the peer scripts find their binaries there
QUICK=${QUICK:-0}
SYSTEMS=${SYSTEMS:-local passthrough moosefs vdifs}
MIB=$((1 << 20))
GIB=$((1 << 30))
if [ "$QUICK" = 1 ]; then
	SIZE=$((256 * MIB)) DESK=$((256 * MIB)) RUNTIME=5 NCLONES=100 NMETA=2000
	REPEATS=${REPEATS:-2}
else
	SIZE=$((2 * GIB)) DESK=$GIB RUNTIME=20 NCLONES=1000 NMETA=10000
	REPEATS=${REPEATS:-5}
fi
for s in $SYSTEMS; do
	case $s in local | passthrough | moosefs | vdifs) ;; *) echo "suite.sh: unknown system '$s'" >&2; exit 2 ;; esac
done
for t in fio python3; do
	command -v "$t" >/dev/null || { echo "suite.sh: $t is missing (scripts/deps.sh installs it)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "suite.sh: needs root (FUSE mounts, drop_caches)" >&2; exit 1; }
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
START=$(date +%s)

WORK=$(mktemp -d "${BENCH_DIR:-/var/tmp}/vdifs-suite.XXXXXX")
BIN="$WORK/bin"
STARTED=() # systems to stop at the end, in start order
exec 3>&2
log() { printf '[suite %s] %s\n' "$(date +%T)" "$*" >&3; }
stop_sys() {
	case $1 in
	vdifs) [ -x "$BIN/vdifs-cluster" ] && "$BIN/vdifs-cluster" stop "$WORK/vdifs" ;;
	passthrough | moosefs) "$REPO/bench/systems/$1.sh" stop "$WORK/$1" ;;
	esac
}
cleanup() {
	local rc=$? i
	for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
		stop_sys "${STARTED[i]}" >>"$WORK/stop.log" 2>&1 || log "stopping ${STARTED[i]} failed (see $WORK/stop.log)"
	done
	if grep -q " $WORK/" /proc/mounts; then
		log "something is still mounted under $WORK; leaving it there"
	elif [ "${KEEP:-0}" = 1 ]; then
		log "KEEP=1: $WORK left in place"
	else
		rm -rf "$WORK"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Space: per system the sequential file, the boot image, the desktop base
# (+ 8 copies on local and passthrough), 2 replicas on MooseFS and vdifs,
# plus the sparse 1 and 16 GiB images and slack.
need=$GIB
for s in $SYSTEMS; do
	case $s in
	local | passthrough) need=$((need + 2 * SIZE + 9 * DESK + 512 * MIB)) ;;
	*) need=$((need + 2 * (2 * SIZE + 2 * DESK + 512 * MIB))) ;;
	esac
done
avail=$(df -B1 --output=avail "$WORK" | tail -n 1 | tr -d ' ')
[ "$avail" -ge "$need" ] ||
	{ echo "suite.sh: $((avail / MIB)) MiB free under $WORK, the run needs about $((need / MIB)) MiB" >&2; exit 1; }

# The binaries as they are now: others may rebuild the tree during the run.
mkdir -p "$BIN"
if [[ " $SYSTEMS " == *" vdifs "* ]]; then
	# vdifs-cluster starts the servers and the mount from beside itself.
	cp "$BUILD"/tools/vdifs-{cluster,clone} "$BUILD"/mds/vdifs-mds "$BUILD"/dataserver/vdifs-ds \
		"$BUILD"/client/vdifs-mount "$BIN/"
	export VDIFS_BINDIR=$BIN
fi
BUILD_ID="$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown) (binaries copied from $BUILD at start)"

# sysline NAME STATUS MSG: one system of the config.
SYSF="$WORK/systems.tsv"
: >"$SYSF"
sysline() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$WORK/$1" >>"$SYSF"; }
log "work directory $WORK, mode $([ "$QUICK" = 1 ] && echo QUICK || echo full), systems: $SYSTEMS"
for s in $SYSTEMS; do
	case $s in
	local)
		mkdir -p "$WORK/local/mnt"
		sysline local up "" ;;
	passthrough | moosefs)
		if [ ! -x "$REPO/bench/systems/$s.sh" ]; then
			log "$s: bench/systems/$s.sh missing, skipped"
			sysline "$s" skip "skipped: bench/systems/$s.sh missing"
			continue
		fi
		log "$s: starting"
		STARTED+=("$s")
		if "$REPO/bench/systems/$s.sh" start "$WORK/$s" >"$WORK/$s.start.log" 2>&1 && mountpoint -q "$WORK/$s/mnt"; then
			sysline "$s" up ""
		else
			log "$s: start failed: $(tail -n 3 "$WORK/$s.start.log" | tr '\n' ' ')"
			sysline "$s" error "ERROR: start failed: $(tail -n 2 "$WORK/$s.start.log" | tr '\n\t|' '   ' | cut -c1-200)"
		fi ;;
	vdifs)
		. "$REPO/scripts/free_port.sh"
		PORT=$(free_port_base)
		log "vdifs: starting (port $PORT)"
		STARTED+=(vdifs)
		if "$BIN/vdifs-cluster" start "$WORK/vdifs" --port "$PORT" >"$WORK/vdifs.start.log" 2>&1 &&
			mountpoint -q "$WORK/vdifs/mnt"; then
			sysline vdifs up ""
		else
			log "vdifs: start failed: $(tail -n 3 "$WORK/vdifs.start.log" | tr '\n' ' ')"
			sysline vdifs error "ERROR: start failed: $(tail -n 2 "$WORK/vdifs.start.log" | tr '\n\t|' '   ' | cut -c1-200)"
		fi ;;
	esac
done

# The machine, for the report.
dev=$(df --output=source "$WORK" | tail -n 1)
fstype=$(df --output=fstype "$WORK" | tail -n 1)
disk=$(lsblk -ndo NAME,MODEL,ROTA,SIZE "$dev" 2>/dev/null | tr -s ' ' || true)
MACHINE="$(lscpu | sed -n 's/^Model name: *//p' | head -n 1), $(nproc) CPUs ($(lscpu | sed -n 's/^Core(s) per socket: *//p') cores per socket, $(lscpu | sed -n 's/^Socket(s): *//p') socket(s)), $(($(awk '/MemTotal/ { print $2 }' /proc/meminfo) / 1024)) MiB RAM; BENCH_DIR ${BENCH_DIR:-/var/tmp} on $dev ($fstype${disk:+; lsblk: $disk}); Linux $(uname -r); load average at the start $LOAD0"
if [ "$QUICK" = 1 ]; then MODE="QUICK=1 (smoke run: small files, short runs; not for comparison)"; else MODE=full; fi
mkdir -p "$REPO/bench/results"
OUT="$REPO/bench/results/suite-$STAMP"
[ "$QUICK" = 1 ] && OUT+=-quick
CONFIG="File $((SIZE / MIB)) MiB, desktop base $((DESK / MIB)) MiB, time-based jobs $RUNTIME s, REPEATS=$REPEATS, $NCLONES clones, $NMETA files. vdifs: MDS + 3 data servers, replica count 2, 64 MiB chunks, FUSE mount; MooseFS: master + 2 chunkservers, goal 2; passthrough: a FUSE passthrough of a local directory; local: a directory under BENCH_DIR."

WORK="$WORK" SYSF="$SYSF" REPO="$REPO" BIN="$BIN" QUICK="$QUICK" REPEATS="$REPEATS" SIZE="$SIZE" DESK="$DESK" \
	RUNTIME="$RUNTIME" NCLONES="$NCLONES" NMETA="$NMETA" OUT="$OUT" STAMP="$STAMP" MODE="$MODE" \
	MACHINE="$MACHINE" BUILD_ID="$BUILD_ID" CONFIG="$CONFIG" python3 - <<'EOF'
import json, os
e = os.environ
systems = []
for line in open(e["SYSF"]):
    name, status, msg, root = line.rstrip("\n").split("\t")
    systems.append({"name": name, "status": status, "msg": msg, "root": root, "mnt": os.path.join(root, "mnt")})
cfg = {"systems": systems, "quick": e["QUICK"] == "1", "repeats": int(e["REPEATS"]), "size": int(e["SIZE"]),
       "desk_size": int(e["DESK"]), "runtime": int(e["RUNTIME"]), "nclones": int(e["NCLONES"]),
       "nmeta": int(e["NMETA"]), "bin": e["BIN"], "repo": e["REPO"], "work": e["WORK"], "out": e["OUT"],
       "meta": {"date": e["STAMP"], "mode": e["MODE"], "machine": e["MACHINE"], "build": e["BUILD_ID"],
                "config": e["CONFIG"]}}
json.dump(cfg, open(os.path.join(e["WORK"], "config.json"), "w"), indent=1)
EOF
python3 "$REPO/bench/suite.py" run "$WORK/config.json"
END=$(date +%s)
log "results: ${OUT#$REPO/}.md, .json and .svg ($(((END - START) / 60)) min $(((END - START) % 60)) s in all)"
