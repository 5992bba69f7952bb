"""Shared pieces of the hostile-client suite (python3 stdlib only).

Each tests/hostile/test_*.py starts its own iserd on a free 127.0.0.1 port
(env ISERD), attacks it as a hostile peer would, and checks that iserd stays
alive, stays within its documented memory bound, keeps serving a well-behaved
session, and that its counters return to zero afterwards.

The raw PDU client (Conn) and the process wrapper come from
tests/integration/test_malformed.py; this module adds what the hostile tests
need on top: extra iserd arguments or a config file, RSS and fd readings,
the SIGUSR1 stats line parsed as JSON, and a small case runner that prints
PASS/FAIL per case and a closing 'N passed, N failed' line.
"""

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import test_malformed as tm  # noqa: E402  (the raw iSCSI client)

from test_malformed import (  # noqa: E402,F401
    BLOCK, HOST, OP_ASYNC, OP_DATA_IN, OP_DATA_OUT, OP_LOGIN, OP_LOGIN_RSP, OP_LOGOUT,
    OP_NOP_IN, OP_NOP_OUT, OP_R2T, OP_REJECT, OP_SCSI_CMD, OP_SCSI_RSP, OP_TEXT, OP_TMF,
    RSVD, PDU, CaseFail, Closed, Conn, Timeout, bhs, kv, lun_field, pad4, parse_kv)

IQN = "iqn.2026-11.org.iserd:hostile"
INI_BASE = "iqn.2026-11.org.iserd:hostile-initiator"


def set_target_name(iqn):
    """The raw client's default TargetName (Conn.login uses test_malformed.IQN)."""
    tm.IQN = iqn


