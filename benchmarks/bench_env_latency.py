"""Request latency, Docker vs local, on the same scenario: p50 / p90 / p99 of every request per lane.

Runs the scenario headless through the Lab, alternating Docker and local (`--rounds` each), and reads each
run's requests.jsonl (the load generator's records: latency from the intended send time, and its
schedule lag). Docker's requests pass through its port proxy on 127.0.0.1; the question is whether the
keep-alive stall is gone there too (target: Docker p99 within 2x local's).

    eval "$(bash .ci/docker.sh)"   # an engine and the offline base images
    python benchmarks/bench_env_latency.py [--scenario scenarios/push-vs-pull.yaml] [--duration 45] [--rounds 1]
Writes benchmarks/results/env_latency.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench_docker import ROOT, lab_lead_times


def request_percentiles(results: Path) -> dict[str, dict]:
    by_lane: dict[str, list[tuple[float, float]]] = {}
    for line in (results / "requests.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["st"] == 200:
            by_lane.setdefault(record["lane"], []).append((record["lat"], record.get("lag", 0.0)))
    out = {}
    for lane, values in by_lane.items():
        lat, lag = np.asarray(values).T
        out[lane] = {"requests": len(lat), **{f"p{q}_ms": round(float(np.percentile(lat, q)), 3) for q in (50, 90, 99)},
                     "lag_p99_ms": round(float(np.percentile(lag, 99)), 3)}
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenario", type=Path, default=ROOT / "scenarios" / "push-vs-pull.yaml")
    parser.add_argument("--duration", type=float, default=45.0)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    base = os.environ.get("MLOPSLAB_BASE_IMAGE", "mlopslab/base:bookworm")
    root = Path(tempfile.mkdtemp(prefix="bench-env-latency-"))
    runs: dict[str, list[dict]] = {"docker": [], "local": []}
    for rnd in range(args.rounds):
        for kind in (("docker", "local") if rnd % 2 == 0 else ("local", "docker")):
            run = lab_lead_times(args.scenario, kind, base, root, args.duration)
            run["latency"] = request_percentiles(Path(run["results"]))
            runs[kind].append(run)
            print(kind, run["status"], json.dumps(run["latency"]), flush=True)
    lines = ["| round | lane | local p50 / p90 / p99 | Docker p50 / p90 / p99 | p99 Docker / local |",
             "|---|---|---|---|---|"]
    for rnd, (docker, local) in enumerate(zip(runs["docker"], runs["local"]), start=1):
        for lane, d in docker["latency"].items():
            lo = local["latency"][lane]
            lines.append(f"| {rnd} | {lane} | {lo['p50_ms']:.2f} / {lo['p90_ms']:.2f} / {lo['p99_ms']:.2f} ms "
                         f"| {d['p50_ms']:.2f} / {d['p90_ms']:.2f} / {d['p99_ms']:.2f} ms "
                         f"| **{d['p99_ms'] / lo['p99_ms']:.2f}** |")
    table = "\n".join(lines)
    print("\n" + table)
    (ROOT / "benchmarks" / "results").mkdir(exist_ok=True)
    (ROOT / "benchmarks" / "results" / "env_latency.json").write_text(json.dumps(
        {"scenario": str(args.scenario), "duration_s": args.duration, "runs": runs, "table": table,
         "loadavg_after": os.getloadavg()}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
