"""The Environment port: what a lane's Deployment object says, what observing it returns, and how an
environment starts and stops one replica.

An environment holds, per lane (its namespace), one live Deployment object and its replicas. Deliveries
only ever call `apply`, `observe` and `endpoints`; a person calls `change_live` and `kill_replica`.
`DeploymentSpec` is the object (its `Strategy` spells maxSurge/maxUnavailable as Kubernetes does),
`LiveState` its observed status, `Endpoint` a ready replica. Environments that run replicas themselves
(local processes, Docker) plug a `ReplicaDriver` into the rolling-update controller (envs/controller.py);
the Kubernetes environment leaves that to the API server's own controllers.
"""

from __future__ import annotations

import math
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlopslab.events import Emit  # noqa: F401  (what environments report through)


@dataclass(frozen=True)
class Strategy:
    """RollingUpdate parameters, as a Kubernetes Deployment spells them (type Recreate ignores surge)."""

    max_surge: int | str = "25%"
    max_unavailable: int | str = "25%"
    progress_deadline: float = 60.0
    type: str = "RollingUpdate"   # RollingUpdate | Recreate

    def resolve(self, replicas: int) -> tuple[int, int]:
        """(surge, unavailable) in replicas: percentages round surge up and unavailability down."""
        surge = _scaled(self.max_surge, replicas, math.ceil)
        unavailable = _scaled(self.max_unavailable, replicas, math.floor)
        if surge == 0 and unavailable == 0:
            unavailable = 1
        return surge, unavailable


def _scaled(value: int | str, replicas: int, rounding: Callable[[float], int]) -> int:
    if isinstance(value, str) and value.endswith("%"):
        return int(rounding(float(value[:-1]) / 100.0 * replicas))
    return int(value)


@dataclass(frozen=True)
class DeploymentSpec:
    """One lane's desired (or live) model Deployment: what its manifest in the env repo says."""

    lane: str
    model: str
    version: str
    replicas: int = 3
    strategy: Strategy = field(default_factory=Strategy)
    readiness_period: float = 0.2
    warmup: float = 0.0          # seconds the server takes to load before it reports ready
    revision: str = ""           # the env-repo commit this object was applied from
    progressive: str = ""        # a canary/blue-green/shadow/A-B strategy as JSON (mlopslab/strategies), else ""
    latency_ms: float = 0.0      # the release option that slows this version's server (a latency regression)
    # the lane's files as the env repo holds them at `revision` ((name, text), ...), when read from there:
    # an environment that takes manifests (Kubernetes) applies them as they are; never compared or diffed
    source: tuple[tuple[str, str], ...] = field(default=(), compare=False, repr=False)

    @property
    def model_uri(self) -> str:
        return f"models:/{self.model}/{self.version}"

    @property
    def template(self) -> tuple[str, str, float]:
        """What makes replicas interchangeable (a Deployment's pod-template hash): a change rolls them."""
        return (self.model, self.version, self.warmup, self.latency_ms)

    def diff(self, other: DeploymentSpec | None) -> dict[str, tuple[Any, Any]]:
        """Fields that differ (revision aside): {field: (self's value, other's value)}."""
        if other is None:
            return {"deployment": ("present", "missing")}
        fields = ("model", "version", "replicas", "strategy", "readiness_period", "warmup", "progressive",
                  "latency_ms")
        return {f: (getattr(self, f), getattr(other, f)) for f in fields if getattr(self, f) != getattr(other, f)}


@dataclass(frozen=True)
class ReplicaView:
    name: str
    version: str
    state: str
    url: str


@dataclass(frozen=True)
class Endpoint:
    lane: str
    replica: str
    version: str
    url: str


@dataclass(frozen=True)
class LiveState:
    """What `observe` returns: the live object and the status a controller reports for it."""

    lane: str
    spec: DeploymentSpec | None
    replicas: tuple[ReplicaView, ...] = ()
    updated: int = 0             # replicas of the live spec's version (not terminating)
    ready: int = 0               # ready replicas of any version
    condition: str = "Available"  # Progressing | Available | Failed

    @property
    def complete(self) -> bool:
        """Kubernetes' notion: every replica updated and available; terminating ones no longer count."""
        spec = self.spec
        return (spec is not None and self.updated == spec.replicas
                and all(r.version == spec.version and r.state == "ready"
                        for r in self.replicas if r.state != "terminating"))


class Environment(ABC):
    """The port every environment implements (local processes, Docker, Kubernetes)."""

    @abstractmethod
    def apply(self, spec: DeploymentSpec) -> None:
        """Make `spec` the lane's live object; replicas converge to it asynchronously."""

    @abstractmethod
    def observe(self, lane: str) -> LiveState:
        """The live object and its status."""

    @abstractmethod
    def endpoints(self, lane: str) -> list[Endpoint]:
        """Ready replicas only, as a Service's Endpoints list them."""

    @abstractmethod
    def change_live(self, lane: str, *, replicas: int | None = None, version: str | None = None) -> DeploymentSpec:
        """Edit the live object by hand (like `kubectl edit`), bypassing the env repo."""

    @abstractmethod
    def kill_replica(self, lane: str, name: str | None = None) -> str | None:
        """Kill one replica abruptly (like a node failure); returns its name."""

    @abstractmethod
    def teardown(self) -> None:
        """Stop every replica of the run. Safe to call twice and from a signal handler's path."""

    def credential(self) -> str:
        """What a delivery must hold to apply here, and where that lives."""
        return "none"


class ReplicaDriver(ABC):
    """How an environment starts, probes and stops one replica."""

    @abstractmethod
    def start(self, spec: DeploymentSpec, name: str) -> tuple[Any, str]:
        """Start a replica of spec's version; returns (handle, base url). Must not wait for readiness."""

    @abstractmethod
    def alive(self, handle: Any) -> bool: ...

    @abstractmethod
    def stop(self, handle: Any, grace: float) -> None:
        """Ask to stop (SIGTERM), wait up to `grace`, then kill. Blocking; called off the control loop."""

    def kill(self, handle: Any) -> None:
        self.stop(handle, grace=0.0)

    def last_words(self, handle: Any) -> str:
        """Why a replica that died did so: its exit status and the last line of its log, if known."""
        return ""

    def probe(self, url: str, timeout: float = 0.5) -> bool:
        """Readiness probe: GET /ping answers 200."""
        try:
            with urllib.request.urlopen(url + "/ping", timeout=timeout) as response:
                return response.status == 200
        except Exception:
            return False

    def close(self) -> None:
        """Release driver-wide resources after every replica is gone."""
