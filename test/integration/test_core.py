#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Integration test of `pyflameX.Y dump --core` against one interpreter.

    test_core.py --bin-dir DIR --interp NAME [--manifest PATH]

- gcore: fixture_locals.py (test_locals.py) blocked at a known point is
  dumped live (`dump --json --locals`), then `gcore`d (Debian's gdb), and
  `dump --core --json --locals` of the core must show the same threads,
  frames and variables, exactly (the fixture's variables checked as in
  test_locals.py), also through the `pyflame` wrapper;
- native: `dump --core --native`, unwound from the core's registers, is
  the live `dump --native` of the same moment, frame for frame;
- lib-search: the same core read in a mount namespace where the directory
  of the interpreter's file (libpython, or the executable of a static
  build) is hidden under an empty tmpfs: without --lib-search exit 10
  naming the file, with --lib-search DIR holding a copy the same output;
- abort: a target that calls os.abort() (C code) three functions deep dies
  of SIGABRT and the kernel writes its core where the test runs it
  (kernel.core_pattern must be a plain file name): the core shows those
  frames;
- bad cores: truncated (exit 9, "truncated"), not a core (exit 9), the
  core of a program that is not Python (exit 5), read by another
  version's binary (exit 6).

Exit 0 pass, 1 fail, 77 skip.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import resource
import shutil
import subprocess
import tempfile
from typing import Dict, List, Optional

from pyflame_test import (EXIT_NOT_PYTHON, EXIT_OK, EXIT_WRONG_VERSION, Cases, Failure,
                          Interpreter, Missing, Result, find_interpreter, log, main_wrapper,
                          profiler_path, run, DEFAULT_MANIFEST, PROFILER_TIMEOUT)
import test_locals

EXIT_BAD_CORE = 9
EXIT_MISSING_FILE = 10
GCORE_TIMEOUT = 120

ABORT_CODE = r"""
import os, sys
os.chdir(os.path.dirname(os.path.abspath(__file__)))  # the kernel writes the core here
def crash_here():
    os.abort()
def middle():
    crash_here()
def outer():
    middle()
outer()
"""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise Failure(message)


def gcore(pid: int, out_prefix: str) -> str:
    if not shutil.which("gcore"):
        raise Missing("gcore not installed (scripts/setup.sh installs gdb)")
    proc = subprocess.run(["gcore", "-o", out_prefix, str(pid)], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=GCORE_TIMEOUT)
    path = "%s.%d" % (out_prefix, pid)
    expect(proc.returncode == 0 and os.path.isfile(path),
           "gcore %d failed (exit %d)\n%s" % (pid, proc.returncode,
                                              proc.stdout.decode("utf-8", "replace")[-2000:]))
    return path


def comparable(doc: dict) -> Dict[int, list]:
    """Per thread ident, its frames as the core must show them too (what a
    core cannot tell, the kernel's idle state and thread name, left out)."""
    return {t["thread_id"]: t["frames"] for t in doc["threads"]}


def dump_core(profiler: str, core: str, *extra: str, prefix: Optional[List[str]] = None) -> Result:
    argv = (prefix or []) + [profiler, "dump", "--core", core] + list(extra)
    return run(argv, PROFILER_TIMEOUT)


def json_of(result: Result, what: str) -> dict:
    expect(result.returncode == EXIT_OK, "%s: %s\n%s" % (what, result.status(), result.describe()))
    try:
        return json.loads(result.stdout_text)
    except ValueError as e:
        raise Failure("%s: not JSON (%s)\n%s" % (what, e, result.describe()))


def interpreter_file(pid: int) -> str:
    """The host path of the file holding the target's interpreter."""
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) == 6 and os.path.basename(parts[5].strip()).startswith("libpython"):
                return parts[5].strip()
    return os.path.realpath("/proc/%d/exe" % pid)


