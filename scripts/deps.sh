#!/bin/bash
# Installs the Debian 12 packages vdifs needs to build, run and test, if any
# is missing.  Quiet when everything is there.  clang and libclang-rt-14-dev
# (its libFuzzer) are for the fuzz targets (scripts/fuzz.sh).
set -euo pipefail
PKGS=(
	meson ninja-build pkg-config gcc
	libfuse3-dev fuse3 libevent-dev libleveldb-dev libisal-dev libssl-dev libcmocka-dev
	fio qemu-utils attr python3 util-linux iproute2 procps
	clang libclang-rt-14-dev
)
missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "vdifs: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
