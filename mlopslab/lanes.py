"""A lane: one way of delivering under test — its settings, its desired state, its delivery, its verdict.

The lab holds one `Lane` per scenario lane and wires them; what a lane is judged by (Synced, OutOfSync,
Progressing, Degraded, as Argo CD judges an application: the lane's desired manifests against live state)
is decided here, from what the environment observes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mlopslab.envs.base import DeploymentSpec, Environment, LiveState, Strategy
from mlopslab.eventtypes import Event, FetchFailed, FetchRecovered
from mlopslab.gitops.delivery import Delivery
from mlopslab.preflight import LabError
from mlopslab.scenario import LaneSpec, Scenario


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
            publish_endpoints(env, name, publish)
            live = env.observe(name)
            with lock:
                state, revision, version = lane.verdict(live, lane.desired)
            error = lane.repo_error
            if shown.get(name) != (state, revision, error):
                shown[name] = (state, revision, error)
                emit("sync", name, state=state, live=revision, head=lane.head, live_version=version,
                     **({"error": error} if error else {}))


def on_event(lanes: dict[str, Lane], event: Event) -> None:
    """Recorder listener: a lane whose delivery cannot fetch the repo is Degraded until a fetch works again."""
    match event:
        case FetchFailed(lane=str(name)) if name in lanes:
            lanes[name].repo_error = event.get("error", "")
        case FetchRecovered(lane=str(name)) if name in lanes:
            lanes[name].repo_error = None


def wait_ready(env: Environment, names: list[str], stop: threading.Event, timeout: float, logs: Path,
               storage_error: Callable[[], str | None]) -> None:
    """Blocks until every lane's first rollout is complete; a stop raises (LabError when the results stopped
    being writable, else KeyboardInterrupt), and so does the `timeout`."""
    deadline = time.monotonic() + timeout
    while not all(env.observe(name).complete for name in names):
        if stop.is_set():
            raise LabError(error) if (error := storage_error()) else KeyboardInterrupt
        if time.monotonic() > deadline:
            raise LabError(f"the lanes did not become ready within {timeout:.0f} s; see {logs}")
        time.sleep(0.05)


def publish_endpoints(env: Environment, name: str, publish: Callable[[str, list[tuple[str, str]]], None]) -> None:
    """Tells the router a lane's ready endpoints (url, version), as Kubernetes Endpoints follow ready pods."""
    publish(name, [(e.url, e.version) for e in env.endpoints(name)])


def prepared(sc: Scenario, lanes: dict[str, Lane], results_dir: Path) -> dict[str, Any]:
    """The `lab_prepared` event's fields: the scenario, every lane's settings and credential, the results."""
    return {"scenario": {"name": sc.name, "description": sc.description, "duration": sc.duration, "seed": sc.seed,
                         "environment": sc.environment.kind, "rate": sc.rate, "path": str(sc.path or "")},
            "lanes": [{**asdict(lane.spec), "credential": lane.credential} for lane in lanes.values()],
            "results_dir": str(results_dir)}
