# SPDX-License-Identifier: Apache-2.0
"""What sampling does to the target and how right it is: overhead, accuracy, churn, peak RSS."""

from __future__ import annotations

from harness import *  # noqa: F401,F403
from tools import *  # noqa: F401,F403
from cost import *  # noqa: F401,F403


def measure_overhead(interp, pyflame, peers, args, outdir) -> dict:
    """Throughput of the CPU-bound loop unprofiled and profiled, interleaved:
    every profiled window is compared with the mean of the unprofiled windows
    just before and after it."""
    conditions = []
    for tool in [pyflame] + peers:
        for blocking in (False, True):
            for rate in OVERHEAD_RATES:
                conditions.append((tool, blocking, rate))
    results = {"conditions": []}
    with Workload(interp, ["--mode", "throughput", "--depth", "30"]) as wl:
        seconds = args.overhead_seconds

        def baseline():
            t0 = wl.clock()
            time.sleep(seconds)
            t1 = wl.clock()
            wl.wait_lines_until(t1)
            return throughput(wl, t0, t1), throughput(wl, t0, t1, per_cpu=True)

        base, base_cpu = baseline()
        results["baselines"] = [base]
        results["baselines_per_cpu"] = [base_cpu]
        for tool, blocking, rate in conditions:
            try:
                r = tool.record(wl, seconds, rate, blocking, outdir)
            except RuntimeError as e:
                results["conditions"].append({"tool": tool.name, "blocking": blocking,
                                              "rate": rate, "error": str(e)[:2000]})
                continue
            if r is None:
                continue
            wl.wait_lines_until(r["t1"])
            during = throughput(wl, r["t0"], r["t1"])
            during_cpu = throughput(wl, r["t0"], r["t1"], per_cpu=True)
            after, after_cpu = baseline()
            results["baselines"].append(after)
            results["baselines_per_cpu"].append(after_cpu)
            ref = [b for b in (base, after) if b]
            ratio = during / statistics.mean(ref) if during and ref else None
            ref_cpu = [b for b in (base_cpu, after_cpu) if b]
            ratio_cpu = during_cpu / statistics.mean(ref_cpu) if during_cpu and ref_cpu else None
            base, base_cpu = after, after_cpu
            results["conditions"].append({
                "tool": tool.name, "blocking": blocking, "rate": rate,
                "throughput": during, "ratio": ratio,
                "slowdown_pct": (1 - ratio) * 100 if ratio else None,
                "ratio_per_cpu": ratio_cpu,
                "achieved_rate": r.get("achieved_rate"), "samples": r.get("samples"),
                "cpu_seconds": r.get("cpu_seconds"),
                "cpu_s_per_1000": 1000 * r["cpu_seconds"] / r["samples"] if r.get("samples") else None,
            })
            log("  overhead %-8s %-11s %6d Hz: ratio %s" % (
                tool.name, "blocking" if blocking else "nonblocking", rate,
                "%.3f" % ratio if ratio else "-"))
    for key in ("baselines", "baselines_per_cpu"):
        bl = [b for b in results[key] if b]
        results[key.replace("baselines", "baseline_spread_pct")] = (
            100 * statistics.pstdev(bl) / statistics.mean(bl) if len(bl) > 1 else None)
    return results


def rate_at_slowdown(by_rate: Dict[int, dict], pct: float = 5.0) -> Optional[str]:
    """The rate at which the slowdown reaches PCT %, interpolated linearly in
    log(rate) between the measured rates; ">MAX" if it never does."""
    points = [(r, by_rate[r].get("slowdown_pct")) for r in sorted(by_rate)
              if by_rate[r].get("slowdown_pct") is not None]
    if not points:
        return None
    prev_r, prev_s = None, None
    for r, s in points:
        if s >= pct:
            if prev_r is None:
                return "<%d" % r
            f = (pct - prev_s) / (s - prev_s) if s != prev_s else 0.0
            return "%.0f" % math.exp(math.log(prev_r) + f * (math.log(r) - math.log(prev_r)))
        prev_r, prev_s = r, s
    return ">%d" % points[-1][0]


