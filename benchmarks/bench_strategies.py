"""Flagger timing fidelity: real runs of the lab (local environment) with shortened intervals.

Flagger promises: from the first weight shift, a canary whose checks pass is promoted after
interval × ceil(maxWeight / stepWeight); a canary whose checks fail every time is rolled back
threshold × interval after its first failed check. Each run holds several canary lanes (one per
configuration below) on one request stream; a release at 3 s starts every analysis at once. The gate of
the rollback lanes cannot pass (p99 ≤ 0.001 ms); the others hold with room (p99 ≤ 2 s).

    python benchmarks/bench_strategies.py [--runs 3]
Writes benchmarks/results/strategies.json and prints a markdown table: per configuration the predicted
time, the measured times (median, min–max over runs) and whether every run was within one interval.

    python benchmarks/bench_strategies.py --judges [--runs 2]
Each judge (threshold, Kayenta's Mann–Whitney, mSPRT) on canary-gates' two bad releases in real runs:
v2 trained on corrupted labels (an accuracy gate per judge) and v3 whose server answers 150 ms late (a p99
gate per judge); per judge and release the decision, time to decision and exposure (user requests on the
bad version before the decision). Writes benchmarks/results/strategies-judges.json.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROMOTE = [  # (lane, interval, stepWeight, maxWeight)
    ("p-1-20-60", 1.0, 20, 60),
    ("p-2-25-100", 2.0, 25, 100),
    ("p-1-10-50", 1.0, 10, 50),
    ("p-2-30-80", 2.0, 30, 80),
]
ROLLBACK = [  # (lane, interval, threshold)
    ("r-1-3", 1.0, 3),
    ("r-2-2", 2.0, 2),
]


def scenario(seed: int) -> str:
    lanes = []
    for name, interval, step, top in PROMOTE:
        lanes.append(f"""  - name: {name}
    delivery: push
    replicas: 1
    warmup: 0.2
    strategy: {{type: canary, interval: {interval}, threshold: 2, stepWeight: {step}, maxWeight: {top},
               gates: [{{metric: p99, max: 2000, min_samples: 1, window: {max(interval, 2.0)}}}]}}""")
    for name, interval, threshold in ROLLBACK:
        lanes.append(f"""  - name: {name}
    delivery: push
    replicas: 1
    warmup: 0.2
    strategy: {{type: canary, interval: {interval}, threshold: {threshold}, stepWeight: 10, maxWeight: 50,
               gates: [{{metric: p99, max: 0.001, min_samples: 1, window: {max(interval, 2.0)}}}]}}""")
    return f"""name: flagger-timing
seed: {seed}
duration: 30
model: {{name: churn, data: {{n_samples: 1000}}}}
traffic: {{rate: 20}}
lanes:
{chr(10).join(lanes)}
timeline:
  - at: 3
    release: {{C: 0.3, note: v2}}
"""


def measure(events: list[dict]) -> dict[str, float]:
    """Per lane: first shift → promotion, or first failed check → rollback (seconds)."""
    out: dict[str, float] = {}
    for name, *_ in PROMOTE:
        steps = [e for e in events if e["kind"] == "strategy_step" and e["lane"] == name]
        first = next((e["t"] for e in steps if (e.get("weight") or 0) > 0), None)
        decided = next((e["t"] for e in events if e["kind"] == "strategy_decision" and e["lane"] == name
                        and e["decision"] == "promoted"), None)
        if first is not None and decided is not None:
            out[name] = decided - first
    for name, *_ in ROLLBACK:
        steps = [e for e in events if e["kind"] == "strategy_step" and e["lane"] == name]
        failed = next((e["t"] for e in steps if (e.get("failed_checks") or 0) >= 1), None)
        decided = next((e["t"] for e in events if e["kind"] == "strategy_decision" and e["lane"] == name
                        and e["decision"] == "rolled_back"), None)
        if failed is not None and decided is not None:
            out[name] = decided - failed
    return out


JUDGES = ("threshold", "mann-whitney", "msprt")


def judges_scenario(seed: int) -> str:
    lanes = []
    for judge in JUDGES:
        for what, gate in (("acc", "{metric: accuracy, min: 0.75, min_samples: 20%s}"),
                           ("p99", "{metric: p99, max: 100, min_samples: 5%s}")):
            window = "" if judge == "msprt" else (", window: 12" if what == "acc" else ", window: 5")
            lanes.append(f"""  - name: {what}-{judge}
    delivery: push
    replicas: 1
    warmup: 0.2
    strategy: {{type: canary, interval: 3, threshold: 2, stepWeight: 20, maxWeight: 60,
               gates: [{gate % (", judge: " + judge + window)}]}}""")
    return f"""name: judges
