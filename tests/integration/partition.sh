#!/bin/bash
# Network partition: ds3 runs in its own network namespace, joined to the
# host by a veth pair; every server listens on the veth's addresses.  While
# fio writes with --verify=crc32c, the link is taken down: ds3 is cut off
# (no RST, packets vanish).  fio goes on after a stall and its verify pass
# is right; the MDS marks ds3 down and re-replicates its chunks.  The link
# comes back: ds3 registers again, deletes its stale copies, and every chunk
# is at 2 replicas; the file still reads right.
. "$(dirname "$0")/lib.sh"
command -v ip >/dev/null || fail "ip (iproute2) is missing"
NS="vdifs-pt-$$"
VH="vpth$$"
VN="vptn$$"
NET="10.$((RANDOM % 200 + 20)).$((RANDOM % 250))"
EXTRA_CLEANUP+=("ip netns del $NS" "ip link del $VH")
ip netns add "$NS" || fail "cannot create network namespace $NS"
ip link add "$VH" type veth peer name "$VN" || fail "cannot create veth pair"
ip link set "$VN" netns "$NS"
ip addr add "$NET.1/24" dev "$VH"
ip link set "$VH" up
ip netns exec "$NS" ip addr add "$NET.2/24" dev "$VN"
ip netns exec "$NS" ip link set "$VN" up
ip netns exec "$NS" ip link set lo up

start_cluster --host "$NET.1" --ds 2
D3="$C/ds3ns"
mkdir -p "$D3"
ip netns exec "$NS" vdifs-ds --listen "$NET.2:$((PORT + 3))" --mds "$NET.1:$PORT" --data-dir "$D3" \
	--key-file "$KEY" --log-file "$C/logs/ds3ns.log" &
EXTRA_PIDS+=($!)
status() { vdifs-admin -C "$C" status --json | python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
for _ in $(seq 1 100); do
	[ "$(status ds_up)" = 3 ] && break
	sleep 0.1
done
[ "$(status ds_up)" = 3 ] || fail "ds3 in the namespace did not come up"
SIZE=512M # 400 writes a second: 5 s of writing
log "fio writes $SIZE (400 writes a second: the cut lands mid-way); the link to ds3 goes down a second in"
fio --name=pt --filename="$MNT/f.dat" --size="$SIZE" --rw=randwrite --bs=256k --ioengine=psync --rate_iops=400 \
	--verify=crc32c --verify_fatal=1 --do_verify=1 --verify_state_save=0 --output-format=json \
	--output="$WORK/fio.json" >"$WORK/fio.log" 2>&1 &
FIO=$!
EXTRA_PIDS+=($FIO)
sleep 1
ip link set "$VH" down
rc=0
wait $FIO || rc=$?
[ $rc -eq 0 ] || { cat "$WORK/fio.log" "$WORK/fio.json" >&2; fail "fio failed ($rc) across the partition"; }
python3 - "$WORK/fio.json" <<'PY' || fail "fio reported errors"
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
assert j["error"] == 0, "fio error %d" % j["error"]
print("[partition] wrote %d MiB; longest write %.2f s (the stall)" % (j["write"]["io_bytes"] >> 20,
      j["write"]["clat_ns"]["max"] / 1e9))
PY
[ "$(status ds_up)" = 2 ] || fail "the MDS still counts ds3 up"
# Cut off from the MDS, ds3 stopped serving on its own (its lease ran out)
# and closed its connections, so nothing queued before the cut is served
# when the link comes back.
grep -q "not serving until it answers again" "$C/logs/ds3ns.log" || fail "ds3 did not fence itself"
grep -q "closing .* connection" "$C/logs/ds3ns.log" || fail "ds3 kept its connections open while fenced"
timeout 180 vdifs-admin -C "$C" status --wait >/dev/null || fail "re-replication without ds3 did not finish"
log "ds3 cut off: every chunk back at 2 replicas ($(status recovered) copies)"
reports() { grep -c "reported .* to the MDS" "$C/logs/ds3ns.log" || true; }
before=$(reports)
ip link set "$VH" up
for _ in $(seq 1 300); do
	[ "$(reports)" -gt "$before" ] && break
	sleep 0.1
done
[ "$(reports)" -gt "$before" ] || fail "ds3 did not register again after the link came back"
line=$(grep "reported .* to the MDS" "$C/logs/ds3ns.log" | tail -1)
log "link back, ds3: ${line#*: }"
for _ in $(seq 1 100); do
	[ "$(status ds_up)" = 3 ] && break
	sleep 0.1
done
[ "$(status ds_up)" = 3 ] || fail "ds3 is not up after the link came back"
timeout 180 vdifs-admin -C "$C" status --wait >/dev/null || fail "chunks short of replicas after the rejoin"
drop_caches
fio --name=pt --filename="$MNT/f.dat" --size="$SIZE" --rw=randwrite --bs=256k --ioengine=psync \
	--verify=crc32c --verify_fatal=1 --verify_only=1 --verify_state_save=0 >"$WORK/verify.log" 2>&1 ||
	{ cat "$WORK/verify.log" >&2; fail "data differs after the partition healed"; }
vdifs-admin -C "$C" fsck >"$WORK/fsck.out" || { cat "$WORK/fsck.out" >&2; fail "fsck after the failures"; }
log "fsck: the MDS and the data servers agree"
log "ok"
