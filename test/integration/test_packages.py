#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Integration test of the Debian packages (packaging/CMakeLists.txt).

    test_packages.py --build-dir BUILD [--manifest PATH]

Builds the packages of BUILD with cpack into a temporary directory, checks
their contents, dependencies (computed by dpkg-shlibdeps) and the binaries'
linkage, runs lintian (-I --pedantic: nothing but the tags docs/install.md
explains), builds them a second time and compares the bytes (reproducible
with SOURCE_DATE_EPOCH), installs them with the real
`dpkg -i`, profiles processes of several Python versions (static, shared,
2.7, chroot) through the installed /usr/bin/pyflame, then `dpkg --purge`s
them and checks that nothing they installed is left. The packages are purged
on every exit path (failure, exception, SIGINT/SIGTERM/SIGHUP).

Needs root, dpkg, cpack and lintian: exit 77 with the reason otherwise, and
when some pyflame package is already installed (it is not ours to remove).
"""

from __future__ import annotations

import argparse
import atexit
import gzip
import json
import os
import re
import shutil
import signal
import tempfile
import time
from typing import Dict, List, Optional, Sequence

from pyflame_test import (DEFAULT_MANIFEST, PINGPONG_CODE, Failure, Interpreter, Missing, Result, Skip,
                          log, main_wrapper, read_manifest, run, start_python)

# What `ldd pyflameX.Y` may show: libc, the C++ runtime, and the library
# chosen on purpose (zlib for pprof, ncurses for top's screen). Never a
# libpython, nor fmt; ELF files are read by our own bounded reader, so no
# libelf either.
ALLOWED_LIBRARIES = {"linux-vdso.so.1", "ld-linux-x86-64.so.2", "libc.so.6", "libm.so.6",
                     "libstdc++.so.6", "libgcc_s.so.1", "libz.so.1", "libncursesw.so.6",
                     "libtinfo.so.6", "libdw.so.1", "libelf.so.1", "liblzma.so.5",
                     "libbz2.so.1.0"}
INSTALL_ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"}
PYFLAME = "/usr/bin/pyflame"

# Threads spin in a named function, for `record`; 2.7-compatible.
SPIN_CODE = (
    "import sys, threading\n"
    "def pyflame_package_spin():\n"
    "    while True: pass\n"
    "t = threading.Thread(target=pyflame_package_spin)\n"
    "t.daemon = True\n"
    "t.start()\n"
    "sys.stdout.write('ready\\n'); sys.stdout.flush()\n"
    "sys.stdin.readline()\n"
)

# Spins in a named function for a second, then exits; 2.7-compatible.
SPIN_FOR_CODE = (
    "import time\n"
    "def pyflame_package_spin(end):\n"
    "    while time.time() < end: pass\n"
    "pyflame_package_spin(time.time() + 1)\n"
)


def check(result: Result, what: str) -> Result:
    if result.returncode != 0:
        raise Failure("%s failed\n%s" % (what, result.describe()))
    return result


def cache_value(build_dir: str, name: str) -> str:
    with open(os.path.join(build_dir, "CMakeCache.txt"), encoding="utf-8") as f:
        for line in f:
            m = re.match(r"%s:[A-Z]+=(.*)$" % re.escape(name), line.rstrip("\n"))
            if m:
                return m.group(1)
    raise Skip("%s is not in %s/CMakeCache.txt" % (name, build_dir))


def installed_pyflame_packages() -> List[str]:
    result = run(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\n", "pyflame*"])
    return [line.split()[0] for line in result.stdout_text.splitlines()
            if len(line.split()) > 1 and line.split()[1] != "not-installed"]


# Names the packages this test installed until it has purged them, so that a
# run killed without a chance to clean up (SIGKILL at a CTest timeout) is
# cleaned up by the next run instead of blocking it.
MARKER = "/var/tmp/pyflame-test-packages.installed"


class Installation:
    """Packages installed by this test; purge() is idempotent and is called
    on every way out."""

    def __init__(self) -> None:
        self.packages: List[str] = []
        self.files: Dict[str, List[str]] = {}

    def install(self, debs: Sequence[str], names: Sequence[str]) -> None:
        self.packages = list(names)  # before dpkg: a half-done install is purged too
        with open(MARKER, "w", encoding="utf-8") as f:
            f.write("\n".join(names) + "\n")
        check(run(["dpkg", "-i"] + list(debs), timeout=180), "dpkg -i")
        for name in names:
            listing = check(run(["dpkg", "-L", name]), "dpkg -L %s" % name)
            self.files[name] = [p for p in listing.stdout_text.splitlines() if p.startswith("/")]

    def purge(self) -> Optional[Result]:
        if not self.packages:
            return None
        names, self.packages = self.packages, []
        result = run(["dpkg", "--purge"] + names, timeout=180)
        if result.returncode == 0 and os.path.exists(MARKER):
            os.unlink(MARKER)
        return result


def purge_leftovers() -> None:
    """Purges what a killed earlier run of this test left installed."""
    try:
        with open(MARKER, encoding="utf-8") as f:
            names = [line.strip() for line in f if line.strip().startswith("pyflame")]
    except FileNotFoundError:
        return
    installed = [n for n in names if n in installed_pyflame_packages()]
    if installed:
        log("purging what an interrupted earlier run installed: %s" % " ".join(installed))
        check(run(["dpkg", "--purge"] + installed, timeout=180), "dpkg --purge (leftovers)")
    os.unlink(MARKER)


INSTALLATION = Installation()


def purge_on_signal(signum, frame):
    raise SystemExit("stopped by signal %d" % signum)  # unwinds through the finally blocks


def interpreters_to_profile(manifest: str) -> List[Interpreter]:
    """One static, one --enable-shared, one 2.7, one in a chroot, one
    free-threaded (as available)."""
    rows = [i for i in read_manifest(manifest) if os.access(i.host_path(i.python), os.X_OK)]
    picks: List[Interpreter] = []

    def pick(predicate) -> None:
        for interp in rows:
            if predicate(interp) and interp not in picks:
                picks.append(interp)
                return

    pick(lambda i: i.name == "debian12-3.11")
    if not picks:
        pick(lambda i: i.mode == "static" and not i.chrooted)
    pick(lambda i: i.mode == "shared" and i.minor == "3.12")
    if len(picks) < 2:
        pick(lambda i: i.mode == "shared" and not i.minor.startswith("2."))
    pick(lambda i: i.minor == "2.7")
    pick(lambda i: i.chrooted and not i.minor.startswith("2."))
    pick(lambda i: i.free_threaded)  # its own package, pyflameX.Yt
    kinds = {("static" if i.mode == "static" else "shared") for i in picks}
    if "static" not in kinds or "shared" not in kinds or not any(i.minor == "2.7" for i in picks):
        raise Skip("needs a static, a shared and a 2.7 interpreter in %s" % manifest)
    return picks


# -------------------------------------------------------------- the checks


# lintian tags (-I --pedantic) that docs/install.md explains; any other fails.
EXPLAINED_LINTIAN_TAGS = {"executable-in-usr-lib"}


def source_date_epoch(source_dir: str) -> str:
    """The last commit's time, as scripts/package.sh sets it."""
    result = run(["git", "-C", source_dir, "log", "-1", "--format=%ct"])
    if result.returncode != 0 or not result.stdout_text.strip().isdigit():
        raise Skip("%s is not a git checkout: no commit time for SOURCE_DATE_EPOCH" % source_dir)
    return result.stdout_text.strip()


