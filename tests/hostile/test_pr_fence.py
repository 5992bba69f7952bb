#!/usr/bin/env python3
"""Persistent reservations that fence: a WRITE that already got its R2T must
not land once its initiator lost write access.

Initiator A registers, reserves and starts a WRITE without immediate data
(so it waits for the R2T); initiator B, another session under another
InitiatorName, registers and preempts A's key (PREEMPT AND ABORT, or plain
PREEMPT) taking Exclusive Access; only after B's PR OUT completed does A send
its Data-Out. B must read the old blocks back, A's WRITE must not complete
GOOD, and A must learn what happened from its unit attentions. Run on a RAM
LUN and a FILE LUN (LUN 0 and LUN 1 of one iserd). Over TCP both stage a
WRITE's data and store it at exec, where the reservation is checked again, so
a plain PREEMPT or a RESERVE ends A's WRITE with RESERVATION CONFLICT; only
PREEMPT AND ABORT aborts it (no response, UA 2F/00). Over iSER a RAM LUN's
WRITE is fetched straight into LU memory, and a reservation change aborts it
instead: that path is covered by the scsi unit tests (test_pr.c).
"""

import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hostile_lib as hl  # noqa: E402
from hostile_lib import (BLOCK, OP_R2T, OP_SCSI_RSP, CaseFail, Iserd,  # noqa: E402
                         initiator_name, session)

LUN_RAM, LUN_FILE = 0, 1
NBLK = 16                       # 8 KiB WRITE: one R2T
KEY_A, KEY_B = 0xAAAA0000000000A1, 0xBBBB0000000000B2
SA_REGISTER, SA_RESERVE, SA_CLEAR, SA_PREEMPT, SA_PREEMPT_ABORT = 0, 1, 3, 4, 5
SA_REGISTER_IGNORE = 6
KEY_C = 0xCCCC0000000000C3
TYPE_WE, TYPE_EA = 1, 3
ST_GOOD, ST_CHECK, ST_CONFLICT = 0x00, 0x02, 0x18


def sense_of(p):
    """(key, asc, ascq) from a SCSI Response's sense data, or None."""
    d = p.data
    if len(d) < 2 + 14:
        return None
    s = d[2:]
    return s[2] & 0x0F, s[12], s[13]


def pr_out(c, lun, sa, key, sakey=0, ptype=0):
    cdb = struct.pack(">BBBxxIB", 0x5F, sa, ptype & 0x0F, 24, 0)
    data = struct.pack(">QQ8x", key, sakey)
    st, _, p, _, _ = c.scsi(cdb, write_data=data, lun=lun)
    return st, p


def pr_ok(c, lun, sa, key, sakey=0, ptype=0, what="PR OUT"):
    st, p = pr_out(c, lun, sa, key, sakey, ptype)
    if st != ST_GOOD:
        raise CaseFail("%s status 0x%02x sense %s" % (what, st, p.data[:20].hex()))


def clear_ua(c, lun):
    """TEST UNIT READY on `lun` until no unit attention is left."""
    for _ in range(8):
        st, _, p, _, _ = c.scsi(b"\x00" * 6, lun=lun)
        if st == ST_GOOD:
            return
        s = sense_of(p)
        if st != ST_CHECK or s is None or s[0] != 6:
            raise CaseFail("TUR on LUN %d status 0x%02x sense %s" % (lun, st, p.data.hex()))
    raise CaseFail("LUN %d keeps reporting unit attentions" % lun)


def read10(c, lun, lba, nblk):
    cdb = struct.pack(">BBIBHB", 0x28, 0, lba, 0, nblk, 0)
    st, data, p, _, _ = c.scsi(cdb, read_len=nblk * BLOCK, lun=lun)
    if st != ST_GOOD:
        raise CaseFail("READ(10) on LUN %d status 0x%02x sense %s" % (lun, st, p.data.hex()))
    return data


