"""Flux on the embedded cluster: its real source-controller and kustomize-controller, which reconcile the
Flux lanes from the env repo beside the lab's own agent (each lane's delivery: gitops/flux_delivery.py).

- `FluxSystem` is what a run's Flux lanes share: the env repo served over git's smart HTTP on 127.0.0.1
  (githttp.py; GitRepository takes only http(s) and ssh URLs), Flux's CRDs installed into the cluster,
  and the two controllers as processes of the control plane's keeper (no process outlives the lab). They
  watch only `flux-system` and act as the `flux` ServiceAccount (rbac.grant_flux), which may apply and
  prune in the Flux lanes' namespaces and nowhere else.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


SOURCE_VERSION = "v1.9.6"
KUSTOMIZE_VERSION = "v1.9.6"
NAMESPACE = "flux-system"
CONTROLLERS = ("source-controller", "kustomize-controller")
BUILD = "bash .ci/flux.sh   (builds Flux's source-controller and kustomize-controller from their Go modules, cached)"
SOURCE = ("source.toolkit.fluxcd.io", "v1", "gitrepositories")
KUSTOMIZE = ("kustomize.toolkit.fluxcd.io", "v1", "kustomizations")


class FluxError(RuntimeError):
    pass


def cache_root() -> Path:
    return Path(os.environ.get("MLOPSLAB_FLUX_CACHE", Path.home() / ".cache" / "mlopslab-flux"))


@dataclass(frozen=True)
class FluxInstall:
    """Where the controllers and their CRDs are: `<root>/bin/<controller>` and `<root>/crds/*.yaml`."""

    root: Path

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def crds(self) -> list[Path]:
        return sorted((self.root / "crds").glob("*.yaml"))

    def problem(self) -> str | None:
        missing = [name for name in CONTROLLERS if not os.access(self.bin / name, os.X_OK)]
        if missing:
            return (f"Flux's controllers missing: {', '.join(missing)} in {self.bin}. Build them with {BUILD}, or set "
                    "MLOPSLAB_FLUX_DIR to a directory with bin/ and crds/")
        if not self.crds:
            return f"Flux's CRDs missing in {self.root / 'crds'} ({BUILD})"
        return None


def find() -> FluxInstall:
    """MLOPSLAB_FLUX_DIR, else the cache .ci/flux.sh fills (the default versions first)."""
    if os.environ.get("MLOPSLAB_FLUX_DIR"):
        return FluxInstall(Path(os.environ["MLOPSLAB_FLUX_DIR"]))
    root = cache_root()
    default = root / f"source-{SOURCE_VERSION}-kustomize-{KUSTOMIZE_VERSION}"
    built = [default] + sorted((p for p in root.glob("source-*") if p != default), reverse=True)
    return next((p for p in map(FluxInstall, built) if p.problem() is None), FluxInstall(default))


class FluxSystem:
    """Flux's controllers, CRDs and git server for one run (shared by its Flux lanes)."""

    def __init__(self, install: FluxInstall, control_plane: Any, admin: Any, repo_root: Path, lanes: list[str],
                 labels: dict[str, str], jitter_percent: float = 5.0, served: tuple[str, ...] = ("envrepo",)) -> None:
        self.install = install
        self.control_plane = control_plane
        self.admin = admin
        self.repo_root = repo_root              # the directory holding the env repo (served as /<name>)
        self.lanes = lanes
        self.labels = labels
        self.jitter_percent = jitter_percent
        self.served = served
        self.server: Any = None
        self.kubeconfig: Path | None = None
        self.started_in: float | None = None

    def repo_url(self, repo: Path) -> str:
        return self.server.url(repo.name)

    def start(self, timeout: float = 60.0) -> FluxSystem:
        from mlopslab.envs.kubernetes import rbac
        from mlopslab.envs.kubernetes.controlplane import free_port
        from mlopslab.gitops.githttp import GitServer

        began = time.monotonic()
        self.repo_root.mkdir(parents=True, exist_ok=True)
        self.server = GitServer(self.repo_root, self.served).start()
        try:
            self._install_crds(timeout)
            access = self.control_plane.access
            self.kubeconfig = rbac.grant_flux(self.admin, access, self.lanes, self.labels,
                                              self.control_plane.dir / "credentials" / "flux.kubeconfig")
            storage = self.control_plane.dir / "flux" / "storage"
            storage.mkdir(parents=True, exist_ok=True)
            env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "RUNTIME_NAMESPACE": NAMESPACE}
            ports = {name: free_port() for name in ("storage", "src-metrics", "src-health", "kus-metrics", "kus-health")}
            common = ["--enable-leader-election=false", "--watch-all-namespaces=false", "--log-level=info",
                      "--log-encoding=json", f"--interval-jitter-percentage={int(self.jitter_percent)}"]
            self.control_plane.spawn("source-controller", [
                str(self.install.bin / "source-controller"), *common,
                f"--storage-path={storage}", f"--storage-addr=127.0.0.1:{ports['storage']}",
                f"--storage-adv-addr=127.0.0.1:{ports['storage']}",
                f"--metrics-addr=127.0.0.1:{ports['src-metrics']}",
                f"--health-addr=127.0.0.1:{ports['src-health']}"], env)
            self.control_plane.spawn("kustomize-controller", [
                str(self.install.bin / "kustomize-controller"), *common, "--no-remote-bases=true",
                f"--metrics-addr=127.0.0.1:{ports['kus-metrics']}",
                f"--health-addr=127.0.0.1:{ports['kus-health']}"], env)
            deadline = time.monotonic() + timeout
            for name, port in (("source-controller", ports["src-health"]), ("kustomize-controller", ports["kus-health"])):
                self.control_plane.wait_healthy(name, f"http://127.0.0.1:{port}/readyz", deadline, tls="none")
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - began
        return self

    def _install_crds(self, timeout: float) -> None:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        api = client.ApiextensionsV1Api(self.admin)
        names = []
        for path in self.install.crds:
            for doc in yaml.safe_load_all(path.read_text()):
                if not doc or doc.get("kind") != "CustomResourceDefinition":
                    continue
                try:
                    api.create_custom_resource_definition(doc)
                except ApiException as exc:
                    if exc.status != 409:
                        raise
                names.append(doc["metadata"]["name"])
        deadline = time.monotonic() + timeout
        for name in names:
            while True:
                crd = api.read_custom_resource_definition(name)
                if any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or []):
                    break
                if time.monotonic() > deadline:
                    raise FluxError(f"CRD {name} not established in {timeout:g} s")
                time.sleep(0.05)

    def stop(self) -> None:
        """The controllers stop with the control plane (first, as its clients); the git server here."""
        for name in CONTROLLERS:
            proc = self.control_plane.procs.get(name)
            if proc is not None and proc.poll() is None:
                proc.terminate()
        for name in CONTROLLERS:
            proc = self.control_plane.procs.get(name)
            if proc is not None:
                try:
                    proc.wait(timeout=5)
                except Exception:  # noqa: BLE001 - killed below
                    proc.kill()
        if self.server is not None:
            self.server.close()
            self.server = None

    def pids(self) -> list[int]:
        return [p.pid for n, p in self.control_plane.procs.items() if n in CONTROLLERS and p.poll() is None]
