#!/usr/bin/env python3
"""Targets bound to portals (a target's `portals` list in the config file).

iserd listens on two TCP portals, 127.0.0.1:P (portal 1) and 127.0.0.2:P
(portal 2, another loopback address). Target A is bound to portal 1 only,
target B to portal 2 only, target C to none (every portal). Checks:

- a login to A through portal 2 (and to B through portal 1) fails with
  0x0203 (not found), exactly as for a target that does not exist, while the
  same login through the right portal works;
- SendTargets=All in a discovery session through portal 2 names B and C but
  not A (and through portal 1: A and C, not B), each with only the addresses
  of portals it is bound to; asking for A by name through portal 2 gets
  nothing;
- --check refuses a target bound to a portal that is not configured, and one
  bound to the same portal twice.
"""

import struct
import subprocess
import sys

import hostile_lib as hl
from hostile_lib import OP_TEXT, RSVD, CaseFail, Conn, Iserd, bhs, kv

OP_TEXT_RSP = 0x24
HOST2 = "127.0.0.2"
IQN_A = hl.IQN                              # the client's default target: bound to portal 1
IQN_B = "iqn.2026-11.org.iserd:portal-two"
IQN_C = "iqn.2026-11.org.iserd:every-portal"

CONF = """
portals = ( "tcp://127.0.0.1:@PORT@", "tcp://%s:@PORT@" );
targets = (
  { name = "%s"; luns = ( { backing = "ram:1M"; } ); portals = [ "tcp://127.0.0.1:@PORT@" ]; },
  { name = "%s"; luns = ( { backing = "ram:1M"; } ); portals = [ "tcp://%s:@PORT@" ]; },
  { name = "%s"; luns = ( { backing = "ram:1M"; } ); }
);
""" % (HOST2, IQN_A, IQN_B, HOST2, IQN_C)


def conn(d, host):
    """A connection to portal host:P (the raw client always dials its module's HOST)."""
    saved = hl.tm.HOST
    hl.tm.HOST = host
    try:
        return Conn(d.port)
    finally:
        hl.tm.HOST = saved


def login_status(d, host, target):
    c = conn(d, host)
    try:
        cls, det, _ = c.login(hl.initiator_name(), target=target)
        if cls == 0:
            c.tur()
            c.logout()
        return (cls << 8) | det
    finally:
        c.close()


def logins(d):
    want = [(hl.HOST, IQN_A, 0), (HOST2, IQN_A, 0x0203), (HOST2, IQN_B, 0),
            (hl.HOST, IQN_B, 0x0203), (hl.HOST, IQN_C, 0), (HOST2, IQN_C, 0),
            (HOST2, "iqn.2026-11.org.iserd:no-such-target", 0x0203)]
    for host, target, status in want:
        got = login_status(d, host, target)
        if got != status:
            raise CaseFail("login to %s through %s: status 0x%04x, expected 0x%04x" %
                           (target, host, got, status))
    return "%d logins, each with the expected status" % len(want)


def send_targets(d, host, value):
    """SendTargets=value in a discovery session through host: {name: [addresses]}."""
    c = conn(d, host)
    try:
        cls, det, _ = c.login(hl.initiator_name(), session_type="Discovery")
        if cls != 0:
            raise CaseFail("discovery login through %s: 0x%02x%02x" % (host, cls, det))
        data = kv([("SendTargets", value)])
        itt = c.next_itt()
        c.send_pdu(bhs(0x40 | OP_TEXT, 0x80, dsl=len(data), itt=itt,
                       rest=struct.pack(">III", RSVD, c.cmdsn, c.expstatsn)), data=data)
        c.cmdsn += 1
        p = c.wait(lambda q: q.opcode == OP_TEXT_RSP and q.itt == itt, what="Text Response")
        if p.flags & 0x40:
            raise CaseFail("SendTargets answer unexpectedly paged")
        out, cur = {}, None
        for item in p.data.split(b"\0"):
            k, _, v = item.decode().partition("=")
            if k == "TargetName":
                cur = v
                out[cur] = []
            elif k == "TargetAddress":
                out[cur].append(v)
        c.logout()
        return out
    finally:
        c.close()


def discovery(d):
    p1 = "%s:%d,1" % (hl.HOST, d.port)
    p2 = "%s:%d,1" % (HOST2, d.port)
    want = {
        hl.HOST: {IQN_A: [p1], IQN_C: [p1, p2]},
        HOST2: {IQN_B: [p2], IQN_C: [p1, p2]},
    }
    for host, exp in want.items():
        got = send_targets(d, host, "All")
        if got != exp:
            raise CaseFail("SendTargets=All through %s: %s, expected %s" % (host, got, exp))
    got = send_targets(d, HOST2, IQN_A)
    if got:
        raise CaseFail("SendTargets=%s through %s named %s" % (IQN_A, HOST2, got))
    got = send_targets(d, hl.HOST, IQN_A)
    if got != {IQN_A: [p1]}:
        raise CaseFail("SendTargets=%s through %s: %s" % (IQN_A, hl.HOST, got))
    return "portal 1 names A and C, portal 2 names B and C; A by name through portal 2: none"


def check_refused(d):
    results = []
    for what, binding, needle in (
            ("unconfigured portal", '"tcp://127.0.0.1:1"', "is not configured"),
            ("same portal twice", '"tcp://127.0.0.1:3260", "127.0.0.1:3260"', "named twice")):
        conf = 'portals = ( "tcp://127.0.0.1:3260" );\n' \
               'targets = ( { name = "%s"; luns = ( { backing = "ram:1M"; } );\n' \
               '  portals = [ %s ]; } );\n' % (IQN_A, binding)
        path = "%s/bad-%d.conf" % (d.tmp, len(results))
        with open(path, "w") as f:
            f.write(conf)
        r = subprocess.run([d.binary, "-c", path, "--check"], capture_output=True, text=True,
                           timeout=30)
        if r.returncode != 2 or needle not in r.stderr:
            raise CaseFail("--check with a target bound to %s: status %d, %r" %
                           (what, r.returncode, r.stderr.strip()))
        results.append("%s: %s" % (what, r.stderr.strip()))
    return "; ".join(results)


def main():
    return hl.run("portals", [
        ("logins only through the portals a target is bound to", logins),
        ("SendTargets names only targets bound to the asking portal", discovery),
        ("--check refuses bad bindings", check_refused),
    ], setup=lambda: Iserd(conf=CONF))


if __name__ == "__main__":
    sys.exit(main())
