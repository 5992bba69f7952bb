#!/usr/bin/env python3
"""Resource limits (docs/iserd.md "Limits and worst-case memory").

One iserd with small limits in a config file. Each case opens a well-behaved
session first, then floods past one limit, and checks that
  - the refusal happens the documented way (socket closed at accept, login
    status 0x0302, the connection closed for held PDUs, BUSY for a command
    past the session's buffer limit),
  - its counter in the SIGUSR1 stats ("refused": {...}) counts every refusal,
  - iserd's RSS grows no more than the documented bound for what was admitted,
  - the session opened before the flood still does TUR/WRITE/READ,
  - once the flood is gone the counters (connections, sessions,
    login_connections) are back to their baseline and a new login succeeds.
Other source addresses are other loopback addresses (127.0.0.2...).
"""

import select
import socket
import struct
import shutil
import sys
import tempfile
import time

import hostile_lib as hl
from hostile_lib import RSVD, OP_TEXT, CaseFail, Closed, Conn, Timeout, bhs

IQN_B = hl.IQN + "-b"
LIMITS = {
    "max_connections": 24,
    "max_connections_per_address": 12,
    "max_login_connections": 16,
    "max_sessions": 10,
    "max_sessions_per_target": 6,
    "max_discovery_sessions": 3,
    "max_held_bytes": 131072,
    "max_held_pdus": 16,
    "max_session_buffer_bytes": 4 << 20,
}
IQN_FILE = hl.IQN + "-file"
FILE_DIR = tempfile.mkdtemp(prefix="iserd-limits.")
CONF = """
global = {
  login_timeout = 120;
%s
};
portals = ( "tcp://127.0.0.1:@PORT@" );
targets = (
  { name = "%s"; luns = ( { backing = "ram:16M"; } ); },
  { name = "%s"; luns = ( { backing = "ram:1M"; } ); },
  { name = "%s"; luns = ( { backing = "file:%s/lun.img,size=16M"; } ); }
);
""" % ("\n".join("  %s = %d;" % kv for kv in LIMITS.items()), hl.IQN, IQN_B, IQN_FILE, FILE_DIR)

# Worst case of one connection in the login phase, from docs/iserd.md: connection
# and TCP state, one receive PDU, login state, request and response text and the
# parse copy: 213669 bytes. (Its send queue stays empty: the flood sends nothing.)
LOGIN_CONN_KIB = 209
# Slack for what the allocator and ASan keep around (quarantine, shadow).
SLACK_KIB = 8 * 1024
DATA_KIB = 16 * 1024  # the RAM LUs, touched by the cases' WRITEs at most

ADDRS = ["127.0.0.%d" % i for i in range(2, 6)]


def conn_from(port, src, timeout=5.0):
    """A Conn whose socket comes from source address src."""
    orig = socket.create_connection

    def create(addr, timeout=None, *a, **kw):
        return orig(addr, timeout, source_address=(src, 0))
    socket.create_connection = create
    try:
        return Conn(port, timeout)
    finally:
        socket.create_connection = orig


def flood(port, srcs, n_each):
    """Raw sockets that connect and never send a byte."""
    socks = []
    for src in srcs:
        for _ in range(n_each):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((src, 0))
            s.settimeout(5)
            s.connect((hl.HOST, port))
            s.setblocking(False)
            socks.append(s)
    return socks


def closed_by_peer(socks, expect, timeout=10.0):
    """Waits until `expect` sockets have seen EOF or a reset (iserd closed them at
    accept); returns how many did. The stats tell how many stayed open."""
    dead = set()
    deadline = time.monotonic() + timeout
    while len(dead) < expect and time.monotonic() < deadline:
        live = [s for s in socks if s not in dead]
        r, _, _ = select.select(live, [], [], 0.2)
        for s in r:
            try:
                if s.recv(1) == b"":
                    dead.add(s)
            except ConnectionResetError:
                dead.add(s)
            except BlockingIOError:
                pass
    return len(dead)


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def refused(st, name):
    return st.get("refused", {}).get(name, 0)


