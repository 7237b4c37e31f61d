#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Integration test: a hostile local user against pyflame (docs/reliability.md,
"A hostile local user").

    test_hostile_user.py --bin-dir DIR --group capability|setuid|output [--manifest PATH]

capability: a copy of pyflameX.Y with `setcap cap_sys_ptrace+ep`, run as
  nobody (setpriv, no inheritable capabilities), may profile only nobody's
  own dumpable processes: against root's target, another unprivileged
  user's target and nobody's own non-dumpable target it exits 4 having read
  nothing (no function name on stdout, no output file, target never
  stopped); against nobody's own target it works, with
  kernel.yama.ptrace_scope=1 where the kernel has Yama (restored after).

setuid: the same cases against a copy installed setuid root (chown root,
  mode 4755) instead: all of root's powers, not only CAP_SYS_PTRACE.

output: as root, `-o` never replaces what is not a regular file (a device
  node, a FIFO, a symbolic link to /proc/self/fd/1, /proc/self/fd/1), `-o -`
  is standard output, new files honour the umask, a replaced file keeps its
  mode and owner, failed writes (a full device, standard output on
  /dev/full, a closed pipe) never end in exit 0, `| head -1` is quiet, and
  SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2 end a recording with the whole profile and
  no temporary file.

Prints PASS/FAIL/SKIP per case; exit 0, 1, or 77 if every case was skipped.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from typing import List, Optional, Sequence

from pyflame_test import (DEFAULT_MANIFEST, EXIT_OK, EXIT_PERMISSION, EXIT_USAGE, PROFILER_TIMEOUT,
                          READY_TIMEOUT, Cases, Failure, Interpreter, Missing, Result, Skip, kill_group, log,
                          skip_verdict,
                          read_manifest, run, stopped_tasks)

NOBODY = 65534
OTHER_USER = 65533  # another unprivileged user (no passwd entry needed)
SECRET = "hostile_secret_function"

# Idles in SECRET (blocked reading stdin); a spinning thread too, so that
# --blocking has something running to stop. 2.7-compatible.
TARGET_CODE = (
    "import sys, threading\n"
    "def spin_%(s)s():\n"
    "    while True: pass\n"
    "t = threading.Thread(target=spin_%(s)s); t.daemon = True; t.start()\n"
    "def %(s)s():\n"
    "    sys.stdout.write('ready\\n'); sys.stdout.flush()\n"
    "    sys.stdin.readline()\n"
    "%(s)s()\n" % {"s": SECRET})

# The same, having made itself non-dumpable first.
NONDUMPABLE_CODE = (
    "import ctypes, ctypes.util\n"
    "libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6', use_errno=True)\n"
    "assert libc.prctl(4, 0, 0, 0, 0) == 0  # PR_SET_DUMPABLE\n") + TARGET_CODE


def as_user_argv(uid: Optional[int], argv: Sequence[str]) -> List[str]:
    if uid is None:
        return list(argv)
    return ["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid, "--clear-groups",
            "--inh-caps=-all", "--"] + list(argv)


class UserTarget:
    """`python -c CODE` as UID (None: root), in its own session; close() kills it."""

    def __init__(self, interp: Interpreter, code: str, uid: Optional[int], script_dir: str = ""):
        argv = [interp.python]
        if script_dir:  # run from a file in SCRIPT_DIR: its path is part of the secret
            script = os.path.join(script_dir, "%s.py" % SECRET)
            with open(script, "w") as f:
                f.write(code)
            argv.append(script)
        else:
            argv += ["-c", code]
        env = interp.environment()
        self.proc = subprocess.Popen(as_user_argv(uid, argv), env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/",
                                     start_new_session=True)
        self.pid = self.proc.pid
        line = b""
        deadline = time.monotonic() + READY_TIMEOUT
        import select
        while not line.endswith(b"\n"):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                err = self.proc.stderr.read1(4000) if self.proc.poll() is not None else b""
                self.close()
                raise Failure("target (uid %s) did not start: %s" % (uid, err.decode("utf-8", "replace")))
            r, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 100)
                if not chunk:
                    continue
                line += chunk

    def check_untouched(self) -> None:
        if self.proc.poll() is not None:
            raise Failure("the target died")
        stopped = stopped_tasks(self.pid)
        if stopped:
            raise Failure("the target was left stopped: %s" % stopped)

    def close(self) -> None:
        kill_group(self.proc)
        self.proc.wait()
        for s in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            s.close()


