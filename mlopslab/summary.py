"""The summary of one run as dataclasses: what the Markdown table, the TUI's summary and the HTML report
render, and what summary.json holds (`to_json`, the same keys in the same order as ever)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ReleaseSummary:
    """One commit's rollout in one lane; times in seconds after the commit."""

    version: str
    sha: str
    setup: bool
    lead: dict[str, float | None]               # phase -> seconds after the commit
    ready: list[float]
    rollout_duration: float | None
    errors_during_rollout: int
    requests_during_rollout: int
    worst_1s_p99_during_rollout_ms: float | None
    failed: str | None


@dataclass(frozen=True)
class ChangeSummary:
    """One version change in one lane under its strategy: the decision and what it cost."""

    version: str
    strategy: str
    decision: str                               # promoted | rolled_back | failed | undecided
    by: str | None                              # the gate that decided, or analysis, steps, human, rollout, ...
    time_to_decision: float | None
    exposure: int | None                        # user requests the version served before the decision
    requests: int | None
    errors: int | None                          # user requests that failed during the change
    peak_replicas: int | None
    replica_seconds: float | None
    duration: float | None


@dataclass(frozen=True)
class LiveChangeSummary:
    at: float
    change: dict[str, Any]
    reverted_by: str | None
    reverted_after: float | None


@dataclass(frozen=True)
class LaneSummary:
    delivery: str
    settings: dict[str, Any]
    credential: str
    releases: list[ReleaseSummary]
    live_changes: list[LiveChangeSummary]
    requests: int
    errors: int
    p99_ms_median_of_windows: float | None
    generator_bound_windows: int = 0           # windows whose load-generator lag p99 exceeded the bound
    lag_windows: int = 0                       # windows that carried the generator's lag (0 in older runs)
    accuracy_last: float | None = None
    strategy: str | None = None                # canary | blue-green | shadow | ab | recreate | None (rolling)
    strategy_changes: list[ChangeSummary] = field(default_factory=list)


@dataclass(frozen=True)
class RetrainSummary:
    id: str
    reason: str | None
    version: Any
    waited_for_person: float | None
    outcome: str
    error: str | None
    promoted: bool | None
    challenger_acc: float | None
    champion_acc: float | None
    pipeline_version: str | None
    human_actions: int | None
    started: float | None
    timings: dict[str, float]
    change_to_delivered: float | None


@dataclass(frozen=True)
class MlLoopSummary:
    """One lane's ML loop: its level, retrains, detection delays, human actions and accuracy."""

    accuracy_since_drift: float | None = None
    accuracy_seconds_lost: float | None = None
    level: int | None = None
    pipeline_version: str = "builtin"
    retrains: list[RetrainSummary] = field(default_factory=list)
    detect_delays: list[float] = field(default_factory=list)
    alarms: int = 0
    human_actions: int = 0
    accuracy_final: float | None = None


@dataclass(frozen=True)
class Summary:
    scenario: dict[str, Any]
    status: str
    duration: float | None
    lanes: dict[str, LaneSummary]
    versions: dict[str, dict[str, Any]]         # version -> {accuracy, note}
    drift_alarms: list[dict[str, Any]]         # the drift_alarm events, each with `rel` (scenario clock)
    ml_loop: dict[str, MlLoopSummary]

    def to_json(self) -> dict[str, Any]:
        """The dict summary.json holds (a lane without a strategy keeps the keys it always had)."""
        data = dataclasses.asdict(self)
        for lane in data["lanes"].values():
            if lane["strategy"] is None and not lane["strategy_changes"]:
                del lane["strategy"], lane["strategy_changes"]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Summary:
        """A summary read back from summary.json."""
        lanes = {name: LaneSummary(**{**lane, "releases": [ReleaseSummary(**r) for r in lane["releases"]],
                                      "live_changes": [LiveChangeSummary(**c) for c in lane["live_changes"]],
                                      "strategy_changes": [ChangeSummary(**c) for c in
                                                           lane.get("strategy_changes", [])]})
                 for name, lane in data["lanes"].items()}
        loop = {name: MlLoopSummary(**{**lane, "retrains": [RetrainSummary(**r) for r in lane["retrains"]]})
                for name, lane in (data.get("ml_loop") or {}).items()}
        return cls(data["scenario"], data["status"], data.get("duration"), lanes, data.get("versions", {}),
                   data.get("drift_alarms", []), loop)
