"""What the run screen draws: a plain copy of a RunState, taken under the lab's lock, free of Textual.

`take(state)` runs inside `Lab.snapshot(reader)` (or on a replay's own RunState), so it copies quickly
and holds no references into the live state. Each series carries a cheap `key` that changes when its
data changes, so charts rebuild only when there is something new to draw.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlopslab.monitor.timeline import LaneState, LogEntry, RunState

LOG_LINES = 300


@dataclass(frozen=True)
class LaneView:
    name: str
    delivery: str
    settings: dict[str, Any]
    sync: str
    head: str | None                                        # the lane's last commit in the env repo (desired)
    head_version: str | None
    live_revision: str | None                               # the lane's commit the live state was applied from
    live_version: str | None
    replicas: tuple[tuple[str, str, str], ...]          # (name, version, state)
    latency: tuple[tuple[float, float, float, float], ...]
    shares: tuple[tuple[float, dict[str, float]], ...]
    drift: tuple[tuple[float, float], ...]
    marks: tuple[tuple[float, str, str], ...]                # (t, phase, version), retrain phases included
    requests: int
    errors: int
    changes: int
    reverted: int
    accuracy: tuple[tuple[float, float], ...] = ()          # (t, accuracy) of windows whose labels arrived
    pipeline_version: str = "builtin"
    retraining: str | None = None                           # the phase of a retrain under way
    generator_bound: int = 0                                # windows the load generator fell behind in
    strategy: str | None = None                             # canary | blue-green | shadow | ab | ... (None: rolling)
    rollout_step: dict[str, Any] = field(default_factory=dict)   # the strategy's latest step (phase, weight, ...)
    weights: tuple[tuple[float, float, bool, float], ...] = ()   # (t, % users on the candidate, copies, % cohorts)
    gates: tuple[dict[str, Any], ...] = ()                  # each gate's latest verdict
    decisions: tuple[tuple[float, str], ...] = ()           # (t, promoted | rolled_back)

    @property
    def desired_replicas(self) -> int | None:
        return self.settings.get("replicas")

    @property
    def level(self) -> int | None:
        return self.settings.get("level")


@dataclass(frozen=True)
class RunView:
    scenario: dict[str, Any]
    started: bool
    now: float
    finished: dict[str, Any] | None
    paused: bool
    lanes: tuple[LaneView, ...]
    narration: tuple[tuple[float, str], ...]
    log: tuple[LogEntry, ...]   # t None: during the setup
    versions: tuple[str, ...]
    drifts: tuple[dict[str, Any], ...]
    alarms: tuple[dict[str, Any], ...]
    errors: tuple[str, ...] = field(default=())
    retrains: dict[str, dict[str, Any]] = field(default_factory=dict)   # retrain id -> record (phases copied)

    @property
    def duration(self) -> float:
        return float(self.scenario.get("duration") or 0.0)

    @property
    def levels(self) -> bool:
        """The scenario sets MLOps levels (some lane above level 0), or the run retrained a model."""
        return bool(self.retrains) or any(lane.level for lane in self.lanes)

    def lane(self, name: str) -> LaneView | None:
        return next((lane for lane in self.lanes if lane.name == name), None)


EMPTY = RunView({}, False, 0.0, None, False, (), (), (), (), (), ())


RETRAIN_MARKS = ("validated", "failed")   # retrain phases drawn beside the lane's own marks ("retrain" is one)
RETRAIN_ENDS = ("done", "failed")


def take(state: RunState) -> RunView:
    """Copies what the run screen draws. Called under the lab's state lock: copy, do not compute."""
    retrains = {rid: {**record, "phases": dict(record.get("phases", {}))} for rid, record in state.retrains.items()}
    lanes = tuple(_lane(state, lane, retrains) for lane in state.lanes.values())
    log = list(state.log)[-LOG_LINES:]
    errors = tuple(entry.detail for entry in log if entry.kind == "error")
    return RunView(dict(state.scenario), state.start is not None, state.now, state.finished, state.paused, lanes,
                   tuple(state.narration), tuple(log), tuple(state.versions), tuple(state.drifts),
                   tuple(state.alarms), errors, retrains)


def _lane(state: RunState, lane: LaneState, retrains: dict[str, dict[str, Any]]) -> LaneView:
    head_version = None
    if lane.head and lane.head in state.commits:
        head_version = str(state.commits[lane.head].get("version"))
    replicas = tuple((name, version, status) for name, (version, status) in sorted(lane.replicas.items()))
    own = [r for r in retrains.values() if r.get("lane") == lane.name]
    marks = list(lane.marks) + [(r["phases"][phase], f"retrain_{phase}", str(r.get("version") or ""))
                                for r in own for phase in RETRAIN_MARKS if phase in r["phases"]]
    marks.sort(key=lambda mark: mark[0])
    running = [r for r in own if not any(end in r["phases"] for end in RETRAIN_ENDS)]
    retraining = max(running[-1]["phases"].items(), key=lambda item: item[1])[0] if running else None
    live = state.lane_commit(lane, lane.live_revision)   # like with like: the lane's commit on both sides
    return LaneView(lane.name, lane.delivery, dict(lane.settings), lane.sync, lane.head, head_version,
                    live, lane.live_version, replicas, tuple(lane.latency), tuple(lane.shares),
                    tuple(lane.drift), tuple(marks), lane.requests, lane.errors, len(lane.changes),
                    sum(1 for c in lane.changes if c.reverted is not None), tuple(lane.accuracy),
                    lane.pipeline_version, retraining, lane.generator_bound,
                    (lane.settings.get("strategy") or {}).get("type") or lane.rollout.strategy,
                    dict(lane.rollout.step), tuple(lane.rollout.weights),
                    tuple(dict(g) for g in lane.rollout.gates.values()), tuple(lane.rollout.marks))


def series_key(series: tuple[Any, ...]) -> tuple[Any, ...]:
    """Changes when a series changes (points are only appended; old ones fall off the front)."""
    return (len(series), series[0][0] if series else None, series[-1] if series else None)
