#!/bin/bash
# Hostile connections against the MDS and a data server of a real cluster
# (docs/OPERATIONS.md, "Connection limits"), with raw sockets:
#  - thousands of connections (far over max_conns) held open, silent, stalled
#    in the handshake or, authenticated, in the middle of a frame: the mount
#    goes on working, a new admin client and a new mount get in, and the
#    servers log what they refused or dropped;
#  - stalled connections are closed after idle_timeout_ms (not before), a
#    handshake trickled a byte at a time included; an idle authenticated
#    connection is not;
#  - random bytes and absurd lengths get an error or a close, never a hang;
#  - a peer that fails the handshake (wrong key, a request before AUTH) gets
#    an error and a close, never the reply a request would get after AUTH;
#  - the servers are alive afterwards and their memory did not run away.
. "$(dirname "$0")/lib.sh"

MAX_CONNS=64
IDLE_MS=4000
mkdir -p "$C"
for f in mds.conf ds.conf; do
	printf 'max_conns = %s\nidle_timeout_ms = %s\n' "$MAX_CONNS" "$IDLE_MS" >"$C/$f"
done
start_cluster --ds 2 --replicas 2
MDS_PID=$(pid_of mds)
DS_PID=$(pid_of ds1)
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
dd if=/dev/urandom of="$WORK/r" bs=1M count=8 status=none
cp "$WORK/r" "$MNT/before" && cmp "$MNT/before" "$WORK/r" || fail "write before the flood"
CHUNK=$(find "$C/ds1" -name '*.chk' | head -n 1)
[ -n "$CHUNK" ] || fail "no chunk file on ds1"
CHUNK_ID=$(basename "$CHUNK" .chk)
RSS0_MDS=$(rss "$MDS_PID")
RSS0_DS=$(rss "$DS_PID")

python3 - "$KEY" "$PORT" "$((PORT + 1))" "$CHUNK_ID" "$MAX_CONNS" "$IDLE_MS" "$WORK" "$MDS_PID" "$DS_PID" >"$WORK/hostile.out" 2>&1 <<'PY' &
import errno, hashlib, hmac, os, random, select, socket, struct, sys, time
key = bytes.fromhex(open(sys.argv[1]).read().strip())
MDS, DS = int(sys.argv[2]), int(sys.argv[3])
CHUNK_ID, MAX_CONNS, IDLE = int(sys.argv[4], 16), int(sys.argv[5]), int(sys.argv[6]) / 1000.0
WORK = sys.argv[7]
PID = {MDS: int(sys.argv[8]), DS: int(sys.argv[9])}
MAGIC, HDR, REPLY = 0x53464456, "<IHHQIi", 0x8000
HELLO, AUTH, MOUNT, DS_READ = 1, 2, 20, 97
FLOOD = 1500  # connections per server

T0 = time.monotonic()
def say(*a):
    print("%6.2f" % (time.monotonic() - T0), *a, flush=True)

def frame(type_, payload=b"", rid=0, length=None):
    n = len(payload) if length is None else length
    return struct.pack(HDR, MAGIC, 1, type_, rid, n, 0) + payload

def vbytes(b):
    return struct.pack("<I", len(b)) + b

def hello_payload(cn, name=b"hostile"):
    return bytes([1]) + cn + vbytes(name)

# A request each server answers once the peer authenticated (checked below).
REQ = {MDS: (MOUNT, vbytes(b"vdi") + struct.pack("<I", 0)),
       DS: (DS_READ, struct.pack("<QII", CHUNK_ID, 1, 0) + vbytes(b"") + struct.pack("<II", 0, 4096))}

def conn(port, timeout=10):
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)

def recv_exact(s, n):
    b = b""
    while len(b) < n:
        d = s.recv(n - len(b))
        if not d:
            raise EOFError("closed after %d of %d bytes" % (len(b), n))
        b += d
    return b

def read_frame(s):
    h = recv_exact(s, 24)
    magic, ver, typ, rid, n, st = struct.unpack(HDR, h)
    assert magic == MAGIC, "bad magic in a reply"
    return typ, rid, st, recv_exact(s, n)

