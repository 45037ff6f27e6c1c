"""The run's state rebuilt from its events: lanes, replicas, series for plots, and phase timings.

`RunState.apply(event)` is a pure reducer, so a live run and a replay of `events.jsonl` produce the same
state; the TUI reads it, the report summarises it. Series, marks, log and narration are in seconds since
the scenario started (`run_started`); a Release's phase times are raw run-clock seconds, read only as
differences (lead times), so the initial deployment before the scenario clock starts is measured too.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from mlopslab import eventtypes as ev
from mlopslab.eventtypes import Event, decode
from mlopslab.monitor import rollouts

PHASES = ("commit", "detected", "pipeline_done", "apply_started", "first_ready", "rollout_done", "traffic_100")
ENDS = ("traffic_100", "rollout_failed", "rolled_back", "superseded")   # what ends a release's rollout
SERIES = 900  # points kept per plotted series (15 minutes at 1 Hz)
GENERATOR_BOUND_MS = 1.0  # a window whose requests left later than this at p99 measured the generator too


# kinds that change a lane's state: the first of them to name a lane creates it (others only show in the log)
LANE_STATE = (ev.LabPrepared, ev.ModelRegistered, ev.Commit, ev.Detected, ev.PipelineDone, ev.ApplyStarted,
              ev.ReplicaStarted, ev.ReplicaReady, ev.ReplicaTerminating, ev.ReplicaStopped, ev.RolloutDone,
              ev.RolloutFailed, ev.Traffic100, ev.LiveChange, ev.LiveReverted, ev.Sync, ev.Metrics, ev.DriftScore,
              ev.DriftInjected, ev.DriftAlarm, ev.Accuracy, ev.RetrainStarted, ev.PipelineAccepted,
              ev.PipelineRejected, ev.StrategyStep, ev.Gate, ev.StrategyDecision, ev.StrategyDone)
SERIES_KINDS = (ev.Metrics, ev.Sync, ev.DriftScore, ev.Accuracy, ev.ReplicaTerminating, ev.Gate)   # plotted, not logged


class LogEntry(NamedTuple):
    """One line of the event log: the event itself, and its fields as `key=value` text on the scenario clock."""

    t: float | None          # None: during the setup, before the scenario clock started
    kind: str
    lane: str | None
    detail: str
    event: Event


@dataclass
class Release:
    """One commit's journey through one lane: phase -> time."""

    sha: str
    version: str
    times: dict[str, float] = field(default_factory=dict)
    setup: bool = False           # the initial deployment, before the scenario clock started
    ready: list[float] = field(default_factory=list)
    failed: str | None = None
    errors_during: int = 0
    requests_during: int = 0
    latencies_during: list[float] = field(default_factory=list)

    @property
    def ended(self) -> bool:
        return any(p in self.times for p in ENDS)

    @property
    def end(self) -> float | None:
        """When this release's rollout stopped counting: 100 % reached, failed, rolled back, or superseded."""
        ends = [self.times[p] for p in ENDS if p in self.times]
        return min(ends) if ends else None

    def lead(self, phase: str) -> float | None:
        if "commit" not in self.times or phase not in self.times:
            return None
        return round(self.times[phase] - self.times["commit"], 3)


@dataclass
class LiveChangeRecord:
    at: float
    change: dict[str, Any]
    reverted: float | None = None
    reverted_by: str | None = None   # "agent self-heal" | "Flux drift correction" | "next apply" (a delivery applied the repo again)


@dataclass
class LaneState:
    name: str
    delivery: str = "?"
    settings: dict[str, Any] = field(default_factory=dict)
    sync: str = "Unknown"
    head: str | None = None
    live_revision: str | None = None
    live_version: str | None = None
    replicas: dict[str, tuple[str, str]] = field(default_factory=dict)   # name -> (version, state)
    latency: deque = field(default_factory=lambda: deque(maxlen=SERIES))  # (t, p50, p95, p99)
    shares: deque = field(default_factory=lambda: deque(maxlen=SERIES))   # (t, {version: share})
    accuracy: deque = field(default_factory=lambda: deque(maxlen=SERIES))  # (t, accuracy) once labels arrived
    drift: deque = field(default_factory=lambda: deque(maxlen=SERIES))    # (t, score)
    pipeline_version: str = "builtin"                                      # training pipeline code in use
    marks: list[tuple[float, str, str]] = field(default_factory=list)     # (t, phase, version)
    releases: dict[str, Release] = field(default_factory=dict)            # sha -> Release
    changes: list[LiveChangeRecord] = field(default_factory=list)
    requests: int = 0
    errors: int = 0
    lag_windows: int = 0        # windows that carried the load generator's schedule lag
    generator_bound: int = 0    # of those, windows whose lag p99 exceeded GENERATOR_BOUND_MS
    credential: str = ""
    rollout: rollouts.RolloutView = field(default_factory=rollouts.RolloutView)   # its strategy (canary, ...)


