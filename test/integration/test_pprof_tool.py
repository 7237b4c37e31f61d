#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Reads the pprof writer's golden file with the real `go tool pprof`.

The golden file is write_pprof(fixture_profile()) (test/unit/profile_fixture.h,
checked byte for byte by test_writer_pprof.cc), so what pprof reports here is
what it reports for pyflame's output: the fixture's functions with their flat
and cumulative sample counts, lines and files, the thread labels, the stacks
leaf first, the comments.

Go comes from test/tools/go.sh; without it the test prints "SKIP: <reason>"
and exits 77. Go gets a private HOME/GOCACHE/GOPATH and no network.

usage: test_pprof_tool.py PROFILE.pb.gz [--go GO]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from typing import Dict, List, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pyflame_test import Failure, Skip, log, main_wrapper  # noqa: E402

# From fixture_profile(): 100 samples of 10 ms. (flat, cumulative) per function.
EXPECTED_COUNTS = {
    "hot": (60, 60),  # 50 on the main thread, 10 on the worker
    "warm": (30, 30),
    'fn;with"quotes"&<tags>': (5, 5),
    "loop": (3, 13),
    "<unknown>": (2, 2),
    "<module>": (0, 87),
    "App.run": (0, 82),
}
# The same at line granularity: "function file:line" (no line for <unknown>).
EXPECTED_LINES = {
    "hot /srv/lib/hot.py:7": 60,
    "warm /srv/lib/hot.py:19": 30,
    'fn;with"quotes"&<tags> /srv/dir \u00f1/\u95a2.py:3': 5,
    "loop /usr/lib/python3.11/threading.py:1009": 3,
    "<unknown> <unknown>": 2,
    "<module> /srv/app.py:40": 0,
    "App.run /srv/app.py:12": 0,
}
# -traces: (thread label, thread_id, count, stack leaf first).
EXPECTED_TRACES = sorted([
    ("thread 'python3' (tid 100)", "100", "50", ["hot", "App.run", "<module>"]),
    ("thread 'python3' (tid 100)", "100", "30", ["warm", "App.run", "<module>"]),
    ("thread 'python3' (tid 100)", "100", "5", ['fn;with"quotes"&<tags>', "<module>"]),
    ("thread 'python3' (tid 100)", "100", "2", ["<unknown>", "App.run", "<module>"]),
    ("thread 'worker <1>' (tid 101)", "101", "10", ["hot", "loop"]),
    ("thread 'worker <1>' (tid 101)", "101", "3", ["loop"]),
])
EXPECTED_COMMENTS = ['python3 app.py --name "x"', "pid 4242", "Python 3.11.7"]

# "      flat  flat%   sum%        cum   cum%" rows: five columns, then the name.
TOP_ROW = re.compile(r"^\s*(\S+)\s+(\S+)%\s+(\S+)%\s+(\S+)\s+(\S+)%\s+(.+?)\s*$")


class Pprof:
    def __init__(self, go: str, profile: str, home: str):
        self.go = go
        self.profile = profile
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LC_ALL": "C.UTF-8",
            "HOME": home,
            "GOCACHE": os.path.join(home, "gocache"),
            "GOPATH": os.path.join(home, "gopath"),
            "PPROF_TMPDIR": os.path.join(home, "pprof"),
            "PPROF_BINARY_PATH": os.path.join(home, "binaries"),
            "GOPROXY": "off",
            "GOFLAGS": "",
            "GOTOOLCHAIN": "local",  # never fetch another toolchain
        }

    def run(self, *options: str) -> str:
        argv = [self.go, "tool", "pprof", *options, self.profile]
        log("$ " + " ".join(argv))
        try:
            p = subprocess.run(argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=120)
        except subprocess.TimeoutExpired:
            raise Failure("%s timed out" % " ".join(argv))
        out = p.stdout.decode("utf-8")
        err = p.stderr.decode("utf-8", "replace")
        if p.returncode != 0:
            raise Failure("pprof exited %d\nstdout:\n%s\nstderr:\n%s" % (p.returncode, out, err))
        # pprof complains on stderr about what it cannot make sense of (no
        # binary to symbolize, unknown options); a valid profile gives none.
        if err.strip():
            raise Failure("pprof wrote to stderr:\n" + err)
        return out


