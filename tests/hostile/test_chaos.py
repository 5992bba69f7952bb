#!/usr/bin/env python3
"""Chaos over iSCSI/TCP on loopback: many logins that end every way a peer can end
them, and initiators killed with SIGKILL in the middle of their writes
(python3 stdlib only).

One iserd with two LUNs, LUN 0 ram:16M and LUN 1 file:<tmp>/lun1.img,size=16M.

1. ISERD_CHAOS_CYCLES (default 1000) login cycles from 4 threads, each cycle
   one of: login + TUR + Logout; login + WRITE + close without Logout; login
   then a TCP RST; the security stage of a login then close; a partial BHS then
   close; connect and close; a discovery session with SendTargets + Logout.
   Afterwards sessions, connections and tasks are 0 and iserd holds as many
   fds as at the baseline.

2. ISERD_CHAOS_WRITERS (default 4) initiator processes (chaos_writer.py), half
   on each LUN, each writing stamped blocks into its own LBA range with
   ISERD_CHAOS_QD (default 8) WRITEs outstanding (4% of them 80 KiB, so part
   of the data goes by R2T and Data-Out) and logging every issued and every
   acknowledged write. ISERD_CHAOS_KILLS (default 20) times a writer that has
   had writes acknowledged since it started is killed with SIGKILL at a random
   moment and restarted (same InitiatorName and ISID, generations continue).
   At the end every writer is killed mid-I/O, and one checker session reads
   every block of every range. The rule, per block B of writer W:
     let A = the largest generation of a write covering B that W logged as
     acknowledged (GOOD SCSI Response), and I = the generations W logged as
     issued for B. B must hold W's stamp for B with a good CRC and a generation
     G in I with G >= A. A write in flight at a kill (issued, not acknowledged)
     may or may not have landed, so G may be larger than A; it may never be
     smaller (a lost acknowledged write), nor anything not issued. A block no
     write ever covered with an acknowledgement may also still be zero.
   Afterwards sessions, connections and tasks are 0 and fds at the baseline.

Long runs: ISERD_CHAOS_CYCLES=10000 ISERD_CHAOS_KILLS=200 (not in CI).
"""

import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import hostile_lib as hl
from hostile_lib import BLOCK, RSVD, CaseFail, Closed, Conn, Timeout, kv

import chaos_writer as cw

CYCLES = int(os.environ.get("ISERD_CHAOS_CYCLES", "1000"))
KILLS = int(os.environ.get("ISERD_CHAOS_KILLS", "20"))
WRITERS = int(os.environ.get("ISERD_CHAOS_WRITERS", "4"))
QD = int(os.environ.get("ISERD_CHAOS_QD", "8"))
RANGE = 1024            # blocks per writer (512 KiB)
LUN_BLOCKS = 16 * 1024 * 1024 // BLOCK
THREADS = 4
HERE = os.path.dirname(os.path.abspath(__file__))


class Ctx:
    fds0 = 0
    d = None


CTX = Ctx()


def zero_and_fds(d, what):
    """Sessions, connections, tasks back to 0 and fds to the baseline."""
    st = d.wait_stats(lambda s: s["sessions"] == 0 and s["connections"] == 0 and
                      s["tasks"] == 0, timeout=30, what="sessions, connections, tasks 0 " + what)
    deadline = time.monotonic() + 10
    while d.fds() != CTX.fds0 and time.monotonic() < deadline:
        time.sleep(0.1)
    if d.fds() != CTX.fds0:
        raise CaseFail("%s: iserd holds %d fds, baseline %d" % (what, d.fds(), CTX.fds0))
    return st


def clear_ua(c, lun):
    """TEST UNIT READY on lun until the UNIT ATTENTIONs of a new session are taken."""
    for _ in range(4):
        st, _, p, _, _ = c.scsi(b"\x00" * 6, lun=lun)
        if st == 0:
            return
    raise CaseFail("TEST UNIT READY on LUN %d: status 0x%02x %r" % (lun, st, p))


