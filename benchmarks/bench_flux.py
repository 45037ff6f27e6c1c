"""Flux (its real source-controller and kustomize-controller) against the lab's own pull agent, polling
the same env repo at the same interval on the embedded Kubernetes cluster, in one run.

    python benchmarks/bench_flux.py [--releases 20] [--interval 4] [--heals 6] [--json benchmarks/results/flux.json]

One scenario with three lanes (`agent`: delivery pull; `flux`: delivery flux; `agent-heal-at-poll`: the
agent with `live_check` = the interval, i.e. looking at live state only when it polls, as Flux does;
1 replica each) gets
`--releases` releases at random moments (seeded), then `--heals` manual scales to 2 replicas. Reported:
- detection delay (commit -> detected: the agent's fetch / GitRepository's artifact revision), its
  distribution and a Kolmogorov-Smirnov test against what polling predicts: a commit lands at a random
  moment of a poll period P, so the delay's CDF is F(d) = (1/E[P]) * integral_0^d P(P > s) ds, with
  P = interval + U(0, jitter) for the agent and P = interval * (1 + U(-5 %, +5 %)) for Flux (its
  controllers' default --interval-jitter-percentage), i.e. uniform on [0, interval] when P is fixed;
- apply time (detected -> apply started, and for Flux detected -> Kustomization lastAppliedRevision),
  and apply -> 100 % of traffic (the Deployment controller's rollout, the same for both);
- self-heal time (manual scale -> live state back to the repo's).
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlopslab.events import read_events  # noqa: E402

FLUX_JITTER = 0.05


def scenario(releases: int, interval: float, heals: int, seed: int) -> dict:
    rng = random.Random(seed)
    lane = {"replicas": 1, "warmup": 0.5, "rollout": {"maxSurge": 1, "maxUnavailable": 0, "progressDeadlineSeconds": 30},
            "poll": {"interval": interval}}
    timeline, t = [], 20.0
    for i in range(releases):   # a gap longer than detection + rollout, at a random phase of the poll period
        timeline.append({"at": round(t, 2), "release": {"C": round(0.5 + 0.1 * (i % 7), 2), "note": f"r{i + 2}"}})
        t += interval + 5.0 + rng.uniform(0.0, interval)
    for i in range(heals):
        timeline.append({"at": round(t, 2), "manual_change": {"lane": "all", "replicas": 2}})
        t += interval + 4.0 + rng.uniform(0.0, interval)
    return {"name": "bench-flux", "seed": seed, "duration": round(t + 5.0),
            "environment": {"kind": "kubernetes", "cluster": "embedded"},
            "model": {"name": "churn", "data": {"n_features": 8, "n_samples": 2000}, "train": {"C": 1.0}},
            "traffic": {"rate": 10},
            "lanes": [{"name": "agent", "delivery": "pull", **copy.deepcopy(lane)},
                      {"name": "flux", "delivery": "flux", **copy.deepcopy(lane)},
                      # the agent told to look at live state only at its interval, as Flux does
                      {"name": "agent-heal-at-poll", "delivery": "pull", **copy.deepcopy(lane), "live_check": interval}],
            "timeline": timeline}


def polling_cdf(low: float, high: float):
    """CDF of the delay to the next poll for a commit at a random moment, poll periods ~ U(low, high)."""
    mean = (low + high) / 2

    def cdf(d):
        import numpy as np

        d = np.clip(np.asarray(d, dtype=float), 0.0, high)
        if high == low:
            return d / mean
        inside = low + (d - low) - (d - low) ** 2 / (2 * (high - low))
        return np.where(d < low, d, inside) / mean
    return cdf


def source_periods(log: Path, name: str) -> dict[str, list[float]]:
    """Seconds between the ends of consecutive reconciles of GitRepository `name`, from source-controller's
    JSON log: {"same": periods ending in "no changes", "change": periods ending in "stored artifact"}."""
    from datetime import datetime

    ends = []
    for line in log.read_text(errors="replace").splitlines() if log.exists() else []:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        message = entry.get("msg", "")
        if entry.get("name") == name and message.startswith(("no changes", "stored artifact")):
            at = datetime.fromisoformat(entry["ts"].replace("Z", "+00:00")).timestamp()
            ends.append((at, "change" if message.startswith("stored") else "same"))
    out: dict[str, list[float]] = {"same": [], "change": []}
    for (before, _), (at, kind) in zip(ends, ends[1:]):
        out[kind].append(at - before)
    return out


def describe(values: list[float]) -> dict:
    values = sorted(v for v in values if v is not None)
    if not values:
        return {"n": 0}
    q = statistics.quantiles(values, n=20) if len(values) > 1 else [values[0]] * 19
    return {"n": len(values), "mean": statistics.fmean(values), "median": statistics.median(values),
            "p5": q[0], "p95": q[-1], "min": values[0], "max": values[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", type=int, default=20)
    parser.add_argument("--interval", type=float, default=4.0)
    parser.add_argument("--heals", type=int, default=6)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", type=Path, help="keep the run's results here")
    parser.add_argument("--from-run", type=Path, help="analyse this earlier run's results instead of running")
    args = parser.parse_args()
    from scipy import stats   # lazily: only the benchmark needs it

    doc = scenario(args.releases, args.interval, args.heals, args.seed)
    with tempfile.TemporaryDirectory(prefix="bench-flux-") as tmp:
        results = args.from_run or args.keep or Path(tmp) / "run"
        if args.from_run is None:
            path = Path(tmp) / "bench-flux.yaml"
            path.write_text(yaml.safe_dump(doc, sort_keys=False))
            done = subprocess.run([sys.executable, "-m", "mlopslab.cli", "run", str(path), "--results", str(results)],
                                  capture_output=True, text=True, timeout=3600)
            if done.returncode != 0:
                raise SystemExit(f"exit {done.returncode}\n{done.stderr[-3000:]}")
        summary = json.loads((results / "summary.json").read_text())
        events = list(read_events(results / "events.jsonl"))
        periods = source_periods(results / "k8s" / "logs" / "source-controller.log", "flux")
    report: dict = {"interval": args.interval, "releases": args.releases, "lanes": {}}
    predicted = {"agent": (args.interval, args.interval), "agent-heal-at-poll": (args.interval, args.interval),
                 "flux": (args.interval * (1 - FLUX_JITTER), args.interval * (1 + FLUX_JITTER))}
    applied_after = {e["sha"]: e["after_detected"] for e in events if e["kind"] == "flux_applied" and e.get("lane") == "flux"}
    lanes = tuple(lane for lane in ("agent", "flux", "agent-heal-at-poll") if lane in summary["lanes"])
    for lane in lanes:
        releases = [r for r in summary["lanes"][lane]["releases"] if r["version"] != "1"]
        lead = [r["lead"] for r in releases]
        detect = [x["detected"] for x in lead if x.get("detected") is not None]
        apply = [x["apply_started"] - x["detected"] for x in lead if x.get("apply_started") is not None
                 and x.get("detected") is not None]
        rollout = [x["traffic_100"] - x["apply_started"] for x in lead if x.get("traffic_100") is not None
                   and x.get("apply_started") is not None]
        heal = [c["reverted_after"] for c in summary["lanes"][lane]["live_changes"]]
        low, high = predicted[lane]
        ks = stats.kstest(detect, polling_cdf(low, high)) if len(detect) >= 2 else None
        report["lanes"][lane] = {
            "detected": describe(detect), "detected_values": detect,
            "ks": {"statistic": ks.statistic, "pvalue": ks.pvalue, "period": [low, high]} if ks else None,
            "detected_to_apply": describe(apply), "apply_to_traffic_100": describe(rollout),
            "self_heal": describe([h for h in heal if h is not None]), "heals_missing": sum(h is None for h in heal),
            "failed": [r["version"] for r in releases if r["failed"]]}
        if lane == "flux":
            report["lanes"][lane]["detected_to_last_applied"] = describe(
                [v for sha, v in applied_after.items() if any(sha.startswith(r["sha"]) for r in releases)])
            # source-controller's own log: a GitRepository's poll period (reconcile end to end), and how much
            # longer a period is when its poll finds a new commit (clone, tarball, artifact stored)
            same, change = periods.get("same", []), periods.get("change", [])
            extra = statistics.fmean(change) - statistics.fmean(same) if same and change else 0.0
            shifted = stats.kstest([d - extra for d in detect], polling_cdf(low, high))
            report["lanes"][lane]["source_controller"] = {
                "poll_period": describe(same), "poll_period_with_new_commit": describe(change),
                "artifact_build_s": extra,
                "ks_minus_artifact_build": {"statistic": shifted.statistic, "pvalue": shifted.pvalue}}
    print(f"\nFlux vs the lab's agent, poll interval {args.interval:g} s, {args.releases} releases, {args.heals} manual scales")
    print(f"{'':34} " + " ".join(f"{lane:>22}" for lane in lanes))

    def row(label: str, key: str) -> None:
        cells = []
        for lane in lanes:
            d = report["lanes"][lane].get(key) or {"n": 0}
            cells.append(f"{d['median']:.2f} s ({d['p5']:.2f}-{d['p95']:.2f})" if d["n"] else "—")
        print(f"{label:34} " + " ".join(f"{cell:>22}" for cell in cells))
    row("commit → detected, median (p5-p95)", "detected")
    row("detected → apply started", "detected_to_apply")
    row("detected → lastAppliedRevision", "detected_to_last_applied")
    row("apply → 100 % traffic", "apply_to_traffic_100")
    row("manual scale → reverted", "self_heal")
    for lane in lanes:
        ks = report["lanes"][lane]["ks"]
        mean = report["lanes"][lane]["detected"].get("mean", float("nan"))
        print(f"{lane}: detection mean {mean:.2f} s (polling predicts {sum(predicted[lane]) / 4:.2f} s); "
              f"KS vs predicted: D={ks['statistic']:.3f}, p={ks['pvalue']:.3f}; failed releases: "
              f"{report['lanes'][lane]['failed'] or 'none'}; heals not seen: {report['lanes'][lane]['heals_missing']}")
    sc = report["lanes"]["flux"].get("source_controller")
    if sc and sc["poll_period"]["n"]:
        print(f"source-controller (its log): poll period {sc['poll_period']['mean']:.3f} s "
              f"({sc['poll_period']['min']:.3f}-{sc['poll_period']['max']:.3f}); a poll that finds a commit ends "
              f"{sc['artifact_build_s']:.3f} s later (clone, tarball, artifact); KS of the delays less that: "
              f"D={sc['ks_minus_artifact_build']['statistic']:.3f}, p={sc['ks_minus_artifact_build']['pvalue']:.3f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
