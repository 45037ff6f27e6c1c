"""A progressive pull lane on Docker: the agent declares the lane's target in the engine; the rollout
controller beside the engine watches it and runs the lane's replica groups, as Flagger runs beside Argo CD.

The declared object. Docker has no API server to hold a Deployment the way Kubernetes does, so the agent
records what it applies for a lane with a progressive strategy (canary, blue-green, shadow, A/B) in the
engine itself: a data-only container (created, never started; Docker's old pattern for state kept beside
the engine) named `mlopslab-<run>-declared-<lane>-<generation>`, labelled `mlopslab.role=declared`, with
the spec as JSON in its `mlopslab.spec` label and who wrote it in `mlopslab.by`. Labels cannot change, so
each write is a new container with the next generation; the older ones are removed after it. It runs as
uid 10001 with no network and every capability dropped, and carries the run's label, so clean-up by label
and the orphaned agent's reaper remove it with the rest.

Who does what. The agent holds the engine's socket (the credential of pull delivery) and, for such a lane,
builds the version's image and writes the declared object instead of converging replicas itself
(`DeclaringEnvironment`). The lab's rollout controller (strategies/controller.py, `Rollouts`) learns the
target from the engine alone: `DeclaredTargets` polls the run's declared objects (one list call every
0.2 s, level-based: the newest generation wins, no event is trusted) and hands each new generation to the
controller as the lane's target; it then runs the primary group (the lane) and the candidate group
(`<lane>.canary`) and steers the router, as for a push lane. The agent never talks to the lab, and the lab
never applies on the agent's behalf: without the agent's write nothing changes.

What is live for a progressive pull lane. The declared object, as Argo CD compares git with the objects it
applied (a Rollout or Flagger's target Deployment), not with the pods a rollout controller made from
them. The agent's `observe(lane)` answers with the declared spec and the replicas of both groups as the
engine lists them (Available once they are the declared number, of the declared version, all ready). A
person's manual change of such a lane edits the declared object (the lab's `change_live` goes to
`DeclaredTargets.edit`, like `kubectl edit` of the target). When the controller sees the edit it takes it
as the target (a new version starts an analysis, as Flagger would; new replicas resize the groups); the
agent, seeing the declared object differ from git, writes it back (self-heal, `live_reverted`), possibly
before the controller's next look. With `self_heal: false` the edit stays and the lane is OutOfSync. The
rollout's phase (Failed after a rollback) is the controller's: the lab's sync verdict shows it (Degraded).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from mlopslab.envs.base import DeploymentSpec, Emit, Endpoint, Environment, LiveState
from mlopslab.envs.docker_state import spec_from_dict, spec_to_dict
from mlopslab.envs.images import LABEL_LANE, LABEL_ROLE, LABEL_RUN, SERVER_USER

ROLE = "declared"
LABEL_SPEC = "mlopslab.spec"
LABEL_GENERATION = "mlopslab.generation"
LABEL_BY = "mlopslab.by"


class DeclaredStore:
    """Each lane's declared spec as labelled data-only containers of the run, newest generation first."""

    def __init__(self, client: Any, run_id: str, image: str) -> None:
        self.client = client
        self.run_id = run_id
        self.image = image   # any image present: the run's base (the container never starts)

    def _listed(self, lane: str) -> list[dict[str, Any]]:
        labels = [f"{LABEL_RUN}={self.run_id}", f"{LABEL_ROLE}={ROLE}", f"{LABEL_LANE}={lane}"]
        listed = self.client.api.containers(all=True, filters={"label": labels})
        return sorted(listed, key=lambda c: -int((c.get("Labels") or {}).get(LABEL_GENERATION, 0)))

    def read(self, lane: str) -> tuple[int, DeploymentSpec | None, str]:
        """(generation, spec, who wrote it); (0, None, "") when nothing is declared for the lane."""
        for container in self._listed(lane):
            labels = container.get("Labels") or {}
            with contextlib.suppress(KeyError, TypeError, ValueError):
                return int(labels[LABEL_GENERATION]), spec_from_dict(json.loads(labels[LABEL_SPEC])), \
                    labels.get(LABEL_BY, "")
        return 0, None, ""

    def write(self, spec: DeploymentSpec, by: str) -> int:
        """Declares `spec` as the lane's target; returns its generation."""
        import docker.errors

        for _ in range(5):   # two writers at once: one gets the name, the other takes the next generation
            older = self._listed(spec.lane)
            generation = 1 + max((int((c.get("Labels") or {}).get(LABEL_GENERATION, 0)) for c in older), default=0)
            labels = {LABEL_RUN: self.run_id, LABEL_ROLE: ROLE, LABEL_LANE: spec.lane,
                      LABEL_GENERATION: str(generation), LABEL_BY: by,
                      LABEL_SPEC: json.dumps(spec_to_dict(spec), separators=(",", ":"))}
            try:
                self.client.api.create_container(
                    self.image, command=["true"], name=f"mlopslab-{self.run_id}-declared-{spec.lane}-{generation}",
                    user=SERVER_USER, labels=labels, network_disabled=True,
                    host_config=self.client.api.create_host_config(
                        network_mode="none", cap_drop=["ALL"], read_only=True, security_opt=["no-new-privileges"]))
            except docker.errors.APIError as exc:
                if exc.status_code == 409:   # the name is taken: someone wrote this generation first
                    continue
                raise
            for container in older:
                with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                    self.client.api.remove_container(container["Id"], force=True)
            return generation
        raise RuntimeError(f"could not declare lane {spec.lane!r}: its generation kept changing")

    def remove(self, lane: str) -> None:
        import docker.errors

        for container in self._listed(lane):
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                self.client.api.remove_container(container["Id"], force=True)


