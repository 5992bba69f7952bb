#!/usr/bin/env python3
"""Fencing of a frozen gateway (run by test_rbd_fence.sh, which starts the
one-node Ceph cluster and creates the image; python3 stdlib only).

Two iserd gateways export one RBD image with lock=exclusive as one ALUA LU
(same serial and NAA, groups 1 and 2, alua_peer_state standby):

1. A starts first and takes the image's exclusive lock: A is active/optimized,
   B standby, in RTPG through both and in lun.show; `rbd lock ls` names A's
   client; lun.show says lock owner on A, other on B. B forced active/non-optimized cannot write (A's managed lock
   refuses to hand the lock over).
2. A writer streams WRITEs through A; A is frozen (SIGSTOP) with writes in
   flight, and one more batch is sent to it while frozen (queued in its
   socket, to be processed after it wakes).
3. lun.takeover on B: B breaks A's lock (A's client is blocklisted) and takes
   it; B becomes active/optimized (2Ah/06h on its session), then writes its
   pattern over every block A's writes could reach.
4. A is woken (SIGCONT): the batch queued while it was frozen fails (no GOOD
   status), A's LU becomes unavailable, a new WRITE through A fails, and RTPG
   through A and B show B as the owner (lun.show: lock fenced on A, owner on B).
5. `rbd export`: every block holds B's pattern (no write of A landed after the
   takeover); `ceph osd blocklist ls` lists A's client address.

Environment: ISERD, CEPH_CONF (the cluster's ceph.conf), CEPH_CLIENT (the cephx
id iserd uses), RBD_IMAGE (POOL/IMAGE), TMPDIR_FENCE (scratch). Exits 1 on a
failure.
"""

import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "hostile"))
sys.path.insert(0, HERE)

import hostile_lib as hl  # noqa: E402
from test_alua import AO, SB, UN, expect_groups, good, rpc, rpc_ok  # noqa: E402

TGT = "iqn.2026-11.org.iserd:rbd-fence"
SERIAL = "RBD-FENCE-0001"
NAA = "6001405fedcba9876543210fedcba987"
BLK = 512
CHUNK = 4096                    # bytes per WRITE (within FirstBurstLength: immediate data)
REGION = 1 << 20                # A's writes and B's pattern cover [0, REGION)
BATCH = 8                       # writes in flight per batch

CONF = """
portals = ( { url = "tcp://127.0.0.1:@PORT@"; tpgt = %(group)d; } );
targets = ( {
    name = "%(tgt)s";
    tpgt = %(group)d;
    alua_group = %(group)d;
    alua_peers = [ "%(peer)d/%(peer)d" ];
    alua_peer_state = "standby";
    luns = ( { number = 0; backing = "%(backing)s"; serial = "%(serial)s";
               naa = "%(naa)s"; } );
} );
"""


def ceph(*args):
    conf = os.environ["CEPH_CONF"]
    tool = args[0]
    r = subprocess.run(["timeout", "-k", "5", "60", tool, "-c", conf, "--id", "admin"] +
                       list(args[1:]), capture_output=True, text=True)
    if r.returncode != 0:
        raise hl.CaseFail("%s: exit %d: %s" % (" ".join(args), r.returncode,
                                               r.stderr.strip()[-300:]))
    return r.stdout


def lock_addr(image):
    """The address of the client holding the image's lock, or None."""
    lockers = json.loads(ceph("rbd", "lock", "ls", "--format", "json", image) or "[]")
    if isinstance(lockers, dict):  # Ceph 16 prints {"ID": {...}}
        lockers = list(lockers.values())
    if not lockers:
        return None
    return lockers[0].get("address")


def lock_of(d):
    return rpc_ok(d, "lun.show", {"target": TGT, "lun": 0}).get("lock")


def wait_state(d, state, what, timeout=60):
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        try:
            got = rpc_ok(d, "lun.show", {"target": TGT, "lun": 0}).get("alua_state")
        except (FileNotFoundError, ConnectionRefusedError):
            # iserd listens on its portal before its control socket is up
            time.sleep(0.1)
            continue
        if got == state:
            return
        time.sleep(0.2)
    raise hl.CaseFail("%s: ALUA state %r after %d s, expected %s" % (what, got, timeout, state))


