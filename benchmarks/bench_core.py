"""Lab-core benchmarks, side by side in one run.

1. Model server cold start (process start → /ping answers 200) vs `mlflow models serve` on the same
   registered model version, median of N starts each, reported as a ratio.
2. Commit-to-100 %-traffic lead time per lane (and each phase) for the default scenario, headless.

    python benchmarks/bench_core.py [--starts 5] [--skip-scenario]
Writes benchmarks/results/core.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _time_to_ready(command: list[str], port: int, env: dict[str, str], timeout: float = 120.0) -> float:
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    try:
        while time.perf_counter() - started < timeout:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=0.5) as response:
                    if response.status == 200:
                        return time.perf_counter() - started
            except OSError:
                time.sleep(0.01)
        raise RuntimeError(f"not ready within {timeout} s: {command}")
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)


def cold_start(starts: int) -> dict:
    from mlopslab.ml.data import DataSpec, DataStream
    from mlopslab.ml.registry import Registry, TrainParams

    root = Path(tempfile.mkdtemp(prefix="bench-core-"))
    registry = Registry(root)
    stream = DataStream(DataSpec(), 1)
    X, y = stream.sample(4000)
    Xv, yv = stream.sample(1000)
    mv = registry.train_and_register("bench", X, y, Xv, yv, stream.feature_names, TrainParams())
    env = {**os.environ, "MLFLOW_TRACKING_URI": registry.tracking_uri, "MLFLOW_REGISTRY_URI": registry.tracking_uri}
    ours, theirs = [], []
    for _ in range(starts):  # interleaved so drift in machine load hits both alike
        port = _port()
        ours.append(_time_to_ready([sys.executable, "-m", "mlopslab.serving.server", "--model-dir",
                                    str(registry.serving_dir(mv.name, mv.version)), "--port", str(port)], port, env))
        port = _port()
        theirs.append(_time_to_ready([sys.executable, "-m", "mlflow", "models", "serve", "-m", mv.uri,
                                      "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)], port, env))
    return {"starts": starts, "ours_s": ours, "mlflow_s": theirs, "ours_median_s": statistics.median(ours),
            "mlflow_median_s": statistics.median(theirs),
            "speedup": statistics.median(theirs) / statistics.median(ours)}


def lead_times(scenario_name: str) -> dict:
    from mlopslab import report, scenario
    from mlopslab.lab import Lab

    sc = scenario.load(scenario.find(scenario_name, ROOT / "scenarios"))
    results = Path(tempfile.mkdtemp(prefix="bench-lead-"))
    lab = Lab(sc, results)
    lab.run()
    summary = report.summarise(lab.state)
    return {"scenario": sc.name, "results": str(results), "summary": summary.to_json(), "table": report.table(summary)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--scenario", default="push-vs-pull")
    parser.add_argument("--skip-scenario", action="store_true")
    args = parser.parse_args()
    out: dict = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}}
    out["cold_start"] = cs = cold_start(args.starts)
    print("## Model server cold start (process start → /ping 200), median of", cs["starts"])
    print(f"| server | median | all |\n|---|---|---|\n"
          f"| mlopslab model server | {cs['ours_median_s']:.3f} s | {', '.join(f'{v:.2f}' for v in cs['ours_s'])} |\n"
          f"| mlflow models serve | {cs['mlflow_median_s']:.3f} s | {', '.join(f'{v:.2f}' for v in cs['mlflow_s'])} |\n"
          f"| **ratio** | **{cs['speedup']:.1f}× faster** | |")
    if not args.skip_scenario:
        out["lead_times"] = lt = lead_times(args.scenario)
        print(f"\n## Commit → 100 % traffic, scenario {lt['scenario']}\n")
        print(lt["table"])
        out["lead_times"].pop("table")
    (ROOT / "benchmarks" / "results").mkdir(exist_ok=True)
    (ROOT / "benchmarks" / "results" / "core.json").write_text(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
