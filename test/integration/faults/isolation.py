# SPDX-License-Identifier: Apache-2.0
"""The target in another PID namespace, with a deleted executable, or its libpython inside a
chroot."""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from typing import Dict, List, Optional, Sequence, Tuple

from pyflame_test import (DEFAULT_MANIFEST, EXIT_OK, EXIT_PERMISSION, EXIT_TARGET_EXITED,
                          PROFILER_TIMEOUT, READY_TIMEOUT, TIMEOUT_SCALE, Failure, Interpreter,
                          Missing, Skip, Target, find_interpreter, log,
                          main_wrapper, profiler_path, read_line, stopped_tasks, task_states,
                          wait_until_recording)

from faults.common import *  # noqa: F401,F403  (the shared target, recorder and checks)


# For the namespace case: one busy thread (fault_busy, named pf-busy), one
# idle thread (fault_idle, named pf-idle, blocked on a lock for good) and the
# main thread blocked reading stdin. "stop" parks the busy thread (then the
# whole program is idle), "start" resumes it; each is answered "ok". Thread
# names are set through /proc/thread-self/comm, which every Python can write.
NS_CODE = r'''
import os, sys, threading
def name_thread(name):
    f = open("/proc/thread-self/comm", "w")
    f.write(name)
    f.close()
go = threading.Event()
go.set()
parked = threading.Event()
gate = threading.Lock()
gate.acquire()
named = []
def fault_busy():
    name_thread("pf-busy")
    named.append(1)
    x = 0
    while True:
        if not go.is_set():
            parked.set()
            go.wait()
        for _ in range(10000):
            x += 1
def fault_idle():
    name_thread("pf-idle")
    named.append(1)
    gate.acquire()
for target in (fault_busy, fault_idle):
    t = threading.Thread(target=target); t.daemon = True; t.start()
while len(named) < 2:
    pass
sys.stdout.write("ready\n"); sys.stdout.flush()
while True:
    line = sys.stdin.readline().strip()
    if not line:
        os._exit(0)
    if line == "stop":
        parked.clear(); go.clear(); parked.wait()
    if line == "start":
        go.set()
    sys.stdout.write("ok\n"); sys.stdout.flush()
'''


def host_thread_names(pid: int) -> Dict[int, str]:
    names = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                names[int(tid)] = f.read().strip()
        except OSError:
            pass
    return names


