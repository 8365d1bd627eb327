#!/bin/bash
# kill -9 of the MDS in the middle of a metadata workload: after a restart,
# every operation the workload saw complete is there (checked on a fresh mount).
. "$(dirname "$0")/lib.sh"
start_cluster
DONE="$WORK/done.log"
STOP="$WORK/stop"
: >"$DONE"
workload() {
	local i=0
	while [ ! -e "$STOP" ]; do
		i=$((i + 1))
		mkdir "$MNT/d$i" 2>/dev/null && echo "mkdir $i" >>"$DONE" || continue
		echo "content $i" >"$MNT/d$i/f" 2>/dev/null && echo "write $i" >>"$DONE" || continue
		mv "$MNT/d$i/f" "$MNT/d$i/g" 2>/dev/null && echo "rename $i" >>"$DONE" || continue
		ln -s g "$MNT/d$i/s" 2>/dev/null && echo "symlink $i" >>"$DONE" || continue
		setfattr -n user.i -v "$i" "$MNT/d$i/g" 2>/dev/null && echo "xattr $i" >>"$DONE" || continue
	done
}
workload &
WL=$!
EXTRA_PIDS+=($WL)
sleep 3
log "kill -9 the MDS after $(wc -l <"$DONE") operations"
kill -9 "$(pid_of mds)"
sleep 1
vdifs-cluster start "$C" >/dev/null || fail "MDS restart"
sleep 3
touch "$STOP"
wait $WL || true
n=$(wc -l <"$DONE")
log "$n operations completed; checking them on a fresh mount"
mount_again "$WORK/m2"
M2="$WORK/m2"
while read -r op i; do
	case $op in
	mkdir) [ -d "$M2/d$i" ] || fail "lost mkdir d$i" ;;
	write) [ -f "$M2/d$i/f" ] || [ -f "$M2/d$i/g" ] || fail "lost file d$i/f" ;;
	rename)
		[ -f "$M2/d$i/g" ] && [ ! -e "$M2/d$i/f" ] || fail "lost rename in d$i"
		[ "$(cat "$M2/d$i/g")" = "content $i" ] || fail "content of d$i/g" ;;
	symlink) [ "$(readlink "$M2/d$i/s")" = g ] || fail "lost symlink d$i/s" ;;
	xattr) [ "$(getfattr --absolute-names --only-values -n user.i "$M2/d$i/g")" = "$i" ] || fail "lost xattr on d$i/g" ;;
	esac
done <"$DONE"
# The first mount carries on after the restart as well.
echo after >"$MNT/after-restart" && [ "$(cat "$M2/after-restart")" = after ] || fail "first mount after restart"
log "ok ($n operations checked)"
