# SPDX-License-Identifier: Apache-2.0
"""Workload for test_churn.py: stacks that change every few microseconds,
every one of which is known.  Runs on 2.7 and 3.6+ (no 3-only syntax here;
the async coroutine lives in fixture_churn_async.py, imported on 3.5+).

    fixture_churn.py

Threads, each started through threading.Thread:
- fib_worker: fib(FIB_N) in a loop (recursion up to FIB_N frames deep);
- exc_worker: catcher() raises ValueError through THROW_DEPTH + 1 thrower
  frames and catches it;
- gen_worker: summer() sums a generator (sum() resumes gen from C; gen
  calls leaf);
- coro_worker: drive() primes and sends into a generator-based coroutine
  by hand until it returns;
- async_worker (3.5+): fixture_churn_async.adrive() sends into an
  `async def` coroutine that awaits a types.coroutine generator;
- the main thread (spawner) starts and joins short-lived threads running
  short_task (a little of each) without end.

Every call between the fixture's functions sits on one line; a call that
resumes a generator or coroutine through C (next, send) is marked with a
`# resumes NAME` comment.  test_churn.py derives the allowed caller -> callee
pairs (with the caller's line) from this file's syntax tree and those marks.

The standard library's part (threading's bootstrap of each thread, Thread
start/join in the spawner) is recorded from the interpreter itself before
the workload starts: the same workload runs briefly with a profile function
(sys.setprofile) in every thread, installed before threading's bootstrap
runs, and every Python call it sees is reported as (caller file, caller
function, caller line, callee file, callee function); a thread's first
frame is reported as a root.  The ready line (JSON on stdout) carries those,
the fixture's file names as the interpreter sees them and the recursion
limits.  The fixture never exits by itself: the test kills it.
"""
import gc
import json
import os
import sys
import threading

FIB_N = 18
SHORT_FIB_N = 10
THROW_DEPTH = 13
GEN_LEN = 50
CORO_SENDS = 50
CALIBRATION_ROUNDS = 30

try:
    import fixture_churn_async as churn_async
except SyntaxError:  # 2.7: no async def
    churn_async = None


def fib(n):
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)


def thrower(n):
    if n == 0:
        raise ValueError(n)
    thrower(n - 1)


def catcher():
    try:
        thrower(THROW_DEPTH)
    except ValueError:
        pass


def leaf(i):
    return i * 2 + 1


def gen(n):
    for i in range(n):
        yield leaf(i)


def summer():
    return sum(gen(GEN_LEN))


def coro(n):
    total = 0
    for _ in range(n):
        x = yield total
        total += leaf(x)


def drive():
    c = coro(CORO_SENDS)
    next(c)  # resumes coro
    try:
        while True:
            c.send(1)  # resumes coro
    except StopIteration:
        pass


def fib_worker(stop):
    while not stop[0]:
        fib(FIB_N)


def exc_worker(stop):
    while not stop[0]:
        catcher()


def gen_worker(stop):
    while not stop[0]:
        summer()


def coro_worker(stop):
    while not stop[0]:
        drive()


def async_worker(stop):
    while not stop[0]:
        churn_async.adrive(CORO_SENDS)


def short_task():
    fib(SHORT_FIB_N)
    catcher()
    summer()
    drive()


def start_workers(stop):
    targets = [fib_worker, exc_worker, gen_worker, coro_worker]
    if churn_async is not None:
        targets.append(async_worker)
    threads = []
    for target in targets:
        t = threading.Thread(target=target, args=(stop,), name=target.__name__)
        t.daemon = True
        t.start()
        threads.append(t)
    return threads


def spawner(rounds):
    done = 0
    while rounds is None or done < rounds:
        a = threading.Thread(target=short_task)
        b = threading.Thread(target=short_task)
        a.start()
        b.start()
        a.join()
        b.join()
        done += 1


# ------------------------------------------------------------ calibration
# Functions named _cal_* exist only while calibrating; the edges they take
# part in are not reported.

_cal_edges = set()
_cal_roots = set()


def _cal_label(code):
    return getattr(code, "co_qualname", code.co_name)  # what pyflame shows: 3.11+ qualname


def _cal_profile(frame, event, arg):
    if event != "call":
        return
    code = frame.f_code
    callee = (code.co_filename, _cal_label(code))
    back = frame.f_back
    if code.co_name.startswith("_cal"):
        return
    if back is None or back.f_code.co_name == "_cal_thread":
        _cal_roots.add(callee)  # a thread's first frame
        return
    if back.f_code.co_name.startswith("_cal"):
        return
    _cal_edges.add((back.f_code.co_filename, _cal_label(back.f_code), back.f_lineno) + callee)


def _cal_wrap(function):
    def _cal_thread(*args, **kwargs):
        sys.setprofile(_cal_profile)
        return function(*args, **kwargs)
    return _cal_thread


def _cal_run():
    """Runs the workload briefly with _cal_profile in every thread."""
    name = "_start_joinable_thread" if hasattr(threading, "_start_joinable_thread") \
        else "_start_new_thread"
    original = getattr(threading, name)

    def _cal_start(function, *args, **kwargs):
        return original(_cal_wrap(function), *args, **kwargs)

    setattr(threading, name, _cal_start)
    stop = [False]
    sys.setprofile(_cal_profile)
    try:
        threads = start_workers(stop)
        spawner(CALIBRATION_ROUNDS)
        stop[0] = True
        for t in threads:
            t.join()
    finally:
        sys.setprofile(None)
        setattr(threading, name, original)


def main():
    # Hand the GIL over often (3.x; 2.7 switches every 100 bytecodes): the
    # spawner, which needs it to start and join each thread, would otherwise
    # wait up to 5 ms per hand-over behind the five busy workers.
    if hasattr(sys, "setswitchinterval"):
        sys.setswitchinterval(0.0005)
    # No cyclic collection: it could run a weakref callback or finalizer (a
    # Python frame) at any allocation.  The workload makes no cycles.
    gc.disable()
    _cal_run()
    files = {"main": fib.__code__.co_filename}
    if churn_async is not None:
        files["async"] = churn_async.adrive.__code__.co_filename
    ready = {
        "ready": True, "pid": os.getpid(), "version": list(sys.version_info[:3]),
        "files": files,
        # longest run of one function's frames, by the function that entered the run
        "recursion": [["fib_worker", "fib", FIB_N], ["short_task", "fib", SHORT_FIB_N],
                      ["catcher", "thrower", THROW_DEPTH + 1]],
        "edges": sorted(_cal_edges), "roots": sorted(_cal_roots),
    }
    line = json.dumps(ready) + "\n"
    start_workers([False])
    sys.stdout.write(line)
    sys.stdout.flush()
    spawner(None)


if __name__ == "__main__":
    main()
