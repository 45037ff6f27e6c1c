"""The Docker environment: replicas are model-server containers on a real engine, rolled like a Deployment.

Replicas. One image per model version (`images.ModelImages`), one container per replica, started by
`ContainerDriver` through the Docker SDK: labelled `mlopslab.run` / `mlopslab.lane` / `mlopslab.version`
/ `mlopslab.replica`, attached to the run's own bridge network, port 8080 published on 127.0.0.1 only,
user 10001, read-only root filesystem, every capability dropped, no-new-privileges. Readiness comes
from the container's health check (a Docker HEALTHCHECK that GETs /ping inside the container), read
from the engine, so every process holding the socket sees the same readiness. The rolling update is
`ControlledEnvironment`'s, the one the local environment uses.

The live object. Docker has no API server, so the Deployment object lives in a small per-lane record
beside the engine (`StateStore`: `<state_dir>/<lane>.spec.json`, written atomically under a file lock,
with a generation number) and its status in `<lane>.status.json`, written only by the process whose
controller converges that lane. The controller re-reads the spec record on every pass (level-based),
so a `change_live` made by another process (the lab editing the pull lane by hand) is picked up the way
a Deployment controller picks up `kubectl edit`.

Who controls a lane. The process that `apply`s a lane runs its controller: the lab for the push lane
(its CI runner holds the engine), the agent container for the pull lane (it holds the engine's socket).
For a lane it does not control, an environment answers from engine state: `observe` and `endpoints` list
the lane's running containers by label (health and published port from the engine) and take the spec and
each replica's state from the records; `change_live` edits the spec record; `kill_replica` kills a
container.

Endpoints across processes. As in Kubernetes, a replica leaves Endpoints before it is asked to stop: a
replica is an endpoint of an observed lane only while the controller's status record lists it `ready`
*and* the engine reports its container running and healthy. The controller publishes the record as soon
as it marks replicas terminating (before it blocks starting containers), keeps listing a replica as
`terminating` until its container is removed (so a stopping container never counts as ready again), and
drains for `drain` seconds, long enough for an observer's refresh (the lab's 50 ms) and the load
generator's in-flight requests, before it sends SIGTERM.

The process that owns the run (`owns_run=True`, the lab) creates the run's network and, at teardown,
removes every container and the network carrying the run's label.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import math
import os
import secrets
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mlopslab.envs.base import (
    ControlledEnvironment,
    DeploymentSpec,
    Emit,
    Endpoint,
    LiveState,
    Replica,
    ReplicaDriver,
    ReplicaView,
    Strategy,
)
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
    base_image_from_env,
)
from mlopslab.envs.local import ModelResolver

# The health check runs inside the container: python3 without site (-S) answers in ~15 ms.
HEALTH_PROBE = ("import socket,sys\n"
                f"s=socket.create_connection(('127.0.0.1',{SERVER_PORT}),1)\n"
                "s.sendall(b'GET /ping HTTP/1.0\\r\\n\\r\\n')\n"
                "sys.exit(0 if s.recv(16)[9:12]==b'200' else 1)\n")
MIN_HEALTH_INTERVAL = 0.1   # seconds; the engine execs the probe this often per container at most
HEARTBEAT_PERIOD = 1.0      # seconds between the run owner's heartbeats


def network_name(run_id: str) -> str:
    return f"mlopslab-{run_id}"


# --- the live object's record -------------------------------------------------------------------------------
def spec_to_dict(spec: DeploymentSpec) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(spec).items() if k != "source"}


def spec_from_dict(data: dict[str, Any]) -> DeploymentSpec:
    return DeploymentSpec(**{**data, "strategy": Strategy(**data["strategy"])})


class StateStore:
    """Per-lane records shared by every process of a run: the live spec (+ generation) and its status."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(PermissionError):
            os.chmod(self.dir, 0o777)  # the agent container runs as uid 10001
        self._cache: dict[Path, tuple[tuple[int, int, int], Any]] = {}

    @contextlib.contextmanager
    def _locked(self) -> Any:
        path = self.dir / ".lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            with contextlib.suppress(PermissionError):
                os.fchmod(fd, 0o666)
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read(self, path: Path) -> Any:
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)  # a write is a new inode (os.replace)
        cached = self._cache.get(path)
        if cached and cached[0] == stamp:
            return cached[1]
        try:
            data = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        self._cache[path] = (stamp, data)
        return data

    def _write(self, path: Path, data: Any) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=f".{path.name}.")
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle)
        os.chmod(tmp, 0o666)
        os.replace(tmp, path)

    def read_spec(self, lane: str) -> tuple[int, DeploymentSpec | None]:
        data = self._read(self.dir / f"{lane}.spec.json")
        return (0, None) if data is None else (data["generation"], spec_from_dict(data["spec"]))

    def write_spec(self, spec: DeploymentSpec, by: str) -> int:
        with self._locked():
            generation = self.read_spec(spec.lane)[0] + 1
            self._write(self.dir / f"{spec.lane}.spec.json",
                        {"generation": generation, "by": by, "spec": spec_to_dict(spec)})
        return generation

    def heartbeat(self) -> None:
        path = self.dir / "heartbeat"
        path.touch(mode=0o666)
        os.utime(path)

    def heartbeat_age(self) -> float | None:
        """Seconds since the run's owner last beat (None: it never did)."""
        try:
            return time.time() - (self.dir / "heartbeat").stat().st_mtime
        except FileNotFoundError:
            return None

    def read_status(self, lane: str) -> dict[str, Any]:
        return self._read(self.dir / f"{lane}.status.json") or {}

    def write_status(self, lane: str, status: dict[str, Any]) -> None:
        self._write(self.dir / f"{lane}.status.json", status)