def wait_refused(d, base, name, n):
    """Waits until refused.<name> has grown by n since base; returns the stats."""
    return d.wait_stats(lambda st: refused(st, name) == refused(base, name) + n,
                        what="refused.%s +%d" % (name, n))


def refused_at_accept(d, base, socks, counter, want, gauge, lim):
    """The flood past a connection limit: refused.<counter> grew by want, the
    stats gauge (connections alive, or in login) sits at lim, and exactly want
    of the flood's sockets were closed by iserd."""
    st = wait_refused(d, base, counter, want)
    if st[gauge] != lim:
        raise CaseFail("%s %d, limit %d" % (gauge, st[gauge], lim))
    n = closed_by_peer(socks, want)
    if n != want:
        raise CaseFail("%d flood sockets closed at accept, expected %d" % (n, want))


def good_io(c, lba=100):
    """TUR, WRITE and READ on a session opened before the flood."""
    c.tur()
    data = bytes((lba + i) & 0xFF for i in range(4096))
    c.write10(lba, data)
    if c.read10(lba, 8) != data:
        raise CaseFail("READ returned other data than written")


def baseline(d):
    st = d.stats()
    for k in ("connections", "sessions", "login_connections"):
        if st.get(k) is None:
            raise CaseFail("stats have no '%s': %s" % (k, st))
    return st


def back_to(d, base, what):
    return d.wait_stats(lambda st: all(st[k] == base[k] for k in
                                       ("connections", "sessions", "login_connections")),
                        what=what)


def after_flood(d, base, good, what):
    """The flood is gone: counters back to base, a new login works, good ends."""
    back_to(d, base, "counters back after the " + what)
    new_login(d.port).close()
    good.close()


def check_rss(d, rss0, bound_kib, what):
    grew = d.rss_kib() - rss0
    if grew > bound_kib + SLACK_KIB:
        raise CaseFail("%s: RSS grew by %d KiB, bound %d KiB + %d KiB slack" %
                       (what, grew, bound_kib, SLACK_KIB))
    return grew


def new_login(port, src=hl.HOST, target=None):
    c = conn_from(port, src)
    cls, det, _ = c.login(hl.initiator_name(), target=target)
    if cls != 0:
        c.close()
        raise CaseFail("a good login from %s failed with 0x%02x%02x" % (src, cls, det))
    c.tur()
    return c


def case_login_flood(d):
    """More unauthenticated connections than max_login_connections, from 4 addresses."""
    good = hl.session(d.port)
    base = baseline(d)
    rss0 = d.rss_kib()
    lim = LIMITS["max_login_connections"]
    socks = flood(d.port, ADDRS, 6)           # 24 > 16; 6 per address stays under 12
    try:
        want = len(socks) - lim
        refused_at_accept(d, base, socks, "login_connections", want, "login_connections", lim)
        grew = check_rss(d, rss0, lim * LOGIN_CONN_KIB, "login flood")
        good_io(good)
        # while the flood holds every login slot, a new login is refused too
        try:
            late = conn_from(d.port, "127.0.0.7")
            late.login(hl.initiator_name())
            raise CaseFail("a login past max_login_connections succeeded")
        except (Closed, Timeout):
            pass
    finally:
        close_all(socks)
    after_flood(d, base, good, "login flood")
    return "%d refused at accept, RSS +%d KiB" % (want, grew)


def case_per_address(d):
    """More connections from one address than max_connections_per_address."""
    good = hl.session(d.port)
    base = baseline(d)
    lim = LIMITS["max_connections_per_address"]
    socks = flood(d.port, [hl.HOST], 20)      # the good session is the 1st of 12
    try:
        want = 20 - (lim - 1)
        # the good session and 11 of the flood: 12 alive, all from 127.0.0.1
        refused_at_accept(d, base, socks, "per_address", want, "connections", lim)
        good_io(good)
        # another address is still served during the flood
        other = new_login(d.port, "127.0.0.8")
        good_io(other, 200)
        other.close()
    finally:
        close_all(socks)
    after_flood(d, base, good, "per-address flood")
    return "%d refused at accept" % want


