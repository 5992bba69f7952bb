#!/usr/bin/env python3
"""Hostile peers that never read their replies (TCP send queue backpressure).

(a) A discovery session (no credentials) with a 4 KiB receive buffer sends
    immediate NOP-Out pings carrying MaxRecvDataSegmentLength bytes each and
    never reads: every NOP-In echo would be queued in iserd. iserd must stop
    reading from that connection once its send queue passes
    max_tx_queue_bytes, so its memory stays bounded, while a good session on
    another connection goes on with TUR/WRITE/READ.
(c) The same attacker, then silence: with reading paused, our NOP-In ping is
    never answered and the NOP timeout drops it (the hard bound in time).
(b) A normal session queues 256 KiB READs at full queue depth and never reads
    the Data-In: bounded too (the task buffers are bounded by the commands
    outstanding, the queue by the limit).
"""

import socket
import struct
import sys
import time

import hostile_lib as hl
from hostile_lib import (BLOCK, OP_NOP_OUT, RSVD, CaseFail, Conn, bhs)

import test_malformed as tm

LIMIT = 4 << 20                 # max_tx_queue_bytes default
# Slack over the limit for the RSS bound: socket buffers the kernel does not
# count in RSS aside, iserd holds at most the queue (LIMIT), the one PDU in
# reception (MaxRecvDataSegmentLength, 256 KiB) and the replies to the PDUs
# read in the receive burst during which the limit was crossed (at most 16
# PDUs of 256 KiB: 4 MiB). ASan adds its redzones, shadow pages and the
# quarantine of freed PDU buffers (what was allocated before the pause and
# freed, a few MiB here), and the good session's own buffers come on top:
# 32 MiB covers all of it with room, and is far below what an unbounded queue
# reaches (the old code grew by hundreds of MiB in the same run).
SLACK = 32 << 20
ATTACK_BYTES = 256 << 20
ATTACK_SECONDS = 5.0


def small_rcvbuf_conn(port, rcvbuf=4096):
    """A Conn whose socket got SO_RCVBUF before connect (so the window stays small)."""
    orig = tm.socket.create_connection

    def connect(addr, timeout=None):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(timeout)
        s.connect(addr)
        return s

    tm.socket.create_connection = connect
    try:
        return Conn(port)
    finally:
        tm.socket.create_connection = orig


def good_io(g, lba, seed):
    data = bytes(((i * 7 + seed) & 0xFF) for i in range(8 * BLOCK))
    g.tur()
    g.write10(lba, data)
    if g.read10(lba, 8) != data:
        raise CaseFail("good session read back other data")


def flood(d, sock, make_pdu, good):
    """Sends PDUs without ever reading, for at most ATTACK_BYTES / ATTACK_SECONDS.
    Returns (bytes sent, peak RSS growth in KiB). The good session does I/O meanwhile."""
    sock.setblocking(False)
    rss0 = d.rss_kib()
    peak = 0
    sent = 0
    pending = b""
    t0 = time.monotonic()
    next_io = t0 + 1.0
    lba = 100
    while sent < ATTACK_BYTES and time.monotonic() - t0 < ATTACK_SECONDS:
        if not pending:
            pending = make_pdu()
        try:
            n = sock.send(pending)
            sent += n
            pending = pending[n:]
        except BlockingIOError:
            time.sleep(0.01)
        except (BrokenPipeError, ConnectionResetError):
            break
        if time.monotonic() >= next_io:
            peak = max(peak, d.rss_kib() - rss0)
            good_io(good, lba, lba)
            lba += 8
            next_io = time.monotonic() + 0.5
    time.sleep(0.5)
    peak = max(peak, d.rss_kib() - rss0)
    good_io(good, lba, 1)
    peak = max(peak, d.rss_kib() - rss0)
    return sent, peak


def check_bound(what, sent, peak_kib):
    bound = (LIMIT + SLACK) >> 10
    print("%s: sent %d MiB without reading, iserd RSS grew by %d KiB (bound %d KiB)" %
          (what, sent >> 20, peak_kib, bound), flush=True)
    if peak_kib > bound:
        raise CaseFail("%s: RSS grew by %d KiB, more than %d KiB" % (what, peak_kib, bound))


def wait_clean(d):
    return d.wait_stats(lambda st: st["connections"] == 1 and
                        st["tcp"]["tx_queued_bytes"] == 0, what="attacker gone, queue empty")


