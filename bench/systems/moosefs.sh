#!/bin/bash
# A MooseFS 3.0 cluster (Debian's moosefs-master, moosefs-chunkserver,
# moosefs-client; bench/deps.sh installs them) as a peer system of the
# benchmark suite: one master, two chunkservers, goal 2, trash time 0,
# mounted with mfsmount at DIR/mnt.  Everything it keeps is under DIR; it
# reads nothing from /etc/mfs or /var/lib/mfs.
#
#   bench/systems/moosefs.sh start DIR        start it, mounted at DIR/mnt;
#                                             DIR/pids: master, chunkserver 1,
#                                             chunkserver 2, mfsmount
#   bench/systems/moosefs.sh stop DIR         unmount, stop those pids, delete
#                                             the namespace (idempotent, quiet)
#   bench/systems/moosefs.sh snapshot SRC DST mfsmakesnapshot of SRC at DST
#                                             (both inside a mount made here)
#
# Network: MooseFS chunkservers will not register with a master on
# 127.0.0.0/8, so the master and the chunkservers run in a network namespace
# made for this DIR, vdb-<first 8 hex digits of sha1(DIR)>, whose only
# interface is its loopback holding 127.0.0.1 and 10.H1.H2.1/32 (H1, H2: the
# next two bytes of that hash).  Nothing is routed out of it and the host's
# own interfaces are untouched; several clusters (different DIRs) can run at
# once.  Inside it the ports are MooseFS's defaults: master 9419 (metaloggers,
# unused), 9420 (chunkservers), 9421 (clients); chunkserver 1 listens on 9422,
# chunkserver 2 on 9423.  mfsmount and the mfs* tools run in that namespace
# too (nsenter --net): the client has to reach 10.H1.H2.1, and the tools talk
# to mfsmount's local proxy, which listens on 127.0.0.1 of the namespace.  The
# namespace leaves the mount namespace alone, so the FUSE mount is seen at
# DIR/mnt from the host as usual.
#
# Settings (the rest is MooseFS's defaults):
#   goal 2 on the root (two copies of every chunk, one per chunkserver), so a
#     write goes to both chunkservers, as vdifs with two replicas does;
#   trash time 0 on the root, so a deleted bench file frees its space at once;
#   NICE_LEVEL 0 for master and chunkservers and mfsnice=0 for mfsmount
#     (MooseFS defaults to -19): every system in the suite runs at the same
#     priority as fio on this shared two-core machine;
#   DISABLE_OOM_KILLER 0 and WORKING_USER root (no "mfs" user is needed);
#   the master's chunk loop at its shortest (CHUNKS_LOOP_MIN_TIME 60, not
#     300) and up to 1000/2000 deletions per chunkserver a step (not 10/25),
#     so that chunks of deleted files go soon after MooseFS lets them go;
#   SESSION_SUSTAIN_TIME 60 (not a day): a gone client's files are let go
#     after a minute.  Note: mfsmount 3.0.117 keeps every file it created
#     open in the master's view even after close and unlink (mfscli -SOF
#     lists them as SUSTAINED) until its session ends, so during a run the
#     chunks of deleted files stay on disk (twice their size: goal 2); stop
#     and remove DIR to get the space back;
#   mfsmount's caches (mfscachemode=AUTO, 256 MiB write cache, read-ahead,
#     attribute cache 1 s) are left at their defaults.
# Each chunkserver stores its chunks in DIR/csN/hdd on the local disk (2 x the
# data written: goal 2); HDD_LEAVE_SPACE_DEFAULT (256 MiB) stays free.
set -euo pipefail

usage() {
	echo "usage: $0 start DIR | stop DIR | snapshot SRC DST" >&2
	exit 2
}

need() {
	command -v "$1" >/dev/null || { echo "$0: $1 not found (run bench/deps.sh)" >&2; exit 1; }
}