def handshake(s):
    cn = os.urandom(16)
    s.sendall(frame(HELLO, hello_payload(cn)))
    typ, _, st, p = read_frame(s)
    assert typ == HELLO | REPLY and st == 0 and len(p) == 48, "HELLO reply"
    sn = p[:16]
    assert hmac.compare_digest(p[16:], hmac.new(key, b"vdifs-server-proof" + cn + sn, hashlib.sha256).digest())
    s.sendall(frame(AUTH, hmac.new(key, b"vdifs-client-proof" + sn + cn, hashlib.sha256).digest()))
    typ, _, st, _ = read_frame(s)
    assert typ == AUTH | REPLY and st == 0, "AUTH refused: %d" % st

def read_all(s, limit):
    """Everything the server sends until it closes; fails on a hang."""
    s.settimeout(limit)
    buf = b""
    t0 = time.monotonic()
    while True:
        try:
            d = s.recv(65536)
        except ConnectionResetError:
            break
        except socket.timeout:
            raise AssertionError("no close within %.1f s (hang) after %d bytes" % (limit, len(buf)))
        if not d:
            break
        buf += d
    return buf, time.monotonic() - t0

def frames(buf):
    out = []
    while len(buf) >= 24:
        magic, ver, typ, rid, n, st = struct.unpack(HDR, buf[:24])
        assert magic == MAGIC and len(buf) >= 24 + n, "garbled reply"
        out.append((typ, st, buf[24:24 + n]))
        buf = buf[24 + n:]
    assert not buf, "a partial frame before the close"
    return out

def closed_now(s):
    """True when the server closed s (EOF, reset, or never accepted it);
    False when it is open.  What the server sent before is read and dropped."""
    timeout = s.gettimeout()
    s.settimeout(0)
    try:
        while True:
            if not s.recv(65536):
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        s.settimeout(timeout)

def server_fds(port):
    """Sockets the server process holds open."""
    d = "/proc/%d/fd" % PID[port]
    n = 0
    for f in os.listdir(d):
        try:
            n += os.readlink(d + "/" + f).startswith("socket:")
        except OSError:
            pass
    return n

def held_by_server(port, socks):
    """How many of socks the server holds open (its side ESTABLISHED)."""
    ours = set()
    for _, s in socks:
        try:
            ours.add(s.getsockname()[1])
        except OSError:
            pass
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                local, remote, state = line.split()[1:4]
                n += state == "01" and int(local.split(":")[1], 16) == port and int(remote.split(":")[1], 16) in ours
    return n

def flood(port, n, wait=5):
    """n connections at once (non-blocking connects), each then silent, half
    a HELLO or a whole HELLO without AUTH; returns [(kind, socket)]."""
    kinds = ("silent", "half-hello", "no-auth")
    socks = {}
    po = select.poll()
    for i in range(n):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        socks[s.fileno()] = (kinds[i % 3], s)
        po.register(s, select.POLLOUT)
    pending, deadline = set(socks), time.monotonic() + wait
    while pending and time.monotonic() < deadline:
        for fd, ev in po.poll(100):
            po.unregister(fd)
            pending.discard(fd)
            kind, s = socks[fd]
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                continue
            try:
                if kind == "half-hello":
                    s.send(frame(HELLO, hello_payload(os.urandom(16)))[:30])
                elif kind == "no-auth":
                    s.send(frame(HELLO, hello_payload(os.urandom(16))))
            except OSError:
                pass  # already dropped
    return list(socks.values())

def wait_closed(s, limit):
    """Seconds until the server closes s; fails if it does not within limit."""
    t0 = time.monotonic()
    s.settimeout(limit)
    try:
        while s.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except socket.timeout:
        raise AssertionError("not closed within %.1f s" % limit)
    return time.monotonic() - t0

