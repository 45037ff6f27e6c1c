"""Where the control plane's binaries come from, and which release they are.

In order: `MLOPSLAB_K8S_BIN` (a directory a person points at), `KUBEBUILDER_ASSETS` (what
controller-runtime's `setup-envtest` downloads on a connected machine: etcd, kube-apiserver and kubectl
only, so kube-controller-manager and kube-scheduler must come from one of the other places), the cache
that `.ci/k8s.sh` builds from upstream's Go modules, and finally PATH.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

NAMES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
REQUIRED = NAMES[:4]
MIN_MINOR = 34
BUILD = "bash .ci/k8s.sh   (builds Kubernetes from its Go modules, ~10-20 min on 2 cores, cached)"


def cache_root() -> Path:
    return Path(os.environ.get("MLOPSLAB_K8S_CACHE", Path.home() / ".cache" / "mlopslab-k8s"))


def _candidates() -> list[tuple[str, Path]]:
    places: list[tuple[str, Path]] = []
    for variable in ("MLOPSLAB_K8S_BIN", "KUBEBUILDER_ASSETS"):
        if os.environ.get(variable):
            places.append((variable, Path(os.environ[variable])))
    root = cache_root()
    if root.is_dir():
        for built in sorted(root.glob("v1.*/bin"), reverse=True):
            places.append((f"cache {root}", built))
    return places


@dataclass
class Binaries:
    paths: dict[str, Path] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def missing(self) -> list[str]:
        return [name for name in REQUIRED if name not in self.paths]

    def __getitem__(self, name: str) -> str:
        return str(self.paths[name])

    def version(self) -> str | None:
        """What kube-apiserver says it is (the release its build was stamped with)."""
        if "kube-apiserver" not in self.paths:
            return None
        try:
            out = subprocess.run([self["kube-apiserver"], "--version"], capture_output=True, text=True,
                                 timeout=20).stdout
        except (OSError, subprocess.TimeoutExpired):
            return None
        match = re.search(r"v\d+\.\d+\.\d+\S*", out)
        return match.group(0) if match else None

    def problem(self) -> str | None:
        """Why these binaries cannot start a cluster, with the fix; None when they can."""
        if self.missing:
            return (f"Kubernetes binaries missing: {', '.join(self.missing)}. Build them with {BUILD}, or set "
                    "MLOPSLAB_K8S_BIN to a directory holding etcd, kube-apiserver, kube-controller-manager "
                    "and kube-scheduler")
        version = self.version()
        match = re.match(r"v1\.(\d+)\.", version or "")
        if not match or int(match.group(1)) < MIN_MINOR:
            return (f"kube-apiserver at {self.paths['kube-apiserver']} reports {version or 'no version'}; "
                    f"the lab needs 1.{MIN_MINOR} or newer ({BUILD})")
        return None


def find() -> Binaries:
    found = Binaries()
    for source, directory in _candidates():
        for name in NAMES:
            path = directory / name
            if name not in found.paths and path.is_file() and os.access(path, os.X_OK):
                found.paths[name], found.sources[name] = path, source
    for name in NAMES:
        if name not in found.paths and (which := shutil.which(name)):
            found.paths[name], found.sources[name] = Path(which), "PATH"
    return found