def setup(d):
    """Warm both LUNs once on every reactor, then take the fd baseline with nothing connected.

    A file LUN sets up its io_uring ring (and its eventfd) on a reactor the first time that
    reactor does I/O on it, and keeps them while the LUN lives: so as many sessions as there are
    reactors, held at once (iserd places a new connection on the least loaded reactor), each
    write to both LUNs before the baseline is taken."""
    n = int(os.environ.get("ISD_TEST_REACTORS", "") or 1)
    cs = [hl.session(d.port) for _ in range(n)]
    for c in cs:
        for lun in (0, 1):
            clear_ua(c, lun)
            data = cw.block(0, 0, 0)
            h = c.cmd_bhs(struct.pack(">BBIBHB", 0x2A, 0, LUN_BLOCKS - 1, 0, 1, 0), BLOCK,
                          write=True, dsl=BLOCK, lun=lun)
            c.send_pdu(h, data=data)
            c.cmdsn += 1
            p = c.wait(lambda q, i=struct.unpack_from(">I", h, 16)[0]: q.itt == i)
            if p.bhs[3] != 0:
                raise CaseFail("warm-up WRITE to LUN %d: %r" % (lun, p))
    for c in cs:
        c.logout()
        c.close()
    st = d.wait_stats(lambda s: s["sessions"] == 0 and s["connections"] == 0 and
                      s["tasks"] == 0)
    CTX.fds0 = d.fds()
    return "fd baseline %d, stats %s" % (CTX.fds0, st)


# --- 1. login cycles ----------------------------------------------------------------
def one_cycle(d, n, rng, counts):
    kind = rng.randrange(7)
    name = "%s-cyc%d" % (hl.INI_BASE, n)
    c = None
    try:
        c = Conn(d.port, timeout=10)
        c.isid = bytes([0x80, 0x43, 0x59]) + n.to_bytes(3, "big")
        if kind == 0:                       # clean: login, TUR, Logout
            if c.login(name)[0] == 0:
                c.tur()
                c.logout()
        elif kind == 1:                     # login, a WRITE, close without Logout
            if c.login(name)[0] == 0:
                c.tur()
                c.write10(LUN_BLOCKS - 2 - (n % 8), bytes([n & 0xFF]) * BLOCK)
        elif kind == 2:                     # login, then a TCP RST
            c.login(name)
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif kind == 3:                     # the security stage only, then close
            c.login_raw(kv([("InitiatorName", name), ("TargetName", hl.IQN),
                            ("SessionType", "Normal"), ("AuthMethod", "None")]),
                        csg=0, nsg=1, transit=True)
        elif kind == 4:                     # a partial BHS, then close
            c.send(bytes([0x43, 0x87]) + bytes(rng.randrange(1, 46)))
        elif kind == 5:                     # connect, close
            pass
        else:                               # discovery, SendTargets, Logout
            if c.login(name, session_type="Discovery")[0] == 0:
                data = kv([("SendTargets", "All")])
                itt = c.next_itt()
                c.send_pdu(hl.bhs(0x40 | hl.OP_TEXT, 0x80, dsl=len(data), itt=itt,
                                  rest=struct.pack(">III", RSVD, c.cmdsn, c.expstatsn)),
                           data=data)
                c.cmdsn += 1
                c.wait(lambda q: q.itt == itt)
                c.logout()
        counts[kind] += 1
    except (Closed, Timeout, OSError) as e:
        counts["errors"].append("cycle %d kind %d: %s" % (n, kind, e))
    finally:
        if c is not None:
            c.close()


