#!/usr/bin/env python3
"""Two gateways, one multipath logical unit with implicit ALUA (python3 stdlib only).

Two iserd processes on loopback export the same target name and LUN with the
same identity (serial, 32-digit NAA) from different target port groups:
gateway A is group 1 (tpgt 1) and starts active/optimized, gateway B is group
2 (tpgt 2) and starts standby; each lists the other as its peer. Through a raw
iSCSI session to each:

1. INQUIRY says TPGS 01b on both; VPD 80h and the NAA designator of VPD 83h are
   the same on both, the Target Port Group and Relative Target Port designators
   name each gateway's own; libiscsi's iscsi-inq (a real initiator tool) sees
   TPGS 1 on the active gateway (libiscsi's login gives up on a standby LU:
   its connect sends TEST UNIT READY and takes NOT READY as a failure).
2. REPORT TARGET PORT GROUPS, both formats, on both: each reports its own
   state and its peer's derived one (active/non-optimized beside an optimized
   owner, active/optimized beside a standby one).
3. B (standby) processes INQUIRY, REPORT LUNS, RTPG, MODE SENSE and answers TEST
   UNIT READY, READ and WRITE with NOT READY, 04h/0Bh.
4. A failover through the control sockets, as a store following a cluster lock
   would drive it: A goes transitioning (its session sees 2Ah/06h, then
   04h/0Ah), then standby; B goes active/optimized (its session sees 2Ah/06h,
   then READ and WRITE work) and RTPG on each shows the new states.
5. lun.show reports the state, a bad state is refused, and config.save writes
   the identity and the state, which a restart of B from the saved file keeps.

Exits 1 on a failure, 77 when iserd is missing.
"""

import json
import os
import shutil
import socket
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "hostile"))

import hostile_lib as hl  # noqa: E402

TGT = "iqn.2026-11.org.iserd:alua-shared"
SERIAL = "ALUA-SHARED-0001"
NAA = "6001405abcdef0123456789abcdef012"
AO, AN, SB, UN, TR = 0x0, 0x1, 0x2, 0x3, 0xF

CONF = """
portals = ( { url = "tcp://127.0.0.1:@PORT@"; tpgt = %(tpgt)d; } );
targets = ( {
    name = "%(tgt)s";
    tpgt = %(tpgt)d;
    alua_group = %(group)d;
    alua_peers = [ "%(peer)d/%(peer)d" ];
    alua_peer_state = "standby";
    luns = ( { number = 0; backing = "ram:8M"; serial = "%(serial)s"; naa = "%(naa)s";
               alua_state = "%(state)s"; } );
} );
"""


def conf(group, peer, state):
    return CONF % {"tpgt": group, "tgt": TGT, "group": group, "peer": peer,
                   "serial": SERIAL, "naa": NAA, "state": state}


def rpc(d, method, params=None):
    req = {"jsonrpc": "2.0", "method": method, "id": 1}
    if params is not None:
        req["params"] = params
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(os.path.join(d.tmp, "control.sock"))
    s.sendall((json.dumps(req) + "\n").encode())
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    s.close()
    return json.loads(buf.decode())


def rpc_ok(d, method, params=None):
    r = rpc(d, method, params)
    if "result" not in r:
        raise hl.CaseFail("%s %r: %r" % (method, params, r))
    return r["result"]


def connect(d):
    """A logged-in session, without the TEST UNIT READY of hl.session (a standby
    LU answers it NOT READY)."""
    c = hl.Conn(d.port, 5.0)
    cls, det, _ = c.login(hl.initiator_name(), target=TGT)
    if cls != 0:
        c.close()
        raise hl.CaseFail("login failed with status 0x%02x%02x" % (cls, det))
    return c


def sense(p):
    """(key, asc, ascq) of a CHECK CONDITION's sense data."""
    if len(p.data) < 2 + 14:
        raise hl.CaseFail("no sense data: %s" % p.data.hex())
    s = p.data[2:]
    return s[2] & 0x0F, s[12], s[13]


def expect_sense(c, cdb, want, what, read_len=0, write_data=None):
    st, _, p, _, _ = c.scsi(cdb, read_len=read_len, write_data=write_data)
    if st != 0x02 or sense(p) != want:
        raise hl.CaseFail("%s: status 0x%02x sense %s, expected CHECK CONDITION %s" %
                          (what, st, p.data[:20].hex(), want))


