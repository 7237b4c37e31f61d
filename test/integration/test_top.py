#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Integration test of `pyflameX.Y top` against one interpreter.

    test_top.py --bin-dir DIR --interp NAME [--manifest PATH]

Runs fixture_record.py (a known split of CPU time between spin_a, spin_b and
spin_c, measured by the workload itself) and watches it with `top`:

- screen: in tmux (80x24), driven with send-keys and read with
  capture-pane: the whole-run own shares of the spin functions match the
  measured ones within 5 points (more when fewer samples were taken: three
  standard errors; the split is logged, not checked, under the sanitizers,
  as record's is); each key does what the help says (o/t/n sort, r reverses,
  l switches window, ] and a pick a thread and all, / filters, Esc clears,
  p pauses, ? shows help); a resize to 100x30 redraws at the new size; the
  target exiting is said on screen and q then exits 7;
- TERM=linux: the same view draws and q exits 0;
- plain: `--once` through a pipe prints one table with the spin functions
  and exits 0; `--interval 0.5 -d 1.6` prints a table every half second.

Exit 0 pass, 1 fail, 77 skip.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import subprocess
import tempfile
import time
from typing import Dict, List, Optional, Tuple

from pyflame_test import (DEFAULT_MANIFEST, PROFILER_TIMEOUT, TIMEOUT_SCALE, Cases, Failure,
                          Interpreter, Missing, find_interpreter, log, main_wrapper,
                          profiler_path, run, stopped_tasks)
from test_record import SPINS, Fixture  # the known-split workload, driven through its stdin

SANITIZED = os.environ.get("PYFLAME_TEST_SANITIZED") == "1"
ROW = re.compile(r"^\s*([\d.]+)%\s+([\d.]+)%\s+(\d+)\s+(\d+)\s+(\S+)(?: \(.*)?$")
EXIT_TARGET_EXITED = 7


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise Failure(message)


class Tmux:
    """One detached tmux session on its own server socket, running ARGV."""

    def __init__(self, argv: List[str], work: str, width: int = 80, height: int = 24,
                 env: Optional[Dict[str, str]] = None):
        tmux = shutil.which("tmux")
        if tmux is None:
            raise Missing("tmux is not installed (scripts/setup.sh installs it)")
        self.base = [tmux, "-S", os.path.join(work, "tmux.sock")]
        self.rc_file = os.path.join(work, "top.rc")
        if os.path.exists(self.rc_file):
            os.unlink(self.rc_file)
        exports = "".join("%s=%s " % (k, v) for k, v in (env or {}).items())
        command = "%s%s; echo $? > %s; sleep 600" % (
            exports, " ".join(argv), self.rc_file)
        subprocess.run(self.base + ["new-session", "-d", "-s", "top", "-x", str(width), "-y",
                                    str(height), command], check=True)

    def keys(self, *keys: str) -> None:
        subprocess.run(self.base + ["send-keys", "-t", "top"] + list(keys), check=True)

    def screen(self) -> List[str]:
        out = subprocess.run(self.base + ["capture-pane", "-p", "-t", "top"], check=True,
                             stdout=subprocess.PIPE).stdout.decode("utf-8", "replace")
        return out.split("\n")

    def resize(self, width: int, height: int) -> None:
        subprocess.run(self.base + ["resize-window", "-t", "top", "-x", str(width), "-y",
                                    str(height)], check=True)

    def wait_for(self, what: str, test, timeout: float = 10.0) -> List[str]:
        deadline = time.monotonic() + timeout * TIMEOUT_SCALE
        while True:
            lines = self.screen()
            if test(lines):
                return lines
            if time.monotonic() > deadline:
                raise Failure("top: %s never came; the screen:\n%s" % (what, "\n".join(lines)))
            time.sleep(0.1)

    def exit_code(self, timeout: float = 10.0) -> int:
        deadline = time.monotonic() + timeout * TIMEOUT_SCALE
        while not os.path.exists(self.rc_file) or not open(self.rc_file).read().strip():
            if time.monotonic() > deadline:
                raise Failure("top did not exit; the screen:\n%s" % "\n".join(self.screen()))
            time.sleep(0.1)
        with open(self.rc_file) as f:
            return int(f.read().strip())

    def close(self) -> None:
        subprocess.run(self.base + ["kill-server"], stderr=subprocess.DEVNULL)


