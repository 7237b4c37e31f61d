#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Fault-injection tests of `pyflameX.Y record` (issue 6) against one interpreter.

    test_faults.py --bin-dir DIR --interp NAME --case CASE [--manifest PATH] [--repeat N]

Each case is repeated (the count is printed) to catch races:

  target_dies      the target exits or is SIGKILLed while recorded,
                   nonblocking and --blocking: exit 7 within 5 s, saying
                   "exited", a whole profile holding the samples taken before
  target_execs     the same when the target execs another program (`sleep`),
                   saying "executed another program"
  thread_churn     threads created and destroyed at thousands per second while
                   recorded at 1000/s with -d: exit 0, on time, whole profile
  finalization     daemon threads (spinning, and blocked in I/O that wakes
                   after the interpreter began to finalize) while the main
                   thread exits, recorded at 2000/s through the shutdown: no
                   crash, exit 7, and no frame but those the interpreter
                   itself reports running in that fixture (recorded first
                   under a profile function), <unknown> (rare) and
                   <no Python frames>
  sigkill          the profiler SIGKILLed at random moments while --blocking,
                   every other time while it holds threads stopped: the
                   target is never left stopped and keeps running
  two_profilers    two recordings of one target at once, nonblocking (both
                   work) and --blocking (the second works or fails clearly)
  traced           the target already traced by strace, then by gdb: samples
                   nonblocking (the stopped stacks under gdb), exit 4 and the
                   profile written with --blocking, never a hang
  stopped          a SIGSTOPped target: -d 1 ends on time in both modes and
                   the target is left stopped, as it was
  namespace        a target in another PID and mount namespace (unshare):
                   dump gives host TIDs, names and idle states; record keeps
                   the busy thread only, and nothing of an idle program
  deleted_exe      a static interpreter whose executable was deleted, or
                   replaced by another program, after it started
  chroot_libpython an --enable-shared interpreter in a chroot, its tree
                   bind-mounted at the same or another path, or copied in:
                   dump and pyflame-detect find its libpython
  same_output      two recordings writing the same output path at the same
                   moment: the file is always one whole profile
  job_control      Ctrl-Z (SIGTSTP), SIGTTIN, SIGTTOU of a --blocking
                   recording: no target thread is held while it is stopped
  many_threads     2,000 target threads under a 1024-file limit: every
                   thread read, idle ones not counted, no false "exited"
  idle_threads     64 threads of known states, 54 blocked: without --idle
                   no blocked thread kept, the running ones (Python, C) kept

Exit 0 pass, 1 fail, 77 skip.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile

from pyflame_test import DEFAULT_MANIFEST, find_interpreter, log, main_wrapper, profiler_path
from faults.ending import (case_finalization, case_sigkill, case_target_dies, case_target_execs,
                           case_thread_churn, case_two_profilers)
from faults.isolation import case_chroot_libpython, case_deleted_exe, case_namespace
from faults.threads import case_idle_threads, case_many_threads, case_same_output
from faults.tracing import case_job_control, case_stopped, case_traced


CASES = {
    "target_dies": (case_target_dies, 5),
    "target_execs": (case_target_execs, 5),
    "thread_churn": (case_thread_churn, 2),
    "finalization": (case_finalization, 6),
    "sigkill": (case_sigkill, 50),
    "two_profilers": (case_two_profilers, 2),
    "traced": (case_traced, 1),
    "stopped": (case_stopped, 2),
    "namespace": (case_namespace, 2),
    "deleted_exe": (case_deleted_exe, 2),
    "chroot_libpython": (case_chroot_libpython, 1),
    "same_output": (case_same_output, 12),
    "job_control": (case_job_control, 22),
    "many_threads": (case_many_threads, 1),
    "idle_threads": (case_idle_threads, 1),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--interp", required=True)
    parser.add_argument("--manifest", default=DEFAULT_MANIFEST)
    parser.add_argument("--case", required=True, choices=sorted(CASES))
    parser.add_argument("--repeat", type=int, help="repetitions (default: the case's own)")
    args = parser.parse_args()
    interp = find_interpreter(args.manifest, args.interp)
    profiler = profiler_path(args.bin_dir, interp.minor)
    body, default_repeat = CASES[args.case]
    repeat = args.repeat or default_repeat
    log("%s on %s, repeat count %d" % (args.case, interp.name, repeat))
    work = tempfile.mkdtemp(prefix="pyflame-faults-")
    os.chmod(work, 0o755)
    try:
        body(profiler, interp, work, repeat)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    main_wrapper(main)
