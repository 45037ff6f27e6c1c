"""The side-by-side summary of a run: per lane, lead time per phase, rollouts, errors, latency, self-heal,
and — when models were retrained — the ML loop (detect, wait for labels, train, validate, deliver).

Built from a RunState (live or replayed) as one typed `Summary` (mlopslab/summary.py), written as summary.json
and summary.md, printed as a table; `rows(summary)` is the one place the table's rows are built (the TUI's
summary widget and the HTML report show the same).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from mlopslab.ml.pipeline import LEVELS
from mlopslab.monitor.timeline import GENERATOR_BOUND_MS, PHASES, RunState
from mlopslab.summary import (
    ChangeSummary,
    LaneSummary,
    LiveChangeSummary,
    MlLoopSummary,
    ReleaseSummary,
    RetrainSummary,
    Summary,
)

FINAL_ACCURACY_WINDOW = 10.0  # seconds of labelled windows averaged into the final accuracy
RETRAIN_STEPS = (("wait_labels", "wait for labels"), ("train", "train"), ("validate", "validate"),
                 ("deliver", "deliver (commit → 100%)"))

PHASE_LABELS = {"detected": "detect", "pipeline_done": "pipeline", "apply_started": "apply",
                "first_ready": "1st ready", "rollout_done": "rolled out", "traffic_100": "100% traffic"}


def summarise(state: RunState) -> Summary:
    """The run's typed summary (`Summary.to_json()` is summary.json)."""
    lanes = {}
    for name, lane in state.lanes.items():
        releases = []
        for release in lane.releases.values():
            releases.append(ReleaseSummary(
                version=release.version, sha=release.sha[:10], setup=release.setup,
                lead={phase: release.lead(phase) for phase in PHASES[1:]},
                ready=[round(t - release.times["commit"], 3) for t in release.ready],
                rollout_duration=_diff(release.times, "apply_started", "traffic_100"),
                errors_during_rollout=release.errors_during, requests_during_rollout=release.requests_during,
                worst_1s_p99_during_rollout_ms=max(release.latencies_during) if release.latencies_during else None,
                failed=release.failed))
        changes = [LiveChangeSummary(round(c.at, 3), c.change, c.reverted_by,
                                     None if c.reverted is None else round(c.reverted - c.at, 3))
                   for c in lane.changes]
        p = [row[3] for row in lane.latency]
        lanes[name] = LaneSummary(
            delivery=lane.delivery, settings=lane.settings, credential=lane.credential, releases=releases,
            live_changes=changes, requests=lane.requests, errors=lane.errors,
            p99_ms_median_of_windows=round(float(np.median(p)), 3) if p else None,
            generator_bound_windows=lane.generator_bound, lag_windows=lane.lag_windows,
            accuracy_last=lane.accuracy[-1][1] if lane.accuracy else None,
            strategy=(lane.settings.get("strategy") or {}).get("type"),   # as declared (None: the default rolling)
            strategy_changes=[_change(done) for done in lane.rollout.done])
    finished = state.finished or {}
    versions = {v: {"accuracy": e.get("accuracy"), "note": e.get("note")} for v, e in state.versions.items()}
    return Summary(scenario=state.scenario, status=finished.get("status", "running"),
                   duration=finished.get("duration"), lanes=lanes, versions=versions,
                   drift_alarms=state.alarms, ml_loop=ml_loop(state))


