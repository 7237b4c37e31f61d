# SPDX-License-Identifier: Apache-2.0
"""The benchmark's plumbing: constants, running a tool with a deadline, the workload
process under one interpreter."""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Callable, Dict, List, Optional, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import pyflame_test as pt  # noqa: E402  (manifest rows, the interpreters' environment)

WORKLOAD = os.path.join(HERE, "workload.py")
DEFAULT_SET = ["pyenv-2.7.18", "pyenv-3.8.18", "pyenv-3.11.7", "pyenv-3.12.1",
               "pyenv-3.13.0", "sid-3.14", "sid-3.15"]
STACK_WORKLOADS = [  # name, depth, threads, of which blocked (never the main thread)
    ("depth10", 10, 1, 0), ("depth100", 100, 1, 0), ("depth500", 500, 1, 0),
    ("threads1", 30, 1, 0), ("threads8", 30, 8, 0), ("threads64", 30, 64, 0),
    ("mixed8", 30, 8, 6), ("mixed64", 30, 64, 60),
]
MAX_RATE = 1000000  # asked for "far more than possible" (both CLIs accept it)
OVERHEAD_RATES = [100, 1000, 10000]
READY_TIMEOUT = 120.0
TOOL_GRACE = 30.0
SBIN_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
NO_FRAMES = "<no Python frames>"  # pyflame's line for a thread without a Python frame
CHURN_MINORS = ("3.11", "3.15", "3.13t")  # the churn step's interpreters (3.15: with Tachyon; 3.13t: no GIL)
AUSTIN_MAX_MINOR = (3, 10)  # Austin 1.0.1 reads 2.7-3.10 (lines are wrong from 3.8)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------- tools


class ToolRun:
    """A finished profiler process: exit status, output, wall time, rusage."""

    def __init__(self, argv, returncode, stdout, stderr, start, end, rusage, hwm_kb):
        self.argv, self.returncode = argv, returncode
        self.stdout, self.stderr = stdout, stderr
        self.start, self.end = start, end
        self.rusage = rusage
        self.hwm_kb = hwm_kb  # polled every 5 ms while it ran

    @property
    def wall(self) -> float:
        return self.end - self.start

    @property
    def cpu(self) -> float:
        return self.rusage.ru_utime + self.rusage.ru_stime if self.rusage else float("nan")

    @property
    def max_rss_kb(self) -> int:
        return self.hwm_kb

    def describe(self) -> str:
        return "$ %s\nexit %s\nstdout: %s\nstderr: %s" % (
            " ".join(self.argv), self.returncode, pt.clip(self.stdout, 1500),
            pt.clip(self.stderr, 1500))


def run_tool(argv: Sequence[str], timeout: float, interrupt_after: Optional[float] = None,
             env: Optional[Dict[str, str]] = None) -> ToolRun:
    """Runs ARGV, reaping it with wait4 to get its own CPU time and peak RSS.

    INTERRUPT_AFTER: send SIGINT after that many seconds (tools without a
    duration option stop and write their output on SIGINT)."""
    out = tempfile.TemporaryFile()
    err = tempfile.TemporaryFile()
    start = time.monotonic()
    proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                            env=env, start_new_session=True)
    rusage = None
    status = None
    interrupted = False
    deadline = start + timeout
    hwm_kb = 0
    while True:
        hwm_kb = max(hwm_kb, vm_hwm_kb(proc.pid))
        pid, st, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            status, rusage = st, ru
            break
        now = time.monotonic()
        if interrupt_after is not None and not interrupted and now - start >= interrupt_after:
            os.kill(proc.pid, signal.SIGINT)
            interrupted = True
        if now > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            _, st, ru = os.wait4(proc.pid, 0)
            status, rusage = None, ru
            break
        time.sleep(0.005)
    end = time.monotonic()
    proc.returncode = os.waitstatus_to_exitcode(status) if status is not None else -9
    out.seek(0)
    err.seek(0)
    return ToolRun(list(argv), proc.returncode if status is not None else None,
                   out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace"),
                   start, end, rusage, hwm_kb)


