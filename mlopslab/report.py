"""The side-by-side summary of a run: per lane, lead time per phase, rollouts, errors, latency, self-heal.

Built from a RunState (live or replayed), written as summary.json and summary.md, printed as a table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from mlopslab.monitor.timeline import PHASES, RunState

PHASE_LABELS = {"detected": "detect", "pipeline_done": "pipeline", "apply_started": "apply",
                "first_ready": "1st ready", "rollout_done": "rolled out", "traffic_100": "100% traffic"}


def summarise(state: RunState) -> dict[str, Any]:
    lanes = {}
    for name, lane in state.lanes.items():
        releases = []
        for release in lane.releases.values():
            releases.append({
                "version": release.version, "sha": release.sha[:10], "setup": release.setup,
                "lead": {phase: release.lead(phase) for phase in PHASES[1:]},
                "ready": [round(t - release.times["commit"], 3) for t in release.ready],
                "rollout_duration": _diff(release.times, "apply_started", "traffic_100"),
                "errors_during_rollout": release.errors_during,
                "requests_during_rollout": release.requests_during,
                "p99_during_rollout_ms": max(release.latencies_during) if release.latencies_during else None,
                "failed": release.failed,
            })
        changes = [{"at": round(c.at, 3), "change": c.change,
                    "reverted_after": None if c.reverted is None else round(c.reverted - c.at, 3)}
                   for c in lane.changes]
        p = [row[3] for row in lane.latency]
        lanes[name] = {
            "delivery": lane.delivery, "settings": lane.settings, "credential": lane.credential,
            "releases": releases, "live_changes": changes, "requests": lane.requests, "errors": lane.errors,
            "p99_ms_median_of_windows": round(float(np.median(p)), 3) if p else None,
            "accuracy_last": lane.accuracy[-1][1] if lane.accuracy else None,
        }
    return {"scenario": state.scenario, "status": (state.finished or {}).get("status", "running"),
            "duration": (state.finished or {}).get("duration"), "lanes": lanes,
            "versions": {v: {"accuracy": e.get("accuracy"), "note": e.get("note")} for v, e in state.versions.items()},
            "drift_alarms": state.alarms}


def _diff(times: dict[str, float], a: str, b: str) -> float | None:
    return round(times[b] - times[a], 3) if a in times and b in times else None


def _fmt(value: Any, unit: str = "s") -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.2f}{unit}" if unit else f"{value:.2f}"
    return f"{value}{unit}"


def table(summary: dict[str, Any]) -> str:
    """A markdown table: one column per lane, one row block per release."""
    lanes = summary["lanes"]
    names = list(lanes)
    rows: list[list[str]] = []
    versions = sorted({r["version"] for lane in lanes.values() for r in lane["releases"] if not r["setup"]},
                      key=_version_key)
    for version in versions:
        per_lane = {n: next((r for r in lanes[n]["releases"] if r["version"] == version and not r["setup"]), None)
                    for n in names}
        rows.append([f"**v{version}**"] + ["" for _ in names])
        for phase in PHASES[1:]:
            rows.append([f"  commit → {PHASE_LABELS[phase]}"] +
                        [_fmt(r["lead"][phase]) if r else "—" for r in per_lane.values()])
        rows.append(["  rollout (apply → 100%)"] + [_fmt(r["rollout_duration"]) if r else "—" for r in per_lane.values()])
        rows.append(["  errors during rollout"] + [
            f"{r['errors_during_rollout']}/{r['requests_during_rollout']}" if r else "—" for r in per_lane.values()])
        rows.append(["  p99 during rollout"] + [_fmt(r["p99_during_rollout_ms"], " ms") if r else "—"
                                               for r in per_lane.values()])
    rows.append(["**live changes**"] + ["" for _ in names])
    rows.append(["  self-heal (changed → reverted)"] + [
        ", ".join(_fmt(c["reverted_after"]) if c["reverted_after"] is not None else "never"
                  for c in lanes[n]["live_changes"]) or "—" for n in names])
    rows.append(["**whole run**"] + ["" for _ in names])
    rows.append(["  requests / errors"] + [f"{lanes[n]['requests']} / {lanes[n]['errors']}" for n in names])
    rows.append(["  p99 (median of 1 s windows)"] + [_fmt(lanes[n]["p99_ms_median_of_windows"], " ms") for n in names])
    header = ["", *[f"{n} ({lanes[n]['delivery']})" for n in names]]
    widths = [max(len(row[i]) for row in rows + [header]) for i in range(len(header))]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    out = [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(row) for row in rows]
    return "\n".join(out)


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (1 << 30, version)


def markdown(summary: dict[str, Any]) -> str:
    sc = summary["scenario"]
    parts = [f"# {sc.get('name', 'run')} — {summary['status']}", "", sc.get("description", ""), "",
             f"Environment: {sc.get('environment')}, traffic {sc.get('rate')} req/s, "
             f"duration {summary.get('duration')} s.", "", table(summary), "", "## Credentials per lane", ""]
    for name, lane in summary["lanes"].items():
        parts.append(f"- **{name}** ({lane['delivery']}): {lane['credential']}")
    parts += ["", "Times are seconds after the commit, on the run's one clock; `—` means the phase did not happen."]
    return "\n".join(parts) + "\n"


def write(directory: Path, state: RunState) -> dict[str, Any]:
    summary = summarise(state)
    (directory / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    (directory / "summary.md").write_text(markdown(summary))
    return summary
