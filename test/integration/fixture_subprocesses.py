# SPDX-License-Identifier: Apache-2.0
"""Process trees for test_subprocesses.py (`--subprocesses`, issue 17): every
process that works burns CPU with a known split.  Runs on 2.7 and 3.6+ (the
pool scenarios need 3.4+).

    fixture_subprocesses.py worker --role ROLE --seconds S
    fixture_subprocesses.py pool --start-method fork|spawn --seconds S [--workers N]
    fixture_subprocesses.py versions --python PY27 --python PY312 --seconds S
    fixture_subprocesses.py shell --python PY --seconds S [--delay D]
    fixture_subprocesses.py short --count N [--parallel K] [--life L]
    fixture_subprocesses.py missing --python PY --seconds S [--exec-after E]

A working process spends its time in cycles of CYCLE seconds (4.37 ms) on
an absolute wall-clock schedule: the first 3/4 of each cycle in hot_ROLE_a,
the last 1/4 in hot_ROLE_b, busy-waiting on the clock (so a sampled share of hot_ROLE_a
among that process's hot_ROLE_* samples is 75%, whatever share of a CPU the
process gets: a process that is not on a CPU is runnable, and is sampled in
the function it was in). A schedule that has fallen behind (the process was
descheduled past a boundary) skips the slices it missed rather than shifting
the cycle.

Scenarios, each printing one JSON line to stdout (flushed) when the
processes that work are running ("ready", with their pids), then the same
process ends by itself after --seconds:

  worker    one process burning in hot_ROLE_a/b (ROLE: pool, py27, py312,
            shell, short, exec; auto: pyXY of its own version); prints
            {"ready": true, "pid", "role"}.
  pool      a multiprocessing.Pool of N workers (2; start method fork or
            spawn), each burning in hot_pool_a/b; the parent waits on the pool.
  versions  `subprocess` children, started at once: each --python runs
            `worker --role auto` (py27, py312: its own version's; --role R:
            R for every child); the parent waits.
  shell     a child `sh -c 'sleep D; exec "$0" "$@"' PY fixture worker
            --role shell`: a shell (not Python) that becomes Python after D
            seconds; the parent prints ready as soon as the shell started.
  short     N children in a loop, at most K at a time, each burning in
            hot_short_a/b for L seconds, then exiting; even ones by
            os.fork(), odd ones through `subprocess` (a new interpreter); the
            parent waits. Prints {"child": pid, "at": time.time(), "forked"}
            as each starts, ready once the first K started, and {"done":
            true, "children": [pids]} at the end.
  missing   a `subprocess` child `PY worker --role auto` (a version whose
            profiler binary the test hides) and a child of this interpreter
            that burns in hot_exec_a/b for E seconds and then execs
            /bin/sleep (a non-Python program).

--report: each working process also writes to stderr, when it ends, a JSON
line {"pid", "role", "wall": {name: seconds}, "seconds", "cpu"}: the wall
time it measured in each function (its own split: a process descheduled
for long in one function is sampled there too), its burning time and the
CPU time it got.
"""
import json
import os
import subprocess
import sys
import time

now = getattr(time, "perf_counter", time.time)
cpu_now = getattr(time, "process_time", None) or time.clock  # 2.7: CPU time
HERE = os.path.abspath(__file__)
# Seconds: 3/4 of it in hot_ROLE_a, 1/4 in hot_ROLE_b. Not a multiple or
# divisor of a scheduler tick (1, 4 or 10 ms): a process descheduled on the
# tick would otherwise always lose the same phase of its cycle (a 4 ms cycle
# measured 55% in hot_ROLE_a on a busy 2-core machine with HZ=250; 4.37 ms,
# 74-76%).
CYCLE = 0.00437
SHARE_A = 0.75
REPORT = "--report" in sys.argv


# One pair per role, each busy-waiting until the clock passes UNTIL. The
# loop calls only a C function: the innermost Python frame stays this one.
def hot_pool_a(until):
    while now() < until:
        pass


def hot_pool_b(until):
    while now() < until:
        pass


def hot_py27_a(until):
    while now() < until:
        pass


def hot_py27_b(until):
    while now() < until:
        pass


def hot_py312_a(until):
    while now() < until:
        pass


