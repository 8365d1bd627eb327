# shellcheck shell=bash
# Helpers shared by the bench/systems/*.sh scripts (sourced, not run).

# Succeeds if $1 is a mountpoint.
is_mounted() { mountpoint -q "$1" 2>/dev/null; }

# Unmounts the FUSE mount at $1 if there is one (lazily as a last resort).
unmount_fuse() {
	is_mounted "$1" || return 0
	fusermount3 -u "$1" 2>/dev/null || umount "$1" 2>/dev/null || umount -l "$1" 2>/dev/null || true
}

# Prints the pids listed in file $1 (one a line) that are still running one
# of the programs named after it (by /proc/PID/comm): only our own, never a
# process that took over a recycled pid.
own_pids() {
	local file=$1 pid comm want
	shift
	[ -f "$file" ] || return 0
	while read -r pid; do
		[[ "$pid" =~ ^[0-9]+$ ]] || continue
		comm=$(cat /proc/"$pid"/comm 2>/dev/null) || continue
		for want in "$@"; do
			[ "$comm" = "$want" ] && { echo "$pid"; break; }
		done
	done < "$file"
}

# Sends SIGTERM to every pid given, waits up to 30 s for all of them to
# exit, then SIGKILLs what is left.
stop_pids() {
	local pid i left
	[ $# -gt 0 ] || return 0
	kill -TERM "$@" 2>/dev/null || true
	for ((i = 0; i < 300; i++)); do
		left=0
		for pid in "$@"; do
			kill -0 "$pid" 2>/dev/null && left=1
		done
		[ "$left" = 0 ] && return 0
		sleep 0.1
	done
	kill -KILL "$@" 2>/dev/null || true
	sleep 0.2
}
