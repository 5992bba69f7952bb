#!/usr/bin/env python3
"""Hostile and broken iSCSI peers against iserd (python3 stdlib only).

Starts iserd (env ISERD) on a free 127.0.0.1 port with a RAM LUN, opens a good
session that stays logged in for the whole run, then, each on its own
connection, sends malformed or out-of-protocol PDUs and checks that the target
answers as RFC 7143 prescribes (a Reject PDU carrying the offending BHS, a login
status, a SCSI status, a silent discard, or a dropped connection), that the good
session still answers TEST UNIT READY and READ(10), that no partially received
write reaches the medium, and that iserd is still running. At the end iserd gets
SIGTERM and must exit 0 within 10 s without a sanitizer report.

Prints PASS/FAIL per case; exits 1 on any failure, 77 when iserd is not available.
For development: --port P --iqn IQN runs the cases against a target already
listening on 127.0.0.1:P instead of starting iserd.
"""

import argparse
import os
import random
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback

HOST = "127.0.0.1"
IQN = "iqn.2026-11.org.iserd:malformed"
INI_BASE = "iqn.2026-11.org.iserd:malformed-initiator"
BLOCK = 512
LUN = 0  # the LUN the cases use (--lun, for runs against another target)
LUN_BYTES = 16 * 1024 * 1024

OP_NOP_OUT, OP_SCSI_CMD, OP_TMF, OP_LOGIN, OP_TEXT, OP_DATA_OUT, OP_LOGOUT = 0, 1, 2, 3, 4, 5, 6
OP_NOP_IN, OP_SCSI_RSP, OP_LOGIN_RSP, OP_DATA_IN, OP_LOGOUT_RSP = 0x20, 0x21, 0x23, 0x25, 0x26
OP_R2T, OP_ASYNC, OP_REJECT = 0x31, 0x32, 0x3F
RSVD = 0xFFFFFFFF

REJECT_REASONS = {
    0x02: "Data (payload) digest error", 0x03: "SNACK Reject", 0x04: "Protocol Error",
    0x05: "Command not supported", 0x06: "Immediate command reject - too many immediate commands",
    0x07: "Task in progress", 0x08: "Invalid data ack", 0x09: "Invalid PDU field",
    0x0A: "Long op reject - out of resources", 0x0B: "Deprecated", 0x0C: "Waiting for Logout",
}

OP_NAMES = {OP_NOP_IN: "NOP-In", OP_SCSI_RSP: "SCSI Response", 0x22: "TMF Response",
            OP_LOGIN_RSP: "Login Response", 0x24: "Text Response", OP_DATA_IN: "Data-In",
            OP_LOGOUT_RSP: "Logout Response", OP_R2T: "R2T", OP_ASYNC: "Async Message",
            OP_REJECT: "Reject"}


class Closed(Exception):
    """The target closed or reset the connection."""


class Timeout(Exception):
    """No PDU within the time allowed."""


class CaseFail(Exception):
    pass


def pad4(n):
    return (n + 3) & ~3


class PDU:
    def __init__(self, bhs, ahs=b"", data=b""):
        self.bhs, self.ahs, self.data = bhs, ahs, data

    @property
    def opcode(self):
        return self.bhs[0] & 0x3F

    @property
    def flags(self):
        return self.bhs[1]

    def u32(self, off):
        return struct.unpack_from(">I", self.bhs, off)[0]

    @property
    def itt(self):
        return self.u32(16)

    def __repr__(self):
        name = OP_NAMES.get(self.opcode, "opcode 0x%02x" % self.opcode)
        extra = ""
        if self.opcode == OP_REJECT:
            extra = " reason 0x%02x (%s)" % (self.bhs[2], REJECT_REASONS.get(self.bhs[2], "?"))
        elif self.opcode == OP_SCSI_RSP:
            extra = " response 0x%02x status 0x%02x" % (self.bhs[2], self.bhs[3])
        elif self.opcode == OP_LOGIN_RSP:
            extra = " status 0x%02x%02x" % (self.bhs[36], self.bhs[37])
        return "<%s flags 0x%02x itt 0x%08x dsl %d%s>" % (name, self.flags, self.itt,
                                                        len(self.data), extra)


def bhs(op, flags=0, b2=0, b3=0, ahs_words=0, dsl=0, lun=0, itt=0, rest=b""):
    """Builds a 48-byte BHS; rest = bytes 20..47."""
    h = struct.pack(">BBBBB", op, flags, b2, b3, ahs_words) + dsl.to_bytes(3, "big")
    h += struct.pack(">QI", lun, itt) + rest
    assert len(h) <= 48
    return h + bytes(48 - len(h))


def lun_field(lun):
    return (lun & 0xFF) << 48 if lun < 256 else ((0x40 | (lun >> 8)) << 56) | ((lun & 0xFF) << 48)


def kv(d):
    return b"".join(("%s=%s" % (k, v)).encode() + b"\0" for k, v in d)


def parse_kv(data):
    out = {}
    for item in data.split(b"\0"):
        if not item:
            continue
        k, _, v = item.decode(errors="replace").partition("=")
        out[k] = v
    return out


OP_KEYS = [
    ("HeaderDigest", "None"), ("DataDigest", "None"), ("MaxRecvDataSegmentLength", "262144"),
    ("ImmediateData", "Yes"), ("InitialR2T", "Yes"), ("MaxBurstLength", "262144"),
    ("FirstBurstLength", "65536"), ("MaxConnections", "1"), ("DefaultTime2Wait", "0"),
    ("DefaultTime2Retain", "0"), ("MaxOutstandingR2T", "1"), ("DataPDUInOrder", "Yes"),
    ("DataSequenceInOrder", "Yes"), ("ErrorRecoveryLevel", "0"), ("IFMarker", "No"),
    ("OFMarker", "No"),
]