class Shared:
    """The gcore of the locals fixture, and what it must show."""
    core = ""
    live: Dict[int, list] = {}
    interpreter_file = ""
    work = ""


def case_gcore(profiler: str, interp: Interpreter, shared: Shared) -> None:
    target, ids = test_locals.start(interp)
    with target:
        live = json_of(run([profiler, "dump", "-p", str(target.pid), "--json", "--locals"]),
                       "live dump")
        shared.interpreter_file = interpreter_file(target.pid)
        core = gcore(target.pid, os.path.join(shared.work, "core"))
        again = json_of(run([profiler, "dump", "-p", str(target.pid), "--json", "--locals"]),
                        "live dump after gcore")
        expect(target.alive(), "the target died under gcore")
    expect(comparable(live) == comparable(again),
           "the fixture moved between its two live dumps: no moment to compare with")
    shared.core, shared.live = core, comparable(live)
    result = dump_core(profiler, core, "--json", "--locals")
    doc = json_of(result, "dump --core")
    expect(doc["pid"] == target.pid, "dump --core: pid %r, the process was %d" % (doc["pid"], target.pid))
    got = comparable(doc)
    if got != shared.live:
        raise Failure("dump --core differs from the live dump:\nlive: %s\ncore: %s"
                      % (json.dumps(shared.live, indent=1)[:3000], json.dumps(got, indent=1)[:3000]))
    # The variables themselves, exactly as test_locals checks them live.
    want = test_locals.expected(interp.minor == "2.7", ids)
    main = next((frames for frames in got.values()
                 if any(f.get("function") == "inner" for f in frames)), None)
    expect(main is not None, "dump --core: no thread has the frame inner")
    problems = []
    for f in main:
        if f.get("function") in want:
            problems += test_locals.compare(f["function"], want[f["function"]], f.get("locals"))
    expect(not problems, "dump --core --locals:\n" + "\n".join(problems))
    # The wrapper picks this binary by reading the core.
    wrapper = os.path.join(os.path.dirname(profiler), "pyflame")
    if os.access(wrapper, os.X_OK):
        through = json_of(dump_core(wrapper, core, "--json", "--locals"), "pyflame dump --core")
        expect(comparable(through) == got, "the wrapper's dump --core differs from pyflame%s's"
               % interp.minor)
    text = dump_core(profiler, core)
    expect(text.returncode == EXIT_OK and "inner (" in text.stdout_text,
           "dump --core (text): %s\n%s" % (text.status(), text.describe()))
    log("gcore: %d threads, %d frames and their variables the same from the core as live "
        "(%d MiB core)" % (len(got), sum(len(v) for v in got.values()),
                           os.path.getsize(core) >> 20))


def case_native(profiler: str, interp: Interpreter, shared: Shared) -> None:
    target, _ = test_locals.start(interp)
    with target:
        live = json_of(run([profiler, "dump", "-p", str(target.pid), "--json", "--native"]),
                       "live dump --native")
        core = gcore(target.pid, os.path.join(shared.work, "native"))
    got = comparable(json_of(dump_core(profiler, core, "--json", "--native"), "dump --core --native"))
    if got != comparable(live):
        raise Failure("dump --core --native differs from the live dump --native:\nlive: %s\ncore: %s"
                      % (json.dumps(comparable(live), indent=1)[:3000], json.dumps(got, indent=1)[:3000]))
    natives = sum(1 for frames in got.values() for f in frames if f.get("kind") == "native")
    expect(natives > 0, "dump --core --native: no native frame\n%s" % json.dumps(got, indent=1)[:3000])
    log("native: %d native frames merged from the core's registers, as live" % natives)


