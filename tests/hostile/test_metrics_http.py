#!/usr/bin/env python3
"""Hostile clients of the metrics listener (--metrics-listen), python3 stdlib only.

Junk instead of a request, a NUL in the request line, a request head past the
8 KiB bound, a head that never ends, more clients than the 8 allowed at once,
clients that connect and say nothing until the 10 s idle timer closes them,
and a client that asks and never reads the answer. After each, the listener
must still answer GET /metrics with 200, iserd must hold no more descriptors
than before, and the iSCSI side must keep serving a session.
"""

import os
import shutil
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import hostile_lib as hl  # noqa: E402

MAX_CLIENTS = 8
IDLE_S = 10


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


MPORT = free_port()


def connect():
    return socket.create_connection(("127.0.0.1", MPORT), timeout=15)


def status_of(s):
    """Reads to EOF; the status code of the answer, or None when none came."""
    out = b""
    while True:
        try:
            d = s.recv(65536)
        except ConnectionResetError:
            break
        if not d:
            break
        out += d
    s.close()
    if not out.startswith(b"HTTP/1."):
        return None
    return int(out.split(b" ", 2)[1])


def ask(req):
    s = connect()
    s.sendall(req)
    return status_of(s)


def still_serves(d, fds_before=None):
    code = ask(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    if code != 200:
        raise hl.CaseFail("GET /metrics afterwards: %s" % code)
    c = hl.session(d.port)
    c.close()
    if fds_before is not None:
        deadline = time.monotonic() + 5
        while d.fds() > fds_before and time.monotonic() < deadline:
            time.sleep(0.1)
        if d.fds() > fds_before:
            raise hl.CaseFail("iserd holds %d fds, %d before" % (d.fds(), fds_before))


def case_junk(d):
    fds = d.fds()
    for req, want in ((b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64) +
                       b"\r\n\r\n", 400),                       # a TLS hello, more or less
                      (b"GET /metrics\x00 HTTP/1.1\r\n\r\n", 400),
                      (b"GET\r\n\r\n", 400),
                      (b"\r\n\r\n", 400),
                      (b"GET /metrics HTTP/9.9\r\n\r\n", 400),
                      (b"GET http://x/metrics HTTP/1.1\r\n\r\n", 400),
                      (b"DELETE /metrics HTTP/1.1\r\n\r\n", 405)):
        code = ask(req)
        if code != want:
            raise hl.CaseFail("%r: %s, want %d" % (req[:30], code, want))
    still_serves(d, fds)
    return "400 for junk, 405 for another method"


def case_oversized(d):
    fds = d.fds()
    s = connect()
    try:
        s.sendall(b"GET /metrics HTTP/1.1\r\n" + b"X-Long: " + b"a" * 20000 + b"\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    # the rest is read and dropped after the answer, so the answer is not lost to a reset
    code = status_of(s)
    if code != 431:
        raise hl.CaseFail("oversized head: %s" % code)
    # a head that never ends, fed slowly: bounded by the same 8 KiB
    s = connect()
    for _ in range(9):
        try:
            s.sendall(b"X: " + b"b" * 1021)
        except (BrokenPipeError, ConnectionResetError):
            break
    code = status_of(s)
    if code != 431:
        raise hl.CaseFail("endless head: %s" % code)
    still_serves(d, fds)
    return "431 past 8 KiB"


def case_too_many(d):
    fds = d.fds()
    held = [connect() for _ in range(MAX_CLIENTS)]
    time.sleep(0.3)
    extra = [connect() for _ in range(20)]
    turned = sum(1 for s in extra if status_of(s) == 503)
    if turned != len(extra):
        raise hl.CaseFail("%d of %d clients over the limit got 503" % (turned, len(extra)))
    if d.fds() > fds + MAX_CLIENTS:
        raise hl.CaseFail("%d fds with %d clients held, %d before" %
                          (d.fds(), MAX_CLIENTS, fds))
    for s in held:
        s.close()
    time.sleep(0.3)
    still_serves(d, fds)
    return "20 clients over the limit turned away with 503"


def case_idle(d):
    fds = d.fds()
    held = [connect() for _ in range(MAX_CLIENTS)]
    held[0].sendall(b"GET /metrics HTTP/1.1\r\n")          # a head that stops half way
    time.sleep(0.3)
    if ask(b"GET /metrics HTTP/1.1\r\n\r\n") != 503:
        raise hl.CaseFail("a ninth client was not turned away")
    t0 = time.monotonic()
    for s in held:
        s.settimeout(IDLE_S + 10)
        if s.recv(100) != b"":
            raise hl.CaseFail("an idle client got an answer")
    waited = time.monotonic() - t0
    if waited < IDLE_S - 1.5:
        raise hl.CaseFail("idle clients closed after %.1f s" % waited)
    for s in held:
        s.close()
    still_serves(d, fds)
    return "idle clients closed after %.1f s" % waited


def case_no_reader(d):
    fds = d.fds()
    # a client that asks and does not read: the answer waits in the socket buffers
    # (or, when they are full, for the idle timer) while others are served
    s = connect()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
    time.sleep(0.5)
    still_serves(d)
    s.settimeout(IDLE_S + 10)
    got = 0
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            got += len(b)
    except (ConnectionResetError, socket.timeout):
        pass
    s.close()
    still_serves(d, fds)
    return "a client that does not read is not a problem (%d bytes in the end)" % got


def case_evil_initiator_name(d):
    # InitiatorName is whatever the peer sent: quotes, backslashes, a newline, an
    # escape byte must not break the exposition
    name = 'iqn.2026-11.evil:a"b\\c\nd\x1be\u00e9'
    c = hl.session(d.port, iname=name)
    try:
        code = None
        s = connect()
        s.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
        out = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
        s.close()
        code = int(out.split(b" ", 2)[1])
        text = out.partition(b"\r\n\r\n")[2].decode("utf-8")
    finally:
        c.close()
    if code != 200:
        raise hl.CaseFail("GET /metrics: %s" % code)
    want = 'initiator="iqn.2026-11.evil:a\\"b\\\\c\\nd\\\\x1be\u00e9"'
    if want not in text:
        raise hl.CaseFail("escaped name %r not in %r" % (want, [l for l in text.splitlines()
                                                             if "evil" in l][:2]))
    promtool = shutil.which("promtool")
    if promtool:
        r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=60)
        if r.returncode != 0:
            raise hl.CaseFail("promtool: %s %s" % (r.stdout, r.stderr))
    still_serves(d)
    return "label escaped%s" % (", promtool accepts it" if promtool else "")


if __name__ == "__main__":
    setup = lambda: hl.Iserd(args=["--metrics-listen", "127.0.0.1:%d" % MPORT])  # noqa: E731
    sys.exit(hl.run("test_metrics_http", [
        ("junk requests", case_junk),
        ("oversized request head", case_oversized),
        ("too many clients", case_too_many),
        ("idle clients", case_idle),
        ("client that does not read", case_no_reader),
        ("hostile initiator name", case_evil_initiator_name),
    ], setup))