def top_rows(text: str) -> Dict[str, Tuple[str, str]]:
    lines = text.splitlines()
    try:
        start = next(i for i, l in enumerate(lines) if l.split() == ["flat", "flat%", "sum%", "cum", "cum%"])
    except StopIteration:
        raise Failure("no table header in -top output:\n" + text)
    rows: Dict[str, Tuple[str, str]] = {}
    for line in lines[start + 1:]:
        m = TOP_ROW.match(line)
        if not m:
            raise Failure("unexpected -top row %r in:\n%s" % (line, text))
        name = m.group(6)
        if name in rows:
            raise Failure("%r listed twice:\n%s" % (name, text))
        rows[name] = (m.group(1), m.group(4))
    return rows


def expect(what: str, actual, expected) -> None:
    if actual != expected:
        raise Failure("%s:\n  expected %r\n  got      %r" % (what, expected, actual))
    log("ok: %s" % what)


def check_top(pprof: Pprof) -> None:
    text = pprof.run("-top", "-nodecount=50", "-sample_index=samples")
    expect("sample type", "Type: samples" in text.splitlines(), True)
    expect("total", "Showing nodes accounting for 100, 100% of 100 total" in text, True)
    expect("duration", "Duration: 1.50s, Total samples = 100" in text, True)
    rows = top_rows(text)
    counts = {name: (int(flat), int(cum)) for name, (flat, cum) in rows.items()}
    expect("flat and cumulative samples per function", counts, EXPECTED_COUNTS)
    names = list(rows)
    expect("hottest functions first", names[:3], ["hot", "warm", 'fn;with"quotes"&<tags>'])

    # The default value is the last sample type, cpu nanoseconds: 10 ms a sample.
    text = pprof.run("-top", "-nodecount=50")
    expect("cpu sample type", "Type: cpu" in text.splitlines(), True)
    rows = top_rows(text)
    expect("cpu time of hot and warm", (rows["hot"], rows["warm"]),
           (("600ms", "600ms"), ("300ms", "300ms")))
    expect("cpu time under <module>", rows["<module>"], ("0", "870ms"))


def check_lines(pprof: Pprof) -> None:
    rows = top_rows(pprof.run("-top", "-lines", "-nodecount=50", "-sample_index=samples"))
    expect("flat samples per line", {name: int(flat) for name, (flat, _) in rows.items()},
           EXPECTED_LINES)


def check_traces(pprof: Pprof) -> None:
    text = pprof.run("-traces", "-sample_index=samples")
    blocks = text.split("-----------+-------------------------------------------------------")
    traces: List[Tuple[str, str, str, List[str]]] = []
    for block in blocks[1:]:
        lines = [l for l in block.splitlines() if l.strip()]
        if not lines:
            continue
        labels: Dict[str, str] = {}
        stack: List[str] = []
        count = ""
        for line in lines:
            m = re.match(r"^\s*(\w+):\s+(.*?)\s*$", line)
            if m and not stack:
                labels[m.group(1)] = m.group(2)
                continue
            if not stack:
                m = re.match(r"^\s*(\d+)\s+(.+?)\s*$", line)
                if not m:
                    raise Failure("unexpected -traces line %r in:\n%s" % (line, text))
                count = m.group(1)
                stack.append(m.group(2))
            else:
                stack.append(line.strip())
        traces.append((labels.get("thread", ""), labels.get("thread_id", ""), count, stack))
    expect("traces with thread labels, leaf first", sorted(traces), EXPECTED_TRACES)

    tags = pprof.run("-tags")
    for label in ("870.0ms (87.00%): thread 'python3' (tid 100)",
                  "130.0ms (13.00%): thread 'worker <1>' (tid 101)"):
        expect("-tags lists %r" % label, label in tags, True)


def check_comments(pprof: Pprof) -> None:
    expect("comments", pprof.run("-comments").splitlines(), EXPECTED_COMMENTS)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("profile")
    parser.add_argument("--go", default=shutil.which("go"))
    args = parser.parse_args()
    if not args.go or not os.path.exists(args.go):
        raise Skip("go not found (test/tools/go.sh installs Debian's golang-go)")
    if not os.path.exists(args.profile):
        raise Failure("no profile at %s" % args.profile)
    with tempfile.TemporaryDirectory(prefix="pyflame-pprof-") as home:
        pprof = Pprof(args.go, args.profile, home)
        # A Go installation without its pprof tool (not Debian's) is a skip too.
        probe = subprocess.run([args.go, "tool", "-n", "pprof"], env=pprof.env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if probe.returncode != 0:
            raise Skip("`go tool pprof` is not available: %s" % probe.stdout.decode(errors="replace").strip())
        check_top(pprof)
        check_lines(pprof)
        check_traces(pprof)
        check_comments(pprof)
    log("PASS")
    return 0


if __name__ == "__main__":
    main_wrapper(main)