def ml_loop(state: RunState) -> dict[str, MlLoopSummary]:
    """Per lane: its MLOps level, each retrain (reason, outcome, step times), detection delays, human
    actions and the accuracy at the end (the mean of the last labelled windows)."""
    changes = sorted(d["rel"] for d in state.drifts)
    out: dict[str, MlLoopSummary] = {}
    for name, lane in state.lanes.items():
        retrains = []
        for rid, record in state.retrains.items():
            if record.get("lane") != name:
                continue
            phases = record.get("phases", {})
            started = phases.get("started")
            change = max((c for c in changes if started is not None and c <= started), default=None)
            delivered = None
            if "delivered" in phases:  # when the version took all traffic, else when the pipeline heard of it
                delivered = next((t for t, phase, version in lane.marks if phase == "100%" and
                                  version == str(record.get("version")) and t >= (started or 0)), phases["delivered"])
            person = waited_for_person(record, state.alarms, state.drifts)
            retrains.append(RetrainSummary(
                id=rid, reason=record.get("reason"), version=record.get("version"), waited_for_person=person,
                outcome=record.get("outcome") or ("failed" if "failed" in phases else "running"),
                error=record.get("error"), promoted=record.get("promoted"),
                challenger_acc=record.get("challenger_acc"), champion_acc=record.get("champion_acc"),
                pipeline_version=record.get("pipeline_version"), human_actions=record.get("human_actions"),
                started=started, timings=dict(record.get("timings") or {}),
                change_to_delivered=None if change is None or delivered is None else round(delivered - change, 3)))
        detect = [a["delay_seconds"] for a in state.alarms
                  if a.get("lane") == name and a.get("first") and a.get("delay_seconds") is not None]
        end = lane.accuracy[-1][0] if lane.accuracy else None
        recent = [v for t, v in lane.accuracy if end is not None and t > end - FINAL_ACCURACY_WINDOW]
        since = [(t, v) for t, v in lane.accuracy if changes and t >= changes[0]]
        before = [v for t, v in lane.accuracy if changes and t < changes[0]]
        baseline = float(np.mean(before)) if before else None
        out[name] = MlLoopSummary(
            accuracy_since_drift=round(float(np.mean([v for _, v in since])), 4) if since else None,
            # each labelled window is one second: how much accuracy the lane lost, summed over time, against
            # its own accuracy before the drift
            accuracy_seconds_lost=(round(sum(max(0.0, baseline - v) for _, v in since), 2)
                                   if since and baseline is not None else None),
            level=lane.settings.get("level"), pipeline_version=lane.pipeline_version,
            retrains=retrains, detect_delays=detect,
            alarms=sum(1 for a in state.alarms if a.get("lane") == name),
            human_actions=sum(int(r.human_actions or 0) for r in retrains),
            accuracy_final=round(float(np.mean(recent)), 4) if recent else None)
    return out


def waited_for_person(record: dict[str, Any], alarms: Any, drifts: Any) -> float | None:
    """A retrain a person started waited first for that person: from the lane's first alarm after the last
    injected change (or the change itself) to the start. None for a retrain the pipeline started itself."""
    started = record.get("phases", {}).get("started")
    if record.get("reason") != "human" or started is None:
        return None
    change = max((d["rel"] for d in drifts if d["rel"] <= started), default=None)
    if change is None:
        return None
    alarmed = min((a["rel"] for a in alarms if a.get("lane") == record.get("lane") and change <= a["rel"] <= started),
                  default=change)
    return round(started - alarmed, 3)


def _diff(times: dict[str, float], a: str, b: str) -> float | None:
    return round(times[b] - times[a], 3) if a in times and b in times else None


def _fmt(value: Any, unit: str = "s") -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.2f}{unit}" if unit else f"{value:.2f}"
    return f"{value}{unit}"


def _change(done: dict[str, Any]) -> ChangeSummary:
    return ChangeSummary(str(done.get("version")), str(done.get("strategy")), str(done.get("decision")),
                         done.get("by"), done.get("time_to_decision"), done.get("exposure"), done.get("requests"),
                         done.get("errors"), done.get("peak_replicas"), done.get("replica_seconds"),
                         done.get("duration"))


def typed(summary: Summary | dict[str, Any]) -> Summary:
    """The summary itself, or the one a summary.json holds."""
    return summary if isinstance(summary, Summary) else Summary.from_json(summary)