def good(c, cdb, what, read_len=0, write_data=None):
    st, data, p, _, _ = c.scsi(cdb, read_len=read_len, write_data=write_data)
    if st != 0:
        raise hl.CaseFail("%s: status 0x%02x sense %s" % (what, st, p.data[:20].hex()))
    return data


def clear_power_on_ua(c):
    # INQUIRY neither reports nor clears a unit attention; REQUEST SENSE does
    for _ in range(4):
        s = good(c, bytes([0x03, 0, 0, 0, 18, 0]), "REQUEST SENSE", read_len=18)
        if s[2] & 0x0F != 6:
            return
    raise hl.CaseFail("unit attentions keep coming")


TUR = bytes(6)
READ10 = struct.pack(">BBIBHB", 0x28, 0, 0, 0, 1, 0)
WRITE10 = struct.pack(">BBIBHB", 0x2A, 0, 0, 0, 1, 0)
INQ = bytes([0x12, 0, 0, 0, 96, 0])
LUNS = bytes([0xA0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0])
MODE_SENSE = bytes([0x1A, 0, 0x3F, 0, 0xFF, 0])


def vpd(c, page):
    return good(c, bytes([0x12, 1, page, 1, 0, 0]), "VPD %02xh" % page, read_len=256)


def designators(data):
    """{type: (byte0, byte1, designator bytes)} of a VPD 83h page."""
    out = {}
    end = 4 + struct.unpack(">H", data[2:4])[0]
    off = 4
    while off + 4 <= end:
        ln = data[off + 3]
        out.setdefault(data[off + 1] & 0x0F, (data[off], data[off + 1],
                                               data[off + 4:off + 4 + ln]))
        off += 4 + ln
    return out


def rtpg(c, ext=False, alloc=1024):
    cdb = bytes([0xA3, (0x20 if ext else 0) | 0x0A, 0, 0, 0, 0]) + \
        struct.pack(">I", alloc) + bytes(2)
    data = good(c, cdb, "REPORT TARGET PORT GROUPS", read_len=alloc)
    rdl = struct.unpack(">I", data[:4])[0]
    if rdl + 4 != len(data):
        raise hl.CaseFail("RTPG RETURN DATA LENGTH %d for %d bytes" % (rdl, len(data)))
    off = 4
    if ext:
        if data[4] != 0x10 or data[5] == 0:
            raise hl.CaseFail("RTPG extended header %s" % data[4:8].hex())
        off = 8
    groups = {}
    while off < len(data):
        d = data[off:]
        n = d[7]
        ports = [struct.unpack(">H", d[8 + 4 * i + 2:8 + 4 * i + 4])[0] for i in range(n)]
        if d[1] != 0x8F:
            raise hl.CaseFail("RTPG supported states 0x%02x" % d[1])
        groups[struct.unpack(">H", d[2:4])[0]] = (d[0] & 0x0F, ports)
        off += 8 + 4 * n
    return groups


def expect_groups(c, want, who):
    for ext in (False, True):
        got = rtpg(c, ext)
        if got != want:
            raise hl.CaseFail("%s RTPG (%s): %r, expected %r" %
                              (who, "extended" if ext else "length only", got, want))


def check_identity(a, b, ca, cb):
    for c, who in ((ca, "A"), (cb, "B")):
        inq = good(c, INQ, "INQUIRY", read_len=96)
        if inq[5] & 0x30 != 0x10:
            raise hl.CaseFail("%s: TPGS %d" % (who, (inq[5] >> 4) & 3))
    if vpd(ca, 0x80) != vpd(cb, 0x80) or vpd(ca, 0x80)[4:].decode() != SERIAL:
        raise hl.CaseFail("VPD 80h differs or is not the configured serial")
    da, db = designators(vpd(ca, 0x83)), designators(vpd(cb, 0x83))
    if da[3] != db[3] or da[3][2].hex() != NAA:
        raise hl.CaseFail("NAA designators %r / %r" % (da[3], db[3]))
    for d, grp, who in ((da, 1, "A"), (db, 2, "B")):
        if 5 not in d or struct.unpack(">H", d[5][2][2:4])[0] != grp or d[5][1] != 0x95:
            raise hl.CaseFail("%s: target port group designator %r" % (who, d.get(5)))
        if struct.unpack(">H", d[4][2][2:4])[0] != grp:
            raise hl.CaseFail("%s: relative target port %r" % (who, d[4]))
    # a real initiator tool reads the same
    if shutil.which("iscsi-inq"):
        r = subprocess.run(["iscsi-inq", "iscsi://127.0.0.1:%d/%s/0" % (a.port, TGT)],
                           capture_output=True, text=True, timeout=30)
        if "TPGS:1" not in r.stdout:
            raise hl.CaseFail("iscsi-inq on A: %s %s" % (r.stdout, r.stderr))