def expect_code(result: Result, codes, *needles: str) -> None:
    codes = (codes,) if isinstance(codes, int) else tuple(codes)
    if result.returncode not in codes:
        raise Failure("expected exit %s, got %s\n%s"
                      % (" or ".join(map(str, codes)), result.status(), result.describe()))
    missing = [n for n in needles if n.lower() not in result.stderr_text.lower()]
    if missing:
        raise Failure("message lacks %s\n%s" % (missing, result.describe()))


# -------------------------------------------------------------- capability


class CapEnv:
    """A privileged copy of BINARY: `setcap cap_sys_ptrace+ep`, or with
    SETUID a setuid-root one."""

    def __init__(self, binary: str, interp: Interpreter, setuid: bool = False) -> None:
        if os.geteuid() != 0:
            raise Skip("needs root (to setcap a copy and run it as uid %d)" % NOBODY)
        for tool in ("setcap", "setpriv"):
            if shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin") is None:
                raise Missing("%s is missing (scripts/setup.sh installs %s)"
                           % (tool, "libcap2-bin" if tool == "setcap" else "util-linux"))
        self.interp = interp
        self.work = tempfile.mkdtemp(prefix="pyflame-hostile-")
        os.chmod(self.work, 0o755)
        self.binary = os.path.join(self.work, os.path.basename(binary))
        shutil.copy(binary, self.binary)
        os.chmod(self.binary, 0o755)
        if setuid:
            if os.statvfs(self.work).f_flag & os.ST_NOSUID:
                shutil.rmtree(self.work, ignore_errors=True)
                raise Skip("%s is on a file system mounted nosuid: a setuid copy there runs "
                           "unprivileged" % self.work)
            os.chown(self.binary, 0, 0)
            os.chmod(self.binary, 0o4755)
            r = subprocess.CompletedProcess([], 0, b"", b"")
        else:
            setcap = shutil.which("setcap", path="/usr/sbin:/usr/bin:/sbin:/bin")
            r = subprocess.run([setcap, "cap_sys_ptrace+ep", self.binary], capture_output=True)
        if r.returncode != 0:
            shutil.rmtree(self.work, ignore_errors=True)
            raise Skip("setcap on %s failed (file system without capabilities?): %s"
                       % (self.work, r.stderr.decode(errors="replace").strip()))
        # A directory nobody may write to, for output files.
        self.nobody_dir = os.path.join(self.work, "nobody")
        os.mkdir(self.nobody_dir, 0o755)
        os.chown(self.nobody_dir, NOBODY, NOBODY)
        # Root's 0700 directory holding the root target's script.
        self.secret_dir = os.path.join(self.work, "root-only")
        os.mkdir(self.secret_dir, 0o700)
        probe = run(as_user_argv(NOBODY, [interp.python, "-c", "pass"]))
        if probe.returncode != 0:
            self.close()
            raise Skip("%s cannot run as nobody\n%s" % (interp.python, probe.describe()))
        probe = run(as_user_argv(NOBODY, [self.binary, "--version"]))
        if probe.returncode != 0:
            self.close()
            raise Skip("the privileged copy cannot run as nobody\n%s" % probe.describe())
        if setuid and os.stat(self.binary).st_mode & 0o4000 == 0:
            self.close()
            raise Failure("%s lost its setuid bit" % self.binary)

    def pyflame(self, *args: str, timeout: float = PROFILER_TIMEOUT) -> Result:
        return run(as_user_argv(NOBODY, [self.binary] + list(args)), timeout=timeout, cwd=self.nobody_dir)

    def close(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)


