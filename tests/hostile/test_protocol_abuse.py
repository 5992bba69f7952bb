#!/usr/bin/env python3
"""Resource and state abuse of the iSCSI protocol against iserd (python3 stdlib only).

One iserd (login_timeout 2 s, NOP pings off so the idle good session is not
dropped between cases, 40 extra targets so SendTargets=All needs several
pages). A well-behaved session logs in first and stays for the whole run.
After every case:
  - the good session does TEST UNIT READY, WRITE(10) of a fresh pattern and
    READ(10) of it with the same data;
  - iserd's RSS is within RSS_BOUND_KIB of its baseline, taken after the good
    session's first I/O (the bound covers the per-connection buffers of the few
    dozen connections a case opens, not a leak: every case is repeated in
    spirit by its own loop, and the attacks that hold memory are refused at
    64 KiB of text or a CmdSN window of 128 commands);
  - the counters return to the good session's own (sessions 1, connections 1,
    tasks 0) and the fd count to its baseline.

The framing cases (unknown opcodes, DSL past MaxRecvDataSegmentLength, bad AHS,
CmdSN outside the window answered or not, Data-Out with an unknown ITT or wrong
TTT, offset far past the EDTL, immediate data past FirstBurstLength or the EDTL,
duplicate ITT, truncated PDUs, a flood of 200 connections) are
tests/integration/test_malformed.py's; these cases are about what a peer can
make iserd hold or do to other sessions' state.
"""

import os
import socket
import struct
import sys
import time

import hostile_lib as hl
from hostile_lib import (BLOCK, OP_DATA_OUT, OP_LOGIN_RSP, OP_LOGOUT, OP_R2T, OP_REJECT,
                         OP_SCSI_RSP, OP_TEXT, OP_TMF, RSVD, CaseFail, Closed, Conn, Timeout,
                         bhs, kv, lun_field, parse_kv)

OP_TMF_RSP, OP_TEXT_RSP, OP_LOGOUT_RSP = 0x22, 0x24, 0x26
RSS_BOUND_KIB = 48 * 1024        # growth over the baseline allowed after any case
GOOD_LBA = 8                     # the good session's own blocks (8..15)
N_PAD_TARGETS = 40               # targets that make the SendTargets=All answer several pages
TMF_ABORT_TASK, TMF_LUN_RESET = 1, 5

CONF = """
# max_held_pdus above the 128-command window: the window case parks a whole window
# behind a gap (test_limits.py pushes past the default of 64).
global = { login_timeout = 2; nop_interval = 0; max_held_pdus = 160; };
portals = ( "tcp://127.0.0.1:@PORT@" );
targets = (
	{ name = "%s"; luns = ( { backing = "ram:16M"; } ); }%s
);
""" % (hl.IQN, "".join(',\n\t{ name = "%s:pad-%02d"; luns = ( { backing = "ram:1M"; } ); }'
                       % (hl.IQN, i) for i in range(N_PAD_TARGETS)))


class Ctx:
    good = None
    rss0 = 0
    fds0 = 0
    gen = 0


CTX = Ctx()


