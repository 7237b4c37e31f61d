#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Peak RSS and time of pyflame3.11 against a hostile target
(docs/reliability.md, "A hostile target"). Run as root:

    scripts/bench.sh --hostile            # or:
    test/bench/hostile.py --bin-dir build/bin [--manifest PATH] [--n 300 1000]

Rows: the line-table bomb (N code objects on one stack sharing one 1 MiB
co_linetable; `record -d 4 --rate 100`), a library with a sparse .rodata of
512 MiB and 1 TiB, and one with 8000 symbol tables (`dump`). Prints a
markdown table; the ceiling pyflame promises is RSS_CEILING_MIB.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "fuzz"))

from make_corpus import many_symtabs_elf, sparse_rodata_elf  # noqa: E402
from pyflame_test import DEFAULT_MANIFEST, find_interpreter, profiler_path  # noqa: E402
from test_hostile_target import (BOMB, MAPPER, RSS_CEILING_MIB, Started,  # noqa: E402
                                 measure, write_library)


def target_rss(pid):
    with open("/proc/%d/status" % pid) as f:
        return int([l.split()[1] for l in f if l.startswith("VmRSS:")][0]) / 1024.0


def bomb_row(profiler, python, n):
    with Started([python, "-c", BOMB, str(n)]) as target:
        work = tempfile.mkdtemp(prefix="pyflame-bench-")
        try:
            stats = os.path.join(work, "stats.json")
            m = measure([profiler, "record", "-p", str(target.pid), "-d", "4", "--rate", "100",
                         "-o", os.path.join(work, "out"), "-f", "collapsed",
                         "--stats-json", stats], 300)
            samples = json.load(open(stats)).get("samples", 0) if os.path.exists(stats) else 0
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return ("line-table bomb, N=%d" % n, target_rss(target.pid), m,
                "%s samples in 4 s at 100/s" % samples)


def file_row(profiler, python, what, content, size):
    work = tempfile.mkdtemp(prefix="pyflame-bench-")
    try:
        lib = write_library(work, content, size)
        with Started([python, "-c", MAPPER, lib]) as target:
            m = measure([profiler, "dump", "-p", str(target.pid)], 120)
            err = (m.err.strip().splitlines() or [""])[-1]
            return (what, target_rss(target.pid), m, err[:90])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--manifest", default=DEFAULT_MANIFEST)
    parser.add_argument("--n", type=int, nargs="*", default=[300, 1000])
    args = parser.parse_args()
    profiler = profiler_path(args.bin_dir, "3.11")
    pyenv = find_interpreter(args.manifest, "pyenv-3.11.7").python
    static = find_interpreter(args.manifest, "debian12-3.11").python
    rows = [bomb_row(profiler, pyenv, n) for n in args.n]
    symtabs = many_symtabs_elf()
    rows += [file_row(profiler, static, ".rodata 512 MiB (sparse)", sparse_rodata_elf(512 << 20),
                      0x1000 + (512 << 20)),
             file_row(profiler, static, ".rodata 1 TiB (sparse)", sparse_rodata_elf(1 << 40),
                      0x1000 + (1 << 40)),
             file_row(profiler, static, "8000 symbol tables (%.1f MB)" % (len(symtabs) / 1e6),
                      symtabs, len(symtabs))]
    print("| hostile target (%s) | target RSS | pyflame peak RSS | time | outcome |" % profiler)
    print("|---|---|---|---|---|")
    worst = 0.0
    for what, trss, m, note in rows:
        worst = max(worst, m.rss_mib)
        print("| %s | %.0f MiB | %.0f MiB | %.1f s (%s) | %s |"
              % (what, trss, m.rss_mib, m.seconds, m.status(), note.replace("|", "/")))
    print("\nceiling %d MiB: %s" % (RSS_CEILING_MIB, "held" if worst < RSS_CEILING_MIB else "EXCEEDED"))
    return 0 if worst < RSS_CEILING_MIB else 1


if __name__ == "__main__":
    sys.exit(main())
