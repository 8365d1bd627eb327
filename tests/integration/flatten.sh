#!/bin/bash
# `vdifs-clone tree` and `vdifs-clone flatten` on a real cluster: the tree
# names every file and snapshot of a family with the right parents; a
# flattened clone of a clone of a snapshot reads exactly as before (holes
# kept), has depth 1 and owns all its data, was copied by the data servers
# themselves (no client bytes sent) and survives deleting every ancestor; a
# chain driven to the depth limit fails with "depth limit reached" and
# flattening lets it go on; the tools' errors name the file and the cause.
. "$(dirname "$0")/lib.sh"
start_cluster

info_json() { vdifs-snap info --json "$1" | python3 -c "import json,sys; print(json.load(sys.stdin)[0]['$2'])"; }

log "a family: base (with a hole), snapshot, clone, snapshot of the clone, clone of that"
head -c $((96 << 20)) /dev/urandom >"$WORK/a"
dd if="$WORK/a" of="$MNT/base.img" bs=1M count=40 status=none
dd if="$WORK/a" of="$MNT/base.img" bs=1M skip=72 seek=72 count=24 conv=notrunc status=none
vdifs-snap create "$MNT/base.img" gold || fail "snapshot gold"
vdifs-clone "$MNT/base.img" "$MNT/d1.img" || fail "clone d1"
for off in 3 17 1000 9000 20000 23000; do
	dd if=/dev/urandom of="$MNT/d1.img" bs=4k count=2 seek=$off conv=notrunc status=none
done
vdifs-snap create "$MNT/d1.img" s1 || fail "snapshot s1"
vdifs-clone "$MNT/.snap/d1.img@s1" "$MNT/d2.img" || fail "clone of a snapshot"
dd if=/dev/urandom of="$MNT/d2.img" bs=1M count=1 seek=5 conv=notrunc status=none
dd if=/dev/urandom of="$MNT/d2.img" bs=1000 count=3 seek=77777 conv=notrunc status=none
sync "$MNT/d2.img"

log "tree"
vdifs-clone tree "$MNT/d2.img" >"$WORK/tree.txt" || fail "tree"
cat "$WORK/tree.txt"
grep -q "d2.img <==" "$WORK/tree.txt" || fail "tree does not mark the file"
vdifs-clone tree --json "$MNT/d2.img" >"$WORK/tree.json" || fail "tree --json"
python3 - "$WORK/tree.json" <<'EOF' || fail "tree --json is wrong"
import json, sys
t = json.load(open(sys.argv[1]))
by_path = {n["path"]: n for n in t["nodes"] if n["path"]}
need = ["base.img", "d1.img", "d2.img", ".snap/base.img@gold", ".snap/d1.img@s1"]
missing = [p for p in need if p not in by_path]
assert not missing, missing
assert by_path[".snap/base.img@gold"]["parent"] == 0
assert by_path[".snap/base.img@gold"]["kind"] == "snapshot"
gold = by_path[".snap/base.img@gold"]["layer"]
s1 = by_path[".snap/d1.img@s1"]["layer"]
assert by_path["base.img"]["parent"] == gold
assert by_path[".snap/d1.img@s1"]["parent"] == gold
assert by_path["d1.img"]["parent"] == s1 and by_path["d2.img"]["parent"] == s1
assert by_path[".snap/d1.img@s1"]["owned"] > 0  # d1's writes before s1
assert by_path["d2.img"]["owned"] > 0
EOF