# Names derived from DIR: NS (namespace), ADDR (master's address in it).
derive() {
	DIR=$(realpath -m "$1")
	local h
	h=$(printf '%s' "$DIR" | sha1sum | cut -c1-12)
	NS=vdb-${h:0:8}
	ADDR=10.$((16#${h:8:2})).$((16#${h:10:2})).1
	NSEXEC=(nsenter --net=/run/netns/"$NS")
}

# shellcheck source=bench/systems/lib.sh
. "$(dirname "$0")/lib.sh"

write_configs() {
	local e=$DIR/etc
	mkdir -p "$e" "$DIR/master" "$DIR/log" "$DIR/mnt"
	cat > "$e/mfsmaster.cfg" <<-EOF
		WORKING_USER = root
		WORKING_GROUP = root
		SYSLOG_IDENT = mfsmaster-$NS
		NICE_LEVEL = 0
		DISABLE_OOM_KILLER = 0
		DATA_PATH = $DIR/master
		EXPORTS_FILENAME = $e/mfsexports.cfg
		TOPOLOGY_FILENAME = $e/mfstopology.cfg
		MATOML_LISTEN_HOST = $ADDR
		MATOML_LISTEN_PORT = 9419
		MATOCS_LISTEN_HOST = $ADDR
		MATOCS_LISTEN_PORT = 9420
		MATOCL_LISTEN_HOST = $ADDR
		MATOCL_LISTEN_PORT = 9421
		CHUNKS_LOOP_MIN_TIME = 60
		SESSION_SUSTAIN_TIME = 60
		CHUNKS_SOFT_DEL_LIMIT = 1000
		CHUNKS_HARD_DEL_LIMIT = 2000
	EOF
	echo "*	/	rw,alldirs,admin,maproot=0:0" > "$e/mfsexports.cfg"
	: > "$e/mfstopology.cfg"
	: > "$e/mfsmount.cfg"
	local n
	for n in 1 2; do
		mkdir -p "$DIR/cs$n/data" "$DIR/cs$n/hdd"
		echo "$DIR/cs$n/hdd" > "$e/mfshdd$n.cfg"
		cat > "$e/mfschunkserver$n.cfg" <<-EOF
			WORKING_USER = root
			WORKING_GROUP = root
			SYSLOG_IDENT = mfschunkserver$n-$NS
			NICE_LEVEL = 0
			DISABLE_OOM_KILLER = 0
			DATA_PATH = $DIR/cs$n/data
			HDD_CONF_FILENAME = $e/mfshdd$n.cfg
			BIND_HOST = $ADDR
			MASTER_HOST = $ADDR
			MASTER_PORT = 9420
			CSSERV_LISTEN_HOST = $ADDR
			CSSERV_LISTEN_PORT = $((9421 + n))
		EOF
	done
	# A new master starts from empty metadata (what mfsmaster -a would
	# otherwise restore is kept from an earlier run of the same DIR).
	if [ ! -e "$DIR/master/metadata.mfs" ] && [ ! -e "$DIR/master/metadata.mfs.back" ]; then
		cp /var/lib/mfs/metadata.mfs.empty "$DIR/master/metadata.mfs"
	fi
}

# Runs "$@" in the namespace in the foreground of a new session, logging to
# DIR/log/NAME.log; prints its pid (setsid and nsenter exec, so the pid is
# the daemon's own) once it runs the program, or nothing if it died first.
spawn() {
	local name=$1 pid i comm
	shift
	setsid "${NSEXEC[@]}" "$@" > "$DIR/log/$name.log" 2>&1 < /dev/null &
	pid=$!
	for ((i = 0; i < 100; i++)); do
		comm=$(cat /proc/"$pid"/comm 2>/dev/null) || return 0
		[ "$comm" = "$1" ] && { echo "$pid"; return 0; }
		sleep 0.05
	done
	kill -KILL "$pid" 2>/dev/null || true  # stuck before exec: not ours to keep
}

# Succeeds once pid $1 is alive and runs program $2.
alive_as() {
	[ "$(cat /proc/"$1"/comm 2>/dev/null)" = "$2" ]
}

fail() {
	echo "$0: $*" >&2
	local f
	for f in "$DIR"/log/*.log; do
		[ -s "$f" ] && { echo "--- $f (last lines)" >&2; tail -n 5 "$f" >&2; }
	done
	stop
	exit 1
}

# Both chunkservers are registered once a new file written with goal 2 has
# its chunk on two of them.
wait_two_copies() {
	local probe=$DIR/mnt/.vdb-probe i out
	for ((i = 0; i < 120; i++)); do
		rm -f "$probe"
		if head -c 65536 /dev/zero > "$probe" 2>/dev/null && sync "$probe" 2>/dev/null; then
			out=$("${NSEXEC[@]}" mfscheckfile "$probe" 2>/dev/null || true)
			if grep -q "chunks with 2 copies: *1" <<< "$out"; then
				rm -f "$probe"
				return 0
			fi
		fi
		sleep 0.5
	done
	rm -f "$probe"
	return 1
}

start() {
	need mfsmaster; need mfschunkserver; need mfsmount; need nsenter; need ip
	if is_mounted "$DIR/mnt"; then
		echo "$0: $DIR/mnt is already mounted" >&2
		exit 1
	fi
	if ip netns list | grep -qw "^$NS"; then
		echo "$0: namespace $NS exists (stop $DIR first)" >&2
		exit 1
	fi
	mkdir -p "$DIR"
	rm -f "$DIR/pids"
	write_configs
	ip netns add "$NS"
	echo "$NS" > "$DIR/netns"
	ip -n "$NS" link set lo up
	ip -n "$NS" addr add "$ADDR/32" dev lo

	local m c1 c2 mnt n
	m=$(spawn master mfsmaster -f -a -c "$DIR/etc/mfsmaster.cfg")
	[ -n "$m" ] || fail "mfsmaster did not start"
	echo "$m" >> "$DIR/pids"
	# Wait for the client port before starting anyone who connects to it.
	for ((n = 0; n < 100; n++)); do
		alive_as "$m" mfsmaster || fail "mfsmaster exited"
		"${NSEXEC[@]}" bash -c "exec 3<>/dev/tcp/$ADDR/9421" 2>/dev/null && break
		sleep 0.1
	done
	((n < 100)) || fail "mfsmaster does not listen on $ADDR:9421"
	c1=$(spawn cs1 mfschunkserver -f -c "$DIR/etc/mfschunkserver1.cfg")
	[ -n "$c1" ] || fail "chunkserver 1 did not start"
	echo "$c1" >> "$DIR/pids"
	c2=$(spawn cs2 mfschunkserver -f -c "$DIR/etc/mfschunkserver2.cfg")
	[ -n "$c2" ] || fail "chunkserver 2 did not start"
	echo "$c2" >> "$DIR/pids"
	mnt=$(spawn mfsmount mfsmount "$DIR/mnt" -f -H "$ADDR" -P 9421 \
		-o "mfscfgfile=$DIR/etc/mfsmount.cfg,mfsnice=0")
	[ -n "$mnt" ] || fail "mfsmount did not start"
	echo "$mnt" >> "$DIR/pids"
	for ((n = 0; n < 200; n++)); do
		alive_as "$mnt" mfsmount || fail "mfsmount exited"
		is_mounted "$DIR/mnt" && break
		sleep 0.1
	done
	is_mounted "$DIR/mnt" || fail "$DIR/mnt did not become a mountpoint"
	alive_as "$c1" mfschunkserver || fail "chunkserver 1 exited"
	alive_as "$c2" mfschunkserver || fail "chunkserver 2 exited"

	"${NSEXEC[@]}" mfssetgoal -r 2 "$DIR/mnt" >/dev/null || fail "mfssetgoal failed"
	"${NSEXEC[@]}" mfssettrashtime -r 0 "$DIR/mnt" >/dev/null || fail "mfssettrashtime failed"
	wait_two_copies || fail "the chunkservers did not both register within 60 s"
}

stop() {
	unmount_fuse "$DIR/mnt"
	# The client and the chunkservers first, then the master (which saves
	# the metadata when it stops).
	# shellcheck disable=SC2046  # lists of pids
	stop_pids $(own_pids "$DIR/pids" mfsmount mfschunkserver)
	# shellcheck disable=SC2046
	stop_pids $(own_pids "$DIR/pids" mfsmaster)
	rm -f "$DIR/pids"
	unmount_fuse "$DIR/mnt"
	if ip netns list 2>/dev/null | grep -qw "^$NS"; then
		ip netns delete "$NS" 2>/dev/null || true
	fi
	rm -f "$DIR/netns"
}

snapshot() {
	local src dst mnt
	src=$(realpath -m "$1")
	dst=$(realpath -m "$2")
	mnt=$(findmnt -n -o TARGET -T "$(dirname "$src")" 2>/dev/null || true)
	if [ -z "$mnt" ] || [ ! -f "$(dirname "$mnt")/netns" ]; then
		echo "$0: $src is not inside a mount made by $0" >&2
		exit 1
	fi
	derive "$(dirname "$mnt")"
	"${NSEXEC[@]}" mfsmakesnapshot "$src" "$dst"
}

[ $# -ge 1 ] || usage
case $1 in
start)
	[ $# -eq 2 ] || usage
	derive "$2"
	start
	;;
stop)
	[ $# -eq 2 ] || usage
	derive "$2"
	stop
	;;
snapshot)
	[ $# -eq 3 ] || usage
	snapshot "$2" "$3"
	;;
*) usage ;;
esac
