"""The Docker environment: replicas are model-server containers on a real engine, rolled like a Deployment.

Replicas. One image per model version (`images.ModelImages`), one container per replica, started by
`ContainerDriver` (envs/containers.py) through the Docker SDK: labelled `mlopslab.run` / `mlopslab.lane` / `mlopslab.version`
/ `mlopslab.replica`, attached to the run's own bridge network, port 8080 published on 127.0.0.1 only,
user 10001, read-only root filesystem, every capability dropped, no-new-privileges. Readiness comes
from the container's health check (a Docker HEALTHCHECK that GETs /ping inside the container), read
from the engine, so every process holding the socket sees the same readiness. The rolling update is
`ControlledEnvironment`'s (envs/controller.py), the one the local environment uses.

The live object. Docker has no API server, so the Deployment object lives in a small per-lane record
beside the engine (`StateStore`, envs/docker_state.py: `<state_dir>/<lane>.spec.json`, written atomically under a file lock,
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
*and* the engine reports its container running (and not unhealthy: replicas carry no engine health check, the
controller probes them over HTTP). The controller publishes the record as soon
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
import tempfile
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from mlopslab.envs.base import DeploymentSpec, Emit, Endpoint, LiveState, ReplicaView
from mlopslab.envs.controller import ControlledEnvironment
from mlopslab.envs.containers import Container, ContainerDriver, Seen, template_label
from mlopslab.envs.docker_state import StateStore, spec_from_dict, spec_to_dict
from mlopslab.envs.images import LABEL_ROLE, LABEL_RUN, ModelImages, base_image_from_env
from mlopslab.envs.local import ModelResolver

__all__ = ["Container", "ContainerDriver", "DockerEnvironment", "Seen", "StateStore", "network_name",
           "spec_from_dict", "spec_to_dict", "template_label"]

HEARTBEAT_PERIOD = 1.0      # seconds between the run owner's heartbeats


def network_name(run_id: str) -> str:
    return f"mlopslab-{run_id}"


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
        self._published: dict[str, Any] = {}
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

    def credential(self) -> str:
        return ("the Docker engine's API (unix socket /var/run/docker.sock: root-equivalent on the host), "
                f"held by the {self.actor} process that applies")

    # --- the port -----------------------------------------------------------------------------------------
    def apply(self, spec: DeploymentSpec) -> None:
        if self._stop.is_set():
            raise RuntimeError("environment is torn down")
        self.images.ensure(spec.model, spec.version, spec.lane)  # the CI/agent builds and tags, then deploys
        super().apply(spec)   # which records it (`record`)

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
            return super().change_live(lane, replicas=replicas, version=version)   # recorded too
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

    # --- the controller's hooks: the live object and its status are records beside the engine -------------
    def record(self, spec: DeploymentSpec, *, by_hand: bool = False) -> int:
        return self.store.write_spec(spec, by=f"{self.actor}:manual" if by_hand else self.actor)

    def recorded(self, lane: str) -> tuple[int, DeploymentSpec | None]:
        """The spec record, re-read on every pass: a `change_live` by another process is taken up."""
        return self.store.read_spec(lane)

    def publish(self, lane: str) -> None:
        """Writes the lane's status record (when it changed); a container being stopped stays `terminating`
        in it until it is gone, so no observer counts it ready again."""
        state = super().observe(lane)
        stopping = self.stopping(lane)
        status = {"generation": self.generation(lane), "condition": state.condition,
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
                     "ready" if said == "ready" and seen.health in ("healthy", "none") else "starting")
            views.append(ReplicaView(seen.replica, seen.version, state, seen.url))
            # by template, like the controller (envs/controller.py): a warm-up change rolls replicas too
            updated += bool(spec and seen.template == template_label(spec.template) and state != "terminating")
        ready = sum(1 for r in views if r.state == "ready")
        state = LiveState(lane, spec, tuple(views), updated, ready)
        if status.get("generation") == generation and status.get("condition") == "Failed":
            condition = "Failed"
        else:
            condition = "Available" if state.complete else "Progressing"
        return replace(state, condition=condition)
