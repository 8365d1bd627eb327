#!/usr/bin/env python3
"""Runner of bench/suite.sh: the same jobs on up to four systems (local
disk, a FUSE passthrough = the FUSE ceiling, MooseFS, vdifs), repeats
interleaved across the systems, CPU seconds per GiB moved, and the report:
Markdown, JSON and an SVG bar chart.  Python 3 standard library only;
reuses bench/clones_helper.py (statistics, formatting, image and scatter
workloads).

Not a test.  suite.sh starts and stops the systems; this file only uses
their mounts, their pid files (CPU accounting) and their clone commands.

  suite.py run CONFIG.json       every job, then the report
  suite.py chart RESULT.json SVG the bar chart of a finished run

CONFIG (written by suite.sh): {"systems": [{"name", "status" ("up",
"skip", "error"), "msg", "root", "mnt"}...], "quick", "repeats", "size",
"desk_size", "runtime", "nclones", "nmeta", "bin", "repo", "work", "out",
"meta": {...}}.
"""
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import traceback

sys.dont_write_bytecode = True  # no bench/__pycache__ in the tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clones_helper as ch  # noqa: E402

MIB = 1 << 20
GIB = 1 << 30
HZ = os.sysconf("SC_CLK_TCK")
ORDER = ["local", "passthrough", "moosefs", "vdifs"]
CLONING = ("moosefs", "vdifs")  # systems with clones (vdifs-clone, MooseFS snapshots)
CHUNK = 64 * MIB