def hot_py312_b(until):
    while now() < until:
        pass


def hot_shell_a(until):
    while now() < until:
        pass


def hot_shell_b(until):
    while now() < until:
        pass


def hot_short_a(until):
    while now() < until:
        pass


def hot_short_b(until):
    while now() < until:
        pass


def hot_exec_a(until):
    while now() < until:
        pass


def hot_exec_b(until):
    while now() < until:
        pass


ROLES = {
    "pool": (hot_pool_a, hot_pool_b),
    "py27": (hot_py27_a, hot_py27_b),
    "py312": (hot_py312_a, hot_py312_b),
    "shell": (hot_shell_a, hot_shell_b),
    "short": (hot_short_a, hot_short_b),
    "exec": (hot_exec_a, hot_exec_b),
}


def burn(role, seconds):
    """Cycles of hot_ROLE_a then hot_ROLE_b for SECONDS, on an absolute
    schedule; returns the wall-clock seconds measured in each."""
    functions = ROLES[role]
    wall = dict((f.__name__, 0.0) for f in functions)
    # No system call in this loop (the clock is read through the vDSO): a
    # system call is where a descheduled process is most often preempted,
    # and a preemption between the two calls would take its time from
    # neither function but from the shorter one's slice.
    start = now()
    cpu_start = cpu_now()
    cycles = int(seconds / CYCLE)
    a, b = functions
    wall_a = wall_b = 0.0
    for k in range(cycles):
        base = start + k * CYCLE
        t0 = now()
        a(base + SHARE_A * CYCLE)
        t1 = now()
        b(base + CYCLE)
        wall_a += t1 - t0
        wall_b += now() - t1
    wall[a.__name__], wall[b.__name__] = wall_a, wall_b
    if REPORT:
        sys.stderr.write(json.dumps({"pid": os.getpid(), "role": role, "wall": wall,
                                     "seconds": now() - start,
                                     "cpu": cpu_now() - cpu_start}) + "\n")
        sys.stderr.flush()
    return wall


def say(document):
    sys.stdout.write(json.dumps(document) + "\n")
    sys.stdout.flush()


def option(args, name, default=None, convert=str):
    if name in args:
        return convert(args[args.index(name) + 1])
    return default


def options(args, name):
    return [args[i + 1] for i, arg in enumerate(args) if arg == name and i + 1 < len(args)]


def worker_argv(python, role, seconds):
    argv = [python, HERE, "worker", "--role", role, "--seconds", str(seconds)]
    return argv + (["--report"] if REPORT else [])


def start_workers(pythons, role, seconds):
    """Starts `PYTHON fixture worker` for each of PYTHONS at once, then waits
    for their ready lines; returns [(Popen, pid)]."""
    procs = [subprocess.Popen(worker_argv(python, role, seconds), stdout=subprocess.PIPE)
             for python in pythons]
    started = []
    for python, proc in zip(pythons, procs):
        line = proc.stdout.readline()
        if not line:
            raise SystemExit("worker %s under %s did not start" % (role, python))
        started.append((proc, json.loads(line.decode("ascii"))["pid"]))
    return started


# ------------------------------------------------------------- scenarios


def scenario_worker(args):
    role = option(args, "--role")
    if role == "auto":  # named after this interpreter's version: py27, py312
        role = "py%d%d" % sys.version_info[:2]
    say({"ready": True, "pid": os.getpid(), "role": role})
    burn(role, option(args, "--seconds", 5.0, float))


_started = None  # the pool workers' queue (set by pool_init)


def pool_init(queue):
    global _started
    _started = queue


def pool_task(seconds):
    _started.put(os.getpid())
    burn("pool", seconds)
    return os.getpid()


def scenario_pool(args):
    import multiprocessing
    method = option(args, "--start-method", "fork")
    seconds = option(args, "--seconds", 5.0, float)
    workers = option(args, "--workers", 2, int)
    context = multiprocessing.get_context(method)
    queue = context.Queue()
    pool = context.Pool(workers, initializer=pool_init, initargs=(queue,))
    try:
        # One task per worker: a worker busy with its task for SECONDS
        # leaves the other tasks to the other workers.
        result = pool.map_async(pool_task, [seconds] * workers, chunksize=1)
        pids = sorted(queue.get(timeout=60) for _ in range(workers))
        say({"ready": True, "pid": os.getpid(), "workers": pids, "method": method})
        done = result.get(timeout=seconds + 60)
        if sorted(done) != pids:
            raise SystemExit("pool: tasks ran in %r, started in %r" % (done, pids))
    finally:
        pool.close()
        pool.join()


