"""Kubernetes: the lab starts a real control plane (or takes a kubeconfig context), registers its own
node, and gives every delivery a ServiceAccount of its own.

Per lane: a namespace (the lane's name), and one ServiceAccount for its delivery — `ci-runner` for a push
lane (held by the CI runner, outside the cluster), `gitops-agent` for a pull lane (held by the agent
beside the cluster) — bound by a RoleBinding to a Role `deployer` in that namespace only. The token is a
bound ServiceAccount token (TokenRequest API), written into a 0600 kubeconfig under the run's k8s/
directory: never into the env repo, the events or the logs.

A `delivery: flux` lane is delivered by Flux's own controllers (gitops/flux.py): they run beside the
cluster as the `flux` ServiceAccount of `flux-system`, which may apply and prune in the Flux lanes'
namespaces only, and fetch the env repo over git's smart HTTP from a read-only server on 127.0.0.1.
"""

from __future__ import annotations

import os
import subprocess
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
        self.context_name: str | None = None
        self.base_image: str | None = None
        self.flux_install: Any = None
        self.flux: Any = None                  # FluxSystem, when a lane is delivered by Flux

    def _flux_lanes(self) -> list[LaneSpec]:
        return [lane for lane in self.context.scenario.lanes if lane.delivery == "flux"]

    def prepare(self) -> None:
        from mlopslab.envs.kubernetes import binaries

        if self.context.scenario.environment.cluster == "context":
            self._prepare_context()
            return
        self.binaries = binaries.find()
        if (problem := self.binaries.problem()) is not None:
            raise PlatformError(problem)
        if self.context.scenario.environment.runtime == "docker":
            self._choose_base()
        if self._flux_lanes():
            from mlopslab.gitops import flux

            self.flux_install = flux.find()
            if (problem := self.flux_install.problem()) is not None:
                raise PlatformError(problem)

    def make_environment(self) -> Environment:
        if self.context.scenario.environment.cluster == "context":
            return self._context_environment()
        return self._embedded_environment()

    def _embedded_environment(self) -> Environment:
        from kubernetes import config

        from mlopslab.envs.kubernetes.controlplane import NODE, ControlPlane
        from mlopslab.envs.kubernetes.environment import KubernetesEnvironment
        from mlopslab.envs.kubernetes.node import VirtualKubelet
        from mlopslab.envs.local import ProcessDriver
        from mlopslab.gitops import manifests

        ctx = self.context
        self.control_plane = ControlPlane(self.binaries, ctx.run_dir / "k8s", ctx.run_dir / "kubeconfig")
        stoppers = []
        try:
            access = self.control_plane.start()
            stoppers.append(self._stop_control_plane)
            ctx.emit("cluster_ready", None, server=access.server, kubeconfig=str(access.admin),
                     version=self.binaries.version(), started_in=round(self.control_plane.started_in, 3),
                     cluster="embedded")
            self.admin = config.new_client_from_config(str(access.admin))
            report = lambda message: ctx.emit("error", None, message=f"node: {message}")  # noqa: E731
            driver: Any = ProcessDriver(ctx.serving_dir, ctx.run_dir / "logs")
            if ctx.scenario.environment.runtime == "docker":   # pods as containers, from the run's images
                import docker

                from mlopslab.envs.kubernetes.containers import ContainerRuntime

                driver = ContainerRuntime(docker.from_env(), f"mlopslab-{ctx.run_id}", manifests.image_for)
            self.node = VirtualKubelet(config.new_client_from_config(str(access.node)), driver, name=NODE,
                                       report=report)
            self.node.start()
            stoppers.insert(0, self.node.stop)
            self.namespaces = {lane.name: lane.name for lane in ctx.scenario.lanes}
            for lane in ctx.scenario.lanes:
                if lane.delivery != "flux":
                    self.clients[lane.name] = self._grant(lane, access)
            if self._flux_lanes():
                self._start_flux()
                stoppers.insert(0, self.flux.stop)
            env = KubernetesEnvironment(self.admin, ctx.emit, self.namespaces, manifests, on_teardown=stoppers)
            self._grant_rollouts(env, access)
            if ctx.scenario.environment.runtime == "docker":
                env.before_apply = self._image_loader()
            env.start()
        except BaseException:
            for stop in stoppers:
                stop()
            raise
        self.env = env
        return env

    def _start_flux(self) -> None:
        from mlopslab.gitops.flux import FluxSystem

        lanes = self._flux_lanes()
        # the lane's poll.jitter (seconds, added) as Flux's +/- percentage of the interval with the same spread;
        # none given: Flux's default, 5 %. One pair of controllers serves every Flux lane: the widest wins.
        given = [lane for lane in lanes if lane.poll_jitter > 0]
        percent = max((round(100 * lane.poll_jitter / (2 * lane.poll_interval)) for lane in given), default=5)
        labels = {"app.kubernetes.io/part-of": "mlopslab", "mlopslab.io/run": self.context.run_id}
        self.flux = FluxSystem(self.flux_install, self.control_plane, self.admin, self.context.run_dir,
                               [self.namespaces[lane.name] for lane in lanes], labels,
                               jitter_percent=min(99, percent), served=("envrepo",)).start()

    def delivery(self, lane: LaneSpec, repo_path: Path, seed: int) -> Any:
        if lane.delivery != "flux":
            return super().delivery(lane, repo_path, seed)
        from mlopslab.gitops.flux_delivery import FluxDelivery

        if lane.strategy and lane.strategy.progressive:
            self._follow_declared(lane)
        return FluxDelivery(lane.name, self.flux, repo_path, self.context.run_dir / "work" / lane.name, self.env,
                            self.context.emit, interval=lane.poll_interval, namespace=self.namespaces[lane.name])

    def _follow_declared(self, lane: LaneSpec) -> None:
        """A progressive Flux lane: the rollout controller (the lab's Rollouts, wrapping this environment) takes
        the declared Deployment Flux applies as the lane's target, and a manual change edits that object
        (envs/kubernetes/declared.py)."""
        from mlopslab.envs.kubernetes import declared
        from mlopslab.strategies.controller import Rollouts

        if not isinstance(self.env, Rollouts):
            raise PlatformError(f"lane {lane.name!r}: a {lane.strategy.type} Flux lane needs the rollout controller")
        declared.follow(self.env, lane.name, self.context.emit)

    def _grant(self, lane: LaneSpec, access: Any) -> Any:
        from kubernetes import config

        from mlopslab.envs.kubernetes import rbac

        labels = {"app.kubernetes.io/part-of": "mlopslab", "mlopslab.io/run": self.context.run_id}
        path = rbac.grant(self.admin, access, self.namespaces[lane.name], ACCOUNTS[lane.delivery], labels,
                          self.context.run_dir / "k8s" / "credentials" / f"{lane.name}.kubeconfig")
        return config.new_client_from_config(str(path))

    def _grant_rollouts(self, env: Any, access: Any) -> None:
        """The rollout controller's own ServiceAccount in each progressive lane's namespace, bound to the
        lane's Role (Flagger's service account; envs/kubernetes/groups.py)."""
        from kubernetes import config

        from mlopslab.envs.kubernetes import rbac
        from mlopslab.envs.kubernetes.groups import CONTROLLER_ACCOUNT

        labels = {"app.kubernetes.io/part-of": "mlopslab", "mlopslab.io/run": self.context.run_id}
        for lane in self.context.scenario.lanes:
            if lane.strategy and lane.strategy.progressive:
                path = self.context.run_dir / "k8s" / "credentials" / f"{lane.name}.rollouts.kubeconfig"
                path = rbac.grant(self.admin, access, self.namespaces[lane.name], CONTROLLER_ACCOUNT, labels, path)
                env.controllers[lane.name] = config.new_client_from_config(str(path))

    def env_for(self, lane: LaneSpec) -> Environment:
        from mlopslab.envs.kubernetes.acting import Acting

        if lane.delivery == "flux":    # Flux applies by itself; the lab only reads what it did
            return self.env  # type: ignore[return-value]
        manager = f"mlopslab-{ACCOUNTS[lane.delivery]}"
        return Acting(self.env, self.clients[lane.name], manager, self.credential(lane))  # type: ignore[arg-type]

    def credential(self, lane: LaneSpec) -> str:
        from mlopslab.envs.kubernetes import rbac

        if lane.delivery == "flux":
            namespace = self.namespaces.get(lane.name, lane.name)
            return (f"ServiceAccount {rbac.FLUX_NAMESPACE}/{rbac.FLUX_ACCOUNT}: Role flux-applier in namespace "
                    f"{namespace} ({rbac.describe_flux_rules()}), get/patch of Namespace {namespace}, Flux's own "
                    f"objects in {rbac.FLUX_NAMESPACE}; Flux's controllers beside the cluster hold it "
                    f"(k8s/credentials/flux.kubeconfig, a bound token); outside needs only read access to the "
                    f"repo (git over HTTP on 127.0.0.1)")
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

    # --- cluster: context -------------------------------------------------------------------------------
    def _stop_control_plane(self) -> None:
        import time

        began = time.monotonic()
        self.control_plane.stop()
        self.context.emit("cluster_stopped", None, seconds=round(time.monotonic() - began, 3))

    def _kubeconfig(self) -> str:
        spec = self.context.scenario.environment
        return os.path.expanduser(spec.kubeconfig or os.environ.get("KUBECONFIG", "~/.kube/config").split(":")[0])

    def _prepare_context(self) -> None:
        """The kubeconfig and its context must exist, and model images must be buildable (a Docker engine and
        a base image): the cluster's nodes run the images the lab builds, as with `kind load docker-image`."""
        from kubernetes import config

        spec, path = self.context.scenario.environment, self._kubeconfig()
        if not os.path.exists(path):
            raise PlatformError(f"kubeconfig {path} does not exist (environment.kubeconfig, or KUBECONFIG)")
        try:
            contexts, current = config.list_kube_config_contexts(config_file=path)
        except Exception as exc:
            raise PlatformError(f"kubeconfig {path} cannot be read: {exc}") from None
        names = [c["name"] for c in contexts]
        if spec.context is not None and spec.context not in names:
            raise PlatformError(f"kubeconfig {path} has no context {spec.context!r} (it has: {', '.join(names)})")
        self.context_name = spec.context or (current or {}).get("name")
        self._choose_base()

    def _choose_base(self) -> None:
        from mlopslab.envs import baseimage

        try:
            choice = baseimage.resolve(None, self.context.scenario.environment.base_image)
        except baseimage.BaseImageError as exc:
            raise PlatformError(f"the model images need a base image: {exc}") from None
        self.base_image = choice.image

    def _context_environment(self) -> Environment:
        """An existing cluster: the lab's namespaces only (`<lane>-<run hash>`, labelled with the run), created
        now and deleted at the end; nothing outside them is touched."""
        import hashlib
        import types

        from kubernetes import client, config

        from mlopslab.envs.kubernetes.environment import KubernetesEnvironment
        from mlopslab.gitops import manifests

        ctx, path = self.context, self._kubeconfig()
        self.admin = config.new_client_from_config(path, context=self.context_name)
        suffix = hashlib.sha1(ctx.run_id.encode()).hexdigest()[:6]
        self.namespaces = {lane.name: f"{lane.name}-{suffix}" for lane in ctx.scenario.lanes}
        access = types.SimpleNamespace(server=self.admin.configuration.host,
                                       ca=Path(self.admin.configuration.ssl_ca_cert or ""))
        version = client.VersionApi(self.admin).get_code().git_version
        ctx.emit("cluster_ready", None, server=access.server, kubeconfig=path, version=version, started_in=0.0,
                 cluster="context")
        created: list[str] = []
        delete = lambda: self._delete_namespaces(created)  # noqa: E731
        try:
            for lane in ctx.scenario.lanes:
                created.append(self.namespaces[lane.name])
                self.clients[lane.name] = self._grant(lane, access)
        except BaseException:
            delete()
            raise
        env = KubernetesEnvironment(self.admin, ctx.emit, self.namespaces, manifests, on_teardown=[delete])
        self._grant_rollouts(env, access)
        env.before_apply = self._image_loader()
        env.start()
        self.env = env
        return env

    def _image_loader(self) -> Any:
        """Before an apply: the version's model image, built once; on a kind cluster also loaded into its
        nodes (`kind load docker-image`), which see only what is loaded into them."""
        import docker

        from mlopslab.envs.images import ModelImages

        ctx = self.context
        images = ModelImages(docker.from_env(), self.base_image, ctx.serving_dir, ctx.emit, ctx.run_id)
        name = self.context_name or ""
        kind_cluster = name[len("kind-"):] if name.startswith("kind-") else None

        def load(spec: Any) -> None:
            info = images.ensure(spec.model, spec.version, spec.lane)
            if kind_cluster:
                subprocess.run(["kind", "load", "docker-image", info.tag, "--name", kind_cluster], check=True,
                               capture_output=True, timeout=300)

        return load

    def _delete_namespaces(self, names: list[str], timeout: float = 60.0) -> None:
        """Deletes the run's namespaces and waits until they are gone (their pods with them)."""
        import time

        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        core = client.CoreV1Api(self.admin)
        for name in names:
            try:
                core.delete_namespace(name)
            except ApiException as exc:
                if exc.status != 404:
                    raise
        deadline = time.monotonic() + timeout
        while names and time.monotonic() < deadline:
            left = {ns.metadata.name for ns in core.list_namespace(
                label_selector=f"mlopslab.io/run={self.context.run_id}").items}
            if not left & set(names):
                return
            time.sleep(0.5)
