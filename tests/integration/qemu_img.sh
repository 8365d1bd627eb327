#!/bin/bash
# qemu-img convert of a small qcow2 into a raw image on the mount, compared
# with the source; once with the page cache and once with -t none (O_DIRECT).
. "$(dirname "$0")/lib.sh"
start_cluster
log "make a qcow2 with data"
qemu-img create -q -f raw "$WORK/src.raw" 256M
dd if=/dev/urandom of="$WORK/src.raw" bs=1M count=16 seek=3 conv=notrunc status=none
dd if=/dev/urandom of="$WORK/src.raw" bs=64K count=7 seek=2000 conv=notrunc status=none
qemu-img convert -q -O qcow2 "$WORK/src.raw" "$WORK/src.qcow2"
log "convert to raw on the mount"
qemu-img convert -q -O raw "$WORK/src.qcow2" "$MNT/disk.raw"
qemu-img compare -q "$WORK/src.qcow2" "$MNT/disk.raw" || fail "qemu-img compare (cached)"
log "convert with -t none (O_DIRECT)"
qemu-img convert -q -t none -T none -O raw "$WORK/src.qcow2" "$MNT/disk2.raw"
qemu-img compare -q -T none "$WORK/src.qcow2" "$MNT/disk2.raw" || fail "qemu-img compare (direct)"
cmp "$MNT/disk.raw" "$WORK/src.raw" || fail "raw bytes differ"
log "ok"
