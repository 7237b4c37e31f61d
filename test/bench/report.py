# SPDX-License-Identifier: Apache-2.0
"""The results as markdown tables."""

from __future__ import annotations

from harness import *  # noqa: F401,F403
from quality import fmt_shares, rate_at_slowdown


def markdown(doc: dict) -> str:
    out = []
    m = doc["machine"]
    out.append("Machine: %s, %s, %d CPUs, kernel %s; load average at start %s\n" % (
        m["cpu"], m["os"], m["cpus"], m["kernel"], m["loadavg"]))
    before = doc.get("baseline_bin_dir") is not None
    out.append("### Cost per sample (highest rate asked: %d/s)\n" % MAX_RATE)
    out.append("| interpreter | workload | mode | pyflame median µs | p99 µs | samples/s "
               "| µs/sample at max | peer | peer µs/sample at max | peer samples/s "
               "| peer's own µs/sample | **pyflame/peer** |"
               + (" after / before, µs per sample |" if before else ""))
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if before else ""))
    for iname, res in doc["interpreters"].items():
        for wname, row in res.get("cost", {}).items():
            for mode in ("nonblocking", "blocking"):
                p = row.get("pyflame_" + mode) or {}
                b = row.get("pyflame_before_" + mode) or {}
                peer_keys = [k for k in row if k.endswith("_" + mode) and
                             not k.startswith("pyflame") and row[k] is not None]
                cells = [iname, wname, mode, num(p.get("us_median")), num(p.get("us_p99")),
                         num(p.get("achieved_rate"), "%.0f"), num(p.get("us_mean_at_max"))]
                ba = (row.get("pyflame_before_after_" + mode) or {}).get("us_median") or {}
                tail = [num(ba.get("ratio"), "%.2f")] if before else []
                if not peer_keys:
                    out.append("| " + " | ".join(cells + ["-", "-", "-", "-", "-"] + tail)
                               + " |")
                for k in peer_keys:
                    q = row[k] or {}
                    out.append("| " + " | ".join(cells + [
                        k.rsplit("_", 1)[0], num(q.get("us_mean_at_max")),
                        num(q.get("achieved_rate"), "%.0f"),
                        num(q.get("us_unwind_mean") or q.get("us_sample_mean")),
                        "**%s**" % ratio(p.get("us_mean_at_max"), q.get("us_mean_at_max"))]
                        + tail) + " |")
    if before:
        out.append("\n### Before / after (this build vs. %s; medians of %s interleaved "
                   "pairs on the same process)\n" % (
                       doc.get("baseline_commit") or doc["baseline_bin_dir"],
                       doc.get("baseline_rounds")))
        out.append("| interpreter | workload | mode | before median µs | after median µs "
                   "| **after / before** (range) | before µs/sample at max "
                   "| after µs/sample at max | after / before at max "
                   "| after: torn share % | after: retries / sample |")
        out.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for iname, res in doc["interpreters"].items():
            for wname, row in res.get("cost", {}).items():
                for mode in ("nonblocking", "blocking"):
                    ba = row.get("pyflame_before_after_" + mode)
                    if not ba:
                        continue
                    med, at_max = ba["us_median"], ba["us_mean_at_max"]
                    torn = [t for t in ba["torn_share"] if t is not None]
                    retries = [t for t in ba["retries_per_sample"] if t is not None]
                    out.append("| %s | %s | %s | %s | %s | **%s** (%s) | %s | %s | %s | %s | %s |"
                               % (iname, wname, mode, num(med["before_median"]),
                                  num(med["after_median"]), num(med["ratio"], "%.2f"),
                                  "–".join("%.2f" % f(med["ratios"]) for f in (min, max))
                                  if med["ratios"] else "-",
                                  num(at_max["before_median"]), num(at_max["after_median"]),
                                  num(at_max["ratio"], "%.2f"),
                                  num(100 * max(torn) if torn else None, "%.3f"),
                                  num(max(retries) if retries else None, "%.3f")))
    out.append("\n### Default mode against --idle (nonblocking; medians of %s interleaved "
               "pairs on the same process)\n" % doc.get("default_vs_idle_rounds"))
    out.append("Without `--idle` pyflame keeps only the threads it finds running; "
               "mixed8 and mixed64 have 2 and 4 threads spinning, the rest blocked.\n")
    out.append("| interpreter | workload | --idle median µs | default median µs "
               "| **default / --idle** (range) | --idle µs/sample at max "
               "| default µs/sample at max | default / --idle at max "
               "| threads kept per sample: --idle / default |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    for iname, res in doc["interpreters"].items():
        for wname, row in res.get("cost", {}).items():
            dv = row.get("default_vs_idle")
            if not dv:
                continue
            med, at_max = dv["us_median"], dv["us_mean_at_max"]
            kept_i = [k for k in dv["threads_kept_idle"] if k is not None]
            kept_d = [k for k in dv["threads_kept_default"] if k is not None]
            out.append("| %s | %s | %s | %s | **%s** (%s) | %s | %s | %s | %s / %s |" % (
                iname, wname, num(med["idle_median"]), num(med["default_median"]),
                num(med["ratio"], "%.2f"),
                "–".join("%.2f" % f(med["ratios"]) for f in (min, max))
                if med["ratios"] else "-",
                num(at_max["idle_median"]), num(at_max["default_median"]),
                num(at_max["ratio"], "%.2f"),
                num(statistics.median(kept_i) if kept_i else None, "%.2f"),
                num(statistics.median(kept_d) if kept_d else None, "%.2f")))
    out.append("\n### Floor at depth 100 (process_vm_readv, median µs)\n")
    out.append("| interpreter | 1 read 64 B | 1 read 16 KiB | floor, 1 call (3.11+: 2 ranges; "
               "≤3.10: 101 ranges) | floor, dependent reads (3.11+: 2; ≤3.10: 101) "
               "| pyflame median | **pyflame / 1-call floor** | pyflame / dependent floor "
               "| pyflame's read set alone, 1 call (ranges) | pyflame / its read set "
               "| pyflame syscalls/sample: process_vm_readv + pread |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for iname, res in doc["interpreters"].items():
        row = res.get("cost", {}).get("depth100", {})
        f = row.get("floor")
        if not f or "reads" not in f:
            continue
        by = {(r["kind"], r["bytes"]): r["us_median"] for r in f["reads"]}
        modern = pt.build_key(res["minor"])[:2] >= (3, 11)
        one_call = f["floor_311plus_1call_us"] if modern else f["floor_pre311_1call_us"]
        dependent = f["floor_311plus_us"] if modern else f["floor_pre311_us"]
        med = (row.get("pyflame_nonblocking") or {}).get("us_median")
        reads = ((row.get("pyflame_reads_per_sample") or {}).get("per_sample") or {})
        out.append("| %s | %s | %s | %s | %s | %s | **%s** | %s | %s | %s | %s |" % (
            iname, num(by.get(("single", 64)), "%.2f"), num(by.get(("single", 16384)), "%.2f"),
            num(one_call, "%.2f"), num(dependent, "%.2f"), num(med), ratio(med, one_call),
            ratio(med, dependent),
            "%s (%s)" % (num(f.get("read_set_us"), "%.2f"), f.get("read_set_ranges"))
            if f.get("read_set_us") else "-",
            ratio(med, f.get("read_set_us")),
            "%s + %s" % (num(reads.get("process_vm_readv")), num(reads.get("pread64")))
            if reads else "-"))
    out.append("\n### Overhead on the target (throughput profiled / unprofiled; 1.00 = none)\n")
    out.append("| interpreter | tool | mode | 100 Hz | 1 kHz | 10 kHz | rate costing 5 % (Hz, est.) "
               "| CPU s / 1000 samples at 1 kHz | baseline spread % "
               "| per target CPU-second: 100 Hz / 1 kHz / 10 kHz (spread %) |")
    out.append("|---|---|---|---|---|---|---|---|---|---|")
    for iname, res in doc["interpreters"].items():
        ov = res.get("overhead")
        if not ov:
            continue
        seen = {}
        for c in ov["conditions"]:
            seen.setdefault((c["tool"], c["blocking"]), {})[c["rate"]] = c
        for (tool, blocking), by_rate in seen.items():
            out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s (%s) |" % (
                iname, tool, "blocking" if blocking else "nonblocking",
                *[num((by_rate.get(r) or {}).get("ratio"), "%.3f") for r in OVERHEAD_RATES],
                rate_at_slowdown(by_rate) or "-",
                num((by_rate.get(1000) or {}).get("cpu_s_per_1000"), "%.3f"),
                num(ov.get("baseline_spread_pct")),
                " / ".join(num((by_rate.get(r) or {}).get("ratio_per_cpu"), "%.3f")
                           for r in OVERHEAD_RATES),
                num(ov.get("baseline_spread_pct_per_cpu"))))
    out.append("\n### Profiler cost at the highest rate (depth 100, nonblocking)\n")
    out.append("| interpreter | tool | samples | CPU s / 1000 samples | peak RSS KiB |")
    out.append("|---|---|---|---|---|")
    for iname, res in doc["interpreters"].items():
        row = res.get("cost", {}).get("depth100", {})
        for k in sorted(row):
            if k.endswith("_nonblocking") and isinstance(row[k], dict) and row[k].get("samples"):
                r = row[k]
                out.append("| %s | %s | %d | %s | %s |" % (
                    iname, k.rsplit("_", 1)[0], r["samples"],
                    num(1000 * r["cpu_seconds"] / r["samples"], "%.3f"),
                    num(r.get("max_rss_kb"), "%d")))
    out.append("\n### Peak RSS, varied stack (64 paths under 20 frames)\n")
    out.append("| interpreter | tool | samples (small) | stacks | RSS KiB | samples (large) | stacks "
               "| RSS KiB | growth |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    for iname, res in doc["interpreters"].items():
        for tool, row in (res.get("rss") or {}).items():
            keys = [k for k in row if k != "probe_rate"]
            if len(keys) < 2:
                continue
            a, b = row[keys[0]], row[keys[-1]]
            if "error" in a or "error" in b:
                continue
            out.append("| %s | %s | %d | %s | %d | %d%s | %s | %d | %s |" % (
                iname, tool, a["samples"], a.get("distinct_stacks", "-"), a["max_rss_kb"],
                b["samples"], " (capped)" if b.get("capped") else "",
                b.get("distinct_stacks", "-"), b["max_rss_kb"],
                "%+.1f%%" % (100.0 * (b["max_rss_kb"] - a["max_rss_kb"]) / a["max_rss_kb"])
                if a["max_rss_kb"] else "-"))
    out.append("\n### Accuracy (50/30/20 split; sampled vs measured share, %, 1 kHz)\n")
    out.append("| interpreter | tool | measured a/b/c | sampled a/b/c | max error (points) "
               "| samples |")
    out.append("|---|---|---|---|---|---|")
    for iname, res in doc["interpreters"].items():
        for tool, r in (res.get("accuracy") or {}).items():
            if "error" in r:
                out.append("| %s | %s | error | | | |" % (iname, tool))
                continue
            out.append("| %s | %s | %s | %s | %s | %d |" % (
                iname, tool, fmt_shares(r["measured"]), fmt_shares(r["sampled"]),
                num(r["max_error_points"]), r["samples"]))
    out.append("\n### Churning stacks (test_churn.py's fixture, highest rate, "
               "impossible samples by its oracle)\n")
    out.append("| interpreter | tool | mode | samples/s | failed samples % | good samples/s "
               "| thread samples "
               "| CPU s / 1000 samples | torn share % | retries / sample "
               "| **impossible share %** | impossible |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for iname, res in doc["interpreters"].items():
        for key, r in (res.get("churn") or {}).items():
            if key == "error":
                out.append("| %s | error | | | | | | | | | | |" % iname)
                continue
            tool = key.replace("_blocking", "")
            tool = {"pyflame_before": "pyflame before (%s)" % (
                doc.get("baseline_commit") or "baseline")}.get(tool, tool)
            if "error" in r:
                out.append("| %s | %s | error | | | | | | | | | |" % (iname, tool))
                continue
            errors, samples = r.get("errors"), r.get("samples")
            failed = errors / samples if errors is not None and samples else None
            out.append("| %s | %s | %s | %s | %s | %s | %d | %s | %s | %s | **%s** | %d |" % (
                iname, tool, "blocking" if r["blocking"] else "nonblocking",
                num(r.get("achieved_rate"), "%.0f"),
                num(100.0 * failed if failed is not None else None, "%.2f"),
                num(r["achieved_rate"] * (1 - failed) if failed is not None and
                    r.get("achieved_rate") else None, "%.0f"),
                r["thread_samples_classified"],
                num(1000 * r["cpu_seconds"] / samples if samples else None, "%.3f"),
                num(100 * r["torn_share"] if r.get("torn_share") is not None else None, "%.3f"),
                num(r.get("retries_per_sample"), "%.3f"),
                num(100 * r["impossible_share"] if r.get("impossible_share") is not None
                    else None, "%.3f"), r["impossible"]))
    return "\n".join(out) + "\n"
