#!/bin/bash
# Clone and snapshot benchmark: starts its own local cluster (MDS + 3 data
# servers, replica count 2) and measures, in one run, the figures of the
# clones/snapshots targets: creation latency, 16 GiB vs 1 GiB, 1,000 clones,
# first writes into a fresh clone vs rewrites, reads of a clone vs its base,
# space of a clone's writes (and of a QCOW2 overlay doing the same), and
# `qemu-img bench` on a QCOW2 overlay vs a native clone.  Prints a Markdown
# table and writes bench/results/clones-<UTC time>.{md,json}.
# Not a test: numbers depend on the machine; on a shared VM compare ratios
# (each measured against a baseline in the same run), not absolutes.
#
#   bench/clones.sh                 full run (about 10 minutes on 2 cores)
#   QUICK=1 bench/clones.sh         smoke run (small sizes, few repeats)
#
# Env: BUILD (default ./build), BENCH_DIR (default /var/tmp), REPEATS (fio,
#      read and qemu-img repeats, default 7), NCLONES (default 1000),
#      FULL=1 (write the 16 GiB image fully instead of 1 MiB in every chunk),
#      QUICK=1, NIDLE (idle latency samples, default 200), NFREEZE (latency
#      samples that freeze a written layer, default 14, at most 14).
# Needs root (drop_caches, FUSE), fio, qemu-img, qemu-io, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
BUILD=${BUILD:-$PWD/build}
QUICK=${QUICK:-0}
FULL=${FULL:-0}
GIB=$((1 << 30))
MIB=$((1 << 20))
if [ "$QUICK" = 1 ]; then
	BASE_BYTES=$((256 * MIB)) # base image of sections 3-7
	REPEATS=${REPEATS:-2}
	NCLONES=${NCLONES:-100}
	MANY_ROUNDS=1
	NIDLE=${NIDLE:-20}
	NFREEZE=${NFREEZE:-3}
	PROC_N=10
	NIOS=2048     # random writes per fio run (section 4)
	NRIOS=2048    # random reads per fio run (section 5)
	BENCH_C=1024  # qemu-img bench requests (section 7)
	BENCH_S=$((256 * 1024))
else
	BASE_BYTES=$GIB
	REPEATS=${REPEATS:-7}
	NCLONES=${NCLONES:-1000}
	MANY_ROUNDS=3
	NIDLE=${NIDLE:-200}
	NFREEZE=${NFREEZE:-14}
	PROC_N=50
	NIOS=16384
	NRIOS=16384
	BENCH_C=16384 # 16384 x 64 KiB steps = 1 GiB: every request in its own QCOW2 cluster
	BENCH_S=$((64 * 1024))
fi
[ "$NFREEZE" -gt 14 ] && NFREEZE=14 # each adds 2 layers to the images; chains stop at 32
SC_COUNT=4096 # section 6: 16 MiB of scattered 4 KiB writes
CHUNK=$((64 * MIB))
START=$(date +%s)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)

