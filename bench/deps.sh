#!/bin/bash
# Installs the Debian 12 packages the benchmark suite needs beyond
# scripts/deps.sh, if any is missing.  Quiet when everything is there.
#   moosefs-*  : the MooseFS peer system (bench/systems/moosefs.sh); moosefs-cli
#                (mfscli) to look inside it, e.g. mfscli -H ADDR -SIN
#   fio        : the workloads (also in scripts/deps.sh; listed for a bench-only box)
#   iproute2, util-linux : ip netns / nsenter for the MooseFS namespace
#   linux-perf : bench/profile.sh
# The containers this runs in have no systemd; the packages' maintainer
# scripts would still try to start mfsmaster / mfschunkserver through
# invoke-rc.d.  A temporary /usr/sbin/policy-rc.d answering 101 ("action
# forbidden") stops that; it is removed again afterwards (an existing one is
# left as it was).
set -euo pipefail
PKGS=(moosefs-master moosefs-chunkserver moosefs-client moosefs-cli fio iproute2 util-linux fuse3 linux-perf)
missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "vdifs bench: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
policy=/usr/sbin/policy-rc.d
added_policy=0
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
	$SUDO chmod 755 "$policy"
	added_policy=1
fi
cleanup() { [ "$added_policy" = 1 ] && $SUDO rm -f "$policy"; return 0; }
trap cleanup EXIT
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