def case_max_connections(d):
    """Sessions plus login connections past max_connections."""
    good = hl.session(d.port)
    base = baseline(d)
    sess = []
    socks = []
    try:
        # 10 sessions in all (max_sessions): 6 on the first target, 4 on the second
        for i in range(5):
            sess.append(new_login(d.port))
        for i in range(4):
            sess.append(new_login(d.port, target=IQN_B))
        lim = LIMITS["max_connections"]
        socks = flood(d.port, ADDRS, 5)       # 10 + 20 > 24
        want = 10 + len(socks) - lim
        refused_at_accept(d, base, socks, "connections", want, "connections", lim)
        good_io(good)
    finally:
        close_all(socks)
        for c in sess:
            c.close()
    after_flood(d, base, good, "connection flood")
    return "%d refused at accept" % want


def expect_no_resources(d, port, src, what, **kw):
    c = conn_from(port, src)
    try:
        cls, det, _ = c.login(hl.initiator_name(), **kw)
    finally:
        c.close()
    if (cls, det) != (3, 2):
        raise CaseFail("%s: login status 0x%02x%02x, expected 0x0302 Out of resources" %
                       (what, cls, det))


def case_sessions(d):
    """Sessions past max_sessions_per_target, max_sessions and max_discovery_sessions."""
    good = hl.session(d.port)
    base = baseline(d)
    sess = []
    try:
        for i in range(5):                     # with good: 6 on the first target
            sess.append(new_login(d.port, ADDRS[i % 4]))
        expect_no_resources(d, d.port, ADDRS[0], "7th session on one target")
        for i in range(4):                     # 10 sessions in all
            sess.append(new_login(d.port, ADDRS[i % 4], target=IQN_B))
        expect_no_resources(d, d.port, ADDRS[1], "11th session", target=IQN_B)
        wait_refused(d, base, "sessions_per_target", 1)
        st = wait_refused(d, base, "sessions", 1)
        if st["sessions"] != LIMITS["max_sessions"]:
            raise CaseFail("sessions %d, limit %d" % (st["sessions"], LIMITS["max_sessions"]))
        good_io(good)
    finally:
        for c in sess:
            c.close()
    back_to(d, base, "counters back after the session flood")
    # discovery sessions have their own, smaller limit
    disc = []
    try:
        for i in range(LIMITS["max_discovery_sessions"]):
            c = conn_from(d.port, ADDRS[i % 4])
            cls, det, _ = c.login(hl.initiator_name(), session_type="Discovery")
            disc.append(c)
            if cls != 0:
                raise CaseFail("discovery login %d failed: 0x%02x%02x" % (i, cls, det))
        expect_no_resources(d, d.port, ADDRS[3], "discovery session past the limit",
                            session_type="Discovery")
        wait_refused(d, base, "discovery_sessions", 1)
        good_io(good)
    finally:
        for c in disc:
            c.close()
    after_flood(d, base, good, "discovery sessions")
    return "0x0302 for the 7th per target, the 11th in all, the 4th discovery session"


def write10_cdb(lba, blocks):
    return struct.pack(">BBIBHB", 0x2A, 0, lba, 0, blocks, 0)


