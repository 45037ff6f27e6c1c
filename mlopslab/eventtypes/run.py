"""The run's own events: preparing, starting and finishing a run, narration, traffic, errors, Docker images."""

from __future__ import annotations

from typing import Any

from mlopslab.eventtypes.base import Event, kind


@kind("preflight_failed")
class PreflightFailed(Event):
    """The environment is not usable: nothing started."""

    environment: str | None = None
    checks: list[dict[str, Any]] | None = None     # [{name, detail, fix}]


@kind("lab_prepared")
class LabPrepared(Event):
    scenario: dict[str, Any] | None = None         # {name, description, duration, seed, environment, rate, path}
    lanes: list[dict[str, Any]] | None = None
    results_dir: str | None = None


@kind("run_started")
class RunStarted(Event):
    """The scenario clock's zero."""

    scenario: dict[str, Any] | str | None = None


@kind("run_finished")
class RunFinished(Event):
    status: str | None = None                      # "ok" | "stopped" | "interrupted" | "failed"
    duration: float | None = None


@kind("narration")
class Narration(Event):
    text: str | None = None


@kind("error")
class Error(Event):
    message: str | None = None


@kind("human_action")
class HumanAction(Event):
    """What a person had to do."""

    action: str | None = None
    note: str | None = None


@kind("traffic_paused")
class TrafficPaused(Event):
    pass


@kind("traffic_resumed")
class TrafficResumed(Event):
    pass


@kind("traffic_100")
class Traffic100(Event):
    """From `at` (run clock) on, every request of the lane hit `version`."""

    version: int | str | None = None
    at: float | None = None


@kind("metrics")
class Metrics(Event):
    """One lane's second of traffic."""

    window: float | None = None                    # the second, on the run clock
    rps: int | None = None
    errors: int | None = None
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    versions: dict[str, int] | None = None          # version -> requests
    accuracy: float | None = None
    lag_p99: float | None = None                    # ms the generator's sends were late (absent in older runs)
    by_version: dict[str, dict[str, Any]] | None = None   # version -> {n, errors, p99} (absent in older runs)
    mirrored: dict[str, dict[str, Any]] | None = None     # the same for mirrored copies, when there were any


@kind("registry_busy")
class RegistryBusy(Event):
    """The MLflow store was locked; the step is retried."""

    step: str | None = None
    attempt: int | None = None
    error: str | None = None
    retry_in: float | None = None


@kind("cluster_ready")
class ClusterReady(Event):
    """Kubernetes: the run's control plane answers (or the context it was given), and how to reach it."""

    server: str | None = None
    kubeconfig: str | None = None                  # for `kubectl --kubeconfig ...` during the run
    version: str | None = None
    started_in: float | None = None                # seconds from the first process to every component healthy
    cluster: str | None = None                     # "embedded" | "context"


@kind("cluster_stopped")
class ClusterStopped(Event):
    """Kubernetes: the run's control plane is down (every process of it has exited)."""

    seconds: float | None = None                   # from the first SIGTERM to the last exit


@kind("base_image")
class BaseImage(Event):
    """Docker: what images build FROM."""

    configured: str | None = None
    image: str | None = None
    how: str | None = None                         # "present" | "offline" | "pull"


@kind("image_build_started")
class ImageBuildStarted(Event):
    model: str | None = None
    version: int | str | None = None
    base: str | None = None


@kind("image_build")
class ImageBuild(Event):
    model: str | None = None
    version: int | str | None = None
    image: str | None = None
    id: str | None = None
    seconds: float | None = None
    size: float | None = None
    added: float | None = None
    cached: bool | None = None
    role: str | None = None
    total: float | None = None
