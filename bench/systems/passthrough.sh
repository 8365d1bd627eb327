#!/bin/bash
# The FUSE ceiling of the benchmark suite: vdifs-bench-passthrough mirroring a
# plain directory on the local disk.
#
#   bench/systems/passthrough.sh start DIR   DIR/backing (the local directory)
#                                            mounted through FUSE at DIR/mnt;
#                                            DIR/pids: the daemon's pid
#   bench/systems/passthrough.sh stop DIR    unmount and stop it (idempotent)
#
# BUILD (default ./build) locates BUILD/bench/passthrough/vdifs-bench-passthrough.
# PASSTHROUGH_OPTS adds options to it (e.g. "--writeback"; see its --help).
# Defaults: no writeback cache, 1 s attribute/name cache, 16 worker threads,
# 1 MiB requests, splice in both directions.
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
DIR=$(realpath -m "$2")
BUILD=${BUILD:-./build}
BIN=$BUILD/bench/passthrough/vdifs-bench-passthrough

# shellcheck source=bench/systems/lib.sh
. "$(dirname "$0")/lib.sh"

stop() {
	unmount_fuse "$DIR/mnt"
	# shellcheck disable=SC2046  # a list of pids
	stop_pids $(own_pids "$DIR/pids" vdifs-bench-pas)
	rm -f "$DIR/pids"
	unmount_fuse "$DIR/mnt"
}

start() {
	[ -x "$BIN" ] || { echo "$0: $BIN not found (build first, or set BUILD)" >&2; exit 1; }
	if is_mounted "$DIR/mnt"; then
		echo "$0: $DIR/mnt is already mounted" >&2
		exit 1
	fi
	mkdir -p "$DIR/backing" "$DIR/mnt"
	rm -f "$DIR/pids" "$DIR/passthrough.pid"
	# shellcheck disable=SC2086  # PASSTHROUGH_OPTS is a list of options
	if ! "$BIN" ${PASSTHROUGH_OPTS:-} --pidfile "$DIR/passthrough.pid" "$DIR/backing" "$DIR/mnt" \
		2> "$DIR/passthrough.err"; then
		echo "$0: vdifs-bench-passthrough failed:" >&2
		cat "$DIR/passthrough.err" >&2
		exit 1
	fi
	# The daemon returns once mounted and the pidfile is written.
	cat "$DIR/passthrough.pid" > "$DIR/pids"
	local i
	for ((i = 0; i < 100; i++)); do
		is_mounted "$DIR/mnt" && stat -f "$DIR/mnt" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "$0: $DIR/mnt did not become a mountpoint" >&2
	stop
	exit 1
}

case $cmd in
start) start ;;
stop) stop ;;
*) usage ;;
esac