def build_packages(build_dir: str, out: str, epoch: str) -> Dict[str, str]:
    """{package name: .deb path}"""
    config = os.path.join(build_dir, "CPackConfig.cmake")
    if not os.path.isfile(config):
        raise Skip("%s does not exist (packaging/ not configured)" % config)
    cpack = shutil.which("cpack")
    env = dict(os.environ, SOURCE_DATE_EPOCH=epoch)
    check(run([cpack, "--config", config, "-G", "DEB", "-B", out], timeout=240, env=env), "cpack")
    shutil.rmtree(os.path.join(out, "_CPack_Packages"), ignore_errors=True)
    debs = {}
    for name in os.listdir(out):
        if name.endswith(".deb"):
            path = os.path.join(out, name)
            package = check(run(["dpkg-deb", "-f", path, "Package"]), "dpkg-deb -f").stdout_text
            debs[package.strip()] = path
    return debs


def check_reproducible(first: Dict[str, str], second: Dict[str, str], epoch: str) -> str:
    """Two builds of one commit: the same bytes, xz data, file times = the epoch."""
    if sorted(first) != sorted(second):
        raise Failure("second build made %s, first %s" % (sorted(second), sorted(first)))
    for package, deb in first.items():
        with open(deb, "rb") as a, open(second[package], "rb") as b:
            if a.read() != b.read():
                raise Failure("%s differs between two builds of the same commit" % package)
        members = check(run(["ar", "t", deb]), "ar t").stdout_text.split()
        # CPack writes control.tar.gz whatever the compression asked (cmake 3.25).
        if "data.tar.xz" not in members:
            raise Failure("%s: members %s, expected an xz-compressed data.tar" % (deb, members))
        stamp = time.strftime("%Y-%m-%d %H:%M", time.gmtime(int(epoch)))
        listing = check(run(["dpkg-deb", "-c", deb], env=dict(os.environ, TZ="UTC")),
                        "dpkg-deb -c").stdout_text
        for line in listing.splitlines():
            if stamp not in line:
                raise Failure("%s: %r is not dated %s (SOURCE_DATE_EPOCH)" % (deb, line, stamp))
    return "reproducible: %d packages byte-identical over two builds, xz, dated %s" % (
        len(first), time.strftime("%Y-%m-%d", time.gmtime(int(epoch))))


