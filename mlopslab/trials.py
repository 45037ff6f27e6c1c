"""Repeated trials and sweeps: N seeds of each grid point, run one after the other, then distributions.

Each run is a plain `mlopslab run` child process with its own results directory under one parent, given
the exact scenario file it ran (`PARENT/point-K-run-I/scenario.yaml`). A crash or Ctrl-C of one run ends
that run like any headless run (nothing left behind, results so far readable); the parent then stops.

`PARENT/summary.json` (kind "trials") and `summary.md` hold, per grid point, lane and phase, the median,
the interquartile range and a 95 % bootstrap interval of the median, pooled over every release of every
run (the first deployment is setup and left out), with the prediction beside it where one exists: a
polling agent's expected detection delay (see `prediction`). A release the run ended before a phase was
reached is not a sample of that phase; it is counted as `censored`, since leaving it out silently biases
the median low (a sweep's duration should leave every release time to be detected).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from mlopslab import signals
from mlopslab.scenario import Scenario
from mlopslab.sweep import Point

PHASES = ("detected", "pipeline_done", "apply_started", "first_ready", "rollout_done", "traffic_100")
BOOTSTRAP = 2000


def run_all(points: list[Point], repeat: int, parent: Path, progress: Callable[[str], None] = print,
            quiet: bool = True) -> tuple[dict[str, Any], int]:
    """Runs every point `repeat` times (seeds: the scenario's seed + 0..repeat-1); returns the summary and an
    exit code (0 ok, 1 a run failed, 130 interrupted)."""
    parent.mkdir(parents=True, exist_ok=True)
    plan = [(k, point, i) for k, point in enumerate(points, 1) for i in range(repeat)]
    started = time.monotonic()
    runs: dict[int, list[str]] = {k: [] for k in range(1, len(points) + 1)}
    code = 0
    for n, (k, point, i) in enumerate(plan, 1):
        name = f"point-{k}-run-{i + 1}" if len(points) > 1 else f"run-{i + 1}"
        seed = point.scenario.seed + i
        elapsed = time.monotonic() - started
        eta = f", ETA {_clock(elapsed / (n - 1) * (len(plan) - n + 1))}" if n > 1 else ""
        params = " ".join(f"{p}={v}" for p, v in point.params.items())
        progress(f"{_bar(n - 1, len(plan))} run {n} of {len(plan)}: {name} seed {seed} {params}{eta}")
        code = _run_one(point, seed, parent / name, quiet)
        runs[k].append(name)
        if code != 0:
            progress(f"run {n} of {len(plan)} ended with exit code {code}; stopping the trials")
            break
    summary = summarise(points, runs, parent, repeat)
    (parent / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (parent / "summary.md").write_text(markdown(summary))
    progress(f"{_bar(sum(map(len, runs.values())), len(plan))} done in {_clock(time.monotonic() - started)}")
    return summary, code


def _run_one(point: Point, seed: int, results: Path, quiet: bool) -> int:
    results.mkdir(parents=True)
    document = {**point.document, "seed": seed}
    path = results / "scenario.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
    command = [sys.executable, "-m", "mlopslab", "run", str(path), "--results", str(results)]
    child = subprocess.Popen(command + (["--quiet"] if quiet else []), stdout=subprocess.DEVNULL if quiet else None)
    try:
        return child.wait()
    except KeyboardInterrupt:  # the child got the same Ctrl-C (same process group); let it clean up
        with signals.held():   # a second Ctrl-C must not leave the child's clean-up unwatched
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
            child.wait()
        return 130


def summarise(points: list[Point], runs: dict[int, list[str]], parent: Path, repeat: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    out_points = []
    for k, point in enumerate(points, 1):
        values: dict[str, dict[str, list[float]]] = {}
        censored: dict[tuple[str, str], int] = {}  # (lane, phase): releases the run ended before
        statuses = []
        for name in runs.get(k, []):
            summary_path = parent / name / "summary.json"
            if not summary_path.exists():
                statuses.append("missing")
                continue
            run = json.loads(summary_path.read_text())
            statuses.append(run.get("status"))
            for lane, data in run["lanes"].items():
                lane_values = values.setdefault(lane, {phase: [] for phase in PHASES + ("self_heal",)})
                for release in data["releases"]:
                    if release.get("setup"):
                        continue
                    for phase in PHASES:
                        if release["lead"].get(phase) is not None:
                            lane_values[phase].append(float(release["lead"][phase]))
                        elif not release.get("failed"):
                            censored[(lane, phase)] = censored.get((lane, phase), 0) + 1
                for change in data.get("live_changes", []):   # self-heal only: not a later commit's apply
                    if change.get("reverted_after") is not None and change.get("reverted_by") in (
                            None, "agent self-heal", "Flux drift correction"):
                        lane_values["self_heal"].append(float(change["reverted_after"]))
            for lane, loop in (run.get("ml_loop") or {}).items():
                for key, value in ml_costs(loop).items():
                    values.setdefault(lane, {}).setdefault(key, []).append(value)
        lanes = {}
        for lane, phases in values.items():
            spec = next((ln for ln in point.scenario.lanes if ln.name == lane), None)
            lanes[lane] = {phase: {**stats(v, rng), "prediction": prediction(spec, phase),
                                   "censored": censored.get((lane, phase), 0)}
                           for phase, v in phases.items() if v}
        out_points.append({"params": point.params, "runs": runs.get(k, []), "statuses": statuses, "lanes": lanes})
    sc = points[0].scenario
    return {"kind": "trials", "scenario": _scenario_info(sc), "repeat": repeat, "params": list(points[0].params),
            "points": out_points}


ML_COSTS = ("drift_to_retrained", "wait_labels", "training_seconds", "accuracy_seconds_lost")


def ml_costs(loop: dict[str, Any]) -> dict[str, float]:
    """What a drift cost one lane in one run (MLOps levels): from the change to a retrained model serving
    all traffic, the wait for labelled rows, the seconds spent training (every retrain, failed ones too)
    and the accuracy-seconds lost against the lane's accuracy before the drift."""
    retrains = loop.get("retrains") or []
    delivered = [r for r in retrains if r.get("outcome") == "delivered" and r.get("change_to_delivered") is not None]
    out: dict[str, float] = {}
    if delivered:
        first = min(delivered, key=lambda r: r.get("started") or 0.0)
        out["drift_to_retrained"] = float(first["change_to_delivered"])
        if (first.get("timings") or {}).get("wait_labels") is not None:
            out["wait_labels"] = float(first["timings"]["wait_labels"])
    if retrains:
        out["training_seconds"] = round(sum(float((r.get("timings") or {}).get("train") or 0.0) for r in retrains), 4)
    if loop.get("accuracy_seconds_lost") is not None:
        out["accuracy_seconds_lost"] = float(loop["accuracy_seconds_lost"])
    return out


def stats(values: list[float], rng: np.random.Generator) -> dict[str, Any]:
    """Median, interquartile range and a 95 % percentile-bootstrap interval of the median."""
    a = np.asarray(values, dtype=float)
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    if len(a) > 1:
        medians = np.median(rng.choice(a, size=(BOOTSTRAP, len(a)), replace=True), axis=1)
        lo, hi = np.percentile(medians, [2.5, 97.5])
    else:
        lo = hi = med
    return {"n": len(a), "median": round(float(med), 4), "mean": round(float(a.mean()), 4), "iqr": [round(float(q1), 4), round(float(q3), 4)],
            "ci95": [round(float(lo), 4), round(float(hi), 4)], "values": [round(float(v), 4) for v in a]}


def prediction(lane: Any, phase: str) -> float | None:
    """What theory says a phase should take, where it says anything: a polling agent's detection delay.

    The agent waits W = interval + U(0, jitter) between polls; a commit at a random moment lands in a gap
    picked in proportion to its length, so the mean wait to the next poll is E[W²] / (2 E[W]) (renewal
    theory), i.e. m/2 + jitter²/(24 m) with m = interval + jitter/2. Without jitter that is interval / 2;
    with Argo CD's 120 s + up to 60 s it is 76 s, not the (interval + jitter) / 2 = 90 s one may guess.
    """
    if lane is None or phase != "detected" or lane.delivery != "pull" or lane.webhook:
        return None
    mean = lane.poll_interval + lane.poll_jitter / 2
    return round(mean / 2 + lane.poll_jitter ** 2 / (24 * mean), 4)


def _scenario_info(sc: Scenario) -> dict[str, Any]:
    return {"name": sc.name, "description": sc.description, "duration": sc.duration, "seed": sc.seed,
            "environment": sc.environment.kind, "rate": sc.rate, "path": str(sc.path) if sc.path else None}


def markdown(summary: dict[str, Any]) -> str:
    sc = summary["scenario"]
    lines = [f"# {sc['name']}: {summary['repeat']} run(s) per point", "", sc.get("description") or "", ""]
    for point in summary["points"]:
        params = ", ".join(f"`{p}` = {v}" for p, v in point["params"].items()) or "the scenario as written"
        lines += [f"## {params}", "", f"runs: {', '.join(point['runs'])} (status: {', '.join(map(str, point['statuses']))})",
                  "", "| lane | phase | n | median (s) | IQR | 95 % interval | mean | predicted mean |",
                  "|---|---|---|---|---|---|---|---|"]
        for lane, phases in point["lanes"].items():
            for phase, s in phases.items():
                predicted = "" if s["prediction"] is None else f"{s['prediction']:g}"
                n = f"{s['n']} (+{s['censored']} not reached)" if s.get("censored") else str(s["n"])
                lines.append(f"| {lane} | {phase} | {n} | {s['median']:.3f} | {s['iqr'][0]:.3f}–{s['iqr'][1]:.3f}"
                             f" | {s['ci95'][0]:.3f}–{s['ci95'][1]:.3f} | {s['mean']:.3f} | {predicted} |")
        lines.append("")
    return "\n".join(lines)


def load(parent: Path) -> dict[str, Any]:
    return json.loads((parent / "summary.json").read_text())


def is_parent(path: Path) -> bool:
    summary = path / "summary.json"
    if not (path.is_dir() and summary.exists()):
        return False
    try:
        return json.loads(summary.read_text()).get("kind") == "trials"
    except (ValueError, OSError):
        return False


def _bar(done: int, total: int, width: int = 20) -> str:
    filled = round(width * done / total) if total else width
    return "[" + "#" * filled + "." * (width - filled) + "]"


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"

