#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""pyflame's benchmark: cost per sample, highest rate, overhead on the target,
profiler cost, peak RSS and accuracy, with the peers measured in the same run
(CPython 3.15's `profiling.sampling`, "Tachyon", and Debian's Austin).

See docs/benchmarks.md for what each figure means and how it is measured.
Usually run through scripts/bench.sh, which builds what this needs.

Runs under the host's python3 (3.9+); standard library only. Needs root (the
profilers read other processes; peers in chroots need a mount namespace).
"""


from __future__ import annotations

from harness import *  # noqa: F401,F403
from tools import *  # noqa: F401,F403
from cost import *  # noqa: F401,F403
from quality import *  # noqa: F401,F403
from report import *  # noqa: F401,F403


def machine() -> dict:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    osname = "Linux"
    try:
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                osname = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return {"cpu": cpu, "cpus": os.cpu_count() or 0, "kernel": platform.release(),
            "os": osname, "loadavg": " ".join("%.2f" % x for x in os.getloadavg())}


def git_describe(bin_dir: Optional[str]) -> Optional[str]:
    """The commit of the tree BIN_DIR was built from (build/bin in a
    checkout), if that is a git tree."""
    if not bin_dir:
        return None
    try:
        out = subprocess.run(["git", "-C", os.path.abspath(bin_dir), "describe", "--always",
                              "--dirty"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.decode().strip() or None if out.returncode == 0 else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin-dir", required=True, help="directory holding pyflameX.Y")
    ap.add_argument("--floor-bin", help="vm_readv_floor program")
    ap.add_argument("--baseline-bin-dir", help="directory holding an older build's "
                    "pyflameX.Y: the cost and churn steps also record it, right after "
                    "pyflame, and report after / before")
    ap.add_argument("--manifest", default=pt.DEFAULT_MANIFEST)
    ap.add_argument("--interp", action="append", default=[],
                    help="manifest name to run (repeatable); default: a representative set")
    ap.add_argument("--all", action="store_true", help="every provisioned interpreter")
    ap.add_argument("--workload", dest="workloads", action="append", default=[],
                    help="stack workload to run (repeatable): " +
                    ", ".join(w[0] for w in STACK_WORKLOADS))
    ap.add_argument("--only", action="append", default=[],
                    choices=["cost", "overhead", "accuracy", "rss", "churn"],
                    help="run only these figures (repeatable)")
    ap.add_argument("--seconds", type=float, default=2.0, help="per cost measurement")
    ap.add_argument("--overhead-seconds", type=float, default=2.0)
    ap.add_argument("--accuracy-seconds", type=float, default=3.0)
    ap.add_argument("--rss-interp", action="append", default=[],
                    help="interpreters to measure peak RSS on (default: sid-3.15, "
                    "else the last one run)")
    ap.add_argument("--rss-samples", default="100000,1000000",
                    help="sample counts for peak RSS, comma-separated")
    ap.add_argument("--rss-max-seconds", type=float, default=60.0,
                    help="cap on one RSS recording; the table says when it capped")
    ap.add_argument("--baseline-rounds", type=int, default=3,
                    help="pairs of recordings (this build, the baseline) per workload and "
                    "mode, and (default mode, --idle) per threaded workload; each ratio "
                    "is their median")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--quick", action="store_true",
                    help="1 s measurements, 3.11 and 3.15 only, 10k/100k RSS samples")
    ap.add_argument("--json", default="build/bench/results.json")
    ap.add_argument("--markdown", help="also write the table here")
    args = ap.parse_args()
    if args.quick:
        args.seconds = args.overhead_seconds = 1.0
        args.accuracy_seconds = 2.0
        args.rss_samples = "10000,100000"
        args.rss_max_seconds = 15.0
        if not args.interp and not args.all:
            args.interp = ["pyenv-3.11.7", "sid-3.15"]
    args.rss_samples = [int(x) for x in args.rss_samples.split(",") if x]
    if os.geteuid() != 0:
        log("bench: run as root (profilers read other processes; peers need namespaces)")
        return 2

    rows = pt.read_manifest(args.manifest)
    wanted = [r.name for r in rows] if args.all else (args.interp or DEFAULT_SET)
    interps = [r for r in rows if r.name in wanted]
    missing = [n for n in wanted if n not in {r.name for r in interps}]
    for n in missing:
        log("bench: SKIP %s: not in %s" % (n, args.manifest))
    rss_interps = args.rss_interp or (["sid-3.15"] if "sid-3.15" in [i.name for i in interps]
                                      else [interps[-1].name] if interps else [])
    austin = None if args.no_peers else shutil.which("austin")
    if not args.no_peers and not austin:
        log("bench: austin is not installed (test/tools/bench_peers.sh): no Austin figures")
    only = set(args.only) or {"cost", "overhead", "accuracy", "rss", "churn"}

    doc = {"machine": machine(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "max_rate": MAX_RATE, "interpreters": {},
           "bin_dir": args.bin_dir, "baseline_bin_dir": args.baseline_bin_dir,
           "baseline_rounds": args.baseline_rounds if args.baseline_bin_dir else None,
           "default_vs_idle_rounds": args.baseline_rounds,
           "commit": git_describe(args.bin_dir),
           "baseline_commit": git_describe(args.baseline_bin_dir)}
    outdir = tempfile.mkdtemp(prefix="pyflame-bench-")
    began = time.monotonic()
    try:
        for interp in interps:
            binary = os.path.join(args.bin_dir, "pyflame" + interp.minor)
            if not os.access(binary, os.X_OK):
                log("bench: SKIP %s: %s not built" % (interp.name, binary))
                continue
            log("== %s (%s)" % (interp.name, interp.version))
            pyflame = Pyflame(binary)
            peers = [] if args.no_peers else peers_for(interp, austin)
            res = {"minor": interp.minor, "version": interp.version, "mode": interp.mode,
                   "peers": [p.name for p in peers]}
            doc["interpreters"][interp.name] = res
            steps = [("cost", measure_cost), ("overhead", measure_overhead),
                     ("accuracy", measure_accuracy)]
            if interp.name in rss_interps:
                steps.append(("rss", measure_rss))
            if interp.minor in CHURN_MINORS:
                steps.append(("churn", measure_churn))
            for key, step in steps:
                if key not in only:
                    continue
                try:
                    res[key] = step(interp, pyflame, peers, args, outdir)
                except RuntimeError as e:
                    log("bench: %s %s failed: %s" % (interp.name, key, e))
                    res[key] = {"error": str(e)[:4000]}
    finally:
        shutil.rmtree(outdir, ignore_errors=True)
    doc["seconds"] = time.monotonic() - began
    table = markdown(doc)
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(doc, f, indent=1)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table)
    print(table)
    log("bench: %.0f s; JSON in %s" % (doc["seconds"], args.json))
    return 0


if __name__ == "__main__":
    sys.exit(main())