def pattern(tag, blocks=1):
    """Distinct, recognisable data for one write."""
    CTX.gen += 1
    head = ("%s gen %d " % (tag, CTX.gen)).encode()
    out = bytearray()
    for b in range(blocks):
        blk = (head + b"blk %d " % b) * (BLOCK // 16)
        out += blk[:BLOCK]
    return bytes(out)


def w10(lba, blocks):
    return struct.pack(">BBIBHB", 0x2A, 0, lba, 0, blocks, 0)


def r10(lba, blocks):
    return struct.pack(">BBIBHB", 0x28, 0, lba, 0, blocks, 0)


def itt_of(h):
    return struct.unpack_from(">I", h, 16)[0]


def sess(d, **kw):
    return hl.session(d.port, **kw)


def login_keys(iname, session_type="Normal", **over):
    """The raw client's login keys with some operational values replaced."""
    keys = [("InitiatorName", iname)]
    if session_type == "Normal":
        keys.append(("TargetName", hl.IQN))
    keys.append(("SessionType", session_type))
    keys += [(k, over.get(k, v)) for k, v in hl.tm.OP_KEYS]
    return keys


def no_r2t_session(d):
    """InitialR2T=Yes, ImmediateData=No: every WRITE waits for an R2T."""
    return sess(d, keys=login_keys(hl.initiator_name(), ImmediateData="No"))


def send_write_cmd(c, lba, blocks, immediate=False, cmdsn=None):
    """A WRITE without immediate data; returns its ITT (the target answers with an R2T)."""
    h = c.cmd_bhs(w10(lba, blocks), blocks * BLOCK, write=True, immediate=immediate,
                  cmdsn=cmdsn)
    c.send_pdu(h)
    if not immediate and cmdsn is None:
        c.cmdsn = (c.cmdsn + 1) & 0xFFFFFFFF
    return itt_of(h)


def wait_r2t(c, itt, timeout=5.0):
    p = c.wait(lambda q: q.itt == itt or q.opcode == OP_REJECT, timeout, "R2T for 0x%x" % itt)
    if p.opcode != OP_R2T:
        raise CaseFail("expected an R2T for ITT 0x%x, got %r" % (itt, p))
    return p


def data_out_pdu(c, itt, ttt, data, offset, datasn=0, final=True, lun=0):
    rest = struct.pack(">IIIIII", ttt, 0, c.expstatsn, 0, datasn, offset)
    return bhs(OP_DATA_OUT, 0x80 if final else 0, dsl=len(data), lun=lun_field(lun), itt=itt,
               rest=rest)


def outcome(c, itt, timeout=3.0):
    """What came back for a command: 'good', 'status 0xNN', 'reject', 'drop' or 'none'."""
    try:
        p = c.wait(lambda q: q.itt == itt or q.opcode == OP_REJECT, timeout)
    except Timeout:
        return "none"
    except Closed:
        return "drop"
    if p.opcode == OP_REJECT:
        return "reject 0x%02x" % p.bhs[2]
    if p.opcode == OP_SCSI_RSP:
        return "good" if p.bhs[2] == 0 and p.bhs[3] == 0 else \
            "status 0x%02x/0x%02x" % (p.bhs[2], p.bhs[3])
    return repr(p)


def dropped(c, timeout):
    """True when the target closes the connection within timeout seconds."""
    c.sock.settimeout(timeout)
    try:
        while True:
            if not c.sock.recv(4096):
                return True
    except (ConnectionResetError, ConnectionAbortedError):
        return True
    except socket.timeout:
        return False


def good_data(lba, blocks):
    return CTX.good.read10(lba, blocks)


def check_after(d):
    """The good session works, RSS is bounded, counters and fds are back."""
    g = CTX.good
    g.tur()
    data = pattern("good", 2)
    g.write10(GOOD_LBA, data)
    if g.read10(GOOD_LBA, 2) != data:
        raise CaseFail("good session read back other data than it wrote")
    d.wait_stats(lambda st: st["sessions"] == 1 and st["connections"] == 1 and st["tasks"] == 0,
                 timeout=15, what="sessions 1, connections 1, tasks 0")
    grow = d.rss_kib() - CTX.rss0
    if grow > RSS_BOUND_KIB:
        raise CaseFail("RSS grew by %d KiB (bound %d KiB)" % (grow, RSS_BOUND_KIB))
    deadline = time.monotonic() + 10
    while d.fds() != CTX.fds0 and time.monotonic() < deadline:
        time.sleep(0.1)
    if d.fds() != CTX.fds0:
        raise CaseFail("iserd holds %d fds, baseline %d" % (d.fds(), CTX.fds0))
    return "good session OK, rss %+d KiB" % grow


def case(fn):
    def run(d):
        detail = fn(d) or ""
        return "%s; %s" % (detail, check_after(d))
    return run


# --- setup ------------------------------------------------------------------------------
def setup_good(d):
    CTX.good = sess(d)
    data = pattern("good", 2)
    CTX.good.write10(GOOD_LBA, data)
    if CTX.good.read10(GOOD_LBA, 2) != data:
        raise CaseFail("good session read back other data")
    st = d.wait_stats(lambda s: s["sessions"] == 1 and s["connections"] == 1 and s["tasks"] == 0)
    CTX.rss0 = d.rss_kib()
    CTX.fds0 = d.fds()
    return "baseline rss %d KiB, %d fds, stats %s" % (CTX.rss0, CTX.fds0, st)


# --- slow login ------------------------------------------------------------------------
def slowloris(d):
    """Partial BHSs, a Login PDU at one byte a second, a login stuck in the operational
    stage: each is dropped by the 2 s login_timeout although bytes keep arriving."""
    conns = []
    for i in range(8):      # a partial BHS, then silence
        c = Conn(d.port)
        c.send(bytes([0x43, 0x81]) + bytes(10 + i))
        conns.append(("partial BHS", c))
    # a login that finishes the security stage and then never finishes the operational one
    c = Conn(d.port)
    r = c.login_raw(kv([("InitiatorName", hl.initiator_name()), ("TargetName", hl.IQN),
                        ("SessionType", "Normal"), ("AuthMethod", "None")]),
                    csg=0, nsg=1, transit=True)
    if r.bhs[36] != 0:
        raise CaseFail("security stage refused: %r" % r)
    conns.append(("stuck in the operational stage", c))
    # one byte a second of a valid Login PDU: 48+ s to finish, dropped long before
    slow = Conn(d.port)
    raw = slow.login_pdu(kv([("InitiatorName", hl.initiator_name()), ("TargetName", hl.IQN)]))
    st = d.stats()
    if st["connections"] < 1 + len(conns) + 1:
        raise CaseFail("iserd counts %d connections with %d open" %
                       (st["connections"], 2 + len(conns)))
    sent = 0
    closed = False
    t0 = time.monotonic()
    while time.monotonic() - t0 < 20:    # 10 x login_timeout
        try:
            slow.send(raw[sent:sent + 1])
        except Closed:
            closed = True
            break
        sent += 1
        if dropped(slow, 1.0):
            closed = True
            break
    if not closed:
        raise CaseFail("a login sent at 1 byte/s was not dropped in 20 s (%d bytes sent)" % sent)
    for what, c in conns:
        if not dropped(c, 10):
            raise CaseFail("connection with a %s not dropped" % what)
        c.close()
    slow.close()
    return "%d slow connections dropped (the 1 byte/s one after %d bytes)" % (len(conns) + 1,
                                                                            sent)


# --- huge text -------------------------------------------------------------------------
def login_cbit_flood(d):
    """Login text continued (C bit) past ISD_LOGIN_MAX_TEXT: refused, not stored."""
    c = Conn(d.port)
    chunk = kv([("X-org.iserd.pad%d" % i, "v" * 200) for i in range(36)])  # ~7.9 KiB
    total = 0
    status = None
    try:
        for _ in range(40):         # 320 KiB if nothing stopped it
            c.send_pdu(c.login_pdu(chunk, csg=0, nsg=1, transit=False, flags=0x40 | 0x04 | 1),
                       data=chunk)
            total += len(chunk)
            r = c.wait(lambda p: p.opcode == OP_LOGIN_RSP, what="Login Response")
            if r.bhs[36] != 0:
                status = (r.bhs[36], r.bhs[37])
                break
    except Closed:
        status = "drop"
    c.close()
    if status is None:
        raise CaseFail("%d bytes of continued login text accepted" % total)
    if status != "drop" and status[0] != 2:
        raise CaseFail("login status 0x%02x%02x, expected an initiator error" % status)
    if total > 64 * 1024 + len(chunk):
        raise CaseFail("refused only after %d bytes" % total)
    return "refused after %d bytes (%s)" % (total, status if status == "drop" else
                                           "status 0x%02x%02x" % status)


def text_pdu(c, data, itt, ttt=RSVD, cont=False):
    fl = 0x40 if cont else 0x80
    rest = struct.pack(">III", ttt, c.cmdsn, c.expstatsn)
    return bhs(0x40 | OP_TEXT, fl, dsl=len(data), itt=itt, rest=rest)


def ffp_text_cbit_flood(d):
    """FFP Text Request continued past ISD_TEXT_MAX_REQ: Reject, state dropped; repeated
    40 times on one connection."""
    c = sess(d)
    chunk = kv([("X-org.iserd.k%d" % i, "w" * 200) for i in range(36)])
    refused = 0
    for rnd in range(40):
        itt = c.next_itt()
        ttt = RSVD
        total = 0
        for _ in range(12):
            c.send_pdu(text_pdu(c, chunk, itt, ttt, cont=True), data=chunk)
            total += len(chunk)
            p = c.wait(lambda q: q.opcode in (OP_TEXT_RSP, OP_REJECT), what="Text Response")
            if p.opcode == OP_REJECT:
                if total <= 64 * 1024:
                    raise CaseFail("rejected (0x%02x) at only %d bytes" % (p.bhs[2], total))
                refused += 1
                break
            ttt = p.u32(20)
        else:
            raise CaseFail("%d bytes of continued text accepted" % total)
    c.nop_ping()
    c.logout()
    c.close()
    return "40 x 64 KiB+ text requests refused with a Reject"


def login_many_keys(d):
    """Login with many unknown keys, very long values and repeated keys in one 8 KiB
    PDU; then the same repeated with the C bit to 60 KiB: iserd answers (NotUnderstood
    or a login error), never keeps the connection in FFP with garbage state."""
    results = []
    variants = [
        ("many keys", [("X-org.iserd.k%d" % i, "1") for i in range(600)]),
        ("long values", [("X-org.iserd.long%d" % i, "z" * 4000) for i in range(2)]),
        ("repeated key", [("MaxBurstLength", "262144")] * 200),
        ("repeated InitiatorName", [("InitiatorName", hl.initiator_name())] * 200),
    ]
    for what, extra in variants:
        c = Conn(d.port)
        keys = [("InitiatorName", hl.initiator_name()), ("TargetName", hl.IQN),
                ("SessionType", "Normal")] + extra
        data = kv(keys)[:8192]
        data = data[:data.rfind(b"\0") + 1]
        try:
            r = c.login_raw(data, csg=1, nsg=3)
            res = "status 0x%02x%02x" % (r.bhs[36], r.bhs[37])
            if r.bhs[36] == 0:
                nu = sum(1 for v in parse_kv(r.data).values() if v == "NotUnderstood")
                res += " (%d NotUnderstood, %d bytes of response)" % (nu, len(r.data))
                if r.flags & 0x80 and (r.flags & 3) == 3:
                    c.cmdsn = r.u32(28)
                    c.tsih = int.from_bytes(r.bhs[14:16], "big")
                    c.keys = parse_kv(r.data)
                    c.tur()
        except Closed:
            res = "drop"
        except Timeout:
            res = "no answer"
        c.close()
        if res == "no answer":
            raise CaseFail("%s: no Login Response" % what)
        results.append("%s: %s" % (what, res))
    return "; ".join(results)


def sendtargets_paged_abandoned(d):
    """Discovery sessions take SendTargets=All with MaxRecvDataSegmentLength 512 (so the
    answer of 41 targets needs many C-bit pages) and never ask for the rest: 30 such
    sessions on open connections, then all closed; also a new request that abandons a
    paged one, 200 times on one connection."""
    conns = []
    for i in range(30):
        c = Conn(d.port)
        cls, det, _ = c.login("", keys=login_keys(hl.initiator_name(), "Discovery",
                                                  MaxRecvDataSegmentLength="512"))
        if cls != 0:
            raise CaseFail("discovery login 0x%02x%02x" % (cls, det))
        data = kv([("SendTargets", "All")])
        itt = c.next_itt()
        c.send_pdu(text_pdu(c, data, itt), data=data)
        c.cmdsn += 1
        p = c.wait(lambda q: q.opcode == OP_TEXT_RSP, what="Text Response")
        if not p.flags & 0x40 or len(p.data) > 512:
            raise CaseFail("first page: flags 0x%02x, %d bytes (expected C bit, <= 512)" %
                           (p.flags, len(p.data)))
        conns.append(c)
    st = d.stats()
    for c in conns:
        c.close()
    # one connection restarting the exchange again and again (each abandons the last)
    c = Conn(d.port)
    c.login("", keys=login_keys(hl.initiator_name(), "Discovery",
                                MaxRecvDataSegmentLength="512"))
    pages = 0
    for i in range(200):
        data = kv([("SendTargets", "All")])
        itt = c.next_itt()
        c.send_pdu(text_pdu(c, data, itt), data=data)
        c.cmdsn += 1
        p = c.wait(lambda q: q.opcode in (OP_TEXT_RSP, OP_REJECT), what="Text Response")
        if p.opcode != OP_TEXT_RSP:
            raise CaseFail("round %d: %r" % (i, p))
        pages += 1
    # and then fetch one answer to its end, to show the state is sane
    data = kv([("SendTargets", "All")])
    itt = c.next_itt()
    c.send_pdu(text_pdu(c, data, itt), data=data)
    c.cmdsn += 1
    names = []
    buf = b""
    while True:
        p = c.wait(lambda q: q.opcode == OP_TEXT_RSP and q.itt == itt, what="Text Response")
        buf += p.data
        if not p.flags & 0x40:
            break
        c.send_pdu(text_pdu(c, b"", itt, p.u32(20)))
        c.cmdsn += 1
    names = [x for x in buf.split(b"\0") if x.startswith(b"TargetName=")]
    c.logout()
    c.close()
    if len(names) != N_PAD_TARGETS + 1:
        raise CaseFail("complete SendTargets answer names %d targets, expected %d" %
                       (len(names), N_PAD_TARGETS + 1))
    return "30 abandoned paged answers (%d connections counted), 200 restarts, then a " \
        "complete answer of %d targets in %d bytes" % (st["connections"], len(names), len(buf))


# --- CmdSN window ------------------------------------------------------------------------
def cmdsn_window_fill(d):
    """The whole window parked behind a gap, with far-ahead, behind, MaxCmdSN+1 and a
    duplicate of a parked CmdSN: exactly the in-window ones run, once each, when the gap
    fills."""
    c = sess(d)
    c.nop_ping()
    dropped0 = d.stats().get("cmdsn_dropped")
    exp, mx = c.cmdsn, c.maxcmdsn
    window = (mx - exp + 1) & 0xFFFFFFFF
    if not 1 <= window <= 4096:
        raise CaseFail("window [%u, %u]" % (exp, mx))
    want = {}
    raw = b""
    for k in range(1, window):           # exp+1 .. MaxCmdSN parked behind the gap at exp
        h = c.cmd_bhs(b"\x00" * 6, 0, cmdsn=(exp + k) & 0xFFFFFFFF)
        want[itt_of(h)] = k
        raw += h
    bad = []
    for label, sn in (("far ahead", exp + 0x7FFFFFF0), ("behind", exp - 1),
                      ("MaxCmdSN+1", mx + 1), ("duplicate of a parked one", exp + 5)):
        h = c.cmd_bhs(b"\x00" * 6, 0, cmdsn=sn & 0xFFFFFFFF)
        bad.append((label, itt_of(h)))
        raw += h
    c.send(raw)
    st = d.stats()
    try:
        p = c.recv_pdu(1.0)
        raise CaseFail("answer before the gap was filled: %r" % p)
    except Timeout:
        pass
    h = c.cmd_bhs(b"\x00" * 6, 0, cmdsn=exp)
    want[itt_of(h)] = 0
    c.send_pdu(h)
    got = {}
    deadline = time.monotonic() + 15
    while len(got) < len(want) and time.monotonic() < deadline:
        p = c.wait(lambda q: q.opcode in (OP_SCSI_RSP, OP_REJECT), 15, "SCSI responses")
        if p.opcode == OP_REJECT:
            raise CaseFail("%r" % p)
        got[p.itt] = got.get(p.itt, 0) + 1
    try:
        while True:
            p = c.recv_pdu(1.0)
            if p.opcode == OP_SCSI_RSP:
                got[p.itt] = got.get(p.itt, 0) + 1
    except Timeout:
        pass
    for label, itt in bad:
        if itt in got:
            raise CaseFail("the %s CmdSN command ran" % label)
    missing = [k for itt, k in want.items() if got.get(itt) != 1]
    if missing:
        raise CaseFail("%d in-window commands not answered exactly once (CmdSN offsets %s)"
                       % (len(missing), missing[:10]))
    c.cmdsn = (exp + window) & 0xFFFFFFFF
    c.nop_ping()
    c.tur()
    c.logout()
    c.close()
    dropped = d.stats().get("cmdsn_dropped")
    if dropped0 is None or dropped is None or dropped - dropped0 != 4:
        raise CaseFail("cmdsn_dropped went from %r to %r, not up by 4" % (dropped0, dropped))
    return "window %d: %d parked (tasks counted %d), 4 out-of-window/duplicate dropped" % (
        window, window - 1, st["tasks"])


def cmdsn_wrap(d):
    """A session whose CmdSN starts at 2^32-16: 48 commands across the wrap, one parked
    across it, writes and reads correct."""
    c = Conn(d.port)
    c.cmdsn = 0xFFFFFFF0
    cls, det, _ = c.login(hl.initiator_name())
    if cls != 0:
        raise CaseFail("login 0x%02x%02x" % (cls, det))
    if c.cmdsn != 0xFFFFFFF0:
        raise CaseFail("ExpCmdSN after login %u, expected 0xfffffff0" % c.cmdsn)
    c.tur()
    for i in range(24):
        data = pattern("wrap", 1)
        c.write10(200 + i, data)
        if c.read10(200 + i) != data:
            raise CaseFail("read back other data at CmdSN 0x%08x" % c.cmdsn)
    # park exp+1 (past the wrap if not already), then send exp
    exp = c.cmdsn
    h1 = c.cmd_bhs(b"\x00" * 6, 0, cmdsn=(exp + 1) & 0xFFFFFFFF)
    h0 = c.cmd_bhs(b"\x00" * 6, 0, cmdsn=exp)
    c.send_pdu(h1)
    c.send_pdu(h0)
    c.cmdsn = (exp + 2) & 0xFFFFFFFF
    for h in (h0, h1):
        p = c.wait(lambda q, i=itt_of(h): q.itt == i, what="TUR response")
        if p.opcode != OP_SCSI_RSP or p.bhs[3] != 0:
            raise CaseFail("%r" % p)
    c.logout()
    c.close()
    return "CmdSN 0xfffffff0 -> 0x%08x" % c.cmdsn


def immediate_over_limit(d):
    """Immediate WRITEs that each wait for Data-Out: the 17th is rejected (reason 0x06);
    then the connection closes with all of them outstanding."""
    c = no_r2t_session(d)
    itts = []
    for i in range(16):
        itt = send_write_cmd(c, 300 + i, 1, immediate=True)
        wait_r2t(c, itt)
        itts.append(itt)
    st = d.stats()
    itt = send_write_cmd(c, 316, 1, immediate=True)
    p = c.wait(lambda q: q.itt == itt or q.opcode == OP_REJECT, what="Reject")
    if p.opcode != OP_REJECT or p.bhs[2] != 0x06:
        raise CaseFail("17th immediate command answered %r" % p)
    # a non-immediate command still runs
    c.tur()
    c.close()
    return "16 immediate tasks held (tasks counted %d), the 17th rejected 0x06" % st["tasks"]


def duplicate_outstanding_cmdsn(d):
    """A command reusing the CmdSN of an outstanding WRITE (now behind ExpCmdSN) is dropped;
    the WRITE completes with its own data."""
    c = no_r2t_session(d)
    old = pattern("dup-old", 1)
    CTX.good.write10(330, old)
    new = pattern("dup-new", 1)
    sn = c.cmdsn
    itt = send_write_cmd(c, 330, 1)
    r2t = wait_r2t(c, itt)
    # the same CmdSN again: a WRITE of other data with immediate data it may not carry
    evil = pattern("dup-evil", 1)
    h = c.cmd_bhs(w10(330, 1), BLOCK, write=True, cmdsn=sn)
    c.send_pdu(h)
    res = outcome(c, itt_of(h), 1.5)
    if res == "good":
        raise CaseFail("the duplicate CmdSN command ran")
    c.send_pdu(data_out_pdu(c, itt, r2t.u32(20), new, 0), data=new)
    res1 = outcome(c, itt)
    if res1 != "good":
        raise CaseFail("the original WRITE ended %s" % res1)
    got = good_data(330, 1)
    c.logout()
    c.close()
    if got != new:
        raise CaseFail("LBA 330 holds %s" % ("the duplicate's data" if got == evil else
                                             "other data"))
    return "duplicate: %s; original WRITE good" % res


# --- Data-Out abuse -------------------------------------------------------------------
def dataout_attack(d, label, lba, blocks, attack):
    """Prefills [lba, lba+blocks) with a known pattern through the good session, opens a
    session where WRITEs wait for R2T, runs attack(c, itt, r2t, data) and checks that the
    command did not end GOOD and the medium still holds the old pattern."""
    old = pattern("old-" + label, blocks)
    CTX.good.write10(lba, old)
    c = no_r2t_session(d)
    data = pattern("evil-" + label, blocks)
    itt = send_write_cmd(c, lba, blocks)
    r2t = None
    if attack.__code__.co_argcount == 4:
        r2t = wait_r2t(c, itt)
        res = attack(c, itt, r2t, data)
    else:
        res = attack(c, itt, data)
    if res is None:
        res = outcome(c, itt)
    c.close()
    d.wait_stats(lambda st: st["connections"] == 1 and st["tasks"] == 0, timeout=15,
                 what="the attacker's connection and task gone")
    got = good_data(lba, blocks)
    if res == "good":
        raise CaseFail("%s: the WRITE ended GOOD" % label)
    if got != old:
        raise CaseFail("%s: the medium at LBA %d..%d changed (%s)" % (
            label, lba, lba + blocks - 1, "the attacker's data" if got == data else "other"))
    return "%s -> %s, medium unchanged" % (label, res)


def dataout_abuse(d):
    out = []

    def past_edtl(c, itt, r2t, data):
        # offset inside, length past the EDTL (one block more than the command's 2)
        more = data + pattern("overflow", 1)
        c.send_pdu(data_out_pdu(c, itt, r2t.u32(20), more, 0), data=more)

    def overlap(c, itt, r2t, data):
        c.send_pdu(data_out_pdu(c, itt, r2t.u32(20), data[:BLOCK * 2], 0, 0, False),
                   data=data[:BLOCK * 2])
        c.send_pdu(data_out_pdu(c, itt, r2t.u32(20), data[BLOCK:], BLOCK, 1, True),
                   data=data[BLOCK:])

    def datasn_gap(c, itt, r2t, data):
        c.send_pdu(data_out_pdu(c, itt, r2t.u32(20), data[:BLOCK], 0, 0, False),
                   data=data[:BLOCK])
        c.send_pdu(data_out_pdu(c, itt, r2t.u32(20), data[BLOCK:], BLOCK, 2, True),
                   data=data[BLOCK:])

    def unsolicited(c, itt, data):
        # InitialR2T=Yes: a Data-Out before (without) an R2T, TTT 0xffffffff
        c.send_pdu(data_out_pdu(c, itt, RSVD, data, 0), data=data)
        try:
            p = c.wait(lambda q: q.opcode == OP_REJECT, 3.0, "Reject")
            return "reject 0x%02x" % p.bhs[2]
        except Timeout:
            return outcome(c, itt, 1.0)
        except Closed:
            return "drop"

    def f_bit_early(c, itt, r2t, data):
        # F=1 on the first half of the burst, then nothing more
        c.send_pdu(data_out_pdu(c, itt, r2t.u32(20), data[:BLOCK], 0, 0, True),
                   data=data[:BLOCK])
        return outcome(c, itt, 2.0)

    def f_bit_never(c, itt, r2t, data):
        # the whole burst with F=0 on every PDU, then silence
        for i in range(len(data) // BLOCK):
            c.send_pdu(data_out_pdu(c, itt, r2t.u32(20), data[i * BLOCK:(i + 1) * BLOCK],
                                    i * BLOCK, i, False), data=data[i * BLOCK:(i + 1) * BLOCK])
        return outcome(c, itt, 2.0)

    lba = 400
    for label, fn, blocks in (("length past EDTL", past_edtl, 2), ("overlapping offsets",
                              overlap, 3), ("DataSN gap", datasn_gap, 2),
                              ("unsolicited with InitialR2T=Yes", unsolicited, 2),
                              ("F bit on a short burst", f_bit_early, 2),
                              ("F bit never set", f_bit_never, 2)):
        out.append(dataout_attack(d, label, lba, blocks, fn))
        lba += 8

    # Data-Out carrying the ITT of a READ in progress (64 KiB READ, Data-Out sent at once)
    c = sess(d)
    before = good_data(lba, 1)
    h = c.cmd_bhs(r10(lba, 128), 128 * BLOCK, read=True)
    evil = pattern("evil-read", 1)
    c.send_pdu(h)
    c.send_pdu(data_out_pdu(c, itt_of(h), RSVD, evil, 0), data=evil)
    c.cmdsn += 1
    res = "no Reject"
    try:
        while True:
            p = c.wait(lambda q: q.itt == itt_of(h) or q.opcode == OP_REJECT, 3)
            if p.opcode == OP_REJECT:
                res = "reject 0x%02x" % p.bhs[2]
                continue
            if p.opcode == OP_SCSI_RSP or (p.flags & 0x01):
                res += ", READ status 0x%02x" % p.bhs[3]
                break
    except Timeout:
        pass
    except Closed:
        res += ", drop"
    c.close()
    if good_data(lba, 1) != before:
        raise CaseFail("Data-Out for a READ changed the medium")
    out.append("Data-Out for a READ -> %s, medium unchanged" % res)
    return "; ".join(out)


# --- TMF abuse ---------------------------------------------------------------------------
def tmf_pdu(c, func, rtt=RSVD, refcmdsn=0, lun=0):
    itt = c.next_itt()
    rest = struct.pack(">IIIII", rtt, c.cmdsn, c.expstatsn, refcmdsn, 0)
    return itt, bhs(0x40 | OP_TMF, 0x80 | func, lun=lun_field(lun), itt=itt, rest=rest)


def tmf(c, func, rtt=RSVD, refcmdsn=0, lun=0, timeout=10):
    itt, h = tmf_pdu(c, func, rtt, refcmdsn, lun)
    c.send_pdu(h)
    p = c.wait(lambda q: q.itt == itt or q.opcode == OP_REJECT, timeout, "TMF Response")
    return p


def tmf_abort_foreign(d):
    """ABORT TASK of unknown ITTs and of another session's outstanding WRITE: the other
    session's WRITE completes and stores its data."""
    a = no_r2t_session(d)
    b = sess(d)
    data = pattern("victim", 1)
    sn = a.cmdsn
    itt = send_write_cmd(a, 500, 1)
    r2t = wait_r2t(a, itt)
    answers = []
    for rtt, ref in ((itt, sn), (0x7FFF0000, b.cmdsn), (RSVD - 1, b.cmdsn)):
        p = tmf(b, TMF_ABORT_TASK, rtt, ref)
        if p.opcode != OP_TMF_RSP:
            raise CaseFail("ABORT TASK 0x%x answered %r" % (rtt, p))
        answers.append(p.bhs[2])
    a.send_pdu(data_out_pdu(a, itt, r2t.u32(20), data, 0), data=data)
    res = outcome(a, itt)
    if res != "good":
        raise CaseFail("the victim's WRITE ended %s after another session's ABORT TASK" % res)
    if good_data(500, 1) != data:
        raise CaseFail("the victim's data is not on the medium")
    a.logout()
    b.logout()
    a.close()
    b.close()
    return "ABORT TASK responses %s, the other session's WRITE completed" % answers


def tmf_lun_reset_storm(d):
    """Three sessions with WRITEs half sent (R2T answered with the first half) while a
    fourth sends 30 LUN RESETs; the late second halves must store nothing."""
    writers = []
    lba = 600
    for i in range(3):
        c = no_r2t_session(d)
        olds = []
        for j in range(4):
            old = pattern("pre-reset", 2)
            CTX.good.write10(lba, old)
            itt = send_write_cmd(c, lba, 2)
            r2t = wait_r2t(c, itt)
            evil = pattern("reset-evil", 2)
            c.send_pdu(data_out_pdu(c, itt, r2t.u32(20), evil[:BLOCK], 0, 0, False),
                       data=evil[:BLOCK])
            olds.append((lba, old, itt, r2t.u32(20), evil))
            lba += 2
        writers.append((c, olds))
    st = d.stats()
    s = sess(d)
    results = set()
    # plus READs in flight on the resetting session itself
    for i in range(30):
        h = s.cmd_bhs(r10(0, 64), 64 * BLOCK, read=True)
        s.send_pdu(h)
        s.cmdsn += 1
        p = tmf(s, TMF_LUN_RESET)
        if p.opcode != OP_TMF_RSP:
            raise CaseFail("LUN RESET answered %r" % p)
        results.add(p.bhs[2])
    for c, olds in writers:
        for lba_, old, itt, ttt, evil in olds:
            try:
                c.send_pdu(data_out_pdu(c, itt, ttt, evil[BLOCK:], BLOCK, 1, True),
                           data=evil[BLOCK:])
            except Closed:
                pass
    # the aborted tasks send no response; give the late Data-Out time to arrive
    for c, olds in writers:
        for lba_, old, itt, ttt, evil in olds:
            res = outcome(c, itt, 0.5)
            if res == "good":
                raise CaseFail("a WRITE aborted by LUN RESET ended GOOD")
    for c, olds in writers:
        c.close()
    s.close()
    CTX.good.tur()   # takes the UNIT ATTENTION the resets left
    for c, olds in writers:
        for lba_, old, itt, ttt, evil in olds:
            got = good_data(lba_, 2)
            if got != old:
                raise CaseFail("LBA %d changed after its WRITE was aborted by LUN RESET (%s)" %
                               (lba_, "attacker's data" if got[BLOCK:] == evil[BLOCK:] else
                                "other data"))
    return "12 half-sent WRITEs (tasks counted %d), 30 LUN RESETs (responses %s), " \
        "nothing stored" % (st["tasks"], sorted(results))


def tmf_flood_pipelined(d):
    """5000 LUN RESETs and ABORT TASKs (immediate) sent in one burst, with READs between
    them, before reading anything: every one answered once, memory bounded."""
    c = sess(d)
    raw = []
    want = set()
    reads = set()
    for i in range(5000):
        if i % 50 == 0:
            h = c.cmd_bhs(r10(i % 1000, 8), 8 * BLOCK, read=True)
            c.cmdsn += 1
            reads.add(itt_of(h))
            raw.append(h)
        itt, h = tmf_pdu(c, TMF_LUN_RESET if i % 2 else TMF_ABORT_TASK, 0x40000000 + i,
                         c.cmdsn)
        want.add(itt)
        raw.append(h)
    c.send(b"".join(raw))
    got = {}
    deadline = time.monotonic() + 60
    while want - set(got) and time.monotonic() < deadline:
        p = c.wait(lambda q: q.opcode in (OP_TMF_RSP, OP_REJECT, OP_SCSI_RSP) or
                   (q.opcode == hl.OP_DATA_IN and q.flags & 0x01), 60, "TMF Responses")
        if p.opcode == OP_REJECT:
            raise CaseFail("%r" % p)
        if p.opcode == OP_TMF_RSP:
            got[p.itt] = got.get(p.itt, 0) + 1
    if set(got) != want or any(v != 1 for v in got.values()):
        raise CaseFail("%d of %d TMFs answered exactly once" % (
            sum(1 for v in got.values() if v == 1), len(want)))
    hwm = d.hwm_kib()
    c.logout()
    c.close()
    CTX.good.tur()   # the UNIT ATTENTION of the resets
    return "5000 TMFs answered once each, peak RSS %d KiB" % hwm


def tmf_on_discovery(d):
    c = Conn(d.port)
    cls, det, _ = c.login(hl.initiator_name(), session_type="Discovery")
    if cls != 0:
        raise CaseFail("discovery login 0x%02x%02x" % (cls, det))
    res = []
    for func in (TMF_ABORT_TASK, TMF_LUN_RESET, 6, 7):
        try:
            p = tmf(c, func, 0x1234, c.cmdsn, timeout=5)
        except Closed:
            res.append("drop")
            break
        if p.opcode == OP_TMF_RSP:
            if p.bhs[2] == 0 and func != TMF_ABORT_TASK:
                raise CaseFail("TMF function %d on a discovery session answered complete" %
                               func)
            res.append("function %d: response %d" % (func, p.bhs[2]))
        else:
            res.append("function %d: reject 0x%02x" % (func, p.bhs[2]))
    c.close()
    return ", ".join(res)


# --- logout games ----------------------------------------------------------------------
def logout_with_tasks(d):
    """Logout with four WRITEs waiting for Data-Out and a READ: answered, tasks freed."""
    c = no_r2t_session(d)
    for i in range(4):
        itt = send_write_cmd(c, 700 + i, 1)
        wait_r2t(c, itt)
    h = c.cmd_bhs(r10(0, 256), 256 * BLOCK, read=True)
    c.send_pdu(h)
    c.cmdsn += 1
    try:
        c.logout()
        res = "Logout Response 0"
    except CaseFail as e:
        res = str(e)
    except (Closed, Timeout) as e:
        res = "no Logout Response (%s)" % e
    c.close()
    return res


def logout_twice_and_after(d):
    """Logout, then a second Logout and a WRITE pipelined behind it in the same segment:
    the WRITE must not reach the medium. Then logout, wait for the response and send
    more on the closing connection."""
    old = pattern("after-logout-old", 1)
    CTX.good.write10(720, old)
    c = sess(d)
    raw = b""
    itt1 = c.next_itt()
    raw += bhs(0x40 | OP_LOGOUT, 0x80, itt=itt1,
               rest=struct.pack(">HHII", 0, 0, c.cmdsn, c.expstatsn))
    c.cmdsn += 1
    itt2 = c.next_itt()
    raw += bhs(0x40 | OP_LOGOUT, 0x80, itt=itt2,
               rest=struct.pack(">HHII", 0, 0, c.cmdsn, c.expstatsn))
    evil = pattern("after-logout-evil", 1)
    h = c.cmd_bhs(w10(720, 1), BLOCK, write=True, dsl=BLOCK)
    raw += h + evil
    c.send(raw)
    seen = []
    try:
        while True:
            p = c.recv_pdu(3.0)
            seen.append(repr(p))
    except (Timeout, Closed):
        pass
    c.close()
    if not any("Logout Response" in s for s in seen):
        raise CaseFail("no Logout Response: %s" % seen)
    if any("SCSI Response" in s for s in seen):
        raise CaseFail("a command after Logout was answered: %s" % seen)
    if good_data(720, 1) != old:
        raise CaseFail("the WRITE sent after Logout reached the medium")
    # logout, then commands on the closing connection
    c = sess(d)
    c.logout()
    try:
        for i in range(10):
            c.send_pdu(c.cmd_bhs(w10(720, 1), BLOCK, write=True, dsl=BLOCK), data=evil)
            c.cmdsn += 1
            c.send_pdu(bhs(0x40 | OP_LOGOUT, 0x80, itt=c.next_itt(),
                           rest=struct.pack(">HHII", 0, 0, c.cmdsn, c.expstatsn)))
        more = c.recv_pdu(2.0)
        raise CaseFail("answer after the Logout Response: %r" % more)
    except (Closed, Timeout):
        pass
    c.close()
    if good_data(720, 1) != old:
        raise CaseFail("a WRITE sent after the Logout Response reached the medium")
    return "answered: %s; nothing after it" % ", ".join(seen)


def logout_reasons(d):
    """Logout reason codes against ERL 0: close another CID (none such), remove for
    recovery, reserved reasons, then close this CID: each answered, the session usable
    until its own connection is closed."""
    c = sess(d)
    out = []
    for reason, cid, ok in ((1, 7, (1,)), (2, 0, (2,)), (2, 7, (1, 2)), (3, 0, ()),
                            (0x7F, 0, ())):
        itt = c.next_itt()
        c.send_pdu(bhs(0x40 | OP_LOGOUT, 0x80 | reason, itt=itt,
                       rest=struct.pack(">HHII", cid, 0, c.cmdsn, c.expstatsn)))
        p = c.wait(lambda q: q.itt == itt or q.opcode == OP_REJECT, what="Logout Response")
        got = p.bhs[2] if p.opcode == OP_LOGOUT_RSP else None
        if (ok and got not in ok) or (not ok and p.opcode != OP_REJECT):
            raise CaseFail("logout reason %d CID %d answered %r" % (reason, cid, p))
        out.append("%d/CID %d -> %s" % (reason, cid, "response %d" % got if ok else
                                         "reject 0x%02x" % p.bhs[2]))
        c.nop_ping()
        c.tur()
    itt = c.next_itt()
    c.send_pdu(bhs(0x40 | OP_LOGOUT, 0x80 | 1, itt=itt,
                   rest=struct.pack(">HHII", 0, 0, c.cmdsn, c.expstatsn)))
    p = c.wait(lambda q: q.itt == itt, what="Logout Response")
    if p.opcode != OP_LOGOUT_RSP or p.bhs[2] != 0:
        raise CaseFail("close-connection logout of its own CID answered %r" % p)
    if not dropped(c, 5):
        raise CaseFail("connection still open after its close-connection logout")
    c.close()
    return "; ".join(out) + "; 1/own CID -> response 0, closed"


def main():
    cases = [
        ("setup: good session, baselines", setup_good),
        ("slow login: partial BHS, 1 byte/s, stuck stage -> login_timeout", case(slowloris)),
        ("login text C-bit past 64 KiB", case(login_cbit_flood)),
        ("FFP text C-bit past 64 KiB x40", case(ffp_text_cbit_flood)),
        ("login many keys / long values / repeated keys", case(login_many_keys)),
        ("SendTargets paged and abandoned", case(sendtargets_paged_abandoned)),
        ("CmdSN window filled behind a gap", case(cmdsn_window_fill)),
        ("CmdSN wrap-around near 2^32", case(cmdsn_wrap)),
        ("immediate commands past ISD_MAX_IMMEDIATE_TASKS", case(immediate_over_limit)),
        ("duplicate CmdSN of an outstanding WRITE", case(duplicate_outstanding_cmdsn)),
        ("Data-Out abuse", case(dataout_abuse)),
        ("TMF ABORT TASK of unknown/foreign ITTs", case(tmf_abort_foreign)),
        ("TMF LUN RESET storm with I/O in flight", case(tmf_lun_reset_storm)),
        ("TMF flood, 5000 pipelined", case(tmf_flood_pipelined)),
        ("TMF on a discovery session", case(tmf_on_discovery)),
        ("logout with tasks outstanding", case(logout_with_tasks)),
        ("logout twice, commands after logout", case(logout_twice_and_after)),
        ("logout reason codes", case(logout_reasons)),
    ]
    only = os.environ.get("ISERD_ABUSE_ONLY")
    if only:
        cases = cases[:1] + [c for c in cases[1:] if only in c[0]]
    return hl.run("test_protocol_abuse", cases, setup=lambda: hl.Iserd(
        conf=CONF, env={"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:quarantine_size_mb=16"}))


if __name__ == "__main__":
    sys.exit(main())
