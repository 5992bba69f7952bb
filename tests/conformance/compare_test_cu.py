#!/usr/bin/env python3
"""Compares an iscsi-test-cu run (its verbose CUnit text output) with the
expected-failures list.

Usage: compare_test_cu.py --log LOG --expected FILE --kind ram|file|ro|phys|mpath|sanitize|rbd [--family ALL]
                          [--timed-out] [--json OUT] [--skips SKIPS.md]

A test fails the comparison when it FAILED and is not listed (for this kind of LUN).
Listed tests that passed are printed so the list can shrink. A log that ends inside
a test (a hang or a crash of the tool) names that test and fails. Exit 0 when the run
matches the list, 1 otherwise.

Logs written by test_cu_resume.sh (several invocations, one log) are read the same way:
a "#### CLIENT CRASH: signal N (SIGX) in NAME" line makes the test that was running a
failure with the reason "client crashed (SIGX)" (listable like any failure); a crash
between tests becomes a failing pseudo-test "NAME (client crashed: SIGX after ...)";
the CUnit summaries of all invocations are added up.

With --skips, a test that skipped fails the comparison unless the file names it
(as `ALL.Suite.Test`, globs allowed, anywhere on a line of its table), with the
reason it does not apply.
"""

import argparse
import fnmatch
import json
import re
import sys

TEST_RE = re.compile(r"^  Test: (\S+) \.\.\.(.*)$")
SUITE_RE = re.compile(r"^Suite: (\S+)\s*$")
SUMMARY_RE = re.compile(r"^\s*tests\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)")
# written by test_cu_resume.sh when iscsi-test-cu itself died from a signal
CRASH_RE = re.compile(r"^#### CLIENT CRASH: signal (\d+) \((\S+)\) (in \S+|.*)$")


class Test:
    def __init__(self, name):
        self.name = name
        self.result = None  # "passed" | "failed"
        self.messages = []
        self.asserts = []
        self.crashed = None  # "SIGSEGV" when the client died in this test


    @property
    def skipped(self):
        return self.result == "passed" and any("[SKIPPED]" in m for m in self.messages)

    def status(self):
        if self.result is None:
            return "unfinished"
        if self.result == "notrun":
            return "notrun"
        if self.result == "failed":
            return "failed"
        return "skipped" if self.skipped else "passed"

    def why(self):
        if self.crashed:
            return "client crashed (%s)" % self.crashed
        lines = [m for m in self.messages if m.strip()]
        fails = [m for m in lines if "[FAILED]" in m] or lines
        return "; ".join(s.strip() for s in fails[:4] + self.asserts[:3])


