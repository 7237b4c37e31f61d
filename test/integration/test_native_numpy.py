#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""`record --native` of numpy sorting: its C code under the Python line.

    test_native_numpy.py --bin-dir DIR [--manifest PATH] [--interp NAME]

The interpreter (default debian12-3.11: Debian's python3.11, for which
scripts/setup.sh installs python3-numpy) sorts a large array in a loop in
`sort_rows`. Recorded with --native to collapsed text and to a flame graph:

- every stack is <module> -> sort_rows -> ..., with only C frames under
  numpy's `sort` (fromnumeric.py), and at least half the samples are in
  numpy's C code under it: the first C frame under `sort` is numpy's
  `_multiarray_umath` extension's (which may call libc's, e.g. memmove).
  The sort of 2M doubles takes far longer than the dispatch and the free
  between two, and than `sort` running its own bytecode (a stack ending
  at `sort`: rare, and right);
- no stack was left unmerged (the summary's count);
- the flame graph has the same native frames, labelled
  `function [_multiarray_umath....so]`.

Debian's numpy is stripped and its internal functions are not exported, so
its frames are named by address unless python3-numpy-dbgsym (Debian's
debug archive) is installed: the test checks where they are, not their names.
Exit 0 pass, 1 fail, 77 skip.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import tempfile

from pyflame_test import (DEFAULT_MANIFEST, PROFILER_TIMEOUT, Cases, Failure, Missing,
                          find_interpreter, main_wrapper, parse_collapsed, profiler_path, run,
                          start_python)

NUMPY_CODE = r"""
import sys
try:
    import numpy
except ImportError:
    sys.stdout.write("no numpy\n"); sys.stdout.flush()
    sys.exit(0)
def sort_rows(a):
    while True:
        numpy.sort(a)
rows = numpy.random.rand(1 << 21)
sys.stdout.write("ready\n"); sys.stdout.flush()
sort_rows(rows)
"""

RECORD_SECONDS = 2
MIN_SAMPLES = 10  # a count: the machine may be loaded
EXTENSION = re.compile(r"^_multiarray_umath[.-].*\.so")


def check_collapsed(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        stacks = parse_collapsed(f.read())
    total = sum(count for _, count in stacks)
    if total < MIN_SAMPLES:
        raise Failure("%d samples, fewer than %d" % (total, MIN_SAMPLES))
    under_sort = 0
    for frames, count in stacks:
        names = [f[0] for f in frames]
        where = "\n    " + ";".join("%s%s" % (f[0], " [%s]" % f[1] if f.native else "") for f in frames)
        if "sort_rows" not in names:
            raise Failure("a stack without sort_rows (%d samples):%s" % (count, where))
        if "sort" not in names:
            continue  # between two sorts: numpy's dispatch, freeing the last result
        inner = frames[names.index("sort") + 1:]
        # Under sort: only C code (sort calls no Python), numpy's first (it
        # may call libc: memmove). A few samples catch sort running its own
        # bytecode (nothing under it) or the interpreter's code for it (an
        # attribute lookup): right, and rare.
        if not all(f.native for f in inner):
            raise Failure("a stack with Python frames under numpy's sort (%d samples):%s"
                          % (count, where))
        if inner and EXTENSION.match(inner[0][1]):
            under_sort += count
    # Sorting 2M doubles takes far longer than what comes between two sorts.
    if under_sort < total / 2:
        raise Failure("%d of %d samples in numpy's sort, fewer than half" % (under_sort, total))
    return ("%d of %d samples in numpy's sort, each with numpy's C code under sort "
            "(fromnumeric.py)" % (under_sort, total))


def case_numpy(profiler: str, interp, work: str) -> str:
    target = start_python(interp, NUMPY_CODE)
    try:
        if target.proc.poll() is not None:
            raise Missing("%s has no numpy (scripts/setup.sh installs python3-numpy)" % interp.name)
        collapsed = os.path.join(work, "numpy.txt")
        svg = os.path.join(work, "numpy.svg")
        for out in (collapsed, svg):
            result = run([profiler, "record", "--native", "-d", str(RECORD_SECONDS), "-p",
                          str(target.pid), "-o", out], timeout=PROFILER_TIMEOUT + RECORD_SECONDS)
            if result.returncode != 0:
                raise Failure("record --native -o %s: exit %d\n%s"
                              % (os.path.basename(out), result.returncode, result.describe()))
            m = re.search(r"(\d+) not merged", result.stderr_text)
            if not m or m.group(1) != "0":
                raise Failure("stacks not merged, or no count of them:\n%s" % result.stderr_text)
        detail = check_collapsed(collapsed)
        with open(svg, encoding="utf-8") as f:
            drawn = f.read()
        if not re.search(r"\[_multiarray_umath[^\]<]*\.so\]", drawn):
            raise Failure("the flame graph has no frame of numpy's _multiarray_umath")
        return detail + "; the flame graph draws them"
    finally:
        target.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--manifest", default=DEFAULT_MANIFEST)
    parser.add_argument("--interp", default="debian12-3.11")
    args = parser.parse_args()
    interp = find_interpreter(args.manifest, args.interp)
    profiler = profiler_path(args.bin_dir, interp.minor)
    work = tempfile.mkdtemp(prefix="pyflame-numpy-")
    cases = Cases()
    try:
        cases.run("numpy", lambda: case_numpy(profiler, interp, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return cases.summary()


if __name__ == "__main__":
    main_wrapper(main)
