#!/usr/bin/env python3
"""Helper of bench/clones.sh: timing loops that need no process start-up
(clones and snapshots through the mount's control xattrs), the scattered
write workload, chunk-file inventories of the data servers, and the result
rows and report (Markdown and JSON).

Not a test.  Every subcommand is called by clones.sh; see that script for
what each figure means.

Control xattrs (client/snapctl.c):
  setxattr(DIR, "user.vdifs.clone",       "SRCINO/NAME")  clone inode SRCINO as DIR/NAME
  setxattr(DIR, "user.vdifs.snap.create", "FILE/SNAP")    snapshot DIR/FILE as DIR/.snap/FILE@SNAP
SRCINO is st_ino of the source file as the mount shows it.
"""
import json
import os
import random
import statistics
import struct
import subprocess
import sys
import time

CLONE = "user.vdifs.clone"
SNAP = "user.vdifs.snap.create"


# ---------------------------------------------------------------- results


def stats(xs):
    xs = sorted(xs)
    s = {"n": len(xs), "median": statistics.median(xs), "min": xs[0], "max": xs[-1]}
    if len(xs) >= 4:
        q = statistics.quantiles(xs, n=4, method="inclusive")
        s["q1"], s["q3"] = q[0], q[2]
    return s


def add_row(res, row):
    """Appends one result row.  row: id, section, figure, unit, and either
    samples (a value: the median is compared with the target) or samples +
    base (a ratio: the median of samples[i] / base[i] when the two are
    pairs, else median(samples) / median(base)), or error / skip."""
    if row.get("error") or row.get("skip"):
        row["result"] = "ERROR" if row.get("error") else "SKIP"
    else:
        s = stats(row["samples"])
        row["stats"] = s
        if "base" in row:
            b = stats(row["base"])
            row["base_stats"] = b
            row["ratio_of_medians"] = s["median"] / b["median"] if b["median"] else float("inf")
            row["value"] = row["ratio_of_medians"]
            if len(row["base"]) == len(row["samples"]):
                # Pairs measured back to back: the median of their ratios
                # resists the machine's slow swings (a disk that syncs in
                # 0.1 ms for a while, then in 4 ms) better than a ratio of
                # medians taken over different moments.
                pr = [a / b if b else float("inf") for a, b in zip(row["samples"], row["base"])]
                row["pair_ratios"] = pr
                row["pair_stats"] = stats(pr)
                row["value"] = row["pair_stats"]["median"]
        else:
            row["value"] = s["median"]
        if row.get("invnote") and row["value"]:
            row["note"] = (row.get("note", "") + f" {row.pop('invnote')} {1 / row['value']:.2f}.").strip()
        op, tv = row.get("op"), row.get("target")
        if op is None:
            row["result"] = "info"
        else:
            v = row["value"]
            ok = {"<": v < tv, "<=": v <= tv, ">": v > tv, ">=": v >= tv}[op]
            row["result"] = "PASS" if ok else "MISS"
    with open(res, "a") as f:
        f.write(json.dumps(row) + "\n")


def parse_kv(args):
    row = {}
    for a in args:
        k, _, v = a.partition("=")
        if k in ("samples", "base"):
            row[k] = [float(x) for x in v.replace(",", " ").split()]
        elif k in ("target", "section"):
            row[k] = float(v) if k == "target" else v
        else:
            row[k] = v
    return row


def fmt(v, unit=""):
    if v is None:
        return "-"
    if unit == "ratio":
        return f"{v:.2f}"
    a = abs(v)
    if a >= 1000:
        s = f"{v:,.0f}"
    elif a >= 100:
        s = f"{v:.0f}"
    elif a >= 10:
        s = f"{v:.1f}"
    elif a >= 1:
        s = f"{v:.2f}"
    else:
        s = f"{v:.3f}"
    return f"{s} {unit}".rstrip()


