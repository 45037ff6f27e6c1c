"""Replicas as containers: the `ReplicaDriver` that starts, probes and stops model-server containers.

One container per replica, labelled with the run, lane, version and replica, on the run's network, port
8080 published on 127.0.0.1 only, hardened (user 10001, read-only root, no capabilities). Readiness is the
engine's health status, read from one shared snapshot of the engine's containers.
"""

from __future__ import annotations

import contextlib
import math
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlopslab.envs.base import DeploymentSpec, ReplicaDriver
from mlopslab.envs.images import (
    LABEL_LANE,
    LABEL_MODEL,
    LABEL_REPLICA,
    LABEL_ROLE,
    LABEL_RUN,
    LABEL_TEMPLATE,
    LABEL_VERSION,
    SERVER_PORT,
    SERVER_USER,
    ModelImages,
)

# The health check runs inside the container: python3 without site (-S) answers in ~15 ms.
HEALTH_PROBE = ("import socket,sys\n"
                f"s=socket.create_connection(('127.0.0.1',{SERVER_PORT}),1)\n"
                "s.sendall(b'GET /ping HTTP/1.0\\r\\n\\r\\n')\n"
                "sys.exit(0 if s.recv(16)[9:12]==b'200' else 1)\n")
MIN_HEALTH_INTERVAL = 0.1   # seconds; the engine execs the probe this often per container at most

@dataclass
class Container:
    """A replica's handle: the container and when we started it (to read engine snapshots correctly)."""

    id: str
    name: str
    started: float
    lane: str = ""
    replica: str = ""


@dataclass(frozen=True)
class Seen:
    """One container as the engine lists it."""

    id: str
    name: str
    lane: str
    replica: str
    version: str
    running: bool    # running, or created and about to start
    health: str      # starting | healthy | unhealthy | none
    url: str
    template: str = ""  # the spec's template as labelled (template_label)


