#!/usr/bin/env python3
"""Data that fails its data digest must never reach a LUN.

A session logs in with HeaderDigest=None, DataDigest=CRC32C and writes with a
wrong data digest on one PDU: the solicited Data-Out, the immediate data, the
immediate data's solicited rest, or an unsolicited Data-Out; on a RAM LUN
(whose memory a write could be received straight into) and on a file LUN
(staged, then pwrite). Each time the PDU is rejected (data digest error), the
command does not complete GOOD (at ErrorRecoveryLevel 0 it ends with CHECK
CONDITION, ABORTED COMMAND, PROTOCOL SERVICE CRC ERROR 0x47/0x05 once all its
data is in: RFC 7143 §7.8; a SCSI Command PDU whose immediate data fails is
discarded whole and never answered), and a second session reads the blocks
back unchanged.
"""

import os
import struct
import sys
import time

import hostile_lib as hl
from hostile_lib import (BLOCK, OP_DATA_IN, OP_DATA_OUT, OP_REJECT, OP_SCSI_RSP, CaseFail,
                         Closed, Conn, Timeout, bhs, lun_field, pad4)

import test_malformed as tm

RAM_LUN = 0
FILE_LUN = 1
BLOCKS = 32                     # 16 KiB per command: two 8 KiB PDUs
CHUNK = 8192
REJECT_DATA_DIGEST = 0x02


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


CRC_TABLE = _crc32c_table()


def crc32c(data):
    """CRC32C (Castagnoli, reflected), as iSCSI digests use it (RFC 7143 §13.1)."""
    c = 0xFFFFFFFF
    for b in data:
        c = CRC_TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283  # the standard check value


class DigestConn(Conn):
    """Conn with data digests once in full feature phase (no header digests)."""

    dd = False
    corrupt_next = False        # the next PDU with data gets a wrong data digest

    def send_pdu(self, h, ahs=b"", data=b""):
        seg = data + bytes(pad4(len(data)) - len(data))
        raw = h + ahs + seg
        if self.dd and data:
            crc = crc32c(seg)
            if self.corrupt_next:
                crc ^= 0x5A5A
                self.corrupt_next = False
            raw += struct.pack("<I", crc)      # least significant byte first
        self.send(raw)

    def recv_pdu(self, timeout=None):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        h = self._recv_exact(48, deadline)
        ahs_len = h[4] * 4
        dsl = int.from_bytes(h[5:8], "big")
        ahs = self._recv_exact(ahs_len, deadline) if ahs_len else b""
        seg = self._recv_exact(pad4(dsl), deadline) if dsl else b""
        if self.dd and dsl:
            got = struct.unpack("<I", self._recv_exact(4, deadline))[0]
            if got != crc32c(seg):
                raise CaseFail("target sent a wrong data digest")
        p = tm.PDU(h, ahs, seg[:dsl])
        self._track(p)
        return p


def digest_session(port, immediate, initial_r2t):
    c = DigestConn(port)
    over = {"HeaderDigest": "None", "DataDigest": "CRC32C",
            "ImmediateData": "Yes" if immediate else "No",
            "InitialR2T": "Yes" if initial_r2t else "No"}
    keys = [("InitiatorName", hl.initiator_name()), ("TargetName", tm.IQN),
            ("SessionType", "Normal")]
    keys += [(k, over.get(k, v)) for k, v in tm.OP_KEYS]
    cls, det, got = c.login(None, keys=keys)
    if cls != 0:
        raise CaseFail("login failed 0x%02x%02x" % (cls, det))
    for k, v in over.items():
        if got.get(k) != v:
            raise CaseFail("negotiated %s=%s, wanted %s" % (k, got.get(k), v))
    if c.target_mrdsl < CHUNK:
        raise CaseFail("target MaxRecvDataSegmentLength %d" % c.target_mrdsl)
    c.dd = True
    return c


def tur_lun(c, lun):
    for _ in range(3):
        st, _, p, _, _ = c.scsi(b"\x00" * 6, lun=lun)
        if st == 0:
            return
    raise CaseFail("TEST UNIT READY on LUN %d status 0x%02x" % (lun, st))


def rw10(op, lba, blocks):
    return struct.pack(">BBIBHB", op, 0, lba, 0, blocks, 0)


def read_lun(c, lun, lba):
    st, data, p, _, _ = c.scsi(rw10(0x28, lba, BLOCKS), read_len=BLOCKS * BLOCK, lun=lun)
    if st != 0:
        raise CaseFail("READ(10) status 0x%02x" % st)
    return data


def pattern(seed):
    return bytes(((i * 131 + seed * 17 + (i >> 9)) & 0xFF) for i in range(BLOCKS * BLOCK))


def data_out_pdu(c, itt, ttt, lun, datasn, offset, data, final):
    rest = struct.pack(">IIIIII", ttt, 0, c.expstatsn, 0, datasn, offset)
    return bhs(OP_DATA_OUT, 0x80 if final else 0, dsl=len(data), lun=lun_field(lun), itt=itt,
               rest=rest)


def outcome(c, itt, timeout):
    """Collects what comes for the bad command: (rejects, SCSI Response or None)."""
    rejects = []
    try:
        while True:
            p = c.wait(lambda q: q.itt == itt or q.opcode == OP_REJECT, timeout,
                       "response to ITT 0x%x" % itt)
            if p.opcode == OP_REJECT:
                rejects.append(p.bhs[2])
            elif p.opcode == OP_SCSI_RSP:
                return rejects, p
            elif p.opcode == OP_DATA_IN:
                raise CaseFail("Data-In for a write")
            # an R2T after the bad PDU would be a recovery R2T: not at ERL 0
            elif p.opcode == tm.OP_R2T:
                raise CaseFail("unexpected R2T %r" % p)
    except (Timeout, Closed):
        return rejects, None


