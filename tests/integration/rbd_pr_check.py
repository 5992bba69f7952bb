#!/usr/bin/env python3
"""Persistent reservations across two gateways of one RBD image (run by
test_rbd_pr.sh, which starts the Ceph cluster and creates the image).

Gateways A (tpgt 1) and B (tpgt 2), two iserd processes, export the same
image under the same target name; one initiator logs in to each, so its two
I_T nexuses differ only by target port. Through raw sessions:

1. it registers a key on each path; READ KEYS is the same on both;
2. A reserves Write Exclusive: B's WRITE gets RESERVATION CONFLICT, A's is
   GOOD; READ RESERVATION is the same on both;
3. A starts a WRITE and holds its Data-Out (it waits for the R2T); B does
   PREEMPT AND ABORT of A's key (Exclusive Access); only then does A send the
   data: the task was aborted on gateway A (no response), A sees REGISTRATIONS
   PREEMPTED then COMMANDS CLEARED BY ANOTHER INITIATOR, its next WRITE gets
   RESERVATION CONFLICT, and B reads the old blocks. READ KEYS and READ
   RESERVATION are again the same on both;
4. eight more initiators register at once, four through each gateway: READ
   KEYS on both has every key (the updates are compare-and-swap, none lost);
5. with gateway A stopped (SIGSTOP), B's RELEASE completes after the notify
   times out, B logs that not every gateway acknowledged, and A, resumed,
   reports the released reservation.

Writes the blocks that must be on the image to argv[2] for `rbd export`.
usage: rbd_pr_check.py SPEC EXPECTED-FILE LBA
"""

import os
import signal
import struct
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "hostile"))

import hostile_lib as hl  # noqa: E402
import test_pr_fence as pf  # noqa: E402

TGT = "iqn.2026-11.org.iserd:rbd-pr"
INI = "iqn.2026-11.org.iserd:rbd-pr-host"
KEY_A, KEY_B = 0xAAAA0000000000A1, 0xBBBB0000000000B2

CONF = """
portals = ( { url = "tcp://127.0.0.1:@PORT@"; tpgt = %(tpgt)d; } );
targets = ( {
    name = "%(tgt)s";
    tpgt = %(tpgt)d;
    luns = ( { number = 0; backing = "%(spec)s"; serial = "RBD-PR-0001"; } );
} );
"""


def pr_in(c, sa):
    cdb = struct.pack(">BBxxxxxHB", 0x5E, sa, 8192, 0)
    st, data, p, _, _ = c.scsi(cdb, read_len=8192)
    if st != 0:
        raise hl.CaseFail("PR IN sa %d status 0x%02x sense %s" % (sa, st, p.data.hex()))
    return data


def read_keys(c):
    d = pr_in(c, 0)
    gen, n = struct.unpack_from(">II", d, 0)
    return gen, sorted(struct.unpack_from(">Q", d, 8 + i) [0] for i in range(0, n, 8))


def read_res(c):
    d = pr_in(c, 1)
    gen, n = struct.unpack_from(">II", d, 0)
    if n == 0:
        return gen, None
    return gen, (struct.unpack_from(">Q", d, 8)[0], d[21] & 0x0F)


def same(a, b, fn, what):
    x, y = fn(a), fn(b)
    if x != y:
        raise hl.CaseFail("%s differs: gateway A %r, gateway B %r" % (what, x, y))
    print("PASS: %s identical on both gateways: %r" % (what, x), flush=True)
    return x


def run(ga, gb, lba):
    # long enough for a PR OUT that waits out the notify timeout (10 s)
    a = pf.session(ga.port, INI, timeout=30.0)
    b = pf.session(gb.port, INI, timeout=30.0)
    a.fenced_rsp = []
    try:
        pf.clear_ua(a, 0)
        pf.clear_ua(b, 0)
        pf.pr_ok(a, 0, pf.SA_REGISTER, 0, KEY_A, what="A REGISTER")
        pf.pr_ok(b, 0, pf.SA_REGISTER, 0, KEY_B, what="B REGISTER")
        _, keys = same(a, b, read_keys, "READ KEYS")
        if keys != sorted([KEY_A, KEY_B]):
            raise hl.CaseFail("READ KEYS %r, expected both keys" % keys)
        pf.pr_ok(a, 0, pf.SA_RESERVE, KEY_A, 0, pf.TYPE_WE, what="A RESERVE (Write Exclusive)")
        _, res = same(a, b, read_res, "READ RESERVATION")
        if res != (KEY_A, pf.TYPE_WE):
            raise hl.CaseFail("READ RESERVATION %r, expected A's Write Exclusive" % (res,))
        cdb = struct.pack(">BBIBHB", 0x2A, 0, lba, 0, pf.NBLK, 0)
        st, _, p, _, _ = b.scsi(cdb, write_data=pf.NEW, lun=0)
        if st != pf.ST_CONFLICT:
            raise hl.CaseFail("B's WRITE status 0x%02x, expected RESERVATION CONFLICT" % st)
        print("PASS: a WRITE through gateway B gets RESERVATION CONFLICT", flush=True)
        pf.write10(a, 0, lba, pf.OLD)
        print("PASS: the holder's WRITE through gateway A is GOOD", flush=True)
        # A's WRITE waits for its data on gateway A while B preempts with abort
        itt, ttt, off, length = pf.start_write_wait_r2t(a, 0, lba, pf.NBLK)
        if off != 0 or length != pf.NBLK * pf.BLOCK:
            raise hl.CaseFail("R2T offset %d length %d" % (off, length))
        pf.pr_ok(b, 0, pf.SA_PREEMPT_ABORT, KEY_B, KEY_A, pf.TYPE_EA,
                 what="B PREEMPT AND ABORT")
        print("PASS: PREEMPT AND ABORT through gateway B", flush=True)
        pf.late_data(a, 0, itt, ttt, pf.NEW, True)
        print("PASS: A's WRITE in flight on gateway A was aborted (no response)", flush=True)
        pf.expect_ua(a, 0, [(6, 0x2A, 0x05), (6, 0x2F, 0x00)])
        print("PASS: A sees REGISTRATIONS PREEMPTED, then COMMANDS CLEARED", flush=True)
        st, _, p, _, _ = a.scsi(cdb, write_data=pf.NEW, lun=0)
        if st != pf.ST_CONFLICT:
            raise hl.CaseFail("A's WRITE after the preempt: status 0x%02x, expected "
                              "RESERVATION CONFLICT" % st)
        print("PASS: A's next WRITE gets RESERVATION CONFLICT", flush=True)
        _, keys = same(a, b, read_keys, "READ KEYS after the preempt")
        if keys != [KEY_B]:
            raise hl.CaseFail("READ KEYS %r, expected only B's" % keys)
        _, res = same(a, b, read_res, "READ RESERVATION after the preempt")
        if res != (KEY_B, pf.TYPE_EA):
            raise hl.CaseFail("READ RESERVATION %r, expected B's Exclusive Access" % (res,))
        if pf.read10(b, 0, lba, pf.NBLK) != pf.OLD:
            raise hl.CaseFail("B reads A's fenced data")
        print("PASS: B reads the blocks from before the preempt", flush=True)
        a.nop_ping()
        pf.check_write_rsp(a, itt, True)
        concurrent_registers(ga, gb, a, b)
        unresponsive_gateway(ga, gb, a, b)
    finally:
        a.close()
        b.close()