class ContainerDriver(ReplicaDriver):
    """Starts, probes and stops model-server containers; reads state from one shared engine snapshot."""

    snapshot_ttl = 0.1

    def __init__(self, client: Any, run_id: str, images: ModelImages, *, network: str | None,
                 log_dir: Path | None = None, host: str = "127.0.0.1") -> None:
        self.client = client
        self.run_id = run_id
        self.images = images
        self.network = network
        self.log_dir = log_dir
        self.host = host
        self._lock = threading.Lock()
        self._containers: dict[str, Container] = {}
        self._by_url: dict[str, Container] = {}
        self._snapshot: dict[str, Seen] = {}
        self._taken = -math.inf
        self._snap_lock = threading.Lock()

    # engine state
    def snapshot(self, max_age: float | None = None) -> tuple[float, dict[str, Seen]]:
        """(when it was taken, {container id: Seen}) for every container of the run, at most max_age old."""
        max_age = self.snapshot_ttl if max_age is None else max_age
        with self._snap_lock:
            if time.monotonic() - self._taken > max_age:
                taken = time.monotonic()
                listed = self.client.api.containers(all=True, filters={"label": f"{LABEL_RUN}={self.run_id}"})
                self._snapshot = {c["Id"]: _seen(c, self.host) for c in listed
                                  if c.get("Labels", {}).get(LABEL_ROLE) == "replica"}
                self._taken = taken
            return self._taken, self._snapshot

    def lane_containers(self, lane: str) -> list[Seen]:
        return [s for s in self.snapshot()[1].values() if s.lane == lane]

    # the driver port
    def start(self, spec: DeploymentSpec, name: str) -> tuple[Container, str]:
        image = self.images.ensure(spec.model, spec.version, spec.lane)
        interval = max(MIN_HEALTH_INTERVAL, spec.readiness_period)
        container = self.client.containers.run(
            image.id,
            command=["--model-dir", "/model", "--host", "0.0.0.0", "--port", str(SERVER_PORT),
                     "--warmup", str(spec.warmup)]
            + (["--latency-ms", str(spec.latency_ms)] if spec.latency_ms else []),
            name=f"mlopslab-{self.run_id}-{name}-{secrets.token_hex(2)}",
            detach=True,
            ports={f"{SERVER_PORT}/tcp": (self.host, None)},
            user=SERVER_USER,
            read_only=True,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            pids_limit=128,
            network=self.network,
            labels={LABEL_RUN: self.run_id, LABEL_LANE: spec.lane, LABEL_VERSION: spec.version,
                    LABEL_MODEL: spec.model, LABEL_REPLICA: name, LABEL_ROLE: "replica",
                    LABEL_TEMPLATE: template_label(spec.template)},
            healthcheck={"test": ["CMD", "python3", "-I", "-S", "-c", HEALTH_PROBE],
                         "interval": int(interval * 1e9), "timeout": int(1e9), "retries": 3,
                         "start_period": int((spec.warmup + 30) * 1e9)},
        )
        handle = Container(container.id, container.name, time.monotonic(), spec.lane, name)
        ports = self.client.api.inspect_container(container.id)["NetworkSettings"]["Ports"]
        url = f"http://{self.host}:{ports[f'{SERVER_PORT}/tcp'][0]['HostPort']}"
        with self._lock:
            self._containers[handle.id] = handle
            self._by_url[url] = handle
        return handle, url

    def alive(self, handle: Container) -> bool:
        taken, seen = self.snapshot()
        if taken < handle.started:  # the snapshot may predate the start: ask again later
            return True
        return handle.id in seen and seen[handle.id].running

    def probe(self, url: str, timeout: float = 0.5) -> bool:
        """Readiness is the engine's health status of the container behind `url`."""
        with self._lock:
            handle = self._by_url.get(url)
        if handle is None:
            return False
        seen = self.snapshot()[1].get(handle.id)
        return seen is not None and seen.running and seen.health == "healthy"

    def stop(self, handle: Container, grace: float) -> None:
        import docker.errors

        try:
            if grace > 0:
                self.client.api.stop(handle.id, timeout=max(1, math.ceil(grace)))
            self._save_log(handle)
            self.client.api.remove_container(handle.id, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if "already in progress" not in str(exc):
                raise
        with self._lock:
            self._containers.pop(handle.id, None)
            self._by_url = {u: h for u, h in self._by_url.items() if h.id != handle.id}

    def kill(self, handle: Container) -> None:
        """Like a node failure: SIGKILL, the container stays (exited) until the controller removes it."""
        import docker.errors

        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            self.client.api.kill(handle.id)

    def last_words(self, handle: Container) -> str:
        """The exit status the engine recorded and the last line the server wrote."""
        try:
            state = self.client.api.inspect_container(handle.id)["State"]
            lines = [line for line in self.client.api.logs(handle.id, tail=5).decode(errors="replace").splitlines()
                     if line.strip()]
        except Exception:  # already removed, or the engine is busy: the event goes out without it
            return ""
        status = f"exit {state.get('ExitCode')}" + (" (out of memory)" if state.get("OOMKilled") else "")
        return "; ".join([status] + ([lines[-1][:200]] if lines else []))

    def _save_log(self, handle: Container) -> None:
        if self.log_dir is None:
            return
        with contextlib.suppress(Exception):
            (self.log_dir / f"{handle.name}.log").write_bytes(self.client.api.logs(handle.id))

    def close(self) -> None:
        with self._lock:
            leftovers = list(self._containers.values())
        for handle in leftovers:
            self.stop(handle, grace=0.0)


def _seen(summary: dict[str, Any], host: str) -> Seen:
    labels = summary.get("Labels") or {}
    status = summary.get("Status", "")
    health = ("healthy" if "(healthy)" in status else "unhealthy" if "(unhealthy)" in status
              else "starting" if "health: starting" in status else "none")
    port = next((p.get("PublicPort") for p in summary.get("Ports", [])
                 if p.get("PrivatePort") == SERVER_PORT and p.get("PublicPort")), None)
    return Seen(summary["Id"], (summary.get("Names") or ["?"])[0].lstrip("/"), labels.get(LABEL_LANE, ""),
                labels.get(LABEL_REPLICA, ""), labels.get(LABEL_VERSION, ""),
                summary.get("State") in ("running", "created", "restarting"), health, f"http://{host}:{port}" if port else "",
                labels.get(LABEL_TEMPLATE, ""))


def template_label(template: tuple) -> str:
    """A spec's template as a container label: replicas are 'updated' when theirs matches, as in envs/controller.py."""
    return "/".join(map(str, template))
