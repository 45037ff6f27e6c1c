"""The node's docker runtime: a pod's container runs as a container on the local Docker engine, from the
model image the lab built (`mlopslab/<model>:v<version>`, as the manifest names it; images are never
pulled: there is no registry), published on the pod's own loopback address and containerPort only.
Containers run as user 10001 with a read-only root, every capability dropped and no-new-privileges,
labelled with the node so that whatever a crash leaves behind can be found and removed.
"""

from __future__ import annotations

import secrets
import threading
from typing import Any

from mlopslab.envs.base import DeploymentSpec, ReplicaDriver

LABEL = "mlopslab.node"
SERVER_PORT = 8080


class ContainerRuntime(ReplicaDriver):
    def __init__(self, client: Any, node: str, image_for: Any) -> None:
        self.client = client
        self.node = node
        self.image_for = image_for          # (model, version) -> image name, as the manifests spell it
        self._ids: set[str] = set()
        self._lock = threading.Lock()

    def start(self, spec: DeploymentSpec, name: str, bind: tuple[str, int] = ("127.0.0.1", 0)) -> tuple[Any, str]:
        host, port = bind
        container = self.client.containers.run(
            self.image_for(spec.model, spec.version),
            command=["--model-dir", "/model", "--host", "0.0.0.0", "--port", str(SERVER_PORT),
                     "--warmup", str(spec.warmup)]
            + (["--latency-ms", str(spec.latency_ms)] if spec.latency_ms else []),
            name=f"{self.node}-{name}-{secrets.token_hex(2)}"[:120], detach=True,
            ports={f"{SERVER_PORT}/tcp": (host, port or None)}, user="10001", read_only=True,
            cap_drop=["ALL"], security_opt=["no-new-privileges"], pids_limit=128,
            labels={LABEL: self.node, "mlopslab.pod": name})
        with self._lock:
            self._ids.add(container.id)
        ports = self.client.api.inspect_container(container.id)["NetworkSettings"]["Ports"]
        return container.id, f"http://{host}:{ports[f'{SERVER_PORT}/tcp'][0]['HostPort']}"

    def alive(self, handle: str) -> bool:
        import docker.errors

        try:
            return self.client.api.inspect_container(handle)["State"]["Running"]
        except docker.errors.NotFound:
            return False

    def last_words(self, handle: str) -> str:
        try:
            state = self.client.api.inspect_container(handle)["State"]
            tail = self.client.api.logs(handle, tail=1).decode(errors="replace").strip()
            return "; ".join(p for p in (f"exit {state.get('ExitCode')}", tail[:200]) if p)
        except Exception:
            return ""

    def stop(self, handle: str, grace: float) -> None:
        import docker.errors

        try:
            if grace > 0:
                self.client.api.stop(handle, timeout=max(1, int(grace)))
            self.client.api.remove_container(handle, force=True)
        except docker.errors.NotFound:
            pass
        with self._lock:
            self._ids.discard(handle)

    def close(self) -> None:
        """Removes every container of this node, those a crash may have left included."""
        import docker.errors

        for container in self.client.api.containers(all=True, filters={"label": f"{LABEL}={self.node}"}):
            try:
                self.client.api.remove_container(container["Id"], force=True)
            except docker.errors.APIError:
                pass

    def pids(self) -> list[int]:
        return []
