"""A lane: one way of delivering under test — its settings, its desired state, its delivery, its verdict.

The lab holds one `Lane` per scenario lane and wires them; what a lane is judged by (Synced, OutOfSync,
Progressing, Degraded, as Argo CD judges an application: the lane's desired manifests against live state)
is decided here, from what the environment observes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlopslab.envs.base import DeploymentSpec, Environment, LiveState, Strategy
from mlopslab.gitops.delivery import Delivery
from mlopslab.scenario import LaneSpec


@dataclass
class Lane:
    spec: LaneSpec
    credential: str = ""
    desired: DeploymentSpec | None = None
    delivery: Delivery | None = None
    head: str = ""                 # the lane's last commit: what its header compares live state with
    repo_error: str | None = None  # its delivery's last failed fetch, until one works again

    @property
    def name(self) -> str:
        return self.spec.name

    def deployment(self, model: str, version: str) -> DeploymentSpec:
        """The lane's desired deployment of `version`: its replicas, readiness and rollout settings."""
        s = self.spec
        kind = s.strategy.type if s.strategy else "rolling"
        surge, unavailable = (0, "100%") if kind == "recreate" else (s.max_surge, s.max_unavailable)
        return DeploymentSpec(lane=s.name, model=model, version=str(version), replicas=s.replicas,
                              readiness_period=s.readiness_period, warmup=s.warmup,
                              strategy=Strategy(surge, unavailable, s.progress_deadline,
                                                type="Recreate" if kind == "recreate" else "RollingUpdate"),
                              progressive=s.strategy.to_json() if s.strategy and s.strategy.progressive else "")

    def verdict(self, live: LiveState, desired: DeploymentSpec | None) -> tuple[str, str | None, str | None]:
        """(sync state, live revision, live version)."""
        revision = live.spec.revision if live.spec else None
        version = live.spec.version if live.spec else None
        if live.condition == "Failed" or self.repo_error is not None:
            return "Degraded", revision, version
        if desired is None or desired.diff(live.spec):
            return "OutOfSync", revision, version
        return ("Synced" if live.complete else "Progressing"), revision, version


def watch(lanes: dict[str, Lane], env: Environment, lock: threading.Lock, stop: threading.Event,
          emit: Callable[..., Any], publish: Callable[[str, list[tuple[str, str]]], None], period: float = 0.05) -> None:
    """Until `stop`: every `period`, publishes each lane's ready endpoints and emits its `sync` verdict
    when it changes (state, live revision or fetch error). `lock` guards the lanes' desired state."""
    shown: dict[str, tuple[Any, ...]] = {}
    while not stop.wait(period):
        for name, lane in lanes.items():
            publish(name, [(e.url, e.version) for e in env.endpoints(name)])
            live = env.observe(name)
            with lock:
                state, revision, version = lane.verdict(live, lane.desired)
            error = lane.repo_error
            if shown.get(name) != (state, revision, error):
                shown[name] = (state, revision, error)
                emit("sync", name, state=state, live=revision, head=lane.head, live_version=version,
                     **({"error": error} if error else {}))