WORK=$(mktemp -d "${BENCH_DIR:-/var/tmp}/vdifs-clones.XXXXXX")
C="$WORK/cluster"
MNT="$C/mnt"
BIN="$WORK/bin"
RES="$WORK/results.jsonl"
cleanup() {
	local rc=$?
	if [ -x "$BIN/vdifs-cluster" ]; then "$BIN/vdifs-cluster" stop "$C" >/dev/null 2>&1 || true; fi
	rm -rf "$WORK"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
exec 3>&2
log() { printf '[clones %s] %s\n' "$(date +%T)" "$*" >&3; }
h() { python3 "$REPO/bench/clones_helper.py" "$@"; }
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
fdiv() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", a / b }'; }
mib() { awk -v a="$1" 'BEGIN { printf "%.1f MiB", a / 1048576 }'; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
owned() { "$BIN/vdifs-snap" info --json "$1" | h jget owned; }
chunks() { "$BIN/vdifs-admin" -C "$C" status --json | h jget chunks; }
avail() { df -B1 --output=avail "$WORK" | tail -n 1 | tr -d ' '; }
chk_count() { find "$C"/ds[0-9]* -name '*.chk' | wc -l; }
# drain N: deleted files leave the data servers asynchronously (heartbeats);
# wait until they hold at most N chunk files, so that a measurement does not
# share the disk with the deletion of the previous one.
drain() {
	for _ in $(seq 1 240); do
		if [ "$(chk_count)" -le "$1" ]; then sync; return 0; fi
		sleep 0.25
	done
	log "warning: chunk files still being deleted after 60 s ($(chk_count) > $1)"
}

for t in fio qemu-img qemu-io python3; do
	command -v "$t" >/dev/null || { echo "clones.sh: $t is missing (scripts/deps.sh installs it)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "clones.sh: needs root (FUSE mount, drop_caches)" >&2; exit 1; }

# The binaries as they are now: others may rebuild the tree during the run.
mkdir -p "$BIN"
for b in tools/vdifs-cluster tools/vdifs-admin tools/vdifs-clone tools/vdifs-snap mds/vdifs-mds \
	dataserver/vdifs-ds client/vdifs-mount; do
	cp "$BUILD/$b" "$BIN/"
done
export VDIFS_BINDIR=$BIN
BUILD_ID="$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown) (binaries copied from $BUILD at start)"

. "$REPO/scripts/free_port.sh"
PORT=$(free_port_base)
log "cluster in $WORK (port $PORT), mode: $([ "$QUICK" = 1 ] && echo QUICK || echo full)"
"$BIN/vdifs-cluster" start "$C" --port "$PORT" >/dev/null
mountpoint -q "$MNT" || { echo "clones.sh: $MNT is not mounted" >&2; exit 1; }
REPL=$(sed -n 's/^replicas = //p' "$C/cluster.conf")

need=$((2 * BASE_BYTES * 2 + 4 * GIB))
[ "$(avail)" -ge "$need" ] || { echo "clones.sh: less than $((need / GIB)) GiB free under $WORK" >&2; exit 1; }
log "base image: $((BASE_BYTES / MIB)) MiB of random data"
BASE="$MNT/base.img"
t0=$(date +%s%N)
h mkimage "$BASE" "$BASE_BYTES" "$CHUNK" 1
BASE_MBS=$(awk -v b="$BASE_BYTES" -v t=$(($(date +%s%N) - t0)) 'BEGIN { printf "%.0f", b / t * 1e3 }')

# section ID FUNCTION: runs FUNCTION in a subshell that stops at the first
# failing command; a failure becomes an ERROR row naming the section and the
# command's last words, and the run goes on with the next section.
section() {
	local id=$1 fn=$2 rc
	log "section $id: $fn"
	set +e
	(set -e; "$fn") 2>"$WORK/err.$id"
	rc=$?
	set -e
	cat "$WORK/err.$id" >&2
	if [ $rc -ne 0 ]; then
		log "section $id failed (exit $rc)"
		h add "$RES" id="$id!" section="$id" figure="section $id ($fn) stopped" \
			error="exit $rc: $(tail -n 4 "$WORK/err.$id" | tr '\n\t|' '   ' | cut -c1-400)"
	fi
}

# 1, 2: creation latency (one setxattr, no process start-up), 1 GiB vs 16 GiB.
sec_latency() {
	local img16 fill c0 c1 need16
	mkdir -p "$MNT/lat" "$MNT/procs"
	if [ "$FULL" = 1 ]; then
		fill="written in full (FULL=1)."
		need16=$((2 * 16 * GIB + 2 * GIB))
	else
		fill="one 4 KiB-aligned 1 MiB piece of random data written into every 64 MiB chunk (not the whole image; FULL=1 writes it all), so the MDS holds a record for every chunk, as for a full image."
		need16=$((2 * 256 * MIB + 2 * GIB))
	fi
	log "1 GiB and 16 GiB images ($([ "$FULL" = 1 ] && echo full || echo '1 MiB in every chunk'))"
	h mkimage "$MNT/lat/img1g.img" "$GIB" "$CHUNK" "$FULL"
	if [ "$(avail)" -lt "$need16" ]; then
		img16="skip:only $(($(avail) / MIB)) MiB free under $WORK, the 16 GiB image needs $((need16 / MIB)) MiB"
		log "16 GiB image skipped: ${img16#skip:}"
	else
		c0=$(chunks)
		h mkimage "$MNT/lat/img16g.img" $((16 * GIB)) "$CHUNK" "$FULL"
		c1=$(chunks)
		[ $((c1 - c0)) = 256 ] || { echo "the 16 GiB image made $((c1 - c0)) chunks, expected 256" >&2; return 1; }
		fill="$fill The MDS's chunk count grew by $((c1 - c0)) with the 16 GiB image."
		img16="$MNT/lat/img16g.img"
	fi
	log "latency: $NIDLE idle and $NFREEZE freezing samples per operation and size"
	h latency "$RES" "$MNT" latc "$MNT/lat/img1g.img" "$img16" "$NIDLE" "$NFREEZE" "$CHUNK" "$fill" "$WORK/sync.probe"
	log "vdifs-clone / vdifs-snap as processes ($PROC_N each)"
	h proc-times "$RES" 1g "\`vdifs-clone SRC DST\` end to end, one process each (for information)" "$PROC_N" \
		"$BIN/vdifs-clone" "$MNT/lat/img1g.img" "$MNT/procs/pc{}.img"
	h proc-times "$RES" 1h "\`vdifs-snap create FILE NAME\` end to end, one process each (for information)" "$PROC_N" \
		"$BIN/vdifs-snap" create "$MNT/lat/img1g.img" "proc{}"
}

# 3: NCLONES clones of one image, one process; then as vdifs-clone processes.
sec_many() {
	local c0 t0 t1 t2 n
	c0=$(chunks)
	h many "$RES" "$MNT" "$BASE" "$NCLONES" "$MANY_ROUNDS"
	log "$NCLONES clones as vdifs-clone processes"
	mkdir "$MNT/manyp"
	t0=$(date +%s%N)
	for i in $(seq 1 "$NCLONES"); do "$BIN/vdifs-clone" "$BASE" "$MNT/manyp/c$i.img"; done
	t1=$(date +%s%N)
	n=$(find "$MNT/manyp" -name '*.img' | wc -l)
	[ "$n" = "$NCLONES" ] || { echo "$n clones in $MNT/manyp, expected $NCLONES" >&2; return 1; }
	[ "$(chunks)" = "$c0" ] || { echo "making clones changed the chunk count: $c0 -> $(chunks)" >&2; return 1; }
	t1b=$(date +%s%N)
	rm -r "$MNT/manyp"
	t2=$(date +%s%N)
	h add "$RES" id=3c section=3 figure="$NCLONES clones as \`vdifs-clone\` processes (shell loop), total" unit=s \
		samples="$(fdiv $((t1 - t0)) 1e9)" note="one round; the MDS's chunk count did not change while making clones ($c0)."
	h add "$RES" id=3d section=3 figure="deleting those $NCLONES clones (\`rm -r\`), total" unit=s \
		samples="$(fdiv $((t2 - t1b)) 1e9)"
	# vdifs-clone SRC DST... (several clones in one process), where the tool has it.
	if "$BIN/vdifs-clone" --help | grep -q 'SRC DST\.\.\.'; then
		mkdir "$MNT/manym"
		t0=$(date +%s%N)
		"$BIN/vdifs-clone" "$BASE" $(seq -f "$MNT/manym/c%.0f.img" 1 "$NCLONES")
		t1=$(date +%s%N)
		n=$(find "$MNT/manym" -name '*.img' | wc -l)
		[ "$n" = "$NCLONES" ] || { echo "$n clones in $MNT/manym, expected $NCLONES" >&2; return 1; }
		rm -r "$MNT/manym"
		h add "$RES" id=3e section=3 figure="$NCLONES clones with one \`vdifs-clone SRC DST...\` process, total" unit=s \
			samples="$(fdiv $((t1 - t0)) 1e9)"
	fi
}

# fio_w FILE ENGINE IOLOG: IOPS of NIOS random 4 KiB writes (seed fixed: every
# run writes the same offsets, each once; IOLOG records them).
fio_w() {
	local a=(--name=w --filename="$1" --rw=randwrite --bs=4k --size="$BASE_BYTES" --number_ios="$NIOS"
		--randrepeat=1 --randseed=4242 --fallocate=none --allow_file_create=0 --end_fsync=1
		--write_iolog="$3" --output-format=json --output="$WORK/fio.json")
	case $2 in
	psync) a+=(--ioengine=psync) ;;
	libaio) a+=(--ioengine=libaio --iodepth=16 --direct=1) ;;
	esac
	sync # nothing of the previous run left to write back
	fio "${a[@]}" >/dev/null
	h fio "$WORK/fio.json" randwrite "$NIOS"
}

# 4: random 4 KiB writes into a fresh clone, then the same writes again; the
# same on a new sparse plain file (not a clone) as a baseline: what any first
# write costs (chunk allocation, the data servers' file system allocating
# blocks), as opposed to what is the clone's.
sec_cow() {
	local eng kind f r id offs n0 fig a b
	declare -A v=()
	offs() { awk '$3 == "write" { print $4, $5 }' "$1"; }
	for eng in psync libaio; do
		for r in $(seq 1 "$REPEATS"); do
			for kind in clone plain; do
				f="$MNT/w-$eng-$kind-$r.img"
				n0=$(chk_count)
				if [ $kind = clone ]; then
					"$BIN/vdifs-clone" "$BASE" "$f"
				else
					truncate -s "$BASE_BYTES" "$f"
				fi
				a=$(fio_w "$f" $eng "$WORK/iolog.1")
				v[$eng.$kind.o1]+="$(owned "$f") "
				b=$(fio_w "$f" $eng "$WORK/iolog.2")
				v[$eng.$kind.o2]+="$(owned "$f") "
				v[$eng.$kind.fresh]+="$a " v[$eng.$kind.re]+="$b "
				log "4 $eng $kind repeat $r: first writes $a IOPS, rewrites $b IOPS"
				# The rewrite must hit exactly the offsets of the first run, each once.
				cmp -s <(offs "$WORK/iolog.1") <(offs "$WORK/iolog.2") ||
					{ echo "fio wrote other offsets in the second run" >&2; return 1; }
				[ "$(offs "$WORK/iolog.1" | sort -u | wc -l)" = "$NIOS" ] ||
					{ echo "fio wrote some offsets twice" >&2; return 1; }
				rm -f "$f"
				drain "$n0"
			done
		done
	done
	uniq_words() { tr ' ' '\n' | sed '/^$/d' | sort -u | tr '\n' ' '; }
	for id in 4a 4b 4c 4d; do
		case $id in
		4a) eng=psync kind=clone fig="random 4 KiB writes, psync 1 job: fresh clone / same writes rewritten (clone owns them)" ;;
		4b) eng=libaio kind=clone fig="random 4 KiB writes, libaio qd16 direct: fresh clone / same writes rewritten" ;;
		4c) eng=psync kind=plain fig="baseline: the same on a new sparse plain file (not a clone), psync: first writes / rewrites" ;;
		4d) eng=libaio kind=plain fig="baseline: the same on a new sparse plain file (not a clone), libaio qd16 direct: first writes / rewrites" ;;
		esac
		local extra=(op='>=' target=0.9)
		[ $kind = plain ] && extra=()
		[ $id = 4a ] && extra+=(note="4a–4d: $REPEATS repeats; in each, a fresh clone of the $((BASE_BYTES / MIB)) MiB base and a new sparse file of the same size (\`truncate\`), each given a first-write run then a rewrite run, then deleted (and the deletion waited for); fio --randrepeat=1 --randseed=4242 --number_ios=$NIOS --bs=4k --end_fsync=1, fio's iologs checked: both runs wrote the same $NIOS distinct offsets. \`vdifs-snap info\` owned by a clone after the first run $(uniq_words <<<"${v[psync.clone.o1]} ${v[libaio.clone.o1]}")B, after the rewrite $(uniq_words <<<"${v[psync.clone.o2]} ${v[libaio.clone.o2]}")B; by a plain file $(uniq_words <<<"${v[psync.plain.o1]} ${v[libaio.plain.o1]}")B, then $(uniq_words <<<"${v[psync.plain.o2]} ${v[libaio.plain.o2]}")B.")
		h add "$RES" id=$id section=4 figure="$fig" unit=IOPS samples="${v[$eng.$kind.fresh]}" base="${v[$eng.$kind.re]}" \
			alabel=$([ $kind = clone ] && echo fresh || echo first) blabel=rewrite "${extra[@]}"
	done
}

