# SPDX-License-Identifier: Apache-2.0
"""Shared helpers for the pyflame integration tests.

Reads the interpreter manifest written by test/interpreters/provision.sh,
starts target processes the way a manifest row says (clean environment plus
the row's variables, inside its chroot if it has one), waits for their
readiness signal with a deadline, runs the profiler with a deadline, and
always kills and reaps what it started.

Runs under the host's python3 (3.9+); standard library only.
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

# Exit codes of pyflameX.Y (the interface under test).
EXIT_OK = 0
EXIT_USAGE = 2
EXIT_NO_PROCESS = 3
EXIT_PERMISSION = 4
EXIT_NOT_PYTHON = 5
EXIT_WRONG_VERSION = 6
EXIT_TARGET_EXITED = 7

# Exit codes of the tests themselves (CTest: SKIP_RETURN_CODE 77).
TEST_PASS = 0
TEST_FAIL = 1
TEST_SKIP = 77

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "fixture_dump.py")
FIXTURE_MODULE = "pyflame_fixture_mod.py"  # the fixture's copy, see fixture_dump.py
NON_ASCII_DIR = "dir_\u00f1_\u95a2"
DEFAULT_MANIFEST = os.path.join(
    os.environ.get("PYFLAME_TEST_INTERPRETERS") or "/var/cache/pyflame/interpreters",
    "manifest.tsv")
MANIFEST_COLUMNS = ["name", "minor", "version", "mode", "root", "python", "headers", "env"]

# Deadlines (seconds); PYFLAME_TEST_TIMEOUT_SCALE stretches them on slow machines.
TIMEOUT_SCALE = float(os.environ.get("PYFLAME_TEST_TIMEOUT_SCALE") or "1")
READY_TIMEOUT = 60 * TIMEOUT_SCALE
PROFILER_TIMEOUT = 30 * TIMEOUT_SCALE
STATE_TIMEOUT = 10 * TIMEOUT_SCALE

# The environment targets start with, as provision.sh's run_py does (env -i).
BASE_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LC_ALL": "C.UTF-8",  # 3.6 decodes argv (the non-ASCII --moddir) by locale
    "PYTHONDONTWRITEBYTECODE": "1",
}


# In CI (CI=true), a test that skips for want of something the project's
# own scripts install (scripts/setup.sh, test/interpreters/provision.sh,
# test/tools/*.sh, the build) fails instead: there it can only mean a broken
# setup, and a skip would hide it as a pass.
IN_CI = (os.environ.get("CI") or "").lower() in ("1", "true", "yes")


class Skip(Exception):
    """The environment cannot run this test (not root, a kernel feature);
    the message says why. Exit 77: ctest reports it as skipped."""


class Missing(Skip):
    """Something the project's scripts install is missing (a tool, an
    interpreter, a built binary): a skip, or a failure in CI."""


def missing(why: str) -> int:
    """For a test's main(): the exit code of a test that cannot run for want
    of something the project installs (77, or 1 in CI), logged."""
    e = Missing(why)
    verdict = skip_verdict(e)
    log("%s: %s" % (verdict, why))
    return TEST_FAIL if verdict == "FAIL" else TEST_SKIP


def skip_verdict(e: Skip) -> str:
    """SKIP, or FAIL for a Missing in CI."""
    return "FAIL" if IN_CI and isinstance(e, Missing) else "SKIP"


class Failure(Exception):
    """A test assertion failed; the message says how."""


def log(message: str) -> None:
    print(message, flush=True)


def main_wrapper(function) -> None:
    """Runs FUNCTION() -> exit code, mapping Skip to 77 with a visible reason."""
    try:
        code = function()
    except Skip as e:
        verdict = skip_verdict(e)
        log("%s: %s%s" % (verdict, e, " (CI=true: what the project installs must be there)"
                          if verdict == "FAIL" else ""))
        code = TEST_FAIL if verdict == "FAIL" else TEST_SKIP
    except Failure as e:
        log("FAIL: %s" % e)
        code = TEST_FAIL
    sys.exit(code)


class Cases:
    """Runs named cases, prints PASS/FAIL/SKIP for each, sums them up.

    The test passes only if every case passed: one skipped case means the
    test did not check all it claims, so it exits 77 and names the case
    (ctest: skipped), and fails in CI if what was missing is something the
    project installs (Missing)."""

    def __init__(self) -> None:
        self.counts = {"PASS": 0, "FAIL": 0, "SKIP": 0}
        self.skipped: List[str] = []

    def run(self, name: str, case: Callable[[], Optional[str]]) -> None:
        """CASE returns None (pass) or a note, raises Failure or Skip."""
        try:
            note = case()
            verdict, why = "PASS", note
        except Skip as e:
            verdict, why = skip_verdict(e), str(e)
            if verdict == "SKIP":
                self.skipped.append("%s (%s)" % (name, why))
            else:
                why += " (CI=true: what the project installs must be there)"
        except Failure as e:
            verdict, why = "FAIL", str(e)
        except Exception as e:  # a bug in a case must not hide the others
            verdict, why = "FAIL", "%s: %s" % (type(e).__name__, e)
        self.counts[verdict] += 1
        log("%s %s%s" % (verdict, name, ": " + why.replace("\n", "\n    ") if why else ""))

    def summary(self) -> int:
        log("%d passed, %d failed, %d skipped"
            % (self.counts["PASS"], self.counts["FAIL"], self.counts["SKIP"]))
        if self.counts["FAIL"]:
            return TEST_FAIL
        if self.skipped:
            log("SKIP: not checked: %s" % "; ".join(self.skipped))
            return TEST_SKIP
        return TEST_PASS


# ---------------------------------------------------------------- manifest


@dataclasses.dataclass
class Interpreter:
    name: str
    minor: str
    version: str
    mode: str
    root: str
    python: str
    headers: str
    env: Dict[str, str]

    @property
    def chrooted(self) -> bool:
        return os.path.normpath(self.root) != "/"

    @property
    def free_threaded(self) -> bool:
        """A free-threaded build (PEP 703): its minor is X.Yt."""
        return self.minor.endswith("t")

    @property
    def version_tuple(self) -> Tuple[int, int]:
        """(major, minor) as numbers, the t of a free-threaded build aside."""
        return build_key(self.minor)[:2]

    def host_path(self, inside: str) -> str:
        """The host's path of INSIDE, a path as the interpreter sees it."""
        if not self.chrooted:
            return inside
        return os.path.join(self.root, inside.lstrip("/"))

    def inside_path(self, host: str) -> str:
        if not self.chrooted:
            return host
        rel = os.path.relpath(host, self.root)
        if rel.startswith(".."):
            raise ValueError("%s is outside %s" % (host, self.root))
        return "/" + rel

    def command(self, args: Sequence[str]) -> List[str]:
        prefix = [shutil.which("chroot", path="/usr/sbin:/usr/bin:/sbin:/bin") or "chroot",
                  self.root] if self.chrooted else []
        return prefix + [self.python] + list(args)

    def environment(self) -> Dict[str, str]:
        env = dict(BASE_ENV)
        env.update(self.env)
        return env

    def temp_dir(self) -> str:
        """A fresh host directory the interpreter can see (inside its root)."""
        parent = None
        if self.chrooted:
            parent = os.path.join(self.root, "tmp")
            os.makedirs(parent, exist_ok=True)
        return tempfile.mkdtemp(prefix="pyflame-test-", dir=parent)


