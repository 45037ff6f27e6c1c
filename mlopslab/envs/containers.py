"""Replicas as containers: the `ReplicaDriver` that starts, probes and stops model-server containers.

One container per replica, labelled with the run, lane, version and replica, on the run's network, port
8080 published on 127.0.0.1 only, hardened (user 10001, read-only root, no capabilities). What runs and on
which port is read from one shared snapshot of the engine's containers. The snapshot is re-listed
when the engine's event stream says a container of the run changed (and every few seconds anyway, in case an
event was missed), not polled at a fixed rate: polling the engine costs dockerd CPU that the replicas and the
load generator need.

Readiness is an HTTP GET /ping to the replica's port published on 127.0.0.1, like a kubelet's probe, from
the lab or the agent (which shares the host's network for it): containers get no engine health check, which
the engine would run as an exec in each container every readiness period; on 2 cores that took most of one
(benchmarks/README.md, issue 16).
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

# Container events that change what a snapshot holds (exec_*, say, do not).
CHANGES = ("create", "start", "restart", "die", "kill", "stop", "destroy", "health_status", "oom", "pause", "unpause")

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

    snapshot_ttl = 0.1      # without the event stream: the longest a snapshot is reused
    resync_period = 2.0     # with it: re-listed this often even when no event came (one may be missed)

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
        self._changes = 0           # engine events seen; the snapshot is current while it was listed after the last
        self._listed_after = -1
        self._events: Any = None    # the engine's event stream while it is open

    # engine state
    def snapshot(self, max_age: float | None = None) -> tuple[float, dict[str, Seen]]:
        """(when it was taken, {container id: Seen}) for every container of the run: current as of the last
        engine event (or at most max_age old when asked, or when the event stream is not open)."""
        if self._events is None and not self._closed:
            self._watch()
        with self._snap_lock:
            age = time.monotonic() - self._taken
            if max_age is not None or self._events is None:
                stale = age > (self.snapshot_ttl if max_age is None else max_age)
            else:
                stale = self._listed_after != self._changes or age > self.resync_period
            if stale:
                changes, taken = self._changes, time.monotonic()
                listed = self.client.api.containers(all=True, filters={"label": f"{LABEL_RUN}={self.run_id}"})
                self._snapshot = {c["Id"]: _seen(c, self.host) for c in listed
                                  if c.get("Labels", {}).get(LABEL_ROLE) == "replica"}
                self._taken, self._listed_after = taken, changes
            return self._taken, self._snapshot

    _closed = False

    def _watch(self) -> None:
        """Opens the engine's event stream for the run's containers and follows it on a thread."""
        with self._snap_lock:
            if self._events is not None:
                return
            try:
                events = self.client.events(decode=True, filters={"type": "container",
                                                                  "label": f"{LABEL_RUN}={self.run_id}"})
            except Exception:  # an engine without events: fall back to the TTL
                self._closed = True
                return
            self._events, self._changes = events, self._changes + 1   # subscribed: the next snapshot re-lists
        threading.Thread(target=self._follow, args=(events,), name=f"docker-events-{self.run_id}", daemon=True).start()

    def _follow(self, events: Any) -> None:
        try:
            for event in events:
                if str(event.get("Action") or event.get("status") or "").split(":")[0] in CHANGES:
                    self._changes += 1
        except Exception:  # the stream broke (engine restart, close): back to the TTL, re-subscribed next time
            pass
        finally:
            with self._snap_lock:
                if self._events is events:
                    self._events = None
                    self._changes += 1

    def lane_containers(self, lane: str) -> list[Seen]:
        return [s for s in self.snapshot()[1].values() if s.lane == lane]

    # the driver port
    def start(self, spec: DeploymentSpec, name: str) -> tuple[Container, str]:
        image = self.images.ensure(spec.model, spec.version, spec.lane)
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
            healthcheck={"test": ["NONE"]},   # readiness is probed over HTTP (probe), not exec'd by the engine
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
        """Readiness: GET /ping on the published port answers 200, while the engine lists the container running."""
        with self._lock:
            handle = self._by_url.get(url)
        seen = self.snapshot()[1].get(handle.id) if handle is not None else None
        return seen is not None and seen.running and super().probe(url, timeout)

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
        self._closed = True
        events, self._events = self._events, None
        if events is not None:
            with contextlib.suppress(Exception):
                events.close()


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