def refused_everything(env: CapEnv, target: UserTarget, who: str) -> None:
    """Every way of reading TARGET through the capability is refused: exit 4,
    nothing read, nothing written, the target never stopped."""
    pid = str(target.pid)
    for mode in ([], ["--blocking"]):
        r = env.pyflame("dump", "-p", pid, "--json", *mode)
        expect_code(r, EXIT_PERMISSION, pid, "more privilege than its caller")
        if SECRET in r.stdout_text or SECRET in r.stderr_text:
            raise Failure("%s's function name was read\n%s" % (who, r.describe()))
        out = os.path.join(env.nobody_dir, "out%s.txt" % "".join(mode))
        r = env.pyflame("record", "-p", pid, "-d", "1", "-o", out, *mode)
        expect_code(r, EXIT_PERMISSION, pid, "more privilege than its caller")
        if os.path.exists(out):
            raise Failure("a profile of %s's process was written\n%s" % (who, r.describe()))
        target.check_untouched()
    # The classic form too.
    r = env.pyflame("-p", pid, "-s", "1")
    expect_code(r, EXIT_PERMISSION, pid)
    if SECRET in r.stdout_text:
        raise Failure("%s's function name was read\n%s" % (who, r.describe()))


def case_cap_root_target(env: CapEnv) -> None:
    target = UserTarget(env.interp, TARGET_CODE, None, script_dir=env.secret_dir)
    try:
        refused_everything(env, target, "root")
    finally:
        target.close()


def case_cap_other_user(env: CapEnv) -> None:
    target = UserTarget(env.interp, TARGET_CODE, OTHER_USER)
    try:
        refused_everything(env, target, "uid %d" % OTHER_USER)
    finally:
        target.close()


def case_cap_own_nondumpable(env: CapEnv) -> None:
    probe = run(as_user_argv(NOBODY, [env.interp.python, "-c", "import ctypes"]))
    if probe.returncode != 0:
        raise Skip("%s has no ctypes (to call prctl)" % env.interp.python)
    target = UserTarget(env.interp, NONDUMPABLE_CODE, NOBODY)
    try:
        refused_everything(env, target, "nobody's non-dumpable")
    finally:
        target.close()


def works_on_own(env: CapEnv) -> None:
    target = UserTarget(env.interp, TARGET_CODE, NOBODY)
    try:
        pid = str(target.pid)
        for mode in ([], ["--blocking"]):
            r = env.pyflame("dump", "-p", pid, "--json", *mode)
            expect_code(r, EXIT_OK)
            if SECRET not in r.stdout_text:
                raise Failure("nobody's own target was not read\n%s" % r.describe())
            out = os.path.join(env.nobody_dir, "own%s.txt" % "".join(mode))
            r = env.pyflame("record", "-p", pid, "-d", "1", "--idle", "-o", out, *mode)
            expect_code(r, EXIT_OK)
            st = os.stat(out)
            if st.st_uid != NOBODY:
                raise Failure("%s belongs to uid %d, not the caller" % (out, st.st_uid))
            with open(out) as f:
                if SECRET not in f.read():
                    raise Failure("the profile of nobody's own target lacks %s\n%s" % (SECRET, r.describe()))
            target.check_untouched()
    finally:
        target.close()


def case_cap_own_target(env: CapEnv) -> None:
    works_on_own(env)


YAMA = "/proc/sys/kernel/yama/ptrace_scope"


