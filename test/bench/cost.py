# SPDX-License-Identifier: Apache-2.0
"""Cost per sample: each stack workload at the highest rate, against a baseline build and
the kernel's floor, and the default mode against --idle."""

from __future__ import annotations

from harness import *  # noqa: F401,F403
from tools import *  # noqa: F401,F403


def before_after(pyflame, baseline, first, wl, blocking, args, outdir):
    """(the baseline's first recording, the after/before figures): the
    baseline records WL right after pyflame's recording FIRST, for as long;
    then --baseline-rounds - 1 more pairs, the order alternating (B A, A B,
    ...) so that neither build always goes first. Each pair gives a ratio
    of two recordings seconds apart; the figures are their medians."""
    pairs = []
    after = first
    before = slim(baseline.record(wl, args.seconds, MAX_RATE, blocking, outdir))
    first_before = before
    pairs.append((after, before))
    for i in range(1, args.baseline_rounds):
        if i % 2:
            before = slim(baseline.record(wl, args.seconds, MAX_RATE, blocking, outdir))
            after = slim(pyflame.record(wl, args.seconds, MAX_RATE, blocking, outdir))
        else:
            after = slim(pyflame.record(wl, args.seconds, MAX_RATE, blocking, outdir))
            before = slim(baseline.record(wl, args.seconds, MAX_RATE, blocking, outdir))
        pairs.append((after, before))

    def figures(field):
        a = [p[0].get(field) for p in pairs]
        b = [p[1].get(field) for p in pairs]
        ratios = [x / y for x, y in zip(a, b) if x and y]
        return {"after": a, "before": b, "ratios": ratios,
                "after_median": statistics.median([x for x in a if x]) if any(a) else None,
                "before_median": statistics.median([y for y in b if y]) if any(b) else None,
                "ratio": statistics.median(ratios) if ratios else None}

    return first_before, {
        "rounds": len(pairs), "us_median": figures("us_median"),
        "us_mean_at_max": figures("us_mean_at_max"),
        "torn_share": [p[0].get("torn_share") for p in pairs],
        "retries_per_sample": [p[0]["retries"] / p[0]["samples"] if p[0].get("samples") and
                               p[0].get("retries") is not None else None for p in pairs],
    }


def default_vs_idle(pyflame, first_idle, wl, args, outdir) -> dict:
    """The price of the default mode's idle detection: WL recorded
    nonblocking without --idle right after FIRST_IDLE (its --idle
    recording), then --baseline-rounds - 1 more pairs, the order
    alternating, as before_after() does. Figures, not pass/fail: the
    median of each pair's default / --idle ratio of sample_us_median and
    of the µs per sample at the highest rate, and the thread samples kept
    per sample (--idle keeps every thread; the default mode only those
    it found running)."""
    pairs = [(slim(pyflame.record(wl, args.seconds, MAX_RATE, False, outdir, idle=False)),
              first_idle)]
    for i in range(1, args.baseline_rounds):
        if i % 2:
            idle = slim(pyflame.record(wl, args.seconds, MAX_RATE, False, outdir))
            default = slim(pyflame.record(wl, args.seconds, MAX_RATE, False, outdir, idle=False))
        else:
            default = slim(pyflame.record(wl, args.seconds, MAX_RATE, False, outdir, idle=False))
            idle = slim(pyflame.record(wl, args.seconds, MAX_RATE, False, outdir))
        pairs.append((default, idle))

    def figures(field):
        d = [p[0].get(field) for p in pairs]
        i = [p[1].get(field) for p in pairs]
        ratios = [x / y for x, y in zip(d, i) if x and y]
        return {"default": d, "idle": i, "ratios": ratios,
                "default_median": statistics.median([x for x in d if x]) if any(d) else None,
                "idle_median": statistics.median([y for y in i if y]) if any(i) else None,
                "ratio": statistics.median(ratios) if ratios else None}

    def kept(r):
        return r["thread_samples"] / r["samples"] if r.get("samples") and \
            r.get("thread_samples") is not None else None

    return {"rounds": len(pairs), "us_median": figures("us_median"),
            "us_mean_at_max": figures("us_mean_at_max"),
            "threads_kept_default": [kept(p[0]) for p in pairs],
            "threads_kept_idle": [kept(p[1]) for p in pairs]}