def run_bad_write(d, lun, lba, mode):
    """mode: 'solicited', 'immediate', 'immediate+solicited', 'unsolicited'."""
    good = hl.session(d.port)
    tur_lun(good, lun)
    old = pattern(lba)
    st, _, p, _, _ = good.scsi(rw10(0x2A, lba, BLOCKS), write_data=old, lun=lun)
    if st != 0:
        raise CaseFail("writing the old pattern: status 0x%02x" % st)
    new = pattern(lba + 1)
    c = digest_session(d.port, immediate=mode.startswith("immediate"),
                       initial_r2t=mode != "unsolicited")
    tur_lun(c, lun)
    edtl = len(new)
    if mode == "immediate":
        imm = new
    elif mode == "immediate+solicited":
        imm = new[:CHUNK]
    else:
        imm = b""
    h = c.cmd_bhs(rw10(0x2A, lba, BLOCKS), edtl, write=True, dsl=len(imm), lun=lun,
                  final=mode != "unsolicited")
    itt = struct.unpack_from(">I", h, 16)[0]
    c.corrupt_next = mode == "immediate"
    c.send_pdu(h, data=imm)
    c.cmdsn = (c.cmdsn + 1) & 0xFFFFFFFF
    if mode == "unsolicited":
        # FirstBurstLength 65536 >= 16 KiB: all of it goes unsolicited, the last one bad
        c.send_pdu(data_out_pdu(c, itt, tm.RSVD, lun, 0, 0, new[:CHUNK], False),
                   data=new[:CHUNK])
        c.corrupt_next = True
        c.send_pdu(data_out_pdu(c, itt, tm.RSVD, lun, 1, CHUNK, new[CHUNK:], True),
                   data=new[CHUNK:])
    elif mode != "immediate":
        r2t = c.wait(lambda q: q.opcode == tm.OP_R2T and q.itt == itt, what="R2T")
        ttt, off, length = r2t.u32(20), r2t.u32(40), r2t.u32(44)
        if off != len(imm) or off + length != edtl:
            raise CaseFail("R2T off %d len %d" % (off, length))
        pos, sn = off, 0
        while pos < edtl:
            chunk = new[pos:pos + CHUNK]
            final = pos + len(chunk) >= edtl
            # the bad one: the last (solicited), so good data came before it
            c.corrupt_next = final
            c.send_pdu(data_out_pdu(c, itt, ttt, lun, sn, pos, chunk, final), data=chunk)
            pos += len(chunk)
            sn += 1
    rejects, rsp = outcome(c, itt, 3.0)
    c.close()
    # First what matters most: the second session must see the old blocks (file
    # LUN: nothing written either), whatever the bad session was told.
    got = read_lun(good, lun, lba)
    good.close()
    if got != old:
        firstbad = next(i for i in range(len(old)) if got[i] != old[i])
        raise CaseFail("LUN %d LBA %d changed from byte %d on (%s)" %
                       (lun, lba, firstbad, "new data" if got[firstbad] == new[firstbad]
                        else "other data"))
    if REJECT_DATA_DIGEST not in rejects:
        raise CaseFail("no Reject (data digest error), got rejects %s" % rejects)
    detail = "Reject"
    if mode == "immediate":
        # the command PDU was discarded whole (RFC 7143 §7.8): it does not exist
        if rsp is not None:
            raise CaseFail("a response to a discarded command: %r" % rsp)
        detail += ", command discarded"
    else:
        if rsp is None:
            raise CaseFail("no SCSI Response once all data was in (RFC 7143 §7.8)")
        sense = rsp.data[2:]
        if rsp.bhs[3] != 0x02 or len(sense) < 14 or (sense[2] & 0xF) != 0x0B or \
                sense[12] != 0x47 or sense[13] != 0x05:
            raise CaseFail("response status 0x%02x sense %s, expected CHECK CONDITION "
                           "0B/47/05" % (rsp.bhs[3], sense[:18].hex()))
        detail += ", CHECK CONDITION 0B/47/05"
    return detail + ", blocks unchanged"


def case(lun, lba, mode):
    return lambda d: run_bad_write(d, lun, lba, mode)


def case_good_write_with_digests(d):
    """The digest client is right: a good write with digests lands (both LUNs)."""
    for lun, lba in ((RAM_LUN, 4000), (FILE_LUN, 4000)):
        c = digest_session(d.port, immediate=True, initial_r2t=True)
        tur_lun(c, lun)
        data = pattern(lba + 7)
        st, _, _, _, _ = c.scsi(rw10(0x2A, lba, BLOCKS), write_data=data, lun=lun)
        if st != 0:
            raise CaseFail("good write with digests: status 0x%02x" % st)
        if read_lun(c, lun, lba) != data:
            raise CaseFail("good write with digests read back other data")
        c.close()
    return "written and read back"


def setup():
    d = hl.Iserd()
    d.luns = ["ram:16M", "file:%s,size=16M" % os.path.join(d.tmp, "lun1.img")]
    return d


CASES = [("good write with data digests (control)", case_good_write_with_digests)]
for _lun, _name in ((RAM_LUN, "RAM"), (FILE_LUN, "file")):
    for _i, _mode in enumerate(("solicited", "immediate", "immediate+solicited",
                                "unsolicited")):
        CASES.append(("%s LUN: bad data digest on %s data" % (_name, _mode),
                      case(_lun, 100 + 100 * _i, _mode)))

if __name__ == "__main__":
    sys.exit(hl.run("test_digest", CASES, setup=setup))
