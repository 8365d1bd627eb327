# Shared helpers for the integration tests: each test starts its own cluster
# (own ports, own temp dir), mounts it with FUSE, and cleans up on any exit:
# unmount, stop the processes it started by their pids, remove the temp dir.
# Sourced by the test scripts; BUILD is the meson build directory.
set -euo pipefail

: "${BUILD:?BUILD must point at the meson build directory}"
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/scripts/free_port.sh"
export PATH="$BUILD/tools:$BUILD/mds:$BUILD/dataserver:$BUILD/client:$PATH"
TEST_NAME=$(basename "$0" .sh)
WORK=$(mktemp -d "/tmp/vdifs-$TEST_NAME.XXXXXX")
chmod 0755 "$WORK" # tests also act as an unprivileged user inside the mount
C="$WORK/cluster"
MNT="$C/mnt"
EXTRA_MOUNTS=()
EXTRA_PIDS=()
EXTRA_CLEANUP=() # commands run at exit after the processes are stopped (e.g. "ip netns del NS")

log() { printf '[%s] %s\n' "$TEST_NAME" "$*"; }
fail() { printf '[%s] FAIL: %s\n' "$TEST_NAME" "$*" >&2; exit 1; }

cleanup() {
	local rc=$?
	set +e
	for m in "${EXTRA_MOUNTS[@]}"; do
		mountpoint -q "$m" && fusermount3 -u "$m" 2>/dev/null || fusermount3 -u -z "$m" 2>/dev/null
	done
	for p in "${EXTRA_PIDS[@]}"; do kill "$p" 2>/dev/null; done
	if [ -f "$C/cluster.conf" ]; then
		vdifs-cluster stop "$C" >/dev/null 2>&1
	fi
	for p in "${EXTRA_PIDS[@]}"; do
		for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$p" 2>/dev/null
	done
	for cmd in "${EXTRA_CLEANUP[@]}"; do eval "$cmd" >/dev/null 2>&1; done
	# Under sanitizers a server's report fails the test even if it went unseen.
	if [ "${VDIFS_SANITIZE:-0}" = 1 ] && [ -d "$C/logs" ] &&
		grep -l -E "ERROR: (Address|Leak)Sanitizer|runtime error:" "$C"/logs/*.log "$WORK"/*.log 2>/dev/null; then
		echo "[$TEST_NAME] FAIL: sanitizer report in the server logs" >&2
		[ $rc -eq 0 ] && rc=1
	fi
	if [ $rc -ne 0 ] && [ -d "$C/logs" ]; then
		for f in "$C"/logs/*.log; do
			echo "--- tail of $f ---" >&2
			tail -n 30 "$f" >&2
		done
	fi
	rm -rf "$WORK"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cd "$WORK" # tools that drop files in the current directory keep them here


# start_cluster [vdifs-cluster start options...]
start_cluster() {
	PORT=$(free_port_base) || fail "no free ports"
	vdifs-cluster start "$C" --port "$PORT" "$@" || fail "cluster did not start"
	mountpoint -q "$MNT" || fail "$MNT is not mounted"
	MDS="127.0.0.1:$PORT"
	KEY="$C/cluster.key"
}

# mount_again DIR: a second, independent mount of the same volume.
mount_again() {
	local dir=$1
	mkdir -p "$dir"
	local vol
	vol=$(sed -n 's/^volume = //p' "$C/cluster.conf")
	vdifs-mount -f -o keyfile="$KEY" "$MDS/$vol" "$dir" >"$WORK/$(basename "$dir").log" 2>&1 &
	EXTRA_PIDS+=($!)
	EXTRA_MOUNTS+=("$dir")
	for _ in $(seq 1 200); do
		mountpoint -q "$dir" && return 0
		sleep 0.05
	done
	cat "$WORK/$(basename "$dir").log" >&2
	fail "second mount at $dir did not come up"
}

pid_of() { cat "$C/run/$1.pid"; }

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }

# Chunks the MDS counts, and chunk files on this cluster's data servers.
chunks() { vdifs-admin -C "$C" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["chunks"])'; }
chk_files() { find "$C"/ds[0-9]* -name '*.chk' | wc -l; }

# stat_sum KEY: the sum of one counter over every data server's ds.stats
# (written at most once a second: wait that long after the work).
stat_sum() {
	local total=0 v f
	for f in "$C"/ds[0-9]*/ds.stats; do
		v=$(awk -v k="$1" '$1 == k { print $2 }' "$f")
		total=$((total + ${v:-0}))
	done
	echo "$total"
}

# After deleting everything: the deletion queues empty the data servers
# (within a minute) and the MDS counts no chunk.
expect_empty_servers() {
	local left
	for _ in $(seq 1 120); do
		left=$(chk_files)
		[ "$left" = 0 ] && break
		sleep 0.5
	done
	[ "$left" = 0 ] || fail "$left chunk files left on the data servers"
	[ "$(chunks)" = 0 ] || fail "the MDS still counts $(chunks) chunks"
}