def unresponsive_gateway(ga, gb, a, b):
    """Gateway A stopped (SIGSTOP): B's RELEASE waits for A's acknowledgment
    until the notify times out (10 s), then completes GOOD and says so in its
    log; once A runs again it answers from the new state."""
    os.kill(ga.proc.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        pf.pr_ok(b, 0, 2, KEY_B, 0, pf.TYPE_EA, what="B RELEASE with gateway A stopped")
        took = time.monotonic() - t0
    finally:
        os.kill(ga.proc.pid, signal.SIGCONT)
    if not 8 <= took <= 40:
        raise hl.CaseFail("B's RELEASE took %.1f s with A stopped, expected the 10 s "
                          "notify timeout" % took)
    if "not every gateway acknowledged" not in gb.read_log():
        raise hl.CaseFail("B's log does not say that A did not acknowledge")
    print("PASS: with gateway A stopped, B's RELEASE completes after the notify timeout "
          "(%.1f s) and B logs it" % took, flush=True)
    _, res = same(a, b, read_res, "READ RESERVATION after A resumed")
    if res is not None:
        raise hl.CaseFail("READ RESERVATION %r after the RELEASE" % (res,))


def concurrent_registers(ga, gb, a, b):
    """Eight initiators, four per gateway, register at the same moment: every
    update is a compare-and-swap of the shared state, so none is lost."""
    n = 8
    conns = [pf.session((ga if i % 2 == 0 else gb).port, "%s-%d" % (INI, i))
             for i in range(n)]
    keys = [0xC0C0000000000000 + i for i in range(n)]
    errors = []
    barrier = threading.Barrier(n)

    def reg(i):
        try:
            pf.clear_ua(conns[i], 0)
            barrier.wait(10)
            pf.pr_ok(conns[i], 0, pf.SA_REGISTER, 0, keys[i], what="REGISTER %d" % i)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append("%d: %s" % (i, e))

    threads = [threading.Thread(target=reg, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for c in conns:
        c.close()
    if errors:
        raise hl.CaseFail("concurrent REGISTERs: %s" % "; ".join(errors))
    _, got = same(a, b, read_keys, "READ KEYS after 8 concurrent REGISTERs on both gateways")
    if got != sorted(keys + [KEY_B]):
        raise hl.CaseFail("READ KEYS %r, expected B's key and the 8 new ones" % got)
    print("PASS: no registration lost to concurrent updates through two gateways", flush=True)


def main():
    spec, expected, lba = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ga = hl.Iserd(conf=CONF % {"tpgt": 1, "tgt": TGT, "spec": spec}, iqn=TGT)
    gb = hl.Iserd(conf=CONF % {"tpgt": 2, "tgt": TGT, "spec": spec}, iqn=TGT)
    if not ga.available():
        print("SKIP: iserd binary not found (ISERD)")
        return 77
    ok = True
    try:
        ga.start(timeout=90)
        gb.start(timeout=90)
        run(ga, gb, lba)
        with open(expected, "wb") as f:
            f.write(pf.OLD)
    except (hl.CaseFail, hl.Timeout, hl.Closed, OSError, RuntimeError, ValueError) as e:
        print("FAIL: %s: %s" % (type(e).__name__, e), flush=True)
        ok = False
    for d, who in ((ga, "A"), (gb, "B")):
        err = d.stop()
        if err:
            print("FAIL: gateway %s: %s" % (who, err))
            ok = False
        if not ok and d.log:
            print("----- gateway %s log (last 40 lines) -----" % who)
            print("\n".join(d.read_log().splitlines()[-40:]))
        d.cleanup()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
