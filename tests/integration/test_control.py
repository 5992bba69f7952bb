#!/usr/bin/env python3
"""The control socket and iserctl against a live iserd, with I/O running.

1. Live changes under load. iserd starts from a config file with three targets;
   a libiscsi writer (tests/integration/isd_chaoswriter.c) rewrites a range of
   target A's LUN 0 with up to 8 commands in flight for the whole run. While it
   runs, through iserctl: a LUN is added to A, target B (with a session of its
   own, logged in by a second writer) is removed with --force, A's ACL is
   changed, target C's CHAP secret for one initiator is rotated, and the config
   file is edited and reloaded with SIGHUP (one target added, one LUN resized).
   The A writer must never see an error, its data must verify afterwards
   (isd_chaoswriter check), and new logins must see the new state: the new LUN,
   the new target, the old secret refused and the new one accepted, an
   initiator outside the ACL refused.
2. Every method through iserctl (tables and --json), and `config save` then a
   restart from the saved file reproduces the same targets, LUNs, ACLs,
   portals and bindings.
3. Bad requests on the raw socket (not JSON, unknown method, wrong types,
   unknown parameters, oversized, a batch of junk, too many clients): each gets
   a JSON-RPC error and nothing changes.

Exits 0 when every check passed, 1 otherwise, 77 when a tool is missing.
"""

import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HOST = "127.0.0.1"
PFX = "iqn.2026-11.org.iserd:ctl-"
TA, TB, TC, TD, TE = (PFX + x for x in ("a", "b", "c", "d", "e"))
WRITER_INI = "iqn.2026-11.test:chaos-1"   # isd_chaoswriter logs in as chaos-WRITER
BLOCKS = 4096

results = []


def check(desc, ok, detail=""):
    results.append(bool(ok))
    print("%s: %s" % ("PASS" if ok else "FAIL", desc), flush=True)
    if not ok and detail:
        for line in str(detail).splitlines()[-30:]:
            print("    | " + line)
    return ok


def skip(why):
    print("SKIP: " + why)
    sys.exit(77)


def free_port():
    for _ in range(50):
        p = random.randrange(4000, 9000)
        with socket.socket() as s:
            try:
                s.bind((HOST, p))
                return p
            except OSError:
                continue
    raise RuntimeError("no free port")


def listening(port):
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((HOST, port)) == 0