def rows(lines: List[str]) -> List[Tuple[float, float, int, int, str]]:
    out = []
    for line in lines:
        m = ROW.match(line)
        if m:
            out.append((float(m.group(1)), float(m.group(2)), int(m.group(3)), int(m.group(4)),
                        m.group(5)))
    return out


def has_text(text: str):
    return lambda lines: any(text in line for line in lines)


def header(lines: List[str]) -> str:
    return "\n".join(lines[:5])


def check_split(lines: List[str], before: Dict[str, float], after: Dict[str, float]) -> str:
    own = {r[4]: r[2] for r in rows(lines) if r[4] in SPINS}
    sampled = sum(own.values())
    spent = {f: after[f] - before[f] for f in SPINS}
    spent_total = sum(spent.values())
    expect(sampled > 0 and spent_total > 0, "no spin samples on screen: %s" % own)
    shares = []
    worst = 0.0
    for f in SPINS:
        p = spent[f] / spent_total
        q = own.get(f, 0) / float(sampled)
        tolerance = max(0.05, 3 * math.sqrt(p * (1 - p) / sampled))
        worst = max(worst, abs(p - q) - tolerance)
        shares.append("%s %.1f%% (measured %.1f%%)" % (f, 100 * q, 100 * p))
    split = ", ".join(shares) + " of %d samples" % sampled
    if SANITIZED:
        return split + " (NOT CHECKED under the sanitizers)"
    expect(worst <= 0, "the own shares are off by more than the tolerance: %s" % split)
    return split


def case_screen(profiler: str, interp: Interpreter, work: str) -> str:
    notes = []
    with Fixture(interp) as target:
        before = target.report()
        tmux = Tmux([profiler, "top", "-p", str(target.pid), "--rate", "500"], work)
        try:
            tmux.wait_for("the table with the spin functions",
                          lambda l: sum(1 for r in rows(l) if r[4] in SPINS) == 3)
            tmux.keys("l")
            lines = tmux.wait_for("the whole-run window", has_text("whole run"))
            time.sleep(3)
            # Paused, the screen holds still: one refresh's rows, read whole.
            after = target.report()
            tmux.keys("p")
            lines = tmux.wait_for("the paused whole run", lambda l: "PAUSED" in header(l)
                                  and sum(1 for r in rows(l) if r[4] in SPINS) == 3)
            notes.append(check_split(lines, before, after))
            tmux.keys("p")
            tmux.wait_for("unpaused", lambda l: "PAUSED" not in header(l))

            # Each key is judged on a whole screen that shows its effect: a
            # capture can catch the terminal between two updates (the
            # header redrawn, the rows not yet), so wait for both.
            def shows(text, column=None, descending=True):
                def test(l):
                    values = [r[column] for r in rows(l)] if column is not None else []
                    return (text in header(l) and len(rows(l)) > 1 and
                            values == sorted(values, reverse=descending))
                return test
            tmux.keys("n")
            tmux.wait_for("rows sorted by name", shows("sorted by name", 4, False))
            tmux.keys("t")
            tmux.wait_for("totals descending", shows("sorted by total", 3))
            tmux.keys("r")
            tmux.wait_for("totals ascending", shows("(reversed)", 3, False))
            tmux.keys("r", "o")
            tmux.wait_for("own descending", lambda l: shows("sorted by own", 2)(l)
                          and "(reversed)" not in header(l))

            tmux.keys("/", "s", "p", "i", "n", "_", "b", "Enter")
            tmux.wait_for("spin_b alone", lambda l: "filter 'spin_b'" in header(l)
                          and [r[4] for r in rows(l)] == ["spin_b"])
            tmux.keys("Escape")
            lines = tmux.wait_for("the filter cleared", lambda l: "filter" not in header(l)
                                  and len(rows(l)) > 1)

            tmux.keys("]")
            lines = tmux.wait_for("one thread", has_text("thread '"))
            tmux.keys("a")
            lines = tmux.wait_for("all threads", has_text("all threads"))

            tmux.keys("p")
            lines = tmux.wait_for("paused", has_text("PAUSED"))
            frozen = header(lines)
            time.sleep(1.5)
            expect(header(tmux.screen()) == frozen, "p: the view moved while paused")
            tmux.keys("p")
            tmux.wait_for("unpaused", lambda l: "PAUSED" not in header(l))

            tmux.keys("?")
            tmux.wait_for("the help", has_text("pyflame top: keys"))
            tmux.keys("?")
            tmux.wait_for("the table again", lambda l: len(rows(l)) > 0)

            tmux.resize(100, 30)
            lines = tmux.wait_for("the 100x30 redraw", lambda l: len(l) >= 30 and "q quit" in l[29])
            expect(all(len(line) <= 100 for line in lines), "a line wider than 100 columns")

            target.send("exit")
            tmux.wait_for("the exit notice", has_text("exited; press q to quit"))
            expect(not stopped_tasks(target.pid) if target.alive() else True, "target left stopped")
            tmux.keys("q")
            code = tmux.exit_code()
            expect(code == EXIT_TARGET_EXITED, "q after the target exited: exit %d, expected %d"
                   % (code, EXIT_TARGET_EXITED))
        finally:
            tmux.close()
    notes.append("keys o t n r l ] a / Esc p ? q, resize, exit notice and exit 7")
    return "; ".join(notes)