def case_cap_own_target_yama(env: CapEnv) -> None:
    if not os.path.exists(YAMA):
        raise Skip("this kernel has no Yama (%s is missing): cannot raise ptrace_scope to 1" % YAMA)
    with open(YAMA) as f:
        old = f.read().strip()
    try:
        try:
            with open(YAMA, "w") as f:
                f.write("1")
        except OSError as e:
            raise Skip("cannot set kernel.yama.ptrace_scope=1 here: %s" % e)
        # Without the capability, the kernel now refuses nobody's own target.
        plain = os.path.join(env.work, "plain-" + os.path.basename(env.binary))
        shutil.copy(env.binary, plain)  # a copy has no capability
        os.chmod(plain, 0o755)
        target = UserTarget(env.interp, TARGET_CODE, NOBODY)
        try:
            r = run(as_user_argv(NOBODY, [plain, "dump", "-p", str(target.pid)]))
            if r.returncode != EXIT_PERMISSION:
                raise Skip("ptrace_scope=1 does not stop an unprivileged pyflame here\n%s" % r.describe())
        finally:
            target.close()
        works_on_own(env)
    finally:
        with open(YAMA, "w") as f:
            f.write(old)


def case_cap_launch(env: CapEnv) -> None:
    """Launch mode runs the command as the caller, with no capability."""
    caps = os.path.join(env.nobody_dir, "caps.txt")
    out = os.path.join(env.nobody_dir, "launch.txt")
    code = ("import time\n"
            "open(%r, 'w').write([l for l in open('/proc/self/status') if l.startswith('CapPrm')][0])\n"
            "def %s():\n"
            "    t = time.time()\n"
            "    while time.time() < t + 1: pass\n"
            "%s()\n" % (caps, SECRET, SECRET))
    r = env.pyflame("record", "-o", out, "--", env.interp.python, "-c", code)
    expect_code(r, EXIT_OK)
    with open(caps) as f:
        line = f.read()
    if int(line.split()[1], 16) != 0:
        raise Failure("the launched command holds capabilities: %s" % line.strip())
    with open(out) as f:
        if SECRET not in f.read():
            raise Failure("the launched command was not profiled\n%s" % r.describe())
    if os.stat(out).st_uid != NOBODY:
        raise Failure("%s does not belong to the caller" % out)


def case_cap_output_as_caller(env: CapEnv) -> None:
    """Output paths are opened with the caller's rights: a root-only directory is refused."""
    target = UserTarget(env.interp, TARGET_CODE, NOBODY)
    try:
        out = os.path.join(env.secret_dir, "out.txt")
        r = env.pyflame("record", "-p", str(target.pid), "-d", "1", "-o", out)
        expect_code(r, EXIT_USAGE, "permission denied")
        if os.path.exists(out):
            raise Failure("nobody wrote into root's 0700 directory")
    finally:
        target.close()


CAP_CASES = [
    ("cap_root_target", case_cap_root_target),
    ("cap_other_user", case_cap_other_user),
    ("cap_own_nondumpable", case_cap_own_nondumpable),
    ("cap_own_target", case_cap_own_target),
    ("cap_own_target_yama", case_cap_own_target_yama),
    ("cap_launch", case_cap_launch),
    ("cap_output_as_caller", case_cap_output_as_caller),
]


# ------------------------------------------------------------------ output


class OutEnv:
    def __init__(self, binary: str, interp: Interpreter) -> None:
        self.binary = binary
        self.interp = interp
        self.work = tempfile.mkdtemp(prefix="pyflame-output-")
        os.chmod(self.work, 0o755)
        self.target = UserTarget(interp, TARGET_CODE, None)

    def record(self, *args: str, **kw) -> Result:
        return run([self.binary, "record", "-p", str(self.target.pid), "-d", "0.5", "--idle"] + list(args),
                   cwd=self.work, **kw)

    def check_profile(self, text: str, what: str) -> None:
        if SECRET not in text:
            raise Failure("%s holds no profile (%r...)" % (what, text[:200]))

    def leftovers(self, directory: Optional[str] = None) -> List[str]:
        directory = directory or self.work
        return [n for n in os.listdir(directory) if n.startswith(".")]

    def close(self) -> None:
        self.target.close()
        shutil.rmtree(self.work, ignore_errors=True)


def mknod(env: OutEnv, name: str, minor: int) -> str:
    if os.geteuid() != 0:
        raise Skip("needs root to make a device node")
    path = os.path.join(env.work, name)
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, minor))
        with open(path, "wb") as f:
            f.write(b"") if minor == 3 else None
    except OSError as e:
        raise Skip("cannot make and open a device node in %s (nodev?): %s" % (env.work, e))
    return path