def measured(row):
    if row["result"] in ("ERROR", "SKIP"):
        return row["result"] + ": " + (row.get("error") or row.get("skip"))
    u = row.get("unit", "")
    if "base" in row:
        return (f"**{row['value']:.2f}** ({row.get('alabel', 'A')} {fmt(row['stats']['median'], u)} / "
                f"{row.get('blabel', 'B')} {fmt(row['base_stats']['median'], u)})")
    return f"**{fmt(row['value'], u)}**"


def spread(row):
    if row["result"] in ("ERROR", "SKIP"):
        return ""
    u = row.get("unit", "")
    if "base" in row:
        ps = row.get("pair_stats")
        if ps and ps["n"] > 1:
            t = f"pair ratios {ps['min']:.2f}–{ps['max']:.2f}"
            if "q1" in ps:
                t += f", IQR {ps['q1']:.2f}–{ps['q3']:.2f}"
            return t + f" (n={ps['n']})"
        a, b = row["stats"], row["base_stats"]
        return (f"{fmt(a['min'], u)}–{fmt(a['max'], u)} / {fmt(b['min'], u)}–{fmt(b['max'], u)} "
                f"(n={a['n']}/{b['n']})")
    s = row["stats"]
    if s["n"] == 1:
        return "n=1"
    t = f"{fmt(s['min'], u)}–{fmt(s['max'], u)}"
    if "q1" in s:
        t += f", IQR {fmt(s['q1'], u)}–{fmt(s['q3'], u)}"
    return t + f" (n={s['n']})"


def target_text(row):
    if row.get("op") is None:
        return "(info)"
    u = "" if "base" in row else row.get("unit", "")
    return f"{row['op']} {fmt(row['target'], u)}" if u else f"{row['op']} {row['target']:g}"


PEERS = [
    ("MooseFS snapshot creation", "7.5 ms"),
    ("XFS reflink clone creation", "2.4 ms"),
    ("MooseFS fresh-clone random writes / rewrites", "0.73"),
    ("XFS fresh-clone random writes / rewrites", "0.38"),
    ("QCOW2 overlay first writes / raw", "0.09, and 15x the bytes written on disk"),
    ("MooseFS, 16 MiB of scattered writes into a clone", "4 GiB on disk"),
]


