"""The port every environment kind implements, and what they share (the push runner, the in-process
pull agent, the wording of credentials)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlopslab.envs.base import Environment
from mlopslab.gitops.delivery import Delivery
from mlopslab.scenario import LaneSpec, Scenario


class PlatformError(RuntimeError):
    """The environment cannot be used for this run; the message says how to fix it."""


@dataclass
class RunContext:
    """What a platform needs from the run: the scenario, where the run lives, how to report."""

    scenario: Scenario
    run_dir: Path
    run_id: str
    emit: Callable[..., Any]
    now: Callable[[], float]
    serving_dir: Callable[[str, str], Path]  # (model, version) -> the exported artifact replicas load
    models_dir: Path   # the registry's cache of model artifacts (what an agent container mounts)
    model_exists: Callable[[str, str], bool]


class Platform(ABC):
    kind = ""

    def __init__(self, context: RunContext) -> None:
        self.context = context
        self.env: Environment | None = None

    def prepare(self) -> None:
        """Decides what must be decided before anything starts (e.g. Docker's base image); may raise with
        the fix. The default has nothing to decide."""

    @abstractmethod
    def make_environment(self) -> Environment: ...

    def delivery(self, lane: LaneSpec, repo_path: Path, seed: int) -> Delivery:
        """The lane's push runner or pull agent, wired to this environment."""
        assert self.env is not None
        work = self.context.run_dir / "work" / lane.name
        if lane.delivery == "push":
            from mlopslab.gitops.push import PushRunner

            return PushRunner(lane.name, repo_path, work, self.env_for(lane), self.context.emit,
                              self.context.model_exists)
        return self.pull_agent(lane, repo_path, work, seed)

    def pull_agent(self, lane: LaneSpec, repo_path: Path, work: Path, seed: int) -> Delivery:
        """An agent beside the environment: by default a thread of the lab with its own clone."""
        from mlopslab.gitops.pull import PullAgent

        assert self.env is not None
        return PullAgent(lane.name, repo_path, work, self.env_for(lane), self.context.emit, interval=lane.poll_interval,
                         jitter=lane.poll_jitter, webhook=lane.webhook, self_heal=lane.self_heal,
                         live_interval=lane.live_check, seed=seed)

    def env_for(self, lane: LaneSpec) -> Environment:
        """The environment as the lane's delivery may use it (by default: the environment itself)."""
        assert self.env is not None
        return self.env

    def credential(self, lane: LaneSpec) -> str:
        env = self.env.credential() if self.env else "?"
        if lane.delivery == "push":
            return f"CI runner holds environment access: {env}"
        return f"agent beside the environment holds it: {env}; outside needs only read access to the repo"

    def child_pids(self) -> list[int]:
        """Processes of this environment's own (replicas run as children of the lab), for clean-up checks."""
        driver = getattr(self.env, "driver", None)
        return driver.pids() if driver is not None and hasattr(driver, "pids") else []