class Conn:
    """One TCP connection speaking raw iSCSI PDUs (no digests)."""

    _isid_counter = random.randrange(1, 1 << 16)

    def __init__(self, port, timeout=5.0):
        self.port = port
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.cmdsn = 1
        self.expstatsn = 0
        self.maxcmdsn = 1
        self.itt = random.randrange(0x100, 0x10000)
        self.ttt_seen = []
        Conn._isid_counter = (Conn._isid_counter + 1) & 0xFFFF
        self.isid = bytes([0x80, 0x12, 0x34, 0x56]) + Conn._isid_counter.to_bytes(2, "big")
        self.keys = {}
        self.tsih = 0
        self.target_mrdsl = 8192
        self.unsolicited = []  # PDUs not matched by a wait

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def next_itt(self):
        self.itt = (self.itt + 1) & 0x7FFFFFFF
        return self.itt

    def send(self, raw):
        try:
            self.sock.sendall(raw)
        except (BrokenPipeError, ConnectionResetError) as e:
            raise Closed("send: %s" % e)

    def send_pdu(self, h, ahs=b"", data=b""):
        raw = h + ahs + data + bytes(pad4(len(data)) - len(data))
        self.send(raw)

    def _recv_exact(self, n, deadline):
        buf = b""
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                if buf:
                    raise Timeout("partial PDU: %d of %d bytes" % (len(buf), n))
                raise Timeout("no PDU")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(n - len(buf))
            except socket.timeout:
                continue
            except (ConnectionResetError, ConnectionAbortedError) as e:
                raise Closed("recv: %s" % e)
            if not chunk:
                raise Closed("connection closed by target")
            buf += chunk
        return buf

    def recv_pdu(self, timeout=None):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        h = self._recv_exact(48, deadline)
        ahs_len = h[4] * 4
        dsl = int.from_bytes(h[5:8], "big")
        ahs = self._recv_exact(ahs_len, deadline) if ahs_len else b""
        data = self._recv_exact(pad4(dsl), deadline)[:dsl] if dsl else b""
        p = PDU(h, ahs, data)
        self._track(p)
        return p

    def _track(self, p):
        op = p.opcode
        has_statsn = op in (OP_SCSI_RSP, 0x22, OP_LOGIN_RSP, 0x24, OP_LOGOUT_RSP, OP_REJECT,
                            OP_ASYNC) or (op == OP_DATA_IN and p.flags & 0x01) or \
            (op == OP_NOP_IN and p.itt != RSVD)
        if has_statsn:
            self.expstatsn = (p.u32(24) + 1) & 0xFFFFFFFF
        if op in (OP_SCSI_RSP, 0x22, 0x24, OP_DATA_IN, OP_LOGOUT_RSP, OP_R2T, OP_ASYNC,
                  OP_REJECT, OP_NOP_IN, OP_LOGIN_RSP):
            exp, mx = p.u32(28), p.u32(32)
            if op == OP_LOGIN_RSP or ((mx - exp + 1) & 0xFFFFFFFF) < 0x80000000:
                self.maxcmdsn = mx
                if op == OP_LOGIN_RSP:
                    self.cmdsn = exp

    def wait(self, pred, timeout=None, what="response"):
        """Returns the first PDU for which pred is true; answers target NOP-In pings."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Timeout("no %s" % what)
            p = self.recv_pdu(left)
            if p.opcode == OP_NOP_IN and p.itt == RSVD:
                if p.u32(20) != RSVD:  # the target pings us: answer, keep waiting
                    self.nop_reply(p.u32(20))
                continue
            if p.opcode == OP_ASYNC:
                self.unsolicited.append(p)
                continue
            if pred(p):
                return p
            self.unsolicited.append(p)

    # --- login ------------------------------------------------------------------
    def login_pdu(self, data, csg=1, nsg=3, transit=True, vmax=0, vmin=0, flags=None,
                  itt=None, dsl=None):
        fl = flags if flags is not None else ((0x80 if transit else 0) | (csg << 2) | nsg)
        rest = struct.pack(">HHII", 0, 0, self.cmdsn, self.expstatsn)  # CID, rsvd, CmdSN, ExpStatSN
        h = bytearray(bhs(0x40 | OP_LOGIN, fl, vmax, vmin, 0,
                          len(data) if dsl is None else dsl, 0,
                          self.itt if itt is None else itt, rest))
        h[8:14] = self.isid
        h[14:16] = self.tsih.to_bytes(2, "big")
        return bytes(h)

    def login_raw(self, data, **kw):
        self.send_pdu(self.login_pdu(data, **kw), data=data)
        return self.wait(lambda p: p.opcode == OP_LOGIN_RSP, what="Login Response")

    def login(self, initiator, target=None, extra=(), keys=None, session_type="Normal"):
        """Full login through the operational stage into full feature phase."""
        target = IQN if target is None else target
        if keys is None:
            keys = [("InitiatorName", initiator)]
            if session_type == "Normal":
                keys.append(("TargetName", target))
            keys.append(("SessionType", session_type))
            keys += OP_KEYS
            keys += list(extra)
        data = kv(keys)
        for _ in range(8):
            r = self.login_raw(data)
            cls, det = r.bhs[36], r.bhs[37]
            if cls != 0:
                return cls, det, parse_kv(r.data)
            self.keys.update(parse_kv(r.data))
            self.tsih = int.from_bytes(r.bhs[14:16], "big")
            if r.flags & 0x80 and (r.flags & 3) == 3:
                if "MaxRecvDataSegmentLength" in self.keys:
                    self.target_mrdsl = int(self.keys["MaxRecvDataSegmentLength"])
                return 0, 0, self.keys
            data = b""  # target wants another round: send no new keys
        raise CaseFail("login did not reach full feature phase in 8 rounds")

    # --- full feature phase ---------------------------------------------------
    def nop_reply(self, ttt):
        rest = struct.pack(">IIII", ttt, self.cmdsn, self.expstatsn, 0)
        self.send_pdu(bhs(0x40 | OP_NOP_OUT, 0x80, lun=0, itt=RSVD, rest=rest))

    def nop_ping(self, data=b"", timeout=None):
        itt = self.next_itt()
        rest = struct.pack(">III", RSVD, self.cmdsn, self.expstatsn)
        self.send_pdu(bhs(0x40 | OP_NOP_OUT, 0x80, dsl=len(data), itt=itt, rest=rest), data=data)
        p = self.wait(lambda q: q.opcode in (OP_NOP_IN, OP_REJECT) and
                      (q.itt == itt or q.opcode == OP_REJECT), timeout, "NOP-In")
        if p.opcode != OP_NOP_IN:
            raise CaseFail("NOP-Out ping answered by %r" % p)
        if p.data != data:
            raise CaseFail("NOP-In echoed %d bytes, expected %d" % (len(p.data), len(data)))
        return p

    def cmd_bhs(self, cdb, edtl, read=False, write=False, dsl=0, itt=None, cmdsn=None,
                immediate=False, final=True, lun=None, ahs_words=0):
        lun = LUN if lun is None else lun
        fl = (0x80 if final else 0) | (0x40 if read else 0) | (0x20 if write else 0) | 1
        cdb16 = cdb + bytes(16 - len(cdb))
        rest = struct.pack(">III", edtl, self.cmdsn if cmdsn is None else cmdsn,
                           self.expstatsn) + cdb16
        return bhs((0x40 if immediate else 0) | OP_SCSI_CMD, fl, 0, 0, ahs_words, dsl,
                   lun_field(lun), self.next_itt() if itt is None else itt, rest)

    def scsi(self, cdb, read_len=0, write_data=None, edtl=None, lun=None, timeout=None):
        lun = LUN if lun is None else lun
        """Runs one command; returns (status, data_in, rsp_pdu, residual_flags, residual)."""
        write = write_data is not None
        edtl = (len(write_data) if write else read_len) if edtl is None else edtl
        imm = b""
        if write and self.keys.get("ImmediateData", "Yes") == "Yes":
            fb = int(self.keys.get("FirstBurstLength", "65536"))
            imm = write_data[:min(fb, self.target_mrdsl, len(write_data))]
        h = self.cmd_bhs(cdb, edtl, read=read_len > 0 or (not write and edtl > 0),
                         write=write, dsl=len(imm), lun=lun)
        itt = struct.unpack_from(">I", h, 16)[0]
        self.send_pdu(h, data=imm)
        self.cmdsn = (self.cmdsn + 1) & 0xFFFFFFFF
        data_in = bytearray()
        while True:
            p = self.wait(lambda q: q.itt == itt or q.opcode == OP_REJECT, timeout,
                          "response to ITT 0x%x" % itt)
            if p.opcode == OP_REJECT:
                raise CaseFail("command rejected: %r" % p)
            if p.opcode == OP_DATA_IN:
                off = p.u32(40)
                if off != len(data_in):
                    raise CaseFail("Data-In offset %d, expected %d" % (off, len(data_in)))
                data_in += p.data
                if p.flags & 0x01:
                    return p.bhs[3], bytes(data_in), p, p.flags & 0x06, p.u32(44)
            elif p.opcode == OP_R2T:
                off, length = p.u32(40), p.u32(44)
                ttt = p.u32(20)
                self.data_out(itt, ttt, write_data[off:off + length], off, lun)
            elif p.opcode == OP_SCSI_RSP:
                return p.bhs[3], bytes(data_in), p, p.flags & 0x06, p.u32(44)
            else:
                raise CaseFail("unexpected %r" % p)

    def data_out(self, itt, ttt, data, offset, lun=None, datasn=0):
        lun = LUN if lun is None else lun
        mx = self.target_mrdsl
        pos = 0
        while pos < len(data):
            chunk = data[pos:pos + mx]
            final = pos + len(chunk) >= len(data)
            rest = struct.pack(">IIIIII", ttt, 0, self.expstatsn, 0, datasn, offset + pos)
            self.send_pdu(bhs(OP_DATA_OUT, 0x80 if final else 0, dsl=len(chunk),
                              lun=lun_field(lun), itt=itt, rest=rest), data=chunk)
            pos += len(chunk)
            datasn += 1

    def tur(self):
        for _ in range(3):
            st, _, p, _, _ = self.scsi(b"\x00" * 6)
            if st == 0:
                return
            if st == 2 and len(p.data) >= 4 and (p.data[4] & 0x0F) == 6:
                continue  # UNIT ATTENTION after login
            raise CaseFail("TEST UNIT READY status 0x%02x sense %s" % (st, p.data[:20].hex()))
        raise CaseFail("TEST UNIT READY keeps returning UNIT ATTENTION")

    def read10(self, lba, blocks=1):
        cdb = struct.pack(">BBIBHB", 0x28, 0, lba, 0, blocks, 0)
        st, data, p, _, _ = self.scsi(cdb, read_len=blocks * BLOCK)
        if st != 0:
            raise CaseFail("READ(10) status 0x%02x" % st)
        if len(data) != blocks * BLOCK:
            raise CaseFail("READ(10) returned %d bytes, expected %d" % (len(data), blocks * BLOCK))
        return data

    def write10(self, lba, data):
        cdb = struct.pack(">BBIBHB", 0x2A, 0, lba, 0, len(data) // BLOCK, 0)
        st, _, p, _, _ = self.scsi(cdb, write_data=data)
        if st != 0:
            raise CaseFail("WRITE(10) status 0x%02x sense %s" % (st, p.data[:20].hex()))

    def logout(self):
        itt = self.next_itt()
        rest = struct.pack(">HHII", 0, 0, self.cmdsn, self.expstatsn)
        self.send_pdu(bhs(0x40 | OP_LOGOUT, 0x80, itt=itt, rest=rest))
        p = self.wait(lambda q: q.opcode == OP_LOGOUT_RSP, what="Logout Response")
        if p.bhs[2] != 0:
            raise CaseFail("Logout Response 0x%02x" % p.bhs[2])


# --- the target process ----------------------------------------------------------
class Target:
    def __init__(self, binary, tmp):
        self.binary = binary
        self.tmp = tmp
        self.proc = None
        self.port = None
        self.log = None

    @staticmethod
    def listening(port):
        try:
            out = subprocess.run(["ss", "-Hltn", "sport = :%d" % port], capture_output=True,
                                 text=True, timeout=5).stdout
            return bool(out.strip())
        except (OSError, subprocess.SubprocessError):
            s = socket.socket()
            s.settimeout(0.5)
            try:
                s.connect((HOST, port))
                return True
            except OSError:
                return False
            finally:
                s.close()

    def start(self):
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        for attempt in range(8):
            port = random.randrange(3300, 4000)
            if self.listening(port):
                continue
            self.log = os.path.join(self.tmp, "iserd-%d.log" % attempt)
            args = [self.binary, "--portal", "tcp://%s:%d" % (HOST, port), "--target", IQN,
                    "--lun", "ram:%d" % LUN_BYTES]
            if os.environ.get("ISD_TEST_REACTORS"):
                # the same tests on several reactors (tests/lib/harness.sh)
                args += ["--reactors", os.environ["ISD_TEST_REACTORS"]]
            print("starting: %s" % " ".join(args), flush=True)
            logf = open(self.log, "wb")
            self.proc = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT, env=env)
            logf.close()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and self.proc.poll() is None:
                if self.listening(port):
                    self.port = port
                    return
                time.sleep(0.1)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError("iserd did not listen within 20 s")
            if "in use" in self.read_log():
                continue
            raise RuntimeError("iserd exited with %d before listening" % self.proc.returncode)
        raise RuntimeError("no free port")

    def alive(self):
        return self.proc is None or self.proc.poll() is None

    def read_log(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except (OSError, TypeError):
            return ""

    def stop(self):
        """Returns an error string, or None when iserd exited 0 within 10 s of SIGTERM."""
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            return "iserd had already exited with status %d" % self.proc.returncode
        self.proc.terminate()
        try:
            rc = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return "iserd did not exit within 10 s of SIGTERM"
        if rc != 0:
            return "iserd exited with status %d after SIGTERM" % rc
        if re.search(r"ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY: \w+Sanitizer",
                     self.read_log()):
            return "sanitizer report in the iserd log"
        return None


# --- test cases --------------------------------------------------------------------
class Ctx:
    def __init__(self, port, target):
        self.port = port
        self.target = target
        self.good = None
        self.n = 0

    def initiator(self):
        self.n += 1
        return "%s-%d" % (INI_BASE, self.n)

    def session(self, timeout=5.0):
        c = Conn(self.port, timeout)
        cls, det, keys = c.login(self.initiator())
        if cls != 0:
            c.close()
            raise CaseFail("login failed with status 0x%02x%02x" % (cls, det))
        c.tur()
        return c

    def conn(self, timeout=5.0):
        return Conn(self.port, timeout)


def expect_reject_or_drop(c, sent_bhs, reasons, timeout=5.0, allow_drop=True, what=""):
    """Waits for a Reject with one of reasons whose data is the offending BHS, or (when
    allow_drop) a dropped connection. Returns a description."""
    try:
        p = c.wait(lambda q: q.opcode in (OP_REJECT, OP_SCSI_RSP, OP_NOP_IN, OP_DATA_IN,
                                          OP_R2T, OP_LOGIN_RSP, 0x22, 0x24, OP_LOGOUT_RSP),
                   timeout, "Reject")
    except Closed as e:
        if allow_drop:
            return "connection dropped (%s)" % e
        raise CaseFail("connection dropped, expected a Reject")
    except Timeout:
        raise CaseFail("no Reject and no drop within %.0f s%s" % (timeout, what))
    if p.opcode != OP_REJECT:
        raise CaseFail("expected Reject (0x3f) with reason in %s, got %r" %
                       (["0x%02x" % r for r in reasons], p))
    if p.flags != 0x80:
        raise CaseFail("Reject byte 1 is 0x%02x, expected 0x80" % p.flags)
    if p.itt != RSVD:
        raise CaseFail("Reject ITT is 0x%08x, expected 0xffffffff" % p.itt)
    if p.bhs[2] not in reasons:
        raise CaseFail("Reject reason 0x%02x (%s), expected %s" % (
            p.bhs[2], REJECT_REASONS.get(p.bhs[2], "?"), ["0x%02x" % r for r in reasons]))
    if len(p.data) < 48:
        raise CaseFail("Reject carries %d data bytes, expected the 48-byte offending BHS" %
                       len(p.data))
    if p.data[:48] != sent_bhs[:48]:
        raise CaseFail("Reject data is not the offending BHS:\n      sent %s\n      got  %s" %
                       (sent_bhs[:48].hex(), p.data[:48].hex()))
    return "Reject reason 0x%02x (%s) with the offending BHS" % (
        p.bhs[2], REJECT_REASONS.get(p.bhs[2], "?"))


def still_usable(c):
    """After a Reject the connection should go on: a NOP-Out ping must be answered."""
    try:
        c.nop_ping()
        return "; same connection still answers NOP-Out"
    except Closed:
        return "; connection closed after the Reject"


def case_unknown_opcode(ctx, op):
    c = ctx.session()
    try:
        h = bhs(0x40 | op, 0x80, itt=c.next_itt(),
                rest=struct.pack(">III", RSVD, c.cmdsn, c.expstatsn))
        c.send_pdu(h)
        res = expect_reject_or_drop(c, h, (0x04, 0x05), allow_drop=False)
        return res + still_usable(c)
    finally:
        c.close()


def case_dsl_over_mrdsl(ctx):
    c = ctx.session()
    try:
        n = c.target_mrdsl + 4096
        itt = c.next_itt()
        h = bhs(0x40 | OP_NOP_OUT, 0x80, dsl=n, itt=itt,
                rest=struct.pack(">III", RSVD, c.cmdsn, c.expstatsn))
        c.send_pdu(h, data=os.urandom(n))
        return ("target MaxRecvDataSegmentLength %d, sent DSL %d: " % (c.target_mrdsl, n) +
                expect_reject_or_drop(c, h, (0x04, 0x09)))
    finally:
        c.close()


def case_dsl_huge_no_data(ctx):
    """DSL 16 MiB - 1 on a SCSI command, no data follows: reject or drop, never allocate it."""
    c = ctx.session()
    try:
        h = c.cmd_bhs(struct.pack(">BBIBHB", 0x2A, 0, 40, 0, 1, 0), BLOCK, write=True,
                      dsl=0xFFFFFF)
        c.send_pdu(h)
        try:
            return expect_reject_or_drop(c, h, (0x04, 0x09), timeout=3)
        except CaseFail as e:
            if "no Reject and no drop" in str(e):
                return "no answer within 3 s (target waits for the data); alive checked below"
            raise
    finally:
        c.close()


def case_ahs_past_pdu(ctx):
    """TotalAHSLength 1 word, but the AHS inside claims 256 bytes."""
    c = ctx.session()
    try:
        ahs = struct.pack(">HBB", 256, 0x01, 0)
        h = c.cmd_bhs(b"\x00" * 6, 0, ahs_words=1)
        c.send_pdu(h, ahs=ahs)
        c.cmdsn = (c.cmdsn + 1) & 0xFFFFFFFF
        try:
            p = c.wait(lambda q: q.opcode in (OP_REJECT, OP_SCSI_RSP), 5, "answer")
        except Closed as e:
            return "connection dropped (%s)" % e
        if p.opcode == OP_REJECT:
            if p.bhs[2] not in (0x04, 0x09) or p.data[:48] != h:
                raise CaseFail("Reject reason 0x%02x / data %s" % (p.bhs[2], p.data[:48].hex()))
            return "Reject reason 0x%02x with the offending BHS" % p.bhs[2]
        if p.bhs[3] == 0:
            raise CaseFail("malformed AHS accepted: %r" % p)
        return "SCSI status 0x%02x" % p.bhs[3]
    finally:
        c.close()


def case_ahs_bad_type(ctx):
    """TotalAHSLength 255 words (1020 bytes) of a reserved AHS type."""
    c = ctx.session()
    try:
        ahs = struct.pack(">HBB", 1017, 0x3E, 0) + bytes(1016)
        h = c.cmd_bhs(b"\x00" * 6, 0, ahs_words=255)
        c.send_pdu(h, ahs=ahs)
        c.cmdsn = (c.cmdsn + 1) & 0xFFFFFFFF
        try:
            p = c.wait(lambda q: q.opcode in (OP_REJECT, OP_SCSI_RSP), 5, "answer")
        except Closed as e:
            return "connection dropped (%s)" % e
        if p.opcode == OP_REJECT:
            return "Reject reason 0x%02x" % p.bhs[2]
        return "SCSI status 0x%02x" % p.bhs[3]
    finally:
        c.close()


def expect_login_status(c, data, classes, **kw):
    """Sends a login request; expects a Login Response with status class in classes, or
    a dropped connection when classes contains None."""
    try:
        r = c.login_raw(data, **kw)
    except Closed as e:
        if None in classes:
            return "connection dropped (%s)" % e
        raise CaseFail("connection dropped, expected a login status")
    except Timeout:
        raise CaseFail("no Login Response within %.0f s" % c.timeout)
    st = (r.bhs[36], r.bhs[37])
    if st[0] == 0:
        raise CaseFail("login succeeded (status 0x0000, keys %s)" % parse_kv(r.data))
    if (st[0], st[1]) not in classes and st[0] not in classes:
        raise CaseFail("login status 0x%02x%02x, expected %s" % (
            st[0], st[1], " or ".join(
                ("0x%04x" % ((x[0] << 8) | x[1])) if isinstance(x, tuple) else
                ("class 0x%02x" % x if x is not None else "drop") for x in classes)))
    if r.bhs[0] != OP_LOGIN_RSP:
        raise CaseFail("Login Response byte 0 is 0x%02x" % r.bhs[0])
    # A failed login ends with the connection closed by the target.
    try:
        p = c.recv_pdu(3)
        raise CaseFail("target sent %r after a failed login" % p)
    except Closed:
        closed = "; then closed"
    except Timeout:
        closed = "; connection not closed within 3 s"
    return "login status 0x%02x%02x%s" % (st[0], st[1], closed)


def case_login_no_nul(ctx):
    c = ctx.conn()
    try:
        data = kv([("InitiatorName", ctx.initiator()), ("TargetName", IQN)]) + \
            b"SessionType=Normal"
        return expect_login_status(c, data, (0x02, None))
    finally:
        c.close()


def case_login_long_key(ctx):
    c = ctx.conn()
    try:
        data = kv([("InitiatorName", ctx.initiator()), ("TargetName", IQN),
                   ("SessionType", "Normal"), ("X" * 100, "foo")] + OP_KEYS)
        return expect_login_status(c, data, (0x02, None))
    finally:
        c.close()


def case_login_long_value(ctx):
    c = ctx.conn()
    try:
        data = kv([("InitiatorName", "iqn.2026-11.org.iserd:" + "a" * 4000), ("TargetName", IQN),
                   ("SessionType", "Normal")] + OP_KEYS)
        return expect_login_status(c, data, (0x02, None))
    finally:
        c.close()


def case_login_unknown_target(ctx):
    c = ctx.conn()
    try:
        data = kv([("InitiatorName", ctx.initiator()),
                   ("TargetName", "iqn.2026-11.org.iserd:no-such-target"),
                   ("SessionType", "Normal")] + OP_KEYS)
        return expect_login_status(c, data, ((0x02, 0x03),))
    finally:
        c.close()


def case_login_no_initiator_name(ctx):
    c = ctx.conn()
    try:
        data = kv([("TargetName", IQN), ("SessionType", "Normal")] + OP_KEYS)
        return expect_login_status(c, data, ((0x02, 0x07),))
    finally:
        c.close()


def case_login_bad_version(ctx):
    c = ctx.conn()
    try:
        data = kv([("InitiatorName", ctx.initiator()), ("TargetName", IQN),
                   ("SessionType", "Normal")] + OP_KEYS)
        return expect_login_status(c, data, ((0x02, 0x05),), vmax=0x10, vmin=0x10)
    finally:
        c.close()


def case_login_dsl_lies(ctx):
    """Login PDU whose DSL claims more than is sent, then close."""
    c = ctx.conn()
    try:
        data = kv([("InitiatorName", ctx.initiator()), ("TargetName", IQN)])
        c.send(c.login_pdu(data, dsl=60000) + data)
        time.sleep(0.3)
        return "sent a login PDU with DSL 60000 and %d data bytes, closed" % len(data)
    finally:
        c.close()


def case_garbage_before_login(ctx):
    c = ctx.conn()
    try:
        junk = bytearray(os.urandom(48))
        junk[0] = 0x47  # not a Login Request (opcode 0x07, I bit)
        junk[4:8] = bytes(4)  # no AHS, no data: the target can judge the header alone
        c.send(bytes(junk))
        try:
            p = c.recv_pdu(5)
        except Closed as e:
            return "connection dropped (%s)" % e
        except Timeout:
            raise CaseFail("no answer and no drop within 5 s after a non-login first PDU")
        if p.opcode == OP_LOGIN_RSP and p.bhs[36] != 0:
            return "login status 0x%02x%02x" % (p.bhs[36], p.bhs[37])
        if p.opcode == OP_REJECT:
            return "Reject reason 0x%02x" % p.bhs[2]
        raise CaseFail("unexpected %r" % p)
    finally:
        c.close()


def case_http_garbage(ctx):
    c = ctx.conn()
    try:
        c.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" + os.urandom(2000))
        try:
            p = c.recv_pdu(3)
            return "answered %r" % p
        except Closed as e:
            return "connection dropped (%s)" % e
        except Timeout:
            return "no answer within 3 s; alive checked below"
    finally:
        c.close()


def case_cmdsn_outside_window(ctx):
    c = ctx.session()
    try:
        exp = c.cmdsn
        notes = []
        for delta, label in ((0x10000, "far ahead"), (-5, "behind")):
            sn = (exp + delta) & 0xFFFFFFFF
            h = c.cmd_bhs(b"\x00" * 6, 0, cmdsn=sn)
            itt = struct.unpack_from(">I", h, 16)[0]
            c.send_pdu(h)
            try:
                p = c.wait(lambda q, i=itt: q.itt == i or q.opcode == OP_REJECT, 2, "")
                raise CaseFail("TUR with CmdSN %s the window (0x%08x; ExpCmdSN 0x%08x, "
                               "MaxCmdSN 0x%08x) was answered: %r" % (
                                   label, sn, exp, c.maxcmdsn, p))
            except Timeout:
                notes.append("CmdSN %s dropped silently" % label)
        c.nop_ping()
        notes.append("NOP-Out ping answered")
        c.tur()
        notes.append("in-window TUR answered")
        return "; ".join(notes)
    finally:
        c.close()


def case_dataout_unknown_itt(ctx):
    c = ctx.session()
    try:
        rest = struct.pack(">IIIIII", RSVD, 0, c.expstatsn, 0, 0, 0)
        h = bhs(OP_DATA_OUT, 0x80, dsl=BLOCK, lun=lun_field(LUN), itt=0x7654321, rest=rest)
        c.send_pdu(h, data=bytes(BLOCK))
        return expect_reject_or_drop(c, h, (0x04, 0x09)) + still_usable(c)
    finally:
        c.close()


def case_dataout_wrong_ttt(ctx, lba):
    """WRITE(10) without immediate data; the Data-Out answering the R2T has a wrong TTT.
    Its data must not reach the medium."""
    bad = b"\xba" * BLOCK
    c = ctx.session()
    try:
        cdb = struct.pack(">BBIBHB", 0x2A, 0, lba, 0, 1, 0)
        h = c.cmd_bhs(cdb, BLOCK, write=True)
        itt = struct.unpack_from(">I", h, 16)[0]
        c.send_pdu(h)
        c.cmdsn = (c.cmdsn + 1) & 0xFFFFFFFF
        r2t = c.wait(lambda q: q.itt == itt or q.opcode == OP_REJECT, 5, "R2T")
        if r2t.opcode != OP_R2T:
            raise CaseFail("expected R2T (InitialR2T=Yes, no immediate data), got %r" % r2t)
        ttt = r2t.u32(20)
        rest = struct.pack(">IIIIII", ttt ^ 0x5A5A5A5A, 0, c.expstatsn, 0, 0, 0)
        dh = bhs(OP_DATA_OUT, 0x80, dsl=BLOCK, lun=lun_field(LUN), itt=itt, rest=rest)
        c.send_pdu(dh, data=bad)
        res = expect_reject_or_drop(c, dh, (0x04, 0x09))
        return res
    finally:
        c.close()
        if ctx.good is not None:
            got = ctx.good.read10(lba)
            if got == bad:
                raise CaseFail("data of the Data-Out with the wrong TTT was written to LBA %d"
                               % lba)


def case_read_edtl_huge(ctx):
    c = ctx.session()
    try:
        cdb = struct.pack(">BBIBHB", 0x28, 0, 0, 0, 1, 0)
        st, data, p, resflags, resid = c.scsi(cdb, read_len=BLOCK, edtl=0xFFFFFFFF)
        if st != 0:
            raise CaseFail("status 0x%02x" % st)
        if len(data) != BLOCK:
            raise CaseFail("got %d bytes of data, expected %d" % (len(data), BLOCK))
        if resflags != 0x02:
            raise CaseFail("residual flags 0x%02x, expected U (0x02) underflow; %r" % (resflags, p))
        if resid != 0xFFFFFFFF - BLOCK:
            raise CaseFail("residual count %d, expected %d" % (resid, 0xFFFFFFFF - BLOCK))
        return "GOOD, %d bytes, underflow residual %d" % (len(data), resid)
    finally:
        c.close()


def case_read_edtl_short(ctx):
    c = ctx.session()
    try:
        cdb = struct.pack(">BBIBHB", 0x28, 0, 0, 0, 1, 0)
        st, data, p, resflags, resid = c.scsi(cdb, read_len=256, edtl=256)
        if st != 0:
            raise CaseFail("status 0x%02x" % st)
        if len(data) > 256:
            raise CaseFail("target sent %d bytes for EDTL 256" % len(data))
        if resflags != 0x04 or resid != BLOCK - 256:
            raise CaseFail("residual flags 0x%02x count %d, expected O (0x04) and %d" % (
                resflags, resid, BLOCK - 256))
        return "GOOD, %d bytes, overflow residual %d" % (len(data), resid)
    finally:
        c.close()


def case_truncated_write(ctx, lba):
    """WRITE(10) of 8 blocks with 4 KiB immediate data announced, only 1000 bytes sent, then
    close: nothing may reach the medium."""
    bad = b"\xcd" * 4096
    c = ctx.session()
    try:
        cdb = struct.pack(">BBIBHB", 0x2A, 0, lba, 0, 8, 0)
        h = c.cmd_bhs(cdb, 4096, write=True, dsl=4096)
        c.send(h + bad[:1000])
        time.sleep(0.3)
        return "sent 1048 of 4144 bytes, closed"
    finally:
        c.close()
        time.sleep(0.2)
        if ctx.good is not None:
            got = ctx.good.read10(lba, 8)
            if bad[:1000] in got or got[:512] == bad[:512]:
                raise CaseFail("part of a truncated write reached LBA %d" % lba)


def case_truncated_bhs(ctx):
    c = ctx.session()
    try:
        h = c.cmd_bhs(b"\x00" * 6, 0)
        c.send(h[:20])
        time.sleep(0.3)
        return "sent 20 of 48 BHS bytes, closed"
    finally:
        c.close()


def case_ping_data(ctx):
    """Sanity: a NOP-Out ping with 1000 bytes of data is echoed."""
    c = ctx.session()
    try:
        c.nop_ping(os.urandom(1000))
        c.logout()
        return "echoed 1000 bytes; logout answered"
    finally:
        c.close()


def case_scsi_before_login(ctx):
    c = ctx.conn()
    try:
        h = c.cmd_bhs(b"\x00" * 6, 0)
        c.send_pdu(h)
        try:
            p = c.recv_pdu(5)
        except Closed as e:
            return "connection dropped (%s)" % e
        except Timeout:
            raise CaseFail("no answer and no drop within 5 s")
        if p.opcode in (OP_REJECT, OP_LOGIN_RSP) and (p.opcode == OP_REJECT or p.bhs[36]):
            return "%r" % p
        raise CaseFail("unexpected %r" % p)
    finally:
        c.close()


def expect_not_good(c, h, what):
    """After a broken SCSI command: Reject, drop or a non-GOOD status are fine; GOOD is not."""
    itt = struct.unpack_from(">I", h, 16)[0]
    try:
        p = c.wait(lambda q: q.opcode == OP_REJECT or (q.itt == itt and q.opcode in (
            OP_SCSI_RSP, OP_R2T, OP_DATA_IN)), 5, "answer")
    except Closed as e:
        return "connection dropped (%s)" % e
    except Timeout:
        raise CaseFail("no answer and no drop within 5 s after %s" % what)
    if p.opcode == OP_REJECT:
        if p.data[:48] != h:
            raise CaseFail("Reject reason 0x%02x without the offending BHS" % p.bhs[2])
        return "Reject reason 0x%02x (%s) with the offending BHS" % (
            p.bhs[2], REJECT_REASONS.get(p.bhs[2], "?"))
    if p.opcode == OP_SCSI_RSP and p.bhs[3] != 0:
        return "SCSI status 0x%02x sense %s" % (p.bhs[3], p.data[2:20].hex())
    raise CaseFail("%s accepted: %r" % (what, p))


def case_immediate_over_first_burst(ctx, lba):
    """WRITE(10) whose immediate data is longer than FirstBurstLength."""
    c = ctx.session()
    bad = b"\xe1" * 1024
    try:
        fb = int(c.keys.get("FirstBurstLength", "65536"))
        n = fb + BLOCK
        if n > c.target_mrdsl:
            return "skipped: FirstBurstLength %d + 512 exceeds MaxRecvDataSegmentLength %d" % (
                fb, c.target_mrdsl)
        data = bad * (n // len(bad)) + bad[:n % len(bad)]
        cdb = struct.pack(">BBIBHB", 0x2A, 0, lba, 0, n // BLOCK, 0)
        h = c.cmd_bhs(cdb, n, write=True, dsl=n)
        c.send_pdu(h, data=data)
        c.cmdsn = (c.cmdsn + 1) & 0xFFFFFFFF
        return "FirstBurstLength %d, sent %d: %s" % (fb, n, expect_not_good(
            c, h, "immediate data over FirstBurstLength"))
    finally:
        c.close()
        if ctx.good is not None and ctx.good.read10(lba) == bad[:BLOCK]:
            raise CaseFail("immediate data over FirstBurstLength was written to LBA %d" % lba)


def case_immediate_over_edtl(ctx, lba):
    """WRITE(10) of 1 block (EDTL 512) carrying 4096 bytes of immediate data."""
    c = ctx.session()
    bad = b"\xe2" * 4096
    try:
        cdb = struct.pack(">BBIBHB", 0x2A, 0, lba, 0, 1, 0)
        h = c.cmd_bhs(cdb, BLOCK, write=True, dsl=len(bad))
        c.send_pdu(h, data=bad)
        c.cmdsn = (c.cmdsn + 1) & 0xFFFFFFFF
        return expect_not_good(c, h, "immediate data longer than the EDTL")
    finally:
        c.close()
        if ctx.good is not None and ctx.good.read10(lba + 1) == bad[:BLOCK]:
            raise CaseFail("immediate data past the EDTL was written to LBA %d" % (lba + 1))


def case_dataout_offset_past_edtl(ctx, lba):
    """The Data-Out answering an R2T has a buffer offset past the EDTL."""
    c = ctx.session()
    bad = b"\xe3" * BLOCK
    try:
        cdb = struct.pack(">BBIBHB", 0x2A, 0, lba, 0, 1, 0)
        h = c.cmd_bhs(cdb, BLOCK, write=True)
        itt = struct.unpack_from(">I", h, 16)[0]
        c.send_pdu(h)
        c.cmdsn = (c.cmdsn + 1) & 0xFFFFFFFF
        r2t = c.wait(lambda q: q.itt == itt or q.opcode == OP_REJECT, 5, "R2T")
        if r2t.opcode != OP_R2T:
            raise CaseFail("expected R2T, got %r" % r2t)
        rest = struct.pack(">IIIIII", r2t.u32(20), 0, c.expstatsn, 0, 0, 1 << 20)
        dh = bhs(OP_DATA_OUT, 0x80, dsl=BLOCK, lun=lun_field(LUN), itt=itt, rest=rest)
        c.send_pdu(dh, data=bad)
        return expect_reject_or_drop(c, dh, (0x04, 0x09))
    finally:
        c.close()
        if ctx.good is not None:
            for l in (lba, lba + 2048):
                if ctx.good.read10(l) == bad:
                    raise CaseFail("Data-Out past the EDTL was written to LBA %d" % l)


def case_duplicate_itt(ctx):
    """A second command reusing the ITT of a WRITE that still waits for its Data-Out."""
    c = ctx.session()
    try:
        cdb = struct.pack(">BBIBHB", 0x2A, 0, 60, 0, 1, 0)
        h = c.cmd_bhs(cdb, BLOCK, write=True)
        itt = struct.unpack_from(">I", h, 16)[0]
        c.send_pdu(h)
        c.cmdsn = (c.cmdsn + 1) & 0xFFFFFFFF
        r2t = c.wait(lambda q: q.itt == itt or q.opcode == OP_REJECT, 5, "R2T")
        if r2t.opcode != OP_R2T:
            raise CaseFail("expected R2T, got %r" % r2t)
        h2 = c.cmd_bhs(b"\x00" * 6, 0, itt=itt)
        c.send_pdu(h2)
        c.cmdsn = (c.cmdsn + 1) & 0xFFFFFFFF
        try:
            p = c.wait(lambda q: q.opcode == OP_REJECT or q.itt == itt, 5, "answer")
        except Closed as e:
            return "connection dropped (%s)" % e
        if p.opcode == OP_REJECT:
            return "Reject reason 0x%02x (%s)" % (p.bhs[2], REJECT_REASONS.get(p.bhs[2], "?"))
        if p.opcode == OP_SCSI_RSP and p.bhs[3] != 0:
            return "SCSI status 0x%02x" % p.bhs[3]
        raise CaseFail("command with a duplicate ITT answered %r" % p)
    finally:
        c.close()


def case_lun_not_supported(ctx):
    c = ctx.session()
    try:
        h = c.cmd_bhs(b"\x00" * 6, 0, lun=77)
        itt = struct.unpack_from(">I", h, 16)[0]
        c.send_pdu(h)
        c.cmdsn = (c.cmdsn + 1) & 0xFFFFFFFF
        p = c.wait(lambda q: q.itt == itt or q.opcode == OP_REJECT, 5, "SCSI Response")
        if p.opcode != OP_SCSI_RSP or p.bhs[3] != 2:
            raise CaseFail("expected CHECK CONDITION, got %r" % p)
        sense = p.data[2:]
        key = asc = None
        if len(sense) >= 4 and sense[0] & 0x7F in (0x72, 0x73):  # descriptor format
            key, asc = sense[1] & 0x0F, sense[2]
        elif len(sense) > 13:  # fixed format
            key, asc = sense[2] & 0x0F, sense[12]
        if key != 0x05 or asc != 0x25:
            raise CaseFail("expected ILLEGAL REQUEST / LOGICAL UNIT NOT SUPPORTED (05/25/00), "
                           "got sense %s" % sense[:18].hex())
        return "CHECK CONDITION 05/25/00"
    finally:
        c.close()


def case_login_bad_stage(ctx):
    """Login with T=1 from the operational stage back to security negotiation."""
    c = ctx.conn()
    try:
        data = kv([("InitiatorName", ctx.initiator()), ("TargetName", IQN),
                   ("SessionType", "Normal")])
        return expect_login_status(c, data, (0x02, None), csg=1, nsg=0)
    finally:
        c.close()


def case_connection_flood(ctx):
    """200 connections that never log in, then all closed at once."""
    conns = []
    try:
        for _ in range(200):
            conns.append(socket.create_connection((HOST, ctx.port), timeout=5))
        return "opened %d idle connections" % len(conns)
    finally:
        for s in conns:
            s.close()
        time.sleep(0.3)


# --- runner ------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, help="use a target already on 127.0.0.1:PORT")
    ap.add_argument("--iqn", help="its target name")
    ap.add_argument("--lun", type=int, default=0, help="its LUN to use")
    ap.add_argument("-k", "--only", help="run only cases whose name contains this")
    args = ap.parse_args()
    global IQN, LUN
    LUN = args.lun
    if args.iqn:
        IQN = args.iqn

    tmp = tempfile.mkdtemp(prefix="iserd-malformed.")
    target = None
    if args.port:
        port = args.port
    else:
        binary = os.environ.get("ISERD", "")
        if not binary:
            build = os.environ.get("ISERD_BUILD", "")
            binary = os.path.join(build, "iserd") if build else ""
        if not binary or not os.access(binary, os.X_OK):
            print("FAIL: iserd binary not found (ISERD=%r)" % binary)
            return 1
        target = Target(binary, tmp)
        try:
            target.start()
        except RuntimeError as e:
            print("FAIL: %s" % e)
            print(target.read_log()[-8000:])
            return 1
        port = target.port
    ctx = Ctx(port, target)

    base_lba = 1000
    cases = [
        ("ping-with-data", lambda: case_ping_data(ctx)),
        ("unknown-opcode-0x1c", lambda: case_unknown_opcode(ctx, 0x1C)),
        ("unknown-opcode-0x0f", lambda: case_unknown_opcode(ctx, 0x0F)),
        ("dsl-over-mrdsl", lambda: case_dsl_over_mrdsl(ctx)),
        ("dsl-16MiB-no-data", lambda: case_dsl_huge_no_data(ctx)),
        ("ahs-length-past-pdu", lambda: case_ahs_past_pdu(ctx)),
        ("ahs-reserved-type-1020-bytes", lambda: case_ahs_bad_type(ctx)),
        ("login-key-without-nul", lambda: case_login_no_nul(ctx)),
        ("login-overlong-key-name", lambda: case_login_long_key(ctx)),
        ("login-overlong-initiator-name", lambda: case_login_long_value(ctx)),
        ("login-unknown-target-0x0203", lambda: case_login_unknown_target(ctx)),
        ("login-missing-initiator-name-0x0207", lambda: case_login_no_initiator_name(ctx)),
        ("login-bad-version-0x0205", lambda: case_login_bad_version(ctx)),
        ("login-dsl-past-data-then-close", lambda: case_login_dsl_lies(ctx)),
        ("garbage-before-login", lambda: case_garbage_before_login(ctx)),
        ("http-garbage-before-login", lambda: case_http_garbage(ctx)),
        ("scsi-command-before-login", lambda: case_scsi_before_login(ctx)),
        ("cmdsn-outside-window", lambda: case_cmdsn_outside_window(ctx)),
        ("data-out-unknown-itt", lambda: case_dataout_unknown_itt(ctx)),
        ("data-out-wrong-ttt", lambda: case_dataout_wrong_ttt(ctx, base_lba)),
        ("read10-edtl-0xffffffff-underflow", lambda: case_read_edtl_huge(ctx)),
        ("read10-edtl-256-overflow", lambda: case_read_edtl_short(ctx)),
        ("truncated-write-then-close", lambda: case_truncated_write(ctx, base_lba + 16)),
        ("truncated-bhs-then-close", lambda: case_truncated_bhs(ctx)),
        ("immediate-data-over-first-burst", lambda: case_immediate_over_first_burst(
            ctx, base_lba + 64)),
        ("immediate-data-over-edtl", lambda: case_immediate_over_edtl(ctx, base_lba + 300)),
        ("data-out-offset-past-edtl", lambda: case_dataout_offset_past_edtl(ctx, base_lba + 310)),
        ("duplicate-itt", lambda: case_duplicate_itt(ctx)),
        ("lun-not-supported", lambda: case_lun_not_supported(ctx)),
        ("login-stage-transition-backwards", lambda: case_login_bad_stage(ctx)),
        ("connection-flood-200", lambda: case_connection_flood(ctx)),
    ]
    if args.only:
        cases = [c for c in cases if args.only in c[0]]

    failures = []
    pattern = bytes(range(256)) * 2

    def good_check(label):
        """The good session answers TUR and READ(10) with the expected data."""
        if target is not None and not target.alive():
            raise CaseFail("iserd died (status %s)" % target.proc.returncode)
        if ctx.good is None:
            raise CaseFail("no good session")
        ctx.good.tur()
        if ctx.good.read10(7) != pattern:
            raise CaseFail("good session READ(10) of LBA 7 returned other data")

    try:
        ctx.good = ctx.session()
        ctx.good.write10(7, pattern)
        good_check("setup")
        print("PASS: setup: good session logged in (target MaxRecvDataSegmentLength %d), "
              "TUR, WRITE(10), READ(10)" % ctx.good.target_mrdsl, flush=True)
    except Exception as e:  # noqa: BLE001
        print("FAIL: setup: the good session does not work: %s" % e)
        traceback.print_exc()
        failures.append("setup")
        ctx.good = None

    if ctx.good is not None:
        for name, fn in cases:
            t0 = time.monotonic()
            try:
                detail = fn()
                ok = True
            except (CaseFail, Timeout, Closed) as e:
                detail, ok = "%s: %s" % (type(e).__name__, e), False
            except (OSError, struct.error, ValueError) as e:
                detail, ok = "exception %s: %s" % (type(e).__name__, e), False
            # The concurrently open good session must still work, and iserd be alive.
            try:
                good_check(name)
                after = "good session OK"
            except (CaseFail, Timeout, Closed, OSError) as e:
                ok = False
                after = "GOOD SESSION BROKEN: %s: %s" % (type(e).__name__, e)
                try:
                    if ctx.good:
                        ctx.good.close()
                    ctx.good = None
                    if target is None or target.alive():
                        ctx.good = ctx.session()
                        ctx.good.write10(7, pattern)
                except Exception as e2:  # noqa: BLE001
                    after += "; new good session failed too: %s" % e2
            dt = time.monotonic() - t0
            print("%s: %s: %s [%s, %.1fs]" % ("PASS" if ok else "FAIL", name, detail, after, dt),
                  flush=True)
            if not ok:
                failures.append(name)
            if target is not None and not target.alive():
                print("FAIL: iserd exited (status %s) after case %s; remaining cases not run" %
                      (target.proc.returncode, name))
                failures.append("iserd-died")
                break
        if ctx.good is not None:
            try:
                ctx.good.logout()
                print("PASS: good session logout")
            except Exception as e:  # noqa: BLE001
                print("FAIL: good session logout: %s" % e)
                failures.append("logout")
            ctx.good.close()

    if target is not None:
        err = target.stop()
        if err:
            print("FAIL: shutdown: %s" % err)
            failures.append("shutdown")
        else:
            print("PASS: iserd exited 0 on SIGTERM, no sanitizer report")
        if failures:
            print("----- iserd log (last 200 lines) -----")
            print("\n".join(target.read_log().splitlines()[-200:]))
            print("----- end of log -----")
    shutil.rmtree(tmp, ignore_errors=True)
    print("==== test_malformed: %d cases, %d failed%s" % (
        len(cases), len(failures), (": " + ", ".join(failures)) if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