def parse(log_text, family):
    tests = []
    cur = None
    suite = None
    summary = None
    in_failure = False
    outside = []
    for raw in log_text.splitlines():
        line = raw.rstrip("\r")
        m = CRASH_RE.match(line)
        if m:
            sig = m.group(2)
            if " not run: " in m.group(3):
                # a suite whose start-up crashed the client again and again: its tests never ran
                for name in m.group(3).split(" not run: ", 1)[1].split():
                    t = Test(name)
                    t.result, t.crashed = "notrun", sig
                    tests.append(t)
            elif m.group(3).startswith("in ") and cur is not None and cur.result is None:
                cur.result, cur.crashed = "failed", sig
            elif m.group(3).startswith("in "):
                t = Test(m.group(3)[3:])
                t.result, t.crashed = "failed", sig
                tests.append(t)
            else:
                # outside any test (at exit, between tests): no result lost, reported apart
                outside.append("%s %s" % (sig, m.group(3)))
            cur, in_failure = None, False
            continue
        if line.startswith("#### "):
            cur, in_failure = None, False
            continue
        m = SUITE_RE.match(line)
        if m:
            suite, cur, in_failure = m.group(1), None, False
            continue
        m = TEST_RE.match(line)
        if m:
            cur = Test("%s.%s.%s" % (family, suite or "?", m.group(1)))
            tests.append(cur)
            in_failure = False
            rest = m.group(2).strip()
            word = rest.split(None, 1)[0] if rest else ""
            if word in ("passed", "FAILED"):
                cur.result = "passed" if word == "passed" else "failed"
                in_failure = cur.result == "failed"
                if rest[len(word):].strip():
                    cur.messages.append("(after the result) " + rest[len(word):].strip())
            elif rest:
                cur.messages.append(rest)
            continue
        m = SUMMARY_RE.match(line)
        if m:
            # several invocations (test_cu_resume.sh): add their summaries up
            new = tuple(int(x) for x in m.groups())
            summary = new if summary is None else tuple(a + b for a, b in zip(summary, new))
            cur, in_failure = None, False
            continue
        if line.startswith("Run Summary:"):
            cur, in_failure = None, False
            continue
        if cur is None:
            continue
        s = line.strip()
        if cur.result is None:
            if s in ("passed", "FAILED"):
                cur.result = "passed" if s == "passed" else "failed"
                in_failure = cur.result == "failed"
            elif s.endswith("passed") and "[" not in s[-8:] and s.startswith("["):
                # a message printed without a newline before the result
                cur.messages.append(s[:-6])
                cur.result = "passed"
            else:
                cur.messages.append(s)
        elif in_failure and re.match(r"^\d+\. ", s):
            cur.asserts.append(s)
    return tests, summary, outside