def default_binary() -> Optional[str]:
    """pyflame3.N for the distribution's python3, found here through the
    /usr/bin/python3 link (the packaging reads python3's Depends)."""
    target = os.path.basename(os.path.realpath("/usr/bin/python3"))
    match = re.match(r"^python(3\.\d+)$", target)
    return "pyflame" + match.group(1) if match else None


def deb_files(deb: str) -> List[str]:
    listing = check(run(["dpkg-deb", "-c", deb]), "dpkg-deb -c").stdout_text
    files = []
    for line in listing.splitlines():
        if line.startswith("d"):
            continue
        path = line.split(None, 5)[5].split(" -> ")[0]
        files.append(path[1:] if path.startswith("./") else path)
    return sorted(files)


def check_contents(debs: Dict[str, str], binaries: List[str], version: str) -> None:
    expected = {"pyflame": ["/usr/bin/pyflame", "/usr/lib/pyflame/pyflame-detect",
                            "/usr/share/bash-completion/completions/pyflame",
                            "/usr/share/man/man1/pyflame.1.gz",
                            "/usr/share/doc/pyflame/copyright",
                            "/usr/share/doc/pyflame/changelog.gz",
                            "/usr/share/doc/pyflame/README.md",
                            "/usr/share/doc/pyflame/usage.md",
                            "/usr/share/doc/pyflame/install.md"]}
    for binary in binaries:
        expected[binary] = sorted(["/usr/bin/" + binary,
                                   "/usr/share/bash-completion/completions/" + binary,
                                   "/usr/share/man/man1/%s.1.gz" % binary,
                                   "/usr/share/doc/%s/copyright" % binary,
                                   "/usr/share/doc/%s/changelog.gz" % binary])
    if sorted(debs) != sorted(expected):
        raise Failure("packages built: %s; expected %s" % (sorted(debs), sorted(expected)))
    for package, deb in debs.items():
        files = deb_files(deb)
        if package == "pyflame":
            missing = [f for f in expected[package] if f not in files]
            strays = [f for f in files if re.search(r"/pyflame\d", f)]
            if missing or strays:
                raise Failure("%s: missing %s, holds versioned files %s" % (deb, missing, strays))
        elif files != expected[package]:
            raise Failure("%s holds\n    %s\nexpected\n    %s" % (deb, files, expected[package]))
        fields = {}
        for field in ("Version", "Depends", "Recommends", "Architecture", "Maintainer",
                      "Description"):
            result = check(run(["dpkg-deb", "-f", deb, field]), "dpkg-deb -f")
            fields[field] = result.stdout_text.strip()
        if fields["Version"] != version:
            raise Failure("%s: Version %r, expected %r" % (deb, fields["Version"], version))
        depends = [d.strip() for d in fields["Depends"].split(",")]
        names = [d.split()[0] for d in depends]
        # Computed from the binaries by dpkg-shlibdeps, not typed by hand.
        for needed in ("libc6", "libstdc++6"):
            if needed not in names:
                raise Failure("%s: Depends %r lacks %s" % (deb, fields["Depends"], needed))
        if any("python" in n or "fmt" in n for n in names):
            raise Failure("%s: Depends %r names a Python or fmt library" % (deb, fields["Depends"]))
        if package != "pyflame" and "pyflame (= %s)" % version not in depends:
            raise Failure("%s: Depends %r lacks pyflame (= %s)" % (deb, fields["Depends"], version))
        default = default_binary()
        if package == "pyflame" and default in binaries:
            wanted = "%s (= %s)" % (default, version)
            if fields["Recommends"] != wanted:
                raise Failure("%s: Recommends %r, expected %r (the binary of the distribution's "
                              "python3)" % (deb, fields["Recommends"], wanted))