def vm_hwm_kb(pid: int) -> int:
    """Peak RSS of PID's current program (VmHWM), 0 once it has exited.

    Not getrusage's ru_maxrss: that survives fork and exec, so a profiler
    started from this (large) Python process would report this process's
    RSS as its own peak."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


# --------------------------------------------------------------- workloads


class OwnMounts:
    """INTERP, whose processes start (when it lives in a chroot) in a mount
    namespace of their own with /proc mounted inside the chroot, so that a
    peer joining that namespace and chroot reads the target's
    /proc/PID/maps with the paths the target sees. Everything but command()
    is INTERP's: it stands in for the interpreter where a target class (as
    test_churn.py's ChurnFixture) builds its command from one."""

    def __init__(self, interp: pt.Interpreter):
        self._interp = interp

    def __getattr__(self, name):
        return getattr(self._interp, name)

    def command(self, args: Sequence[str]) -> List[str]:
        interp = self._interp
        if not interp.chrooted:
            return interp.command(args)
        # unshare and chroot exec: the pid is the interpreter's.
        return [shutil.which("unshare", path=SBIN_PATH) or "unshare", "--mount",
                "--propagation", "private", "sh", "-c",
                'mount -t proc proc "$0/proc" && c=$1 && shift && exec "$c" "$0" "$@"',
                interp.root,
                shutil.which("chroot", path=SBIN_PATH) or "chroot",
                interp.python] + list(args)


class Workload:
    """workload.py under one interpreter: started, ready, its lines collected.

    Targets in a chroot are started in a mount namespace of their own with
    /proc mounted inside the chroot: CPython's own profiler, run inside the
    same chroot and namespace, finds the target's files through
    /proc/PID/maps, which is only useful when reader and target share mounts.
    """

    def __init__(self, interp: pt.Interpreter, args: Sequence[str],
                 prepare: Optional[Callable[[str], None]] = None):
        # prepare(tmpdir): puts files beside the workload before it starts.
        self.interp = interp
        self.tmpdir = interp.temp_dir()
        os.chmod(self.tmpdir, 0o755)
        if prepare is not None:
            prepare(self.tmpdir)
        script = os.path.join(self.tmpdir, "workload.py")
        shutil.copyfile(WORKLOAD, script)
        rfd, wfd = os.pipe()
        self.rfd = rfd
        argv = OwnMounts(interp).command([interp.inside_path(script), "--fd", str(wfd)]
                                         + list(args))
        env = interp.environment()
        env["PATH"] = SBIN_PATH
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     pass_fds=(wfd,), cwd="/", start_new_session=True)
        os.close(wfd)
        self.pid = self.proc.pid
        self.lines: List[List[float]] = []
        self.lock = threading.Lock()
        self.ready = self._read_ready()
        self.reader = threading.Thread(target=self._collect, daemon=True)
        self.reader.start()

    def _read_ready(self) -> dict:
        buf = b""
        deadline = time.monotonic() + READY_TIMEOUT
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                self.close()
                raise RuntimeError("workload under %s: not ready in %.0fs"
                                   % (self.interp.name, READY_TIMEOUT))
            r, _, _ = select.select([self.rfd], [], [], min(left, 0.5))
            if r:
                chunk = os.read(self.rfd, 65536)
                if not chunk:
                    err = self.proc.stderr.read().decode("utf-8", "replace")
                    self.close()
                    raise RuntimeError("workload under %s exited: %s" % (self.interp.name, err))
                buf += chunk
        line, _, self._rest = buf.partition(b"\n")
        return json.loads(line.decode("ascii"))

    def _collect(self) -> None:
        buf = self._rest
        while True:
            while b"\n" in buf:
                line, _, buf = buf.partition(b"\n")
                try:
                    values = [float(v) for v in line.split()]
                except ValueError:
                    continue
                with self.lock:
                    self.lines.append(values)
            try:
                chunk = os.read(self.rfd, 65536)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk

    def clock(self) -> float:
        return time.monotonic() if self.ready.get("clock") == "monotonic" else time.time()

    def lines_between(self, t0: float, t1: float) -> List[List[float]]:
        with self.lock:
            return [v for v in self.lines if t0 <= v[0] <= t1]

    def wait_lines_until(self, t: float, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.lines and self.lines[-1][0] >= t:
                    return
            time.sleep(0.02)

    def close(self) -> None:
        pt.kill_group(self.proc)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            log("WARNING: workload %d did not die" % self.pid)
        try:
            os.close(self.rfd)
        except OSError:
            pass
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------- profilers


def parse_collapsed_counts(text: str) -> List[tuple]:
    """[(stack, count)] from collapsed text ("a;b;c COUNT" lines)."""
    rows = []
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            rows.append((stack, int(count)))
    return rows


def ratio(a, b) -> str:
    return "%.2f" % (a / b) if a and b else "-"


def num(v, f="%.1f") -> str:
    return f % v if isinstance(v, (int, float)) and v == v else "-"