def case_term_linux(profiler: str, interp: Interpreter, work: str) -> str:
    with Fixture(interp) as target:
        tmux = Tmux([profiler, "top", "-p", str(target.pid)], work, env={"TERM": "linux"})
        try:
            tmux.wait_for("the table", lambda l: any(r[4] in SPINS for r in rows(l)))
            tmux.keys("q")
            code = tmux.exit_code()
            expect(code == 0, "q: exit %d" % code)
            expect(target.alive() and not stopped_tasks(target.pid), "the target died or is stopped")
        finally:
            tmux.close()
    return "drawn, q exits 0"


def case_plain(profiler: str, interp: Interpreter) -> str:
    with Fixture(interp) as target:
        once = run([profiler, "top", "-p", str(target.pid), "--once"], PROFILER_TIMEOUT)
        expect(once.returncode == 0, "--once: %s" % once.describe())
        text = once.stdout.decode("utf-8", "replace")
        expect(text.count("%Own") == 1 and any(r[4] in SPINS for r in rows(text.split("\n"))),
               "--once: not one table with the spin functions:\n%s" % text)
        timed = run([profiler, "top", "-p", str(target.pid), "--interval", "0.5", "-d", "1.6"],
                    PROFILER_TIMEOUT)
        expect(timed.returncode == 0, "--interval: %s" % timed.describe())
        tables = timed.stdout.decode("utf-8", "replace").count("%Own")
        # Three intervals, then the whole run's table at the end.
        expect(tables == 4, "--interval 0.5 -d 1.6: %d tables, expected 4:\n%s"
               % (tables, timed.stdout.decode("utf-8", "replace")))
    return "--once: one table; --interval 0.5 -d 1.6: 4 tables"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--interp", required=True)
    parser.add_argument("--manifest", default=DEFAULT_MANIFEST)
    args = parser.parse_args()
    interp = find_interpreter(args.manifest, args.interp)
    profiler = profiler_path(args.bin_dir, interp.minor)
    log("top on %s" % interp.name)
    work = tempfile.mkdtemp(prefix="pyflame-top-")
    cases = Cases()
    try:
        cases.run("screen", lambda: case_screen(profiler, interp, work))
        cases.run("TERM=linux", lambda: case_term_linux(profiler, interp, work))
        cases.run("plain", lambda: case_plain(profiler, interp))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return cases.summary()


if __name__ == "__main__":
    main_wrapper(main)
