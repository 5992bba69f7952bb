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


def read_log(path):
    """{lba: set of issued gens}, {lba: largest acknowledged gen}, largest gen seen."""
    issued, acked, top = {}, {}, 0
    try:
        with open(path) as f:
            lines = f.read().split("\n")
    except FileNotFoundError:
        return issued, acked, top
    for line in lines[:-1]:  # the last piece has no newline: empty, or a write cut off
        p = line.split()
        kind, lba, n, gen = p[0], int(p[1]), int(p[2]), int(p[3])
        top = max(top, gen)
        for b in range(lba, lba + n):
            if kind == "I":
                issued.setdefault(b, set()).add(gen)
            elif kind == "A":
                acked[b] = max(acked.get(b, -1), gen)
    return issued, acked, top


def main():
    port, iqn, lun, writer, first, nblocks, qd, log = sys.argv[1:9]
    port, lun, writer, first, nblocks, qd = map(int, (port, lun, writer, first, nblocks, qd))
    tm.IQN = iqn
    tm.LUN = lun
    _, _, gen = read_log(log)
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
        p = c.recv_pdu(30)
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