# --- replicas as containers ----------------------------------------------------------------------------------
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
                     "--warmup", str(spec.warmup)],
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
    """A spec's template as a container label: replicas are 'updated' when theirs matches, as in base.py."""
    return "/".join(map(str, template))


# --- the environment -----------------------------------------------------------------------------------------
class DockerEnvironment(ControlledEnvironment):
    kind = "docker"
    # A terminating replica stays out of Endpoints this long before SIGTERM. Longer than the local
    # environment's 0.4 s: observers in other processes (the lab, for the agent's lane) learn it through
    # the status record and their own refresh, then the load generator finishes its in-flight requests.
    drain = 1.0

    def __init__(self, resolve_model: ModelResolver, emit: Emit, log_dir: Path | None = None, *, run_id: str,
                 base_image: str | None = None, state_dir: Path | None = None, client: Any = None,
                 owns_run: bool = True, network: str | None = None, actor: str = "lab") -> None:
        import docker

        self.client = client or docker.from_env()
        self.run_id = run_id
        self.base_image = base_image or base_image_from_env()
        self.owns_run = owns_run
        self.actor = actor
        if state_dir is None:
            state_dir = (log_dir / "docker-state") if log_dir else Path(tempfile.mkdtemp(prefix="mlopslab-docker-"))
        self.store = StateStore(state_dir)
        self.network = network or network_name(run_id)
        if owns_run:
            self._ensure_network()
        elif not self._network_exists():
            self.network = None
        self.images = ModelImages(self.client, self.base_image, resolve_model, emit, run_id)
        super().__init__(ContainerDriver(self.client, run_id, self.images, network=self.network, log_dir=log_dir),
                         emit)
        self.driver: ContainerDriver
        self._generation: dict[str, int] = {}
        self._published: dict[str, Any] = {}
        self._stopping: dict[str, tuple[str, str]] = {}  # replica being stopped -> (lane, version)
        self._torn_down = False
        if owns_run:
            threading.Thread(target=self._beat, name="docker-heartbeat", daemon=True).start()

    def _beat(self) -> None:
        """Touches <state_dir>/heartbeat every second while the run's owner lives: an agent container that
        sees it go stale (the lab was SIGKILLed) removes the run's containers, itself last."""
        while not self._stop.is_set():
            with contextlib.suppress(OSError):
                self.store.heartbeat()
            self._stop.wait(HEARTBEAT_PERIOD)

    @property
    def state_dir(self) -> Path:
        return self.store.dir

    def _network_exists(self) -> bool:
        return bool(self.client.networks.list(names=[self.network]))

    def _ensure_network(self) -> None:
        if not self._network_exists():
            self.client.networks.create(self.network, driver="bridge",
                                        labels={LABEL_RUN: self.run_id, LABEL_ROLE: "network"})

    def controls(self, lane: str) -> bool:
        return lane in self._threads

    def credential(self) -> str:
        return ("the Docker engine's API (unix socket /var/run/docker.sock: root-equivalent on the host), "
                f"held by the {self.actor} process that applies")

    # --- the port -----------------------------------------------------------------------------------------
    def apply(self, spec: DeploymentSpec) -> None:
        if self._stop.is_set():
            raise RuntimeError("environment is torn down")
        self.images.ensure(spec.model, spec.version, spec.lane)  # the CI/agent builds and tags, then deploys
        with self._lock:
            self._generation[spec.lane] = self.store.write_spec(spec, by=self.actor)
            super().apply(spec)

    def observe(self, lane: str) -> LiveState:
        if self.controls(lane):
            return super().observe(lane)
        return self._observe_engine(lane)

    def endpoints(self, lane: str) -> list[Endpoint]:
        if self.controls(lane):
            return super().endpoints(lane)
        return [Endpoint(lane, r.name, r.version, r.url) for r in self._observe_engine(lane).replicas
                if r.state == "ready"]

    def change_live(self, lane: str, *, replicas: int | None = None, version: str | None = None) -> DeploymentSpec:
        if self.controls(lane):
            with self._lock:
                edited = super().change_live(lane, replicas=replicas, version=version)
                self._generation[lane] = self.store.write_spec(edited, by=f"{self.actor}:manual")
            return edited
        spec = self.store.read_spec(lane)[1]
        if spec is None:
            raise KeyError(f"lane {lane!r} has no live deployment")
        edited = replace(spec, replicas=spec.replicas if replicas is None else replicas,
                         version=spec.version if version is None else version)
        self.store.write_spec(edited, by=f"{self.actor}:manual")
        return edited

    def kill_replica(self, lane: str, name: str | None = None) -> str | None:
        if self.controls(lane):
            return super().kill_replica(lane, name)
        for seen in sorted(self.driver.snapshot(0)[1].values(), key=lambda s: s.replica):
            if seen.lane == lane and seen.running and (name is None or seen.replica == name):
                self.driver.kill(Container(seen.id, seen.name, 0.0))
                return seen.replica
        return None

    def teardown(self) -> None:
        if self._torn_down:
            return
        self._torn_down = True
        super().teardown()
        from mlopslab.envs import cleanup

        if self.owns_run:
            cleanup.remove_run(self.client, self.run_id)
        else:
            for lane in list(self._threads):
                cleanup.remove_run(self.client, self.run_id, lane=lane, networks=False, role="replica")

    # --- the controller, level-based on the shared record -------------------------------------------------
    def reconcile(self, lane: str) -> None:
        generation, recorded = self.store.read_spec(lane)
        with self._lock:
            if recorded is not None and generation > self._generation.get(lane, 0):
                self._generation[lane] = generation
                if recorded != self._specs.get(lane):
                    self._specs[lane] = recorded
                    self._status[lane] = self._new_status()
        super().reconcile(lane)
        self._publish_status(lane)

    def _start_replica(self, lane: str, spec: DeploymentSpec, now: float) -> None:
        # Starting a container blocks for a while: publish first, so observers in other processes take the
        # replicas this pass marked terminating out of Endpoints now, not after the start.
        self._publish_status(lane)
        super()._start_replica(lane, spec, now)

    def _stop_later(self, replica: Replica) -> None:
        """Stops off the control loop; the container stays `terminating` in the status until it is gone."""
        handle: Container = replica.handle
        with self._lock:
            self._stopping[replica.name] = (handle.lane, replica.version)

        def stop() -> None:
            try:
                self.driver.stop(handle, self.grace)
            finally:
                with self._lock:
                    self._stopping.pop(replica.name, None)

        thread = threading.Thread(target=stop, name=f"stop-{replica.name}", daemon=True)
        thread.start()
        with self._lock:
            self._stoppers = [t for t in self._stoppers if t.is_alive()] + [thread]

    def _publish_status(self, lane: str) -> None:
        state = super().observe(lane)
        with self._lock:
            stopping = [ReplicaView(name, version, "terminating", "")
                        for name, (of, version) in self._stopping.items() if of == lane]
        status = {"generation": self._generation.get(lane, 0), "condition": state.condition,
                  "updated": state.updated, "ready": state.ready, "controller": self.actor,
                  "replicas": [dataclasses.asdict(r) for r in (*state.replicas, *stopping)]}
        if status != self._published.get(lane):
            self.store.write_status(lane, status)
            self._published[lane] = status

    def _observe_engine(self, lane: str) -> LiveState:
        generation, spec = self.store.read_spec(lane)
        status = self.store.read_status(lane)
        recorded = {r["name"]: r["state"] for r in status.get("replicas", [])}
        views, updated = [], 0
        for seen in sorted(self.driver.lane_containers(lane), key=lambda s: s.replica):
            if not seen.running:
                continue
            # The controller's word first: terminating (draining or stopping) is never ready again, and a
            # container the record does not (yet) list is starting, whatever its health.
            said = recorded.get(seen.replica)
            state = ("terminating" if said == "terminating" else
                     "ready" if said == "ready" and seen.health == "healthy" else "starting")
            views.append(ReplicaView(seen.replica, seen.version, state, seen.url))
            # by template, like the controller in base.py: a warm-up change rolls replicas too
            updated += bool(spec and seen.template == template_label(spec.template) and state != "terminating")
        ready = sum(1 for r in views if r.state == "ready")
        state = LiveState(lane, spec, tuple(views), updated, ready)
        if status.get("generation") == generation and status.get("condition") == "Failed":
            condition = "Failed"
        else:
            condition = "Available" if state.complete else "Progressing"
        return replace(state, condition=condition)
