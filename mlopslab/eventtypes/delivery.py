"""Delivery's events: a commit's way through a lane (detected, pipeline, apply, replicas, rollout), sync
state, live changes and the pull agents."""

from __future__ import annotations

from typing import Any

from mlopslab.eventtypes.base import Event, kind


@kind("commit")
class Commit(Event):
    """The env repo changed."""

    sha: str | None = None
    version: int | str | None = None
    message: str | None = None
    lanes: list[str] | None = None


@kind("detected")
class Detected(Event):
    """A delivery noticed the commit."""

    sha: str | None = None
    how: str | None = None                          # "webhook" | "poll"


@kind("pipeline_done")
class PipelineDone(Event):
    sha: str | None = None
    version: int | str | None = None
    steps: list[str] | None = None
    ok: bool | None = None
    error: str | None = None


@kind("apply_started")
class ApplyStarted(Event):
    sha: str | None = None
    version: int | str | None = None
    revision: str | None = None


@kind("replica_started")
class ReplicaStarted(Event):
    replica: str | None = None
    version: int | str | None = None


@kind("replica_ready")
class ReplicaReady(Event):
    replica: str | None = None
    version: int | str | None = None
    startup: float | None = None


@kind("replica_terminating")
class ReplicaTerminating(Event):
    """Out of the endpoints, draining."""

    replica: str | None = None
    version: int | str | None = None
    reason: str | None = None


@kind("replica_stopped")
class ReplicaStopped(Event):
    replica: str | None = None
    version: int | str | None = None
    reason: str | None = None        # "rollout" | "scale_down" | "manual_change" | "died" | "crashed"
    crashes: int | None = None       # crashed: died before it was ever ready, this many times in a row
    backoff: float | None = None
    last_words: str | None = None


@kind("replica_killed")
class ReplicaKilled(Event):
    replica: str | None = None


@kind("replicaset_scaled")
class ReplicaSetScaled(Event):
    """Kubernetes: the Deployment controller scaled one of the lane's ReplicaSets (what it did, step by step)."""

    replicaset: str | None = None
    version: int | str | None = None
    previous: int | None = None                      # spec.replicas before (None: the ReplicaSet is new)
    replicas: int | None = None


@kind("rollout_done")
class RolloutDone(Event):
    """All replicas updated and available."""

    version: int | str | None = None
    revision: str | None = None
    duration: float | None = None


@kind("rollout_failed")
class RolloutFailed(Event):
    version: int | str | None = None
    revision: str | None = None
    reason: str | None = None
    detail: str | None = None                       # "CrashLoopBackOff" | "NotReady"
    message: str | None = None


@kind("live_change")
class LiveChange(Event):
    """A manual change of live state."""

    change: dict[str, Any] | None = None
    by: str | None = None


@kind("live_reverted")
class LiveReverted(Event):
    """The pull agent put desired state back."""

    change: Any = None
    revision: str | None = None


@kind("sync")
class Sync(Event):
    state: str | None = None                        # "Synced" | "OutOfSync" | "Progressing" | "Degraded"
    head: str | None = None
    live: str | None = None
    live_version: int | str | None = None
    error: str | None = None                        # while the delivery cannot read the env repo


@kind("fetch_failed")
class FetchFailed(Event):
    """A pull agent could not read the env repo."""

    error: str | None = None
    attempt: int | None = None
    retry_in: float | None = None


@kind("fetch_recovered")
class FetchRecovered(Event):
    attempts: int | None = None
    sha: str | None = None
    down_for: float | None = None


@kind("agent_started")
class AgentStarted(Event):
    interval: float | None = None
    jitter: float | None = None
    self_heal: bool | None = None


@kind("agent_container_started")
class AgentContainerStarted(Event):
    container: str | None = None
    image: str | None = None
    credential: str | None = None


@kind("agent_orphaned")
class AgentOrphaned(Event):
    heartbeat_age: float | None = None


@kind("agent_stopped")
class AgentStopped(Event):
    pass


@kind("flux_ready")
class FluxReady(Event):
    """Flux's controllers run and the lane's GitRepository and Kustomization exist."""

    url: str | None = None                          # the env repo as Flux fetches it (git over HTTP)
    interval: float | None = None
    controllers: list[str] | None = None
    started_in: float | None = None


@kind("flux_status")
class FluxStatus(Event):
    """A Flux object's conditions changed (Ready, Reconciling, Stalled), as the API holds them."""

    object: str | None = None                       # "GitRepository/flux-system/pull"
    ready: str | None = None                        # "True" | "False" | "Unknown"
    reconciling: bool | None = None
    stalled: bool | None = None
    reason: str | None = None
    message: str | None = None
    revision: str | None = None


@kind("flux_applied")
class FluxApplied(Event):
    """The Kustomization's lastAppliedRevision became the commit: kustomize-controller applied it."""

    sha: str | None = None
    revision: str | None = None                     # Flux's form: "main@sha1:<sha>"
    after_detected: float | None = None             # seconds from the artifact to the apply