# ---- control: the same requests answered once authenticated ----------------
for port, (typ, payload) in REQ.items():
    s = conn(port)
    handshake(s)
    s.sendall(frame(typ, payload, rid=7))
    rt, rid, st, p = read_frame(s)
    assert rt == typ | REPLY and rid == 7, "control reply"
    if port == MDS:
        assert st == 0, "MOUNT after AUTH failed: %d" % st
    say("control: port %d answers type %d after AUTH (status %d, %d bytes)" % (port, typ, st, len(p)))
    s.close()

# ---- 1. a flood of connections held open -------------------------------------
# Each server is checked right after its own flood: the server keeps the
# newest unauthenticated connections and closes them idle_timeout_ms after
# their accept, so a check made after another server's flood (which takes
# seconds when the backlog overflows and SYNs are retried) would find them
# already timed out.
def check_held(port):
    """The server holds connections, no more than max_conns, and has not
    dropped an authenticated one for the flood."""
    fds, mine = server_fds(port), held_by_server(port, held[port])
    open_ = [k for k, s in held[port] if not closed_now(s)]
    say("flood: port %d: the server holds %d of them, %d sockets in all (%d before, max_conns %d); "
        "authenticated ones open: %d" % (port, mine, fds, fds0[port], MAX_CONNS, open_.count("auth-midframe")))
    assert fds <= fds0[port] + MAX_CONNS, "port %d holds %d sockets" % (port, fds)
    assert MAX_CONNS // 2 <= mine <= MAX_CONNS, "port %d holds %d of the flood" % (port, mine)
    assert open_.count("auth-midframe") == 6, "an authenticated connection was dropped for the flood"

held, fds0 = {}, {}
for port, (typ, _) in REQ.items():
    fds0[port] = server_fds(port)
    held[port] = flood(port, FLOOD)
    say("flood: port %d: %d connections made" % (port, len(held[port])))
    time.sleep(0.3)
    for i in range(6):  # authenticated in the flood, then stalled in the middle of a frame
        s = conn(port)
        handshake(s)
        s.sendall(frame(typ, length=100)[:24] + b"\0" * 10)
        held[port].append(("auth-midframe", s))
    say("flood: port %d: 6 authenticated connections stalled mid-frame" % port)
    check_held(port)
open(WORK + "/held", "w").close()
# Until the shell is done with the mount, new connections keep coming.
t0 = time.monotonic()
churned = 0
while not os.path.exists(WORK + "/go"):
    assert time.monotonic() - t0 < 60, "no go from the shell"
    if time.monotonic() - t0 < 8:
        for port in REQ:
            socks = held[port]
            live = [(k, s) for k, s in socks if k == "auth-midframe" or not closed_now(s) or s.close()]
            if len(live) < 400:
                n = 400 - len(live)
                live += flood(port, n, 0.2)
                churned += n
            held[port] = live
    time.sleep(0.2)
say("flood: kept up with %d more connections while the shell used the mount" % churned)
# The server closes what it accepted by the idle timeout.  (Connections it
# never accepted -- the flood overflows its backlog -- look open from here.)
deadline = time.monotonic() + IDLE + 5
for port, socks in held.items():
    while held_by_server(port, socks) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not held_by_server(port, socks), "port %d still holds %d flood connections %.1f s after it" % (
        port, held_by_server(port, socks), IDLE + 5)
    for k, s in socks:
        assert k != "auth-midframe" or closed_now(s), "port %d: a stalled authenticated one is open" % port
        s.close()
say("flood: the servers closed every connection they held for it")