def measure_accuracy(interp, pyflame, peers, args, outdir) -> dict:
    functions = ["part_a", "part_b", "part_c"]
    results = {}
    with Workload(interp, ["--mode", "split"]) as wl:
        for tool in [pyflame] + peers:
            wl.wait_lines_until(wl.clock())  # a line before the recording starts
            try:
                r = tool.record(wl, args.accuracy_seconds, 1000, False, outdir)
            except RuntimeError as e:
                results[tool.name] = {"error": str(e)[:2000]}
                continue
            wl.wait_lines_until(r["t1"])
            lines = wl.lines_between(r["t0"] - 1, r["t1"] + 1)
            before = [v for v in lines if v[0] <= r["t0"]]
            after = [v for v in lines if v[0] >= r["t1"]]
            if not before or not after:
                results[tool.name] = {"error": "no workload lines around the recording"}
                continue
            spent = [after[0][i + 1] - before[-1][i + 1] for i in range(3)]
            measured = [s / sum(spent) for s in spent]
            counts = [0, 0, 0]
            for stack, count in r["collapsed"]:
                for i, fn in enumerate(functions):
                    if tool.part_of(stack, fn):
                        counts[i] += count
                        break
            total = sum(counts)
            sampled = [c / total for c in counts] if total else None
            err = max(abs(a - b) for a, b in zip(sampled, measured)) * 100 if sampled else None
            results[tool.name] = {"measured": measured, "sampled": sampled, "samples": total,
                                  "max_error_points": err}
            log("  accuracy %-8s measured %s sampled %s" % (
                tool.name, fmt_shares(measured), fmt_shares(sampled)))
    return results


class ChurnTarget:
    """test_churn.py's fixture as the profilers' record() expects a target."""

    def __init__(self, fixture):
        self.fixture = fixture
        self.pid, self.tmpdir = fixture.pid, fixture.tmpdir

    @staticmethod
    def clock() -> float:
        return time.monotonic()


class TachyonFrames:
    """Tachyon's collapsed stacks as the churn oracle's frames.

    Tachyon writes `tid:N;FILE:FUNCTION:LINE;...` with FILE the base name
    of the code's file and FUNCTION the code's name; the oracle's frames are
    (label, file as the interpreter sees it, line), the label a qualified
    name on 3.11+ (`Thread._bootstrap`). A frame is matched with the
    oracle's model: its file is the model's only file of that base name, and
    its label the model's only label in that file equal to FUNCTION or
    ending in `.FUNCTION`; a line of -1 (none) becomes None, as pyflame
    writes such a frame without a line. What matches nothing is left as Tachyon wrote it
    (the oracle then finds it impossible); where several labels match (none
    does on the fixture), the stack counts as possible if any choice makes
    it so."""

    def __init__(self, oracle):
        self.oracle = oracle
        labels: Dict[str, set] = {}
        model = oracle.model
        for f, name in model["roots"]:
            labels.setdefault(f, set()).add(name)
        for e in model["stdlib_edges"] + model["fixture_edges"]:
            labels.setdefault(e[0], set()).add(e[1])
            labels.setdefault(e[3], set()).add(e[4])
        for f, name, _, _ in model["functions"]:
            labels.setdefault(f, set()).add(name)
        self.labels = labels
        self.files: Dict[str, List[str]] = {}
        for f in labels:
            self.files.setdefault(os.path.basename(f), []).append(f)
        self.matched: Dict[str, int] = {}  # how frames matched -> frames x samples

    def candidates(self, part: str):
        """(the frames PART may stand for, how it matched)."""
        pieces = part.rsplit(":", 2)
        if len(pieces) != 3 or not pieces[2].lstrip("-").isdigit():
            return [(part, "<unknown>", None)], "unmatched"  # a special frame (<GC>)
        # -1: no line (an instruction without a location, as exception
        # cleanup code has); pyflame then writes no line, the oracle's None.
        base, function, line = pieces[0], pieces[1], int(pieces[2])
        line = line if line > 0 else None
        found = [(name, f, line) for f in self.files.get(base, []) for name in self.labels[f]
                 if name == function or name.endswith("." + function)]
        if not found:
            return [(function, base, line)], "unmatched"
        if len(found) > 1:
            return found, "ambiguous"
        return found, "same" if found[0][0] == function else "qualified"

    def convert(self, stack: str, count: int):
        """(frames root first, COUNT) of one collapsed line of Tachyon's."""
        parts = stack.split(";")
        if parts and parts[0].startswith("tid:"):
            parts = parts[1:]
        choices = []
        for part in parts:
            options, how = self.candidates(part)
            choices.append(options)
            self.matched[how] = self.matched.get(how, 0) + count
        frames = [c[0] for c in choices]
        if any(len(c) > 1 for c in choices) and self.oracle.why_impossible(frames):
            if math.prod(len(c) for c in choices) <= 256:
                for option in itertools.product(*choices):
                    if self.oracle.why_impossible(list(option)) is None:
                        frames = list(option)
                        break
        return frames, count


