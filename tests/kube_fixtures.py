"""Fixtures for tests on a real Kubernetes control plane: started once per test run (session scope) from
the binaries `.ci/k8s.sh` builds, with the lab's virtual kubelet as its node.

No binaries: the tests skip, unless MLOPSLAB_REQUIRE_K8S=1 (CI), where that is a failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mlopslab.envs.kubernetes import binaries

REQUIRED = os.environ.get("MLOPSLAB_REQUIRE_K8S") == "1"


def unavailable(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"MLOPSLAB_REQUIRE_K8S=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@dataclass
class Cluster:
    access: Any
    admin: Any
    node: Any
    bins: binaries.Binaries
    dir: Path
    control_plane: Any
    events: list[tuple[str, str | None, dict[str, Any]]] = field(default_factory=list)

    def kubectl(self, *args: str, kubeconfig: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([self.bins["kubectl"], "--kubeconfig", str(kubeconfig or self.access.admin), *args],
                              capture_output=True, text=True, timeout=60, check=check)

    def emit(self, kind: str, lane: str | None, **fields: Any) -> None:
        self.events.append((kind, lane, fields))


def wait_for(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def deployments(cluster: Cluster, namespace: str) -> dict[str, Any]:
    """{name: Deployment} in the namespace."""
    from kubernetes import client

    return {d.metadata.name: d for d in client.AppsV1Api(cluster.admin).list_namespaced_deployment(namespace).items}


class Traffic(threading.Thread):
    """Real requests to the lane's endpoints (both groups' Ready pods), recorded as the load generator
    records them, for the gates."""

    def __init__(self, env: Any, lane: str) -> None:
        super().__init__(daemon=True)
        self.env, self.lane, self.stop = env, lane, threading.Event()
        self.served: dict[str, int] = {}

    def run(self) -> None:
        body = json.dumps({"inputs": [[0.1] * 8]}).encode()
        i = 0
        while not self.stop.is_set():
            endpoints = self.env.endpoints(self.lane)
            if not endpoints:
                time.sleep(0.05)
                continue
            endpoint, i = endpoints[i % len(endpoints)], i + 1
            began, status, version = time.monotonic(), 0, None
            try:
                request = urllib.request.Request(endpoint.url + "/invocations", data=body,
                                                 headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=5) as response:
                    response.read()
                    status, version = response.status, response.headers.get("X-Model-Version")
            except OSError:
                pass
            self.served[str(version)] = self.served.get(str(version), 0) + 1
            self.env.add_result({"lane": self.lane, "i": i, "t": began, "lat": 1000 * (time.monotonic() - began),
                                 "st": status, "v": version})
            time.sleep(0.02)


@pytest.fixture(scope="session")
def k8s_binaries() -> binaries.Binaries:
    found = binaries.find()
    if (problem := found.problem()) is not None:
        unavailable(problem)
    return found


@pytest.fixture(scope="session")
def cluster(k8s_binaries: binaries.Binaries, registry: Any,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A control plane and the lab's node, shared by the tests of a run. A model version named `crash`
    resolves to an empty directory, so its server exits at start (for restart tests)."""
    from kubernetes import config

    from mlopslab.envs.kubernetes.controlplane import NODE, ControlPlane
    from mlopslab.envs.kubernetes.node import VirtualKubelet
    from mlopslab.envs.local import ProcessDriver

    base = tmp_path_factory.mktemp("k8s")
    empty = base / "empty-model"
    empty.mkdir()
    control_plane = ControlPlane(k8s_binaries, base / "k8s", base / "kubeconfig")
    access = control_plane.start()
    resolve = lambda model, version: empty if version == "crash" else registry.serving_dir(model, version)  # noqa: E731
    node = VirtualKubelet(config.new_client_from_config(str(access.node)), ProcessDriver(resolve, base),
                          name=NODE, report=lambda message: print("NODE:", message))
    node.start()
    try:
        yield Cluster(access, config.new_client_from_config(str(access.admin)), node, k8s_binaries, base,
                      control_plane)
    finally:
        node.stop()
        control_plane.stop()