def scenario_versions(args):
    seconds = option(args, "--seconds", 5.0, float)
    role = option(args, "--role", "auto")
    children = start_workers(options(args, "--python"), role, seconds)
    say({"ready": True, "pid": os.getpid(), "children": [pid for _, pid in children]})
    status = [proc.wait() for proc, _ in children]
    if any(status):
        raise SystemExit("versions: children exited %r" % status)


def scenario_shell(args):
    seconds = option(args, "--seconds", 5.0, float)
    delay = option(args, "--delay", 0.5, float)
    python = option(args, "--python", sys.executable)
    script = 'sleep %s; exec "$0" "$@"' % delay
    proc = subprocess.Popen(["/bin/sh", "-c", script] + worker_argv(python, "shell", seconds),
                            stdout=subprocess.PIPE)
    # Ready while the child is still the shell: an attached profiler sees it
    # become Python.
    say({"ready": True, "pid": os.getpid(), "shell": proc.pid})
    line = proc.stdout.readline()
    if not line or json.loads(line.decode("ascii"))["pid"] != proc.pid:
        raise SystemExit("shell: the child did not become the worker (%r)" % line)
    if proc.wait():
        raise SystemExit("shell: the child exited %d" % proc.returncode)


def scenario_short(args):
    count = option(args, "--count", 100, int)
    parallel = option(args, "--parallel", 4, int)
    life = option(args, "--life", 0.3, float)
    running = {}  # pid -> Popen or None (forked)
    started = []
    failed = []

    def reap(block):
        for pid in list(running):
            proc = running[pid]
            if proc is not None:
                status = proc.wait() if block else proc.poll()
                if status is None:
                    continue
            else:
                got, status = os.waitpid(pid, 0 if block else os.WNOHANG)
                if got == 0:
                    continue
            if status:
                failed.append((pid, status))
            del running[pid]
            return True
        return False

    for i in range(count):
        while len(running) >= parallel:
            if not reap(False):
                time.sleep(0.002)
        if i % 2 == 0:
            pid = os.fork()
            if pid == 0:
                try:
                    burn("short", life)
                finally:
                    os._exit(0)
            running[pid] = None
        else:
            proc = subprocess.Popen(worker_argv(sys.executable, "short", life),
                                    stdout=subprocess.DEVNULL)
            pid = proc.pid
            running[pid] = proc
        started.append(pid)
        say({"child": pid, "at": time.time(), "forked": i % 2 == 0})
        if len(started) == min(parallel, count):
            say({"ready": True, "pid": os.getpid()})
    while running:
        reap(True)
    say({"done": True, "pid": os.getpid(), "children": started})
    if failed:
        raise SystemExit("short: children failed: %r" % failed)


def scenario_missing(args):
    seconds = option(args, "--seconds", 5.0, float)
    exec_after = option(args, "--exec-after", 1.0, float)
    children = start_workers(options(args, "--python"), "auto", seconds)
    pid = os.fork()
    if pid == 0:
        try:
            burn("exec", exec_after)
            os.execv("/bin/sleep", ["/bin/sleep", str(max(seconds - exec_after, 0.1))])
        finally:
            os._exit(1)
    say({"ready": True, "pid": os.getpid(), "children": [p for _, p in children],
         "execs": pid})
    status = [os.waitpid(pid, 0)[1]] + [proc.wait() for proc, _ in children]
    if any(status):
        raise SystemExit("missing: children exited %r" % status)


SCENARIOS = {
    "worker": scenario_worker,
    "pool": scenario_pool,
    "versions": scenario_versions,
    "shell": scenario_shell,
    "short": scenario_short,
    "missing": scenario_missing,
}


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in SCENARIOS:
        sys.stderr.write("usage: fixture_subprocesses.py %s [options]\n" % "|".join(SCENARIOS))
        sys.exit(2)
    SCENARIOS[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