def park(c, n, size):
    """n WRITEs with immediate data and CmdSN ExpCmdSN+1.., ExpCmdSN never sent.
    Returns how many were sent before the target closed the connection."""
    exp = c.cmdsn
    data = bytes(size)
    for i in range(n):
        h = c.cmd_bhs(write10_cdb(i, size // 512), size, write=True, dsl=size,
                      cmdsn=(exp + 1 + i) & 0xFFFFFFFF)
        try:
            c.send_pdu(h, data=data)
        except Closed:
            return i
    return n


def expect_closed(c, what):
    try:
        c.wait(lambda p: False, timeout=10, what="close")
    except Closed:
        return
    except Timeout:
        raise CaseFail("%s: the connection was not closed" % what)


def case_held_pdus(d):
    """Out-of-order CmdSN commands with immediate data past max_held_bytes and
    max_held_pdus, and Text requests past a discovery session's smaller share."""
    good = hl.session(d.port)
    base = baseline(d)
    rss0 = d.rss_kib()
    attackers = []
    try:
        # bytes: 32 KiB of immediate data each, 4 sessions, far more than 128 KiB each
        for src in ADDRS:
            c = conn_from(d.port, src)
            cls, det, _ = c.login(hl.initiator_name(), target=IQN_B)
            if cls != 0:
                raise CaseFail("attacker login failed 0x%02x%02x" % (cls, det))
            attackers.append(c)
            park(c, 120, 32768)
        # count: 512 bytes each, far more than 16 PDUs
        c = conn_from(d.port, ADDRS[0])
        c.login(hl.initiator_name(), target=IQN_B)
        attackers.append(c)
        park(c, 100, 512)
        # a discovery session parks Text requests in its 4-slot window
        c = conn_from(d.port, ADDRS[1])
        c.login(hl.initiator_name(), session_type="Discovery")
        attackers.append(c)
        exp = c.cmdsn
        size = min(30000, c.target_mrdsl)
        for i in range(3):
            rest = struct.pack(">III", RSVD, (exp + 1 + i) & 0xFFFFFFFF, c.expstatsn)
            try:
                c.send_pdu(bhs(OP_TEXT, 0x80, dsl=size, itt=c.next_itt(), rest=rest),
                           data=b"X-a=" + bytes(size - 4))
            except Closed:
                break
        bound = (len(attackers) - 1) * LIMITS["max_held_bytes"] + 65536
        grew = check_rss(d, rss0, bound // 1024, "held PDUs")
        for i, c in enumerate(attackers):
            expect_closed(c, "attacker %d" % i)
        wait_refused(d, base, "held_pdus", len(attackers))
        good_io(good)
    finally:
        for c in attackers:
            c.close()
    after_flood(d, base, good, "held PDUs")
    return "%d connections closed, RSS +%d KiB" % (len(attackers), grew)


def case_buffers(d):
    """WRITEs to a file LUN that never send their data: each holds a buffer of its
    whole transfer length; past max_session_buffer_bytes they are answered BUSY."""
    good = hl.session(d.port)
    base = baseline(d)
    rss0 = d.rss_kib()
    size, n = 1 << 20, 12
    lim = LIMITS["max_session_buffer_bytes"]
    want = n - lim // size
    c = conn_from(d.port, ADDRS[0])
    try:
        cls, det, _ = c.login(hl.initiator_name(), target=IQN_FILE)
        if cls != 0:
            raise CaseFail("login to the file target failed 0x%02x%02x" % (cls, det))
        c.tur()
        itts = []
        for i in range(n):
            h = c.cmd_bhs(write10_cdb(i * (size // 512), size // 512), size, write=True)
            itts.append(struct.unpack_from(">I", h, 16)[0])
            c.send_pdu(h)
            c.cmdsn = (c.cmdsn + 1) & 0xFFFFFFFF
        busy = 0
        for _ in range(want):                 # the R2Ts of the first ones are ignored
            p = c.wait(lambda q: q.opcode == hl.OP_SCSI_RSP and q.itt in itts,
                       what="BUSY for a WRITE past the buffer limit")
            if p.bhs[3] != 0x08:
                raise CaseFail("WRITE answered with status 0x%02x, expected BUSY" % p.bhs[3])
            busy += 1
        wait_refused(d, base, "buffers", want)
        grew = check_rss(d, rss0, lim // 1024, "command buffers")
        good_io(good)
    finally:
        c.close()
    after_flood(d, base, good, "command buffers")
    return "%d WRITEs answered BUSY, RSS +%d KiB" % (busy, grew)


def setup():
    env = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:quarantine_size_mb=16"}
    return hl.Iserd(conf=CONF, env=env)


if __name__ == "__main__":
    rc = hl.run("test_limits", [
        ("login-flood-past-max_login_connections", case_login_flood),
        ("flood-past-max_connections_per_address", case_per_address),
        ("flood-past-max_connections", case_max_connections),
        ("sessions-past-max_sessions-per-target-discovery", case_sessions),
        ("held-pdus-past-max_held_bytes-and-max_held_pdus", case_held_pdus),
        ("writes-past-max_session_buffer_bytes", case_buffers),
    ], setup=setup)
    shutil.rmtree(FILE_DIR, ignore_errors=True)
    sys.exit(rc)