def cmd_report(res, md, js, meta_args):
    meta = parse_kv(meta_args)
    rows = [json.loads(line) for line in open(res) if line.strip()]
    rows.sort(key=lambda r: r["id"])  # sections run in another order (5 reads the clone of 6)
    out = []
    out.append(f"# vdifs clones and snapshots benchmark ({meta.get('date', '')})")
    out.append("")
    out.append(f"Mode: {meta.get('mode', '')}. {meta.get('config', '')}")
    out.append("")
    out.append(f"Host: {meta.get('host', '')}. Build: {meta.get('build', '')}. Runtime: {meta.get('runtime', '')}.")
    out.append("")
    out.append("Each figure is a median over its samples. A ratio is the median of the per-pair ratios "
               "(the two sides of a pair measured back to back, so that both see the same moment of a noisy "
               "machine); the medians of both sides follow in parentheses.")
    out.append("")
    out.append("| # | figure | measured (median) | spread | target | result |")
    out.append("|---|---|---|---|---|---|")
    for r in rows:
        fig = r["figure"].replace("|", "\\|")
        out.append(f"| {r['id']} | {fig} | {measured(r)} | {spread(r)} | {target_text(r)} | {r['result']} |")
    notes = [r for r in rows if r.get("note")]
    if notes:
        out.append("")
        out.append("Notes:")
        out.append("")
        for r in notes:
            out.append(f"- {r['id']}: {r['note']}")
    out.append("")
    out.append("Published figures of other systems, for context (not measured here):")
    out.append("")
    out.append("| peer figure | value |")
    out.append("|---|---|")
    for k, v in PEERS:
        out.append(f"| {k} | {v} |")
    counts = {}
    for r in rows:
        counts[r["result"]] = counts.get(r["result"], 0) + 1
    out.append("")
    out.append("Summary: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    text = "\n".join(out) + "\n"
    with open(md, "w") as f:
        f.write(text)
    with open(js, "w") as f:
        json.dump({"meta": meta, "rows": rows, "peers": dict(PEERS)}, f, indent=1)
        f.write("\n")
    sys.stdout.write(text)


# ---------------------------------------------------------------- timing


def now():
    return time.perf_counter_ns()


def ms(ns):
    return ns / 1e6


KINDS = [  # row letter, key, figure
    ("a", "clone_idle", "clone creation, idle source (one setxattr `user.vdifs.clone`)"),
    ("b", "clone_now", "clone creation right after the source was written in every chunk (freezes its layer)"),
    ("c", "clone_pause", "clone creation 1 s after the source was written in every chunk"),
    ("d", "snap_idle", "snapshot creation, idle file (one setxattr `user.vdifs.snap.create`)"),
    ("e", "snap_now", "snapshot creation right after the file was written in every chunk (freezes its layer)"),
    ("f", "snap_pause", "snapshot creation 1 s after the file was written in every chunk"),
]


def cmd_latency(res, mnt, sub, img1, img16, n_idle, n_freeze, chunk, fill, syncfile):
    """Targets 1 and 2: clone and snapshot latency of one setxattr, for a
    1 GiB and a 16 GiB image: with an idle source (its own layer empty: the
    frozen layer is reused), and with a source just written in every chunk
    (the operation freezes a layer that holds a record for every chunk),
    timed right after that write + fsync, or after a 1 s pause."""
    n_idle, n_freeze, chunk = int(n_idle), int(n_freeze), int(chunk)
    skip16 = img16[5:] if img16.startswith("skip:") else None
    tags = ["1g"] + ([] if skip16 else ["16g"])
    d = os.path.join(mnt, sub)
    os.makedirs(d, exist_ok=True)
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    src = {}  # (variant, tag) -> the file an operation works on

    def source(path):
        st = os.stat(path)
        return {"path": path, "ino": st.st_ino, "name": os.path.basename(path), "size": st.st_size,
                "dir": os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY)}

    for tag, path in zip(tags, (img1, img16)):
        src[("img", tag)] = source(path)
    t = {(tag, k): [] for tag in tags for _, k, _ in KINDS}

    def clone(sv, name):
        v = f"{sv['ino']}/{name}".encode()
        t0 = now()
        os.setxattr(dfd, CLONE, v)
        return ms(now() - t0)

    def snap(sv, name):
        v = f"{sv['name']}/{name}".encode()
        t0 = now()
        os.setxattr(sv["dir"], SNAP, v)
        return ms(now() - t0)

    # Warm-up (the kernel's and the mount's lookups, connections), not recorded.
    for tag in tags:
        for i in range(3):
            clone(src[("img", tag)], f"warm-{tag}-{i}")
            snap(src[("img", tag)], f"warm{i}")
    # The 1 s-pause variant works on a clone of each image (untimed), so that
    # the two variants share no chain: each freeze adds a level, and chains
    # stop at 32 levels.
    for tag in tags:
        clone(src[("img", tag)], f"pz-{tag}.img")
        src[("pz", tag)] = source(os.path.join(d, f"pz-{tag}.img"))
    # Baseline: every metadata operation waits for a synchronous LevelDB
    # write on the MDS, so the disk's sync latency bounds it from below.
    sfd = os.open(syncfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    sync_ms = []
    buf = os.urandom(4096)

    def dsync(i):
        os.pwrite(sfd, buf, (i % 256) * 4096)
        t0 = now()
        os.fdatasync(sfd)
        return ms(now() - t0)

    # Idle source: each 16 GiB operation right after the same 1 GiB one.
    for i in range(n_idle):
        sync_ms.append(dsync(i))
        for tag in tags:
            t[(tag, "clone_idle")].append(clone(src[("img", tag)], f"idle-{tag}-{i}"))
        for tag in tags:
            t[(tag, "snap_idle")].append(snap(src[("img", tag)], f"idle{i}"))

    # Source written in every chunk since its last freeze (file kept open, as
    # a running VM keeps its image): each operation freezes a layer with a
    # record for every chunk and adds one level to the chain.
    def dirty(fd, sv, off):
        for k in range((sv["size"] + chunk - 1) // chunk):
            os.pwrite(fd, buf, k * chunk + off)
        os.fsync(fd)

    for r in range(n_freeze):
        for variant, pause in (("img", 0), ("pz", 1.0)):
            fds = {tag: os.open(src[(variant, tag)]["path"], os.O_RDWR) for tag in tags}
            suffix = "now" if variant == "img" else "pause"
            for op in ("snap", "clone"):
                for tag in tags:
                    sv = src[(variant, tag)]
                    dirty(fds[tag], sv, (r % 64) * 8192 + (4096 if op == "clone" else 0))
                    if pause:
                        time.sleep(pause)
                    if op == "snap":
                        t[(tag, "snap_" + suffix)].append(snap(sv, f"frz{r}"))
                    else:
                        t[(tag, "clone_" + suffix)].append(clone(sv, f"frz-{variant}-{tag}-{r}"))
            for fd in fds.values():
                os.close(fd)
        sync_ms.append(dsync(r))
    os.close(sfd)
    os.unlink(syncfile)
    depth = {}
    for key, sv in src.items():
        txt = os.getxattr(sv["path"], "user.vdifs.info").decode()
        depth[key] = dict(line.split("=", 1) for line in txt.split())["depth"]

    for letter, k, fig in KINDS:
        s = t[("1g", k)]
        row = {"id": "1" + letter, "section": "1", "figure": fig + ", 1 GiB image", "unit": "ms",
               "samples": s, "op": "<", "target": 2.0}
        if letter == "a":
            row["note"] = (f"1a–1f: 1 GiB image ({src[('img', '1g')]['size'] // chunk} chunks); samples: {n_idle} "
                           f"idle (after 3 warm-ups), {n_freeze} written. 'Written': a 4 KiB write into every "
                           f"chunk + fsync, untimed, before each operation (file kept open); 1b, 1e on the image "
                           f"itself, 1c, 1f on a clone of it (chain depth at the end {depth[('img', '1g')]} and "
                           f"{depth[('pz', '1g')]}).")
        add_row(res, row)
    add_row(res, {"id": "1i", "section": "1", "unit": "ms", "samples": sync_ms,
                  "figure": "baseline: fdatasync of a 4 KiB write on the MDS's file system (for information)",
                  "note": "measured between the operations of 1a–1f; every clone or snapshot waits for at least one "
                          "synchronous LevelDB write on the MDS, so on this disk its latency is a floor. Medians of "
                          "1a–1f / median of 1i: " + ", ".join(
                              f"{statistics.median(t[('1g', k)]) / statistics.median(sync_ms):.2f}"
                              for _, k, _ in KINDS) + "."})
    for letter, k, fig in KINDS:
        row = {"id": "2" + letter, "section": "2", "figure": fig.split(" (")[0] + ": 16 GiB / 1 GiB",
               "unit": "ms", "alabel": "16G", "blabel": "1G"}
        if skip16:
            row["skip"] = skip16
        else:
            row.update({"samples": t[("16g", k)], "base": t[("1g", k)], "op": "<=", "target": 1.2})
            if letter == "a":
                row["note"] = (f"2a–2f: the operations of 1a–1f on a 16 GiB image "
                               f"({src[('img', '16g')]['size'] // chunk} chunks, every chunk present), each right "
                               f"after the same one on the 1 GiB image (a pair); chain depth at the end "
                               f"{depth[('img', '16g')]} and {depth[('pz', '16g')]}. Both images: {fill}")
        add_row(res, row)


def cmd_many(res, mnt, src, n, repeats):
    """Target 3: N clones of one image from one process (setxattr loop),
    then deleting them."""
    n, repeats = int(n), int(repeats)
    ino = os.stat(src).st_ino
    made, gone, per = [], [], []
    for r in range(repeats):
        d = os.path.join(mnt, f"many{r}")
        os.mkdir(d)
        dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        t0 = now()
        for i in range(n):
            t1 = now()
            os.setxattr(dfd, CLONE, f"{ino}/c{i}.img".encode())
            per.append(ms(now() - t1))
        made.append((now() - t0) / 1e9)
        got = len(os.listdir(d))
        if got != n:
            raise SystemExit(f"many: {got} files in {d} after {n} clones")
        t0 = now()
        for i in range(n):
            os.unlink(os.path.join(d, f"c{i}.img"))
        gone.append((now() - t0) / 1e9)
        os.close(dfd)
        os.rmdir(d)
    per.sort()
    p99 = per[min(len(per) - 1, int(len(per) * 0.99))]
    add_row(res, {"id": "3a", "section": "3", "figure": f"{n} clones of one 1 GiB image, one process (setxattr loop), total",
                  "unit": "s", "samples": made, "op": "<", "target": 3.0,
                  "note": f"rounds: {repeats}, of {n} clones each, each round into an empty directory; per clone median "
                          f"{statistics.median(per):.3f} ms, p99 {p99:.3f} ms, max {per[-1]:.3f} ms."})
    add_row(res, {"id": "3b", "section": "3", "figure": f"deleting those {n} clones (unlink loop), total",
                  "unit": "s", "samples": gone})


def cmd_proc_times(res, rid, fig, n, *argv_tmpl):
    """Wall time of N runs of a tool, each its own process ({} = index)."""
    n = int(n)
    ts = []
    for i in range(n):
        argv = [a.replace("{}", str(i)) for a in argv_tmpl]
        t0 = now()
        p = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        dt = ms(now() - t0)
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(argv)}: exit {p.returncode}: {p.stderr.decode().strip()}")
        ts.append(dt)
    add_row(res, {"id": rid, "section": rid[0], "figure": fig, "unit": "ms", "samples": ts})


def offsets(size, count, seed):
    return [b * 4096 for b in random.Random(seed).sample(range(size // 4096), count)]


def cmd_scatter(path, size, count, seed):
    """COUNT 4 KiB writes of random data at distinct random 4 KiB-aligned
    offsets (seeded), then fsync."""
    fd = os.open(path, os.O_WRONLY)
    for off in offsets(int(size), int(count), int(seed)):
        os.pwrite(fd, os.urandom(4096), off)
    os.fsync(fd)
    os.close(fd)


def cmd_qemu_io_cmds(size, count, seed):
    """The same offsets as scatter, as qemu-io commands."""
    for i, off in enumerate(offsets(int(size), int(count), int(seed))):
        print(f"write -P 0x{(i % 255) + 1:02x} {off} 4k")


def cmd_chunks(out, *dirs):
    """Inventory of the data servers' chunk files: server, path, on-disk
    bytes (st_blocks * 512), header format and block size."""
    with open(out, "w") as f:
        for d in dirs:
            for root, _, files in os.walk(d):
                for name in files:
                    if not name.endswith(".chk"):
                        continue
                    p = os.path.join(root, name)
                    try:
                        st = os.stat(p)
                        with open(p, "rb") as h:
                            hdr = h.read(16)
                    except FileNotFoundError:
                        continue
                    fmt_, bs = struct.unpack_from("<II", hdr, 8) if len(hdr) == 16 else (0, 0)
                    f.write(f"{os.path.basename(d)}\t{name}\t{st.st_blocks * 512}\t{fmt_}\t{bs}\n")


def load_chunks(path):
    m = {}
    for line in open(path):
        ds, name, b, f, bs = line.rstrip("\n").split("\t")
        m[(ds, name)] = (int(b), int(f), int(bs))
    return m


def cmd_chunk_diff(before, after):
    """JSON about the chunk files present in AFTER and not in BEFORE:
    total bytes, per server, per replica (the sum over chunks of their
    largest replica), files, formats."""
    b, a = load_chunks(before), load_chunks(after)
    new = {k: v for k, v in a.items() if k not in b}
    per_ds, per_chunk, fmts = {}, {}, {}
    for (ds, name), (by, f, bs) in new.items():
        per_ds[ds] = per_ds.get(ds, 0) + by
        per_chunk.setdefault(name, []).append(by)
        fmts[f"format {f}, block {bs}"] = fmts.get(f"format {f}, block {bs}", 0) + 1
    print(json.dumps({
        "files": len(new), "chunks": len(per_chunk), "total": sum(per_ds.values()),
        "per_replica_max": sum(max(v) for v in per_chunk.values()),
        "replicas": sorted({len(v) for v in per_chunk.values()}),
        "largest_file": max((max(v) for v in per_chunk.values()), default=0),
        "per_ds": per_ds, "formats": fmts}))


def cmd_add(res, *kv):
    add_row(res, parse_kv(kv))


def cmd_fio(path, rw, expect_ios):
    """IOPS (random) or MB/s (sequential) from fio's JSON; checks the count of I/Os."""
    j = json.load(open(path))["jobs"][0]
    kind = "write" if "write" in rw else "read"
    x = j[kind]
    if int(expect_ios) and x["total_ios"] != int(expect_ios):
        raise SystemExit(f"fio did {x['total_ios']} I/Os, expected {expect_ios}")
    if j.get("error"):
        raise SystemExit(f"fio error {j['error']}")
    print(round(x["bw_bytes"] / 1e6, 1) if rw in ("read", "write") else round(x["iops"], 1))


def cmd_jget(key):
    """A key of each object of a JSON list on stdin (vdifs-snap info --json),
    or of the one JSON object on stdin."""
    j = json.load(sys.stdin)
    print(" ".join(str(o[key]) for o in j) if isinstance(j, list) else j[key])


def cmd_mkimage(path, size, chunk, full):
    """An image of SIZE bytes in which every chunk exists: FULL=1 writes all
    of it (random data), otherwise one 4 KiB-aligned 1 MiB piece of random
    data into every chunk (at a different place in each), then sets the
    size.  fsync at the end."""
    size, chunk, full = int(size), int(chunk), full == "1"
    mib = 1 << 20
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    if full:
        pool = [os.urandom(mib) for _ in range(64)]
        for i, off in enumerate(range(0, size, mib)):
            os.pwrite(fd, pool[i % 64] if size > (4 << 30) else os.urandom(mib), off)
    else:
        per = max(1, chunk // mib)
        for k in range((size + chunk - 1) // chunk):
            off = k * chunk + ((k * 7) % per) * mib
            os.pwrite(fd, os.urandom(min(mib, size - off)), off)
        os.ftruncate(fd, size)
    os.fsync(fd)
    os.close(fd)


CMDS = {
    "add": cmd_add, "report": lambda res, md, js, *m: cmd_report(res, md, js, m), "latency": cmd_latency,
    "many": cmd_many, "proc-times": cmd_proc_times, "scatter": cmd_scatter, "qemu-io-cmds": cmd_qemu_io_cmds,
    "chunks": cmd_chunks, "chunk-diff": cmd_chunk_diff, "fio": cmd_fio, "jget": cmd_jget,
    "mkimage": cmd_mkimage,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in CMDS:
        sys.exit(f"usage: {sys.argv[0]} {'|'.join(CMDS)} ARGS...")
    CMDS[sys.argv[1]](*sys.argv[2:])
