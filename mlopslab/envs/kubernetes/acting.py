"""The environment as one identity sees it: a delivery's ServiceAccount.

It applies the lane's declared Deployment and Service and reads the live Deployment with that identity's
API client and field manager; the rest is the run's environment. When the run's environment is the rollout
controller (strategies/controller.py), the delivery's apply goes through it: the delivery still writes the
declared object with its own credential, and the controller, watching as Flagger watches its target, makes
the lane's strategy so with its own (groups.py).
"""

from __future__ import annotations

from typing import Any

from mlopslab.envs.base import DeploymentSpec, Endpoint, Environment, LiveState


class Acting(Environment):
    def __init__(self, env: Any, api: Any, manager: str, who: str) -> None:
        self.env, self.api, self.manager, self.who = env, api, manager, who
        self.kube = getattr(env, "inner", env)    # the KubernetesEnvironment (env may be the rollout controller)

    def apply(self, spec: DeploymentSpec) -> None:
        def declare(declared: DeploymentSpec) -> None:
            self.kube.apply_as(self.api, self.manager, declared)

        if self.env is self.kube:
            declare(spec)
        else:
            self.env.apply(spec, declare=declare)

    def observe(self, lane: str) -> LiveState:
        return self.env.observe(lane, self.kube.live_spec(lane, self.api))

    def endpoints(self, lane: str) -> list[Endpoint]:
        return self.env.endpoints(lane)

    def change_live(self, lane: str, *, replicas: int | None = None, version: str | None = None) -> DeploymentSpec:
        return self.env.change_live(lane, replicas=replicas, version=version)

    def kill_replica(self, lane: str, name: str | None = None) -> str | None:
        return self.env.kill_replica(lane, name)

    def teardown(self) -> None:
        """A delivery never tears the environment down."""

    def credential(self) -> str:
        return self.who