seed: {seed}
duration: 95
model: {{name: churn, data: {{n_features: 8, n_samples: 4000}}}}
traffic: {{rate: 25, label_delay: 4}}
lanes:
{chr(10).join(lanes)}
timeline:
  - at: 5
    release: {{corrupt_labels: 0.7, note: "v2: corrupted labels"}}
  - at: 50
    release: {{latency_ms: 150, note: "v3: slow server"}}
"""


def judges(runs: int) -> int:
    rows: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(runs):
            path = Path(tmp) / f"judges-{run}.yaml"
            path.write_text(judges_scenario(seed=200 + run))
            results = Path(tmp) / f"run-{run}"
            subprocess.run([sys.executable, "-m", "mlopslab", "run", str(path), "--results", str(results), "--quiet"],
                           check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
            for line in (results / "events.jsonl").read_text().splitlines():
                e = json.loads(line)
                if e["kind"] == "strategy_done" and e["lane"].split("-", 1)[0] in ("acc", "p99"):
                    what, judge = e["lane"].split("-", 1)
                    if (what, e["version"]) in (("acc", "2"), ("p99", "3")):
                        rows.setdefault((what, judge), []).append(e)
    print("| bad release | judge | rolled back | time to decision | exposure (user requests) |")
    print("|---|---|---|---|---|")
    out = []
    for (what, judge), done in sorted(rows.items()):
        back = sum(d["decision"] == "rolled_back" for d in done)
        times = [d["time_to_decision"] for d in done if d["time_to_decision"] is not None]
        exposure = [d["exposure"] for d in done]
        label = "v2 corrupted labels (accuracy gate)" if what == "acc" else "v3 +150 ms (p99 gate)"
        print(f"| {label} | {judge} | {back}/{len(done)} | "
              f"{statistics.median(times):.1f} s | {statistics.median(exposure):.0f} |" if times else
              f"| {label} | {judge} | {back}/{len(done)} | — | {statistics.median(exposure):.0f} |")
        out.append({"release": what, "judge": judge, "runs": done})
    target = ROOT / "benchmarks" / "results"
    target.mkdir(exist_ok=True)
    (target / "strategies-judges.json").write_text(json.dumps(out, indent=2))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--judges", action="store_true", help="each judge on canary-gates' bad releases")
    args = parser.parse_args()
    if args.judges:
        return judges(args.runs)
    measured: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            path = Path(tmp) / f"timing-{run}.yaml"
            path.write_text(scenario(seed=100 + run))
            results = Path(tmp) / f"run-{run}"
            subprocess.run([sys.executable, "-m", "mlopslab", "run", str(path), "--results", str(results), "--quiet"],
                           check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
            events = [json.loads(line) for line in (results / "events.jsonl").read_text().splitlines()]
            for lane, seconds in measure(events).items():
                measured.setdefault(lane, []).append(seconds)
    rows = []
    for name, interval, step, top in PROMOTE:
        rows.append((name, "promote", f"interval {interval:g} s × ceil({top}/{step})", interval,
                     interval * math.ceil(top / step), measured.get(name, [])))
    for name, interval, threshold in ROLLBACK:
        rows.append((name, "rollback", f"threshold {threshold} × interval {interval:g} s", interval,
                     threshold * interval, measured.get(name, [])))
    print("| lane | what | predicted | measured median (min–max) | runs within one interval |")
    print("|---|---|---|---|---|")
    out = []
    for name, what, formula, interval, predicted, values in rows:
        within = sum(1 for v in values if abs(v - predicted) <= interval)
        cell = (f"{statistics.median(values):.2f} s ({min(values):.2f}–{max(values):.2f})" if values else "—")
        print(f"| {name} | {what} | {formula} = {predicted:g} s | {cell} | {within}/{len(values)} |")
        out.append({"lane": name, "what": what, "predicted": predicted, "interval": interval, "measured": values,
                    "within_one_interval": within})
    target = ROOT / "benchmarks" / "results"
    target.mkdir(exist_ok=True)
    (target / "strategies.json").write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
