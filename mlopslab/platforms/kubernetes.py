"""Kubernetes: the lab starts a real control plane (or takes a kubeconfig context), registers its own
node, and gives every delivery a ServiceAccount of its own.

Per lane: a namespace (the lane's name), and one ServiceAccount for its delivery — `ci-runner` for a push
lane (held by the CI runner, outside the cluster), `gitops-agent` for a pull lane (held by the agent
beside the cluster) — bound by a RoleBinding to a Role `deployer` in that namespace only. The token is a
bound ServiceAccount token (TokenRequest API), written into a 0600 kubeconfig under the run's k8s/
directory: never into the env repo, the events or the logs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlopslab.envs.base import Environment
from mlopslab.platforms.base import Platform, PlatformError
from mlopslab.scenario import LaneSpec

ACCOUNTS = {"push": "ci-runner", "pull": "gitops-agent"}


class KubernetesPlatform(Platform):
    kind = "kubernetes"

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self.binaries: Any = None
        self.control_plane: Any = None
        self.node: Any = None
        self.admin: Any = None
        self.clients: dict[str, Any] = {}     # lane -> its delivery's API client
        self.namespaces: dict[str, str] = {}

    def prepare(self) -> None:
        from mlopslab.envs.kubernetes import binaries

        self.binaries = binaries.find()
        if (problem := self.binaries.problem()) is not None:
            raise PlatformError(problem)

    def make_environment(self) -> Environment:
        from kubernetes import config

        from mlopslab.envs.kubernetes.controlplane import NODE, ControlPlane
        from mlopslab.envs.kubernetes.environment import KubernetesEnvironment
        from mlopslab.envs.kubernetes.node import VirtualKubelet
        from mlopslab.envs.local import ProcessDriver

        ctx = self.context
        self.control_plane = ControlPlane(self.binaries, ctx.run_dir / "k8s", ctx.run_dir / "kubeconfig")
        stoppers = []
        try:
            access = self.control_plane.start()
            stoppers.append(self.control_plane.stop)
            ctx.emit("cluster_ready", None, server=access.server, kubeconfig=str(access.admin),
                     version=self.binaries.version(), started_in=round(self.control_plane.started_in, 3),
                     cluster="embedded")
            self.admin = config.new_client_from_config(str(access.admin))
            report = lambda message: ctx.emit("error", None, message=f"node: {message}")  # noqa: E731
            driver = ProcessDriver(ctx.serving_dir, ctx.run_dir / "logs")
            self.node = VirtualKubelet(config.new_client_from_config(str(access.node)), driver, name=NODE,
                                       report=report)
            self.node.start()
            stoppers.insert(0, self.node.stop)
            self.namespaces = {lane.name: lane.name for lane in ctx.scenario.lanes}
            for lane in ctx.scenario.lanes:
                self.clients[lane.name] = self._grant(lane, access)
            env = KubernetesEnvironment(self.admin, ctx.emit, self.namespaces, on_teardown=stoppers)
            env.start()
        except BaseException:
            for stop in stoppers:
                stop()
            raise
        self.env = env
        return env

    def _grant(self, lane: LaneSpec, access: Any) -> Any:
        from kubernetes import config

        from mlopslab.envs.kubernetes import rbac

        labels = {"app.kubernetes.io/part-of": "mlopslab", "mlopslab.io/run": self.context.run_id}
        path = rbac.grant(self.admin, access, self.namespaces[lane.name], ACCOUNTS[lane.delivery], labels,
                          self.context.run_dir / "k8s" / "credentials" / f"{lane.name}.kubeconfig")
        return config.new_client_from_config(str(path))

    def env_for(self, lane: LaneSpec) -> Environment:
        from mlopslab.envs.kubernetes.environment import Acting

        manager = f"mlopslab-{ACCOUNTS[lane.delivery]}"
        return Acting(self.env, self.clients[lane.name], manager, self.credential(lane))  # type: ignore[arg-type]

    def credential(self, lane: LaneSpec) -> str:
        from mlopslab.envs.kubernetes import rbac

        namespace, account = self.namespaces.get(lane.name, lane.name), ACCOUNTS[lane.delivery]
        holder = ("the CI runner holds it, outside the cluster" if lane.delivery == "push" else
                  "the agent beside the cluster holds it; outside needs only read access to the repo")
        where = Path("k8s") / "credentials" / f"{lane.name}.kubeconfig"
        return (f"ServiceAccount {namespace}/{account}: Role deployer in namespace {namespace} only "
                f"({rbac.describe_rules()}); {holder} ({where}, a bound token)")

    def child_pids(self) -> list[int]:
        pids = list(self.control_plane.pids()) if self.control_plane else []
        if self.node is not None:
            pids += self.node.driver.pids()
        return pids