def measure_churn(interp, pyflame, peers, args, outdir) -> dict:
    """test_churn.py's fixture (stacks that change every few microseconds,
    each one known) recorded at the highest rate by each tool in turn; every
    sample is classified possible or impossible by test_churn.py's oracle."""
    import test_churn as tc  # the integration directory is on sys.path
    tools = [(pyflame, False)]
    baseline = baseline_for(interp, args)
    if baseline:
        tools.append((baseline, False))
    tools.append((pyflame, True))
    tools += [(p, False) for p in peers if p.name == "tachyon"]
    results = {}
    with tc.ChurnFixture(OwnMounts(interp)) as fixture:
        target = ChurnTarget(fixture)
        oracle = fixture.oracle
        for tool, blocking in tools:
            key = tool.name + ("_blocking" if blocking else "")
            try:
                r = tool.record(target, args.seconds, MAX_RATE, blocking, outdir)
            except RuntimeError as e:
                results[key] = {"error": str(e)[:2000]}
                continue
            if not fixture.alive():
                raise RuntimeError("the churn fixture died under %s" % key)
            if tool.name == "tachyon":
                frames = TachyonFrames(oracle)
                stacks = [frames.convert(stack, count) for stack, count in r["collapsed"]]
                matched = {"frames_matched": frames.matched}
            else:
                # A thread with no Python frame (started, not yet in
                # Python; or done) is no stack to classify: Tachyon leaves
                # such threads out of its output, pyflame --idle writes them
                # as one pseudo-frame. Counted apart.
                no_frames = sum(c for stack, c in r["collapsed"] if stack == NO_FRAMES)
                text = "".join("%s %d\n" % sc for sc in r["collapsed"] if sc[0] != NO_FRAMES)
                stacks = tc.parse_collapsed(text)
                matched = {"no_python_frames": no_frames}
            total, impossible, reasons = tc.classify_stacks(oracle, stacks)
            row = slim(r)
            row.update(matched)
            row.update({
                "thread_samples_classified": total, "impossible": impossible,
                "impossible_share": impossible / total if total else None,
                "retries_per_sample": r["retries"] / r["samples"]
                if r.get("retries") is not None and r.get("samples") else None,
                "impossible_reasons": {why: sum(c for c, _ in ex)
                                       for why, ex in reasons.items()},
            })
            results[key] = row
            log("  churn %-15s %7.0f samples/s, %d thread samples, %d impossible (%.3f%%)%s"
                % (key, r.get("achieved_rate") or 0, total, impossible,
                   100.0 * impossible / total if total else float("nan"),
                   ", torn %.3f%%" % (100 * r["torn_share"])
                   if r.get("torn_share") is not None else ""))
            if reasons:
                log("    " + tc.describe_impossible(reasons, 4))
    return results


def fmt_shares(shares) -> str:
    return "/".join("%.1f" % (100 * s) for s in shares) if shares else "-"


def measure_rss(interp, pyflame, peers, args, outdir) -> dict:
    """Peak RSS after about 100k and 1M samples of the varied workload."""
    results = {}
    with Workload(interp, ["--mode", "varied", "--depth", "20"]) as wl:
        for tool in [pyflame] + [p for p in peers if p.name == "tachyon"]:
            probe = tool.record(wl, 1.0, MAX_RATE, False, outdir)
            rate = probe.get("achieved_rate") or 1000
            row = {"probe_rate": rate}
            for target in args.rss_samples:
                seconds = min(args.rss_max_seconds, max(1.0, target / rate))
                try:
                    r = tool.record(wl, seconds, MAX_RATE, False, outdir)
                except RuntimeError as e:
                    row[str(target)] = {"error": str(e)[:2000]}
                    continue
                row[str(target)] = {"samples": r["samples"], "seconds": seconds,
                                    "max_rss_kb": r["max_rss_kb"],
                                    "max_rss_kb_stats": r.get("max_rss_kb_stats"),
                                    "distinct_stacks": len(r["collapsed"]),
                                    "capped": seconds >= args.rss_max_seconds}
                log("  rss %-8s %8d samples asked, %8d taken: %d KiB" % (
                    tool.name, target, r["samples"], r["max_rss_kb"]))
            results[tool.name] = row
    return results


# ------------------------------------------------------------------ report