def build_key(build: str) -> Tuple[int, int, bool]:
    """Sorts builds ("2.7", "3.13", "3.13t") by version, each default
    build before its free-threaded one."""
    major, minor = build.rstrip("t").split(".")
    return int(major), int(minor), build.endswith("t")


def read_manifest(path: str) -> List[Interpreter]:
    if not os.path.isfile(path):
        raise Missing("no interpreter manifest at %s (run test/interpreters/provision.sh)" % path)
    rows = []
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    header = lines[0].split("\t") if lines else []
    if header[:len(MANIFEST_COLUMNS)] != MANIFEST_COLUMNS:
        raise Failure("%s: header is %r, expected %r" % (path, header, MANIFEST_COLUMNS))
    for number, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) < len(MANIFEST_COLUMNS):
            raise Failure("%s:%d: %d columns, expected %d"
                          % (path, number, len(cells), len(MANIFEST_COLUMNS)))
        row = dict(zip(MANIFEST_COLUMNS, cells))
        env = {}
        if row["env"] not in ("", "-"):
            for pair in row["env"].split():
                key, sep, value = pair.partition("=")
                if not sep:
                    raise Failure("%s:%d: env entry %r is not VAR=value" % (path, number, pair))
                env[key] = value
        rows.append(Interpreter(row["name"], row["minor"], row["version"], row["mode"],
                                row["root"], row["python"], row["headers"], env))
    return rows


