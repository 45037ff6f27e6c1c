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

ROLE_RULES = [
    {"apiGroups": ["apps"], "resources": ["deployments"],
     "verbs": ["get", "list", "watch", "create", "update", "patch"]},
    {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list", "watch", "create", "update", "patch"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
]
ACCOUNTS = {"push": "ci-runner", "pull": "gitops-agent"}
TOKEN_SECONDS = 24 * 3600


def describe_rules() -> str:
    parts = []
    for rule in ROLE_RULES:
        group = rule["apiGroups"][0]
        things = ",".join(r + (f".{group}" if group else "") for r in rule["resources"])
        parts.append(f"{'/'.join(rule['verbs'])} {things}")
    return "; ".join(parts)


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
        """The lane's namespace, its delivery's ServiceAccount, Role and RoleBinding; returns an API client
        that authenticates with a token of that ServiceAccount."""
        from kubernetes import client, config

        from mlopslab.envs.kubernetes import pki

        core, rbac = client.CoreV1Api(self.admin), client.RbacAuthorizationV1Api(self.admin)
        namespace, account = self.namespaces[lane.name], ACCOUNTS[lane.delivery]
        labels = {"app.kubernetes.io/part-of": "mlopslab", "mlopslab.io/run": self.context.run_id}
        core.create_namespace({"metadata": {"name": namespace, "labels": labels}})
        core.create_namespaced_service_account(namespace, {"metadata": {"name": account, "labels": labels}})
        rbac.create_namespaced_role(namespace, {"metadata": {"name": "deployer", "labels": labels},
                                                "rules": ROLE_RULES})
        rbac.create_namespaced_role_binding(namespace, {
            "metadata": {"name": f"deployer-{account}", "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "deployer"},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]})
        token = core.create_namespaced_service_account_token(
            account, namespace, {"spec": {"expirationSeconds": TOKEN_SECONDS}}).status.token
        credentials = self.context.run_dir / "k8s" / "credentials"
        credentials.mkdir(parents=True, exist_ok=True)
        path = pki.kubeconfig(credentials / f"{lane.name}.kubeconfig", access.server, access.ca,
                              user=f"{namespace}:{account}", token=token, namespace=namespace)
        return config.new_client_from_config(str(path))

    def env_for(self, lane: LaneSpec) -> Environment:
        from mlopslab.envs.kubernetes.environment import Acting

        manager = f"mlopslab-{ACCOUNTS[lane.delivery]}"
        return Acting(self.env, self.clients[lane.name], manager, self.credential(lane))  # type: ignore[arg-type]

    def credential(self, lane: LaneSpec) -> str:
        namespace, account = self.namespaces.get(lane.name, lane.name), ACCOUNTS[lane.delivery]
        holder = ("the CI runner holds it, outside the cluster" if lane.delivery == "push" else
                  "the agent beside the cluster holds it; outside needs only read access to the repo")
        where = Path("k8s") / "credentials" / f"{lane.name}.kubeconfig"
        return (f"ServiceAccount {namespace}/{account}: Role deployer in namespace {namespace} only "
                f"({describe_rules()}); {holder} ({where}, a bound token)")

    def child_pids(self) -> list[int]:
        pids = list(self.control_plane.pids()) if self.control_plane else []
        if self.node is not None:
            pids += self.node.driver.pids()
        return pids
