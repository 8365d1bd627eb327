#!/bin/bash
# vdifs-admin and vdifs-cluster as a user and a script would use them:
# volumes, data servers, status, --json, --help, errors and exit codes.
. "$(dirname "$0")/lib.sh"
start_cluster --ds 3 --replicas 2
A=(vdifs-admin -C "$C")
log "volumes"
"${A[@]}" volume create images --replicas 3 --chunk-size 16M
"${A[@]}" volume list --json | python3 -c '
import json, sys
v = {x["name"]: x for x in json.load(sys.stdin)}
assert v["images"]["replicas"] == 3 and v["images"]["chunk_size"] == 16 << 20, v
assert v["vdi"]["replicas"] == 2 and v["vdi"]["chunk_size"] == 64 << 20, v
' || fail "volume list --json"
"${A[@]}" volume set images replicas 1
"${A[@]}" volume list --json | python3 -c '
import json, sys
assert {x["name"]: x for x in json.load(sys.stdin)}["images"]["replicas"] == 1' || fail "volume set"
[ -z "$("${A[@]}" volume create quiet)" ] || fail "volume create is not quiet on success"
set +e
out=$("${A[@]}" volume create images 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$out" | grep -q "^vdifs-admin: images: " || fail "duplicate volume: rc=$rc: $out"
out=$("${A[@]}" volume create 'bad/name' 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$out" | grep -q "bad/name" || fail "bad volume name: rc=$rc: $out"
out=$("${A[@]}" volume set images replicas 99 2>&1); rc=$?
[ $rc -eq 1 ] || fail "replicas 99 accepted: $out"
out=$("${A[@]}" volume frobnicate 2>&1); rc=$?
[ $rc -eq 2 ] || fail "bad usage exit code $rc"
out=$("${A[@]}" --mds 127.0.0.1:1 --key-file "$KEY" status 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$out" | grep -q "127.0.0.1:1" || fail "unreachable MDS: rc=$rc: $out"
out=$(vdifs-admin --mds "$MDS" --key-file /nonexistent status 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$out" | grep -q "/nonexistent" || fail "missing key file: rc=$rc: $out"
set -e
log "a volume with files is removed only with --force"
mkdir -p "$WORK/m-images"
vdifs-mount -o "keyfile=$KEY" "$MDS/images" "$WORK/m-images" || fail "mount images"
EXTRA_MOUNTS+=("$WORK/m-images")
dd if=/dev/urandom of="$WORK/m-images/f" bs=1M count=4 status=none
fusermount3 -u "$WORK/m-images"
set +e
out=$("${A[@]}" volume remove images 2>&1); rc=$?
set -e
[ $rc -eq 1 ] && echo "$out" | grep -q -i "not empty\|--force" || fail "remove of a non-empty volume: rc=$rc: $out"
"${A[@]}" volume remove images --force
"${A[@]}" volume remove quiet
[ "$("${A[@]}" volume list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 1 ] ||
	fail "volumes left after remove"
log "data servers and status"
"${A[@]}" ds list --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert len(d) == 3 and all(x["up"] for x in d), d' || fail "ds list --json"
"${A[@]}" status --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert s["ds_up"] == 3 and s["volumes"] == 1, s' || fail "status --json"
vdifs-cluster status "$C" --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert s["mounted"] and s["ds_up"] == 3 and all(x["pid"] > 0 for x in s["data_servers"]), s' ||
	fail "vdifs-cluster status --json"
log "a stopped data server shows as down and in the exit code of status"
kill "$(pid_of ds3)"
for _ in $(seq 1 100); do
	"${A[@]}" ds list --json | python3 -c 'import json,sys; sys.exit(0 if sum(not x["up"] for x in json.load(sys.stdin)) == 1 else 1)' && break
	sleep 0.2
done
"${A[@]}" ds list | grep -q DOWN || fail "ds list does not show the stopped server"
set +e
vdifs-cluster status "$C" >/dev/null; rc=$?
set -e
[ $rc -ne 0 ] || fail "vdifs-cluster status exits 0 with a server down"
vdifs-cluster start "$C" >/dev/null || fail "restart the stopped server"
for t in vdifs-admin vdifs-cluster vdifs-mds vdifs-ds; do
	"$t" --help >/dev/null || fail "$t --help"
done
log "ok"