def case_out_device(env: OutEnv) -> None:
    null = mknod(env, "null", 3)
    r = env.record("-o", null)
    expect_code(r, EXIT_OK)
    if not stat.S_ISCHR(os.lstat(null).st_mode):
        raise Failure("%s is no longer a character device\n%s" % (null, r.describe()))
    if env.leftovers():
        raise Failure("left behind: %s" % env.leftovers())


def case_out_full_device(env: OutEnv) -> None:
    full = mknod(env, "full", 7)
    r = env.record("-o", full)
    if r.returncode in (EXIT_OK, None) or "no space" not in r.stderr_text.lower():
        raise Failure("writing to a full device must fail with a message\n%s" % r.describe())
    if "written" in r.stderr_text:
        raise Failure("claims the profile was written\n%s" % r.describe())
    if not stat.S_ISCHR(os.lstat(full).st_mode):
        raise Failure("%s is no longer a character device" % full)


def case_out_stdout_links(env: OutEnv) -> None:
    link = os.path.join(env.work, "stdout")
    os.symlink("/proc/self/fd/1", link)
    for path in (link, "/proc/self/fd/1", "/dev/stdout", "-"):
        r = env.record("-o", path)
        expect_code(r, EXIT_OK)
        env.check_profile(r.stdout_text, "standard output for -o %s" % path)
    if not os.path.islink(link):
        raise Failure("the symbolic link %s was replaced" % link)
    if not os.path.islink("/dev/stdout"):
        raise Failure("/dev/stdout was replaced")
    if os.path.exists(os.path.join(env.work, "-")):
        raise Failure("-o - made a file named '-'")
    if env.leftovers():
        raise Failure("left behind: %s" % env.leftovers())


def case_out_fifo(env: OutEnv) -> None:
    fifo = os.path.join(env.work, "fifo")
    os.mkfifo(fifo)
    got = {}

    def reader() -> None:
        with open(fifo, "rb") as f:
            got["data"] = f.read()
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    r = env.record("-o", fifo)
    expect_code(r, EXIT_OK)
    t.join(10)
    if t.is_alive():
        # Unblock the reader so the thread ends.
        with open(fifo, "wb"):
            pass
        raise Failure("the FIFO's reader is still blocked: the FIFO was not written\n%s" % r.describe())
    env.check_profile(got.get("data", b"").decode("utf-8", "replace"), "the FIFO's reader")
    if not stat.S_ISFIFO(os.lstat(fifo).st_mode):
        raise Failure("%s is no longer a FIFO" % fifo)


def case_out_umask(env: OutEnv) -> None:
    for mask, want in ((0o077, 0o600), (0o022, 0o644), (0o002, 0o664)):
        out = os.path.join(env.work, "umask-%03o.txt" % mask)
        argv = ["/bin/sh", "-c", "umask %03o; exec \"$@\"" % mask, "sh", env.binary, "record", "-p",
                str(env.target.pid), "-d", "0.3", "--idle", "-o", out]
        r = run(argv)
        expect_code(r, EXIT_OK)
        mode = stat.S_IMODE(os.stat(out).st_mode)
        if mode != want:
            raise Failure("umask %03o: %s has mode %03o, expected %03o" % (mask, out, mode, want))


def case_out_keeps_mode_owner(env: OutEnv) -> None:
    if os.geteuid() != 0:
        raise Skip("needs root to give the file another owner")
    out = os.path.join(env.work, "kept.txt")
    with open(out, "w") as f:
        f.write("old\n")
    os.chmod(out, 0o640)
    os.chown(out, OTHER_USER, OTHER_USER)
    r = env.record("-o", out)
    expect_code(r, EXIT_OK)
    st = os.stat(out)
    with open(out) as f:
        env.check_profile(f.read(), out)
    if stat.S_IMODE(st.st_mode) != 0o640 or st.st_uid != OTHER_USER or st.st_gid != OTHER_USER:
        raise Failure("%s: mode %03o owner %d:%d, expected 640 %d:%d"
                      % (out, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, OTHER_USER, OTHER_USER))


