#!/bin/bash
# Malformed frames sent with a raw socket to the MDS and to a data server get
# an error reply and a closed connection, and both go on serving the mount.
. "$(dirname "$0")/lib.sh"
start_cluster
echo before >"$MNT/alive"
python3 - "$KEY" "$PORT" "$((PORT + 1))" <<'PY' || fail "malformed frame handling"
import errno, hmac, hashlib, os, socket, struct, sys
key = bytes.fromhex(open(sys.argv[1]).read().strip())
MAGIC, HDR = 0x53464456, "<IHHQIi"
HELLO, AUTH, LOOKUP, DS_READ = 1, 2, 32, 97

def frame(type_, payload=b"", rid=0, magic=MAGIC, version=1, length=None):
    n = len(payload) if length is None else length
    return struct.pack(HDR, magic, version, type_, rid, n, 0) + payload

def conn(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return s

def read_reply(s):
    """Returns the status of one reply frame and asserts the server then closes."""
    buf = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        buf += d
    assert len(buf) >= 24, "no error reply before the close (%d bytes)" % len(buf)
    magic, ver, typ, rid, n, status = struct.unpack(HDR, buf[:24])
    assert magic == MAGIC and typ & 0x8000, "not a reply frame"
    assert len(buf) == 24 + n, "extra bytes after the error reply"
    msg = buf[28:24 + n].decode(errors="replace")
    return status, msg

def handshake(s):
    cn = os.urandom(16)
    name = b"malformed-test"
    s.sendall(frame(HELLO, bytes([3]) + cn + struct.pack("<I", len(name)) + name))
    h = b""
    while len(h) < 24 + 48:
        h += s.recv(4096)
    sn = h[24:40]
    assert hmac.compare_digest(h[40:72], hmac.new(key, b"vdifs-server-proof" + cn + sn, hashlib.sha256).digest())
    s.sendall(frame(AUTH, hmac.new(key, b"vdifs-client-proof" + sn + cn, hashlib.sha256).digest()))
    a = s.recv(4096)
    st = struct.unpack(HDR, a[:24])[5]
    assert st == 0, "authentication refused: %d" % st

def expect(port, what, data, want, after_handshake=False):
    s = conn(port)
    if after_handshake:
        handshake(s)
    s.sendall(data)
    st, msg = read_reply(s)
    assert st == -want, "%s on port %d: status %d (%s), wanted %d" % (what, port, st, msg, -want)
    print("  port %d: %-28s -> %s: %s" % (port, what, errno.errorcode[want], msg))
    s.close()

for port, typ in ((int(sys.argv[2]), LOOKUP), (int(sys.argv[3]), DS_READ)):
    expect(port, "wrong magic", frame(HELLO, magic=0xdeadbeef), errno.EPROTO)
    expect(port, "length over the bound", frame(HELLO, length=1 << 30), errno.EMSGSIZE)
    expect(port, "wrong protocol version", frame(HELLO, version=7), errno.EPROTONOSUPPORT)
    expect(port, "truncated HELLO record", frame(HELLO, b"\x03abc"), errno.EBADMSG)
    expect(port, "request before handshake", frame(typ, b"\0" * 12, rid=1), errno.EACCES)
    expect(port, "unknown message type", frame(777, b"", rid=1), errno.EOPNOTSUPP, True)
    expect(port, "truncated record", frame(typ, b"\1\0\0", rid=2), errno.EBADMSG, True)
    expect(port, "record with a huge length", frame(typ, struct.pack("<IQI", 1, 1, 0xfffffff0), rid=3),
           errno.EBADMSG, True)
    # A peer that vanishes in the middle of a frame.
    s = conn(port)
    s.sendall(frame(HELLO, b"\x03" * 40)[:30])
    s.close()
    # A peer with the wrong key gets nothing but a refusal.
    s = conn(port)
    cn = os.urandom(16)
    s.sendall(frame(HELLO, bytes([1]) + cn + struct.pack("<I", 0)))
    h = b""
    while len(h) < 72:
        h += s.recv(4096)
    s.sendall(frame(AUTH, b"\0" * 32))
    st, msg = read_reply(s)
    assert st == -errno.EACCES, st
    print("  port %d: %-28s -> EACCES: %s" % (port, "wrong key", msg))
PY
log "the servers still serve the mount"
[ "$(cat "$MNT/alive")" = before ] || fail "read after malformed frames"
dd if=/dev/urandom of="$WORK/r" bs=1M count=8 status=none
cp "$WORK/r" "$MNT/after" && cmp "$MNT/after" "$WORK/r" || fail "write after malformed frames"
grep -q "bad frame magic" "$C/logs/mds.log" || fail "no log line for the bad frame on the MDS"
grep -q "bad frame magic" "$C/logs/ds1.log" || fail "no log line for the bad frame on ds1"
log "ok"