def write10(c, lun, lba, data):
    cdb = struct.pack(">BBIBHB", 0x2A, 0, lba, 0, len(data) // BLOCK, 0)
    st, _, p, _, _ = c.scsi(cdb, write_data=data, lun=lun)
    if st != ST_GOOD:
        raise CaseFail("WRITE(10) on LUN %d status 0x%02x" % (lun, st))


def start_write_wait_r2t(c, lun, lba, nblk):
    """Sends WRITE(10) with no immediate data; returns (itt, ttt, offset, length) of its R2T."""
    cdb = struct.pack(">BBIBHB", 0x2A, 0, lba, 0, nblk, 0)
    h = c.cmd_bhs(cdb, nblk * BLOCK, write=True, dsl=0, lun=lun)
    itt = struct.unpack_from(">I", h, 16)[0]
    c.send_pdu(h)
    c.cmdsn = (c.cmdsn + 1) & 0xFFFFFFFF
    p = c.wait(lambda q: q.itt == itt, what="R2T for ITT 0x%x" % itt)
    if p.opcode != OP_R2T:
        raise CaseFail("WRITE answered by %r before any Data-Out" % p)
    return itt, p.u32(20), p.u32(40), p.u32(44)


def check_write_rsp(a, itt, aborted):
    """What A received for the fenced WRITE so far: never GOOD; nothing if it was
    aborted, else exactly one RESERVATION CONFLICT."""
    rsp = [p for p in a.unsolicited if p.itt == itt] + a.fenced_rsp
    a.unsolicited = [p for p in a.unsolicited if p.itt != itt]
    a.fenced_rsp = rsp
    if any(p.opcode != OP_SCSI_RSP for p in rsp):
        raise CaseFail("unexpected PDUs for the fenced WRITE: %r" % rsp)
    if any(p.bhs[3] == ST_GOOD for p in rsp):
        raise CaseFail("the fenced WRITE completed GOOD")
    if aborted and rsp:
        raise CaseFail("an aborted WRITE got a response: %r" % rsp)
    if not aborted and (len(rsp) != 1 or rsp[0].bhs[3] != ST_CONFLICT):
        raise CaseFail("expected one RESERVATION CONFLICT for the fenced WRITE, got %r" % rsp)


def late_data(a, lun, itt, ttt, data, aborted):
    """A sends its WRITE's data after the fence. A staged write still ends with a
    response, RESERVATION CONFLICT; an aborted one never answers (what came for it
    is checked again at the end of the case)."""
    a.data_out(itt, ttt, data, 0, lun)
    if aborted:
        a.nop_ping()    # every Data-Out above has been taken in
    else:
        a.unsolicited.append(a.wait(lambda q: q.itt == itt, what="response to the fenced WRITE"))
    check_write_rsp(a, itt, aborted)


def reset_pr(d, lun):
    """Leaves the LUN with no registration or reservation, whatever a case left."""
    c = session(d.port, initiator_name())
    try:
        clear_ua(c, lun)
        pr_ok(c, lun, SA_REGISTER_IGNORE, 0, KEY_C, what="C REGISTER AND IGNORE")
        pr_ok(c, lun, SA_CLEAR, KEY_C, what="C CLEAR")
    finally:
        c.close()


def start_write_unsolicited(c, lun, lba, nblk):
    """Sends WRITE(10) announcing unsolicited Data-Out (F=0, InitialR2T=No); returns
    (itt, ttt, offset, length) as for an R2T, with the reserved TTT."""
    cdb = struct.pack(">BBIBHB", 0x2A, 0, lba, 0, nblk, 0)
    h = c.cmd_bhs(cdb, nblk * BLOCK, write=True, dsl=0, lun=lun, final=False)
    itt = struct.unpack_from(">I", h, 16)[0]
    c.send_pdu(h)
    c.cmdsn = (c.cmdsn + 1) & 0xFFFFFFFF
    c.nop_ping()        # the command is in (and waits for its data)
    if any(p.itt == itt for p in c.unsolicited):
        raise CaseFail("WRITE answered before its unsolicited data")
    return itt, hl.RSVD, 0, nblk * BLOCK


def unsol_session(port):
    """A session with InitialR2T=No and ImmediateData=No: writes send unsolicited
    Data-Out PDUs, which land in a RAM LUN's memory as they arrive."""
    iname = initiator_name()
    keys = [("InitiatorName", iname), ("TargetName", hl.tm.IQN), ("SessionType", "Normal")]
    for k, v in hl.tm.OP_KEYS:
        v = {"InitialR2T": "No", "ImmediateData": "No"}.get(k, v)
        keys.append((k, v))
    c = session(port, iname, keys=keys)
    if c.keys.get("InitialR2T") != "No":
        c.close()
        raise CaseFail("target did not agree to InitialR2T=No: %r" % c.keys)
    return c


OLD = bytes([0x4F]) * (NBLK * BLOCK)           # 'O': what B must keep reading
NEW = bytes([0x41]) * (NBLK * BLOCK)           # 'A': A's fenced data


def pair_case(lun, lba, body, unsol=False):
    """Initiators A and B on `lun`; the blocks at `lba` hold OLD. body(a, b) fences
    A's WRITE of NEW there and returns (itt, aborted). Afterwards A never got GOOD
    for it, B clears the reservations, and no task is left."""
    def case(d):
        a = unsol_session(d.port) if unsol else session(d.port, initiator_name())
        b = session(d.port, initiator_name())
        a.fenced_rsp = []
        try:
            clear_ua(a, lun)
            clear_ua(b, lun)
            write10(a, lun, lba, OLD)
            itt, aborted = body(a, b)
            if read10(b, lun, lba, NBLK) != OLD:
                raise CaseFail("B reads A's data after the fence (or A's later commands)")
            pr_ok(b, lun, SA_CLEAR, KEY_B, what="B CLEAR")
            d.wait_stats(lambda s: s.get("tasks", 0) == 0, what="tasks back to 0")
            # The WRITE's task is gone: any response it had is ahead of this NOP-In.
            a.nop_ping()
            check_write_rsp(a, itt, aborted)
        finally:
            a.close()
            b.close()
            reset_pr(d, lun)
        return "A's WRITE %s" % ("aborted" if aborted else "got RESERVATION CONFLICT")
    return case


def expect_ua(a, lun, want):
    for w in want:
        st, _, p, _, _ = a.scsi(b"\x00" * 6, lun=lun)
        if st != ST_CHECK or sense_of(p) != w:
            raise CaseFail("A expected UA %02x/%02x/%02x, got status 0x%02x sense %s" %
                           (w + (st, p.data.hex())))


def fence_case(lun, sa, ptype, unsol=False):
    """A registers, reserves (ptype) and starts a WRITE; B preempts A's key (sa)."""
    lba = 64 * (1 + sa) + (8 * NBLK if ptype == TYPE_WE else 0) + (32 * NBLK if unsol else 0)

    def body(a, b):
        pr_ok(a, lun, SA_REGISTER, 0, KEY_A, what="A REGISTER")
        pr_ok(a, lun, SA_RESERVE, KEY_A, 0, ptype, what="A RESERVE")
        start = start_write_unsolicited if unsol else start_write_wait_r2t
        itt, ttt, off, length = start(a, lun, lba, NBLK)
        if off != 0 or length != NBLK * BLOCK:
            raise CaseFail("R2T offset %d length %d" % (off, length))
        pr_ok(b, lun, SA_REGISTER, 0, KEY_B, what="B REGISTER")
        pr_ok(b, lun, sa, KEY_B, KEY_A, TYPE_EA, what="B PREEMPT")
        # Only now does A's data go out (for the R2T it got before, or unsolicited).
        aborted = sa == SA_PREEMPT_ABORT
        late_data(a, lun, itt, ttt, NEW, aborted)
        if read10(b, lun, lba, NBLK) != OLD:
            raise CaseFail("B reads A's data after the preempt")
        # A's next commands: REGISTRATIONS PREEMPTED, then (its tasks were
        # aborted by another nexus, TAS = 0) COMMANDS CLEARED BY ANOTHER INITIATOR.
        expect_ua(a, lun, [(6, 0x2A, 0x05)] + ([(6, 0x2F, 0x00)] if aborted else []))
        cdb = struct.pack(">BBIBHB", 0x2A, 0, lba, 0, NBLK, 0)
        st, _, p, _, _ = a.scsi(cdb, write_data=NEW, lun=lun)
        if st != ST_CONFLICT:
            raise CaseFail("A's next WRITE status 0x%02x, expected RESERVATION CONFLICT" % st)
        return itt, aborted
    return pair_case(lun, lba, body, unsol)


def reserve_case(lun):
    """A holds no registration and has a WRITE waiting for its R2T; B registers and
    reserves Exclusive Access."""
    def body(a, b):
        itt, ttt, _, _ = start_write_wait_r2t(a, lun, 1024, NBLK)
        pr_ok(b, lun, SA_REGISTER, 0, KEY_B, what="B REGISTER")
        pr_ok(b, lun, SA_RESERVE, KEY_B, 0, TYPE_EA, what="B RESERVE")
        aborted = False     # staged over TCP: RESERVATION CONFLICT at exec
        late_data(a, lun, itt, ttt, NEW, aborted)
        if aborted:
            expect_ua(a, lun, [(6, 0x2F, 0x00)])
        return itt, aborted
    return pair_case(lun, 1024, body)


def setup():
    d = Iserd()
    d.luns = ["ram:16M", "file:%s,size=16M" % os.path.join(d.tmp, "f.img")]
    return d


CASES = [
    ("RAM LUN: PREEMPT AND ABORT fences an R2T'd WRITE (EA)",
     fence_case(LUN_RAM, SA_PREEMPT_ABORT, TYPE_EA)),
    ("FILE LUN: PREEMPT AND ABORT fences an R2T'd WRITE (EA)",
     fence_case(LUN_FILE, SA_PREEMPT_ABORT, TYPE_EA)),
    ("RAM LUN: PREEMPT AND ABORT fences an R2T'd WRITE (WE)",
     fence_case(LUN_RAM, SA_PREEMPT_ABORT, TYPE_WE)),
    ("FILE LUN: PREEMPT AND ABORT fences an R2T'd WRITE (WE)",
     fence_case(LUN_FILE, SA_PREEMPT_ABORT, TYPE_WE)),
    ("RAM LUN: plain PREEMPT fences an R2T'd WRITE (EA)",
     fence_case(LUN_RAM, SA_PREEMPT, TYPE_EA)),
    ("FILE LUN: plain PREEMPT fences an R2T'd WRITE (EA)",
     fence_case(LUN_FILE, SA_PREEMPT, TYPE_EA)),
    ("RAM LUN: PREEMPT AND ABORT fences a WRITE's unsolicited Data-Out (InitialR2T=No)",
     fence_case(LUN_RAM, SA_PREEMPT_ABORT, TYPE_EA, unsol=True)),
    ("RAM LUN: plain PREEMPT fences a WRITE's unsolicited Data-Out (InitialR2T=No)",
     fence_case(LUN_RAM, SA_PREEMPT, TYPE_EA, unsol=True)),
    ("RAM LUN: RESERVE by another initiator fences an R2T'd WRITE", reserve_case(LUN_RAM)),
    ("FILE LUN: RESERVE by another initiator fences an R2T'd WRITE", reserve_case(LUN_FILE)),
]

if __name__ == "__main__":
    sys.exit(hl.run("pr_fence", CASES, setup=setup))