def case_lib_search(profiler: str, interp: Interpreter, shared: Shared) -> None:
    expect(bool(shared.core), "no core (the gcore case failed)")
    if os.geteuid() != 0 or not shutil.which("unshare"):
        raise Missing("hiding a directory in a mount namespace needs root and unshare(1)")
    original = shared.interpreter_file
    copies = tempfile.mkdtemp(prefix="pyflame-libsearch-")
    try:
        shutil.copy2(original, os.path.join(copies, os.path.basename(original)))
        hidden = os.path.dirname(original)
        # Everything after `--` runs with `hidden` an empty directory.
        prefix = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                  'mount -t tmpfs pyflame-hidden "$0" && exec "$@"', hidden]
        without = dump_core(profiler, shared.core, "--json", "--locals", prefix=prefix)
        expect(without.returncode == EXIT_MISSING_FILE and original in without.stderr_text
               and "--lib-search" in without.stderr_text,
               "without --lib-search: %s, expected exit %d naming %s and --lib-search\n%s"
               % (without.status(), EXIT_MISSING_FILE, original, without.describe()))
        with_search = dump_core(profiler, shared.core, "--json", "--locals", "--lib-search",
                                "/nonexistent", "--lib-search", copies, prefix=prefix)
        got = comparable(json_of(with_search, "dump --core --lib-search"))
        expect(got == shared.live, "with --lib-search: the frames differ from the live dump")
        # A file of the same name that is another build is refused, not read.
        other = glob.glob("/root/.pyenv/versions/*/lib/libpython*.so*") + \
            glob.glob("/usr/lib/x86_64-linux-gnu/libpython3*.so.1.0")
        other = [o for o in other if os.path.realpath(o) != os.path.realpath(original)
                 and os.path.getsize(o) != os.path.getsize(original)]
        if other:
            decoy = tempfile.mkdtemp(prefix="pyflame-decoy-")
            try:
                shutil.copy2(other[0], os.path.join(decoy, os.path.basename(original)))
                wrong = dump_core(profiler, shared.core, "--lib-search", decoy, prefix=prefix)
                expect(wrong.returncode == EXIT_MISSING_FILE,
                       "a decoy %s (a copy of %s) was not refused: %s\n%s"
                       % (os.path.basename(original), other[0], wrong.status(), wrong.describe()))
            finally:
                shutil.rmtree(decoy, ignore_errors=True)
    finally:
        shutil.rmtree(copies, ignore_errors=True)
    log("lib-search: with %s hidden, exit 10 naming it; found through --lib-search" % original)


def kernel_core_name(pid: int) -> str:
    with open("/proc/sys/kernel/core_pattern") as f:
        pattern = f.read().strip()
    if not pattern or pattern.startswith("|") or "/" in pattern or "%" in pattern:
        raise Missing("kernel.core_pattern is %r: the abort case needs a plain file name "
                      "(the kernel's default, core)" % pattern)
    with open("/proc/sys/kernel/core_uses_pid") as f:
        uses_pid = f.read().strip() == "1"
    return "%s.%d" % (pattern, pid) if uses_pid else pattern