def check_linkage(debs: Dict[str, str], tmp: str) -> str:
    root = os.path.join(tmp, "extracted")
    for deb in debs.values():
        check(run(["dpkg-deb", "-x", deb, root]), "dpkg-deb -x")
    seen = set()
    for directory in ("usr/bin", "usr/lib/pyflame"):
        for name in sorted(os.listdir(os.path.join(root, directory))):
            path = os.path.join(root, directory, name)
            with open(path, "rb") as f:
                if f.read(4) != b"\x7fELF":
                    continue
            out = check(run(["ldd", path]), "ldd %s" % path).stdout_text
            libs = {os.path.basename(line.split()[0]) for line in out.splitlines() if line.strip()}
            extra = libs - ALLOWED_LIBRARIES
            if extra:
                raise Failure("%s links %s beyond %s\n%s"
                              % (name, sorted(extra), sorted(ALLOWED_LIBRARIES), out))
            seen |= libs
    return "ldd: " + " ".join(sorted(seen))


def run_lintian(debs: Dict[str, str]) -> str:
    result = run(["lintian", "-I", "--pedantic", "-E", "--fail-on", "error",
                  "--no-tag-display-limit"] + sorted(debs.values()), timeout=240)
    tags = [line for line in result.stdout_text.splitlines() if re.match(r"^[EWIPX]: ", line)]
    if result.returncode != 0:
        raise Failure("lintian failed:\n%s" % result.describe())
    # "X: pyflame: executable-in-usr-lib [usr/lib/pyflame/pyflame-detect]"
    unexplained = [line for line in tags
                   if line.split()[2] not in EXPLAINED_LINTIAN_TAGS]
    if unexplained:
        raise Failure("lintian -I --pedantic reports tags docs/install.md does not explain:\n%s"
                      % "\n".join(unexplained))
    for line in tags:
        log("lintian (explained): %s" % line)
    return "lintian -I --pedantic: only explained tags (%d)" % len(tags)


def profile_through_wrapper(interps: List[Interpreter], binaries: List[str]) -> List[str]:
    notes = []
    for interp in interps:
        if "pyflame" + interp.minor not in binaries:
            raise Failure("no package pyflame%s for %s" % (interp.minor, interp.name))
        with start_python(interp, PINGPONG_CODE) as target:
            result = run_installed([PYFLAME, "dump", "-p", str(target.pid), "--json"])
            check(result, "%s dump of %s" % (PYFLAME, interp.name))
            doc = json.loads(result.stdout_text)
            version = str(doc.get("python_version"))
            frames = [f.get("function")
                      for t in doc.get("threads", []) for f in t.get("frames", [])]
            if doc.get("pid") != target.pid or not version.startswith(interp.version) \
                    or "<module>" not in frames:
                raise Failure("%s: unexpected dump\n%s" % (interp.name, result.describe()))
        notes.append("%s dump ok" % interp.name)

    # record is part of every binary: its absence is a failure, never a note.
    first = interps[0]
    with start_python(first, SPIN_CODE) as target:
        with tempfile.TemporaryDirectory(prefix="pyflame-pkg-") as tmp:
            out = os.path.join(tmp, "profile.txt")
            result = run_installed([PYFLAME, "record", "-p", str(target.pid), "-d", "1",
                                    "-f", "collapsed", "-o", out, "--no-status"])
            check(result, "%s record of %s" % (PYFLAME, first.name))
            with open(out, encoding="utf-8") as f:
                text = f.read()
            if "pyflame_package_spin" not in text:
                raise Failure("record of %s lacks the spinning function\n%s"
                              % (first.name, text[:2000]))
    notes.append("%s record -p ok" % first.name)
    # The command form: the wrapper reads the interpreter's file, not a process.
    launched = next((i for i in interps if not i.chrooted and i.mode == "shared"), None)
    if launched is None:
        raise Missing("no unchrooted --enable-shared interpreter for `record -- COMMAND` "
                      "(test/interpreters/provision.sh provides pyenv builds)")
    with tempfile.TemporaryDirectory(prefix="pyflame-pkg-") as tmp:
        out = os.path.join(tmp, "profile.txt")
        env = dict(launched.environment())
        env.update(INSTALL_ENV)
        result = run_installed([PYFLAME, "record", "-f", "collapsed", "-o", out,
                                "--no-status", "--", launched.python, "-c", SPIN_FOR_CODE],
                               env)
        check(result, "%s record -- %s" % (PYFLAME, launched.python))
        with open(out, encoding="utf-8") as f:
            text = f.read()
        if "pyflame_package_spin" not in text:
            raise Failure("record -- %s lacks the spinning function\n%s"
                          % (launched.name, text[:2000]))
    notes.append("%s record -- COMMAND ok" % launched.name)
    return notes


