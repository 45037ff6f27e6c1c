"""Serving throughput and latency: our model server vs `mlflow models serve`, same version, one run.

`wrk` (Debian package `wrk`; installed with apt-get when missing and we are root) drives each server with
keep-alive connections at 1, 8 and 32 connections, with a 1-row and a 100-row `dataframe_split` body.
The two servers run side by side the whole time and are measured interleaved (ours, MLflow, ours, ...),
so a busy machine hurts both alike. All traffic goes to 127.0.0.1.

    python benchmarks/bench_serving.py [--duration 5] [--rounds 1] [--connections 1 8 32]
Writes benchmarks/results/serving.json and prints a markdown table with ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WRK_SCRIPT = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("{body}", "rb")
wrk.body = f:read("*a")
f:close()
"""


def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        path = shutil.which("wrk")
    if path is None:
        sys.exit("wrk is needed: apt-get install wrk")
    return path


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/ping", timeout=0.5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} not ready within {timeout} s")


def register_model(root: Path) -> tuple[object, object]:
    """One version in a fresh sqlite registry, with the lab's own training code."""
    from mlopslab.ml.data import DataSpec, DataStream
    from mlopslab.ml.registry import Registry, TrainParams

    registry = Registry(root)
    stream = DataStream(DataSpec(), 1)
    X, y = stream.sample(4000)
    Xv, yv = stream.sample(1000)
    return registry, registry.train_and_register("bench", X, y, Xv, yv, stream.feature_names, TrainParams())


def start_servers(registry, mv, logs: Path) -> dict[str, tuple[str, subprocess.Popen]]:
    env = {**os.environ, "MLFLOW_TRACKING_URI": registry.tracking_uri, "MLFLOW_REGISTRY_URI": registry.tracking_uri}
    commands = {
        "mlopslab": [sys.executable, "-m", "mlopslab.serving.server", "--model-dir",
                     str(registry.serving_dir(mv.name, mv.version)), "--parent-pid", str(os.getpid())],
        "mlflow": [sys.executable, "-m", "mlflow", "models", "serve", "-m", mv.uri, "--env-manager", "local",
                   "-h", "127.0.0.1"],
    }
    servers = {}
    for name, command in commands.items():
        port = free_port()
        command += ["--port" if name == "mlopslab" else "-p", str(port)]
        proc = subprocess.Popen(command, env=env, stdout=open(logs / f"{name}.log", "wb"), stderr=subprocess.STDOUT,
                                start_new_session=True)
        servers[name] = (f"http://127.0.0.1:{port}", proc)
    for url, proc in servers.values():
        wait_ready(url, proc)
    return servers


def bodies(out: Path) -> dict[str, Path]:
    from mlopslab.ml.data import DataSpec, DataStream

    stream = DataStream(DataSpec(), 2)
    paths = {}
    for rows in (1, 100):
        X, _ = stream.sample(rows)
        path = out / f"body-{rows}.json"
        path.write_text(json.dumps({"dataframe_split": {"columns": list(stream.feature_names),
                                                        "data": [[round(float(v), 6) for v in r] for r in X]}}))
        paths[f"{rows} row" + ("s" if rows > 1 else "")] = path
    return paths


def check_answers(url: str, body: Path) -> None:
    request = urllib.request.Request(url + "/invocations", data=body.read_bytes(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200 and "predictions" in json.loads(response.read())


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * _UNITS[unit]


def run_wrk(wrk: str, url: str, script: Path, connections: int, duration: int) -> dict:
    out = subprocess.run([wrk, "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "10s",
                          "-s", str(script), url + "/invocations"], capture_output=True, text=True, check=True).stdout
    pct = dict(re.findall(r"^\s*(\d+)%\s+([\d.]+(?:us|ms|s|m))\s*$", out, re.M))
    if "99" not in pct:
        raise RuntimeError(f"no latency distribution in wrk's output:\n{out}")
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50_ms": _ms(pct["50"]), "p90_ms": _ms(pct["90"]), "p99_ms": _ms(pct["99"]), "errors": errors}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds; the median is reported")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 8, 32])
    args = parser.parse_args()
    wrk = ensure_wrk()
    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    registry, mv = register_model(work / "registry")
    servers = start_servers(registry, mv, work)
    results: dict[str, dict] = {}
    try:
        scripts = {}
        for label, body in bodies(work).items():
            scripts[label] = work / f"{body.stem}.lua"
            scripts[label].write_text(WRK_SCRIPT.format(body=body))
            for url, _ in servers.values():
                check_answers(url, body)
        for name, (url, _) in servers.items():  # warm both up (MLflow's first requests are slow)
            run_wrk(wrk, url, scripts["1 row"], 8, 2)
        for rnd in range(args.rounds):
            for connections in args.connections:
                for label, script in scripts.items():
                    order = list(servers) if rnd % 2 == 0 else list(servers)[::-1]
                    for name in order:
                        run = run_wrk(wrk, servers[name][0], script, connections, args.duration)
                        results.setdefault(f"{connections}|{label}", {}).setdefault(name, []).append(run)
                        print(f"c={connections:<3} {label:<8} {name:<9} {run['rps']:9.1f} req/s  "
                              f"p50 {run['p50_ms']:7.2f} ms  p99 {run['p99_ms']:7.2f} ms  errors {run['errors']}",
                              flush=True)
    finally:
        for _, proc in servers.values():
            os.killpg(proc.pid, 15)
            proc.wait(timeout=30)
    table = summarise(results)
    print("\n" + table)
    (ROOT / "benchmarks" / "results").mkdir(exist_ok=True)
    (ROOT / "benchmarks" / "results" / "serving.json").write_text(json.dumps(
        {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}, "duration_s": args.duration,
         "rounds": args.rounds, "runs": results, "table": table}, indent=2))
    return 0


def summarise(results: dict[str, dict]) -> str:
    def median(runs: list[dict], key: str) -> float:
        values = sorted(r[key] for r in runs)
        return values[len(values) // 2]

    lines = ["| connections | body | mlopslab req/s | MLflow req/s | **throughput ×** | mlopslab p99 | MLflow p99 "
             "| **p99 ours/MLflow** |", "|---|---|---|---|---|---|---|---|"]
    for key, by_server in results.items():
        connections, label = key.split("|")
        ours, theirs = by_server["mlopslab"], by_server["mlflow"]
        rps = (median(ours, "rps"), median(theirs, "rps"))
        p99 = (median(ours, "p99_ms"), median(theirs, "p99_ms"))
        lines.append(f"| {connections} | {label} | {rps[0]:.0f} | {rps[1]:.0f} | **{rps[0] / rps[1]:.1f}×** "
                     f"| {p99[0]:.2f} ms | {p99[1]:.2f} ms | **{p99[0] / p99[1]:.2f}** |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
