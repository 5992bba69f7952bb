#!/usr/bin/env python3
"""One initiator process of test_chaos.py's kill -9 run (python3 stdlib only).

  chaos_writer.py PORT IQN LUN WRITER FIRST_LBA BLOCKS QD LOG

Logs in (InitiatorName and ISID fixed per WRITER, so a restarted writer
reinstates its own session) and writes for ever into [FIRST_LBA,
FIRST_LBA+BLOCKS) of LUN with up to QD WRITEs outstanding, never two at once to
the same block. Every block written carries a stamp (see block()): the writer,
its LBA and the write's generation, and a CRC32 of the rest.

LOG gets one line per event, each written with one write(2) on an O_APPEND fd
(a kill -9 falls between two lines, never inside one):
  I LBA N GEN          before the command is sent (the write was issued)
  A LBA N GEN CRC      after its SCSI Response came back GOOD (acknowledged)
Generations grow by one per WRITE, across restarts: a new process starts past
the largest GEN in LOG.
"""

import hashlib
import os
import random
import struct
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import test_malformed as tm  # noqa: E402

from test_malformed import (BLOCK, OP_NOP_IN, OP_R2T, OP_REJECT, OP_SCSI_RSP,  # noqa: E402
                            RSVD, Conn)

MAGIC = b"ISDCHAOS"
INI_BASE = "iqn.2026-11.org.iserd:chaos-writer"
BIG = 160  # blocks: 80 KiB, past FirstBurstLength, so part of it goes by R2T


def block(writer, lba, gen):
    """The 512 bytes a WRITE of generation gen stores at lba."""
    head = MAGIC + struct.pack(">IIQ", writer, lba, gen)
    fill = hashlib.sha256(head).digest() * (BLOCK // 32)
    body = head + fill[:BLOCK - len(head) - 4]
    return body + struct.pack(">I", zlib.crc32(body))


def parse_block(data):
    """(writer, lba, gen) of a stamped block with a good CRC, or None."""
    if data[:8] != MAGIC or struct.unpack(">I", data[-4:])[0] != zlib.crc32(data[:-4]):
        return None
    writer, lba, gen = struct.unpack(">IIQ", data[8:24])
    return writer, lba, gen


def last_gen(path):
    """The largest generation in LOG: the one on its last complete I line (generations
    are issued in increasing order), read from the end so restarts stay quick."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 65536))
            tail = f.read()
    except FileNotFoundError:
        return 0
    for line in reversed(tail.split(b"\n")[1:-1] if size > 65536 else tail.split(b"\n")[:-1]):
        p = line.split()
        if p and p[0] == b"I":
            return int(p[3])
    return 0


def scan_log(path, first, nblocks, held):
    """Reads LOG once. held[i] is the generation found in block first+i (or None).
    Returns (acked, found): acked[i] is the largest acknowledged generation of a write
    covering block first+i (-1: none), found[i] whether held[i] was ever issued for
    that block. The last piece of LOG without a newline (a line cut off) is ignored."""
    acked = [-1] * nblocks
    found = [False] * nblocks
    with open(path, "rb") as f:
        rest = b""
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            for line in lines:
                kind, lba, n, gen = line.split()[:4]
                lba, n, gen = int(lba) - first, int(n), int(gen)
                if kind == b"A":
                    for i in range(lba, lba + n):
                        if gen > acked[i]:
                            acked[i] = gen
                else:
                    for i in range(lba, lba + n):
                        if held[i] == gen:
                            found[i] = True
    return acked, found


def main():
    port, iqn, lun, writer, first, nblocks, qd, log = sys.argv[1:9]
    port, lun, writer, first, nblocks, qd = map(int, (port, lun, writer, first, nblocks, qd))
    tm.IQN = iqn
    tm.LUN = lun
    gen = last_gen(log)
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    c = Conn(port, timeout=30)
    c.isid = bytes([0x80, 0x43, 0x48, 0x41]) + writer.to_bytes(2, "big")
    cls, det, _ = c.login("%s-%d" % (INI_BASE, writer))
    if cls != 0:
        sys.exit("writer %d: login status 0x%02x%02x" % (writer, cls, det))
    for _ in range(4):   # the UNIT ATTENTIONs of a new session, on this LUN
        if c.scsi(b"\x00" * 6, lun=lun)[0] == 0:
            break
    fb = min(int(c.keys.get("FirstBurstLength", "65536")), c.target_mrdsl)
    rng = random.Random()
    busy = set()         # blocks with a WRITE outstanding
    out = {}             # itt -> (lba, n, gen, data)
    while True:
        while len(out) < qd:
            n = BIG if rng.random() < 0.05 else rng.randint(1, 16)
            n = min(n, nblocks)
            lba = first + rng.randrange(nblocks - n + 1)
            if any(b in busy for b in range(lba, lba + n)):
                break
            gen += 1
            data = b"".join(block(writer, b, gen) for b in range(lba, lba + n))
            os.write(fd, b"I %d %d %d\n" % (lba, n, gen))
            imm = data[:min(fb, len(data))]
            h = c.cmd_bhs(struct.pack(">BBIBHB", 0x2A, 0, lba, 0, n, 0), len(data),
                          write=True, dsl=len(imm))
            itt = struct.unpack_from(">I", h, 16)[0]
            c.send_pdu(h, data=imm)
            c.cmdsn = (c.cmdsn + 1) & 0xFFFFFFFF
            out[itt] = (lba, n, gen, data)
            busy.update(range(lba, lba + n))
        try:
            p = c.recv_pdu(60)
        except tm.Timeout:
            sys.exit("writer %d: no PDU from the target in 60 s with %d WRITEs outstanding "
                     "(ITTs %s, CmdSN %u, MaxCmdSN %u)" % (
                         writer, len(out), ["0x%x" % i for i in out], c.cmdsn, c.maxcmdsn))
        if p.opcode == OP_NOP_IN:
            if p.itt == RSVD and p.u32(20) != RSVD:
                c.nop_reply(p.u32(20))
            continue
        if p.opcode == OP_REJECT:
            sys.exit("writer %d: %r" % (writer, p))
        if p.itt not in out:
            continue
        lba, n, g, data = out[p.itt]
        if p.opcode == OP_R2T:
            off, length = p.u32(40), p.u32(44)
            c.data_out(p.itt, p.u32(20), data[off:off + length], off, lun)
        elif p.opcode == OP_SCSI_RSP:
            del out[p.itt]
            busy.difference_update(range(lba, lba + n))
            if p.bhs[2] != 0 or p.bhs[3] != 0:
                if p.bhs[3] == 2 and len(p.data) >= 4 and (p.data[4] & 0x0F) == 6:
                    continue  # UNIT ATTENTION (a reinstated session): not written, not acked
                sys.exit("writer %d: WRITE status 0x%02x" % (writer, p.bhs[3]))
            os.write(fd, b"A %d %d %d %d\n" % (lba, n, g, zlib.crc32(data)))


if __name__ == "__main__":
    main()
