#!/bin/bash
# kill -9 of the MDS, twice, in the middle of a metadata-heavy workload
# (mkdir, create, rename, symlink, setxattr, link, unlink, rmdir, directory
# rename: thousands of operations) that must see NO failure: while the MDS is
# down the workload blocks and retries, and a retried operation that the MDS
# had applied before dying is answered, not applied twice (EEXIST/ENOENT).
# Afterwards the tree on a fresh mount is exactly what the workload built
# (nothing it saw done is lost, nothing it deleted is back), the first mount
# carries on, each outage was logged once, and fsck finds nothing.
. "$(dirname "$0")/lib.sh"
start_cluster
PROG="$WORK/progress"   # one line per completed operation
MODEL="$WORK/model.json" # the tree the workload built, written at its end
STOP="$WORK/stop"
: >"$PROG"

python3 - "$C/mnt" "$PROG" "$MODEL" "$STOP" >"$WORK/workload.log" 2>&1 <<'EOF' &
import json, os, sys
mnt, prog, model_path, stop = sys.argv[1:]
log = open(prog, "a", buffering=1)
model = {}  # path -> ("dir",) | ("file", content, xattr) | ("link", target)

def done(op, *args):
    log.write(op + " " + " ".join(map(str, args)) + "\n")

def move(old, new):
    """Moves old and everything under it to new in the model."""
    for p in sorted(model):
        if p == old or p.startswith(old + "/"):
            model[new + p[len(old):]] = model.pop(p)

i = 0
while not os.path.exists(stop) or i < 10:
    i += 1
    d = f"d{i}"
    P = lambda *n: os.path.join(mnt, *n)
    os.mkdir(P(d)); model[d] = ("dir",); done("mkdir", d)
    content = f"content {i}\n".encode()
    fd = os.open(P(d, "f"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    os.write(fd, content); os.close(fd)
    model[d + "/f"] = ["file", content.decode(), None]; done("create", d)
    os.rename(P(d, "f"), P(d, "g")); move(d + "/f", d + "/g"); done("rename", d)
    os.symlink("g", P(d, "s")); model[d + "/s"] = ("link", "g"); done("symlink", d)
    os.setxattr(P(d, "g"), "user.i", str(i).encode()); model[d + "/g"][2] = str(i); done("setxattr", d)
    if i % 5 == 0:
        os.link(P(d, "g"), P(d, "h")); model[d + "/h"] = model[d + "/g"]; done("link", d)
    if i % 3 == 0:
        os.unlink(P(d, "g")); del model[d + "/g"]; done("unlink", d)
    if i % 4 == 0:
        os.mkdir(P(d, "sub")); done("mkdir", d + "/sub")
        os.rmdir(P(d, "sub")); done("rmdir", d + "/sub")
    if i % 7 == 0:
        os.rename(P(d), P(f"r{i}")); move(d, f"r{i}"); done("rename", d)
json.dump({p: list(v) for p, v in model.items()}, open(model_path + ".tmp", "w"))
os.rename(model_path + ".tmp", model_path)
EOF
WL=$!
EXTRA_PIDS+=($WL)

ops() { wc -l <"$PROG"; }
# wait_ops N: until the workload completed N operations (it must not die).
wait_ops() {
	for _ in $(seq 1 600); do
		[ "$(ops)" -ge "$1" ] && return 0
		kill -0 "$WL" 2>/dev/null || { cat "$WORK/workload.log" >&2; fail "the workload failed"; }
		sleep 0.1
	done
	fail "the workload stalled at $(ops) operations"
}
# crash_mds: kill -9 the MDS, check the workload blocks, restart it.
crash_mds() {
	kill -9 "$(pid_of mds)"
	local at
	at=$(ops)
	log "kill -9 the MDS after $at operations"
	sleep 0.5
	at=$(ops) # what was in flight may still finish on the data servers only
	sleep 2.5
	[ "$(ops)" = "$at" ] || fail "operations completed while the MDS was down ($at -> $(ops))"
	kill -0 "$WL" 2>/dev/null || { cat "$WORK/workload.log" >&2; fail "the workload failed during the outage"; }
	vdifs-cluster start "$C" >/dev/null || fail "MDS restart"
}

wait_ops 1500
crash_mds
wait_ops $(($(ops) + 2500))
crash_mds
wait_ops $(($(ops) + 1500))
touch "$STOP"
wait $WL || { cat "$WORK/workload.log" >&2; fail "the workload saw a failure"; }
[ -s "$MODEL" ] || fail "the workload wrote no model"
n=$(ops)
log "$n operations completed without a failure; checking the tree on a fresh mount"

# Each outage was logged once by the mount, not once per call.
down=$(grep -c "unreachable" "$C/logs/mount.log" || true)
back=$(grep -c "reachable again" "$C/logs/mount.log" || true)
[ "$down" = 2 ] && [ "$back" = 2 ] || fail "mount log: $down outage and $back recovery lines (want 2 and 2)"

check_tree() {
	python3 - "$1" "$MODEL" <<'EOF' || fail "the tree on $1 differs from what the workload built"
import json, os, sys
root, model = sys.argv[1], json.load(open(sys.argv[2]))
seen = {}
for dirpath, dirs, files in os.walk(root):
    for n in dirs + files:
        full = os.path.join(dirpath, n)
        p = os.path.relpath(full, root)
        if p == "after-restart":
            continue
        if os.path.islink(full):
            seen[p] = ["link", os.readlink(full)]
        elif os.path.isdir(full):
            seen[p] = ["dir"]
        else:
            try:
                x = os.getxattr(full, "user.i").decode()
            except OSError:
                x = None
            seen[p] = ["file", open(full).read(), x]
bad = 0
for p in sorted(set(model) | set(seen)):
    if model.get(p) != seen.get(p):
        print(f"{p}: expected {model.get(p)}, found {seen.get(p)}", file=sys.stderr)
        bad += 1
        if bad > 20:
            break
sys.exit(1 if bad else 0)
EOF
}
mount_again "$WORK/m2"
check_tree "$WORK/m2"
# The first mount carries on after the restarts as well.
echo after >"$MNT/after-restart" && [ "$(cat "$WORK/m2/after-restart")" = after ] || fail "first mount after restart"
check_tree "$MNT"
vdifs-admin -C "$C" fsck >"$WORK/fsck.out" 2>&1 || { cat "$WORK/fsck.out" >&2; fail "fsck found inconsistencies"; }
log "ok ($n operations checked, fsck clean)"