class RunState:
    def __init__(self) -> None:
        self.scenario: dict[str, Any] = {}
        self.start: float | None = None
        self.now = 0.0
        self.finished: dict[str, Any] | None = None
        self.lanes: dict[str, LaneState] = {}
        self.commits: dict[str, dict[str, Any]] = {}   # sha -> commit event
        self.narration: list[tuple[float, str]] = []
        self.log: deque = deque(maxlen=500)
        self.paused = False
        self.versions: dict[str, dict[str, Any]] = {}  # version -> model_registered event
        self.drifts: list[dict[str, Any]] = []
        self.alarms: list[dict[str, Any]] = []
        self.retrains: dict[str, dict[str, Any]] = {}   # retrain id -> phases (t), outcome, timings
        self.pipeline_changes: list[dict[str, Any]] = []  # pipeline_accepted / pipeline_rejected events
        self.applied = 0   # events applied so far: a reader can tell at a glance whether anything changed

    def rel(self, t: float) -> float:
        return round(t - (self.start or 0.0), 4)

    def lane(self, name: str) -> LaneState:
        if name not in self.lanes:
            self.lanes[name] = LaneState(name)
        return self.lanes[name]

    def apply(self, event: Event | dict[str, Any]) -> None:
        """Folds one event (typed, or a line's dict) into the state."""
        e = decode(event) if isinstance(event, dict) else event
        self.applied += 1
        kind = e.name
        t = self.rel(e.t) if self.start is not None else 0.0
        self.now = max(self.now, t)
        lane = self.lane(e.lane) if e.lane and isinstance(e, LANE_STATE) else None
        self._reduce(e, t, lane)
        if not isinstance(e, SERIES_KINDS):  # series, not lines
            # before the scenario clock starts, an entry's time is None: the log shows it as setup
            self.log.append(LogEntry(t if self.start is not None else None, kind, e.lane,
                                     describe(e.as_dict(), self.rel), e))

    def _reduce(self, e: Event, t: float, lane: LaneState | None) -> None:
        match e:
            case ev.LabPrepared():
                self.scenario = e.scenario or {}
                for spec in e.lanes or []:
                    state = self.lane(spec["name"])
                    state.delivery, state.settings = spec["delivery"], spec
                    state.credential = spec.get("credential", "")
            case ev.RunStarted():
                self.start, self.now = e.t, 0.0
            case ev.RunFinished():
                self.finished = e.as_dict()
            case ev.Narration():
                self.narration.append((t, e.text or ""))
            case ev.ModelRegistered():
                self.versions[str(e.version)] = e.as_dict()
            case ev.Commit():
                self._commit(e, t)
            case ev.Detected():
                self._phase(lane, e.sha, "detected", t, e.t)
            case ev.PipelineDone():
                release = self._phase(lane, e.sha, "pipeline_done", t, e.t)
                if release and e.ok is False:
                    release.failed = e.error
            case ev.ApplyStarted():
                self._phase(lane, e.sha, "apply_started", t, e.t)
                if lane:
                    lane.live_revision, lane.live_version = e.revision, str(e.version)
                    self._revert(lane, t, "next apply")  # applying the repo's state undoes a manual change too
            case ev.ReplicaStarted() if lane:
                lane.replicas[e.replica] = (str(e.version), "starting")
            case ev.ReplicaReady() if lane:
                self._ready(e, lane)
            case ev.ReplicaTerminating() if lane and e.replica in lane.replicas:   # out of the endpoints, draining
                lane.replicas[e.replica] = (str(e.version), "terminating")
            case ev.ReplicaStopped() if lane:
                lane.replicas.pop(e.replica, None)
            case ev.RolloutDone() if lane:   # the release's own version, all ready (a progressive lane's primary)
                release = self._release(lane, e.revision)
                if release and str(e.version or release.version) != release.version:
                    release = None   # another version's: a stable primary stamped with a newer commit (old runs)
                if release and "rollout_done" not in release.times:
                    release.times["rollout_done"] = e.t
                    lane.marks.append((t, "applied", release.version))
            case ev.RolloutFailed() if lane:
                release = self._release(lane, e.revision)
                if release:
                    why = {"CrashLoopBackOff": "crash loop", "NotReady": "not ready"}.get(e.detail or "", e.reason)
                    release.failed = f"rollout failed ({why})"
                    release.times.setdefault("rollout_failed", e.t)
            case ev.Traffic100() if lane:
                self._traffic_100(e, lane)
            case ev.LiveChange() if lane:
                lane.changes.append(LiveChangeRecord(t, e.change or {}))
            case ev.LiveReverted() if lane:
                self._revert(lane, t, "Flux drift correction" if lane.delivery == "flux" else "agent self-heal")
            case ev.Sync() if lane:
                lane.sync = e.state or lane.sync
                fields = e.fields()   # a field the line lacks keeps what the lane had
                lane.head = fields.get("head", lane.head)
                lane.live_revision = fields.get("live", lane.live_revision)
                lane.live_version = fields.get("live_version", lane.live_version)
            case ev.Metrics() if lane and e.window is not None:
                self._metrics(e, lane)
            case ev.DriftScore():
                for state in ([lane] if lane else self.lanes.values()):
                    state.drift.append((t, e.score))
            case ev.DriftInjected():
                self.drifts.append({**e.as_dict(), "rel": t})
            case ev.DriftAlarm():
                self.alarms.append({**e.as_dict(), "rel": t})
                if lane:
                    lane.marks.append((t, "alarm", ""))
            case ev.Accuracy() if lane and e.value is not None:
                lane.accuracy.append((self.rel(e.window), e.value))
            case ev.RetrainSkipped():
                pass
            case ev.Retrain():   # each phase of one retrain's record
                self._retrain_phase(e, t, e.name.removeprefix("retrain_"))
                if isinstance(e, ev.RetrainStarted) and lane:
                    lane.marks.append((t, "retrain", ""))
            case ev.PipelineAccepted():
                self.pipeline_changes.append({**e.as_dict(), "rel": t})
                if lane:
                    lane.pipeline_version = str(e.version)
            case ev.PipelineRejected():
                self.pipeline_changes.append({**e.as_dict(), "rel": t})
            case ev.StrategyStep() | ev.Gate() | ev.StrategyDecision() | ev.StrategyDone() if lane:
                rollouts.reduce(lane.rollout, e, t)
                if isinstance(e, ev.StrategyDecision) and e.decision == "rolled_back":
                    self._rolled_back(e, lane)
            case ev.TrafficPaused():
                self.paused = True
            case ev.TrafficResumed():
                self.paused = False
            case _:
                pass   # shown in the log, no state of its own (or a kind this lab does not know)

    # --- handlers --------------------------------------------------------------------------------------
    def _commit(self, e: ev.Commit, t: float) -> None:
        self.commits[e.sha] = e.as_dict()
        for name in e.lanes or []:
            state = self.lane(name)
            state.head = e.sha
            state.releases[e.sha] = Release(e.sha, str(e.version), {"commit": e.t}, setup=self.start is None)
            state.marks.append((t, "commit", str(e.version)))

    def _release(self, lane: LaneState, sha: str | None) -> Release | None:
        """The lane's release a commit carries: its own, or — for a later commit that named other lanes
        (a pull agent may skip straight to it) — the lane's newest release committed before it."""
        if sha is None:
            return None
        if sha in lane.releases:
            return lane.releases[sha]
        commit = self.commits.get(sha)
        if commit is None:
            return None
        earlier = [r for r in lane.releases.values() if r.times["commit"] <= commit["t"]]
        return max(earlier, key=lambda r: r.times["commit"], default=None)

    def _phase(self, lane: LaneState | None, sha: str | None, phase: str, t: float, raw: float) -> Release | None:
        release = self._release(lane, sha) if lane is not None else None
        if release is None:
            return None
        if phase == "apply_started":  # a newer release takes over: older unfinished ones end here
            for other in lane.releases.values():
                if other is not release and "apply_started" in other.times and not other.ended:
                    other.times["superseded"] = raw
        if phase not in release.times:
            release.times[phase] = raw
            if phase in ("detected", "apply_started"):
                lane.marks.append((t, phase, release.version))
        return release

    def _current(self, lane: LaneState, version: str) -> Release | None:
        """The newest release of `version` in this lane that has been applied."""
        candidates = [r for r in lane.releases.values() if r.version == version and "apply_started" in r.times]
        return max(candidates, key=lambda r: r.times["apply_started"], default=None)

    def _ready(self, e: ev.ReplicaReady, lane: LaneState) -> None:
        lane.replicas[e.replica] = (str(e.version), "ready")
        release = self._current(lane, str(e.version))
        if release and "rollout_done" not in release.times:
            release.ready.append(e.t)
            release.times.setdefault("first_ready", e.t)

    def _traffic_100(self, e: ev.Traffic100, lane: LaneState) -> None:
        at = e.t if e.at is None else e.at
        release = self._current(lane, str(e.version))
        if release and "traffic_100" not in release.times:
            release.times["traffic_100"] = at
            lane.marks.append((self.rel(at), "100%", release.version))

    def _rolled_back(self, e: ev.StrategyDecision, lane: LaneState) -> None:
        """A progressive lane's candidate rolled back: its rollout ends here, never rolled out nor at 100 %."""
        release = self._current(lane, str(e.version))
        if release and not release.ended:
            release.times["rolled_back"] = e.t
            release.failed = f"rolled back ({e.by})" if e.by else "rolled back"

    @staticmethod
    def _revert(lane: LaneState, t: float, by: str) -> None:
        """Manual changes not yet undone are undone now, by `by` (whoever applied the repo's state)."""
        for change in lane.changes:
            if change.reverted is None and t >= change.at:
                change.reverted, change.reverted_by = t, by

    def _metrics(self, e: ev.Metrics, lane: LaneState) -> None:
        raw = e.window
        window = self.rel(raw)
        rps, errors = e.rps or 0, e.errors or 0
        lane.requests += rps
        lane.errors += errors
        if e.lag_p99 is not None:
            lane.lag_windows += 1
            lane.generator_bound += e.lag_p99 > GENERATOR_BOUND_MS
        if e.p50 is not None:
            lane.latency.append((window, e.p50, e.p95, e.p99))
        versions = e.versions or {}
        total = sum(versions.values())
        if total:
            lane.shares.append((window, {v: n / total for v, n in versions.items()}))
        for release in lane.releases.values():  # requests while a rollout was under way
            start, end = release.times.get("apply_started"), release.end
            if start is not None and start <= raw + 1 and (end is None or raw <= end):
                release.requests_during += rps
                release.errors_during += errors
                if e.p99 is not None:
                    release.latencies_during.append(e.p99)

    def _retrain_phase(self, e: ev.Retrain, t: float, phase: str) -> dict[str, Any]:
        fields = e.fields()
        record = self.retrains.setdefault(e.retrain or "?", {"lane": e.lane, "reason": e.reason, "phases": {}})
        record["phases"][phase] = t
        for key in ("version", "sha", "promoted", "challenger_acc", "champion_acc", "outcome", "timings",
                    "human_actions", "level", "pipeline_version", "error"):
            if key in fields:
                record[key] = fields[key]
        return record

    # --- queries -----------------------------------------------------------------------------------------
    def current_narration(self) -> str:
        return self.narration[-1][1] if self.narration else ""

    def lane_commit(self, lane: LaneState, revision: str | None) -> str | None:
        """The lane's own commit that a repo revision carries for it: a pull agent or a CI run applies the
        repo's HEAD, which may be a later commit for other lanes that left this lane's manifests as they were."""
        release = self._release(lane, revision)
        return release.sha if release is not None else revision


CLOCKED = ("at", "change_point", "window")   # fields that hold a raw run-clock time
UNSHOWN = {"t", "wall", "kind", "lane", "scenario", "lanes", "params", "run_id", "uri", "output"}


def describe(event: dict[str, Any], clock: Callable[[float], float] | None = None) -> str:
    """An event's fields as one `key=value` line: shas cut to 7, raw times put on the scenario clock by
    `clock` (so every time a person reads is on one clock), long output (a CI log) left to the file."""
    parts = []
    for key, value in event.items():
        if key in UNSHOWN or value is None:
            continue
        if key in ("sha", "revision", "head", "live") and isinstance(value, str):
            value = value[:7]
        elif key in CLOCKED and clock is not None and isinstance(value, (int, float)):
            value = f"{clock(value):.2f}"
        parts.append(f"{key}={value}")
    return " ".join(parts)[:160]