def load_expected(path, kind):
    pats = []
    with open(path) as f:
        for n, raw in enumerate(f, 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            reason = raw.split("#", 1)[1].strip() if "#" in raw else ""
            if ":" in line.split(".", 1)[0]:
                k, _, pat = line.partition(":")
                if k not in KINDS:
                    print("%s:%d: unknown prefix %r" % (path, n, k))
                    continue
                if k != kind:
                    continue
            else:
                pat = line
            pats.append((pat, reason))
    return pats


# run_test_cu.sh's kinds of run, usable as expected-failures prefixes
KINDS = ("ram", "file", "ro", "phys", "mpath", "sanitize", "rbd")

SKIP_NAME_RE = re.compile(r"`(ALL\.[A-Za-z0-9_.*?\[\]-]+)`")


def load_skips(path):
    """The test names (patterns) listed in skips.md, in backquotes."""
    with open(path) as f:
        return SKIP_NAME_RE.findall(f.read())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", required=True)
    ap.add_argument("--expected", required=True)
    ap.add_argument("--kind", required=True, choices=KINDS)
    ap.add_argument("--family", default="ALL")
    ap.add_argument("--timed-out", action="store_true")
    ap.add_argument("--max-not-run", type=int, default=0, metavar="PERCENT",
                    help="tolerate tests that never ran because the client crashed at start-up "
                         "(test_cu_resume.sh), up to PERCENT of all tests (default 0)")
    ap.add_argument("--json")
    ap.add_argument("--skips", help="skips.md: every skipped test must be listed there")
    args = ap.parse_args()

    with open(args.log, errors="replace") as f:
        tests, summary, outside = parse(f.read(), args.family)
    expected = load_expected(args.expected, args.kind)

    def listed(name):
        for pat, reason in expected:
            if fnmatch.fnmatchcase(name, pat):
                return pat, reason
        return None

    counts = {"passed": 0, "failed": 0, "skipped": 0, "unfinished": 0, "notrun": 0}
    unexpected, tolerated, now_pass = [], [], []
    used = set()
    for t in tests:
        st = t.status()
        counts[st] += 1
        hit = listed(t.name)
        if hit:
            used.add(hit[0])
        if st in ("failed", "unfinished"):
            (tolerated if hit and st == "failed" else unexpected).append((t, hit))
        elif hit and st == "passed":
            now_pass.append((t, hit))

    ok = True
    print("==== iscsi-test-cu (%s LUN): comparison with %s" % (args.kind, args.expected))
    if not tests:
        print("FAIL: no test results in %s" % args.log)
        ok = False
    for t, _ in unexpected:
        if t.status() == "unfinished":
            print("FAIL: %s did not finish (hang or crash while it ran)%s" % (
                t.name, ": " + t.why() if t.why() else ""))
        else:
            print("FAIL: %s: %s" % (t.name, t.why()))
        ok = False
    for t, hit in tolerated:
        print("XFAIL: %s (listed: %s)" % (t.name, hit[1] or hit[0]))
    for t, hit in now_pass:
        print("XPASS: %s now passes; remove '%s' from %s" % (t.name, hit[0], args.expected))
    reasons = {}
    for t in tests:
        if t.status() == "skipped":
            r = next((m.strip() for m in t.messages if "[SKIPPED]" in m), "?")
            r = r.replace("[SKIPPED]", "").strip()
            reasons.setdefault(r, []).append(t.name)
    for r, names in sorted(reasons.items(), key=lambda x: -len(x[1])):
        print("SKIPPED %3d: %s (e.g. %s)" % (len(names), r, names[0]))
    if args.skips:
        allowed = load_skips(args.skips)
        for t in tests:
            if t.status() == "skipped" and not any(
                    fnmatch.fnmatchcase(t.name, p) for p in allowed):
                print("FAIL: %s skipped and not listed in %s: %s" % (
                    t.name, args.skips, t.why()))
                ok = False
    for pat, reason in expected:
        if pat not in used:
            print("note: expected-failures entry '%s' matched no test in this run" % pat)
    if args.timed_out:
        running = [t.name for t in tests if t.result is None]
        print("FAIL: iscsi-test-cu timed out%s" % (
            " while running %s" % running[-1] if running else ""))
        ok = False
    notrun = [t.name for t in tests if t.status() == "notrun"]
    if notrun:
        limit = len(tests) * args.max_not_run / 100.0
        bad = len(notrun) > limit
        print("%s: %d tests did not run, the client crashed at their suite's start-up 3 times "
              "(%s allowed: %d%% of %d): %s" % (
                  "FAIL" if bad else "NOT RUN", len(notrun), "more than" if bad else "within the",
                  args.max_not_run, len(tests), " ".join(notrun)))
        ok = ok and not bad
    if outside:
        print("CLIENT CRASHES OUTSIDE TESTS %d (no result lost; the runner ran the rest): %s" % (
            len(outside), "; ".join(sorted(set(o.split(" of -t")[0].split(",")[0] for o in outside)))))
    if summary:
        total, ran, passed, failed, inactive = summary
        print("CUnit summary: tests %d, ran %d, passed %d (skips count as passed), failed %d" % (
            total, ran, passed, failed))
        if counts["passed"] + counts["skipped"] != passed or counts["failed"] != failed:
            print("note: parsed %d passed+skipped / %d failed; CUnit says %d / %d" % (
                counts["passed"] + counts["skipped"], counts["failed"], passed, failed))
    elif tests and not args.timed_out and not outside and not any(t.crashed for t in tests):
        print("FAIL: no CUnit run summary: iscsi-test-cu did not finish")
        ok = False
    print("TOTALS (%s LUN): %d tests: %d passed, %d failed (%d listed as expected, %d not), "
          "%d skipped, %d unfinished, %d not run, %d crashed in a test (+%d outside tests); "
          "%d listed tests now pass" % (
              args.kind, len(tests), counts["passed"], counts["failed"], len(tolerated),
              counts["failed"] - len(tolerated), counts["skipped"], counts["unfinished"],
              counts["notrun"], sum(1 for t in tests if t.crashed and t.result == "failed"),
              len(outside), len(now_pass)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"kind": args.kind, "counts": counts,
                       "unexpected": [[t.name, t.why()] for t, _ in unexpected],
                       "tolerated": [t.name for t, _ in tolerated],
                       "now_pass": [t.name for t, _ in now_pass]}, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