def log(msg):
    sys.stderr.write(f"[suite {time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


class Fail(Exception):
    pass


# ---------------------------------------------------------------- systems


class System:
    def __init__(self, d, cfg):
        self.name, self.status, self.msg = d["name"], d["status"], d.get("msg", "")
        self.root, self.mnt = d.get("root", ""), d.get("mnt", "")
        self.cfg = cfg

    def pids(self):
        """The system's processes (CPU accounting): DIR/run/*.pid for vdifs,
        DIR/pids (one per line) for the peers, none for the local disk."""
        out = []
        if self.name == "vdifs":
            files = sorted(glob.glob(os.path.join(self.root, "run", "*.pid")))
        elif self.name == "local":
            files = []
        else:
            files = [os.path.join(self.root, "pids")]
        for f in files:
            for line in open(f):
                if line.strip():
                    out.append(int(line.split()[0]))
        return out

    def ticks(self):
        """utime + stime of every process of the system (all its threads;
        kernel threads are not counted), in clock ticks."""
        t = {}
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    st = f.read()
            except FileNotFoundError:
                raise Fail(f"{self.name}: process {pid} is gone")
            fields = st[st.rindex(")") + 2:].split()
            t[pid] = int(fields[11]) + int(fields[12])
        return t

    def cpu_since(self, t0):
        t1 = self.ticks()
        return sum(t1[p] - t0.get(p, 0) for p in t1) / HZ

    def settle(self, limit=30.0):
        """Waits until the system's processes are quiet (under 5 % of a CPU
        over 0.3 s) and, for MooseFS and vdifs, until the count of files on
        their disks has not changed for 1.2 s (deleted chunks leave the
        servers asynchronously: vdifs's data servers learn of them with a
        heartbeat, every 0.5 s), so that a job does not share the machine
        with the leftovers of the one before (on this or another system)."""
        os.sync()
        end = time.monotonic() + limit
        n0, same = None, 0
        while time.monotonic() < end:
            t0 = self.ticks()
            time.sleep(0.3)
            busy = self.cpu_since(t0)
            if self.name in CLONING:
                n = self.backing()[0]
                same = same + 1 if n == n0 else 0
                n0 = n
            else:
                same = 4
            if busy < 0.015 and same >= 4:
                return
        log(f"{self.name}: still busy after {limit:.0f} s, measuring anyway")

    def clone_cmd(self, src, dst):
        if self.name == "vdifs":
            return [os.path.join(self.cfg["bin"], "vdifs-clone"), src, dst]
        return [os.path.join(self.cfg["repo"], "bench", "systems", "moosefs.sh"), "snapshot", src, dst]

    def clone(self, src, dst):
        p = subprocess.run(self.clone_cmd(src, dst), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if p.returncode:
            raise Fail(f"clone {src} -> {dst}: exit {p.returncode}: {p.stderr.strip()[-300:]}")

    def backing(self):
        """(files, bytes (st_blocks)) the system keeps on the local disk: the
        data servers' directories for vdifs (DIR/ds*), everything under DIR
        but the mount for the peers, the directory itself for the local
        disk."""
        if self.name == "vdifs":
            tops = glob.glob(os.path.join(self.root, "ds*"))
        elif self.name == "local":
            tops = [self.mnt]
        else:
            tops = [os.path.join(self.root, e) for e in os.listdir(self.root) if e != "mnt"]
        dev = os.stat(self.root).st_dev
        files = total = 0
        for top in tops:
            for r, dirs, names in os.walk(top):
                dirs[:] = [d for d in dirs if os.lstat(os.path.join(r, d)).st_dev == dev]
                for n in names:
                    try:
                        total += os.lstat(os.path.join(r, n)).st_blocks * 512
                        files += 1
                    except FileNotFoundError:
                        pass
        return files, total


def drop():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def rm(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


# ---------------------------------------------------------------- fio


class Fio:
    """One fio run: its value (MB/s or IOPS, aggregate over its jobs),
    GiB moved and CPU seconds (fio's own from its JSON + the system's
    processes)."""

    def __init__(self, sysm, args, metric, work):
        out = os.path.join(work, "fio.json")
        sysm.settle()
        t0 = sysm.ticks()
        p = subprocess.run(["fio", "--output-format=json", f"--output={out}"] + args,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.sys_cpu = sysm.cpu_since(t0)
        txt = open(out).read() if os.path.exists(out) else ""
        if p.returncode or "{" not in txt:
            raise Fail(f"fio exit {p.returncode}: {(p.stderr.strip() or txt.strip())[-300:]}")
        jobs = json.loads(txt[txt.index("{"):])["jobs"]
        for j in jobs:
            if j.get("error"):
                raise Fail(f"fio job {j.get('jobname')}: error {j['error']}")
        rt = max(j["job_runtime"] for j in jobs) / 1000.0
        if rt <= 0:
            raise Fail("fio ran for 0 ms")
        rb = sum(j["read"]["io_bytes"] for j in jobs)
        wb = sum(j["write"]["io_bytes"] for j in jobs)
        ios = sum(j["read"]["total_ios"] + j["write"]["total_ios"] for j in jobs)
        self.fio_cpu = sum((j["usr_cpu"] + j["sys_cpu"]) / 100.0 * j["job_runtime"] / 1000.0 for j in jobs)
        self.gib = (rb + wb) / GIB
        self.value = (rb + wb) / rt / 1e6 if metric == "MB/s" else ios / rt
        self.cpu_per_gib = (self.sys_cpu + self.fio_cpu) / self.gib if self.gib else None


# ---------------------------------------------------------------- rows

# id, figure, unit, higher is better, target: a list of (kind, op, value)
# where kind is "pt" (vdifs/passthrough), "mfs" (vdifs/moosefs) or "v"
# (the vdifs figure itself).
ROWS = [
    ("seqw", "sequential write, 1 MiB, psync, end_fsync", "MB/s", True, [("pt", ">=", 0.5), ("mfs", ">=", 2.0)]),
    ("seqr", "sequential read, 1 MiB, psync, cold", "MB/s", True, [("pt", ">=", 0.8)]),
    ("rwp", "random 4 KiB write, psync, 4 jobs", "IOPS", True, []),
    ("rrp", "random 4 KiB read, psync, 4 jobs, cold start", "IOPS", True, []),
    ("rwa", "random 4 KiB write, libaio qd16 direct", "IOPS", True, [("pt", ">=", 0.6)]),
    ("rra", "random 4 KiB read, libaio qd16 direct", "IOPS", True, [("pt", ">=", 0.6)]),
    ("bsc", "boot storm: 8 readers, one shared image, 64 KiB, cold", "MB/s", True, []),
    ("bsw", "boot storm: 8 readers, one shared image, warm (2nd pass)", "MB/s", True, []),
    ("bcc", "boot storm: 8 clones, one reader each, cold", "MB/s", True, []),
    ("bcw", "boot storm: 8 clones, one reader each, warm (2nd pass)", "MB/s", True, []),
    ("bxc", "boot storm cold: 8 clones / one shared image (pairs)", "ratio", True, [("v", ">=", 0.8)]),
    ("bxw", "boot storm warm: 8 clones / one shared image (pairs)", "ratio", True, [("v", ">=", 0.8)]),
    ("desk", "desktop mix: 8 clones, randrw 70 % read, 4 KiB, libaio qd4 direct, aggregate", "IOPS", True, []),
    ("cl1", "clone creation, 1 GiB image (command)", "ms", False, []),
    ("cl16", "clone creation, 16 GiB image (command)", "ms", False, []),
    ("clx", "clone creation 16 GiB / 1 GiB (pairs)", "ratio", False, [("v", "<=", 1.2)]),
    ("clxa", "clone creation, 1 GiB image, one setxattr (no process start-up)", "ms", False, [("v", "<", 2.0)]),
    ("clxb", "clone creation setxattr 16 GiB / 1 GiB (pairs)", "ratio", False, [("v", "<=", 1.2)]),
    ("clN", "N clones of one image, one command each, total", "s", False, []),
    ("fw", "random 4 KiB writes (libaio qd16 direct) into a fresh clone", "IOPS", True, []),
    ("fwr", "the same writes again (rewrite)", "IOPS", True, []),
    ("fwx", "first-write penalty: fresh clone / rewrite (pairs)", "ratio", True, []),
    ("sp", "space of a clone after 16 MiB of random 4 KiB writes, on disk, all replicas", "MiB", False, []),
    ("spq", "QCOW2 overlay, the same writes (qemu-io): its st_blocks", "MiB", False, []),
    ("mc", "metadata: create (+ 1 KiB write, close)", "files/s", True, [("mfs", ">=", 2.0)]),
    ("ms", "metadata: stat, cold", "files/s", True, [("mfs", ">=", 2.0)]),
    ("mr", "metadata: readdir, cold", "entries/s", True, []),
    ("mu", "metadata: unlink", "files/s", True, [("mfs", ">=", 2.0)]),
]
CPU_JOBS = ["seqw", "seqr", "rwp", "rrp", "rwa", "rra", "bsc", "bsw", "bcc", "desk"]
for _j in CPU_JOBS:
    _r = next(r for r in ROWS if r[0] == _j)
    ROWS.append(("cpu_" + _j, "CPU s/GiB: " + _r[1], "s/GiB", False, [("mfs", "<=", 0.5)]))
META = {r[0]: r for r in ROWS}


class Results:
    """Samples per (row, system) in repeat order, errors and n/a marks;
    every event is also appended to a JSON-lines file as it happens."""

    def __init__(self, path):
        self.path = path
        self.samples, self.errors, self.na, self.notes = {}, {}, {}, {}

    def _log(self, d):
        with open(self.path, "a") as f:
            f.write(json.dumps(d) + "\n")

    def add(self, row, sysname, rep, value):
        if value is None:
            return
        self.samples.setdefault((row, sysname), []).append((rep, value))
        self._log({"row": row, "sys": sysname, "rep": rep, "value": value})

    def error(self, rows, sysname, msg):
        for row in rows:
            self.errors.setdefault((row, sysname), msg)
        self._log({"rows": rows, "sys": sysname, "error": msg})

    def mark_na(self, rows, sysname, why):
        for row in rows:
            self.na[(row, sysname)] = why

    def note(self, row, text):
        self.notes[row] = (self.notes.get(row, "") + " " + text).strip()


# ---------------------------------------------------------------- jobs


class Suite:
    def __init__(self, cfg):
        self.cfg = cfg
        self.work = cfg["work"]
        self.systems = [System(d, cfg) for d in cfg["systems"]]
        self.up = [s for s in self.systems if s.status == "up"]
        self.R = int(cfg["repeats"])
        self.S = int(cfg["size"])
        self.DS = int(cfg["desk_size"])
        self.RT = int(cfg["runtime"])
        self.res = Results(os.path.join(self.work, "results.jsonl"))
        for s in self.systems:
            if s.status != "up":
                self.res.mark_na([r[0] for r in ROWS], s.name,
                                 "skipped" if s.status == "skip" else "ERROR (start failed, see Systems)")
            elif s.name not in CLONING:
                self.res.mark_na(["bcc", "bcw", "bxc", "bxw", "cl1", "cl16", "clx", "clN", "fw", "fwr", "fwx", "sp",
                                  "cpu_bcc"], s.name, "n/a (no clones)")
            if s.name != "vdifs" and s.status == "up":
                self.res.mark_na(["clxa", "clxb"], s.name, "n/a")

    def rot(self, r, systems=None):
        """The systems in an order that rotates with the repeat, so that no
        system always runs first (or right after another one)."""
        s = systems if systems is not None else self.up
        k = r % len(s) if s else 0
        return s[k:] + s[:k]

    def guard(self, rows, sysm, fn, *a):
        """Runs one measurement; a failure becomes an ERROR in those rows
        for that system and the run goes on."""
        try:
            return fn(*a)
        except Exception as e:  # noqa: BLE001 (any failure is a result)
            msg = str(e) if isinstance(e, (Fail, OSError)) else f"{type(e).__name__}: {e}"
            log(f"{sysm.name}: {'/'.join(rows)} failed: {msg}")
            if not isinstance(e, (Fail, OSError)):
                traceback.print_exc()
            self.res.error(rows, sysm.name, msg.replace("\n", " ")[:300])
            return None

    def fio(self, s, row, rep, args, metric, cpu=True):
        f = Fio(s, args, metric, self.work)
        self.res.add(row, s.name, rep, f.value)
        if cpu and ("cpu_" + row) in META:
            self.res.add("cpu_" + row, s.name, rep, f.cpu_per_gib)
        return f.value

    def path(self, s, name):
        return os.path.join(s.mnt, "suite", name)

    # -- sequential and random -------------------------------------------

    def seq(self):
        for r in range(self.R):
            for s in self.rot(r):
                def w(s=s, r=r):
                    f = self.path(s, "seq.dat")
                    rm(f)
                    self.fio(s, "seqw", r, ["--name=w", f"--filename={f}", f"--size={self.S}", "--rw=write",
                                            "--bs=1M", "--ioengine=psync", "--end_fsync=1"], "MB/s")
                self.guard(["seqw", "cpu_seqw"], s, w)
            for s in self.rot(r):
                def rd(s=s, r=r):
                    drop()
                    self.fio(s, "seqr", r, ["--name=r", f"--filename={self.path(s, 'seq.dat')}", f"--size={self.S}",
                                            "--rw=read", "--bs=1M", "--ioengine=psync", "--readonly"], "MB/s")
                self.guard(["seqr", "cpu_seqr"], s, rd)
            log(f"sequential, repeat {r + 1}/{self.R} done")

    def rand(self):
        common = ["--bs=4k", f"--size={self.S}", "--time_based", f"--runtime={self.RT}", "--allow_file_create=0",
                  "--randrepeat=0"]
        jobs = [
            ("rwp", ["--rw=randwrite", "--ioengine=psync", "--numjobs=4", "--end_fsync=1"], False),
            ("rrp", ["--rw=randread", "--ioengine=psync", "--numjobs=4", "--readonly"], True),
            ("rwa", ["--rw=randwrite", "--ioengine=libaio", "--iodepth=16", "--direct=1"], False),
            ("rra", ["--rw=randread", "--ioengine=libaio", "--iodepth=16", "--direct=1", "--readonly"], True),
        ]
        for row, args, cold in jobs:
            for r in range(self.R):
                for s in self.rot(r):
                    def one(s=s, r=r, row=row, args=args, cold=cold):
                        if cold:
                            drop()
                        self.fio(s, row, r, [f"--name={row}", f"--filename={self.path(s, 'seq.dat')}"] + common + args,
                                 "IOPS")
                    self.guard([row, "cpu_" + row], s, one)
            log(f"{row} done")

    # -- boot storm and desktop mix ---------------------------------------

    def storm_args(self, files):
        a = ["--bs=64k", "--rw=read", "--ioengine=psync", f"--size={self.S}", "--readonly"]
        for i, f in enumerate(files):
            a += [f"--name=boot{i}", f"--filename={f}"]
        return a

    def boot(self):
        ready = []
        for s in self.up:
            def prep(s=s):
                d = self.path(s, "boot")
                os.makedirs(d, exist_ok=True)
                img = os.path.join(d, "boot.img")
                if not os.path.exists(img):
                    ch.cmd_mkimage(img, str(self.S), str(CHUNK), "1")
                if s.name in CLONING:
                    for i in range(8):
                        if not os.path.exists(os.path.join(d, f"c{i}.img")):
                            s.clone(img, os.path.join(d, f"c{i}.img"))
                ready.append(s)
            self.guard(["bsc", "bsw", "bcc", "bcw", "bxc", "bxw", "cpu_bsc", "cpu_bsw", "cpu_bcc"], s, prep)
        ready = [s for s in self.up if s in ready]
        for r in range(self.R):
            for s in self.rot(r, ready):
                d = self.path(s, "boot")
                shared = [os.path.join(d, "boot.img")] * 8
                clones = [os.path.join(d, f"c{i}.img") for i in range(8)]
                v = {}
                for row, files, cold in (("bsc", shared, True), ("bsw", shared, False),
                                         ("bcc", clones, True), ("bcw", clones, False)):
                    if row in ("bcc", "bcw") and s.name not in CLONING:
                        continue

                    def one(s=s, r=r, row=row, files=files, cold=cold):
                        if cold:
                            drop()
                        return self.fio(s, row, r, self.storm_args(files), "MB/s")
                    v[row] = self.guard([row, "cpu_" + row], s, one)
                for x, a, b in (("bxc", "bcc", "bsc"), ("bxw", "bcw", "bsw")):
                    if v.get(a) and v.get(b):
                        self.res.add(x, s.name, r, v[a] / v[b])
            log(f"boot storm, repeat {r + 1}/{self.R} done")
        self.res.note("bsc", f"8 fio jobs, each reading the whole {self.S // MIB} MiB image sequentially (64 KiB, psync,"
                             f" buffered); aggregate = bytes of all 8 / the longest job's runtime. Cold: caches dropped"
                             f" before; warm: right after, no drop. Clones (MooseFS snapshots, vdifs clones) made once"
                             f" per system before the repeats; the same 8 for every repeat.")

    def desk(self):
        rt = ["--time_based", f"--runtime={self.RT}"]
        ready = []
        for s in self.up:
            def prep(s=s):
                d = self.path(s, "desk")
                os.makedirs(d, exist_ok=True)
                base = os.path.join(d, "base.img")
                if not os.path.exists(base):
                    ch.cmd_mkimage(base, str(self.DS), str(CHUNK), "1")
                if s.name not in CLONING:  # full copies, made once (nothing to copy on write)
                    for i in range(8):
                        c = os.path.join(d, f"c{i}.img")
                        if not os.path.exists(c):
                            subprocess.run(["cp", "--reflink=never", base, c], check=True)
                    os.sync()
                ready.append(s)
            self.guard(["desk", "cpu_desk"], s, prep)
        ready = [s for s in self.up if s in ready]
        for r in range(self.R):
            for s in self.rot(r, ready):
                def one(s=s, r=r):
                    d = self.path(s, "desk")
                    files = [os.path.join(d, f"c{i}.img") for i in range(8)]
                    if s.name in CLONING:  # fresh clones every repeat
                        for f in files:
                            rm(f)
                        s.settle()
                        for f in files:
                            s.clone(os.path.join(d, "base.img"), f)
                    a = ["--bs=4k", "--rw=randrw", "--rwmixread=70", "--ioengine=libaio", "--iodepth=4", "--direct=1",
                         f"--size={self.DS}", "--randrepeat=0"] + rt
                    for i, f in enumerate(files):
                        a += [f"--name=desk{i}", f"--filename={f}"]
                    self.fio(s, "desk", r, a, "IOPS")
                self.guard(["desk", "cpu_desk"], s, one)
            log(f"desktop mix, repeat {r + 1}/{self.R} done")
        self.res.note("desk", f"8 fio jobs, one per file, randrw rwmixread=70 bs=4k libaio iodepth=4 direct=1, "
                              f"{self.RT} s; base {self.DS // MIB} MiB of random data. MooseFS and vdifs: 8 fresh "
                              f"clones (snapshots) of the base every repeat; local and passthrough: 8 full copies "
                              f"(`cp`), made once. Aggregate IOPS = reads + writes of all 8 jobs.")

    # -- clones ------------------------------------------------------------

    def clones(self):
        cs = [s for s in self.up if s.name in CLONING]
        if not cs:
            return
        npairs = max(self.R, 5 if self.cfg["quick"] else 20)
        ready = []
        for s in cs:
            def prep(s=s):
                d = self.path(s, "cl")
                os.makedirs(os.path.join(d, "c"), exist_ok=True)
                for name, size in (("img1g.img", GIB), ("img16g.img", 16 * GIB)):
                    if not os.path.exists(os.path.join(d, name)):
                        ch.cmd_mkimage(os.path.join(d, name), str(size), str(CHUNK), "0")
                ready.append(s)
            self.guard(["cl1", "cl16", "clx", "clxa", "clxb", "clN", "fw", "fwr", "fwx", "sp"], s, prep)
        cs = [s for s in cs if s in ready]
        # Creation: pairs, a 16 GiB clone next to a 1 GiB one, which one
        # goes first alternating (the first of a pair tends to be slower).
        for i in range(npairs):
            for s in self.rot(i, cs):
                def pair(s=s, i=i):
                    d = self.path(s, "cl")
                    order = ("img1g", "img16g") if i % 2 == 0 else ("img16g", "img1g")
                    t = {}
                    for name in order:
                        t0 = ch.now()
                        s.clone(os.path.join(d, name + ".img"), os.path.join(d, "c", f"{name}-{i}.img"))
                        t[name] = ch.ms(ch.now() - t0)
                    t = [t["img1g"], t["img16g"]]
                    self.res.add("cl1", s.name, i, t[0])
                    self.res.add("cl16", s.name, i, t[1])
                    self.res.add("clx", s.name, i, t[1] / t[0])
                    if s.name == "vdifs":
                        dfd = os.open(os.path.join(d, "c"), os.O_RDONLY | os.O_DIRECTORY)
                        try:
                            t = {}
                            for name in order:
                                ino = os.stat(os.path.join(d, name + ".img")).st_ino
                                t0 = ch.now()
                                os.setxattr(dfd, ch.CLONE, f"{ino}/x{name}-{i}.img".encode())
                                t[name] = ch.ms(ch.now() - t0)
                            t = [t["img1g"], t["img16g"]]
                        finally:
                            os.close(dfd)
                        self.res.add("clxa", s.name, i, t[0])
                        self.res.add("clxb", s.name, i, t[1] / t[0])
                self.guard(["cl1", "cl16", "clx"] + (["clxa", "clxb"] if s.name == "vdifs" else []), s, pair)
        self.res.note("cl1", f"{npairs} pairs per system: a clone of a 1 GiB image and one of a 16 GiB image, which first alternating (both "
                             f"with 1 MiB of random data in every 64 MiB chunk, so every chunk exists), the whole "
                             f"command timed (`vdifs-clone SRC DST`; `bench/systems/moosefs.sh snapshot SRC DST`, a "
                             f"shell script around mfsmakesnapshot: its process start-ups count).")
        self.res.note("clxa", "vdifs only: `setxattr(DIR, \"user.vdifs.clone\", \"SRCINO/NAME\")` timed in this "
                              "process (what vdifs-clone does, without its start-up), right after each command pair.")
        # N clones of one image, one command each.
        n = int(self.cfg["nclones"])
        rounds = 1 if self.cfg["quick"] else min(self.R, 3)
        for r in range(rounds):
            for s in self.rot(r, cs):
                def many(s=s, r=r):
                    d = self.path(s, f"many{r}")
                    os.makedirs(d)
                    src = os.path.join(self.path(s, "cl"), "img1g.img")
                    s.settle()
                    t0 = ch.now()
                    for k in range(n):
                        s.clone(src, os.path.join(d, f"c{k}.img"))
                    total = (ch.now() - t0) / 1e9
                    got = len(os.listdir(d))
                    if got != n:
                        raise Fail(f"{got} clones in {d}, expected {n}")
                    self.res.add("clN", s.name, r, total)
                    rm(d)
                self.guard(["clN"], s, many)
        self.res.note("clN", f"N = {n}, {rounds} round(s) per system, each into an empty directory, deleted after.")
        # First-write penalty: a fresh clone of the boot image each repeat.
        nios = 2048 if self.cfg["quick"] else 16384
        for r in range(self.R):
            for s in self.rot(r, cs):
                def fw(s=s, r=r):
                    f = self.path(s, "fw.img")
                    s.clone(self.path(s, "boot/boot.img"), f)
                    a = ["--name=fw", f"--filename={f}", "--rw=randwrite", "--bs=4k", f"--size={self.S}",
                         f"--number_ios={nios}", "--randrepeat=1", "--randseed=4242", "--allow_file_create=0",
                         "--ioengine=libaio", "--iodepth=16", "--direct=1", "--end_fsync=1"]
                    v1 = self.fio(s, "fw", r, a, "IOPS")
                    v2 = self.fio(s, "fwr", r, a, "IOPS")
                    self.res.add("fwx", s.name, r, v1 / v2)
                    rm(f)
                self.guard(["fw", "fwr", "fwx"], s, fw)
        self.res.note("fw", f"a fresh clone of the boot image every repeat; fio randwrite 4 KiB, {nios} I/Os, "
                            f"--randseed=4242 (the same offsets both times), libaio qd16 direct, end_fsync.")
        # Space: 16 MiB of scattered 4 KiB writes into a fresh clone, and
        # into a QCOW2 overlay (on every system).
        for s in self.up:
            if s in cs:
                def space(s=s):
                    f = self.path(s, "sp.img")
                    s.settle()
                    b0 = s.backing()[1]
                    s.clone(self.path(s, "boot/boot.img"), f)
                    ch.cmd_scatter(f, str(self.S), "4096", "77")
                    s.settle()
                    self.res.add("sp", s.name, 0, (s.backing()[1] - b0) / MIB)
                self.guard(["sp"], s, space)

            def qcow(s=s):
                base = self.path(s, "boot/boot.img")
                if not os.path.exists(base):
                    raise Fail("no boot image (boot storm preparation failed)")
                ov = self.path(s, "sp.qcow2")
                rm(ov)
                subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "raw", ov], check=True,
                               stdout=subprocess.DEVNULL)
                cmds = "".join(f"write -P 0x{(i % 255) + 1:02x} {off} 4k\n"
                               for i, off in enumerate(ch.offsets(self.S, 4096, 77)))
                p = subprocess.run(["qemu-io", "-f", "qcow2", ov], input=cmds, capture_output=True, text=True)
                if p.returncode or p.stdout.count("wrote 4096/4096") != 4096:
                    raise Fail(f"qemu-io: exit {p.returncode}: {(p.stderr or p.stdout).strip()[-300:]}")
                os.sync()
                self.res.add("spq", s.name, 0, os.stat(ov).st_blocks * 512 / MIB)
            self.guard(["spq"], s, qcow)
        self.res.note("sp", "4096 writes of 4 KiB at distinct random offsets (seed 77) into a fresh clone of the boot "
                            "image, fsync; bytes (st_blocks) that appeared on the local disk: vdifs DIR/ds*/ (its data "
                            "servers), MooseFS everything under its DIR but the mount (chunkservers, master); both "
                            "keep 2 copies. Deleted files the system has not freed yet would count.")
        self.res.note("spq", "`qemu-img create -f qcow2 -b boot.img -F raw` on each system's mount, the same 4096 "
                             "offsets written with qemu-io; st_blocks of the overlay as the mount reports it.")

    # -- metadata ------------------------------------------------------------

    def meta(self):
        n = int(self.cfg["nmeta"])
        buf = b"x" * 1024
        for r in range(self.R):
            for s in self.rot(r):
                def one(s=s, r=r):
                    d = self.path(s, f"meta{r}")
                    rm(d)
                    os.makedirs(d)
                    names = [os.path.join(d, f"f{i:05d}") for i in range(n)]
                    s.settle()
                    t0 = ch.now()
                    for p in names:
                        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                        os.write(fd, buf)
                        os.close(fd)
                    self.res.add("mc", s.name, r, n / ((ch.now() - t0) / 1e9))
                    drop()
                    s.settle()
                    t0 = ch.now()
                    for p in names:
                        os.stat(p)
                    self.res.add("ms", s.name, r, n / ((ch.now() - t0) / 1e9))
                    drop()
                    t0 = ch.now()
                    got = len(os.listdir(d))
                    self.res.add("mr", s.name, r, got / ((ch.now() - t0) / 1e9))
                    if got != n:
                        raise Fail(f"readdir found {got} files, expected {n}")
                    s.settle()
                    t0 = ch.now()
                    for p in names:
                        os.unlink(p)
                    self.res.add("mu", s.name, r, n / ((ch.now() - t0) / 1e9))
                    os.rmdir(d)
                self.guard(["mc", "ms", "mr", "mu"], s, one)
        self.res.note("mc", f"{n} files in one new directory, from this Python process: create (open O_CREAT|O_EXCL, "
                            f"write 1 KiB, close), stat each (caches dropped before: the kernel forgets the dentries "
                            f"and inodes), os.listdir (caches dropped before), unlink each.")

    # -- all -----------------------------------------------------------------

    # Files no later block reads, removed after each block: every system is
    # up for the whole run, so their images add up otherwise.
    DONE_WITH = {"rand": ["seq.dat"], "boot": [f"boot/c{i}.img" for i in range(8)], "desk": ["desk"],
                 "clones": ["cl", "boot", "sp.img", "sp.qcow2"]}

    def free_space(self, block):
        names = self.DONE_WITH.get(block)
        if not names:
            return
        for s in self.up:
            for n in names:
                rm(self.path(s, n))
            if s.name == "moosefs":
                # mfsmount keeps the space of the files it made until its
                # session ends (bench/systems/README.md): a new session.
                sh = os.path.join(self.cfg["repo"], "bench", "systems", "moosefs.sh")
                for op in ("stop", "start"):
                    p = subprocess.run([sh, op, s.root], capture_output=True, text=True)
                    if p.returncode:
                        log(f"moosefs: {op} between blocks failed: {(p.stderr or p.stdout).strip()[-300:]}")
            s.settle()

    def run(self):
        for s in self.up:
            os.makedirs(self.path(s, ""), exist_ok=True)
        t0 = time.monotonic()
        blocks = ("seq", "rand", "boot", "desk", "clones", "meta")
        for k, name in enumerate(blocks):
            log(f"block {name}")
            getattr(self, name)()
            log(f"block {name} done ({time.monotonic() - t0:.0f} s in)")
            self.free_space(name)
            if k + 1 < len(blocks):  # a crash or a full disk later keeps what was measured
                self.cfg["meta"]["partial"] = f"partial: blocks {', '.join(blocks[:k + 1])} done"
                report(self.cfg, self.res, self.systems)
        self.cfg["meta"].pop("partial", None)
        self.res.note("cpu_seqw", "CPU s/GiB = (utime + stime of the system's processes, all threads, from "
                                  "/proc/PID/stat before and after + fio's own usr + sys CPU from its JSON) / GiB "
                                  "read + written by fio. Kernel threads (writeback, kworkers, the block layer's) "
                                  "are not counted; neither is the work the kernel does in fio's system calls on "
                                  "behalf of the FUSE daemon (that is fio's sys time, counted). local: fio only.")


# ---------------------------------------------------------------- report


def summarize(res, systems):
    """Per row: per-system statistics, ratios (median of per-repeat pair
    ratios), target check.  Returns a list of dicts (the JSON rows)."""
    names = [s.name for s in systems]
    out = []
    for rid, fig, unit, _, targets in ROWS:
        row = {"id": rid, "figure": fig, "unit": unit, "systems": {}, "targets": targets}
        for n in names:
            key = (rid, n)
            if key in res.samples:
                vals = [v for _, v in res.samples[key]]
                row["systems"][n] = {"samples": res.samples[key], "stats": ch.stats(vals)}
                if key in res.errors:
                    row["systems"][n]["error"] = res.errors[key]
            elif key in res.errors:
                row["systems"][n] = {"error": res.errors[key]}
            elif key in res.na:
                row["systems"][n] = {"na": res.na[key]}
            else:
                row["systems"][n] = {"na": "-"}
        for peer, k in (("moosefs", "mfs"), ("passthrough", "pt")):
            a, b = res.samples.get((rid, "vdifs")), res.samples.get((rid, peer))
            if a and b:
                bm = dict(b)
                pr = [v / bm[rep] for rep, v in a if rep in bm and bm[rep]]
                if pr:
                    row["ratio_" + k] = {"pairs": pr, "stats": ch.stats(pr), "value": statistics.median(pr)}
        checks = []
        for kind, op, tv in targets:
            if kind == "v":
                st = row["systems"].get("vdifs", {}).get("stats")
                v = st["median"] if st else None
            else:
                v = row.get("ratio_" + kind, {}).get("value")
            if v is None:
                checks.append(None)
            else:
                checks.append({"<": v < tv, "<=": v <= tv, ">": v > tv, ">=": v >= tv}[op])
        if not targets:
            row["result"] = "info"
        elif all(c is None for c in checks):
            row["result"] = "n/a"
        else:
            ok = all(c for c in checks if c is not None)
            row["result"] = ("PASS" if ok else "MISS") + (" (partial)" if None in checks else "")
        out.append(row)
    return out


def cell(c, unit):
    if "error" in c and "stats" not in c:
        return "ERROR: " + c["error"].replace("|", "\\|")
    if "na" in c:
        return c["na"]
    s = c["stats"]
    u = "" if unit == "ratio" else unit
    t = f"**{ch.fmt(s['median'], 'ratio' if unit == 'ratio' else u)}**"
    if s["n"] > 1:
        t += f" ({ch.fmt(s['min'], 'ratio' if unit == 'ratio' else '')}–{ch.fmt(s['max'], 'ratio' if unit == 'ratio' else '')})"
    if "error" in c:
        t += " (ERROR in some repeats: " + c["error"].replace("|", "\\|") + ")"
    return t


def ratio_cell(row, k):
    r = row.get("ratio_" + k)
    if not r:
        return "-"
    s = r["stats"]
    t = f"**{s['median']:.2f}**"
    if s["n"] > 1:
        t += f" ({s['min']:.2f}–{s['max']:.2f})"
    return t


def target_text(targets):
    lab = {"pt": "vdifs/pt", "mfs": "vdifs/mfs", "v": "vdifs"}
    return ", ".join(f"{lab[k]} {op} {tv:g}" for k, op, tv in targets) or "(info)"


def report(cfg, res, systems):
    meta = cfg["meta"]
    rows = summarize(res, systems)
    names = [s.name for s in systems]
    o = [f"# vdifs benchmark suite ({meta.get('date', '')})", ""]
    if meta.get("partial"):
        o += [f"**Unfinished run** ({meta['partial']}): the report is rewritten after every block.", ""]
    o.append(f"Mode: {meta.get('mode', '')}. {meta.get('config', '')}")
    o.append("")
    o.append("Systems: " + "; ".join(f"{s.name}: {s.status}" + (f" ({s.msg})" if s.msg else "") for s in systems) + ".")
    o.append("")
    o.append("Machine: " + meta.get("machine", "") + ".")
    o.append("")
    o.append(f"Build: {meta.get('build', '')}. Runtime: {meta.get('runtime', '')}.")
    o.append("")
    o.append("Each cell: the median over the repeats, (min–max) after it. Ratios (vdifs/moosefs, vdifs/passthrough) "
             "are medians of per-repeat pair ratios: in each repeat every system runs the same job one after the "
             "other, so a pair saw the same moment of the machine. pt = passthrough (the FUSE ceiling), "
             "mfs = MooseFS.")
    o.append("")
    o.append("| figure | " + " | ".join(names) + " | vdifs/moosefs | vdifs/passthrough | target | result |")
    o.append("|---|" + "---|" * (len(names) + 4))
    for r in rows:
        unit = r["unit"]
        fig = r["figure"] + ("" if unit == "ratio" else f" ({unit})")
        o.append(f"| {fig} | " + " | ".join(cell(r["systems"][n], unit) for n in names)
                 + f" | {ratio_cell(r, 'mfs')} | {ratio_cell(r, 'pt')} | {target_text(r['targets'])} | {r['result']} |")
    if res.notes:
        o += ["", "Notes:", ""]
        for rid, _, _, _, _ in ROWS:
            if rid in res.notes:
                o.append(f"- {META[rid][1]}: {res.notes[rid]}")
    counts = {}
    for r in rows:
        k = r["result"].split()[0]
        counts[k] = counts.get(k, 0) + 1
    o += ["", "Summary: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))]
    svg = os.path.basename(cfg["out"]) + ".svg"
    o += ["", f"![suite chart]({svg})"]
    text = "\n".join(o) + "\n"
    with open(cfg["out"] + ".md", "w") as f:
        f.write(text)
    doc = {"meta": meta, "systems": [{"name": s.name, "status": s.status, "msg": s.msg} for s in systems],
           "config": {k: cfg[k] for k in ("quick", "repeats", "size", "desk_size", "runtime", "nclones", "nmeta")},
           "rows": rows}
    with open(cfg["out"] + ".json", "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    chart(doc, cfg["out"] + ".svg")
    sys.stdout.write(text)


# ---------------------------------------------------------------- chart

COLORS = {"local": "#8c8c8c", "passthrough": "#4c78a8", "moosefs": "#f58518", "vdifs": "#54a24b"}
CHART_ROWS = ["seqw", "seqr", "rwp", "rrp", "rwa", "rra", "bsc", "bsw", "bcc", "bcw", "desk", "mc", "ms", "mr", "mu"]
SHORT = {"seqw": "seq write", "seqr": "seq read cold", "rwp": "4K rand write psync×4",
         "rrp": "4K rand read psync×4", "rwa": "4K rand write qd16", "rra": "4K rand read qd16",
         "bsc": "boot storm cold", "bsw": "boot storm warm", "bcc": "boot 8 clones cold",
         "bcw": "boot 8 clones warm", "desk": "desktop mix", "mc": "create", "ms": "stat", "mr": "readdir",
         "mu": "unlink"}


def esc(t):
    return str(t).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def chart(doc, path):
    """Grouped bars, one group per job (higher is better), each system's
    median normalised to the FUSE ceiling (passthrough = 1.0), or to the
    local disk when passthrough did not run; bars past CAP are cut and
    carry their value."""
    names = [s["name"] for s in doc["systems"]]
    rows = {r["id"]: r for r in doc["rows"]}

    def med(rid, n):
        st = rows[rid]["systems"].get(n, {}).get("stats")
        return st["median"] if st else None

    ref = "passthrough" if any(med(r, "passthrough") for r in CHART_ROWS) else "local"
    groups = []
    for rid in CHART_ROWS:
        base = med(rid, ref)
        if rid in ("bcc", "bcw"):  # clones against the shared image of the same reference
            base = med("bsc" if rid == "bcc" else "bsw", ref)
        vals = {n: (med(rid, n) / base if base and med(rid, n) is not None else None) for n in names}
        if any(v is not None for v in vals.values()):
            groups.append((rid, vals))
    CAP = 2.0
    W, H = 980, 460
    left, right, top, bottom = 56, 16, 64, 120
    pw, ph = W - left - right, H - top - bottom
    gw = pw / max(1, len(groups))
    bw = min(16.0, (gw - 10) / max(1, len(names)))
    y = lambda v: top + ph - min(v, CAP) / CAP * ph  # noqa: E731
    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
         f'font-family="Helvetica, Arial, sans-serif" font-size="11">',
         f'<rect width="{W}" height="{H}" fill="#ffffff"/>',
         f'<text x="{left}" y="22" font-size="15" font-weight="bold" fill="#222">'
         f'{esc("vdifs benchmark suite " + doc["meta"].get("date", ""))}</text>',
         f'<text x="{left}" y="40" fill="#555">{esc(f"median of each job, normalised to {ref} = 1.0 (higher is better; bars cut at {CAP:g}x carry their value)")}</text>']
    for k in range(0, int(CAP / 0.25) + 1):
        v = k * 0.25
        yy = y(v)
        s.append(f'<line x1="{left}" y1="{yy:.1f}" x2="{W - right}" y2="{yy:.1f}" '
                 f'stroke="{"#444" if v == 1.0 else "#e3e3e3"}" stroke-width="{1.2 if v == 1.0 else 1}"/>')
        if k % 2 == 0:
            s.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end" fill="#555">{v:.1f}</text>')
    for gi, (rid, vals) in enumerate(groups):
        x0 = left + gi * gw + (gw - bw * len(names)) / 2
        for ni, n in enumerate(names):
            v = vals.get(n)
            x = x0 + ni * bw
            if v is None:
                s.append(f'<text x="{x + bw / 2:.1f}" y="{top + ph - 3:.1f}" text-anchor="middle" font-size="8" '
                         f'fill="#aaa">–</text>')
                continue
            yy = y(v)
            s.append(f'<rect x="{x + 1:.1f}" y="{yy:.1f}" width="{bw - 2:.1f}" height="{top + ph - yy:.1f}" '
                     f'fill="{COLORS.get(n, "#999")}"><title>{esc(f"{n} {SHORT[rid]}: {v:.2f}")}</title></rect>')
            if v > CAP or n == "vdifs":  # vdifs's bars and cut bars carry their value
                lab = (f"{v:.2f}" if v >= 0.01 else f"{v:.1g}") + ("+" if v > CAP else "")
                s.append(f'<text x="{x + bw / 2:.1f}" y="{yy - 3:.1f}" text-anchor="middle" font-size="8.5" '
                         f'fill="#222">{lab}</text>')
        cx = left + gi * gw + gw / 2
        s.append(f'<text x="{cx:.1f}" y="{top + ph + 12:.1f}" text-anchor="end" fill="#333" '
                 f'transform="rotate(-35 {cx:.1f} {top + ph + 12:.1f})">{esc(SHORT[rid])}</text>')
    if not groups:
        s.append(f'<text x="{left + pw / 2:.1f}" y="{top + ph / 2:.1f}" text-anchor="middle" fill="#555">'
                 f'nothing to show: neither passthrough nor the local disk has figures to normalise to</text>')
    lx = left
    for n in names:
        s.append(f'<rect x="{lx}" y="{H - 22}" width="12" height="12" fill="{COLORS.get(n, "#999")}"/>')
        s.append(f'<text x="{lx + 16}" y="{H - 12}" fill="#333">{esc(n)}</text>')
        lx += 24 + 7 * len(n) + 20
    s.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(s) + "\n")


# ---------------------------------------------------------------- main


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "run":
        cfg = json.load(open(sys.argv[2]))
        suite = Suite(cfg)
        t0 = time.monotonic()
        suite.run()
        dt = int(time.monotonic() - t0)
        m = cfg["meta"]
        m["machine"] = m.get("machine", "") + f"; load average at the end {' '.join(open('/proc/loadavg').read().split()[:3])}"
        m["runtime"] = f"{dt // 60} min {dt % 60} s (jobs only)"
        report(cfg, suite.res, suite.systems)
        return None
    if len(sys.argv) == 4 and sys.argv[1] == "chart":
        chart(json.load(open(sys.argv[2])), sys.argv[3])
        return None
    sys.exit(f"usage: {sys.argv[0]} run CONFIG.json | chart RESULT.json OUT.svg")


if __name__ == "__main__":
    main()
