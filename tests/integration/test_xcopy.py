#!/usr/bin/env python3
"""EXTENDED COPY against a real iserd (python3 stdlib only).

Two targets: A with two RAM LUNs, B with one. Over one session to A, data is
written to A's LUN 0, then one EXTENDED COPY (LID1), sent to A's LUN 1, copies
it to A's LUN 1 and to B's LUN 0, naming the three LUNs by the NAA designators
of their VPD page 83h. The copies are read back and compared, and stats.get
(control socket) must show the copied bytes in the LUN's xcopy_bytes while no
LUN's write bytes and no session's byte counters grew by them: the data never
crossed the wire. Then RECEIVE COPY RESULTS (COPY STATUS) for the copy's list
identifier. iserd must stop cleanly.

Exits 1 on a failure, 77 when iserd is missing.
"""

import json
import os
import socket
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "hostile"))

import hostile_lib as hl  # noqa: E402

TA = "iqn.2026-11.org.iserd:xcopy-a"
TB = "iqn.2026-11.org.iserd:xcopy-b"
BLOCKS = 256                    # 128 KiB


def rpc(sock, method, params=None):
    req = {"jsonrpc": "2.0", "method": method, "id": 1}
    if params is not None:
        req["params"] = params
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(sock)
    s.sendall((json.dumps(req) + "\n").encode())
    buf = b""
    while not buf.endswith(b"\n"):
        d = s.recv(65536)
        if not d:
            break
        buf += d
    s.close()
    return json.loads(buf.decode())["result"]


def naa(c, lun):
    """The 16-byte NAA designator of VPD 83h (the first designator iserd reports)."""
    st, data, _, _, _ = c.scsi(bytes([0x12, 1, 0x83, 0, 255, 0]), read_len=255, lun=lun)
    if st != 0 or data[4:8] != bytes([0x01, 0x03, 0x00, 16]):
        raise hl.CaseFail("VPD 83h of LUN %d: status %d, %r" % (lun, st, data[:12]))
    return data[8:24]


def e4(designator):
    """Identification CSCD descriptor: binary NAA designator, block device of 512 bytes."""
    return (bytes([0xE4, 0, 0, 0, 0x01, 0x03, 0, 16]) + designator + bytes(4) +
            bytes([0]) + (512).to_bytes(3, "big"))


def b2b(src, dst, nb, slba, dlba):
    return struct.pack(">BBHHHHHQQ", 0x02, 0, 24, src, dst, 0, nb, slba, dlba)


def sense_of(p):
    if len(p.data) >= 2:
        n = struct.unpack(">H", p.data[:2])[0]
        return p.data[2:2 + n]
    return b""


def lun_io(stats, target, lun):
    for t in stats["targets"]:
        if t["name"] == target:
            for l in t["luns"]:
                if l["lun"] == lun:
                    return l["io"]
    raise hl.CaseFail("no LUN %d of %s in stats.get" % (lun, target))


def case_copy(d):
    sock = os.path.join(d.tmp, "control.sock")
    a = hl.session(d.port, target=TA)
    b = hl.session(d.port, target=TB)
    a.scsi(bytes(6), lun=1)                 # LUN 1's power-on unit attention
    data = bytes((i * 7 + i // 512) & 0xFF for i in range(BLOCKS * 512))
    a.write10(0, data)
    n_a0, n_a1, n_b0 = naa(a, 0), naa(a, 1), naa(b, 0)
    before = rpc(sock, "stats.get")

    tgts = e4(n_a0) + e4(n_a1) + e4(n_b0)
    segs = b2b(0, 1, BLOCKS, 0, 1000) + b2b(0, 2, BLOCKS, 0, 2000)
    plist = struct.pack(">BBHIII", 0x21, 0x00, len(tgts), 0, len(segs), 0) + tgts + segs
    cdb = bytes([0x83]) + bytes(9) + struct.pack(">I", len(plist)) + bytes(2)
    st, _, p, _, _ = a.scsi(cdb, write_data=plist, lun=1)
    if st != 0:
        raise hl.CaseFail("EXTENDED COPY: status 0x%02x, sense %s" % (st, sense_of(p).hex()))

    rd = struct.pack(">BBIBHB", 0x28, 0, 1000, 0, BLOCKS, 0)
    st, got, _, _, _ = a.scsi(rd, read_len=BLOCKS * 512, lun=1)
    if st != 0 or got != data:
        raise hl.CaseFail("A/1 does not hold the copy (status %d)" % st)
    rd = struct.pack(">BBIBHB", 0x28, 0, 2000, 0, BLOCKS, 0)
    st, got, _, _, _ = b.scsi(rd, read_len=BLOCKS * 512, lun=0)
    if st != 0 or got != data:
        raise hl.CaseFail("B/0 does not hold the copy (status %d)" % st)

    after = rpc(sock, "stats.get")
    moved = 2 * BLOCKS * 512
    x = lun_io(after, TA, 1)["xcopy_bytes"] - lun_io(before, TA, 1)["xcopy_bytes"]
    if x != moved:
        raise hl.CaseFail("A/1 xcopy_bytes grew by %d, expected %d" % (x, moved))
    for tgt, lun in ((TA, 1), (TB, 0)):
        w = lun_io(after, tgt, lun)["write"]["bytes"] - lun_io(before, tgt, lun)["write"]["bytes"]
        if w != 0:
            raise hl.CaseFail("%s/%d write bytes grew by %d: data crossed the wire" %
                              (tgt, lun, w))
    for t in after["targets"]:
        if t["name"] == TA and t["io"]["xcopy_bytes"] < moved:
            raise hl.CaseFail("target A xcopy_bytes %d" % t["io"]["xcopy_bytes"])

    # RECEIVE COPY RESULTS, COPY STATUS of list id 0x21 (LIST ID USAGE 00b: held)
    cdb = bytes([0x84, 0x00, 0x21]) + bytes(7) + struct.pack(">I", 64) + bytes(2)
    st, cs, p, _, _ = a.scsi(cdb, read_len=64, lun=1)
    if st != 0 or len(cs) < 12:
        raise hl.CaseFail("COPY STATUS: status %d, sense %s" % (st, sense_of(p).hex()))
    if cs[4] != 0x01 or struct.unpack(">H", cs[5:7])[0] != 2 or cs[7] != 1 or \
            struct.unpack(">I", cs[8:12])[0] != moved // 1024:
        raise hl.CaseFail("COPY STATUS %s" % cs[:12].hex())
    a.logout()
    b.logout()
    return "%d bytes copied inside iserd, none over the wire" % moved


def setup():
    return hl.Iserd(iqn=TA, luns=("ram:8M", "ram:8M"),
                    args=["--target", TB, "--lun", "ram:8M"])


if __name__ == "__main__":
    sys.exit(hl.run("xcopy", [("EXTENDED COPY between LUNs and targets", case_copy)],
                    setup=setup))