def run_with_stdout(argv: Sequence[str], stdout) -> Result:
    start = time.monotonic()
    proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        _, err = proc.communicate(timeout=PROFILER_TIMEOUT)
        code: Optional[int] = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
        code = None
    return Result(list(argv), code, b"", err, time.monotonic() - start)


def case_out_stdout_full(env: OutEnv) -> None:
    if not os.path.exists("/dev/full"):
        raise Skip("no /dev/full")
    pid = str(env.target.pid)
    for argv in ([env.binary, "dump", "-p", pid], [env.binary, "dump", "-p", pid, "--json"],
                 [env.binary, "record", "-p", pid, "-d", "0.3", "--idle"]):
        with open("/dev/full", "wb") as full:
            r = run_with_stdout(argv, full)
        if r.returncode in (EXIT_OK, None) or "no space" not in r.stderr_text.lower():
            raise Failure("standard output on /dev/full must fail with a message\n%s" % r.describe())
        if "profile written" in r.stderr_text:
            raise Failure("claims the profile was written\n%s" % r.describe())


def case_out_closed_pipe(env: OutEnv) -> None:
    pid = str(env.target.pid)
    for argv in ([env.binary, "dump", "-p", pid], [env.binary, "record", "-p", pid, "-d", "0.3", "--idle"]):
        rfd, wfd = os.pipe()
        os.close(rfd)
        with os.fdopen(wfd, "wb") as w:
            r = run_with_stdout(argv, w)
        # The shell's convention: killed by SIGPIPE (141 in a shell), never exit 0.
        if r.returncode != -signal.SIGPIPE:
            raise Failure("a closed pipe must end pyflame by SIGPIPE, got %s\n%s" % (r.status(), r.describe()))
        if "profile written" in r.stderr_text:
            raise Failure("claims the profile was written\n%s" % r.describe())


def case_out_head(env: OutEnv) -> None:
    # Much more output than a pipe holds (64 KiB): a flamechart at 2000/s.
    args = "record -p %d -d 1 --rate 2000 --idle --threads -f flamechart" % env.target.pid
    size = len(run([env.binary] + args.split()).stdout)
    if size < 1 << 18:
        raise Skip("the flamechart is only %d bytes: a pipe could hold it" % size)
    cmd = ("%s %s | head -1 >/dev/null; echo \"status ${PIPESTATUS[0]}\" >&2" % (env.binary, args))
    r = run(["bash", "-c", cmd])
    lines = [l for l in r.stderr_text.splitlines() if l.strip()]
    status = [l for l in lines if l.startswith("status ")]
    others = [l for l in lines if not l.startswith("status ")]
    # head is gone long before the profile is all written: EPIPE for sure.
    if not status or status[0] != "status 141":
        raise Failure("expected status 141 (SIGPIPE)\n%s" % r.describe())
    if others:
        raise Failure("`| head -1` is not quiet: %s\n%s" % (others, r.describe()))


# A sanitized profiler starts several times slower (scripts/sanitize.sh
# sets the scale): the waits for it to be recording stretch with it.
STARTUP_SCALE = float(os.environ.get("PYFLAME_TEST_TIMEOUT_SCALE", "1"))


def case_out_signals(env: OutEnv) -> None:
    for sig in (signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM):
        out = os.path.join(env.work, "sig-%s.txt" % sig.name)
        proc = subprocess.Popen([env.binary, "record", "-p", str(env.target.pid), "--idle", "-o", out],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        try:
            time.sleep(0.7 * STARTUP_SCALE)
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=PROFILER_TIMEOUT)
        finally:
            kill_group(proc)
            proc.wait()
        if proc.returncode != 128 + sig:
            raise Failure("%s: expected exit %d, got %s\n%s"
                          % (sig.name, 128 + sig, proc.returncode, err.decode(errors="replace")))
        if not os.path.exists(out):
            raise Failure("%s: no profile written" % sig.name)
        with open(out) as f:
            env.check_profile(f.read(), "%s after %s" % (out, sig.name))
        if env.leftovers():
            raise Failure("%s: left behind %s" % (sig.name, env.leftovers()))


