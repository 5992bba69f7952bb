#!/usr/bin/env python3
"""Hostile-client tests of iserd's credentials and logs (FINDING 6 and 7).

- a CHAP secret given on the command line is overwritten in /proc/PID/cmdline
  (and still works for logins);
- an InitiatorName with a newline cannot forge a log line;
- --check refuses a 1-byte secret, the same secret both ways and a secret file
  others may read, and warns about a config file with secrets that others may
  read;
- CHAP per initiator (acl groups): each initiator logs in with its own secret,
  a wrong or another initiator's secret is refused, mutual CHAP per initiator;
- offered CHAP_A=5,7, iserd picks 7 (SHA-256);
- when run as root: global user = "nobody" drops privileges after start and
  I/O still works.

The CHAP exchange is computed here with hashlib (RFC 1994: H(id || secret ||
challenge)).
"""

import hashlib
import os
import subprocess
import sys
import tempfile

import hostile_lib as hl
from hostile_lib import CaseFail, Conn, Iserd, kv, parse_kv

IQN_CHAP = "iqn.2026-11.org.iserd:hostile-chap"
IQN_CHAPOPEN = "iqn.2026-11.org.iserd:hostile-chap-noacl"
INI_A = "iqn.2026-11.org.example:alice"
INI_B = "iqn.2026-11.org.example:bob"
INI_C = "iqn.2026-11.org.example:carol"
SEC_A = "alicesecret-from-file"
SEC_B = "bobsecret12345"
SEC_B_MUTUAL = "targetforbob123"
SEC_DEFAULT = "defaultsecret1"
HASHES = {5: hashlib.md5, 6: hashlib.sha1, 7: hashlib.sha256, 8: hashlib.sha3_256}

WORK = tempfile.mkdtemp(prefix="iserd-creds.")
SECRET_FILE = os.path.join(WORK, "alice.secret")
with open(SECRET_FILE, "w") as f:
    f.write(SEC_A + "\n")
os.chmod(SECRET_FILE, 0o600)

CONF = """
portals = ( "tcp://127.0.0.1:@PORT@" );
targets = (
  { name = "%s"; luns = ( { backing = "ram:16M"; } ); },
  { name = "%s"; luns = ( { backing = "ram:1M"; } ); chap = "any:anysecret1234"; },
  { name = "%s"; luns = ( { backing = "ram:16M"; } );
    chap = "default:%s";
    acl = (
      { initiator = "%s"; chap = { user = "alice"; secret_file = "%s"; }; },
      { initiator = "%s"; chap = "bob:%s"; mutual_chap = "tgtbob:%s"; },
      "%s"
    );
  }
);
""" % (hl.IQN, IQN_CHAPOPEN, IQN_CHAP, SEC_DEFAULT, INI_A, SECRET_FILE, INI_B, SEC_B, SEC_B_MUTUAL, INI_C)


def chap_response(alg, ident, secret, challenge):
    h = HASHES[alg]()
    h.update(bytes([ident]) + secret.encode() + challenge)
    return "0x" + h.hexdigest()


def chap_login(port, iname, user, secret, target=IQN_CHAP, algs="5,7", mutual=None):
    """Security stage with CHAP, then the operational stage. Returns (status, details):
    status 0 on full feature phase, else (class << 8) | detail of the failure."""
    c = Conn(port)
    info = {}
    try:
        keys = [("InitiatorName", iname), ("TargetName", target),
                ("SessionType", "Normal"), ("AuthMethod", "CHAP,None")]
        r = c.login_raw(kv(keys), csg=0, nsg=1)
        if r.bhs[36] != 0:
            return (r.bhs[36] << 8) | r.bhs[37], info
        got = parse_kv(r.data)
        if got.get("AuthMethod") != "CHAP":
            raise CaseFail("AuthMethod answered %r" % got.get("AuthMethod"))
        r = c.login_raw(kv([("CHAP_A", algs)]), csg=0, nsg=1)
        if r.bhs[36] != 0:
            return (r.bhs[36] << 8) | r.bhs[37], info
        got = parse_kv(r.data)
        alg, ident = int(got["CHAP_A"]), int(got["CHAP_I"])
        info["alg"] = alg
        challenge = bytes.fromhex(got["CHAP_C"][2:])
        answer = [("CHAP_N", user), ("CHAP_R", chap_response(alg, ident, secret, challenge))]
        my_chal = os.urandom(16)
        if mutual is not None:
            answer += [("CHAP_I", "42"), ("CHAP_C", "0x" + my_chal.hex())]
        r = c.login_raw(kv(answer), csg=0, nsg=1)
        if r.bhs[36] != 0:
            return (r.bhs[36] << 8) | r.bhs[37], info
        got = parse_kv(r.data)
        if mutual is not None:
            want = chap_response(alg, 42, mutual[1], my_chal)
            if got.get("CHAP_N") != mutual[0] or got.get("CHAP_R") != want:
                raise CaseFail("mutual CHAP answer %r/%r, expected %r/%r" %
                               (got.get("CHAP_N"), got.get("CHAP_R"), mutual[0], want))
            info["mutual"] = True
        if not (r.flags & 0x80) or (r.flags & 3) != 1:
            raise CaseFail("security stage did not end (flags 0x%02x)" % r.flags)
        cls, det, _ = c.login(iname, keys=list(hl.tm.OP_KEYS))
        if cls != 0:
            return (cls << 8) | det, info
        c.tur()
        data = bytes(range(256)) * 2
        c.write10(3, data)
        if c.read10(3) != data:
            raise CaseFail("read back differs after a CHAP login")
        return 0, info
    finally:
        c.close()


