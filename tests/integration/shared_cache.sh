#!/bin/bash
# The mount's shared block cache (-o shared_cache): clones of one image read
# together fetch the image from the data servers once, and every file still
# reads its own content: a clone its own writes, the source its writes made
# after the clones, a snapshot what it froze.
. "$(dirname "$0")/lib.sh"
start_cluster --chunk-size 4M # a clone's write makes one chunk its own; the rest stays shared
SIZE_MB=64
N=4
log "a ${SIZE_MB} MiB image and $N clones of it"
dd if=/dev/urandom of="$WORK/base" bs=1M count=$SIZE_MB status=none
cp "$WORK/base" "$MNT/base.img"
for i in $(seq 1 $N); do
	vdifs-clone "$MNT/base.img" "$MNT/c$i.img" || fail "vdifs-clone c$i"
	cp "$WORK/base" "$WORK/c$i"
done
log "each clone gets its own writes; the source too, after the clones"
for i in $(seq 1 $N); do
	dd if=/dev/urandom of="$WORK/w$i" bs=4k count=3 status=none
	seek=$((i * 1000 + 7))
	dd if="$WORK/w$i" of="$MNT/c$i.img" bs=4k seek=$seek conv=notrunc,fsync status=none
	dd if="$WORK/w$i" of="$WORK/c$i" bs=4k seek=$seek conv=notrunc status=none
done
vdifs-snap create "$MNT/base.img" before || fail "vdifs-snap create"
cp "$WORK/base" "$WORK/snap"
dd if=/dev/urandom of="$WORK/wb" bs=64k count=4 status=none
dd if="$WORK/wb" of="$MNT/base.img" bs=64k seek=5 conv=notrunc,fsync status=none
dd if="$WORK/wb" of="$WORK/base" bs=64k seek=5 conv=notrunc status=none

log "read every clone at once, cold"
drop_caches
sleep 1.2 # ds.stats is written once a second
before=$(stat_sum read_bytes)
pids=()
for i in $(seq 1 $N); do
	cmp "$MNT/c$i.img" "$WORK/c$i" >"$WORK/cmp$i" 2>&1 &
	pids+=($!)
done
for i in $(seq 1 $N); do
	wait "${pids[i - 1]}" || fail "clone c$i reads wrong: $(cat "$WORK/cmp$i")"
done
sleep 1.2
read_mb=$((($(stat_sum read_bytes) - before) >> 20))
log "the data servers sent $read_mb MiB for $N clones of $SIZE_MB MiB"
# Once, plus what the first reader of each chunk reads before a second one
# comes (a chunk counts as shared from its second reader on), and the
# chunk each clone made its own: well under twice the image (4 times
# without the cache).
[ "$read_mb" -lt $((SIZE_MB * 2)) ] || fail "$read_mb MiB read from the data servers: the clones did not share the image's blocks"

log "source, snapshot and clones after the cache is warm"
cmp "$MNT/base.img" "$WORK/base" || fail "the source reads wrong (its writes after the clones)"
cmp "$MNT/.snap/base.img@before" "$WORK/snap" || fail "the snapshot reads wrong"
for i in $(seq 1 $N); do
	cmp "$MNT/c$i.img" "$WORK/c$i" || fail "clone c$i reads wrong the second time"
done

log "a clone written over a cached block reads its own bytes"
dd if=/dev/urandom of="$WORK/w" bs=1M count=2 status=none
dd if="$WORK/w" of="$MNT/c1.img" bs=1M seek=3 conv=notrunc,fsync status=none
dd if="$WORK/w" of="$WORK/c1" bs=1M seek=3 conv=notrunc status=none
drop_caches
cmp "$MNT/c1.img" "$WORK/c1" || fail "c1 reads cached bytes of its source over its own writes"
cmp "$MNT/c2.img" "$WORK/c2" || fail "c2 changed with c1's writes"
log "ok"