# ---- 2. stalled connections are closed after the idle timeout ----------------
for port, (typ, payload) in REQ.items():
    stalled = {}  # what -> (socket, when its clock started)
    s = conn(port)
    stalled["silent"] = (s, time.monotonic())
    s = conn(port)
    s.sendall(frame(HELLO, hello_payload(os.urandom(16)))[:30])
    stalled["half-hello"] = (s, time.monotonic())
    s = conn(port)
    s.sendall(frame(HELLO, hello_payload(os.urandom(16))))
    stalled["no-auth"] = (s, time.monotonic())
    s = conn(port)
    handshake(s)
    s.sendall(frame(typ, length=100)[:24] + b"\1" * 10)
    stalled["auth-midframe"] = (s, time.monotonic())
    slow = conn(port)  # a handshake trickled one byte every 250 ms
    stalled["trickled-handshake"] = (slow, time.monotonic())
    trickle = frame(HELLO, hello_payload(os.urandom(16)))
    idle = conn(port)
    handshake(idle)
    closed_after = {}
    t0 = time.monotonic()
    while len(closed_after) < len(stalled) and time.monotonic() - t0 < IDLE + 3:
        if trickle and "trickled-handshake" not in closed_after:
            try:
                slow.send(trickle[:1])
            except OSError:
                pass
            trickle = trickle[1:]
        deadline = time.monotonic() + 0.25
        while time.monotonic() < deadline:
            for what, (s, since) in stalled.items():
                if what not in closed_after and closed_now(s):
                    closed_after[what] = time.monotonic() - since
            time.sleep(0.01)
    for what, (s, since) in stalled.items():
        assert what in closed_after, "port %d: %s still open %.1f s after the idle timeout" % (port, what, 3)
        assert IDLE - 0.2 <= closed_after[what] <= IDLE + 1.5, \
            "port %d: %s closed after %.2f s (idle timeout %.1f s)" % (port, what, closed_after[what], IDLE)
        s.close()
    assert not closed_now(idle), "port %d: an idle authenticated connection was closed" % port
    idle.sendall(frame(typ, payload, rid=9))
    rt, rid, st, p = read_frame(idle)
    assert rt == typ | REPLY and rid == 9, "idle connection no longer served"
    idle.close()
    say("idle: port %d: closed after %s; an idle authenticated connection is still served" % (
        port, ", ".join("%s %.2f s" % kv for kv in sorted(closed_after.items()))))

# ---- 3. garbage: an error or a close, never a hang ---------------------------
rng = random.Random(4)
for port, (typ, payload) in REQ.items():
    for i in range(40):
        s = conn(port)
        if i % 2:
            handshake(s)
        try:
            s.sendall(bytes(rng.getrandbits(8) for _ in range(rng.randrange(24, 4096))))
        except OSError:
            pass
        buf, took = read_all(s, 5)
        for ft, st, p in frames(buf):
            assert st < 0, "garbage got a successful reply (type %d)" % ft
        s.close()
    for what, data, auth in (
            ("absurd length", frame(HELLO, length=0xFFFFFFFF), False),
            ("handshake over 1 KiB", frame(HELLO, length=64 * 1024) + b"\0" * 4096, False),
            ("absurd length after AUTH", frame(typ, length=0xFFFFFFF0, rid=3), True)):
        s = conn(port)
        if auth:
            handshake(s)
        s.sendall(data)
        buf, took = read_all(s, 5)
        fs = frames(buf)
        assert len(fs) == 1 and fs[0][1] == -errno.EMSGSIZE, "%s: %r" % (what, fs)
        s.close()
    say("garbage: port %d: random bytes and absurd lengths get an error and a close" % port)

# ---- 4. a failed handshake gets nothing -------------------------------------
def expect_nothing(port, what, data, hello_first):
    """data is sent (after an honest HELLO when hello_first); the server must
    answer with an EACCES error and close, and no reply to a request."""
    s = conn(port)
    if hello_first:
        cn = os.urandom(16)
        s.sendall(frame(HELLO, hello_payload(cn)))
        typ, _, st, p = read_frame(s)
        assert typ == HELLO | REPLY and st == 0 and len(p) == 48
    try:
        s.sendall(data)
    except OSError:
        pass
    buf, took = read_all(s, 5)
    fs = frames(buf)
    assert len(fs) == 1, "%s: %d frames came back: %r" % (what, len(fs), [(t, st) for t, st, _ in fs])
    ft, st, p = fs[0]
    assert st == -errno.EACCES, "%s: status %d" % (what, st)
    assert len(p) >= 4 and struct.unpack("<I", p[:4])[0] == len(p) - 4, "%s: not an error record: %r" % (what, p)
    s.close()
    say("auth: port %d: %-40s -> EACCES and a close: %s" % (port, what, p[4:].decode(errors="replace")))

