#!/usr/bin/env python3
"""Statistics and the metrics listener against a real iserd (python3 stdlib only).

Starts iserd with a RAM LUN and --metrics-listen on a free loopback port, runs
`iserinit bench` (writes, then reads, one with two sessions) and checks that
the LUN's read/write command and byte counters in GET /metrics equal what
bench reports it did, exactly; that a session shows up while bench runs; that
nothing is left in flight; and that `promtool check metrics` accepts the text.
A second run of the same load, with the block cache warm, makes (almost) no
malloc calls: iserd_block_cache_malloc_calls_total grows by less than one per
thousand I/Os.
Then the listener's answers to other paths and methods. At the end iserd gets
SIGTERM and must exit 0 without a sanitizer report.

Exits 1 on a failure, 77 when iserd, iserinit or promtool is missing (the other
checks still run first when only promtool is).
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "hostile"))

import hostile_lib as hl  # noqa: E402

IQN = "iqn.2026-11.org.iserd:metrics"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http(port, req, timeout=10.0):
    """Sends req, reads to EOF; returns (status code, headers text, body bytes)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(req)
        out = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
    finally:
        s.close()
    head, _, body = out.partition(b"\r\n\r\n")
    code = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.") else -1
    return code, head.decode("latin-1"), body


def scrape(port):
    code, head, body = http(port, b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
    if code != 200:
        raise hl.CaseFail("GET /metrics: status %d" % code)
    if "Content-Type: text/plain; version=0.0.4" not in head:
        raise hl.CaseFail("GET /metrics: content type: %r" % head)
    return body.decode("utf-8")


def samples(text):
    """{'name{labels}': value} of every sample line."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, val = line.rpartition(" ")
        out[key] = float(val)
    return out


def find_iserinit():
    for d in (os.environ.get("ISERD_BUILD", ""), os.path.dirname(os.environ.get("ISERD", ""))):
        p = os.path.join(d, "iserinit") if d else ""
        if p and os.access(p, os.X_OK):
            return p
    return None


def bench(iserinit, url, *args):
    argv = [iserinit, "bench", "--json"] + list(args) + [url]
    print("running: %s" % " ".join(argv), flush=True)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise hl.CaseFail("bench exited %d: %s" % (r.returncode, r.stderr.strip()))
    res = json.loads(r.stdout)
    if res["errors"] != 0 or res["ios"] == 0:
        raise hl.CaseFail("bench: %s" % r.stdout)
    return res


def main():
    iserinit = find_iserinit()
    promtool = shutil.which("promtool") or ("/usr/bin/promtool"
                                           if os.access("/usr/bin/promtool", os.X_OK) else None)
    mport = free_port()
    d = hl.Iserd(args=["--metrics-listen", "127.0.0.1:%d" % mport], luns=("ram:32M",), iqn=IQN)
    if not d.available() or iserinit is None:
        print("SKIP: iserd or iserinit not found (ISERD, ISERD_BUILD)")
        return 77
    d.start()
    url = "iscsi://127.0.0.1:%d/%s/0" % (d.port, IQN)
    lun = 'target="%s",lun="0"' % IQN
    failures = []

    def check(label, fn):
        t0 = time.monotonic()
        try:
            detail = fn() or ""
            ok = True
        except (hl.CaseFail, OSError, ValueError, KeyError, subprocess.SubprocessError) as e:
            ok, detail = False, "%s: %s" % (type(e).__name__, e)
        if ok and not d.alive():
            ok, detail = False, "iserd died"
        print("%s: %s: %s [%.1fs]" % ("PASS" if ok else "FAIL", label, detail,
                                      time.monotonic() - t0), flush=True)
        if not ok:
            failures.append(label)

    state = {}

    def before():
        s = samples(scrape(mport))
        for dr in ("read", "write"):
            if s['iserd_lun_commands_total{%s,dir="%s"}' % (lun, dr)] != 0:
                raise hl.CaseFail("LUN counters not 0 at start")
        return "LUN counters start at 0"

    def run_benches():
        w = bench(iserinit, url, "--rw", "randwrite", "--bs", "4K", "--qd", "8", "--time", "2")
        # reads over two sessions, and a session listed while they run
        argv = [iserinit, "bench", "--json", "--rw", "read", "--bs", "64K", "--qd", "4",
                "--sessions", "2", "--time", "3", url]
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)
        mid = samples(scrape(mport))
        out, err = p.communicate(timeout=120)
        if p.returncode != 0:
            raise hl.CaseFail("bench exited %d: %s" % (p.returncode, err.strip()))
        r = json.loads(out)
        if r["errors"] != 0 or r["ios"] == 0:
            raise hl.CaseFail("bench: %s" % out)
        sess = [k for k in mid if k.startswith("iserd_session_info{") and
                'target="%s"' % IQN in k and 'discovery="false"' in k]
        if len(sess) < 2 or mid["iserd_sessions"] < 2:
            raise hl.CaseFail("sessions while bench ran: %s" % sess)
        reads = sum(v for k, v in mid.items()
                    if k.startswith("iserd_session_commands_total{") and 'dir="read"' in k)
        if reads <= 0:
            raise hl.CaseFail("no session read commands while bench ran")
        state.update(w=w, r=r)
        return "write %d I/Os %d bytes, read %d I/Os %d bytes; %d sessions seen" % (
            w["ios"], w["bytes"], r["ios"], r["bytes"], len(sess))

    def exact():
        text = scrape(mport)
        state["text"] = text
        s = samples(text)
        w, r = state["w"], state["r"]
        want = {
            'iserd_lun_commands_total{%s,dir="write"}' % lun: w["ios"],
            'iserd_lun_bytes_total{%s,dir="write"}' % lun: w["bytes"],
            'iserd_lun_commands_total{%s,dir="read"}' % lun: r["ios"],
            'iserd_lun_bytes_total{%s,dir="read"}' % lun: r["bytes"],
            'iserd_lun_in_flight{%s}' % lun: 0,
            'iserd_target_in_flight{target="%s"}' % IQN: 0,
        }
        for k, v in want.items():
            if s.get(k) != v:
                raise hl.CaseFail("%s = %s, bench says %s" % (k, s.get(k), v))
        cmds = sum(s['iserd_lun_commands_total{%s,dir="%s"}' % (lun, dr)]
                   for dr in ("read", "write", "other"))
        if s['iserd_lun_latency_seconds_count{%s}' % lun] != cmds:
            raise hl.CaseFail("latency count %s != commands %s" %
                              (s['iserd_lun_latency_seconds_count{%s}' % lun], cmds))
        if s['iserd_lun_latency_seconds_bucket{%s,le="+Inf"}' % lun] != cmds:
            raise hl.CaseFail("+Inf bucket != commands")
        for dr in ("read", "write"):
            if s['iserd_target_commands_total{target="%s",dir="%s"}' % (IQN, dr)] != \
                    s['iserd_lun_commands_total{%s,dir="%s"}' % (lun, dr)]:
                raise hl.CaseFail("target %s commands differ from its only LUN" % dr)
        for k, v in s.items():
            if k.startswith("iserd_lun_errors_total{") and \
                    'class="unit_attention"' not in k and v != 0:
                raise hl.CaseFail("%s = %s" % (k, v))
        return "LUN 0 counters equal bench's totals exactly"

    def prom():
        if promtool is None:
            state["skip"] = True
            return "promtool not installed: not checked"
        r = subprocess.run([promtool, "check", "metrics"], input=state["text"],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0 or r.stdout.strip() or r.stderr.strip():
            raise hl.CaseFail("promtool: rc %d: %s %s" % (r.returncode, r.stdout, r.stderr))
        return "promtool check metrics: clean"

    def steady_state():
        # the same load twice: the second run finds the block cache warm, so its
        # data path asks malloc for nothing (a new session's login does not use it)
        def both():
            n = 0
            for rw in ("randwrite", "randread"):
                n += bench(iserinit, url, "--rw", rw, "--bs", "4K", "--qd", "16",
                           "--time", "1")["ios"]
            return n
        both()
        m0 = samples(scrape(mport))["iserd_block_cache_malloc_calls_total"]
        ios = both()
        m1 = samples(scrape(mport))["iserd_block_cache_malloc_calls_total"]
        if ios < 1000 or (m1 - m0) * 1000 > ios:
            raise hl.CaseFail("%d block-cache malloc calls over %d I/Os" % (m1 - m0, ios))
        return "%d block-cache malloc calls over %d I/Os once warm" % (m1 - m0, ios)

    def other_requests():
        for req, want in ((b"GET / HTTP/1.1\r\n\r\n", 404),
                          (b"GET /metrics/x HTTP/1.0\r\n\r\n", 404),
                          (b"PUT /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405),
                          (b"GET /metrics HTTP/1.0\r\n\r\n", 200)):
            code, _, _ = http(mport, req)
            if code != want:
                raise hl.CaseFail("%r: %d, want %d" % (req, code, want))
        return "404, 405, 200 over HTTP/1.0"

    check("counters at start", before)
    check("bench writes and reads", run_benches)
    if "w" in state:
        check("LUN counters equal bench", exact)
    if "text" in state:
        check("promtool", prom)
    check("steady state allocates nothing", steady_state)
    check("other paths and methods", other_requests)
    err = d.stop()
    if err:
        print("FAIL: shutdown: %s" % err)
        failures.append("shutdown")
    else:
        print("PASS: iserd exited 0 on SIGTERM, no sanitizer report")
    if failures:
        print("----- iserd log (last 80 lines) -----")
        print("\n".join(d.read_log().splitlines()[-80:]))
    d.cleanup()
    print("test_metrics: %d failed" % len(failures))
    if failures:
        return 1
    return 77 if state.get("skip") else 0


if __name__ == "__main__":
    sys.exit(main())