class Daemon:
    def __init__(self, iserd, tmp, conf_path, sock):
        self.iserd, self.tmp, self.conf, self.sock = iserd, tmp, conf_path, sock
        self.proc = None
        self.log = None
        self.n = 0

    def start(self, port):
        self.n += 1
        self.log = os.path.join(self.tmp, "iserd-%d.log" % self.n)
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        with open(self.log, "wb") as lf:
            self.proc = subprocess.Popen([self.iserd, "-c", self.conf]
                                         + (["--reactors", os.environ["ISD_TEST_REACTORS"]] if os.environ.get("ISD_TEST_REACTORS") else []), stdout=lf,
                                         stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.proc.poll() is None:
            if listening(port) and os.path.exists(self.sock):
                return True
            time.sleep(0.1)
        return False

    def read_log(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return -9


class Ctl:
    def __init__(self, binary, sock):
        self.binary, self.sock = binary, sock

    def run(self, *args, env=None):
        e = dict(os.environ)
        if env:
            e.update(env)
        return subprocess.run([self.binary, *args, "--socket", self.sock], capture_output=True,
                              text=True, timeout=60, env=e)

    def json(self, *args):
        r = self.run("--json", *args)
        if r.returncode != 0:
            raise RuntimeError("iserctl %s: %s" % (" ".join(args), r.stderr.strip()))
        return json.loads(r.stdout) if r.stdout.strip() else None

    def ok(self, desc, *args, expect=0, want=None, env=None):
        r = self.run(*args, env=env)
        good = r.returncode == expect and (want is None or want in r.stdout + r.stderr)
        return check(desc, good, "exit %d\n%s%s" % (r.returncode, r.stdout, r.stderr)), r


def replaced(ctl, ini_suffix, old, wait=15):
    """True once the session old is gone: none of ini_suffix is listed, or one with
    another TSIH or a younger age (a new login) is."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        now = [s for s in ctl.json("session", "list") if s["initiator"].endswith(ini_suffix)]
        if not now or all(s["tsih"] != old["tsih"] or s["age_ms"] < old["age_ms"] for s in now):
            return True
        time.sleep(0.5)
    return False


def raw(sock, data, read=True, timeout=10, half_close=False):
    """Sends bytes on the control socket, returns the answers (list of parsed JSON)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(sock)
    try:
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
    except (BrokenPipeError, ConnectionResetError):
        pass
    buf = b""
    if read:
        try:
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        except (socket.timeout, ConnectionResetError):
            pass
    s.close()
    return [json.loads(l) for l in buf.decode(errors="replace").splitlines() if l.strip()]


def rpc(sock, method, params=None, rid=1):
    req = {"jsonrpc": "2.0", "method": method, "id": rid}
    if params is not None:
        req["params"] = params
    a = raw(sock, (json.dumps(req) + "\n").encode())
    return a[0] if a else None


def config_text(port, sock, extra_targets="", lun_b_size="16M"):
    return """
global = {
	control_socket = "%(sock)s";
	nop_interval = 0;
};
portals = ( "tcp://127.0.0.1:%(port)d" );
targets = (
	{ name = "%(ta)s"; luns = ( { number = 0; backing = "ram:8M"; } ); },
	{ name = "%(tb)s"; luns = ( { number = 0; backing = "ram:%(bsz)s"; } ); },
	{ name = "%(tc)s";
	  luns = ( { number = 0; backing = "ram:4M"; } );
	  acl = ( { initiator = "iqn.2026-11.test:chap-user";
	            chap = { user = "cu"; secret = "first-secret-0001"; }; } );
	}%(extra)s
);
""" % {"sock": sock, "port": port, "ta": TA, "tb": TB, "tc": TC, "extra": extra_targets,
       "bsz": lun_b_size}


def main():
    iserd = os.environ.get("ISERD", "")
    build = os.environ.get("ISERD_BUILD", os.path.dirname(iserd))
    src = os.environ.get("ISERD_SRC", os.path.join(os.path.dirname(__file__), "..", ".."))
    iserctl = os.path.join(build, "iserctl")
    if not (iserd and os.access(iserd, os.X_OK) and os.access(iserctl, os.X_OK)):
        skip("iserd or iserctl not built")
    for tool in ("gcc", "iscsi-inq", "iscsi-ls"):
        if shutil.which(tool) is None:
            skip(tool + " not installed")
    if not os.path.exists("/usr/include/iscsi/iscsi.h"):
        skip("libiscsi-dev not installed")
    tmp = tempfile.mkdtemp(prefix="iserd-control.")
    writer = os.path.join(tmp, "isd_chaoswriter")
    r = subprocess.run(["gcc", "-O1", "-o", writer,
                        os.path.join(src, "tests/integration/isd_chaoswriter.c"), "-liscsi"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stderr)
        skip("cannot build isd_chaoswriter against libiscsi")

    port = free_port()
    sock = os.path.join(tmp, "iserd.sock")
    conf = os.path.join(tmp, "iserd.conf")
    with open(conf, "w") as f:
        f.write(config_text(port, sock))
    os.chmod(conf, 0o600)
    d = Daemon(iserd, tmp, conf, sock)
    ctl = Ctl(iserctl, sock)
    portal = "iscsi://%s:%d" % (HOST, port)
    if not check("iserd starts from a config file and listens on its control socket",
                 d.start(port), d.read_log()):
        return finish(d, tmp)
    st = os.stat(sock)
    check("the control socket is mode 0600", (st.st_mode & 0o777) == 0o600, oct(st.st_mode))

    # ---- 1. live changes with I/O running ------------------------------------------
    wlog = os.path.join(tmp, "writer-a.log")
    wa = subprocess.Popen([writer, "write", "%s/%s/0" % (portal, TA), "1", "0", str(BLOCKS),
                           "8", wlog], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    wb_log = os.path.join(tmp, "writer-b.log")
    wb = subprocess.Popen([writer, "write", "%s/%s/0" % (portal, TB), "2", "0", "1024", "4",
                           wb_log], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    time.sleep(2)
    check("writers on A and B are running", wa.poll() is None and wb.poll() is None)
    sessions = ctl.json("session", "list")
    check("session list shows the two writers' sessions",
          {s["target"] for s in sessions} >= {TA, TB}, json.dumps(sessions, indent=1))

    ctl.ok("iserctl lun add A 1 ram:4M", "lun", "add", TA, "1", "ram:4M")
    r = subprocess.run(["iscsi-inq", "-i", "iqn.2026-11.test:probe",
                        "%s/%s/1" % (portal, TA)], capture_output=True, text=True, timeout=30)
    check("a new login sees A's new LUN 1", r.returncode == 0, r.stdout + r.stderr)

    ok, r = ctl.ok("iserctl target remove B refuses while B has a session", "target", "remove",
                   TB, expect=1)
    ctl.ok("iserctl target remove B --force", "target", "remove", TB, "--force")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(x["target"] == TB for x in
                                              ctl.json("session", "list")):
        time.sleep(0.5)
    check("B's session was logged out and is gone",
          not any(x["target"] == TB for x in ctl.json("session", "list")))
    if wb.poll() is None:
        # libiscsi tries to log in again to a target that is gone: enough
        wb.kill()
        wb.wait()
    check("B is gone from target list", TB not in [t["name"] for t in ctl.json("target", "list")])

    ctl.ok("iserctl acl add A (the writer)", "acl", "add", TA, WRITER_INI)
    ctl.ok("iserctl acl add A (another)", "acl", "add", TA, "iqn.2026-11.test:allowed")
    r = subprocess.run(["iscsi-inq", "-i", "iqn.2026-11.test:not-allowed",
                        "%s/%s/0" % (portal, TA)], capture_output=True, text=True, timeout=30)
    check("an initiator outside A's new ACL is refused", r.returncode != 0, r.stdout + r.stderr)
    r = subprocess.run(["iscsi-inq", "-i", "iqn.2026-11.test:allowed",
                        "%s/%s/0" % (portal, TA)], capture_output=True, text=True, timeout=30)
    check("an initiator in A's new ACL logs in", r.returncode == 0, r.stdout + r.stderr)

    cu_old = "iscsi://cu%%first-secret-0001@%s:%d/%s/0" % (HOST, port, TC)
    cu_new = "iscsi://cu%%second-secret-002@%s:%d/%s/0" % (HOST, port, TC)
    r = subprocess.run(["iscsi-inq", "-i", "iqn.2026-11.test:chap-user", cu_old],
                       capture_output=True, text=True, timeout=30)
    check("C: the first CHAP secret works before the rotation", r.returncode == 0,
          r.stdout + r.stderr)
    ctl.ok("iserctl acl chap C (rotate the secret, from the environment)", "acl", "chap", TC,
           "iqn.2026-11.test:chap-user", "--chap", "cu:env:NEWSECRET",
           env={"NEWSECRET": "second-secret-002"})
    r = subprocess.run(["iscsi-inq", "-i", "iqn.2026-11.test:chap-user", cu_old],
                       capture_output=True, text=True, timeout=30)
    check("C: the old secret is refused after the rotation", r.returncode != 0)
    r = subprocess.run(["iscsi-inq", "-i", "iqn.2026-11.test:chap-user", cu_new],
                       capture_output=True, text=True, timeout=30)
    check("C: the new secret is accepted", r.returncode == 0, r.stdout + r.stderr)

    # reload: the file gets target E and B back with a bigger LUN; A is as before but
    # the file does not have the runtime changes (lun 1, ACL): a reload makes the
    # running state the file's, so A loses LUN 1 and its ACL; the writer's session
    # must survive all of it (ACL changes touch new logins only).
    with open(conf, "w") as f:
        f.write(config_text(port, sock, lun_b_size="32M", extra_targets=""",
	{ name = "%s"; luns = ( { number = 0; backing = "ram:2M"; } ); }""" % TE))
    d.proc.send_signal(signal.SIGHUP)
    time.sleep(2)
    names = [t["name"] for t in ctl.json("target", "list")]
    check("SIGHUP reload: E added, B back, A and C kept", set(names) == {TA, TB, TC, TE}, names)
    luns_a = [l["lun"] for l in ctl.json("lun", "list", TA)]
    check("SIGHUP reload: A has only its file's LUN 0 again", luns_a == [0], luns_a)
    check("the reload is logged", "reloaded:" in d.read_log(), d.read_log()[-2000:])
    r = subprocess.run(["iscsi-inq", "-i", "iqn.2026-11.test:probe", "%s/%s/0" % (portal, TE)],
                       capture_output=True, text=True, timeout=30)
    check("a new login reaches E (added by the reload)", r.returncode == 0, r.stdout + r.stderr)

    # a broken file: nothing changes
    with open(conf, "w") as f:
        f.write("targets = ( { name = \"not an iqn\"; } );\n")
    before = ctl.json("target", "list")
    d.proc.send_signal(signal.SIGHUP)
    time.sleep(1)
    after = ctl.json("target", "list")
    check("SIGHUP with an invalid file changes nothing",
          [t["name"] for t in before] == [t["name"] for t in after])
    check("... and logs one clear error", "reload failed:" in d.read_log(), d.read_log()[-1500:])
    with open(conf, "w") as f:
        f.write(config_text(port, sock, lun_b_size="32M", extra_targets=""",
	{ name = "%s"; luns = ( { number = 0; backing = "ram:2M"; } ); }""" % TE))

    time.sleep(1)
    check("A's writer is still running after every change", wa.poll() is None,
          (wa.stdout.read().decode(errors="replace") if wa.poll() is not None else ""))
    wa.send_signal(signal.SIGTERM)
    wa.wait(20)
    r = subprocess.run([writer, "check", "%s/%s/0" % (portal, TA), "1", "0", str(BLOCKS), wlog],
                       capture_output=True, text=True, timeout=120)
    check("A's data verifies after the changes (isd_chaoswriter check)", r.returncode == 0,
          r.stdout + r.stderr)

    # ---- 2. every method through iserctl --------------------------------------------
    ctl.ok("iserctl status", "status", want="iserd ")
    ctl.ok("iserctl target list (table)", "target", "list", want=TA)
    ctl.ok("iserctl target show", "target", "show", TA, want="LUN")
    dimg = os.path.join(tmp, "d0.img")
    ctl.ok("iserctl target add D with a LUN, an ACL and CHAP", "target", "add", TD, "--alias",
           "scratch", "--lun", "file:%s,size=2M" % dimg, "--lun", "ram:1M", "--allow",
           "iqn.2026-11.test:d-user", "--chap", "duser:d-secret-00001")
    t = ctl.json("target", "show", TD)
    check("target show D: alias, two LUNs, one ACL entry, CHAP user",
          t["alias"] == "scratch" and [l["lun"] for l in t["luns"]] == [0, 1] and
          [a["initiator"] for a in t["acl"]] == ["iqn.2026-11.test:d-user"] and
          t["auth"]["chap_user"] == "duser" and "secret" not in json.dumps(t),
          json.dumps(t, indent=1))
    ctl.ok("iserctl target add D again is refused", "target", "add", TD, expect=1,
           want="EEXIST")
    ctl.ok("iserctl target chap D --clear", "target", "chap", TD, "--clear")
    ctl.ok("iserctl target chap D --chap/--mutual-chap", "target", "chap", TD, "--chap",
           "duser:d-secret-00002", "--mutual-chap", "iserd:d-mutual-0003")
    ctl.ok("iserctl target chap D without credentials is a usage error", "target", "chap", TD,
           expect=2)
    ctl.ok("iserctl lun list", "lun", "list", TD, want="file:")
    ctl.ok("iserctl lun show", "lun", "show", TD, "1", want="ram:1M")
    ctl.ok("iserctl lun resize (file, 4M)", "lun", "resize", TD, "0", "4M")
    l0 = ctl.json("lun", "show", TD, "0")
    check("lun resize: the size is 4 MiB now", l0["size"] == 4 << 20 and
          os.path.getsize(dimg) == 4 << 20, l0)
    ctl.ok("iserctl lun resize of a RAM LUN is refused with the reason", "lun", "resize", TD,
           "1", "2M", expect=1, want="ENOTSUP")
    ctl.ok("iserctl lun read-only on", "lun", "read-only", TD, "1", "on")
    check("lun read-only: shown", ctl.json("lun", "show", TD, "1")["read_only"] is True)
    ctl.ok("iserctl lun read-only off", "lun", "read-only", TD, "1", "off")
    ctl.ok("iserctl lun remove", "lun", "remove", TD, "1")
    ctl.ok("iserctl lun remove of a missing LUN fails", "lun", "remove", TD, "7", expect=1)
    ctl.ok("iserctl acl list", "acl", "list", TD, want="d-user")
    ctl.ok("iserctl acl add with own CHAP", "acl", "add", TD, "iqn.2026-11.test:d-two",
           "--chap", "two:two-secret-0001")
    ctl.ok("iserctl acl chap --clear", "acl", "chap", TD, "iqn.2026-11.test:d-two", "--clear")
    ctl.ok("iserctl acl remove", "acl", "remove", TD, "iqn.2026-11.test:d-two")
    ctl.ok("iserctl discovery chap", "discovery", "chap", "--chap", "disc:disc-secret-001")
    ctl.ok("iserctl discovery chap --clear", "discovery", "chap", "--clear")
    port2 = free_port()
    ctl.ok("iserctl portal add", "portal", "add", "tcp://127.0.0.1:%d" % port2)
    check("the new portal listens", listening(port2))
    ctl.ok("iserctl portal list", "portal", "list", want=str(port2))
    ctl.ok("iserctl target bind D to the new portal", "target", "bind", TD,
           "tcp://127.0.0.1:%d" % port2)
    r = subprocess.run(["iscsi-ls", "-i", "iqn.2026-11.test:probe", "iscsi://%s:%d" % (HOST, port)],
                       capture_output=True, text=True, timeout=30)
    check("SendTargets on the first portal does not list D (bound elsewhere)",
          r.returncode == 0 and TD not in r.stdout and TA in r.stdout, r.stdout + r.stderr)
    r = subprocess.run(["iscsi-inq", "-i", "iqn.2026-11.test:d-user",
                        "iscsi://duser%%d-secret-00002@%s:%d/%s/0" % (HOST, port, TD)],
                       capture_output=True, text=True, timeout=30)
    check("a login to D on a portal it is not bound to is refused", r.returncode != 0)
    sess_writer = subprocess.Popen([writer, "write", "%s/%s/0" % (portal, TA), "3", "0", "64",
                                    "1", os.path.join(tmp, "w3.log")],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    time.sleep(1.5)
    ctl.ok("iserctl session list (table)", "session", "list", want="chaos-3")
    ss = [s for s in ctl.json("session", "list", TA) if s["initiator"].endswith("chaos-3")]
    if check("session list --json has the writer's session with negotiated keys",
             len(ss) == 1 and ss[0]["negotiated"]["MaxBurstLength"] > 0, ss):
        ctl.ok("iserctl connection drop", "connection", "drop", str(ss[0]["tsih"]),
               str(ss[0]["cid"]))
        check("the drop is logged", "connection %d dropped" % ss[0]["cid"] in d.read_log())
        # libiscsi reconnects on its own: the writer goes on over a new login
        check("the writer's old session is gone (it logged in anew)",
              replaced(ctl, "chaos-3", ss[0]), ctl.json("session", "list"))
    if sess_writer.poll() is None:
        sess_writer.kill()
        sess_writer.wait()
    sess_writer = subprocess.Popen([writer, "write", "%s/%s/0" % (portal, TA), "4", "0", "64",
                                    "1", os.path.join(tmp, "w4.log")],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    time.sleep(1.5)
    ss = [s for s in ctl.json("session", "list") if s["initiator"].endswith("chaos-4")]
    if check("a second writer's session is listed", len(ss) == 1, ss):
        ctl.ok("iserctl session logout", "session", "logout", str(ss[0]["tsih"]))
        check("the logged-out session is gone (libiscsi logged in anew)",
              replaced(ctl, "chaos-4", ss[0]), ctl.json("session", "list"))
    if sess_writer.poll() is None:
        sess_writer.kill()
        sess_writer.wait()
    ctl.ok("iserctl stats (table)", "stats", want=TA)
    stats = ctl.json("stats", TA)
    lun0 = stats["targets"][0]["luns"][0]["io"]
    check("stats: A's LUN 0 counted the writer's writes", lun0["write"]["commands"] > 0, lun0)
    ctl.ok("iserctl stats --prometheus", "stats", "--prometheus", want="iserd_")
    ctl.ok("iserctl log --level debug --debug ctl,iscsi", "log", "--level", "info", "--debug",
           "iscsi")
    ctl.ok("iserctl log", "log", want="level")
    ctl.ok("iserctl log --level info", "log", "--level", "info")
    ctl.ok("iserctl call help", "call", "help", want="target.add")
    ctl.ok("iserctl: options after the arguments", "lun", "list", TA, "--json", want="\"lun\"")
    ctl.ok("iserctl portal remove", "portal", "remove", "tcp://127.0.0.1:%d" % port2,
           expect=1)  # D is bound to it alone: refused
    ctl.ok("iserctl target bind D to every portal", "target", "bind", TD)
    ctl.ok("iserctl portal remove (now unbound)", "portal", "remove", "tcp://127.0.0.1:%d" % port2)
    check("the removed portal no longer listens", not listening(port2))

    # ---- save, restart, same state -----------------------------------------------------
    ctl.ok("iserctl target bind D to the first portal",
           "target", "bind", TD, "tcp://127.0.0.1:%d" % port)
    ctl.ok("iserctl acl add D", "acl", "add", TD, "iqn.2026-11.test:saved")
    ctl.ok("iserctl config save (to the -c file)", "config", "save", want=conf)
    r = ctl.json("config", "reload")
    check("iserctl config reload right after a save changes nothing",
          r and r["targets_added"] == 0 and r["targets_removed"] == 0 and
          r["targets_changed"] == 0 and r["luns_changed"] == 0 and r["portals_added"] == 0 and
          r["portals_removed"] == 0 and r["acl_changed"] == 0, r)
    ctl.ok("iserctl config reload (table)", "config", "reload", want="reloaded")

    def state():
        s = {"targets": [], "portals": ctl.json("portal", "list")}
        for t in sorted(ctl.json("target", "list"), key=lambda t: t["name"]):
            full = ctl.json("target", "show", t["name"])
            s["targets"].append({
                "name": full["name"], "alias": full["alias"], "tpgt": full["tpgt"],
                "auth": full["auth"], "portals": full["portals"],
                "acl": full["acl"],
                "luns": [{k: l[k] for k in ("lun", "backing", "size", "block_size", "read_only",
                                            "serial")} for l in full["luns"]]})
        return s

    saved = os.path.join(tmp, "saved.conf")
    before = state()
    ctl.ok("iserctl config save PATH", "config", "save", saved, want="saved")
    st = os.stat(saved)
    check("the saved file is mode 0600 (it holds secrets)", (st.st_mode & 0o777) == 0o600,
          oct(st.st_mode))
    rc = d.stop()
    check("iserd stops cleanly", rc == 0, d.read_log()[-3000:])
    d.conf = saved
    if check("iserd starts from the saved file", d.start(port), d.read_log()):
        after = state()
        check("the restart reproduces the saved state", before == after,
              json.dumps({"before": before, "after": after}, indent=1))

    # ---- 3. bad requests -----------------------------------------------------------------
    before = state()
    a = raw(sock, b"{this is not json\n")
    check("not JSON: parse error -32700", a and a[0].get("error", {}).get("code") == -32700, a)
    a = raw(sock, b'{"jsonrpc":"2.0","method":"server.info","id":5}', half_close=True)
    check("a client that half-closes after its request still gets the answer",
          a and a[0].get("id") == 5 and "result" in a[0], a)
    a = rpc(sock, "no.such.method")
    check("unknown method: -32601", a and a["error"]["code"] == -32601, a)
    a = rpc(sock, "lun.add", {"target": TA, "lun": "zero", "backing": "ram:1M"})
    check("wrong type: -32602", a and a["error"]["code"] == -32602, a)
    a = rpc(sock, "lun.add", {"target": TA, "lun": 5, "backing": "ram:1M", "colour": "red"})
    check("unknown parameter: -32602", a and a["error"]["code"] == -32602, a)
    a = rpc(sock, "lun.add", {"target": TA, "lun": 6, "backing": "ram:1M",
                              "physical_block_size": 1536})
    check("physical_block_size not a power-of-two multiple of 512: refused",
          a and "error" in a and "physical_block_size 1536" in a["error"]["message"], a)
    a = rpc(sock, "lun.add", {"target": TA, "lun": 6, "backing": "ram:1M",
                              "physical_block_size": 4096})
    b = rpc(sock, "lun.show", {"target": TA, "lun": 6})
    check("lun.add with physical_block_size 4096, lun.show reports it",
          a and "result" in a and b and b.get("result", {}).get("physical_block_size") == 4096,
          (a, b))
    rpc(sock, "lun.remove", {"target": TA, "lun": 6})
    a = rpc(sock, "target.add", [1, 2, 3])
    check("positional params: -32602", a and a["error"]["code"] == -32602, a)
    a = raw(sock, b'{"jsonrpc":"1.0","method":"target.list","id":1}\n')
    check("wrong jsonrpc version: -32600", a and a[0]["error"]["code"] == -32600, a)
    a = raw(sock, b'[1, "x", {"jsonrpc":"2.0","method":"target.list","id":7}]\n')
    check("a batch of junk: an error per junk entry and an answer for the good one",
          a and isinstance(a[0], list) and len(a[0]) == 3 and "result" in a[0][2], a)
    a = raw(sock, b'{"jsonrpc":"2.0","method":"target.remove","params":{"target":"' +
            TA.encode() + b'","force":true}}\n', read=False)
    time.sleep(0.5)
    check("a notification (no id) is executed but not answered",
          TA not in [t["name"] for t in ctl.json("target", "list")])
    # put A back for the state comparison
    ctl.ok("iserctl target add A back", "target", "add", TA, "--lun", "ram:8M")
    before = state()
    big = b'{"jsonrpc":"2.0","method":"target.list","params":{"x":"' + b"a" * (1 << 20) + b'"},"id":1}\n'
    a = raw(sock, big)
    check("an oversized request: an error, connection closed",
          a and a[0].get("error", {}).get("code") == -32600, a)
    deep = b"[" * 100 + b"]" * 100 + b"\n"
    a = raw(sock, deep)
    check("nesting deeper than 32: parse error", a and a[0]["error"]["code"] == -32700, a)
    refused0 = ctl.json("stats")["process"]["control_clients_refused"]
    conns = []
    for _ in range(20):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sock)
        conns.append(s)
    time.sleep(0.5)
    s = conns[-1]
    s.settimeout(5)
    try:
        data = s.recv(4096)
    except OSError:
        data = b""
    check("past 16 clients: told 'too many control clients' and closed",
          b"too many control clients" in data, data)
    for s in conns:
        s.close()
    time.sleep(0.5)
    # 20 at once: the last 4 at least were turned away, and counted
    refused = ctl.json("stats")["process"]["control_clients_refused"] - refused0
    check("past 16 clients: the refusals are counted (iserctl --json stats)",
          4 <= refused <= 20, refused)
    r = ctl.run("stats", "--prometheus")
    check("past 16 clients: iserd_control_clients_refused_total in the metrics",
          re.search(r"^iserd_control_clients_refused_total %d$" % (refused0 + refused),
                    r.stdout, re.M) is not None, r.stdout[-2000:])
    check("after all the bad requests the state is unchanged", state() == before)
    check("iserd is still running", d.proc.poll() is None, d.read_log()[-3000:])
    return finish(d, tmp)


def finish(d, tmp):
    rc = d.stop()
    log = d.read_log()
    check("iserd exits 0 on SIGTERM", rc == 0, log[-3000:])
    check("no sanitizer report in the log",
          "ERROR: AddressSanitizer" not in log and "runtime error" not in log and
          "WARNING: ThreadSanitizer" not in log and
          "LeakSanitizer" not in log, log[-5000:])
    failed = results.count(False)
    print("%d passed, %d failed" % (results.count(True), failed))
    if failed == 0:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print("logs kept in " + tmp)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