def run_all(a, b):
    ca, cb = connect(a), connect(b)
    try:
        clear_power_on_ua(ca)
        clear_power_on_ua(cb)
        check_identity(a, b, ca, cb)
        print("PASS: same identity through both gateways, TPGS 01b, own group designators",
              flush=True)

        expect_groups(ca, {1: (AO, [1]), 2: (SB, [2])}, "A")
        expect_groups(cb, {2: (SB, [2]), 1: (AO, [1])}, "B")
        # a short allocation length: the first bytes, RETURN DATA LENGTH of the whole
        cdb = bytes([0xA3, 0x0A, 0, 0, 0, 0]) + struct.pack(">I", 6) + bytes(2)
        short = good(ca, cdb, "RTPG of 6 bytes", read_len=6)
        if len(short) != 6 or struct.unpack(">I", short[:4])[0] != 24:
            raise hl.CaseFail("short RTPG %s" % short.hex())
        print("PASS: REPORT TARGET PORT GROUPS on both, both formats", flush=True)

        for cdb, what in ((INQ, "INQUIRY"), (LUNS, "REPORT LUNS"), (MODE_SENSE, "MODE SENSE")):
            good(cb, cdb, "B standby: " + what, read_len=256)
        expect_sense(cb, TUR, (2, 0x04, 0x0B), "B standby: TUR")
        expect_sense(cb, READ10, (2, 0x04, 0x0B), "B standby: READ(10)", read_len=512)
        expect_sense(cb, WRITE10, (2, 0x04, 0x0B), "B standby: WRITE(10)",
                     write_data=bytes(512))
        good(ca, WRITE10, "A: WRITE(10)", write_data=b"\xA5" * 512)
        print("PASS: standby B refuses media access with 04h/0Bh, A serves it", flush=True)

        # failover: A hands over (transitioning, then standby), B takes it
        rpc_ok(a, "lun.set_alua_state", {"target": TGT, "lun": 0, "state": "transitioning"})
        expect_sense(ca, TUR, (6, 0x2A, 0x06), "A: unit attention of the change")
        expect_sense(ca, READ10, (2, 0x04, 0x0A), "A transitioning: READ(10)", read_len=512)
        good(ca, INQ, "A transitioning: INQUIRY", read_len=96)
        expect_groups(ca, {1: (TR, [1]), 2: (AO, [2])}, "A transitioning")
        rpc_ok(a, "lun.set_alua_state", {"target": TGT, "lun": 0, "state": "standby"})
        rpc_ok(b, "lun.set_alua_state", {"target": TGT, "lun": 0, "state": "active/optimized"})
        expect_sense(cb, TUR, (6, 0x2A, 0x06), "B: unit attention of the change")
        good(cb, TUR, "B active: TUR")
        good(cb, READ10, "B active: READ(10)", read_len=512)
        good(cb, WRITE10, "B active: WRITE(10)", write_data=b"\x5A" * 512)
        expect_sense(ca, TUR, (6, 0x2A, 0x06), "A: unit attention of the second change")
        expect_sense(ca, WRITE10, (2, 0x04, 0x0B), "A standby: WRITE(10)",
                     write_data=bytes(512))
        expect_groups(ca, {1: (SB, [1]), 2: (AO, [2])}, "A after failover")
        expect_groups(cb, {2: (AO, [2]), 1: (SB, [1])}, "B after failover")
        print("PASS: failover through the control sockets, unit attentions and senses",
              flush=True)

        show = rpc_ok(b, "lun.show", {"target": TGT, "lun": 0})
        if show.get("alua_state") != "active/optimized" or show.get("naa") != NAA:
            raise hl.CaseFail("lun.show on B: %r" % show)
        tshow = rpc_ok(a, "target.show", {"target": TGT})
        if tshow.get("alua_group") != 1 or tshow.get("alua_peers") != [{"group": 2, "port": 2}] \
                or tshow.get("alua_peer_state") != "standby":
            raise hl.CaseFail("target.show on A: %r" % tshow)
        bad = rpc(a, "lun.set_alua_state", {"target": TGT, "lun": 0, "state": "offline"})
        if "error" not in bad:
            raise hl.CaseFail("state 'offline' accepted: %r" % bad)
        bad = rpc(a, "lun.set_alua_state", {"target": TGT, "lun": 7, "state": "standby"})
        if "error" not in bad:
            raise hl.CaseFail("LUN 7 accepted: %r" % bad)
        # a target added through the control socket, with its groups
        t2 = TGT + "-added"
        rpc_ok(a, "target.add", {"target": t2, "alua_group": 5, "alua_peers": ["6", "7/9"],
                                 "luns": [{"lun": 0, "backing": "ram:1M",
                                           "alua_state": "standby"}]})
        show = rpc_ok(a, "target.show", {"target": t2})
        if show.get("alua_group") != 5 or show.get("alua_peers") != \
                [{"group": 6, "port": 6}, {"group": 7, "port": 9}] or \
                show["luns"][0].get("alua_state") != "standby":
            raise hl.CaseFail("target.show of the added target: %r" % show)
        for bad in ({"alua_peers": ["5"], "alua_group": 5}, {"alua_peers": ["6"]},
                    {"alua_peers": ["x"], "alua_group": 5}):
            p = dict(bad, target=t2 + "x", luns=[{"lun": 0, "backing": "ram:1M"}])
            if "error" not in rpc(a, "target.add", p):
                raise hl.CaseFail("target.add accepted %r" % bad)
        rpc_ok(a, "target.remove", {"target": t2})
        saved = os.path.join(b.tmp, "saved.conf")
        rpc_ok(b, "config.save", {"path": saved})
        with open(saved) as f:
            text = f.read()
        for want in ('alua_state = "active/optimized"', 'naa = "%s"' % NAA, "alua_group = 2",
                     'alua_peer_state = "standby"',
                     '"1/1"', 'serial = "%s"' % SERIAL):
            if want not in text:
                raise hl.CaseFail("saved config lacks %s:\n%s" % (want, text))
        print("PASS: lun.show, target.show, bad states refused, config.save keeps the state",
              flush=True)
    finally:
        ca.close()
        cb.close()