def rows(summary: Summary | dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The summary table as (header, rows): one column per lane after the row label. A row whose lane
    cells are all empty is a section title (`is_section`); the markdown makes it bold, the TUI too."""
    summary = typed(summary)
    lanes = summary.lanes
    names = list(lanes)
    out: list[list[str]] = []
    versions = sorted({r.version for lane in lanes.values() for r in lane.releases if not r.setup}, key=_version_key)
    for version in versions:
        per_lane = [next((r for r in lanes[n].releases if r.version == version and not r.setup), None)
                    for n in names]
        out.append(_section(f"v{version}", names))
        for phase in PHASES[1:]:
            out.append([f"  commit → {PHASE_LABELS[phase]}"] +
                       [_fmt(r.lead[phase]) if r else "—" for r in per_lane])
        out.append(["  rollout (apply → 100%)"] + [_rollout_cell(r) for r in per_lane])
        out.append(["  errors during rollout"] + [
            f"{r.errors_during_rollout}/{r.requests_during_rollout}" if r else "—" for r in per_lane])
        out.append(["  worst 1 s p99 during rollout"] + [_fmt(r.worst_1s_p99_during_rollout_ms, " ms") if r else "—"
                                                          for r in per_lane])
        out += _strategy_rows([next((c for c in lanes[n].strategy_changes if c.version == version), None)
                               for n in names])
    out.append(_section("live changes", names))
    out.append(["  changed → reverted (by whom)"] + [
        ", ".join(f"{_fmt(c.reverted_after)} ({c.reverted_by or 'self-heal'})"
                  if c.reverted_after is not None else "never" for c in lanes[n].live_changes) or "—"
        for n in names])
    if any(lane.retrains for lane in summary.ml_loop.values()):
        out += _ml_loop_rows(summary.ml_loop, names)
    out.append(_section("whole run", names))
    out.append(["  requests / errors"] + [f"{lanes[n].requests} / {lanes[n].errors}" for n in names])
    out.append(["  p99 (median of 1 s windows)"] + [_fmt(lanes[n].p99_ms_median_of_windows, " ms") for n in names])
    if any(lanes[n].lag_windows for n in names):  # runs recorded before the generator measured its lag
        out.append([f"  generator-bound windows (lag p99 > {GENERATOR_BOUND_MS:g} ms)"] + [
            f"{lanes[n].generator_bound_windows} of {lanes[n].lag_windows}" for n in names])
    header = ["", *[f"{n} ({lanes[n].delivery}{', ' + lanes[n].strategy if lanes[n].strategy else ''})"
                    for n in names]]
    return header, out


def _strategy_rows(changes: list[ChangeSummary | None]) -> list[list[str]]:
    """Per release, what each lane's strategy decided and what the change cost (when any lane has one)."""
    if not any(changes):
        return []
    cell = lambda f: [f(c) if c else "—" for c in changes]  # noqa: E731
    return [["  strategy: decision (by)"] + cell(lambda c: f"{c.strategy}: {c.decision.replace('_', ' ')}"
                                                 + (f" ({c.by})" if c.by else "")),
            ["  time to decision"] + cell(lambda c: _fmt(c.time_to_decision)),
            ["  exposure (user requests before it)"] + cell(lambda c: str(c.exposure)),
            ["  errors during the change"] + cell(lambda c: f"{c.errors}/{c.requests}"),
            ["  peak replicas / replica-seconds"] + cell(lambda c: f"{c.peak_replicas} / {c.replica_seconds:.0f}"
                                                        if c.replica_seconds is not None else "—")]


def _rollout_cell(release: ReleaseSummary | None) -> str:
    """The rollout's duration, or why it never ended: "rollout failed (crash loop)", "rolled back (p99)",
    "pipeline failed"."""
    if release is None:
        return "—"
    if release.failed and release.rollout_duration is None:
        return release.failed if release.failed.startswith(("rollout failed", "rolled back")) else "pipeline failed"
    return _fmt(release.rollout_duration)


def _ml_loop_rows(loop: dict[str, MlLoopSummary], names: list[str]) -> list[list[str]]:
    lanes = [loop.get(n) or MlLoopSummary() for n in names]

    def per_retrain(cell: Any) -> list[str]:
        """One cell per lane: the value for each of its retrains, comma-separated."""
        return [", ".join(cell(r) for r in lane.retrains) or "—" for lane in lanes]

    def reasons(lane: MlLoopSummary) -> str:
        return f"{len(lane.retrains)} ({', '.join(str(r.reason) for r in lane.retrains)})" if lane.retrains else "0"

    out = [_section("ML loop", names)]
    out.append(["  MLOps level"] + [f"L{lane.level} {LEVELS[lane.level]}" if lane.level in LEVELS
                                     else "—" for lane in lanes])
    out.append(["  retrains (reason)"] + [reasons(lane) for lane in lanes])
    out.append(["  outcome"] + per_retrain(lambda r: str(r.outcome)))
    out.append(["  detect (change → alarm)"] + [", ".join(_fmt(d) for d in lane.detect_delays) or "—"
                                                for lane in lanes])
    for key, label in RETRAIN_STEPS:
        if key == "wait_labels":
            out.append(["  wait for a person, then labels"] + per_retrain(_waited))
            continue
        out.append([f"  {label}"] + per_retrain(lambda r, key=key: _fmt(r.timings.get(key))))
    out.append(["  change → retrained at 100%"] + per_retrain(lambda r: _fmt(r.change_to_delivered)))
    out.append(["  human actions"] + [str(lane.human_actions) for lane in lanes])
    out.append(["  mean accuracy since drift"] + ["—" if lane.accuracy_since_drift is None
                                                  else f"{lane.accuracy_since_drift:.3f}" for lane in lanes])
    out.append(["  accuracy-seconds lost"] + ["—" if lane.accuracy_seconds_lost is None
                                              else f"{lane.accuracy_seconds_lost:.1f}" for lane in lanes])
    out.append([f"  final accuracy (last {FINAL_ACCURACY_WINDOW:g} s)"] + [
        "—" if lane.accuracy_final is None else f"{lane.accuracy_final:.3f}" for lane in lanes])
    return out


def _waited(retrain: RetrainSummary) -> str:
    """A retrain's wait before training: for labels, and — when a person started it — for that person first."""
    labels, person = retrain.timings.get("wait_labels"), retrain.waited_for_person
    if person is None:
        return _fmt(labels)
    return f"{_fmt(round(person + (labels or 0.0), 3))} (person {_fmt(person)})"


def _section(title: str, names: list[str]) -> list[str]:
    return [title] + ["" for _ in names]


def is_section(row: list[str]) -> bool:
    return not row[0].startswith(" ") and all(cell == "" for cell in row[1:])


def table(summary: Summary | dict[str, Any]) -> str:
    """A markdown table: one column per lane, one row block per release (and the ML loop, if any)."""
    header, body = rows(summary)
    body = [[f"**{row[0]}**", *row[1:]] if is_section(row) else row for row in body]
    widths = [max(len(row[i]) for row in body + [header]) for i in range(len(header))]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    out = [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(row) for row in body]
    return "\n".join(out)


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (1 << 30, version)


def markdown(summary: Summary | dict[str, Any]) -> str:
    summary = typed(summary)
    sc = summary.scenario
    parts = [f"# {sc.get('name', 'run')} — {summary.status}", "", sc.get("description", ""), "",
             f"Environment: {sc.get('environment')}, traffic {sc.get('rate')} req/s, "
             f"duration {summary.duration} s.", "", table(summary), "", "## Credentials per lane", ""]
    for name, lane in summary.lanes.items():
        parts.append(f"- **{name}** ({lane.delivery}): {lane.credential}")
    parts += ["", "Times are seconds after the commit, on the run's one clock; `—` means the phase did not happen."]
    return "\n".join(parts) + "\n"


def write(directory: Path, state: RunState) -> Summary:
    summary = summarise(state)
    (directory / "summary.json").write_text(json.dumps(summary.to_json(), indent=2, default=str))
    (directory / "summary.md").write_text(markdown(summary))
    return summary