def expect_login(port, iname, user, secret, **kw):
    st, info = chap_login(port, iname, user, secret, **kw)
    if st != 0:
        raise CaseFail("%s as %s: login failed with 0x%04x" % (iname, user, st))
    return info


def expect_refused(port, iname, user, secret, **kw):
    st, _ = chap_login(port, iname, user, secret, **kw)
    if st != 0x0201:
        raise CaseFail("%s as %s with a wrong secret: status 0x%04x, expected 0x0201" %
                       (iname, user, st))


def case_per_initiator(d):
    expect_login(d.port, INI_A, "alice", SEC_A)
    expect_login(d.port, INI_C, "default", SEC_DEFAULT)
    info = expect_login(d.port, INI_B, "bob", SEC_B, mutual=("tgtbob", SEC_B_MUTUAL))
    if not info.get("mutual"):
        raise CaseFail("no mutual answer")
    # another initiator's secret, the target default for an initiator with its own,
    # a plain wrong secret
    expect_refused(d.port, INI_A, "bob", SEC_B)
    expect_refused(d.port, INI_A, "default", SEC_DEFAULT)
    expect_refused(d.port, INI_C, "alice", SEC_A)
    expect_refused(d.port, INI_B, "bob", SEC_B + "x")
    return "3 initiators with their own credentials, 4 wrong ones refused"


def case_strongest_alg(d):
    got = []
    for algs, want in (("5,7", 7), ("7,5", 7), ("5,6", 6), ("5,8,7", 8), ("5", 5)):
        info = expect_login(d.port, INI_A, "alice", SEC_A, algs=algs)
        if info["alg"] != want:
            raise CaseFail("CHAP_A=%s: iserd picked %d, expected %d" % (algs, info["alg"], want))
        got.append("%s->%d" % (algs, info["alg"]))
    return ", ".join(got)


FORGED = "12:00:00.000 error: iserd: ERROR forged by the initiator"


def case_log_injection(d):
    iname = "iqn.2026-11.org.example:x\n" + FORGED + "\r\x1b[2J"
    c = Conn(d.port)
    try:
        cls, det, _ = c.login(iname)
        if cls != 0:
            raise CaseFail("login with an odd name: 0x%02x%02x" % (cls, det))
        c.tur()
    finally:
        c.close()
    # a failing CHAP login logs the name and CHAP_N too
    st, _ = chap_login(d.port, iname, "u\n" + FORGED, "whatever-secret", target=IQN_CHAPOPEN)
    if st != 0x0201:
        raise CaseFail("CHAP login with an odd name: status 0x%04x" % st)
    hl.session(d.port).close()  # flushes: the lines above are in the log by now
    log = d.read_log()
    for line in log.splitlines():
        if line.startswith(FORGED[:20]) or line.startswith("iserd: ERROR"):
            raise CaseFail("forged line in the log: %r" % line)
    if "\x1b" in log or "\r" in log:
        raise CaseFail("control bytes from the wire in the log")
    if "org.example:x\\x0a12:00:00.000" not in log:
        raise CaseFail("the escaped name is not in the log")
    return "the name is logged as ...\\x0a%s..." % FORGED[:12]


def case_cmdline_scrub(d):
    secret = "averylongsecret1"
    e = Iserd(args=["--chap", "user:" + secret])
    e.start()
    try:
        with open("/proc/%d/cmdline" % e.proc.pid, "rb") as f:
            cmdline = f.read()
        if secret.encode() in cmdline:
            raise CaseFail("the secret is in /proc/PID/cmdline: %r" % cmdline)
        if b"user:" not in cmdline:
            raise CaseFail("the --chap argument vanished: %r" % cmdline)
        if "given on the command line" not in e.read_log():
            raise CaseFail("no warning about the secret on the command line")
        # the copy taken before the scrub still authenticates
        expect_login(e.port, hl.initiator_name(), "user", secret, target=e.iqn)
        expect_refused(e.port, hl.initiator_name(), "user", "x" * len(secret), target=e.iqn)
    finally:
        err = e.stop()
        e.cleanup()
    if err:
        raise CaseFail(err)
    return "cmdline shows user:%s" % ("x" * len(secret))


