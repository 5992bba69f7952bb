#!/usr/bin/env python3
"""iserd's systemd readiness protocol (iserd.service is Type=notify).

Starts iserd (env ISERD) with NOTIFY_SOCKET naming a datagram socket of this
script, as systemd does for a Type=notify unit, and checks:
  - READY=1 arrives, and only once the portal accepts connections;
  - nothing but STATUS= comes before it;
  - SIGTERM gives STOPPING=1, then iserd exits 0;
  - with JOURNAL_STREAM naming iserd's stderr (as systemd sets it when stderr
    is the journal), log lines carry <N> syslog priorities and no timestamp;
    without it they start with the time.
Exits 1 on a failure, 77 when iserd is not available.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

ISERD = os.environ.get("ISERD", "")
HOST = "127.0.0.1"
fails = 0


def check(ok, desc):
    global fails
    print(("PASS: " if ok else "FAIL: ") + desc, flush=True)
    if not ok:
        fails += 1


def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    p = s.getsockname()[1]
    s.close()
    return p


def listening(port):
    try:
        socket.create_connection((HOST, port), timeout=0.5).close()
        return True
    except OSError:
        return False


def recv_all(sock, until, timeout):
    """Messages until one contains `until` (or the timeout)."""
    msgs = []
    end = time.time() + timeout
    while time.time() < end:
        sock.settimeout(max(0.05, end - time.time()))
        try:
            m = sock.recv(4096).decode("ascii", "replace")
        except socket.timeout:
            break
        msgs.append(m)
        if until in m.split("\n"):
            break
    return msgs


def run(journal):
    tmp = tempfile.mkdtemp(prefix="iserd-notify.")
    path = os.path.join(tmp, "notify.sock")
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(path)
    port = free_port()
    log_path = os.path.join(tmp, "iserd.log")
    log = open(log_path, "wb")
    env = dict(os.environ, NOTIFY_SOCKET=path)
    env.pop("JOURNAL_STREAM", None)
    if journal:
        st = os.fstat(log.fileno())
        env["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino)
    p = subprocess.Popen([ISERD, "--portal", "tcp://%s:%d" % (HOST, port), "--lun", "ram:16M"]
                         + (["--reactors", os.environ["ISD_TEST_REACTORS"]] if os.environ.get("ISD_TEST_REACTORS") else []),
                         stdout=log, stderr=log, env=env)
    what = "journal" if journal else "terminal"
    try:
        msgs = recv_all(ns, "READY=1", 30)
        ready = any("READY=1" in m.split("\n") for m in msgs)
        check(ready, "%s: READY=1 sent" % what)
        if ready:
            # the portal listened before READY=1 was sent
            check(listening(port), "%s: the portal accepts connections at READY=1" % what)
            before = [line for m in msgs[:-1] for line in m.split("\n")]
            check(all(x.startswith("STATUS=") for x in before),
                  "%s: nothing but STATUS= before READY=1 (%r)" % (what, before))
        p.send_signal(signal.SIGTERM)
        msgs = recv_all(ns, "STOPPING=1", 10)
        check(any("STOPPING=1" in m.split("\n") for m in msgs), "%s: STOPPING=1 on SIGTERM" % what)
        rc = p.wait(timeout=15)
        check(rc == 0, "%s: iserd exited 0 (%d)" % (what, rc))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        log.close()
        ns.close()
    with open(log_path, "rb") as f:
        text = f.read().decode("utf-8", "replace")
    lines = [x for x in text.split("\n") if x]
    if journal:
        check(bool(lines) and all(re.match(r"<[3467]>(error|warn|info|debug)\b", x) for x in lines),
              "journal: every line has a <N> priority prefix and no timestamp")
        check(any(x.startswith("<6>info: ready") for x in lines), "journal: '<6>info: ready'")
    else:
        check(bool(lines) and all(re.match(r"\d\d:\d\d:\d\d\.\d\d\d ", x) for x in lines),
              "terminal: every line starts with the time, no prefix")
    if fails:
        sys.stdout.write("".join("    | %s\n" % x for x in lines[-30:]))
    for f in os.listdir(tmp):
        os.unlink(os.path.join(tmp, f))
    os.rmdir(tmp)


def main():
    if not ISERD or not os.access(ISERD, os.X_OK):
        print("SKIP: iserd not found (set ISERD)")
        return 77
    try:
        libs = subprocess.run(["ldd", ISERD], capture_output=True, text=True).stdout
    except OSError:
        libs = "libsystemd"
    if "libsystemd" not in libs:
        print("SKIP: this iserd was built without libsystemd (no sd_notify)")
        return 77
    run(journal=False)
    run(journal=True)
    print("%d failure(s)" % fails if fails else "all sd_notify checks passed")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