class DeclaringEnvironment(Environment):
    """The agent's environment: a progressive spec is declared in the engine (after building its image);
    any other goes to the Docker environment, whose controller converges it in the agent."""

    def __init__(self, inner: Any, store: DeclaredStore, actor: str = "agent") -> None:
        self.inner = inner   # a DockerEnvironment that does not own the run
        self.store = store
        self.actor = actor

    def apply(self, spec: DeploymentSpec) -> None:
        if spec.progressive:
            self.inner.images.ensure(spec.model, spec.version, spec.lane)   # the agent builds and tags
            self.store.write(spec, by=self.actor)
            return
        if self.store.read(spec.lane)[1] is not None:   # the lane's strategy became rolling or recreate
            self.store.remove(spec.lane)
        self.inner.apply(spec)

    def observe(self, lane: str) -> LiveState:
        declared = self.store.read(lane)[1]
        if declared is None:
            return self.inner.observe(lane)
        views = tuple(r for group in self._groups(lane) for r in self.inner.observe(group).replicas)
        updated = sum(1 for r in views if r.version == declared.version and r.state != "terminating")
        live = LiveState(lane, declared, views, updated, sum(1 for r in views if r.state == "ready"))
        return replace(live, condition="Available" if live.complete else "Progressing")

    def _groups(self, lane: str) -> list[str]:
        """The lane's replica groups as the engine lists them: the primary and any `<lane>.<group>`."""
        seen = self.inner.driver.snapshot(0)[1].values()
        return sorted({lane} | {s.lane for s in seen if s.lane.startswith(lane + ".")})

    def endpoints(self, lane: str) -> list[Endpoint]:
        return self.inner.endpoints(lane)

    def change_live(self, lane: str, *, replicas: int | None = None, version: str | None = None) -> DeploymentSpec:
        declared = self.store.read(lane)[1]
        if declared is None:
            return self.inner.change_live(lane, replicas=replicas, version=version)
        edited = replace(declared, replicas=declared.replicas if replicas is None else replicas,
                         version=declared.version if version is None else version)
        self.store.write(edited, by=f"{self.actor}:manual")
        return edited

    def kill_replica(self, lane: str, name: str | None = None) -> str | None:
        return self.inner.kill_replica(lane, name)

    def teardown(self) -> None:
        self.inner.teardown()

    def credential(self) -> str:
        return self.inner.credential()


class DeclaredTargets:
    """Lab side, beside the engine: watches one lane's declared object and hands each new generation to the
    rollout controller (`adopt`: `Rollouts.apply`) as the lane's target."""

    period = 0.2

    def __init__(self, store: DeclaredStore, lane: str, adopt: Callable[[DeploymentSpec], None], emit: Emit) -> None:
        self.store = store
        self.lane = lane
        self.adopt = adopt
        self.emit = emit
        self.seen = 0   # the generation adopted last
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"declared-{lane}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def edit(self, spec: DeploymentSpec) -> None:
        """A person's change of the lane (the lab's `change_live`): an edit of the declared object, like
        `kubectl edit` of the target, bypassing the env repo; the agent owns the object and may revert it."""
        self.store.write(spec, by="lab:manual")

    def _loop(self) -> None:
        last_error, announced = "", 0
        while not self._stop.wait(self.period):
            try:
                generation, spec, by = self.store.read(self.lane)
                if spec is not None and generation != self.seen:
                    if generation != announced:
                        announced = generation
                        self.emit("target_declared", self.lane, version=spec.version, replicas=spec.replicas,
                                  generation=generation, by=by, revision=spec.revision)
                    self.adopt(spec)
                    self.seen = generation
                last_error = ""
            except Exception as exc:   # keep watching; report each new problem once
                message = f"declared target: {exc!r}"
                if message != last_error and not self._stop.is_set():
                    self.emit("error", self.lane, message=message)
                last_error = message