def login_cycles(d):
    counts = [{k: 0 for k in range(7)} for _ in range(THREADS)]
    for cnt in counts:
        cnt["errors"] = []
    t0 = time.monotonic()

    def worker(i):
        rng = random.Random(i * 7919 + 1)
        for n in range(i, CYCLES, THREADS):
            one_cycle(d, n, rng, counts[i])

    th = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    dt = time.monotonic() - t0
    errors = sum((c["errors"] for c in counts), [])
    kinds = [sum(c[k] for c in counts) for k in range(7)]
    if errors:
        raise CaseFail("%d cycles failed, first: %s" % (len(errors), errors[:3]))
    st = zero_and_fds(d, "after %d cycles" % CYCLES)
    return "%d cycles in %.1f s (clean %d, no logout %d, RST %d, mid-login %d, partial BHS " \
        "%d, connect-close %d, discovery %d); logins_ok %d, logins_failed %d; 0 sessions, " \
        "0 connections, 0 tasks, %d fds" % (CYCLES, dt, *kinds, st["logins_ok"],
                                            st["logins_failed"], CTX.fds0)


# --- 2. kill -9 of writers mid-I/O -----------------------------------------------------
class Writer:
    def __init__(self, d, idx, lun, first, logdir):
        self.d, self.idx, self.lun, self.first = d, idx, lun, first
        self.log = os.path.join(logdir, "writer-%d.log" % idx)
        self.err = os.path.join(logdir, "writer-%d.err" % idx)
        self.proc = None
        self.starts = 0
        self.read_to = 0
        self.n_acks = 0

    def acks(self):
        """Acknowledged writes in the log so far (read on from where the last call
        stopped)."""
        try:
            with open(self.log, "rb") as f:
                f.seek(self.read_to)
                data = f.read()
        except FileNotFoundError:
            return 0
        end = data.rfind(b"\n") + 1
        self.n_acks += data[:end].count(b"A ")
        self.read_to += end
        return self.n_acks

    def start(self):
        self.starts += 1
        self.acks0 = self.acks()
        with open(self.err, "ab") as ef:
            self.proc = subprocess.Popen(
                [sys.executable, os.path.join(HERE, "chaos_writer.py"), str(self.d.port),
                 hl.IQN, str(self.lun), str(self.idx), str(self.first), str(RANGE), str(QD),
                 self.log], stdout=ef, stderr=subprocess.STDOUT)

    def check_alive(self):
        if self.proc.poll() is not None:
            with open(self.err, errors="replace") as f:
                raise CaseFail("writer %d exited by itself (%d): %s" % (
                    self.idx, self.proc.returncode, f.read()[-2000:]))

    def wait_progress(self, extra, timeout=60):
        """Until it has `extra` acknowledged writes more than at its start."""
        deadline = time.monotonic() + timeout
        while self.acks() < self.acks0 + extra:
            self.check_alive()
            if time.monotonic() > deadline:
                raise CaseFail("writer %d: no acknowledged write in %d s" % (self.idx, timeout))
            time.sleep(0.02)

    def kill(self):
        self.check_alive()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


def check_writer(c, w):
    """Reads w's range through session c and applies the rule (module docstring)."""
    data = b""
    for lba in range(w.first, w.first + RANGE, 128):
        n = min(128, w.first + RANGE - lba)
        cdb = struct.pack(">BBIBHB", 0x28, 0, lba, 0, n, 0)
        st, got, p, _, _ = c.scsi(cdb, read_len=n * BLOCK, lun=w.lun)
        if st != 0:
            raise CaseFail("checker READ status 0x%02x" % st)
        data += got
    stamps = [cw.parse_block(data[i * BLOCK:(i + 1) * BLOCK]) for i in range(RANGE)]
    held = [s[2] if s is not None else None for s in stamps]
    acked, found = cw.scan_log(w.log, w.first, RANGE, held)
    bad = []
    newer = 0
    for i in range(RANGE):
        lba = w.first + i
        a = acked[i]
        if stamps[i] is None:
            blk = data[i * BLOCK:(i + 1) * BLOCK]
            if a >= 0 or blk != bytes(BLOCK):
                bad.append("LBA %d: %s, last acknowledged generation %d" % (
                    lba, "zeros" if blk == bytes(BLOCK) else "no valid stamp", a))
            continue
        sw, sl, g = stamps[i]
        if sw != w.idx or sl != lba:
            bad.append("LBA %d holds the block of writer %d LBA %d" % (lba, sw, sl))
        elif not found[i]:
            bad.append("LBA %d: generation %d was never issued" % (lba, g))
        elif g < a:
            bad.append("LBA %d: generation %d, but %d was acknowledged (lost write)" %
                       (lba, g, a))
        elif g > a:
            newer += 1
    return bad, sum(1 for a in acked if a >= 0), newer


