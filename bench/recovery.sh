#!/bin/bash
# Re-replication benchmark: starts its own local cluster (MDS + 3 data
# servers, replica count 2), writes a volume of SIZE (default 4 GiB) of
# random data, kills one data server with kill -9 while a writer runs, and
# measures (a) the longest write stall the writer sees and (b) the time
# until every chunk has 2 replicas again (vdifs-admin status --wait), with
# the bytes copied.  Prints one Markdown table and writes
# bench/results/recovery-<UTC time>.{md,json}.
# Not a test: numbers depend on the machine (and on recovery_mb_s, 200 MiB/s
# per source server by default); on a shared VM read them as an order.
#
#   bench/recovery.sh          SIZE=4G
#   SIZE=1G bench/recovery.sh  quicker
#
# Env: BUILD (default ./build), BENCH_DIR (default /var/tmp), SIZE.
# Needs root (FUSE), fio, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
BUILD=${BUILD:-$PWD/build}
SIZE=${SIZE:-4G}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
WORK=$(mktemp -d "${BENCH_DIR:-/var/tmp}/vdifs-bench-recovery.XXXXXX")
C="$WORK/cluster"
MNT="$C/mnt"
BIN="$WORK/bin"
cleanup() {
	local rc=$?
	if [ -x "$BIN/vdifs-cluster" ]; then "$BIN/vdifs-cluster" stop "$C" >/dev/null 2>&1 || true; fi
	rm -rf "$WORK"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { printf '[recovery %s] %s\n' "$(date +%T)" "$*" >&2; }
mkdir -p "$BIN"
for b in mds/vdifs-mds dataserver/vdifs-ds client/vdifs-mount tools/vdifs-cluster tools/vdifs-admin; do
	cp "$BUILD/$b" "$BIN/"
done
export PATH="$BIN:$PATH"
. "$REPO/scripts/free_port.sh"
PORT=$(free_port_base)
vdifs-cluster start "$C" --port "$PORT" >/dev/null
mountpoint -q "$MNT" || { echo "recovery.sh: $MNT is not mounted" >&2; exit 1; }
status() { vdifs-admin -C "$C" status --json | python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

log "writing $SIZE of random data"
fio --name=fill --filename="$MNT/vol.dat" --size="$SIZE" --rw=write --bs=1M --ioengine=psync \
	--refill_buffers --end_fsync=1 --output=/dev/null
log "random 64 KiB writes; kill -9 of ds2 after 2 s"
fio --name=w --filename="$MNT/vol.dat" --size="$SIZE" --rw=randwrite --bs=64k --ioengine=psync \
	--time_based --runtime=12 --output-format=json --output="$WORK/w.json" &
FIO=$!
sleep 2
kill -9 "$(cat "$C/run/ds2.pid")"
t_kill=$(date +%s.%N)
wait $FIO
short=$(status under_replicated)
timeout 1800 vdifs-admin -C "$C" status --wait >/dev/null
t_done=$(date +%s.%N)
copies=$(status recovered)
python3 - "$WORK/w.json" "$t_kill" "$t_done" "$copies" "$SIZE" "$STAMP" "$REPO/bench/results" "$short" <<'PY'
import json, os, sys
w = json.load(open(sys.argv[1]))["jobs"][0]["write"]
t_kill, t_done, copies = float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
size, stamp, outdir, short = sys.argv[5], sys.argv[6], sys.argv[7], int(sys.argv[8])
chunk = 64 << 20
r = {
    "volume": size, "copies": copies, "copied_gib": copies * chunk / 2**30,
    "recovery_s": t_done - t_kill, "stall_s": w["clat_ns"]["max"] / 1e9,
    "write_median_ms": w["clat_ns"]["percentile"]["50.000000"] / 1e6,
    "short_after_writer": short, "load": open("/proc/loadavg").read().split()[:3],
}
md = ["| measure | value |", "|---|---|",
      "| volume written | %s |" % size,
      "| longest write stall across the kill -9 | %.2f s |" % r["stall_s"],
      "| median write (64 KiB, psync) | %.1f ms |" % r["write_median_ms"],
      "| time from kill -9 to every chunk at 2 replicas | %.1f s |" % r["recovery_s"],
      "| copies made | %d (%.2f GiB) |" % (copies, r["copied_gib"]),
      "| re-replication rate | %.0f MiB/s |" % (copies * chunk / 2**20 / max(r["recovery_s"], 1e-9)),
      "", "load average at the end: %s (2-core shared VM: read as an order)" % " ".join(r["load"])]
print("\n".join(md))
os.makedirs(outdir, exist_ok=True)
open(os.path.join(outdir, "recovery-%s.md" % stamp), "w").write("\n".join(md) + "\n")
json.dump(r, open(os.path.join(outdir, "recovery-%s.json" % stamp), "w"), indent=1)
PY