def run_installed(argv: Sequence[str], env: Optional[Dict[str, str]] = None) -> Result:
    """Runs ARGV with a PATH of the system directories only."""
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env or INSTALL_ENV)
        return run(argv)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def check_installed(binaries: List[str]) -> None:
    listing = check(run_installed([PYFLAME, "--list"]), "pyflame --list").stdout_text
    for binary in binaries:
        if "/usr/bin/" + binary not in listing:
            raise Failure("pyflame --list does not show /usr/bin/%s\n%s" % (binary, listing))
    for binary in binaries:
        for path in ("/usr/share/man/man1/%s.1.gz" % binary,
                     "/usr/share/bash-completion/completions/" + binary):
            if not os.path.isfile(path):  # follows the link into the common package
                raise Failure("%s does not resolve" % path)
    with gzip.open("/usr/share/man/man1/pyflame.1.gz", "rt", encoding="utf-8") as f:
        page = f.read()
    for needle in (".SH NAME", "dump", "record", "\\-\\-duration", "\\-t", "EXIT STATUS"):
        if needle not in page:
            raise Failure("pyflame.1 lacks %r" % needle)


def check_purged(files: Dict[str, List[str]]) -> None:
    left = installed_pyflame_packages()
    if left:
        raise Failure("still installed after dpkg --purge: %s" % left)
    ours = [p for paths in files.values() for p in paths
            if not os.path.isdir(p) or "pyflame" in os.path.basename(p)]
    remaining = [p for p in ours if os.path.lexists(p)]
    for path in ("/usr/lib/pyflame", "/usr/share/doc/pyflame", PYFLAME):
        if os.path.lexists(path):
            remaining.append(path)
    if remaining:
        raise Failure("left behind after dpkg --purge: %s" % sorted(set(remaining)))


# --------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build-dir", required=True)
    parser.add_argument("--source-dir", required=True)
    parser.add_argument("--manifest", default=DEFAULT_MANIFEST)
    options = parser.parse_args()

    if os.geteuid() != 0:
        raise Skip("needs root (installs packages with dpkg)")
    for tool in ("dpkg", "dpkg-deb", "dpkg-query", "dpkg-shlibdeps", "file", "cpack", "lintian",
                 "ldd"):
        if shutil.which(tool) is None:
            raise Missing("%s is not installed (test/tools/packaging.sh installs the tools)" % tool)
    purge_leftovers()
    already = installed_pyflame_packages()
    if already:
        raise Skip("pyflame packages are installed already (%s); this test installs and purges "
                   "its own, so remove them first: dpkg --purge %s"
                   % (", ".join(already), " ".join(already)))
    version = cache_value(options.build_dir, "CMAKE_PROJECT_VERSION")
    binaries = [b for b in cache_value(options.build_dir, "PYFLAME_BINARIES").split(";") if b]
    interps = interpreters_to_profile(options.manifest)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, purge_on_signal)
    atexit.register(INSTALLATION.purge)
    tmp = tempfile.mkdtemp(prefix="pyflame-packages-")
    try:
        epoch = source_date_epoch(options.source_dir)
        debs = build_packages(options.build_dir, os.path.join(tmp, "out"), epoch)
        log("PASS %s" % check_reproducible(
            debs, build_packages(options.build_dir, os.path.join(tmp, "again"), epoch), epoch))
        check_contents(debs, binaries, version)
        log("PASS contents: %s" % ", ".join(sorted(debs)))
        log("PASS linkage: %s" % check_linkage(debs, tmp))
        log("PASS %s" % run_lintian(debs))

        INSTALLATION.install(sorted(debs.values()), sorted(debs))
        log("PASS dpkg -i")
        check_installed(binaries)
        log("PASS installed files, --list, man page")
        for note in profile_through_wrapper(interps, binaries):
            log("PASS %s" % note)
    finally:
        files = dict(INSTALLATION.files)
        purged = INSTALLATION.purge()
        shutil.rmtree(tmp, ignore_errors=True)
    if purged is not None:
        check(purged, "dpkg --purge")
    check_purged(files)
    log("PASS dpkg --purge: nothing left")
    return 0


if __name__ == "__main__":
    main_wrapper(main)