def kill_writers(d):
    logdir = os.path.join(d.tmp, "writers")
    os.makedirs(logdir, exist_ok=True)
    ws = []
    for i in range(WRITERS):
        lun = i % 2
        first = 64 + (i // 2) * RANGE
        ws.append(Writer(d, i + 1, lun, first, logdir))
    for w in ws:
        w.start()
    rng = random.Random(int(os.environ.get("ISERD_CHAOS_SEED", "0")) or None)
    t0 = time.monotonic()
    tasks_seen = []
    for k in range(KILLS):
        w = rng.choice(ws)
        w.wait_progress(rng.randint(1, 2 * QD))
        time.sleep(rng.uniform(0, 0.3))
        w.kill()
        w.start()
        if k % 4 == 0:
            tasks_seen.append(d.stats()["tasks"])
    for w in ws:   # the last round: every writer killed mid-I/O
        w.wait_progress(1)
    time.sleep(rng.uniform(0, 0.2))
    tasks_seen.append(d.stats()["tasks"])
    for w in ws:
        w.kill()
    dt = time.monotonic() - t0
    zero_and_fds(d, "after the writers were killed")
    c = hl.session(d.port)
    clear_ua(c, 1)
    out = []
    problems = []
    total_acked = 0
    for w in ws:
        bad, acked_blocks, newer = check_writer(c, w)
        total_acked += acked_blocks
        problems += ["writer %d (LUN %d): %s" % (w.idx, w.lun, b) for b in bad]
        out.append("w%d/LUN%d: %d starts, %d acked writes, %d blocks verified acked, %d newer "
                   "unacked" % (w.idx, w.lun, w.starts, w.acks(), acked_blocks, newer))
    c.logout()
    c.close()
    if problems:
        raise CaseFail("%d bad blocks: %s" % (len(problems), "; ".join(problems[:10])))
    if total_acked == 0:
        raise CaseFail("no acknowledged write to check")
    st = zero_and_fds(d, "after the checker")
    return "%d kills + %d in %.1f s, tasks outstanding when sampled %s; %s; " \
        "0 lost acknowledged writes; 0 sessions, 0 connections, 0 tasks, %d fds (logins_ok %d)" % (
            KILLS, len(ws), dt, tasks_seen, "; ".join(out), CTX.fds0, st["logins_ok"])


def main():
    def mk():
        d = hl.Iserd(luns=("ram:16M", "file:@IMG@,size=16M"),
                     env={"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:"
                          "quarantine_size_mb=16"})
        d.luns[1] = d.luns[1].replace("@IMG@", os.path.join(d.tmp, "lun1.img"))
        if os.environ.get("ISERD_CHAOS_KEEP"):
            d.cleanup = lambda: print("kept %s" % d.tmp)
        return d

    cases = [
        ("setup: fd baseline", setup),
        ("%d login cycles (logout, close, RST, mid-login)" % CYCLES, login_cycles),
        ("%d writers, %d kill -9 mid-I/O, RAM and file LUN" % (WRITERS, KILLS), kill_writers),
    ]
    return hl.run("test_chaos", cases, setup=mk)


if __name__ == "__main__":
    sys.exit(main())