class Iserd:
    """One iserd process on a free loopback port, with its log in a temp dir."""

    def __init__(self, args=(), conf=None, luns=("ram:16M",), iqn=IQN, env=None):
        self.binary = os.environ.get("ISERD", "")
        if not self.binary:
            build = os.environ.get("ISERD_BUILD", "")
            self.binary = os.path.join(build, "iserd") if build else ""
        self.tmp = tempfile.mkdtemp(prefix="iserd-hostile.")
        self.args = list(args)
        self.conf = conf
        self.luns = list(luns)
        self.iqn = iqn
        self.extra_env = dict(env or {})
        self.proc = None
        self.port = None
        self.log = None
        set_target_name(iqn)

    def available(self):
        return bool(self.binary) and os.access(self.binary, os.X_OK)

    def start(self, timeout=20):
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        env.update(self.extra_env)
        for attempt in range(8):
            port = random.randrange(4000, 6000)
            if tm.Target.listening(port):
                continue
            self.log = os.path.join(self.tmp, "iserd-%d.log" % attempt)
            argv = [self.binary]
            if self.conf is not None:
                path = os.path.join(self.tmp, "iserd.conf")
                with open(path, "w") as f:
                    f.write(self.conf.replace("@PORT@", str(port)))
                os.chmod(path, 0o600)
                argv += ["-c", path]
            else:
                argv += ["--portal", "tcp://%s:%d" % (HOST, port), "--target", self.iqn]
                for lun in self.luns:
                    argv += ["--lun", lun]
            argv += self.args
            reactors = os.environ.get("ISD_TEST_REACTORS", "")
            if reactors and "--reactors" not in argv:
                # the same tests on several reactors (tests/lib/harness.sh does the same)
                argv += ["--reactors", reactors]
            if "--control-socket" not in argv and "control_socket" not in (self.conf or ""):
                # its own control socket, never the system's
                argv += ["--control-socket", os.path.join(self.tmp, "control.sock")]
            print("starting: %s" % " ".join(argv), flush=True)
            with open(self.log, "wb") as logf:
                self.proc = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT,
                                             env=env)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                if tm.Target.listening(port):
                    self.port = port
                    return self
                time.sleep(0.1)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError("iserd did not listen within %d s" % timeout)
            if "in use" in self.read_log():
                continue
            raise RuntimeError("iserd exited with %d before listening:\n%s" %
                               (self.proc.returncode, self.read_log()[-4000:]))
        raise RuntimeError("no free port")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def read_log(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except (OSError, TypeError):
            return ""

    def rss_kib(self):
        """Resident set size of iserd, in KiB (VmRSS)."""
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def hwm_kib(self):
        """Peak resident set size of iserd, in KiB (VmHWM)."""
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return 0

    def fds(self):
        return len(os.listdir("/proc/%d/fd" % self.proc.pid))

    def stats(self, timeout=5.0):
        """Sends SIGUSR1 and returns the JSON object of the new 'current stats' line."""
        before = self.read_log().count("current stats ")
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = [l for l in self.read_log().splitlines() if "current stats " in l]
            if len(lines) > before:
                return json.loads(lines[-1].split("current stats ", 1)[1])
            time.sleep(0.05)
        raise CaseFail("no stats line within %.0f s of SIGUSR1" % timeout)

    def wait_stats(self, pred, timeout=10.0, what="counters"):
        """Polls stats until pred(stats) is true; returns them or raises CaseFail."""
        deadline = time.monotonic() + timeout
        st = None
        while time.monotonic() < deadline:
            st = self.stats()
            if pred(st):
                return st
            time.sleep(0.2)
        raise CaseFail("%s never reached: last stats %s" % (what, json.dumps(st)))

    def stop(self):
        """Returns an error string, or None when iserd exited 0 within 10 s of SIGTERM
        with no sanitizer report."""
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

    def cleanup(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


_ini_n = [0]


def initiator_name():
    _ini_n[0] += 1
    return "%s-%d-%d" % (INI_BASE, os.getpid(), _ini_n[0])


def session(port, iname=None, timeout=5.0, **kw):
    """A logged-in normal session past the first UNIT ATTENTION."""
    c = Conn(port, timeout)
    cls, det, _ = c.login(iname or initiator_name(), **kw)
    if cls != 0:
        c.close()
        raise CaseFail("login failed with status 0x%02x%02x" % (cls, det))
    c.tur()
    return c


def run(name, cases, setup=None):
    """Runs [(label, fn(iserd)), ...] against one iserd made by setup() (an Iserd,
    not yet started). Each case must leave a good session working. Prints
    PASS/FAIL per case and '<name>: N passed, N failed' last; returns the exit code
    (77 when iserd is not available)."""
    d = setup() if setup else Iserd()
    if not d.available():
        print("SKIP: iserd binary not found (ISERD)")
        return 77
    failures = []
    passed = 0
    try:
        d.start()
    except RuntimeError as e:
        print("FAIL: %s" % e)
        print("0 passed, 1 failed")
        return 1
    for label, fn in cases:
        t0 = time.monotonic()
        try:
            detail = fn(d) or ""
            ok = True
        except (CaseFail, Timeout, Closed, OSError, ValueError) as e:
            detail, ok = "%s: %s" % (type(e).__name__, e), False
            traceback.print_exc()
        if ok and not d.alive():
            ok, detail = False, "iserd died (status %s)" % d.proc.returncode
        print("%s: %s: %s [%.1fs]" % ("PASS" if ok else "FAIL", label, detail,
                                      time.monotonic() - t0), flush=True)
        if ok:
            passed += 1
        else:
            failures.append(label)
        if not d.alive():
            break
    err = d.stop()
    if err:
        print("FAIL: shutdown: %s" % err)
        failures.append("shutdown")
    else:
        print("PASS: iserd exited 0 on SIGTERM, no sanitizer report")
        passed += 1
    if failures:
        print("----- iserd log (last 150 lines) -----")
        print("\n".join(d.read_log().splitlines()[-150:]))
        print("----- end of log -----")
    d.cleanup()
    print("%s: %d passed, %d failed" % (name, passed, len(failures)))
    return 1 if failures else 0