for port, (typ, payload) in REQ.items():
    req = frame(typ, payload, rid=5)
    expect_nothing(port, "request instead of HELLO", req, False)
    expect_nothing(port, "request instead of AUTH", req, True)
    expect_nothing(port, "wrong proof, then a request", frame(AUTH, b"\0" * 32) + req, True)
    expect_nothing(port, "proof for another nonce, then a request",
                   frame(AUTH, hmac.new(key, b"vdifs-client-proof" + b"\0" * 32, hashlib.sha256).digest()) + req,
                   True)
say("done")
PY
PYPID=$!
EXTRA_PIDS+=("$PYPID")
for _ in $(seq 1 600); do
	[ -e "$WORK/held" ] && break
	kill -0 "$PYPID" 2>/dev/null || break
	sleep 0.1
done
cat "$WORK/hostile.out"
[ -e "$WORK/held" ] || fail "the flood did not get under way"

log "while thousands of connections are held: the mount, a new admin client and a new mount work"
T0=$(date +%s%N)
timeout 20 cp "$WORK/r" "$MNT/held" || fail "write while the servers are flooded"
timeout 20 cmp "$MNT/held" "$WORK/r" || fail "read back while the servers are flooded"
timeout 20 vdifs-admin -C "$C" status >/dev/null || fail "a new admin connection while flooded"
mount_again "$WORK/m2"
timeout 20 cp "$WORK/r" "$WORK/m2/held2" || fail "write through a new mount while flooded"
timeout 20 cmp "$MNT/held2" "$WORK/r" || fail "read through the first mount while flooded"
timeout 20 cmp "$WORK/m2/held" "$WORK/r" || fail "read through a new mount while flooded"
log "  done in $((($(date +%s%N) - T0) / 1000000)) ms"
for f in mds ds1; do
	grep -q -E "dropped, still unauthenticated|refused: .* connections already open" "$C/logs/$f.log" ||
		fail "$f logged no refusal"
done
# The flood's stalled connections are gone after the idle timeout.
sleep "$(awk -v ms="$IDLE_MS" 'BEGIN { print ms / 1000 + 1.5 }')"
touch "$WORK/go"
wait "$PYPID" || { cat "$WORK/hostile.out"; fail "hostile clients (see above)"; }
sed -n '/kept up/,$p' "$WORK/hostile.out"

log "the servers are alive, serve, and their memory did not run away"
kill -0 "$MDS_PID" || fail "the MDS died"
kill -0 "$DS_PID" || fail "ds1 died"
timeout 20 cmp "$MNT/before" "$WORK/r" || fail "read after the hostile clients"
timeout 20 vdifs-admin -C "$C" status >/dev/null || fail "admin after the hostile clients"
RSS1_MDS=$(rss "$MDS_PID")
RSS1_DS=$(rss "$DS_PID")
log "  VmRSS: mds ${RSS0_MDS} -> ${RSS1_MDS} kB, ds1 ${RSS0_DS} -> ${RSS1_DS} kB"
# Thousands of connections come and go: 64 MiB more is plenty for a server
# that frees what they used.  ASan holds freed memory back in its quarantine
# (256 MiB by default) before reusing it.
GROWTH=65536
[ "${VDIFS_SANITIZE:-0}" = 1 ] && GROWTH=$((GROWTH + 262144))
for p in "mds $RSS0_MDS $RSS1_MDS" "ds1 $RSS0_DS $RSS1_DS"; do
	set -- $p
	[ "$3" -le $(($2 + GROWTH)) ] || fail "$1: VmRSS grew from $2 kB to $3 kB"
done
grep -c -E "dropped, still unauthenticated|refused: |handshake not done|left out" "$C/logs/mds.log" |
	xargs printf '[%s] mds.log lines about hostile peers: %s\n' "$TEST_NAME"
log "ok"