log "flatten the clone of the clone: same bytes, holes kept, depth 1, copied on the servers"
h2=$(sha256sum <"$MNT/d2.img")
[ "$(info_json "$MNT/d2.img" depth)" = 3 ] || fail "d2 depth before: $(info_json "$MNT/d2.img" depth)"
sleep 1.2 # ds.stats is written at most once a second
c0=$(stat_sum copy_bytes); w0=$(stat_sum write_client_bytes)
vdifs-clone flatten "$MNT/d2.img" || fail "flatten"
sleep 2.5
c1=$(stat_sum copy_bytes); w1=$(stat_sum write_client_bytes)
log "data servers copied $((c1 - c0)) bytes; clients sent $((w1 - w0))"
[ "$w1" = "$w0" ] || fail "the client sent data during a flatten"
# 2 replicas of the 64 MiB of data d2 shows (the 32 MiB hole stays a hole).
[ "$((c1 - c0))" -ge $((2 * 64 << 20)) ] || fail "copied only $((c1 - c0)) bytes"
[ "$((c1 - c0))" -lt $((2 * 80 << 20)) ] || fail "copied the hole too: $((c1 - c0)) bytes"
drop_caches
[ "$(sha256sum <"$MNT/d2.img")" = "$h2" ] || fail "flatten changed the content"
[ "$(info_json "$MNT/d2.img" depth)" = 1 ] || fail "depth after flatten: $(info_json "$MNT/d2.img" depth)"
[ "$(info_json "$MNT/d2.img" shared)" = 0 ] || fail "a flat file shares bytes"
python3 - "$MNT/d2.img" <<'EOF' || fail "the hole did not survive the flatten"
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
assert os.lseek(fd, 40 << 20, os.SEEK_HOLE) == 40 << 20
assert os.lseek(fd, 40 << 20, os.SEEK_DATA) == 72 << 20
EOF
vdifs-clone flatten "$MNT/d2.img" || fail "flatten of a flat file"
dd if=/dev/urandom of="$MNT/d2.img" bs=4k count=1 seek=5 conv=notrunc status=none || fail "write after flatten"
h2=$(sha256sum <"$MNT/d2.img")

log "every ancestor deleted: the flat file keeps its bytes"
vdifs-snap delete "$MNT/d1.img" s1 && vdifs-snap delete "$MNT/base.img" gold || fail "snapshot delete"
rm "$MNT/base.img" "$MNT/d1.img"
drop_caches
[ "$(sha256sum <"$MNT/d2.img")" = "$h2" ] || fail "the flat file changed when its ancestors went"

log "depth limit, and flatten as the way out"
f="$MNT/d2.img"
depth=$(info_json "$f" depth)
i=0
while :; do
	i=$((i + 1))
	# A write per level: a file with nothing of its own adds no layer.
	dd if=/dev/urandom of="$f" bs=4k count=1 seek=$((i * 3)) conv=notrunc status=none
	if ! vdifs-snap create "$f" "s$i" 2>"$WORK/err"; then break; fi
	vdifs-clone "$MNT/.snap/$(basename "$f")@s$i" "$MNT/c$i.img" 2>"$WORK/err" || break
	f="$MNT/c$i.img"
	[ $i -lt 40 ] || fail "no depth limit after $i levels"
done
grep -q "depth limit reached" "$WORK/err" || fail "wrong error at the limit: $(cat "$WORK/err")"
log "limit reached at depth $(info_json "$f" depth): $(cat "$WORK/err")"
h=$(sha256sum <"$f")
vdifs-clone flatten "$f" || fail "flatten at the limit"
[ "$(sha256sum <"$f")" = "$h" ] || fail "flatten at the limit changed the content"
vdifs-snap create "$f" after || fail "snapshot after flatten"
vdifs-clone "$MNT/.snap/$(basename "$f")@after" "$MNT/deeper.img" || fail "clone after flatten"
[ "$(sha256sum <"$MNT/deeper.img")" = "$h" ] || fail "clone after flatten reads wrong"

log "errors"
out=$(vdifs-clone flatten "$MNT/.snap/$(basename "$f")@after" 2>&1) && fail "flatten of a snapshot worked"
echo "$out" | grep -q "read-only" || fail "flatten of a snapshot: $out"
out=$(vdifs-clone tree "$WORK/a" 2>&1) && fail "tree outside a mount worked"
echo "$out" | grep -q "not on a vdifs mount" || fail "tree outside a mount: $out"
out=$(vdifs-clone flatten "$MNT/nope.img" 2>&1) && fail "flatten of a missing file worked"
echo "$out" | grep -q "nope.img: No such file" || fail "flatten of a missing file: $out"
vdifs-clone tree 2>/dev/null && fail "tree without a file worked"
[ $? = 2 ] || fail "usage error is not exit status 2"

log "delete everything: the data servers empty out"
for s in "$MNT"/.snap/*; do
	n=$(basename "$s")
	vdifs-snap delete "$MNT/${n%@*}" "${n#*@}" || fail "delete snapshot $n"
done
rm -f "$MNT"/*.img
expect_empty_servers
log ok
