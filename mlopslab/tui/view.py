"""What the run screen draws: a plain copy of a RunState, taken under the lab's lock, free of Textual.

`take(state)` runs inside `Lab.snapshot(reader)` (or on a replay's own RunState), so it copies quickly
and holds no references into the live state. Each series carries a cheap `key` that changes when its
data changes, so charts rebuild only when there is something new to draw.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlopslab.monitor.timeline import LaneState, RunState

LOG_LINES = 300


@dataclass(frozen=True)
class LaneView:
    name: str
    delivery: str
    settings: dict[str, Any]
    sync: str
    head: str | None
    head_version: str | None
    live_revision: str | None
    live_version: str | None
    replicas: tuple[tuple[str, str, str], ...]          # (name, version, state)
    latency: tuple[tuple[float, float, float, float], ...]
    shares: tuple[tuple[float, dict[str, float]], ...]
    drift: tuple[tuple[float, float], ...]
    marks: tuple[tuple[float, str, str], ...]
    requests: int
    errors: int
    changes: int
    reverted: int

    @property
    def desired_replicas(self) -> int | None:
        return self.settings.get("replicas")


@dataclass(frozen=True)
class RunView:
    scenario: dict[str, Any]
    started: bool
    now: float
    finished: dict[str, Any] | None
    paused: bool
    lanes: tuple[LaneView, ...]
    narration: tuple[tuple[float, str], ...]
    log: tuple[tuple[float, str, str | None, str], ...]
    versions: tuple[str, ...]
    drifts: tuple[dict[str, Any], ...]
    alarms: tuple[dict[str, Any], ...]
    errors: tuple[str, ...] = field(default=())

    @property
    def duration(self) -> float:
        return float(self.scenario.get("duration") or 0.0)

    def lane(self, name: str) -> LaneView | None:
        return next((lane for lane in self.lanes if lane.name == name), None)


EMPTY = RunView({}, False, 0.0, None, False, (), (), (), (), (), ())


def take(state: RunState) -> RunView:
    """Copies what the run screen draws. Called under the lab's state lock: copy, do not compute."""
    lanes = tuple(_lane(state, lane) for lane in state.lanes.values())
    log = list(state.log)[-LOG_LINES:]
    errors = tuple(text for _, kind, _, text in log if kind == "error")
    return RunView(dict(state.scenario), state.start is not None, state.now, state.finished, state.paused, lanes,
                   tuple(state.narration), tuple(log), tuple(state.versions), tuple(state.drifts),
                   tuple(state.alarms), errors)


def _lane(state: RunState, lane: LaneState) -> LaneView:
    head_version = None
    if lane.head and lane.head in state.commits:
        head_version = str(state.commits[lane.head].get("version"))
    replicas = tuple((name, version, status) for name, (version, status) in sorted(lane.replicas.items()))
    return LaneView(lane.name, lane.delivery, dict(lane.settings), lane.sync, lane.head, head_version,
                    lane.live_revision, lane.live_version, replicas, tuple(lane.latency), tuple(lane.shares),
                    tuple(lane.drift), tuple(lane.marks), lane.requests, lane.errors, len(lane.changes),
                    sum(1 for c in lane.changes if c.reverted is not None))


def series_key(series: tuple[Any, ...]) -> tuple[Any, ...]:
    """Changes when a series changes (points are only appended; old ones fall off the front)."""
    return (len(series), series[0][0] if series else None, series[-1] if series else None)
