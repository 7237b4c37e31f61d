#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Integration tests of the `pyflame` wrapper (frontends/pyflame) and its
helper pyflame-detect: which pyflameX.Y it picks, what it passes on, how it
fails.

    test_wrapper.py --bin-dir DIR [--manifest PATH] --detect NAME
        detection for the manifest's interpreter NAME: by PID (dump, record,
        classic -p forms; one real dump through the wrapper) and by command
        (record -- PY, -t PY, a #! script, #!/usr/bin/env, a PATH lookup, a
        copy under a misleading name)
    test_wrapper.py --bin-dir DIR [--manifest PATH] --args
        arguments with spaces, quotes, globs, leading dashes, option values
        that look like options reach the binary unchanged; --list
    test_wrapper.py --bin-dir DIR [--manifest PATH] --errors
        missing versioned binary, non-Python target, PyPy-like target, no
        such PID, bad command lines

The wrapper's print mode (PYFLAME_WRAPPER_PRINT=1: the chosen binary and its
arguments, NUL-separated, instead of exec) lets detection be asserted without
profiling. Prints PASS/FAIL/SKIP per case; exit 0, 1, or 77 if all skipped.
"""

from __future__ import annotations

import argparse
import atexit
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Sequence

from pyflame_test import (build_key, free_pid, Cases, DEFAULT_MANIFEST, EXIT_NO_PROCESS, EXIT_NOT_PYTHON, EXIT_OK,
                          EXIT_USAGE, EXIT_WRONG_VERSION, PINGPONG_CODE, PROFILER_TIMEOUT,
                          TEST_FAIL, TEST_PASS, TEST_SKIP, Failure, Interpreter, Result, Skip,
                          find_interpreter, log, parse_json_document, read_manifest, run,
                          start_python)

EXIT_FAILURE = 1
HERE = os.path.dirname(os.path.abspath(__file__))


class Wrapper:
    """The wrapper of a build tree (bin/pyflame, lib/pyflame/pyflame-detect)."""

    def __init__(self, bin_dir: str) -> None:
        self.bin_dir = os.path.abspath(bin_dir)
        self.path = os.path.join(self.bin_dir, "pyflame")
        self.detect = os.path.normpath(os.path.join(self.bin_dir, "..", "lib", "pyflame",
                                                    "pyflame-detect"))
        for path in (self.path, self.detect):
            if not os.access(path, os.X_OK):
                raise Skip("%s is not built" % path)

    def binary(self, minor: str) -> str:
        path = os.path.join(self.bin_dir, "pyflame" + minor)
        if not os.access(path, os.X_OK):
            raise Skip("pyflame%s is not built" % minor)
        return path


def run_env(argv: Sequence[str], env: Dict[str, str], cwd: Optional[str] = None) -> Result:
    """Runs ARGV with exactly ENV, in CWD, with a deadline."""
    return run(argv, env=env, cwd=cwd)


# A PATH with only the tools the wrapper uses besides its helper (sort and
# sed for --list, readlink when run through a link), so that no pyflameX.Y
# installed on the system is found.
TOOLS_DIR = tempfile.mkdtemp(prefix="pyflame-wrapper-tools-")
for _tool in ("sort", "sed", "readlink"):
    if shutil.which(_tool):
        os.symlink(shutil.which(_tool), os.path.join(TOOLS_DIR, _tool))
atexit.register(shutil.rmtree, TOOLS_DIR, True)


def base_env(path: Optional[str] = None) -> Dict[str, str]:
    env = {"PATH": path if path is not None else os.environ.get("PATH", "/usr/bin:/bin"),
           "LC_ALL": "C.UTF-8"}
    return env


def printed(wrapper: str, args: Sequence[str], env: Optional[Dict[str, str]] = None,
            cwd: Optional[str] = None) -> List[str]:
    """What WRAPPER would exec for ARGS: [binary, arg...] from its print mode."""
    env = dict(env or base_env())
    env["PYFLAME_WRAPPER_PRINT"] = "1"
    result = run_env([wrapper] + list(args), env, cwd)
    if result.returncode != EXIT_OK:
        raise Failure("print mode failed\n%s" % result.describe())
    if not result.stdout.endswith(b"\0"):
        raise Failure("print mode output is not NUL-terminated\n%s" % result.describe())
    return [part.decode("utf-8", "surrogateescape") for part in result.stdout[:-1].split(b"\0")]


def expect_exec(wrapper: str, args: Sequence[str], binary: str,
                env: Optional[Dict[str, str]] = None, cwd: Optional[str] = None) -> None:
    got = printed(wrapper, args, env, cwd)
    want = [binary] + list(args)
    if got != want:
        raise Failure("wrapper would run\n    %r\nexpected\n    %r" % (got, want))


def expect_error(result: Result, code: int, *needles: str) -> None:
    if result.returncode != code:
        raise Failure("expected exit %d, got %s\n%s" % (code, result.status(), result.describe()))
    lines = result.stderr_text.strip().splitlines()
    if len(lines) != 1 or not lines[0].startswith("pyflame"):
        raise Failure("expected one 'pyflame...' line on stderr\n%s" % result.describe())
    missing = [n for n in needles if n not in lines[0]]
    if missing:
        raise Failure("message lacks %s\n%s" % (missing, result.describe()))
    if result.stdout:
        raise Failure("unexpected output on stdout\n%s" % result.describe())


def make_executable(path: str, text: str) -> str:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, 0o755)
    return path


def first_host_interpreter(manifest: str) -> Interpreter:
    """An interpreter that runs on the host, to have a Python process at hand."""
    for interp in read_manifest(manifest):
        if not interp.chrooted and os.access(interp.python, os.X_OK):
            return interp
    raise Skip("no interpreter in %s runs on the host" % manifest)


# ---------------------------------------------------------------- detection


def case_detect_pid(wrapper: Wrapper, interp: Interpreter) -> None:
    binary = wrapper.binary(interp.minor)
    with start_python(interp, PINGPONG_CODE) as target:
        pid = str(target.pid)
        for args in (["dump", "-p", pid],
                     ["dump", "--json", "--pid=" + pid],
                     ["record", "-d", "1", "-p", pid, "-o", "out.txt"],
                     ["-p" + pid, "-s", "1", "-x"],
                     ["--threads", "--pid", pid]):
            expect_exec(wrapper.path, args, binary)


def case_detect_pid_dump(wrapper: Wrapper, interp: Interpreter) -> str:
    """A real dump through the wrapper: the binary it picks reads the target."""
    wrapper.binary(interp.minor)
    with start_python(interp, PINGPONG_CODE) as target:
        result = run_env([wrapper.path, "dump", "-p", str(target.pid), "--json"], base_env())
        if result.returncode != EXIT_OK:
            raise Failure(result.describe())
        doc = parse_json_document(result)
        version = doc.get("python_version")
        if doc.get("pid") != target.pid or not str(version).startswith(interp.version):
            raise Failure("dump says pid %r, Python %r; expected %d, %s\n%s"
                          % (doc.get("pid"), version, target.pid, interp.version,
                             result.describe()))
        return "Python %s" % version


def case_detect_command(wrapper: Wrapper, interp: Interpreter) -> None:
    binary = wrapper.binary(interp.minor)
    python = interp.host_path(interp.python)
    tmp = tempfile.mkdtemp(prefix="pyflame-wrapper-")
    try:
        script = make_executable(os.path.join(tmp, "app.py"), "#!%s\nprint(1)\n" % python)
        # A PATH entry holding the interpreter under a name with no version in it.
        path_dir = os.path.join(tmp, "bin")
        os.mkdir(path_dir)
        os.symlink(python, os.path.join(path_dir, "mypython"))
        env_script = make_executable(os.path.join(tmp, "env_app.py"),
                                     "#!/usr/bin/env mypython\nprint(1)\n")
        env_s_script = make_executable(os.path.join(tmp, "env_s_app.py"),
                                       "#!/usr/bin/env -S PYTHONDONTWRITEBYTECODE=1 mypython -u\n")
        # A copy under a misleading name: the file's contents must decide.
        misnamed = os.path.join(tmp, "python3.1")
        shutil.copy(python, misnamed)
        os.chmod(misnamed, 0o755)
        env = base_env(path_dir + ":" + os.environ.get("PATH", "/usr/bin:/bin"))
        for args in (["record", "--", python, "app.py", "-p", "1"],
                     ["record", "-o", "out.txt", "--format", "collapsed", "--", python, "-c", "0"],
                     ["-t", python, script],
                     ["-s", "1", "-t", script, "--json"],
                     ["-t", env_script],
                     ["-t", env_s_script],
                     ["record", "--", "mypython", "-m", "http.server"],
                     ["-t", misnamed, "-V"]):
            expect_exec(wrapper.path, args, binary, env=env)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------- arguments


AWKWARD = ["two words", "it's", 'say "hi"', "*", "?", "[ab]", "$HOME", "`id`", "$(id)",
           "--", "-p", "", " ", "line1\nline2", "\u00fc\u95a2", "back\\slash", "~", "-t",
           "--json", "a*", "-", ";", "|", "&", ">x", "\t"]


def case_args_pid(wrapper: Wrapper, interp: Interpreter) -> None:
    binary = wrapper.binary(interp.minor)
    tmp = tempfile.mkdtemp(prefix="pyflame-wrapper-")
    try:
        # Files a stray glob would match.
        for name in ("a1", "a2", "x", "ab"):
            open(os.path.join(tmp, name), "w").close()
        with start_python(interp, PINGPONG_CODE) as target:
            pid = str(target.pid)
            expect_exec(wrapper.path, ["dump", "-p", pid] + AWKWARD, binary, cwd=tmp)
            expect_exec(wrapper.path,
                        ["record", "-p", pid, "--output", "my profile*.svg"] + AWKWARD,
                        binary, cwd=tmp)
            # Option values, even numbers, subcommand names and "-p", are values.
            for args in (["record", "-o", "4242", "-p", pid],
                         ["record", "--output=-p", "--rate", "7", "-p", pid],
                         ["record", "-f", "collapsed", "-d", "2", "--pid", pid],
                         ["record", "--mode", "gil", "-p", pid],
                         ["top", "--interval", "2", "--mode", "wall", "-p", pid],
                         ["top", "--rows", "5", "--once", "--pid", pid],
                         ["dump", "--native", "-p", pid],
                         ["record", "--native-all", "-d", "1", "-p", pid],
                         ["-o", "dump", "-r", "0.01", "-s", "3", "-p", pid, "--", "-p", "1"]):
                expect_exec(wrapper.path, args, binary, cwd=tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def case_args_command(wrapper: Wrapper, interp: Interpreter) -> None:
    """The command's own arguments, even `-p 1`, are the command's."""
    binary = wrapper.binary(interp.minor)
    python = interp.host_path(interp.python)
    tmp = tempfile.mkdtemp(prefix="pyflame-wrapper-")
    try:
        open(os.path.join(tmp, "a1"), "w").close()
        # A PID that does not exist: had the wrapper taken it, it would fail.
        bogus = str(free_pid())
        expect_exec(wrapper.path, ["record", "--", python, "my app.py", "-p", bogus] + AWKWARD,
                    binary, cwd=tmp)
        expect_exec(wrapper.path, ["-x", "-t", python, "-p", bogus] + AWKWARD, binary, cwd=tmp)
        expect_exec(wrapper.path, ["top", "--once", "--", python, "app.py", "-p", bogus], binary,
                    cwd=tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def case_logging(wrapper: Wrapper, interp: Interpreter) -> None:
    """One rule for the binary, the helper and the wrapper: -v (info), -vv
    (debug), PYFLAME_LOG=LEVEL, PYFLAME_DEBUG=1 as debug; 0, empty or
    nothing: no diagnostics. A real dump through the wrapper, each way."""
    def diagnostics(result: Result) -> List[str]:
        if result.returncode != EXIT_OK:
            raise Failure(result.describe())
        return [line for line in result.stderr_text.splitlines()
                if re.match(r"^pyflame (info|debug):", line)]

    binary = wrapper.binary(interp.minor)
    with start_python(interp, PINGPONG_CODE) as target:
        pid = str(target.pid)
        quiet = [("binary", [binary, "dump", "-p", pid], {}),
                 ("wrapper", [wrapper.path, "dump", "-p", pid], {}),
                 ("wrapper, PYFLAME_DEBUG=0", [wrapper.path, "dump", "-p", pid],
                  {"PYFLAME_DEBUG": "0"}),
                 ("binary, PYFLAME_DEBUG empty", [binary, "dump", "-p", pid], {"PYFLAME_DEBUG": ""}),
                 ("binary, PYFLAME_LOG=warn", [binary, "dump", "-p", pid], {"PYFLAME_LOG": "warn"})]
        for what, argv, extra in quiet:
            lines = diagnostics(run_env(argv, dict(base_env(), **extra)))
            if lines:
                raise Failure("%s: diagnostics nobody asked for:\n%s" % (what, "\n".join(lines)))
        attached = "pyflame info: process %s runs Python" % pid
        chosen = "pyflame info: process %s runs Python %s" % (pid, interp.version)
        loud = [("binary -v", [binary, "-v", "dump", "-p", pid], {}, [attached]),
                ("binary dump -v", [binary, "dump", "-v", "-p", pid], {}, [attached]),
                ("binary, PYFLAME_LOG=info", [binary, "dump", "-p", pid], {"PYFLAME_LOG": "info"},
                 [attached]),
                ("binary, PYFLAME_DEBUG=1", [binary, "dump", "-p", pid], {"PYFLAME_DEBUG": "1"},
                 [attached]),
                ("wrapper dump -v", [wrapper.path, "dump", "-v", "-p", pid], {},
                 [chosen, attached]),
                ("wrapper, PYFLAME_LOG=debug", [wrapper.path, "dump", "-p", pid],
                 {"PYFLAME_LOG": "debug"}, [chosen, attached])]
        for what, argv, extra, wanted in loud:
            lines = diagnostics(run_env(argv, dict(base_env(), **extra)))
            missing = [w for w in wanted if not any(line.startswith(w) for line in lines)]
            if missing:
                raise Failure("%s: no line starting %s among\n%s" % (what, missing, "\n".join(lines)))


def case_args_exec(wrapper: Wrapper, interp: Interpreter) -> None:
    """Without print mode the wrapper really execs: a stand-in pyflameX.Y
    beside a copy of the wrapper records the argv it receives."""
    tmp = tempfile.mkdtemp(prefix="pyflame-wrapper-")
    try:
        bin_dir, lib_dir = install_copy(wrapper, tmp)
        out = os.path.join(tmp, "argv")
        make_executable(os.path.join(bin_dir, "pyflame" + interp.minor),
                        "#!/bin/sh\nprintf '%%s\\0' \"$0\" \"$@\" > '%s'\n" % out)
        with start_python(interp, PINGPONG_CODE) as target:
            args = ["dump", "-p", str(target.pid)] + AWKWARD
            result = run_env([os.path.join(bin_dir, "pyflame")] + args, base_env(TOOLS_DIR))
            if result.returncode != EXIT_OK:
                raise Failure(result.describe())
        with open(out, "rb") as f:
            got = [p.decode("utf-8") for p in f.read()[:-1].split(b"\0")]
        want = [os.path.join(bin_dir, "pyflame" + interp.minor)] + args
        if got != want:
            raise Failure("the binary received\n    %r\nexpected\n    %r" % (got, want))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def case_symlinked(wrapper: Wrapper, interp: Interpreter) -> None:
    """Run through a link elsewhere, the wrapper still finds its binaries and helper."""
    binary = wrapper.binary(interp.minor)
    tmp = tempfile.mkdtemp(prefix="pyflame-wrapper-")
    try:
        link = os.path.join(tmp, "pyflame")
        os.symlink(wrapper.path, link)
        with start_python(interp, PINGPONG_CODE) as target:
            expect_exec(link, ["dump", "-p", str(target.pid)], binary, env=base_env(TOOLS_DIR))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def case_list(wrapper: Wrapper) -> str:
    result = run_env([wrapper.path, "--list"], base_env(TOOLS_DIR))
    if result.returncode != EXIT_OK:
        raise Failure(result.describe())
    built = sorted(n[len("pyflame"):] for n in os.listdir(wrapper.bin_dir)
                   if n.startswith("pyflame") and n[len("pyflame"):][:1].isdigit())
    if not built:
        raise Skip("no pyflameX.Y built in %s" % wrapper.bin_dir)
    text = result.stdout_text
    for minor in built:
        path = os.path.join(wrapper.bin_dir, "pyflame" + minor)
        built_for = "built for %sPython %s;" % ("free-threaded " if minor.endswith("t") else "",
                                                 minor.rstrip("t"))
        if path not in text or built_for not in text:
            raise Failure("--list does not show %s and its Python %s\n%s"
                          % (path, minor, result.describe()))
    # Listed in version order: 2.7 before 3.6 before 3.10.
    order = [line.split()[0] for line in text.splitlines() if line.startswith("pyflame")]
    numeric = sorted(order, key=lambda n: build_key(n[len("pyflame"):]))
    if order != numeric:
        raise Failure("--list order %s, expected %s" % (order, numeric))
    # A binary whose --version fails is a broken install: listed, and exit 1.
    tmp = tempfile.mkdtemp(prefix="pyflame-wrapper-")
    try:
        bin_dir, _ = install_copy(wrapper, tmp)
        make_executable(os.path.join(bin_dir, "pyflame3.99"), "#!/bin/sh\nexit 1\n")
        broken = run_env([os.path.join(bin_dir, "pyflame"), "--list"], base_env(TOOLS_DIR))
        if broken.returncode != 1 or "broken install" not in broken.stdout_text:
            raise Failure("--list with a broken pyflame3.99: expected exit 1 naming it\n%s"
                          % broken.describe())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ", ".join(order)


def case_completion(source_dir: str) -> None:
    """The bash completion offers subcommands, options, formats, commands."""
    script = os.path.join(source_dir, "packaging", "pyflame.bash-completion")
    bash = shutil.which("bash")
    if bash is None:
        raise Skip("no bash")
    # Registered: pyflame and the pyflameX.Y on PATH, not versions that
    # are not installed.
    bin_dir = tempfile.mkdtemp(prefix="pyflame-completion-")
    for name in ("pyflame3.11", "pyflame3.14t", "pyflame-helper"):
        with open(os.path.join(bin_dir, name), "w") as f:
            f.write("#!/bin/sh\n")
        os.chmod(os.path.join(bin_dir, name), 0o755)
    probe = (
        'PATH="$2:$PATH"\n'
        'source "$1"\n'
        'complete -p pyflame pyflame3.11 pyflame3.14t >/dev/null || exit 3\n'
        'complete -p pyflame3.0 >/dev/null 2>&1 && exit 4\n'
        'complete -p pyflame-helper >/dev/null 2>&1 && exit 5\n'
        'c() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _pyflame; echo "${COMPREPLY[*]}"; }\n'
        'c pyflame re\n'
        'c pyflame record --fo\n'
        'c pyflame3.11 record -f sp\n'
        'c pyflame --li\n'
        'c pyflame3.11 --li\n'
        'c pyflame dump --js\n'
        'c pyflame to\n'
        'c pyflame top --on\n'
        'c pyflame record --mode g\n'
        'c pyflame dump --nat\n'
        'c pyflame record -- bas\n')
    # -p offers the PIDs of Python processes, not of others.
    python = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    other = subprocess.Popen(["sleep", "60"])
    probe += ('c pyflame dump -p ""\n')
    try:
        result = run_env([bash, "--norc", "-c", probe, "probe", script, bin_dir], base_env())
    finally:
        shutil.rmtree(bin_dir, ignore_errors=True)
        for proc in (python, other):
            proc.kill()
            proc.wait()
    pids = result.stdout_text.split("\n")[-2].split() if result.stdout_text.count("\n") >= 2 else []
    if str(python.pid) not in pids or str(other.pid) in pids:
        raise Failure("-p completes %s: not the Python process %d alone among %d and it\n%s"
                      % (pids, python.pid, other.pid, result.describe()))
    want = ["record", "--format", "speedscope", "--list", "", "--json", "top", "--once", "gil",
            "--native --native-all"]
    got = result.stdout_text.split("\n")
    if result.returncode != 0 or got[:len(want)] != want or "bash" not in got[len(want)].split():
        raise Failure("completions %r, expected %r then commands with bash\n%s"
                      % (got, want, result.describe()))


# ------------------------------------------------------------------- errors


def install_copy(wrapper: Wrapper, root: str):
    """A copy of the wrapper and its helper in ROOT/bin, ROOT/lib/pyflame,
    with no pyflameX.Y beside it."""
    bin_dir = os.path.join(root, "bin")
    lib_dir = os.path.join(root, "lib", "pyflame")
    os.makedirs(bin_dir)
    os.makedirs(lib_dir)
    shutil.copy(wrapper.path, bin_dir)
    shutil.copy(wrapper.detect, lib_dir)
    return bin_dir, lib_dir


def case_missing_binary(wrapper: Wrapper, interp: Interpreter) -> None:
    tmp = tempfile.mkdtemp(prefix="pyflame-wrapper-")
    try:
        bin_dir, _ = install_copy(wrapper, tmp)
        lonely = os.path.join(bin_dir, "pyflame")
        env = base_env(TOOLS_DIR)  # no pyflameX.Y in PATH either
        package = "pyflame" + interp.minor
        with start_python(interp, PINGPONG_CODE) as target:
            expect_error(run_env([lonely, "dump", "-p", str(target.pid)], env),
                         EXIT_WRONG_VERSION, "process %d" % target.pid,
                         "Python " + interp.version, "install the package " + package)
        expect_error(run_env([lonely, "record", "--", interp.host_path(interp.python), "x.py"],
                             env),
                     EXIT_WRONG_VERSION, "Python " + interp.minor.rstrip("t"),
                     "install the package " + package)
        expect_error(run_env([lonely, "--list"], env), EXIT_FAILURE, "no pyflameX.Y is installed")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def case_not_python(wrapper: Wrapper) -> None:
    sleeper = subprocess.Popen(["sleep", "60"], start_new_session=True)
    tmp = tempfile.mkdtemp(prefix="pyflame-wrapper-")
    try:
        expect_error(run_env([wrapper.path, "dump", "-p", str(sleeper.pid)], base_env()),
                     EXIT_NOT_PYTHON, "not a Python process")
        sleep = shutil.which("sleep")
        expect_error(run_env([wrapper.path, "-t", sleep, "1"], base_env()),
                     EXIT_NOT_PYTHON, sleep, "not a Python interpreter")
        script = make_executable(os.path.join(tmp, "job.sh"), "#!/bin/sh\nexit 0\n")
        expect_error(run_env([wrapper.path, "record", "--", script], base_env()),
                     EXIT_NOT_PYTHON, "/bin/sh", "not a Python interpreter")
        text = os.path.join(tmp, "notes.txt")
        make_executable(text, "just text\n")
        expect_error(run_env([wrapper.path, "-t", text], base_env()),
                     EXIT_NOT_PYTHON, "not a Python interpreter")
    finally:
        sleeper.kill()
        sleeper.wait()
        shutil.rmtree(tmp, ignore_errors=True)


# A stand-in for PyPy: an executable that needs libpypy3.9-c.so (whose name
# is how PyPy shows in a process's maps) and blocks reading stdin once ready.
PYPY_LIB_C = "int pypy_main_startup(int argc, char **argv) { (void)argc; (void)argv; return 0; }\n"
PYPY_MAIN_C = r"""
#include <stdio.h>
#include <unistd.h>
int pypy_main_startup(int argc, char **argv);
int main(int argc, char **argv) {
  char c;
  pypy_main_startup(argc, argv);
  puts("ready");
  fflush(stdout);
  return read(0, &c, 1) < 0;
}
"""


def build_fake_pypy(tmp: str) -> str:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise Skip("no C compiler to build a PyPy-like executable")
    lib_src = os.path.join(tmp, "lib.c")
    main_src = os.path.join(tmp, "main.c")
    with open(lib_src, "w") as f:
        f.write(PYPY_LIB_C)
    with open(main_src, "w") as f:
        f.write(PYPY_MAIN_C)
    lib = os.path.join(tmp, "libpypy3.9-c.so")
    exe = os.path.join(tmp, "pypy3.9")
    for argv in ([cc, "-shared", "-fPIC", "-o", lib, lib_src],
                 [cc, "-o", exe, main_src, lib, "-Wl,-rpath," + tmp]):
        result = run(argv)
        if result.returncode != 0:
            raise Failure("building the PyPy stand-in failed\n%s" % result.describe())
    return exe


def case_pypy(wrapper: Wrapper) -> None:
    tmp = tempfile.mkdtemp(prefix="pyflame-wrapper-")
    proc = None
    try:
        exe = build_fake_pypy(tmp)
        expect_error(run_env([wrapper.path, "record", "--", exe, "app.py"], base_env()),
                     EXIT_NOT_PYTHON, "PyPy")
        proc = subprocess.Popen([exe], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                start_new_session=True)
        line = proc.stdout.readline()
        if line != b"ready\n":
            raise Failure("the PyPy stand-in did not start (%r)" % line)
        expect_error(run_env([wrapper.path, "dump", "-p", str(proc.pid)], base_env()),
                     EXIT_NOT_PYTHON, "process %d" % proc.pid, "PyPy")
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def case_no_such_pid(wrapper: Wrapper) -> None:
    pid = free_pid()
    expect_error(run_env([wrapper.path, "dump", "-p", str(pid)], base_env()),
                 EXIT_NO_PROCESS, str(pid))
    expect_error(run_env([wrapper.path, "-p", str(pid), "-s", "1"], base_env()),
                 EXIT_NO_PROCESS, str(pid))


def case_bad_usage(wrapper: Wrapper) -> None:
    for args in (["dump", "-p", "12x"], ["record", "-p", "-5"]):
        expect_error(run_env([wrapper.path] + args, base_env()), EXIT_USAGE, "not a process ID")
    result = run_env([wrapper.path, "--json"], base_env())
    if result.returncode != EXIT_USAGE or "-p PID" not in result.stderr_text:
        raise Failure("no target: expected exit 2 and usage\n%s" % result.describe())
    expect_error(run_env([wrapper.path, "-t", "pyflame-no-such-command"], base_env()),
                 EXIT_FAILURE, "pyflame-no-such-command", "not found")
    result = run_env([wrapper.path, "--help"], base_env())
    if result.returncode != EXIT_OK or "--list" not in result.stdout_text:
        raise Failure("--help: expected exit 0 and usage\n%s" % result.describe())


# --------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--manifest", default=DEFAULT_MANIFEST)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--detect", metavar="NAME")
    group.add_argument("--args", action="store_true")
    group.add_argument("--errors", action="store_true")
    options = parser.parse_args()

    cases = Cases()
    try:
        wrapper = Wrapper(options.bin_dir)
        if options.detect:
            interp = find_interpreter(options.manifest, options.detect)
            host = None
        else:
            interp = None
            host = first_host_interpreter(options.manifest)
    except Skip as e:
        log("SKIP: %s" % e)
        return TEST_SKIP
    except Failure as e:
        log("FAIL: %s" % e)
        return TEST_FAIL

    if interp is not None:
        cases.run("by_pid[%s]" % interp.name, lambda: case_detect_pid(wrapper, interp))
        cases.run("dump_through_wrapper[%s]" % interp.name,
                  lambda: case_detect_pid_dump(wrapper, interp))
        cases.run("by_command[%s]" % interp.name, lambda: case_detect_command(wrapper, interp))
    elif options.args:
        cases.run("pid_form[%s]" % host.name, lambda: case_args_pid(wrapper, host))
        cases.run("command_form[%s]" % host.name, lambda: case_args_command(wrapper, host))
        cases.run("real_exec[%s]" % host.name, lambda: case_args_exec(wrapper, host))
        cases.run("logging[%s]" % host.name, lambda: case_logging(wrapper, host))
        cases.run("symlinked[%s]" % host.name, lambda: case_symlinked(wrapper, host))
        cases.run("list", lambda: case_list(wrapper))
        source_dir = os.path.dirname(os.path.dirname(HERE))
        cases.run("completion", lambda: case_completion(source_dir))
    else:
        cases.run("missing_binary[%s]" % host.name, lambda: case_missing_binary(wrapper, host))
        cases.run("not_python", lambda: case_not_python(wrapper))
        cases.run("pypy", lambda: case_pypy(wrapper))
        cases.run("no_such_pid", lambda: case_no_such_pid(wrapper))
        cases.run("bad_usage", lambda: case_bad_usage(wrapper))
    return cases.summary()


if __name__ == "__main__":
    raise SystemExit(main())