def suite_interpreters(path: str) -> List[Interpreter]:
    """The manifest's interpreters that a test iterating over all of them
    runs against: those whose name matches PYFLAME_TEST_INTERPRETERS (a
    regular expression; scripts/sanitize.sh sets it to its six) when set,
    else every one."""
    rows = read_manifest(path)
    wanted = os.environ.get("PYFLAME_TEST_INTERPRETERS")
    if wanted:
        rows = [i for i in rows if re.fullmatch(wanted, i.name)]
        if not rows:
            raise Failure("PYFLAME_TEST_INTERPRETERS=%s matches no interpreter in %s" % (wanted, path))
    return rows


def find_interpreter(manifest: str, name: str) -> Interpreter:
    for interp in read_manifest(manifest):
        if interp.name == name:
            if not os.access(interp.host_path(interp.python), os.X_OK):
                raise Missing("%s: %s is not executable" % (name, interp.host_path(interp.python)))
            return interp
    raise Missing("interpreter %s is not in %s" % (name, manifest))


def profiler_path(bin_dir: str, minor: str) -> str:
    path = os.path.join(bin_dir, "pyflame" + minor)
    if not os.access(path, os.X_OK):
        raise Missing("profiler %s not built" % path)
    return path


# ------------------------------------------------------------------ targets