def write_cdb(off, length):
    return struct.pack(">BBIBHB", 0x2A, 0, off // BLK, 0, length // BLK, 0)


def pattern(tag, off):
    """CHUNK bytes naming the writer and the offset (every block different)."""
    out = bytearray()
    for b in range(0, CHUNK, BLK):
        head = ("%s %08x " % (tag, off + b)).encode()
        out += (head * (BLK // len(head) + 1))[:BLK]
    return bytes(out)


def wait_stopped(pid, limit=10.0):
    """kill(SIGSTOP) returns before every thread has stopped: a reactor busy
    on another CPU may still take in a command sent right after it. Wait until
    each thread of pid is in the stopped state."""
    end = time.monotonic() + limit
    while True:
        states = []
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                    states.append(f.read().rsplit(")", 1)[1].split()[0])
            except FileNotFoundError:
                continue
        if states and all(st in ("T", "t") for st in states):
            return
        if time.monotonic() > end:
            raise hl.CaseFail("A did not stop within %.0f s (thread states %r)" % (limit, states))
        time.sleep(0.01)


def send_batch(c, offs, tag):
    """Sends WRITEs with immediate data without waiting; returns {itt: off}."""
    pending = {}
    for off in offs:
        data = pattern(tag, off)
        h = c.cmd_bhs(write_cdb(off, CHUNK), CHUNK, write=True, dsl=len(data))
        pending[struct.unpack_from(">I", h, 16)[0]] = off
        c.send_pdu(h, data=data)
        c.cmdsn = (c.cmdsn + 1) & 0xFFFFFFFF
    return pending


def sense_of(st, p):
    """(key, asc, ascq) of a CHECK CONDITION, None for another status."""
    if st != 0x02 or len(p.data) < 2 + 14:
        return None
    s = p.data[2:]
    return s[2] & 0x0F, s[12], s[13]


# what a fenced gateway answers a write: NOT READY, target port in unavailable state
FENCED = (2, 0x04, 0x0C)
# the unit attention of A's own change to unavailable; whether a queued write
# meets it or reaches librbd first depends on which A handles first on waking
ALUA_CHANGED = (6, 0x2A, 0x06)


def collect(c, pending, timeout, senses=None):
    """{off: status} of the SCSI responses to pending; senses gets each CHECK CONDITION's."""
    out = {}
    deadline = time.monotonic() + timeout
    while pending:
        p = c.wait(lambda q: q.opcode == 0x21 and q.itt in pending,
                   max(0.1, deadline - time.monotonic()), "SCSI response")
        out[pending.pop(p.itt)] = p.bhs[3]
        if senses is not None and p.bhs[3] != 0:
            senses.append(sense_of(p.bhs[3], p))
    return out


class Writer(threading.Thread):
    """Streams batches of WRITEs through A until told to stop; remembers what came back."""

    def __init__(self, c):
        super().__init__(daemon=True)
        self.c = c
        self.stop = False
        self.good = 0
        self.failed = 0
        self.error = None

    def run(self):
        n = 0
        try:
            while not self.stop:
                offs = [((n + i) * CHUNK) % REGION for i in range(BATCH)]
                n += BATCH
                for st in collect(self.c, send_batch(self.c, offs, "A"), 120).values():
                    if st == 0:
                        self.good += 1
                    else:
                        self.failed += 1
        except (hl.CaseFail, hl.Timeout, hl.Closed, OSError) as e:
            # A closing the connection once fenced is one of the right answers
            self.error = e


def session(d):
    """A logged-in session without TEST UNIT READY (a standby LU answers it NOT READY)."""
    c = hl.Conn(d.port, 10.0)
    cls, det, _ = c.login(hl.initiator_name(), target=TGT)
    if cls != 0:
        c.close()
        raise hl.CaseFail("login failed with status 0x%02x%02x" % (cls, det))
    # the unit attentions of the login, cleared with REQUEST SENSE (standby allows it)
    for _ in range(4):
        s = good(c, bytes([0x03, 0, 0, 0, 18, 0]), "REQUEST SENSE", read_len=18)
        if s[2] & 0x0F != 6:
            break
    return c


def write_b(c):
    """B's pattern over the whole region, after its unit attention."""
    for off in range(0, REGION, CHUNK * BATCH):
        res = collect(c, send_batch(c, range(off, off + CHUNK * BATCH, CHUNK), "B"), 60)
        again = [o for o, st in res.items() if st != 0]
        for o in again:
            # the first command after the change meets 2Ah/06h
            good(c, write_cdb(o, CHUNK), "B: WRITE at %d" % o, write_data=pattern("B", o))


def run_all(a, b, image):
    wait_state(a, "active/optimized", "A after its start")
    owner_a = lock_addr(image)
    if not owner_a:
        raise hl.CaseFail("no lock owner after A started")
    b.start(timeout=90)
    wait_state(b, "standby", "B beside A")
    ca, cb = session(a), session(b)
    expect_groups(ca, {1: (AO, [1]), 2: (SB, [2])}, "A owner")
    expect_groups(cb, {2: (SB, [2]), 1: (AO, [1])}, "B non-owner")
    for c, who in ((ca, "A"), (cb, "B")):
        inq = good(c, bytes([0x12, 0, 0, 0, 96, 0]), "INQUIRY", read_len=96)
        if inq[5] & 0x30 != 0x10:
            raise hl.CaseFail("%s: TPGS %d" % (who, (inq[5] >> 4) & 3))
    if lock_addr(image) != owner_a:
        raise hl.CaseFail("B's start moved the lock")
    if (lock_of(a), lock_of(b)) != ("owner", "other"):
        raise hl.CaseFail("lun.show lock: A %r, B %r" % (lock_of(a), lock_of(b)))
    # the state the lock gave at open is the model's: config.save writes it
    # (the lock thread reports it just after the open: a few tries)
    for d, want in ((a, "active/optimized"), (b, "standby")):
        saved = os.path.join(d.tmp, "saved.conf")
        for _ in range(50):
            rpc_ok(d, "config.save", {"path": saved})
            with open(saved) as f:
                text = f.read()
            if 'alua_state = "%s"' % want in text:
                break
            time.sleep(0.1)
        else:
            raise hl.CaseFail("config.save of %s lacks alua_state %s:\n%s" % (d.tmp, want, text))
    r = rpc(a, "lun.takeover", {"target": TGT, "lun": 0})
    if "error" not in r:
        raise hl.CaseFail("lun.takeover on the owner accepted: %r" % r)
    # B made active/non-optimized by hand: its write reaches librbd, which asks
    # A for the lock; A's managed lock refuses, so the write fails
    rpc_ok(b, "lun.set_alua_state", {"target": TGT, "lun": 0, "state": "active/non-optimized"})
    cb.scsi(bytes(6))  # the unit attention of the change
    t0 = time.monotonic()
    st, _, p, _, _ = cb.scsi(write_cdb(0, CHUNK), write_data=pattern("X", 0), timeout=60)
    if st == 0:
        raise hl.CaseFail("a WRITE through the non-owner B completed GOOD")
    if lock_addr(image) != owner_a:
        raise hl.CaseFail("a write through B moved the lock")
    print("PASS: a WRITE through the non-owner B (forced active/non-optimized) fails "
          "(sense %r, %.1f s); A keeps the lock" % (sense_of(st, p), time.monotonic() - t0),
          flush=True)
    rpc_ok(b, "lun.set_alua_state", {"target": TGT, "lun": 0, "state": "standby"})
    cb.scsi(bytes(6))
    print("PASS: A owns the lock (%s): A active/optimized, B standby in RTPG" % owner_a,
          flush=True)

    # a second session to A for the batch sent while it is frozen
    cq = session(a)
    w = Writer(ca)
    w.start()
    time.sleep(1.5)
    if w.good == 0:
        raise hl.CaseFail("the writer through A got nothing done (%s)" % w.error)
    os.kill(a.proc.pid, signal.SIGSTOP)
    try:
        wait_stopped(a.proc.pid)
        before = w.good
        queued = send_batch(cq, [REGION - CHUNK * (i + 1) for i in range(BATCH)], "A")
        print("PASS: A frozen after %d good writes; %d more queued to it" %
              (before, len(queued)), flush=True)

        iserctl = os.path.join(os.path.dirname(a.binary), "iserctl")
        r = subprocess.run([iserctl, "--socket", os.path.join(b.tmp, "control.sock"), "lun",
                            "takeover", TGT, "0"], capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise hl.CaseFail("iserctl lun takeover on B: exit %d: %s" %
                              (r.returncode, (r.stdout + r.stderr).strip()))
        wait_state(b, "active/optimized", "B after lun.takeover")
        owner_b = lock_addr(image)
        if owner_b is None or owner_b == owner_a:
            raise hl.CaseFail("the lock is held by %r after the takeover" % owner_b)
        write_b(cb)
        print("PASS: B took the lock over (%s) and wrote its pattern" % owner_b, flush=True)
    finally:
        os.kill(a.proc.pid, signal.SIGCONT)
    senses = []
    res = collect(cq, queued, 90, senses)
    # every one fails: NOT READY 04h/0Ch, but one of them (the nexus has one
    # unit attention to report) may instead meet 2Ah/06h, never executed
    if (any(st == 0 for st in res.values()) or len(senses) != len(res)
            or not set(senses) <= {FENCED, ALUA_CHANGED} or senses.count(ALUA_CHANGED) > 1):
        raise hl.CaseFail("writes queued to the frozen A: %r, senses %r" % (res, senses))
    print("PASS: the %d writes queued to the frozen A failed: %d with NOT READY 04h/0Ch, "
          "%d with the unit attention of the change" %
          (len(res), senses.count(FENCED), senses.count(ALUA_CHANGED)), flush=True)
    wait_state(a, "unavailable", "A after it woke")
    w.stop = True
    w.join(150)
    st, _, p, _, _ = cq.scsi(write_cdb(0, CHUNK), write_data=pattern("A", 0))
    st2, _, p2, _, _ = cq.scsi(write_cdb(0, CHUNK), write_data=pattern("A", 0))
    if st == 0 or sense_of(st2, p2) != FENCED:
        raise hl.CaseFail("a WRITE through the fenced A: status 0x%02x, then sense %r" %
                          (st, sense_of(st2, p2)))
    print("PASS: A is unavailable and refuses writes (sense %s); its writer: %d good before, "
          "%d failed after" % (p2.data[2:20].hex(), w.good, w.failed), flush=True)
    cb.scsi(bytes(6))  # B's own unit attention, if any, is not the point here
    expect_groups(cb, {2: (AO, [2]), 1: (SB, [1])}, "B owner")
    for _ in range(4):  # A's session has 2Ah/06h pending for INQUIRY-free commands
        stu, _, _, _, _ = cq.scsi(bytes([0x03, 0, 0, 0, 18, 0]), read_len=18)
    expect_groups(cq, {1: (UN, [1]), 2: (AO, [2])}, "A fenced")
    if (lock_of(a), lock_of(b)) != ("fenced", "owner"):
        raise hl.CaseFail("lun.show lock after: A %r, B %r" % (lock_of(a), lock_of(b)))
    r = rpc(a, "lun.takeover", {"target": TGT, "lun": 0})
    if "error" not in r or "fenced" not in json.dumps(r):
        raise hl.CaseFail("lun.takeover on the fenced A: %r" % r)
    print("PASS: RTPG through both shows B as the owner, A unavailable; A cannot take back",
          flush=True)
    for c in (ca, cb, cq):
        c.close()
    return owner_a


def check_image(image, owner_a, tmp):
    out = os.path.join(tmp, "export.bin")
    ceph("rbd", "export", image, out)
    with open(out, "rb") as f:
        data = f.read(REGION)
    bad = [off for off in range(0, REGION, CHUNK) if data[off:off + CHUNK] != pattern("B", off)]
    if bad:
        raise hl.CaseFail("%d chunks of the image are not B's, first at %d: %r" %
                          (len(bad), bad[0], data[bad[0]:bad[0] + 24]))
    print("PASS: rbd export: all %d chunks hold B's data, none of A's stale writes" %
          (REGION // CHUNK), flush=True)
    bl = ceph("ceph", "osd", "blocklist", "ls")
    if owner_a not in bl:
        raise hl.CaseFail("A's client %s is not in the blocklist:\n%s" % (owner_a, bl))
    print("PASS: ceph osd blocklist ls lists A's client %s" % owner_a, flush=True)


def main():
    image = os.environ["RBD_IMAGE"]
    backing = "rbd:%s,conf=%s,id=%s,lock=exclusive" % (image, os.environ["CEPH_CONF"],
                                                         os.environ["CEPH_CLIENT"])
    conf = {"tgt": TGT, "serial": SERIAL, "naa": NAA, "backing": backing}
    a = hl.Iserd(conf=CONF % dict(conf, group=1, peer=2))
    b = hl.Iserd(conf=CONF % dict(conf, group=2, peer=1))
    ok = True
    owner_a = None
    try:
        a.start(timeout=90)
        owner_a = run_all(a, b, image)
    except (hl.CaseFail, hl.Timeout, hl.Closed, OSError, RuntimeError, ValueError) as e:
        print("FAIL: %s: %s" % (type(e).__name__, e), flush=True)
        traceback.print_exc()
        ok = False
    for d, who in ((a, "A"), (b, "B")):
        if d.proc is not None and d.proc.poll() is None:
            os.kill(d.proc.pid, signal.SIGCONT)
        err = d.stop()
        if err:
            print("FAIL: gateway %s: %s" % (who, err))
            ok = False
        if d.log:
            print("----- gateway %s log (last %d lines) -----" % (who, 60 if not ok else 25))
            print("\n".join(d.read_log().splitlines()[-(60 if not ok else 25):]))
    if ok:
        try:
            check_image(image, owner_a, os.environ.get("TMPDIR_FENCE", a.tmp))
        except (hl.CaseFail, OSError) as e:
            print("FAIL: %s" % e, flush=True)
            ok = False
    a.cleanup()
    b.cleanup()
    print("rbd fence: %s" % ("passed" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