# 6: space of 16 MiB of scattered 4 KiB writes: native clone vs QCOW2 overlay.
sec_space() {
	local d dq own n size alloc clusters pr tot n0
	h chunks "$WORK/ck0" "$C"/ds[0-9]*
	"$BIN/vdifs-clone" "$BASE" "$MNT/sc.img"
	h scatter "$MNT/sc.img" "$BASE_BYTES" "$SC_COUNT" 77
	h chunks "$WORK/ck1" "$C"/ds[0-9]*
	d=$(h chunk-diff "$WORK/ck0" "$WORK/ck1")
	own=$(owned "$MNT/sc.img")
	pr=$(h jget per_replica_max <<<"$d")
	tot=$(h jget total <<<"$d")
	h add "$RES" id=6a section=6 figure="space of a clone after $SC_COUNT random 4 KiB writes (16 MiB): on-disk bytes of its delta chunk files, per replica" \
		unit=MiB samples="$(fdiv "$pr" $MIB)" op='<=' target=32 \
		note="du (st_blocks) of the chunk files that appeared on the data servers with the writes: $(h jget files <<<"$d") files for $(h jget chunks <<<"$d") chunks ($(h jget formats <<<"$d" | tr -d "{}'")), per server $(h jget per_ds <<<"$d" | tr -d "{}'"); per replica = sum over chunks of the larger replica; \`vdifs-snap info\` owned $own B ($(mib "$own")); per replica $(awk -v a="$pr" 'BEGIN { printf "%.2f", a / 16777216 }')x the 16 MiB written."
	h add "$RES" id=6b section=6 figure="the same, all replicas together ($REPL)" unit=MiB samples="$(fdiv "$tot" $MIB)"
	n0=$(chk_count)
	h chunks "$WORK/ck2" "$C"/ds[0-9]*
	qemu-img create -q -f qcow2 -b "$BASE" -F raw "$MNT/sc.qcow2"
	h qemu-io-cmds "$BASE_BYTES" "$SC_COUNT" 77 | qemu-io -f qcow2 "$MNT/sc.qcow2" >"$WORK/qemu-io.log"
	n=$(grep -c 'wrote 4096/4096' "$WORK/qemu-io.log" || true)
	[ "$n" = "$SC_COUNT" ] || { tail -n 5 "$WORK/qemu-io.log" >&2; echo "qemu-io wrote $n of $SC_COUNT" >&2; return 1; }
	h chunks "$WORK/ck3" "$C"/ds[0-9]*
	dq=$(h chunk-diff "$WORK/ck2" "$WORK/ck3")
	size=$(stat -c %s "$MNT/sc.qcow2")
	alloc=$(($(stat -c '%b * %B' "$MNT/sc.qcow2")))
	clusters=$(qemu-img check "$MNT/sc.qcow2" 2>&1 | sed -n 's/ = .*allocated.*//p' || true)
	h add "$RES" id=6c section=6 figure="QCOW2 overlay on the same vdifs volume, same $SC_COUNT writes (qemu-io): on-disk per replica" \
		unit=MiB samples="$(fdiv "$(h jget per_replica_max <<<"$dq")" $MIB)" \
		note="overlay file size $(mib "$size"), allocated (st_blocks) $(mib "$alloc"), clusters allocated ${clusters:-?} (64 KiB); its chunk files on all servers $(mib "$(h jget total <<<"$dq")"); per replica $(awk -v a="$(h jget per_replica_max <<<"$dq")" -v b="$pr" 'BEGIN { printf "%.1f", a / b }')x the native clone's, $(awk -v a="$(h jget per_replica_max <<<"$dq")" 'BEGIN { printf "%.1f", a / 16777216 }')x the 16 MiB written."
	rm -f "$MNT/sc.qcow2"
	drain "$n0"
}

