"""What a report shows, read from disk: single runs (events rebuilt into a RunState) and trial sets.

A **run** is a results directory holding events.jsonl (summary.json is rebuilt from the events, so a run
that crashed before writing it still reports), or an events.jsonl file itself. A **trial set** is the parent
directory `mlopslab run --repeat/--set` writes: its `summary.json` has `"kind": "trials"`, the scenario, the
swept `params` and one `point` per parameter combination with, per lane and phase, the distribution
(`n`, `median`, `iqr`, `ci95`, `values`, `prediction`) and the `runs` (subdirectories) behind it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlopslab import report
from mlopslab.events import read_events
from mlopslab.monitor.timeline import RunState
from mlopslab.summary import Summary


class ReportError(ValueError):
    """A path that is neither a run nor a trial set; the message says what was expected."""


@dataclass
class Run:
    path: Path
    state: RunState
    summary: Summary

    @property
    def name(self) -> str:
        return self.summary.scenario.get("name") or self.path.name


@dataclass
class Point:
    params: dict[str, Any]
    runs: list[str]
    lanes: dict[str, dict[str, dict[str, Any]]]   # lane -> phase -> {n, median, iqr, ci95, values, prediction}
    statuses: list[Any] = field(default_factory=list)  # each run's status, beside `runs`

    def label(self) -> str:
        return ", ".join(f"{_short(k)}={v}" for k, v in self.params.items()) or "all runs"


@dataclass
class Trials:
    path: Path
    scenario: dict[str, Any]
    repeat: int | None
    params: list[str]
    points: list[Point]
    first: Run | None = None                 # one run of the set, for its narration and timelines
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.scenario.get("name") or self.path.name

    def lanes(self) -> list[str]:
        return list(dict.fromkeys(lane for point in self.points for lane in point.lanes))

    def phases(self) -> list[str]:
        """Every phase any point has, report.PHASES' lead times first, extra keys after, in order seen
        (but not `commit`: commit → commit is 0 by definition)."""
        seen = [phase for point in self.points for lane in point.lanes.values() for phase in lane if phase != "commit"]
        known = [p for p in report.PHASE_LABELS if p in seen]
        return known + [p for p in dict.fromkeys(seen) if p not in report.PHASE_LABELS]


def load(path: Path) -> Run | Trials:
    """A run or a trial set from a path given on the command line."""
    path = Path(path)
    if path.is_dir() and (path / "summary.json").exists():
        data = _json(path / "summary.json")
        if isinstance(data, dict) and data.get("kind") == "trials":
            return _trials(path, data)
    events = path / "events.jsonl" if path.is_dir() else path
    if not events.is_file():
        raise ReportError(f"{path}: not a results directory (no events.jsonl) nor a trial set (summary.json "
                          'with "kind": "trials")')
    return run(events)


def run(events: Path) -> Run:
    state = RunState()
    count = 0
    for event in read_events(events):
        state.apply(event)
        count += 1
    if not count:
        raise ReportError(f"{events}: no events")
    return Run(events.parent if events.name == "events.jsonl" else events, state, report.summarise(state))


def _trials(path: Path, data: dict[str, Any]) -> Trials:
    points = []
    for i, raw in enumerate(data.get("points") or []):
        if not isinstance(raw, dict) or not isinstance(raw.get("lanes"), dict):
            raise ReportError(f"{path / 'summary.json'}: points[{i}] has no lanes")
        points.append(Point(dict(raw.get("params") or {}), list(raw.get("runs") or []), raw["lanes"],
                            list(raw.get("statuses") or [])))
    if not points:
        raise ReportError(f"{path / 'summary.json'}: a trial set with no points")
    first = None
    for name in (r for point in points for r in point.runs):
        if (path / name / "events.jsonl").is_file():
            first = run(path / name / "events.jsonl")
            break
    known = {"kind", "scenario", "repeat", "params", "points"}
    return Trials(path, dict(data.get("scenario") or {}), data.get("repeat"), list(data.get("params") or []),
                  points, first, {k: v for k, v in data.items() if k not in known})


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReportError(f"{path}: unreadable ({exc})") from None


def _short(param: str) -> str:
    """`lanes[pull].poll.interval` -> `pull.poll.interval` (a legend fits it)."""
    return param.replace("lanes[", "").replace("]", "")
