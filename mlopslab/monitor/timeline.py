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
from typing import Any

PHASES = ("commit", "detected", "pipeline_done", "apply_started", "first_ready", "rollout_done", "traffic_100")
SERIES = 900  # points kept per plotted series (15 minutes at 1 Hz)
GENERATOR_BOUND_MS = 1.0  # a window whose requests left later than this at p99 measured the generator too


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
        return any(p in self.times for p in ("traffic_100", "rollout_failed", "superseded"))

    @property
    def end(self) -> float | None:
        """When this release's rollout stopped counting: 100 % reached, failed, or superseded."""
        ends = [self.times[p] for p in ("traffic_100", "rollout_failed", "superseded") if p in self.times]
        return min(ends) if ends else None

    def lead(self, phase: str) -> float | None:
        if "commit" not in self.times or phase not in self.times:
            return None
        return round(self.times[phase] - self.times["commit"], 3)


@dataclass
class LiveChange:
    at: float
    change: dict[str, Any]
    reverted: float | None = None
    reverted_by: str | None = None   # "agent self-heal" | "next apply" (a delivery applied the repo again)


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
    changes: list[LiveChange] = field(default_factory=list)
    requests: int = 0
    errors: int = 0
    lag_windows: int = 0        # windows that carried the load generator's schedule lag
    generator_bound: int = 0    # of those, windows whose lag p99 exceeded GENERATOR_BOUND_MS
    credential: str = ""


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

    def apply(self, event: dict[str, Any]) -> None:
        self.applied += 1
        kind = event["kind"]
        t = self.rel(event["t"]) if self.start is not None else 0.0
        self.now = max(self.now, t)
        name = event.get("lane")
        if kind.startswith("retrain_") and kind != "retrain_skipped":  # each phase of one retrain's record
            self._retrain_phase(event, t, kind.removeprefix("retrain_"))
        handler = getattr(self, f"_on_{kind}", None)
        if handler is not None:
            handler(event, t, self.lane(name) if name else None)
        if kind not in ("metrics", "sync", "drift_score", "accuracy", "replica_terminating"):  # series, not lines
            # before the scenario clock starts, an entry's time is None: the log shows it as setup
            self.log.append((t if self.start is not None else None, kind, name, describe(event, self.rel)))

    # --- handlers --------------------------------------------------------------------------------------
    def _on_lab_prepared(self, e: dict[str, Any], t: float, lane: LaneState | None) -> None:
        self.scenario = e.get("scenario", {})
        for spec in e.get("lanes", []):
            state = self.lane(spec["name"])
            state.delivery = spec["delivery"]
            state.settings = spec
            state.credential = spec.get("credential", "")

    def _on_run_started(self, e: dict[str, Any], t: float, lane: LaneState | None) -> None:
        self.start = e["t"]
        self.now = 0.0

    def _on_run_finished(self, e: dict[str, Any], t: float, lane: LaneState | None) -> None:
        self.finished = e

    def _on_narration(self, e: dict[str, Any], t: float, lane: LaneState | None) -> None:
        self.narration.append((t, e["text"]))

    def _on_model_registered(self, e: dict[str, Any], t: float, lane: LaneState | None) -> None:
        self.versions[str(e["version"])] = e

    def _on_commit(self, e: dict[str, Any], t: float, lane: LaneState | None) -> None:
        self.commits[e["sha"]] = e
        for name in e.get("lanes", []):
            state = self.lane(name)
            state.head = e["sha"]
            state.releases[e["sha"]] = Release(e["sha"], str(e["version"]), {"commit": e["t"]},
                                               setup=self.start is None)
            state.marks.append((t, "commit", str(e["version"])))

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

    def _on_detected(self, e: dict[str, Any], t: float, lane: LaneState | None) -> None:
        self._phase(lane, e.get("sha"), "detected", t, e["t"])

    def _on_pipeline_done(self, e: dict[str, Any], t: float, lane: LaneState | None) -> None:
        release = self._phase(lane, e.get("sha"), "pipeline_done", t, e["t"])
        if release and not e.get("ok", True):
            release.failed = e.get("error")

    def _on_apply_started(self, e: dict[str, Any], t: float, lane: LaneState | None) -> None:
        self._phase(lane, e.get("sha"), "apply_started", t, e["t"])
        if lane:
            lane.live_revision, lane.live_version = e.get("revision"), str(e.get("version"))
            self._revert(lane, t, "next apply")  # applying the repo's state undoes a manual change too

    def _current(self, lane: LaneState, version: str) -> Release | None:
        """The newest release of `version` in this lane that has been applied."""
        candidates = [r for r in lane.releases.values() if r.version == version and "apply_started" in r.times]
        return max(candidates, key=lambda r: r.times["apply_started"], default=None)

    def _on_replica_started(self, e: dict[str, Any], t: float, lane: LaneState | None) -> None:
        if lane:
            lane.replicas[e["replica"]] = (str(e["version"]), "starting")

    def _on_replica_ready(self, e: dict[str, Any], t: float, lane: LaneState | None) -> None:
        if not lane:
            return
        lane.replicas[e["replica"]] = (str(e["version"]), "ready")
        release = self._current(lane, str(e["version"]))
        if release and "rollout_done" not in release.times:
            release.ready.append(e["t"])
            release.times.setdefault("first_ready", e["t"])

    def _on_replica_terminating(self, e: dict[str, Any], t: float, lane: LaneState | None) -> None:
        if lane and e["replica"] in lane.replicas:   # out of the endpoints, draining until it stops
            lane.replicas[e["replica"]] = (str(e["version"]), "terminating")

    def _on_replica_stopped(self, e: dict[str, Any], t: float, lane: LaneState | None) -> None:
        if lane:
            lane.replicas.pop(e["replica"], None)

    def _on_rollout_done(self, e: dict[str, Any], t: float, lane: LaneState | None) -> None:
        if lane:
            release = self._release(lane, e.get("revision"))
            if release and "rollout_done" not in release.times:
                release.times["rollout_done"] = e["t"]
                lane.marks.append((t, "applied", release.version))

    def _on_rollout_failed(self, e: dict[str, Any], t: float, lane: LaneState | None) -> None:
        if lane:
            release = self._release(lane, e.get("revision"))
            if release:
                why = {"CrashLoopBackOff": "crash loop", "NotReady": "not ready"}.get(e.get("detail"), e.get("reason"))
                release.failed = f"rollout failed ({why})"
                release.times.setdefault("rollout_failed", e["t"])

    def _on_traffic_100(self, e: dict[str, Any], t: float, lane: LaneState | None) -> None:
        if not lane:
            return
        at = e.get("at", e["t"])
        release = self._current(lane, str(e["version"]))
        if release and "traffic_100" not in release.times:
            release.times["traffic_100"] = at
            lane.marks.append((self.rel(at), "100%", release.version))

    def _on_live_change(self, e: dict[str, Any], t: float, lane: LaneState | None) -> None:
        if lane:
            lane.changes.append(LiveChange(t, e.get("change", {})))

    def _on_live_reverted(self, e: dict[str, Any], t: float, lane: LaneState | None) -> None:
        if lane:
            self._revert(lane, t, "agent self-heal")

    @staticmethod
    def _revert(lane: LaneState, t: float, by: str) -> None:
        """Manual changes not yet undone are undone now, by `by` (whoever applied the repo's state)."""
        for change in lane.changes:
            if change.reverted is None and t >= change.at:
                change.reverted, change.reverted_by = t, by

    def _on_sync(self, e: dict[str, Any], t: float, lane: LaneState | None) -> None:
        if lane:
            lane.sync = e["state"]
            lane.head = e.get("head", lane.head)
            lane.live_revision = e.get("live", lane.live_revision)
            lane.live_version = e.get("live_version", lane.live_version)

    def _on_metrics(self, e: dict[str, Any], t: float, lane: LaneState | None) -> None:
        if not lane:
            return
        raw = e["window"]
        window = self.rel(raw)
        lane.requests += e["rps"]
        lane.errors += e["errors"]
        if e.get("lag_p99") is not None:
            lane.lag_windows += 1
            lane.generator_bound += e["lag_p99"] > GENERATOR_BOUND_MS
        if e.get("p50") is not None:
            lane.latency.append((window, e["p50"], e["p95"], e["p99"]))
        total = sum(e["versions"].values())
        if total:
            lane.shares.append((window, {v: n / total for v, n in e["versions"].items()}))
        for release in lane.releases.values():  # requests while a rollout was under way
            start, end = release.times.get("apply_started"), release.end
            if start is not None and start <= raw + 1 and (end is None or raw <= end):
                release.requests_during += e["rps"]
                release.errors_during += e["errors"]
                if e.get("p99") is not None:
                    release.latencies_during.append(e["p99"])

    def _on_drift_score(self, e: dict[str, Any], t: float, lane: LaneState | None) -> None:
        for state in ([lane] if lane else self.lanes.values()):
            state.drift.append((t, e["score"]))

    def _on_drift_injected(self, e: dict[str, Any], t: float, lane: LaneState | None) -> None:
        self.drifts.append({**e, "rel": t})

    def _on_drift_alarm(self, e: dict[str, Any], t: float, lane: LaneState | None) -> None:
        self.alarms.append({**e, "rel": t})
        if lane:
            lane.marks.append((t, "alarm", ""))

    def _on_accuracy(self, e: dict[str, Any], t: float, lane: LaneState | None) -> None:
        if lane and e.get("value") is not None:
            lane.accuracy.append((self.rel(e["window"]), e["value"]))

    def _retrain_phase(self, e: dict[str, Any], t: float, phase: str) -> dict[str, Any]:
        record = self.retrains.setdefault(e.get("retrain", "?"), {"lane": e.get("lane"), "reason": e.get("reason"),
                                                                   "phases": {}})
        record["phases"][phase] = t
        for key in ("version", "sha", "promoted", "challenger_acc", "champion_acc", "outcome", "timings",
                    "human_actions", "level", "pipeline_version", "error"):
            if key in e:
                record[key] = e[key]
        return record

    def _on_retrain_started(self, e: dict[str, Any], t: float, lane: LaneState | None) -> None:
        if lane:
            lane.marks.append((t, "retrain", ""))

    def _on_pipeline_accepted(self, e: dict[str, Any], t: float, lane: LaneState | None) -> None:
        self.pipeline_changes.append({**e, "rel": t})
        if lane:
            lane.pipeline_version = str(e.get("version"))

    def _on_pipeline_rejected(self, e: dict[str, Any], t: float, lane: LaneState | None) -> None:
        self.pipeline_changes.append({**e, "rel": t})

    def _on_traffic_paused(self, e: dict[str, Any], t: float, lane: LaneState | None) -> None:
        self.paused = True

    def _on_traffic_resumed(self, e: dict[str, Any], t: float, lane: LaneState | None) -> None:
        self.paused = False

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