def case_abort(profiler: str, interp: Interpreter, shared: Shared) -> None:
    tmpdir = interp.temp_dir()
    try:
        os.chmod(tmpdir, 0o777)
        script = os.path.join(tmpdir, "abort_fixture.py")
        with open(script, "w") as f:
            f.write(ABORT_CODE)

        def unlimited_core() -> None:
            resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        argv = interp.command([interp.inside_path(script)])
        proc = subprocess.run(argv, env=interp.environment(), cwd=tmpdir, preexec_fn=unlimited_core,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        expect(proc.returncode == -6, "the abort fixture ended with %d, expected SIGABRT\n%s"
               % (proc.returncode, proc.stderr.decode("utf-8", "replace")[-2000:]))
        cores = [p for p in glob.glob(os.path.join(tmpdir, "core*")) if os.path.isfile(p)]
        expect(len(cores) == 1, "the kernel wrote no core in %s (found %s)" % (tmpdir, cores))
        extra = []
        if interp.chrooted:  # its maps name files inside its root
            extra = ["--lib-search", os.path.dirname(shared.interpreter_file)] \
                if shared.interpreter_file else []
        doc = json_of(dump_core(profiler, cores[0], "--json", *extra), "dump --core of the abort")
        stacks = [[(f["function"], f["line"]) for f in t["frames"] if f.get("kind", "python") == "python"]
                  for t in doc["threads"]]
        want = [("crash_here", 5), ("middle", 7), ("outer", 9), ("<module>", 10)]
        expect(want in stacks, "dump --core of the abort: stacks %s, expected %s" % (stacks, want))
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    log("abort: the kernel's core of a SIGABRT in os.abort() shows crash_here <- middle <- outer")


def case_bad_cores(profiler: str, interp: Interpreter, shared: Shared, bin_dir: str) -> None:
    expect(bool(shared.core), "no core (the gcore case failed)")
    truncated = os.path.join(shared.work, "truncated.core")
    with open(shared.core, "rb") as src, open(truncated, "wb") as dst:
        dst.write(src.read(os.path.getsize(shared.core) // 2))
    r = dump_core(profiler, truncated)
    expect(r.returncode == EXIT_BAD_CORE and "truncated" in r.stderr_text,
           "a truncated core: %s, expected exit 9 saying truncated\n%s" % (r.status(), r.describe()))
    r = dump_core(profiler, shared.interpreter_file)
    expect(r.returncode == EXIT_BAD_CORE and "not a core" in r.stderr_text,
           "an ELF file that is not a core: %s, expected exit 9\n%s" % (r.status(), r.describe()))
    r = dump_core(profiler, "/nonexistent/core")
    expect(r.returncode == EXIT_BAD_CORE and "/nonexistent/core" in r.stderr_text,
           "a missing core: %s, expected exit 9 naming it\n%s" % (r.status(), r.describe()))
    sleeper = subprocess.Popen(["sleep", "600"])
    try:
        sleep_core = gcore(sleeper.pid, os.path.join(shared.work, "sleep"))
    finally:
        sleeper.kill()
        sleeper.wait()
    r = dump_core(profiler, sleep_core)
    expect(r.returncode == EXIT_NOT_PYTHON, "the core of sleep(1): %s, expected exit %d\n%s"
           % (r.status(), EXIT_NOT_PYTHON, r.describe()))
    others = sorted(p for p in glob.glob(os.path.join(bin_dir, "pyflame[23].*"))
                    if os.path.basename(p) != "pyflame" + interp.minor)
    if others:
        r = dump_core(others[0], shared.core)
        expect(r.returncode == EXIT_WRONG_VERSION,
               "%s on a %s core: %s, expected exit %d\n%s"
               % (os.path.basename(others[0]), interp.minor, r.status(), EXIT_WRONG_VERSION,
                  r.describe()))
    log("bad cores: truncated and not-a-core exit 9, sleep(1)'s exit 5, another version's binary exit 6")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir", required=True, help="directory holding pyflameX.Y")
    parser.add_argument("--interp", required=True, help="interpreter name (manifest row)")
    parser.add_argument("--manifest", default=DEFAULT_MANIFEST)
    args = parser.parse_args()
    interp = find_interpreter(args.manifest, args.interp)
    profiler = profiler_path(args.bin_dir, interp.minor)
    shared = Shared()
    shared.work = tempfile.mkdtemp(prefix="pyflame-core-")
    cases = Cases()
    try:
        cases.run("gcore", lambda: case_gcore(profiler, interp, shared))
        cases.run("native", lambda: case_native(profiler, interp, shared))
        cases.run("lib-search", lambda: case_lib_search(profiler, interp, shared))
        cases.run("abort", lambda: case_abort(profiler, interp, shared))
        cases.run("bad cores", lambda: case_bad_cores(profiler, interp, shared, args.bin_dir))
    finally:
        shutil.rmtree(shared.work, ignore_errors=True)
    return cases.summary()


if __name__ == "__main__":
    main_wrapper(main)
