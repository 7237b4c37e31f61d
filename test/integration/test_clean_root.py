#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A clean Debian root installs `pyflame` alone and profiles python3 at once.

    test_clean_root.py --build-dir BUILD --source-dir SRC

Builds the packages of BUILD with cpack, makes a minimal root of this
machine's Debian release with mmdebstrap (--variant=minbase
--include=python3), serves the packages to it as a local apt repository,
runs `apt-get install pyflame` there (nothing else named: the default
Python's binary comes through the Recommends), then starts python3 in the
root and dumps it with the root's /usr/bin/pyflame.

Needs root, cpack, mmdebstrap (test/tools/packaging.sh installs it),
dpkg-scanpackages and a reachable Debian mirror: exit 77 with the reason
otherwise.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile

from pyflame_test import Failure, Missing, Skip, log, main_wrapper, run
from test_packages import SPIN_CODE, build_packages, source_date_epoch

REPO = "/srv/pyflame-packages"  # inside the root


def release_codename() -> str:
    with open("/etc/os-release", encoding="utf-8") as f:
        for line in f:
            if line.startswith("VERSION_CODENAME="):
                return line.split("=", 1)[1].strip().strip('"')
    raise Skip("/etc/os-release names no VERSION_CODENAME")


def in_root(root: str, argv, timeout: float = 300):
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8",
           "DEBIAN_FRONTEND": "noninteractive"}
    return run(["chroot", root] + list(argv), timeout=timeout, env=env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build-dir", required=True)
    parser.add_argument("--source-dir", required=True)
    options = parser.parse_args()
    if os.geteuid() != 0:
        raise Skip("needs root (mmdebstrap, chroot)")
    for tool in ("mmdebstrap", "dpkg-scanpackages", "cpack"):
        if shutil.which(tool) is None:
            raise Missing("%s is not installed (test/tools/packaging.sh installs it)" % tool)

    tmp = tempfile.mkdtemp(prefix="pyflame-clean-root-")
    root = os.path.join(tmp, "root")
    proc_mounted = False
    target = None
    try:
        debs = build_packages(options.build_dir, os.path.join(tmp, "out"),
                              source_date_epoch(options.source_dir))
        # A snapshot mirror's Release files may be past their Valid-Until.
        made = run(["mmdebstrap", "--variant=minbase", "--include=python3",
                    "--aptopt=Acquire::Check-Valid-Until \"false\"",
                    "--aptopt=Acquire::Check-Date \"false\"",
                    release_codename(), root], timeout=600)
        if made.returncode != 0:
            raise Skip("mmdebstrap could not make a root (no Debian mirror?):\n%s"
                       % made.describe())
        log("PASS mmdebstrap minbase root with python3")

        repo = root + REPO
        os.makedirs(repo)
        for deb in debs.values():
            shutil.copy(deb, repo)
        index = subprocess.run(["dpkg-scanpackages", "--multiversion", "."], cwd=repo,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
        if index.returncode != 0:
            raise Failure("dpkg-scanpackages: %s" % index.stderr.decode(errors="replace"))
        with open(os.path.join(repo, "Packages"), "wb") as f:
            f.write(index.stdout)
        with open(os.path.join(root, "etc/apt/sources.list.d/pyflame.list"), "w") as f:
            f.write("deb [trusted=yes] file:%s ./\n" % REPO)

        for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "pyflame"]):
            result = in_root(root, argv)
            if result.returncode != 0:
                raise Failure("%s in the clean root:\n%s" % (" ".join(argv), result.describe()))
        installed = in_root(root, ["dpkg-query", "-W", "-f=${Package}\\n", "pyflame*"])
        names = sorted(installed.stdout_text.split())
        log("PASS apt-get install pyflame: installed %s" % ", ".join(names))
        version = in_root(root, ["pyflame", "--version"])
        if version.returncode != 0:
            raise Failure("pyflame --version in the clean root:\n%s" % version.describe())

        mounted = run(["mount", "-t", "proc", "proc", os.path.join(root, "proc")])
        if mounted.returncode != 0:
            raise Failure("cannot mount /proc in the root:\n%s" % mounted.describe())
        proc_mounted = True
        target = subprocess.Popen(["chroot", root, "python3", "-c", SPIN_CODE],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        if target.stdout.readline().strip() != b"ready":
            raise Failure("python3 in the root did not start")
        dump = in_root(root, ["pyflame", "dump", "-p", str(target.pid)], timeout=60)
        if dump.returncode != 0 or "pyflame_package_spin" not in dump.stdout_text:
            raise Failure("pyflame dump of the root's python3:\n%s" % dump.describe())
        log("PASS pyflame dump -p of the root's python3 through its /usr/bin/pyflame")
    finally:
        if target is not None:
            target.kill()
            target.wait()
        if proc_mounted:
            run(["umount", "-l", os.path.join(root, "proc")])
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    main_wrapper(main)
