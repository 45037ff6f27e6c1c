"""A Docker engine: replicas are containers built FROM a base image decided before anything starts; a pull
agent is a container beside the engine holding its socket, in the host's network namespace only to probe
its replicas on 127.0.0.1. On a pull lane with a progressive strategy the agent declares the lane's target
in the engine and the lab's rollout controller follows it (envs/docker_declared.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from mlopslab.envs.base import Environment
from mlopslab.gitops.delivery import Delivery
from mlopslab.platforms.base import Platform, PlatformError
from mlopslab.scenario import LaneSpec


class DockerPlatform(Platform):
    kind = "docker"

    def prepare(self) -> None:
        from mlopslab.envs import baseimage

        sc = self.context.scenario
        try:
            choice = baseimage.resolve(None, sc.environment.base_image)
        except baseimage.BaseImageError as exc:  # names the command that builds the offline base
            raise PlatformError(str(exc)) from None
        self.context.scenario = replace(sc, environment=replace(sc.environment, base_image=choice.image))
        self.context.emit("base_image", None, configured=choice.configured, image=choice.image, how=choice.how)

    def make_environment(self) -> Environment:
        from mlopslab.envs.docker import DockerEnvironment

        ctx = self.context
        self.env = DockerEnvironment(ctx.serving_dir, ctx.emit, log_dir=ctx.run_dir / "logs", run_id=ctx.run_id,
                                     base_image=ctx.scenario.environment.base_image)
        return self.env

    def pull_agent(self, lane: LaneSpec, repo_path: Path, work: Path, seed: int) -> Delivery:
        from mlopslab.envs.docker_agent import DockerAgent

        ctx = self.context
        return DockerAgent(lane.name, repo_path, self.env, ctx.emit, models_dir=ctx.models_dir, clock=ctx.now,
                           interval=lane.poll_interval, jitter=lane.poll_jitter, self_heal=lane.self_heal,
                           live_interval=lane.live_check, seed=seed,
                           log_dir=ctx.run_dir / "logs", watch=self._declared(lane))

    def _declared(self, lane: LaneSpec) -> Any:
        """A progressive lane: the rollout controller (the lab's Rollouts, wrapping this environment) follows
        the target its agent declares in the engine, and a manual change edits that declared object."""
        if not (lane.strategy and lane.strategy.progressive):
            return None
        from mlopslab.envs.docker_declared import DeclaredStore, DeclaredTargets
        from mlopslab.strategies.controller import Rollouts

        if not isinstance(self.env, Rollouts):
            raise PlatformError(f"lane {lane.name!r}: a {lane.strategy.type} pull lane needs the rollout controller")
        store = DeclaredStore(self.env.inner.client, self.context.run_id, self.context.scenario.environment.base_image)
        watch = DeclaredTargets(store, lane.name, self.env.apply, self.context.emit)
        self.env.editors[lane.name] = watch.edit
        return watch

    def credential(self, lane: LaneSpec) -> str:
        if lane.delivery == "pull":
            declares = ("; it declares the lane's target in the engine, where the rollout controller beside it "
                        "follows it") if lane.strategy and lane.strategy.progressive else ""
            return (f"the agent container mlopslab-{self.context.run_id}-agent-{lane.name} holds the engine socket "
                    f"(/var/run/docker.sock mounted); it probes its replicas on 127.0.0.1 and reads the repo "
                    f"read-only{declares}")
        return super().credential(lane)