def measure_cost(interp, pyflame, peers, args, outdir) -> dict:
    """Each stack workload at the highest rate, nonblocking and --blocking
    (and the baseline build's figures right after pyflame's, if given)."""
    results = {}
    baseline = baseline_for(interp, args)
    for name, depth, threads, blocked in STACK_WORKLOADS:
        if args.workloads and name not in args.workloads:
            continue
        with Workload(interp, ["--mode", "stack", "--depth", str(depth),
                               "--threads", str(threads), "--blocked", str(blocked)]) as wl:
            if wl.ready.get("depths") != [depth] * threads:
                raise RuntimeError("%s under %s: threads at depths %s, expected %d x %d"
                                   % (name, interp.name, wl.ready.get("depths"), threads, depth))
            row = {"depth": depth, "threads": threads, "blocked": blocked}
            for blocking in (False, True):
                key = "blocking" if blocking else "nonblocking"
                row["pyflame_" + key] = slim(pyflame.record(wl, args.seconds, MAX_RATE,
                                                            blocking, outdir))
                if threads > 1 and not blocking:
                    row["default_vs_idle"] = default_vs_idle(
                        pyflame, row["pyflame_" + key], wl, args, outdir)
                if baseline:
                    row["pyflame_before_" + key], row["pyflame_before_after_" + key] = before_after(
                        pyflame, baseline, row["pyflame_" + key], wl, blocking, args, outdir)
                for peer in peers:
                    try:
                        row["%s_%s" % (peer.name, key)] = slim(
                            peer.record(wl, args.seconds, MAX_RATE, blocking, outdir))
                    except RuntimeError as e:
                        row["%s_%s" % (peer.name, key)] = {"error": str(e)[:2000]}
            if name == "depth100" and args.floor_bin:
                shape = (row.get("pyflame_nonblocking") or {}).get("read_sizes")
                row["floor"] = measure_floor(args.floor_bin, wl.pid, shape)
            if name == "depth100":
                row["pyflame_reads_per_sample"] = count_reads(pyflame, wl, outdir)
        results[name] = row
        log("  cost %-10s pyflame %s" % (name, brief(row.get("pyflame_nonblocking"))))
        dv = row.get("default_vs_idle")
        if dv:
            log("  cost %-10s default / --idle: median %s us / %s us = %s, at max %s" % (
                name, num(dv["us_median"]["default_median"]), num(dv["us_median"]["idle_median"]),
                num(dv["us_median"]["ratio"], "%.2f"), num(dv["us_mean_at_max"]["ratio"], "%.2f")))
        if baseline:
            log("  cost %-10s before  %s" % (name, brief(row.get("pyflame_before_nonblocking"))))
    return results


def count_reads(pyflame, wl: Workload, outdir: str) -> Optional[dict]:
    """Memory reads per sample, counted by strace over a short recording
    (strace slows the profiler; only the counts are used)."""
    strace = shutil.which("strace")
    if not strace:
        return None
    trace = os.path.join(outdir, "strace.txt")
    stats = os.path.join(outdir, "strace-stats.json")
    run = run_tool([strace, "-f", "-c", "-e", "trace=process_vm_readv,pread64,openat,read",
                    "-o", trace, pyflame.binary, "record", "-p", str(wl.pid), "-d", "1",
                    "--rate", "200", "-o", os.path.join(outdir, "strace.out"),
                    "--stats-json", stats, "--no-status"], 60)
    if run.returncode != 0 or not os.path.exists(stats):
        return None
    with open(stats) as f:
        samples = json.load(f).get("samples") or 0
    calls = {}
    for line in open(trace):
        fields = line.split()
        if len(fields) >= 5 and fields[-1] in ("process_vm_readv", "pread64", "openat", "read"):
            calls[fields[-1]] = int(fields[3])
    if not samples:
        return None
    return {"samples": samples, "calls": calls,
            "per_sample": {k: v / samples for k, v in calls.items()}}


def brief(r: Optional[dict]) -> str:
    if not r or r.get("us_median") is None and r.get("us_mean_at_max") is None:
        return "-"
    return "median %.1fus p99 %.1fus rate %.0f/s" % (
        r.get("us_median") or float("nan"), r.get("us_p99") or float("nan"),
        r.get("achieved_rate") or 0)


def measure_floor(floor_bin: str, pid: int, shape: Optional[List[int]] = None) -> dict:
    argv = [floor_bin, "-p", str(pid), "--iterations", "5000", "--json",
            "--sizes", "64,1024,4096,16384,65536", "--pair", "1024,16384", "--gather", "101,512"]
    if shape:
        # pyflame's own read set (its last call): the kernel's share of a sample.
        argv += ["--ranges", ",".join(str(n) for n in shape)]
    run = run_tool(argv, 60)
    if run.returncode != 0:
        return {"error": run.describe()}
    doc = json.loads(run.stdout)
    by = {(r["kind"], r["bytes"]): r for r in doc["reads"]}
    one_tstate = by[("single", 1024)]["us_median"]
    one_chunk = by[("single", 16384)]["us_median"]
    # 3.11+: the thread state, then the data-stack chunk it points to.
    doc["floor_311plus_us"] = one_tstate + one_chunk
    # ... or both in one call, trusting the last sample's chunk address.
    doc["floor_311plus_1call_us"] = by[("gather2", 1024 + 16384)]["us_median"]
    # <= 3.10: frames are heap objects linked by f_back, one dependent read each,
    doc["floor_pre311_us"] = one_tstate + 100 * by[("single", 1024)]["us_median"]
    # ... or all 101 ranges in one call, trusting the last sample's addresses.
    doc["floor_pre311_1call_us"] = by[("gather101", 101 * 512)]["us_median"]
    if shape:
        doc["read_set_us"] = by[("shape%d" % len(shape), sum(shape))]["us_median"]
        doc["read_set_ranges"] = len(shape)
    return doc


def throughput(wl: Workload, t0: float, t1: float, per_cpu: bool = False) -> Optional[float]:
    """Median iterations per wall second (or per CPU second of the target)
    over the window lines fully inside [t0, t1]."""
    window = wl.ready["window"]
    lines = wl.lines_between(t0 + window + 0.05, t1)
    if per_cpu:
        rates = [v[1] / v[2] for v in lines if len(v) > 2 and v[2] > 0]
    else:
        rates = [v[1] / window for v in lines]
    return statistics.median(rates) if rates else None