# 5: cold reads of a clone vs its base.
fio_r() { # FILE seq|rand -> MB/s or IOPS
	local a=(--name=r --filename="$1" --size="$BASE_BYTES" --readonly --output-format=json --output="$WORK/fio.json")
	drop
	if [ "$2" = seq ]; then
		fio "${a[@]}" --rw=read --bs=1M --ioengine=psync >/dev/null
		h fio "$WORK/fio.json" read $((BASE_BYTES / MIB))
	else
		fio "${a[@]}" --rw=randread --bs=4k --number_ios="$NRIOS" --randrepeat=1 --randseed=99 \
			--ioengine=libaio --iodepth=16 --direct=1 >/dev/null
		h fio "$WORK/fio.json" randread "$NRIOS"
	fi
}
sec_reads() {
	local files names r i k f kind
	"$BIN/vdifs-clone" "$BASE" "$MNT/rd-fresh.img"
	if [ ! -f "$MNT/sc.img" ]; then
		"$BIN/vdifs-clone" "$BASE" "$MNT/sc.img"
		h scatter "$MNT/sc.img" "$BASE_BYTES" "$SC_COUNT" 77
	fi
	files=("$BASE" "$MNT/rd-fresh.img" "$MNT/sc.img")
	names=(base fresh written)
	declare -A v=()
	for r in $(seq 1 "$REPEATS"); do
		for i in 0 1 2; do
			k=$(((i + r) % 3)) # rotate the order from repeat to repeat
			for kind in seq rand; do
				v[${names[k]}.$kind]+="$(fio_r "${files[k]}" $kind) "
			done
		done
		log "5 repeat $r done"
	done
	h add "$RES" id=5a section=5 figure="cold random 4 KiB reads (libaio qd16 direct): fresh clone / its base" unit=IOPS \
		samples="${v[fresh.rand]}" base="${v[base.rand]}" alabel=clone blabel=base op='>=' target=0.9 \
		note="5a–5d: $REPEATS repeats, order of the three files rotated; caches dropped before every run; random reads: $NRIOS reads, --randseed=99 (same offsets in every file); sequential: the whole $((BASE_BYTES / MIB)) MiB, psync, buffered. 'written clone' = the clone of 6a ($SC_COUNT scattered 4 KiB writes, a delta in every chunk)."
	h add "$RES" id=5b section=5 figure="cold random 4 KiB reads (libaio qd16 direct): written clone / its base" unit=IOPS \
		samples="${v[written.rand]}" base="${v[base.rand]}" alabel=clone blabel=base op='>=' target=0.9
	h add "$RES" id=5c section=5 figure="cold sequential 1 MiB reads: fresh clone / its base" unit=MB/s \
		samples="${v[fresh.seq]}" base="${v[base.seq]}" alabel=clone blabel=base op='>=' target=0.9
	h add "$RES" id=5d section=5 figure="cold sequential 1 MiB reads: written clone / its base" unit=MB/s \
		samples="${v[written.seq]}" base="${v[base.seq]}" alabel=clone blabel=base op='>=' target=0.9
	rm -f "$MNT/rd-fresh.img"
}