def case_out_stale_temp(env: OutEnv) -> None:
    """A temporary file a SIGKILLed run left behind does not stop the next run."""
    out = os.path.join(env.work, "stale.txt")
    proc = subprocess.Popen([env.binary, "record", "-p", str(env.target.pid), "--idle", "-o", out],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    time.sleep(0.5 * STARTUP_SCALE)
    kill_group(proc)
    proc.wait()
    left = env.leftovers()
    if not left:
        raise Failure("expected the SIGKILLed run to leave its temporary file")
    r = env.record("-o", out)
    expect_code(r, EXIT_OK)
    with open(out) as f:
        env.check_profile(f.read(), out)
    for name in left:
        os.unlink(os.path.join(env.work, name))


OUT_CASES = [
    ("out_device", case_out_device),
    ("out_full_device", case_out_full_device),
    ("out_stdout_links", case_out_stdout_links),
    ("out_fifo", case_out_fifo),
    ("out_umask", case_out_umask),
    ("out_keeps_mode_owner", case_out_keeps_mode_owner),
    ("out_stdout_full", case_out_stdout_full),
    ("out_closed_pipe", case_out_closed_pipe),
    ("out_head", case_out_head),
    ("out_signals", case_out_signals),
    ("out_stale_temp", case_out_stale_temp),
]


def world_runnable(path: str) -> bool:
    """Whether anyone may run PATH: the file world-readable and -executable,
    every directory above it world-searchable (nobody must be able to read
    the interpreter's ELF files through /proc/PID/root as well)."""
    path = os.path.realpath(path)
    try:
        if os.stat(path).st_mode & 0o005 != 0o005:
            return False
        d = os.path.dirname(path)
        while True:
            if not os.stat(d).st_mode & 0o001:
                return False
            if d == "/":
                return True
            d = os.path.dirname(d)
    except OSError:
        return False


def choose(manifest: str, bin_dir: str, need_nobody: bool):
    """The first unchrooted interpreter with a built binary (and, for the
    capability group, one that nobody can run)."""
    for interp in read_manifest(manifest):
        binary = os.path.join(bin_dir, "pyflame" + interp.minor)
        if interp.chrooted or not os.access(binary, os.X_OK):
            continue
        if need_nobody and not world_runnable(interp.python):
            continue
        return binary, interp
    raise Missing("no unchrooted interpreter in %s%s has a pyflame binary in %s"
               % (manifest, " that nobody can run" if need_nobody else "", bin_dir))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--manifest", default=DEFAULT_MANIFEST)
    parser.add_argument("--group", choices=("capability", "setuid", "output"), required=True)
    parser.add_argument("--case", action="append", help="run only these cases")
    args = parser.parse_args()
    cases = Cases()
    try:
        privileged = args.group in ("capability", "setuid")
        if privileged and os.geteuid() != 0:
            raise Skip("needs root (to install a privileged copy and run it as uid %d)" % NOBODY)
        binary, interp = choose(args.manifest, args.bin_dir, privileged)
        log("hostile-user/%s: %s against %s" % (args.group, binary, interp.name))
        env = (CapEnv(binary, interp, setuid=args.group == "setuid") if privileged
               else OutEnv(binary, interp))
    except Skip as e:
        verdict = skip_verdict(e)
        log("%s: %s" % (verdict, e))
        return 1 if verdict == "FAIL" else 77
    try:
        for name, body in (CAP_CASES if privileged else OUT_CASES):
            if args.case and name not in args.case:
                continue
            cases.run(name, lambda: body(env))
    finally:
        env.close()
    return cases.summary()


if __name__ == "__main__":
    sys.exit(main())