def check_namespace_dump(profiler: str, pid: int, what: str) -> None:
    """dump names every thread by its host TID, with its name and idle state."""
    # "ready" comes once both threads named themselves: the idle one may
    # not be in its acquire yet (no GIL holds it back on a free-threaded
    # build, whose locks also spin a moment before they sleep).
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        idle_tids = [tid for tid, name in host_thread_names(pid).items() if name == "pf-idle"]
        if idle_tids and task_states(pid).get(idle_tids[0]) == "S":
            break
        expect(time.monotonic() < deadline, "%s: the pf-idle thread never slept" % what)
        time.sleep(0.01)
    run = subprocess.run([profiler, "dump", "-p", str(pid), "--json"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, timeout=PROFILER_TIMEOUT)
    err = run.stderr.decode("utf-8", "replace")
    expect(run.returncode == EXIT_OK, "%s: dump exit %d\n%s" % (what, run.returncode, err))
    threads = json.loads(run.stdout.decode("utf-8"))["threads"]
    host = host_thread_names(pid)
    expect(len(threads) == 3, "%s: %d threads, expected 3: %s" % (what, len(threads), threads))
    by_function = {}
    for t in threads:
        functions = [f["function"] for f in t["frames"]]
        expect(t["native_id"] in host, "%s: thread %s has TID %s, not one of the target's host "
               "TIDs %s" % (what, functions, t["native_id"], sorted(host)))
        expect(t["name"] == host[t["native_id"]], "%s: thread %s (TID %s) is named %r; the host "
               "says %r" % (what, functions, t["native_id"], t["name"], host[t["native_id"]]))
        for function in ("fault_busy", "fault_idle"):
            if function in functions:
                by_function[function] = t
    expect(set(by_function) == {"fault_busy", "fault_idle"},
           "%s: no busy and idle thread in %s" % (what, threads))
    busy, idle = by_function["fault_busy"], by_function["fault_idle"]
    expect(busy["name"] == "pf-busy" and busy["idle"] is False,
           "%s: the busy thread is %r, idle %r" % (what, busy["name"], busy["idle"]))
    expect(idle["name"] == "pf-idle" and idle["idle"] is True,
           "%s: the idle thread is %r, idle %r" % (what, idle["name"], idle["idle"]))
    main = [t for t in threads if t is not busy and t is not idle][0]
    expect(main["idle"] is True, "%s: the main thread (blocked reading) is not idle: %r"
           % (what, main))


def record_namespace(profiler: str, pid: int, work: str, blocking: bool, what: str) -> Tuple[dict, list]:
    out = os.path.join(work, "ns.txt")
    stats = os.path.join(work, "ns.json")
    code, err = Recorder(record_argv(profiler, pid, out, blocking, "-d", "1", "--rate", "200",
                                     "--threads", "--stats-json", stats)).finish()
    expect(code == EXIT_OK, "%s: exit %d\n%s" % (what, code, err))
    with open(stats, encoding="utf-8") as f:
        counters = json.load(f)
    with open(out, encoding="utf-8") as f:
        stacks = parse_collapsed(f.read(), what)
    # --threads: each stack starts with "thread 'NAME' (tid TID)", TID ours.
    host = host_thread_names(pid)
    for frames, _ in stacks:
        root = re.match(r"^thread '(.*)'$", frames[0][0])
        tid = re.match(r"^tid (\d+)$", frames[0][1])
        expect(root is not None and tid is not None, "%s: stack root %r is not a named thread "
               "with a TID" % (what, frames[0]))
        expect(host.get(int(tid.group(1))) == root.group(1), "%s: thread %r (tid %s): the host's "
               "threads are %s" % (what, root.group(1), tid.group(1), host))
        if any(f == "fault_busy" for f, _ in frames):
            expect(root.group(1) == "pf-busy", "%s: fault_busy under %r" % (what, frames[0]))
    good = counters["samples"] - counters["errors"]
    expect(good >= MIN_GOOD_SAMPLES, "%s: only %d good samples in 1 s at 200/s (the claims "
           "above need %d)\n%s" % (what, good, MIN_GOOD_SAMPLES, err))
    expect(not stopped_tasks(pid), "%s: target left stopped" % what)
    return counters, stacks


def case_namespace(profiler: str, interp: Interpreter, work: str, repeat: int) -> None:
    unshare = shutil.which("unshare")
    if unshare is None:
        raise Skip("unshare is not installed")
    if os.geteuid() != 0:
        raise Skip("needs root for unshare --pid --mount-proc")
    tmpdir = interp.temp_dir()
    os.chmod(tmpdir, 0o755)
    script = os.path.join(tmpdir, "fault_fixture.py")
    with open(script, "w") as f:
        f.write(NS_CODE)
    argv = [unshare, "--pid", "--fork", "--mount-proc"] + interp.command([interp.inside_path(script)])
    proc = subprocess.Popen(argv, env=interp.environment(), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    shim = _Shim(proc)

    def command(line: str) -> None:
        proc.stdin.write((line + "\n").encode())
        proc.stdin.flush()
        answer = read_line(proc.stdout.fileno(), shim, READY_TIMEOUT, "namespaced fixture")
        expect(answer.strip() == b"ok", "the fixture answered %r to %s" % (answer, line))

    try:
        read_line(proc.stdout.fileno(), shim, READY_TIMEOUT, "namespaced fixture")
        pid = _python_child(proc.pid, os.path.basename(interp.python))
        with open("/proc/%d/status" % pid) as f:
            nspid = [l.split()[1:] for l in f if l.startswith("NSpid:")]
        expect(bool(nspid) and len(nspid[0]) == 2 and nspid[0][1] == "1",
               "the target %d is not PID 1 of a new namespace: NSpid %s" % (pid, nspid))
        for blocking in MODES:
            for n in range(repeat):
                what = "%s #%d" % ("--blocking" if blocking else "nonblocking", n + 1)
                if not blocking:
                    check_namespace_dump(profiler, pid, "dump " + what)
                # Busy: every good sample holds the busy thread, and only it.
                counters, stacks = record_namespace(profiler, pid, work, blocking, "busy " + what)
                good = counters["samples"] - counters["errors"]
                busy = samples_in(stacks, "fault_busy")
                total = sum(count for _, count in stacks)
                # --blocking is left out here: its stops wake the idle
                # threads, which then wait for the GIL the busy thread holds
                # and are seen running by the next sample (a target in our
                # own namespace shows the same; docs/reliability.md).
                expect(blocking or busy == total, "%s: %d of %d samples are not the busy "
                       "thread's: %s" % (what, total - busy, total, stacks))
                expect(busy >= 0.8 * good, "%s: the busy thread is in %d of %d good samples"
                       % (what, busy, good))
                # All idle: no sample at all (idle threads are left out).
                command("stop")
                counters, stacks = record_namespace(profiler, pid, work, blocking, "idle " + what)
                command("start")
                expect(blocking or counters["thread_samples"] == 0 and not stacks,
                       "%s: an idle program recorded %d busy thread samples in %d samples: %s"
                       % (what, counters["thread_samples"], counters["samples"], stacks))
        log("namespace: PID 1 of its own PID+mount namespace (host PID %d): dump gave host TIDs, "
            "names and idle states; recorded busy and all-idle %d times per mode (host TIDs and "
            "names in both; only the busy thread, and nothing of the idle program, nonblocking)"
            % (pid, repeat))
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        shutil.rmtree(tmpdir, ignore_errors=True)


class _Shim:
    """Enough of a Target for read_line's error messages."""

    def __init__(self, proc):
        self.proc = proc

    def stderr_text(self) -> str:
        return ""


def _python_child(pid: int, name: str, timeout: float = 10) -> int:
    """The descendant of PID whose comm starts like NAME (unshare forks, chroot execs)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        todo = [pid]
        while todo:
            p = todo.pop()
            try:
                with open("/proc/%d/comm" % p) as f:
                    comm = f.read().strip()
                with open("/proc/%d/task/%d/children" % (p, p)) as f:
                    kids = [int(k) for k in f.read().split()]
            except OSError:
                continue
            if p != pid and name.startswith(comm[:15]):
                return p
            todo.extend(kids)
        time.sleep(0.05)
    raise Failure("no %s process under %d" % (name, pid))


def case_deleted_exe(profiler: str, interp: Interpreter, work: str, repeat: int) -> None:
    if interp.mode != "static" or interp.chrooted or interp.env:
        raise Skip("needs a static, unchrooted interpreter (e.g. debian12-3.11); %s is not"
                   % interp.name)
    for how in ("deleted", "replaced"):
        for n in range(repeat):
            what = "%s #%d" % (how, n + 1)
            bindir = tempfile.mkdtemp(prefix="pyflame-exe-")
            os.chmod(bindir, 0o755)
            copy = os.path.join(bindir, os.path.basename(interp.python))
            shutil.copy(interp.python, copy)
            os.chmod(copy, 0o755)
            moved = Interpreter(interp.name, interp.minor, interp.version, interp.mode, interp.root,
                                copy, interp.headers, interp.env)
            try:
                with Code(moved, SPIN_CODE % {"workers": 1}) as target:
                    if how == "deleted":
                        os.unlink(copy)
                    else:
                        # Another program under the same name: its symbols are wrong.
                        other = copy + ".new"
                        shutil.copy("/bin/sleep", other)
                        os.rename(other, copy)
                    with open("/proc/%d/maps" % target.pid) as f:
                        expect("(deleted)" in f.read(), "%s: maps do not show the file deleted" % what)
                    out = os.path.join(work, "deleted.txt")
                    code, err = Recorder(record_argv(profiler, target.pid, out, False, "-d", "1",
                                                     "--rate", "200", "--idle", "--stats-json",
                                                     out + ".json")).finish()
                    expect(code == EXIT_OK, "%s: exit %d\n%s" % (what, code, err))
                    with open(out, encoding="utf-8") as f:
                        spins = samples_in(parse_collapsed(f.read(), what), "fault_spin")
                    floor = spin_floor(out + ".json", what)
                    expect(spins >= floor, "%s: %d fault_spin samples, expected at least %.0f\n%s"
                           % (what, spins, floor, err))
            finally:
                shutil.rmtree(bindir, ignore_errors=True)
        log("deleted_exe: executable %s after start: recorded correctly %d times" % (how, repeat))


def _mounts_under(path: str) -> List[str]:
    prefix = os.path.realpath(path).rstrip("/") + "/"
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if (p + "/").startswith(prefix)]


def case_chroot_libpython(profiler: str, interp: Interpreter, work: str, repeat: int) -> None:
    """An --enable-shared interpreter (pyenv) in a chroot, its tree bind-mounted
    (in a private mount namespace, like a container's volume) at the same
    path or another one, or copied in. /proc/PID/maps names its libpython by
    a path that is neither the host's file nor one under /proc/PID/root."""
    if interp.mode != "shared" or interp.chrooted or interp.env:
        raise Skip("needs an --enable-shared, unchrooted interpreter (pyenv); %s is not" % interp.name)
    if os.geteuid() != 0:
        raise Skip("needs root for chroot and bind mounts")
    tools = {t: shutil.which(t, path="/usr/sbin:/usr/bin:/sbin:/bin")
             for t in ("unshare", "chroot", "mount", "setpriv", "ldd")}
    missing = [t for t, path in tools.items() if path is None]
    if missing:
        raise Skip("%s not installed" % ", ".join(missing))
    prefix = os.path.dirname(os.path.dirname(interp.python))
    libs = [f for f in os.listdir(os.path.join(prefix, "lib"))
            if f.startswith("libpython%s" % interp.minor) and ".so." in f]
    stdlib = os.path.join(prefix, "lib", "python%s" % interp.minor)
    if len(libs) != 1 or not os.path.isdir(stdlib):
        raise Skip("%s: no single libpython%s*.so.* and stdlib under %s/lib"
                   % (interp.name, interp.minor, prefix))
    libpython = os.path.join(prefix, "lib", libs[0])
    # The C library and loader the interpreter needs, copied in.
    ldd = subprocess.run([tools["ldd"], interp.python, libpython], stdout=subprocess.PIPE,
                         universal_newlines=True, check=True).stdout
    system_libs = sorted({w for w in ldd.split() if w.startswith("/") and not w.startswith(prefix)})
    nobody = os.path.join(work, os.path.basename(profiler))
    shutil.copy(profiler, nobody)
    os.chmod(nobody, 0o755)
    bin_dir = os.path.dirname(profiler)
    detect = [p for p in (os.path.join(bin_dir, "pyflame-detect"),
                          os.path.join(bin_dir, "..", "lib", "pyflame", "pyflame-detect"))
              if os.path.exists(p)]
    variants = [
        # name, where the tree is inside, bind the whole tree (else copy the
        # binaries and bind the stdlib), run the profiler unprivileged
        ("bind, same path", prefix, True, False),
        ("bind, other path", "/opt/python", True, False),
        ("copy, other path", "/opt/python", False, False),
        # CAP_SYS_PTRACE alone may not open /proc/PID/map_files: the fallback.
        ("copy, other path, profiler uid 65534 with CAP_SYS_PTRACE only", "/opt/python", False, True),
    ]
    for name, inside, bind_all, unprivileged in variants:
        for n in range(repeat):
            what = "%s #%d" % (name, n + 1)
            root = tempfile.mkdtemp(prefix="chroot-", dir=work)
            os.chmod(root, 0o755)
            proc = None
            try:
                for lib in system_libs:
                    dest = root + lib
                    os.makedirs(os.path.dirname(dest), exist_ok=True)
                    shutil.copy(lib, dest)
                binds = []
                if bind_all:
                    binds.append((prefix, inside))
                else:
                    for src in (interp.python, libpython):
                        dest = root + inside + src[len(prefix):]
                        os.makedirs(os.path.dirname(dest), exist_ok=True)
                        shutil.copy(src, dest)
                    binds.append((stdlib, inside + stdlib[len(prefix):]))
                for _, dest in binds:
                    os.makedirs(root + dest, exist_ok=True)
                os.makedirs(os.path.join(root, "tmp"), exist_ok=True)
                with open(os.path.join(root, "tmp", "fault_fixture.py"), "w") as f:
                    f.write(SPIN_CODE % {"workers": 1})
                python = inside + interp.python[len(prefix):]
                env = interp.environment()
                env["PYTHONDONTWRITEBYTECODE"] = "1"
                if inside != prefix:
                    env["LD_LIBRARY_PATH"] = inside + "/lib"  # its RUNPATH names the host's tree
                # unshare --mount (no fork): the mounts live and die with the
                # target's own mount namespace; the host never sees them.
                script = ('set -e; root=$1; shift; while [ "$1" != -- ]; do '
                          'mount --bind "$1" "$root$2"; shift 2; done; shift; exec "$@"')
                argv = [tools["unshare"], "--mount", "--propagation", "private", "sh", "-c", script,
                        "sh", root]
                for src, dest in binds:
                    argv += [src, dest]
                argv += ["--", tools["chroot"], root, python, "/tmp/fault_fixture.py"]
                proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, start_new_session=True)
                shim = _Shim(proc)
                read_line(proc.stdout.fileno(), shim, READY_TIMEOUT, "chrooted fixture")
                pid = proc.pid  # unshare, sh and chroot exec: the pid is the interpreter's
                with open("/proc/%d/maps" % pid) as f:
                    mapped = [l.split(None, 5)[5].strip() for l in f
                              if len(l.split(None, 5)) == 6 and libs[0] in l]
                expect(bool(mapped), "%s: %s is not mapped" % (what, libs[0]))
                where = mapped[0]
                # Neither the old way (under /proc/PID/root) nor, for a bind
                # mount, the host path opens it: the test would prove nothing.
                expect(not os.path.exists("/proc/%d/root%s" % (pid, where)),
                       "%s: %s exists under the target's root" % (what, where))
                if unprivileged:
                    start_end = [l.split()[0] for l in open("/proc/%d/maps" % pid) if libs[0] in l][0]
                    probe = subprocess.run(
                        [tools["setpriv"], "--reuid=65534", "--regid=65534", "--clear-groups",
                         "--inh-caps=+sys_ptrace", "--ambient-caps=+sys_ptrace", "head", "-c1",
                         "/proc/%d/map_files/%s" % (pid, start_end)],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    if probe.returncode == 0:
                        log("NOTE: %s: this kernel lets CAP_SYS_PTRACE open map_files; the "
                            "fallback is not exercised" % what)
                prefix_argv = ([tools["setpriv"], "--reuid=65534", "--regid=65534", "--clear-groups",
                                "--inh-caps=+sys_ptrace", "--ambient-caps=+sys_ptrace"]
                               if unprivileged else [])
                binary = nobody if unprivileged else profiler
                # "ready" comes just before the main thread calls fault_spin:
                # a dump in between shows it one frame short (CI: fault_main
                # at the call, a worker holding the GIL). Dump again then.
                for _ in range(50):
                    run = subprocess.run(prefix_argv + [binary, "dump", "-p", str(pid)],
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         timeout=PROFILER_TIMEOUT, universal_newlines=True)
                    if run.returncode != EXIT_OK or "fault_spin" in run.stdout:
                        break
                    time.sleep(0.1)
                expect(run.returncode == EXIT_OK and "fault_spin" in run.stdout
                       and ("Python %s" % interp.version) in run.stdout,
                       "%s: dump of %s (maps: %s) exit %d\n%s%s"
                       % (what, pid, where, run.returncode, run.stdout, run.stderr))
                if detect and not unprivileged:
                    run = subprocess.run([detect[0], "--pid", str(pid)], stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, timeout=PROFILER_TIMEOUT,
                                         universal_newlines=True)
                    expect(run.returncode == 0 and run.stdout.split()[:1] == [interp.minor],
                           "%s: pyflame-detect --pid %d: exit %d\n%s%s"
                           % (what, pid, run.returncode, run.stdout, run.stderr))
            finally:
                if proc is not None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.communicate()
                left = _mounts_under(root)
                if left:  # never delete through a mount (it would be the interpreter's tree)
                    raise Failure("%s: mounts left on the host under %s: %s" % (what, root, left))
                shutil.rmtree(root, ignore_errors=True)
        log("chroot_libpython: %s: dump and pyflame-detect read it %d times (maps: %s)"
            % (name, repeat, where))