def main():
    a = hl.Iserd(conf=conf(1, 2, "active/optimized"))
    b = hl.Iserd(conf=conf(2, 1, "standby"))
    if not a.available():
        print("SKIP: iserd binary not found (ISERD)")
        return 77
    ok = True
    try:
        a.start()
        b.start()
        run_all(a, b)
    except (hl.CaseFail, hl.Timeout, hl.Closed, OSError, RuntimeError, ValueError) as e:
        print("FAIL: %s: %s" % (type(e).__name__, e), flush=True)
        ok = False
    for d, who in ((a, "A"), (b, "B")):
        err = d.stop()
        if err:
            print("FAIL: gateway %s: %s" % (who, err))
            ok = False
        if not ok and d.log:
            print("----- gateway %s log (last 60 lines) -----" % who)
            print("\n".join(d.read_log().splitlines()[-60:]))
    # B again, from the file it saved: the state it had is where it starts
    if ok:
        saved = os.path.join(b.tmp, "saved.conf")
        with open(saved) as f:
            text = f.read()
        b2 = hl.Iserd(conf=text.replace(str(b.port), "@PORT@"))
        try:
            b2.start()
            c = connect(b2)
            clear_power_on_ua(c)
            good(c, TUR, "restarted B: TUR (active/optimized)")
            c.close()
            print("PASS: B restarted from its saved configuration is active/optimized")
        except (hl.CaseFail, hl.Timeout, hl.Closed, OSError, RuntimeError) as e:
            print("FAIL: restart from the saved file: %s" % e)
            ok = False
        err = b2.stop()
        if err:
            print("FAIL: restarted B: %s" % err)
            ok = False
        b2.cleanup()
    a.cleanup()
    b.cleanup()
    print("alua: %s" % ("passed" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