def case_nop_flood_discovery(d):
    good = hl.session(d.port)
    atk = small_rcvbuf_conn(d.port)
    cls, det, keys = atk.login(hl.initiator_name(), session_type="Discovery")
    if cls != 0:
        raise CaseFail("discovery login failed 0x%02x%02x" % (cls, det))
    size = atk.target_mrdsl
    payload = bytes(size)
    itt = [0x1000]

    def ping():
        itt[0] = (itt[0] + 1) & 0x7FFFFFFF
        rest = struct.pack(">III", RSVD, atk.cmdsn, atk.expstatsn)
        return bhs(0x40 | OP_NOP_OUT, 0x80, dsl=size, itt=itt[0], rest=rest) + payload

    before = d.stats().get("tcp", {}).get("rx_paused", 0)
    sent, peak = flood(d, atk.sock, ping, good)
    st = d.stats()
    check_bound("NOP-Out flood (%d-byte pings)" % size, sent, peak)
    if st["tcp"]["rx_paused"] <= before:
        raise CaseFail("reading was never paused: %s" % st["tcp"])
    atk.close()
    st = wait_clean(d)
    good_io(good, 2000, 3)
    good.close()
    return "sent %d MiB, RSS +%d KiB, tcp %s" % (sent >> 20, peak, st["tcp"])


def case_read_flood_unread(d):
    good = hl.session(d.port)
    atk = small_rcvbuf_conn(d.port)
    cls, det, _ = atk.login(hl.initiator_name())
    if cls != 0:
        raise CaseFail("login failed 0x%02x%02x" % (cls, det))
    blocks = (256 << 10) // BLOCK
    state = {"n": 0}

    def read_cmd():
        # Past the CmdSN window the target ignores or rejects: still never read.
        cdb = struct.pack(">BBIBHB", 0x28, 0, (state["n"] * blocks) % 32768 // blocks * blocks,
                          0, blocks, 0)
        h = atk.cmd_bhs(cdb, blocks * BLOCK, read=True)
        atk.cmdsn = (atk.cmdsn + 1) & 0xFFFFFFFF
        state["n"] += 1
        return h

    sent, peak = flood(d, atk.sock, read_cmd, good)
    check_bound("%d unread 256 KiB READs" % state["n"], sent, peak)
    atk.close()
    st = wait_clean(d)
    good_io(good, 3000, 4)
    good.close()
    return "%d READs, RSS +%d KiB, tcp %s" % (state["n"], peak, st["tcp"])


def case_stuck_reader_dropped(d):
    """A peer that never reads again: reading stays paused, so the core's NOP-In
    ping (nop_interval 5 s) goes unanswered and nop_timeout (10 s) drops it."""
    good = hl.session(d.port)
    atk = small_rcvbuf_conn(d.port)
    cls, det, _ = atk.login(hl.initiator_name(), session_type="Discovery")
    if cls != 0:
        raise CaseFail("discovery login failed 0x%02x%02x" % (cls, det))
    size = atk.target_mrdsl
    rest = struct.pack(">III", RSVD, atk.cmdsn, atk.expstatsn)
    pdu = bhs(0x40 | OP_NOP_OUT, 0x80, dsl=size, itt=0x77, rest=rest) + bytes(size)
    flood(d, atk.sock, lambda: pdu, good)
    if d.stats()["connections"] != 2:
        raise CaseFail("the attacker was dropped before the NOP timeout")
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        good.nop_ping(b"alive")         # answers the target's pings on the good one
        st = d.stats()
        if st["connections"] == 1 and st["tcp"]["tx_queued_bytes"] == 0:
            break
        time.sleep(0.5)
    else:
        raise CaseFail("the stuck attacker was never dropped: %s" % st)
    good_io(good, 5000, 5)
    good.close()
    atk.close()
    return "dropped by the NOP timeout, queue freed"


CASES = [
    ("discovery NOP-Out flood, never read", case_nop_flood_discovery),
    ("a peer that never reads again is dropped at the NOP timeout", case_stuck_reader_dropped),
    ("256 KiB READs at queue depth, Data-In never read", case_read_flood_unread),
]

if __name__ == "__main__":
    sys.exit(hl.run("test_txq", CASES))