def check(conf, mode=0o600):
    path = os.path.join(WORK, "check.conf")
    with open(path, "w") as f:
        f.write(conf)
    os.chmod(path, mode)
    p = subprocess.run([os.environ["ISERD"], "-c", path, "--check"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    return p.returncode, p.stdout.decode(errors="replace")


def case_check(d):
    head = ('portals = ( "tcp://127.0.0.1:3260" );\n'
            'targets = ( { name = "%s"; luns = ( { backing = "ram:1M"; } );\n' % IQN_CHAP)
    rc, out = check(head + 'chap = "u:x"; } );\n')
    if rc != 2 or "is 1 bytes; at least 12" not in out:
        raise CaseFail("1-byte secret: rc %d, %r" % (rc, out))
    rc, out = check(head + 'chap = "u:samesecret1234"; mutual_chap = "t:samesecret1234"; } );\n')
    if rc != 2 or "same secret" not in out:
        raise CaseFail("same secret both ways: rc %d, %r" % (rc, out))
    rc, out = check(head + 'chap = "u:averylongsecret1"; } );\n', 0o644)
    if rc != 0 or "warning:" not in out or "mode 0644" not in out:
        raise CaseFail("0644 config with a secret: rc %d, %r" % (rc, out))
    rc, out = check(head + 'chap = "u:averylongsecret1"; } );\n', 0o600)
    if rc != 0 or "warning" in out:
        raise CaseFail("0600 config with a secret: rc %d, %r" % (rc, out))
    loose = os.path.join(WORK, "loose.secret")
    with open(loose, "w") as f:
        f.write("averylongsecret1\n")
    os.chmod(loose, 0o644)
    rc, out = check(head + 'chap = { user = "u"; secret_file = "%s"; }; } );\n' % loose)
    if rc != 2 or "accessible to others" not in out:
        raise CaseFail("0644 secret file: rc %d, %r" % (rc, out))
    rc, out = check(head + 'chap = "u:x"; } );\nglobal = { allow_short_chap_secrets = true; };\n')
    if rc != 0:
        raise CaseFail("allow_short_chap_secrets: rc %d, %r" % (rc, out))
    return "1-byte and shared secrets refused, 0644 file warned, 0644 secret file refused"


def case_privilege_drop(d):
    if os.geteuid() != 0:
        return "skipped: not root"
    conf = CONF.replace("portals =", 'global = { user = "nobody"; };\nportals =', 1)
    # LeakSanitizer cannot ptrace a process that changed its uid (no longer dumpable)
    e = Iserd(conf=conf, env={"ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0"})
    e.start()
    try:
        hl.set_target_name(hl.IQN)
        uids = gids = None
        with open("/proc/%d/status" % e.proc.pid) as f:
            for line in f:
                if line.startswith("Uid:"):
                    uids = line.split()[1:]
                elif line.startswith("Gid:"):
                    gids = line.split()[1:]
        import pwd
        nobody = pwd.getpwnam("nobody")
        if uids != [str(nobody.pw_uid)] * 4 or gids != [str(nobody.pw_gid)] * 4:
            raise CaseFail("Uid %s Gid %s, expected all %d/%d" %
                           (uids, gids, nobody.pw_uid, nobody.pw_gid))
        with open("/proc/%d/status" % e.proc.pid) as f:
            groups = [l for l in f if l.startswith("Groups:")]
        if groups and groups[0].split()[1:] not in ([], [str(nobody.pw_gid)]):
            raise CaseFail("supplementary groups kept: %s" % groups[0].strip())
        expect_login(e.port, INI_A, "alice", SEC_A)
        c = hl.session(e.port)
        c.close()
    finally:
        err = e.stop()
        e.cleanup()
    if err:
        raise CaseFail(err)
    return "running as uid %d, CHAP login and I/O work" % nobody.pw_uid


def main():
    if not os.environ.get("ISERD"):
        print("SKIP: ISERD not set")
        return 77
    try:
        return hl.run("test_creds", [
            ("per-initiator CHAP credentials", case_per_initiator),
            ("strongest CHAP algorithm offered", case_strongest_alg),
            ("InitiatorName with a newline cannot forge log lines", case_log_injection),
            ("--chap secret scrubbed from /proc/PID/cmdline", case_cmdline_scrub),
            ("--check refuses weak secrets, warns about loose modes", case_check),
            ("privilege drop to nobody (root only)", case_privilege_drop),
        ], setup=lambda: Iserd(conf=CONF))
    finally:
        subprocess.run(["rm", "-rf", WORK])


if __name__ == "__main__":
    sys.exit(main())
