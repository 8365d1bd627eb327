#!/bin/bash
# README's first command: install what is missing, build, start a local
# cluster (1 MDS + 3 data servers on loopback, volume "vdi" mounted at
# demo/mnt), write a desktop image with fio, read it back, snapshot it, clone
# 20 desktops from it, write into one, and show what each owns and shares.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
echo "== building"
scripts/build.sh build
DIR=${VDIFS_DEMO_DIR:-$PWD/demo}
echo "== starting a local cluster in $DIR"
build/tools/vdifs-cluster start "$DIR"
build/tools/vdifs-cluster status "$DIR"
MNT="$DIR/mnt"
echo "== writing a 1 GiB desktop image with fio (1 MiB blocks), then reading it back with verification"
fio --name=write --filename="$MNT/desktop01.img" --size=1G --rw=write --bs=1M --ioengine=psync \
	--verify=crc32c --do_verify=0 --end_fsync=1 --output-format=normal | grep -E "WRITE:"
sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
fio --name=verify --filename="$MNT/desktop01.img" --size=1G --rw=read --bs=1M --ioengine=psync \
	--verify=crc32c --verify_only --output-format=normal | grep -E "READ:|verify" || true
echo "== a golden image, a snapshot and 20 desktops cloned from it in an instant"
mv "$MNT/desktop01.img" "$MNT/golden.img"
build/tools/vdifs-snap create "$MNT/golden.img" v1
time build/tools/vdifs-clone "$MNT/golden.img" $(for i in $(seq -w 1 20); do echo "$MNT/desktop$i.img"; done)
fio --name=desk --filename="$MNT/desktop07.img" --size=1G --rw=randwrite --bs=4k --number_ios=2048 \
	--ioengine=psync --end_fsync=1 --output-format=normal | grep -E "WRITE:"
build/tools/vdifs-snap info "$MNT/desktop07.img" "$MNT/desktop08.img"
build/tools/vdifs-clone tree "$MNT/desktop07.img"
echo "== the volume"
ls -l "$MNT"
df -h "$MNT"
build/tools/vdifs-admin -C "$DIR" ds list
cat <<EOT

vdifs is mounted at $MNT: use it with ordinary tools (cp, qemu-img, fio ...).
  status: build/tools/vdifs-cluster status $DIR
  admin:  build/tools/vdifs-admin -C $DIR --help
  clones: build/tools/vdifs-clone --help, build/tools/vdifs-snap --help
  stop:   build/tools/vdifs-cluster stop $DIR
EOT
