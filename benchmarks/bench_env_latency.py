"""Request latency, Docker vs local, on the same scenario: p50 / p90 / p99 of every request per lane.

Runs the scenario headless through the Lab, alternating Docker and local (`--rounds` each), and reads each
run's requests.jsonl (the load generator's records: latency from the intended send time, and its
schedule lag). Docker's requests pass through its port proxy on 127.0.0.1; the question is whether the
keep-alive stall is gone there too (target: Docker p99 within 2x local's).

    eval "$(bash .ci/docker.sh)"   # an engine and the offline base images
    python benchmarks/bench_env_latency.py [--scenario scenarios/push-vs-pull.yaml] [--duration 45] [--rounds 1]
    python benchmarks/bench_env_latency.py --path [--rate 25] [--duration 20] [--rounds 4]   # the request path alone
Writes benchmarks/results/env_latency.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
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


def request_path(base: str, duration: float, rate: float, rounds: int) -> dict:
    """The request path alone: one local replica and one container (through Docker's port proxy) of the same
    version, driven by one load generator as two lanes, so both get every arrival at the same instant and
    share whatever else the machine is doing. Lane order alternates between rounds."""
    import docker

    from bench_serving import free_port, register_model, wait_ready
    from mlopslab.envs.images import build_model_image

    work = Path(tempfile.mkdtemp(prefix="bench-path-"))
    registry, mv = register_model(work / "registry")
    model_dir = registry.serving_dir(mv.name, mv.version)
    client = docker.from_env()
    image = build_model_image(client, base, model_dir, mv.name, mv.version)
    port_local, port_docker = free_port(), free_port()
    local = subprocess.Popen([sys.executable, "-m", "mlopslab.serving.server", "--model-dir", str(model_dir),
                              "--port", str(port_local)])
    container = client.containers.run(image.id, ["--model-dir", "/model", "--host", "0.0.0.0", "--port", "8080"],
                                      ports={"8080/tcp": ("127.0.0.1", port_docker)}, detach=True, remove=True)
    urls = {"local": f"http://127.0.0.1:{port_local}", "docker": f"http://127.0.0.1:{port_docker}"}
    out: dict[str, list[dict]] = {"local": [], "docker": []}
    try:
        wait_ready(urls["local"], local)
        wait_ready(urls["docker"], local, timeout=60)
        for rnd in range(rounds):
            lanes = ["local", "docker"] if rnd % 2 == 0 else ["docker", "local"]
            config = {"rate": rate, "t0": time.monotonic() + 2.0, "duration": duration, "seed": rnd, "lanes": lanes}
            gen = subprocess.Popen([sys.executable, "-m", "mlopslab.traffic.loadgen", json.dumps(config)],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for lane in lanes:
                gen.stdin.write(json.dumps({"op": "endpoints", "lane": lane, "endpoints": [[urls[lane], "1"]]}) + "\n")
            gen.stdin.flush()
            records = [json.loads(line) for line in gen.stdout]
            gen.stdin.close()
            gen.wait(timeout=30)
            for lane in lanes:
                lat = np.asarray([r["lat"] for r in records if r.get("lane") == lane and r["t"] >= 1.0 and r["st"] == 200])
                out[lane].append({"requests": len(lat), **{f"p{q}_ms": round(float(np.percentile(lat, q)), 3)
                                                           for q in (50, 90, 99)}})
            print("path round", rnd + 1, {lane: out[lane][-1] for lane in lanes}, flush=True)
    finally:
        container.stop(timeout=2)
        local.terminate()
        local.wait(timeout=10)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenario", type=Path, default=ROOT / "scenarios" / "push-vs-pull.yaml")
    parser.add_argument("--duration", type=float, default=45.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--path", action="store_true", help="only the request path: one replica each, no scenario")
    parser.add_argument("--rate", type=float, default=25.0, help="with --path: requests/s")
    args = parser.parse_args()
    base = os.environ.get("MLOPSLAB_BASE_IMAGE", "mlopslab/base:bookworm")
    if args.path:
        path = request_path(base, args.duration, args.rate, args.rounds)
        lines = ["| round | local p50 / p90 / p99 | Docker p50 / p90 / p99 | p99 Docker / local |", "|---|---|---|---|"]
        for rnd, (lo, d) in enumerate(zip(path["local"], path["docker"]), start=1):
            lines.append(f"| {rnd} | {lo['p50_ms']:.2f} / {lo['p90_ms']:.2f} / {lo['p99_ms']:.2f} ms "
                         f"| {d['p50_ms']:.2f} / {d['p90_ms']:.2f} / {d['p99_ms']:.2f} ms | **{d['p99_ms'] / lo['p99_ms']:.2f}** |")
        print("\n".join(lines))
        (ROOT / "benchmarks" / "results").mkdir(exist_ok=True)
        (ROOT / "benchmarks" / "results" / "env_latency_path.json").write_text(json.dumps(
            {"rate": args.rate, "duration_s": args.duration, "rounds": path, "loadavg_after": os.getloadavg()}, indent=2))
        return 0
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