class Target:
    """A started target process; close() kills and reaps it, always."""

    def __init__(self, interp: Interpreter, args: Sequence[str], tmpdir: str,
                 pass_fds: Sequence[int] = (), stdout=subprocess.DEVNULL):
        self.interp = interp
        self.tmpdir = tmpdir
        self.ready: Optional[dict] = None
        self.stderr_file = tempfile.TemporaryFile()
        self.argv = interp.command(args)
        self.proc = subprocess.Popen(
            self.argv, env=interp.environment(), stdin=subprocess.PIPE, stdout=stdout,
            stderr=self.stderr_file, pass_fds=tuple(pass_fds), cwd="/",
            start_new_session=True)
        # `chroot ROOT PYTHON` execs PYTHON: the pid is the interpreter's.
        self.pid = self.proc.pid

    def stderr_text(self) -> str:
        self.stderr_file.seek(0)
        return self.stderr_file.read().decode("utf-8", "replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        kill_group(self.proc)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            log("WARNING: target %d did not die" % self.pid)
        self.stderr_file.close()
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __enter__(self) -> "Target":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_line(fd: int, target: Target, timeout: float, what: str) -> bytes:
    """Reads from FD until a newline; Failure on EOF, timeout or target death."""
    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            raise Failure("%s: no readiness signal within %.0fs\n%s"
                          % (what, timeout, target.stderr_text()))
        readable, _, _ = select.select([fd], [], [], min(left, 0.5))
        if not readable:
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            target.proc.poll()
            raise Failure("%s exited (status %s) before it was ready; stderr:\n%s"
                          % (what, target.proc.returncode, target.stderr_text()))
        data += chunk
    return data


def start_fixture(interp: Interpreter) -> Target:
    """Starts fixture_dump.py under INTERP and waits for its readiness line."""
    tmpdir = interp.temp_dir()
    try:
        fixture = os.path.join(tmpdir, "fixture_dump.py")
        moddir = os.path.join(tmpdir, NON_ASCII_DIR)
        os.mkdir(moddir)
        shutil.copyfile(FIXTURE, fixture)
        shutil.copyfile(FIXTURE, os.path.join(moddir, FIXTURE_MODULE))
        os.chmod(tmpdir, 0o755)
        rfd, wfd = os.pipe()
    except BaseException:
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    args = [interp.inside_path(fixture), "--ready-fd", str(wfd),
            "--moddir", interp.inside_path(moddir)]
    try:
        target = Target(interp, args, tmpdir, pass_fds=[wfd])
    except BaseException:
        shutil.rmtree(tmpdir, ignore_errors=True)
        os.close(rfd)
        raise
    finally:
        os.close(wfd)
    try:
        line = read_line(rfd, target, READY_TIMEOUT, "fixture under %s" % interp.name)
        target.ready = json.loads(line.decode("ascii"))
        # The main thread announces from a deeper frame, then blocks reading
        # stdin: only once it sits in read(0, ...) is its stack the expected one.
        why = wait_for_syscall(target.pid, target.pid, "read", 0, READY_TIMEOUT)
        if why:
            raise Failure("fixture under %s: main thread never blocked reading stdin: %s"
                          % (interp.name, why))
    except BaseException:
        target.close()
        raise
    finally:
        os.close(rfd)
    return target


def start_python(interp: Interpreter, code: str) -> Target:
    """Starts `python -c CODE`; CODE must print a line once it is ready."""
    target = Target(interp, ["-c", code], "", stdout=subprocess.PIPE)
    try:
        read_line(target.proc.stdout.fileno(), target, READY_TIMEOUT,
                  "python -c under %s" % interp.name)
    except BaseException:
        target.close()
        raise
    return target


# Idles in the main thread (blocked reading stdin) and answers "pong" to each
# line it reads; 2.7-compatible.
PINGPONG_CODE = (
    "import sys\n"
    "sys.stdout.write('ready\\n'); sys.stdout.flush()\n"
    "while True:\n"
    "    if not sys.stdin.readline(): break\n"
    "    sys.stdout.write('pong\\n'); sys.stdout.flush()\n"
)


# ----------------------------------------------------------------- profiler


@dataclasses.dataclass
class Result:
    argv: List[str]
    returncode: Optional[int]  # None: timed out
    stdout: bytes
    stderr: bytes
    seconds: float

    @property
    def stdout_text(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    @property
    def stderr_text(self) -> str:
        return self.stderr.decode("utf-8", "replace")

    def status(self) -> str:
        if self.returncode is None:
            return "timed out after %.1fs" % self.seconds
        if self.returncode < 0:
            return "killed by signal %s" % signal.Signals(-self.returncode).name
        return "exit %d" % self.returncode

    def describe(self) -> str:
        return ("$ %s\n%s\n--- stdout ---\n%s\n--- stderr ---\n%s"
                % (" ".join(self.argv), self.status(), clip(self.stdout_text),
                   clip(self.stderr_text)))


def clip(s: str, limit: int = 4000) -> str:
    return s if len(s) <= limit else s[:limit] + "\n... (%d more chars)" % (len(s) - limit)


def run(argv: Sequence[str], timeout: float = PROFILER_TIMEOUT,
        as_user: Optional[int] = None, env: Optional[Dict[str, str]] = None,
        cwd: Optional[str] = None) -> Result:
    """Runs ARGV with a deadline; a hang is reported as returncode None."""
    argv = list(argv)
    if as_user is not None:
        if shutil.which("setpriv"):
            argv = ["setpriv", "--reuid=%d" % as_user, "--regid=%d" % as_user,
                    "--clear-groups", "--"] + argv
        else:
            import pwd
            argv = ["runuser", "-u", pwd.getpwuid(as_user).pw_name, "--"] + argv
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=cwd, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        code: Optional[int] = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        code = None
    return Result(argv, code, out, err, time.monotonic() - start)


def dump(profiler: str, pid: int, json_output: bool = True, blocking: bool = False,
         timeout: float = PROFILER_TIMEOUT) -> Result:
    argv = [profiler, "dump", "-p", str(pid)]
    if json_output:
        argv.append("--json")
    if blocking:
        argv.append("--blocking")
    return run(argv, timeout)


def parse_json_document(result: Result) -> dict:
    """Stdout as exactly one JSON object, or Failure."""
    try:
        doc = json.loads(result.stdout.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise Failure("stdout is not one JSON document (%s)\n%s" % (e, result.describe()))
    if not isinstance(doc, dict):
        raise Failure("JSON document is not an object\n%s" % result.describe())
    return doc


# ------------------------------------------------------------------- /proc


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL to PROC's process group (it was started in its own), if it still runs."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def free_pid() -> int:
    """A PID that no process has right now (counting down from pid_max)."""
    with open("/proc/sys/kernel/pid_max") as f:
        pid = int(f.read()) - 1
    while os.path.exists("/proc/%d" % pid):
        pid -= 1
    return pid


def task_states(pid: int) -> Dict[int, str]:
    """{tid: state letter} from /proc/PID/task/*/stat ({} if PID is gone)."""
    states = {}
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return states
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid), "rb") as f:
                stat = f.read().decode("ascii", "replace")
        except OSError:
            continue
        # Field 3, after the parenthesised comm (which may hold ") ").
        states[int(tid)] = stat[stat.rindex(")") + 2]
    return states


# System call numbers for /proc/PID/task/TID/syscall, per machine.
SYSCALL_NUMBERS = {
    "x86_64": {"read": 0},
    "aarch64": {"read": 63},
}


def wait_for_syscall(pid: int, tid: int, name: str, first_arg: int, timeout: float) -> str:
    """Polls until task TID of PID is blocked in system call NAME with first
    argument FIRST_ARG; returns "" or why not."""
    number = SYSCALL_NUMBERS.get(os.uname().machine, {}).get(name)
    path = "/proc/%d/task/%d/syscall" % (pid, tid)
    if number is None or not os.path.exists(path):
        return ""  # cannot tell here: the /proc state checks remain
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(path) as f:
                fields = f.read().split()
        except OSError as e:
            return "cannot read %s: %s" % (path, e)
        if len(fields) > 1 and fields[0] == str(number) and int(fields[1], 16) == first_arg:
            return ""
        if time.monotonic() > deadline:
            return "%s says %r" % (path, " ".join(fields[:3]))
        time.sleep(0.005)


def task_comm(pid: int, tid: int) -> Optional[str]:
    try:
        with open("/proc/%d/task/%d/comm" % (pid, tid), "rb") as f:
            return f.read().decode("utf-8", "replace").rstrip("\n")
    except OSError:
        return None


def wait_for_idle_states(pid: int, idle: Dict[int, bool], max_running: Optional[int] = None,
                         timeout: float = STATE_TIMEOUT) -> str:
    """Polls until each TID in IDLE is in the expected state (and at most
    MAX_RUNNING tasks are running); returns "" or why not.

    A thread that announced itself may not have reached its blocking call yet;
    the spinning thread is runnable ('R') whether or not it is on a CPU.
    """
    deadline = time.monotonic() + timeout
    while True:
        states = task_states(pid)
        wrong = ["%d is %r, expected %s" % (tid, states.get(tid), "idle" if want else "running")
                 for tid, want in sorted(idle.items())
                 if tid not in states or (states[tid] != "R") != want]
        running = sorted(tid for tid, state in states.items() if state == "R")
        if max_running is not None and len(running) > max_running:
            wrong.append("tasks %s are running, expected at most %d" % (running, max_running))
        if not wrong or time.monotonic() > deadline:
            return "; ".join(wrong)
        time.sleep(0.02)


def stopped_tasks(pid: int) -> List[str]:
    return ["%d:%s" % (tid, state) for tid, state in sorted(task_states(pid).items())
            if state in "Tt"]


# A frame of pyflame's collapsed format: "function (file:line)", no line
# when it has none.
COLLAPSED_FRAME = re.compile(r"^(?P<function>.*) \((?P<filename>.*?)(:(?P<line>\d+))?\)$")
# A native frame (--native): "function [LIBRARY]", the basename of the
# library. A label ends in ")" or "]", never both: the two cannot be mistaken.
COLLAPSED_NATIVE_FRAME = re.compile(r"^(?P<function>.*) \[(?P<library>[^\[\]]*)\]$")


# --subprocesses: the root of every stack is its process's, "process PID:
# COMMAND", COMMAND being /proc/PID/cmdline's arguments joined by single
# spaces (at most 200 characters, "..." ending one that was cut). Only a
# stack's first label is read so.
COLLAPSED_PROCESS_ROOT = re.compile(r"^process (?P<pid>\d+): (?P<command>.*)$")
COMMAND_LIMIT = 200


class CollapsedFrame(tuple):
    """A parsed collapsed frame: the tuple (function, file, line), equal to
    that plain tuple, plus `native` and `process`. A native frame (--native)
    is (function, library basename, None) with native True. A process root
    (--subprocesses) is (its whole label, "", None) with `process` its PID
    and `command` its command line."""

    native: bool
    process: Optional[int]
    command: Optional[str]

    def __new__(cls, function: str, filename: str, line: Optional[int],
                native: bool = False, process: Optional[int] = None,
                command: Optional[str] = None) -> "CollapsedFrame":
        frame = super().__new__(cls, (function, filename, line))
        frame.native = native
        frame.process = process
        frame.command = command
        return frame

    @property
    def function(self) -> str:
        return self[0]

    @property
    def filename(self) -> str:
        return self[1]

    @property
    def line(self) -> Optional[int]:
        return self[2]


def wait_until_recording(proc: subprocess.Popen, timeout: float = PROFILER_TIMEOUT) -> bytes:
    """Reads a `record`'s stderr until it says it is recording (after its
    first sample): a sanitized profiler on a busy machine may take a second
    to attach, and a fixed wait loses that race. PROC must have been started
    with bufsize=0: nothing is left in a buffer that communicate() would
    not see. Returns what was read, for the caller to put before the rest."""
    deadline = time.monotonic() + timeout
    seen = b""
    while b"pyflame: recording " not in seen:
        ready, _, _ = select.select([proc.stderr], [], [], max(0.0, deadline - time.monotonic()))
        byte = proc.stderr.read(1) if ready else b""
        if not byte:
            raise Failure("%s never said it was recording (%s)\n%s"
                          % (" ".join(proc.args), "it ended" if ready else "timed out",
                             seen.decode("utf-8", "replace")))
        seen += byte
    return seen


def parse_collapsed(text: str) -> List[Tuple[List[CollapsedFrame], int]]:
    """pyflame's collapsed lines as ([(function, file, line)] root first,
    count); a native frame is (function, library, None), its `native` True;
    a process root (--subprocesses, first frame only) has `process` set."""
    stacks = []
    for raw in text.splitlines():
        stack, _, count = raw.rpartition(" ")
        if not stack or not count.isdigit():
            raise Failure("malformed collapsed line %r" % raw)
        frames = []
        for index, label in enumerate(stack.split(";")):
            m = COLLAPSED_PROCESS_ROOT.match(label) if index == 0 else None
            if m:
                frames.append(CollapsedFrame(label, "", None, process=int(m.group("pid")),
                                             command=m.group("command")))
                continue
            m = COLLAPSED_FRAME.match(label)
            if m:
                line = m.group("line")
                frames.append(CollapsedFrame(m.group("function"), m.group("filename"),
                                             int(line) if line else None))
                continue
            m = COLLAPSED_NATIVE_FRAME.match(label)
            if not m:
                raise Failure("malformed frame %r in %r" % (label, raw))
            frames.append(CollapsedFrame(m.group("function"), m.group("library"), None, native=True))
        stacks.append((frames, int(count)))
    return stacks


def by_process(stacks: List[Tuple[List[CollapsedFrame], int]]
               ) -> Dict[int, Tuple[str, List[Tuple[List[CollapsedFrame], int]]]]:
    """--subprocesses: parse_collapsed's stacks per process root, {pid:
    (command, [(frames below the root, count)])}; Failure if a stack has no
    process root or one PID has two command lines."""
    processes: Dict[int, Tuple[str, List[Tuple[List[CollapsedFrame], int]]]] = {}
    for frames, count in stacks:
        root = frames[0] if frames else None
        if root is None or root.process is None:
            raise Failure("a stack without a process root: %r" % (frames,))
        command, own = processes.setdefault(root.process, (root.command, []))
        if command != root.command:
            raise Failure("process %d has two command lines: %r and %r"
                          % (root.process, command, root.command))
        own.append((frames[1:], count))
    return processes


def command_text(argv: Sequence[str]) -> str:
    """ARGV joined by single spaces, a ';' or a newline as ':' (the collapsed
    format's rule for every label)."""
    return " ".join(argv).replace(";", ":").replace("\n", ":")


def command_matches(command: str, argv: Sequence[str]) -> bool:
    """Whether a process root's COMMAND is that of a process whose cmdline
    is ARGV: the whole text, or, when it is longer than COMMAND_LIMIT, a
    start of it ending in "..." (of at most COMMAND_LIMIT characters with
    or without the dots: where exactly the cut falls is the product's)."""
    full = command_text(argv)
    if command == full:
        return len(full) <= COMMAND_LIMIT
    return (len(full) > COMMAND_LIMIT - 3 and command.endswith("...")
            and COMMAND_LIMIT - 10 <= len(command) <= COMMAND_LIMIT + 3
            and full.startswith(command[:-3]))


def descendants(pid: int) -> List[int]:
    """PID and every process below it (from /proc/PID/task/*/children)."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        if current in found:
            continue
        found.append(current)
        try:
            tids = os.listdir("/proc/%d/task" % current)
        except OSError:
            continue
        for tid in tids:
            try:
                with open("/proc/%d/task/%s/children" % (current, tid)) as f:
                    queue.extend(int(child) for child in f.read().split())
            except OSError:
                pass
    return found