# 7: qemu-img bench, QCOW2 overlay vs native clone, fresh ones each repeat.
qbench() { # FORMAT FILE -> IOPS
	local out secs
	sync
	out=$(qemu-img bench -w -t none -n -c "$BENCH_C" -d 16 -s 4096 -S "$BENCH_S" -f "$1" "$2" 2>&1)
	secs=$(sed -n 's/^Run completed in \([0-9.]*\) seconds\./\1/p' <<<"$out")
	[ -n "$secs" ] || { echo "qemu-img bench -f $1: $out" >&2; return 1; }
	fdiv "$BENCH_C" "$secs"
}
sec_qbench() {
	local r nat=() q=() a b n0
	for r in $(seq 1 "$REPEATS"); do
		n0=$(chk_count)
		"$BIN/vdifs-clone" "$BASE" "$MNT/qb.img"
		qemu-img create -q -f qcow2 -b "$BASE" -F raw "$MNT/qb.qcow2"
		if [ $((r % 2)) = 1 ]; then
			a=$(qbench raw "$MNT/qb.img"); b=$(qbench qcow2 "$MNT/qb.qcow2")
		else
			b=$(qbench qcow2 "$MNT/qb.qcow2"); a=$(qbench raw "$MNT/qb.img")
		fi
		nat+=("$a") q+=("$b")
		log "7 repeat $r: native clone $a IOPS, qcow2 overlay $b IOPS"
		rm -f "$MNT/qb.img" "$MNT/qb.qcow2"
		drain "$n0"
	done
	h add "$RES" id=7a section=7 figure="\`qemu-img bench\` first writes: native clone (raw) / QCOW2 overlay over the same base" unit=IOPS \
		samples="${nat[*]}" base="${q[*]}" alabel=clone blabel=qcow2 op='>=' target=1.5 \
		note="qemu-img bench -w -t none -n -c $BENCH_C -d 16 -s 4096 -S $BENCH_S (each request in its own 64 KiB QCOW2 cluster), a fresh clone and a fresh overlay every repeat, order alternated." invnote="QCOW2 first writes / raw (1 / ratio, peer figure 0.09):"
}

section 1 sec_latency
section 3 sec_many
section 4 sec_cow
section 6 sec_space
section 5 sec_reads
section 7 sec_qbench

END=$(date +%s)
RT="$(((END - START) / 60)) min $(((END - START) % 60)) s"
mkdir -p "$REPO/bench/results"
OUT="$REPO/bench/results/clones-$STAMP"
MODE=full
[ "$QUICK" = 1 ] && OUT+=-quick MODE="QUICK=1 (smoke run, small sizes)"
[ "$FULL" = 1 ] && MODE+=", FULL=1 (16 GiB image written in full)"
h report "$RES" "$OUT.md" "$OUT.json" \
	date="$STAMP" mode="$MODE" \
	config="Cluster: 1 MDS + 3 data servers + FUSE mount on this machine, replica count $REPL, 64 MiB chunks, extent 4 KiB (defaults). Base image $((BASE_BYTES / MIB)) MiB of random data (written at $BASE_MBS MB/s). REPEATS=$REPEATS, NCLONES=$NCLONES, NIDLE=$NIDLE, NFREEZE=$NFREEZE. Every ratio is against a baseline measured in this run." \
	host="load average $LOAD0 at the start, $(load) at the end; $(nproc) CPUs, $(($(awk '/MemTotal/ { print $2 }' /proc/meminfo) / 1024 / 1024)) GiB RAM, Linux $(uname -r), disk $(df --output=source "$WORK" | tail -n 1)" \
	build="$BUILD_ID" runtime="$RT"
log "results: ${OUT#$REPO/}.md and .json (runtime $RT)"
