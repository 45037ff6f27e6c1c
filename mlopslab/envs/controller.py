"""The rolling-update controller that local processes and Docker share: one thread per lane converges its
replicas to the live Deployment object, through the environment's `ReplicaDriver`.

It follows Kubernetes Deployment semantics: maxSurge/maxUnavailable (25 % by default, surge rounded up,
unavailability rounded down, never both zero), readiness gates traffic, a replica that dies is replaced,
and a rollout that makes no progress within progressDeadlineSeconds is marked failed. Progress is what
Kubernetes counts: more updated replicas, more of them ready, fewer old ones — a replica that crashes and
is started again is no progress. A replica that dies before it was ever ready is restarted after a
back-off that doubles up to `crash_backoff_cap` (CrashLoopBackOff), so a version that cannot start costs
the old replicas, which keep serving, almost nothing. What to start and stop is the pure plan of
envs/rollout.py; this module carries it out (processes, readiness, events).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from mlopslab.envs import rollout
from mlopslab.envs.base import DeploymentSpec, Emit, Endpoint, Environment, LiveState, ReplicaDriver, ReplicaView


@dataclass
class Replica:
    """A pod: one model-server instance of one version."""

    name: str
    version: str
    handle: Any
    url: str = ""
    template: tuple = ()
    state: str = "starting"      # starting -> ready -> terminating -> gone
    started_at: float = 0.0
    ready_at: float | None = None
    next_probe: float = 0.0
    stop_at: float | None = None
    stop_reason: str = "rollout"  # why it is terminating: rollout | scale_down | manual_change



class ControlledEnvironment(Environment):
    """An Environment whose replicas are converged by one controller thread per lane.

    A concrete environment gives it a `ReplicaDriver` and, where the live object is kept outside this
    process (Docker's state records), three hooks: `record(spec)` (write the live object there, on apply
    and on a person's edit), `recorded(lane)` (read it back with its generation: a controller takes a newer
    one, as a Deployment controller takes `kubectl edit`) and `publish(lane)` (tell observers elsewhere
    what this pass decided). It never overrides a step of the controller.
    """

    tick = 0.05
    drain = 0.4      # seconds a replica stays out of Endpoints before it is asked to stop
    grace = 2.0      # SIGTERM -> SIGKILL
    crash_backoff = 0.5       # seconds before restarting after the first crash at start; doubles
    crash_backoff_cap = 8.0   # Kubernetes: 10 s doubling to 5 min; the lab's runs are minutes long

    def __init__(self, driver: ReplicaDriver, emit: Emit, clock: Callable[[], float] = time.monotonic) -> None:
        self.driver = driver
        self.emit = emit
        self.clock = clock
        self._lock = threading.RLock()
        self._specs: dict[str, DeploymentSpec] = {}
        self._by_template: dict[tuple[str, tuple], DeploymentSpec] = {}
        self._replicas: dict[str, list[Replica]] = {}
        self._status: dict[str, dict[str, Any]] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._stoppers: list[threading.Thread] = []
        self._stopping: dict[str, tuple[str, str]] = {}   # replica still being stopped -> (lane, version)
        self._generation: dict[str, int] = {}            # per lane: the recorded live object taken last
        self._stop = threading.Event()
        self._counter = 0

    # --- the port ---------------------------------------------------------------------------------
    def apply(self, spec: DeploymentSpec) -> None:
        with self._lock:
            if self._stop.is_set():
                raise RuntimeError("environment is torn down")
            self._generation[spec.lane] = self.record(spec)
            previous = self._specs.get(spec.lane)
            self._specs[spec.lane] = spec
            self._by_template[(spec.lane, spec.template)] = spec   # to start old replicas in a scaling event
            if previous is None or spec.diff(previous):
                self._status[spec.lane] = self._new_status()
                # template and replica count changed at once: the Deployment controller scales first
                self._status[spec.lane]["scaling"] = (previous is not None and previous.template != spec.template
                                                      and previous.replicas != spec.replicas)
            if spec.lane not in self._threads:
                self._replicas.setdefault(spec.lane, [])
                thread = threading.Thread(target=self._control_loop, args=(spec.lane,),
                                          name=f"controller-{spec.lane}", daemon=True)
                self._threads[spec.lane] = thread
                thread.start()

    def observe(self, lane: str) -> LiveState:
        with self._lock:
            spec = self._specs.get(lane)
            replicas = self._replicas.get(lane, [])
            views = tuple(ReplicaView(r.name, r.version, r.state, r.url) for r in replicas)
            status = self._status.get(lane, {})
            updated = sum(1 for r in replicas if spec and r.template == spec.template and r.state != "terminating")
            ready = sum(1 for r in replicas if r.state == "ready")
            state = LiveState(lane, spec, views, updated, ready)
            condition = "Failed" if status.get("failed") else ("Available" if state.complete else "Progressing")
            return replace(state, condition=condition)

    def endpoints(self, lane: str) -> list[Endpoint]:
        with self._lock:
            return [Endpoint(lane, r.name, r.version, r.url)
                    for r in self._replicas.get(lane, []) if r.state == "ready"]

    def change_live(self, lane: str, *, replicas: int | None = None, version: str | None = None) -> DeploymentSpec:
        with self._lock:
            spec = self._specs.get(lane)
            if spec is None:
                raise KeyError(f"lane {lane!r} has no live deployment")
            edited = replace(spec, replicas=spec.replicas if replicas is None else replicas,
                             version=spec.version if version is None else version)
            self._specs[lane] = edited
            self._status[lane] = self._new_status(cause="manual_change")
            self._generation[lane] = self.record(edited, by_hand=True)
            return edited

    def kill_replica(self, lane: str, name: str | None = None) -> str | None:
        with self._lock:
            candidates = [r for r in self._replicas.get(lane, []) if r.state in ("ready", "starting")
                          and (name is None or r.name == name)]
            if not candidates:
                return None
            victim = candidates[0]
        self.driver.kill(victim.handle)
        return victim.name

    def teardown(self) -> None:
        self._stop.set()
        for thread in list(self._threads.values()):
            thread.join(timeout=5)
        with self._lock:
            doomed = [r for replicas in self._replicas.values() for r in replicas]
            for replicas in self._replicas.values():
                replicas.clear()
        stoppers = [threading.Thread(target=self.driver.stop, args=(r.handle, 1.0), daemon=True) for r in doomed]
        for thread in stoppers:
            thread.start()
        for thread in stoppers + self._stoppers:
            thread.join(timeout=10)
        self.driver.close()

    def controls(self, lane: str) -> bool:
        """Whether this process runs the lane's controller (it applied the lane)."""
        return lane in self._threads

    def generation(self, lane: str) -> int:
        """The generation of the recorded live object this controller converges to (0: none recorded)."""
        with self._lock:
            return self._generation.get(lane, 0)

    def stopping(self, lane: str) -> list[ReplicaView]:
        """Replicas out of the lane whose driver is still stopping them (terminating until gone)."""
        with self._lock:
            return [ReplicaView(name, version, "terminating", "")
                    for name, (of, version) in self._stopping.items() if of == lane]

    # --- the hooks a concrete environment may fill in ---------------------------------------------------
    def record(self, spec: DeploymentSpec, *, by_hand: bool = False) -> int:
        """Keeps the live object where other processes read it (an apply, or a person's edit); returns
        its generation there. Here it lives in this process only: 0."""
        return 0

    def recorded(self, lane: str) -> tuple[int, DeploymentSpec | None]:
        """(generation, live object) as a store outside this process holds it; (0, None): none is kept."""
        return 0, None

    def publish(self, lane: str) -> None:
        """Called before a replica starts (which may block) and after every pass: observers in other
        processes learn the lane's status from what this writes. Here observers share the memory: nothing."""

    # --- the controller -----------------------------------------------------------------------------
    def _new_status(self, cause: str | None = None) -> dict[str, Any]:
        """A rollout's bookkeeping: when it began and last progressed, the best progress seen so far
        (updated, updated and ready, minus old), crashes at start in a row and when to restart, and
        what started it when not the spec (`manual_change`: replicas it stops are stopped for that)."""
        now = self.clock()
        return {"since": now, "progress": now, "failed": False, "done": False, "best": None,
                "crashes": 0, "restart_at": 0.0, "last_crash": "", "cause": cause}

    def _control_loop(self, lane: str) -> None:
        last_error, backoff = "", self.tick
        while not self._stop.is_set():
            try:
                self.reconcile(lane)
                last_error, backoff = "", self.tick
            except Exception as exc:  # keep converging with backoff; report each new problem once
                message = f"controller: {exc!r}"
                if message != last_error:
                    self.emit("error", lane, message=message)
                last_error, backoff = message, min(5.0, max(0.5, backoff * 2))
            self._stop.wait(backoff)

    def reconcile(self, lane: str) -> None:
        """One level-based pass: take a newer recorded live object, probe, replace the dead, roll towards
        the live spec, then publish."""
        self._take_recorded(lane)
        now = self.clock()
        self._probe(lane, now)
        with self._lock:
            spec = self._specs[lane]
            replicas = self._replicas[lane]
            status = self._status[lane]
            step = rollout.plan(spec.replicas, *spec.strategy.resolve(spec.replicas), spec.template, replicas,
                                hold_starts=now < status["restart_at"],   # CrashLoopBackOff
                                scaling=status.get("scaling", False), recreate=spec.strategy.type == "Recreate")
            if status.get("scaling") and not (step.start_old and now < status["restart_at"]):
                status["scaling"] = False   # one scaling step (unless a back-off holds it), then the rolling update
            to_start, doomed, scaled = step.start, list(step.stop), list(step.scale_down)
            old_spec = self._by_template.get((lane, step.start_old[0])) if step.start_old else None
            for replica in doomed + scaled:
                replica.state = "terminating"
                replica.stop_at = now + self.drain
                # a person's live edit, or what the spec asks: a new version (rollout) or fewer replicas
                replica.stop_reason = status.get("cause") or ("scale_down" if replica in scaled else "rollout")
            progress = step.progress
            best = status["best"]
            if best is None or any(p > b for p, b in zip(progress, best)):
                status["best"] = progress if best is None else tuple(map(max, progress, best))
                status["progress"] = now
        for replica in doomed + scaled:   # out of the endpoints now; stopped once drained
            self.emit("replica_terminating", lane, replica=replica.name, version=replica.version,
                      reason=replica.stop_reason)
        for _ in range(max(0, to_start)):
            self._start_replica(lane, spec, now)
        for _ in range(step.start_old[1] if old_spec is not None else 0):   # a scaling event: old ones first
            self._start_replica(lane, old_spec, now)
        self._finish_terminations(lane, now)
        self._report(lane, spec, now)
        self.publish(lane)

    def _take_recorded(self, lane: str) -> None:
        generation, recorded = self.recorded(lane)   # outside the lock: a store may be files
        with self._lock:
            if recorded is not None and generation > self._generation.get(lane, 0):
                self._generation[lane] = generation
                if recorded != self._specs.get(lane):
                    self._specs[lane] = recorded
                    self._status[lane] = self._new_status()

    def _start_replica(self, lane: str, spec: DeploymentSpec, now: float) -> None:
        self.publish(lane)   # before a start that may block: observers take this pass's terminating out now
        with self._lock:
            self._counter += 1
            name = f"{lane}-v{spec.version}-{self._counter}"
        handle, url = self.driver.start(spec, name)
        replica = Replica(name, spec.version, handle, url, spec.template, started_at=now, next_probe=now)
        with self._lock:
            self._replicas[lane].append(replica)
        self.emit("replica_started", lane, replica=name, version=spec.version)

    def _probe(self, lane: str, now: float) -> None:
        with self._lock:
            replicas = list(self._replicas[lane])
            period = self._specs[lane].readiness_period
        for replica in replicas:
            if replica.state == "terminating":
                continue
            if not self.driver.alive(replica.handle):
                self._on_death(lane, replica, now)
                continue
            if replica.state == "starting" and now >= replica.next_probe:
                replica.next_probe = now + period
                if self.driver.probe(replica.url):
                    with self._lock:
                        replica.state, replica.ready_at = "ready", self.clock()
                        status = self._status[lane]
                        if replica.template == self._specs[lane].template:
                            status["crashes"], status["restart_at"] = 0, 0.0
                    self.emit("replica_ready", lane, replica=replica.name, version=replica.version,
                              startup=round(replica.ready_at - replica.started_at, 3))

    def _on_death(self, lane: str, replica: Replica, now: float) -> None:
        """A replica died: it is replaced; one that was never ready crashed at start, and its
        replacement waits out a back-off that doubles with each crash in a row."""
        words = self.driver.last_words(replica.handle)
        fields: dict[str, Any] = {"reason": "died"}
        with self._lock:
            if replica in self._replicas[lane]:
                self._replicas[lane].remove(replica)
            status = self._status[lane]
            if replica.state == "starting" and replica.template == self._specs[lane].template:
                status["crashes"] += 1
                backoff = min(self.crash_backoff_cap, self.crash_backoff * 2.0 ** (status["crashes"] - 1))
                status["restart_at"], status["last_crash"] = now + backoff, words
                fields = {"reason": "crashed", "crashes": status["crashes"], "backoff": round(backoff, 3)}
        self.emit("replica_stopped", lane, replica=replica.name, version=replica.version, **fields,
                  **({"last_words": words} if words else {}))
        self._stop_later(lane, replica)

    def _finish_terminations(self, lane: str, now: float) -> None:
        with self._lock:
            due = [r for r in self._replicas[lane] if r.state == "terminating" and r.stop_at is not None
                   and r.stop_at <= now]
            for replica in due:
                self._replicas[lane].remove(replica)
        for replica in due:
            self._stop_later(lane, replica)
            self.emit("replica_stopped", lane, replica=replica.name, version=replica.version,
                      reason=replica.stop_reason)

    def _stop_later(self, lane: str, replica: Replica) -> None:
        """Stops off the control loop; until the driver is done the replica is listed by `stopping`."""
        with self._lock:
            self._stopping[replica.name] = (lane, replica.version)

        def stop() -> None:
            try:
                self.driver.stop(replica.handle, self.grace)
            finally:
                with self._lock:
                    self._stopping.pop(replica.name, None)

        thread = threading.Thread(target=stop, name=f"stop-{replica.name}", daemon=True)
        thread.start()
        with self._lock:
            self._stoppers = [t for t in self._stoppers if t.is_alive()] + [thread]

    def _report(self, lane: str, spec: DeploymentSpec, now: float) -> None:
        state = self.observe(lane)
        with self._lock:
            status = self._status[lane]
            if state.complete and not status["done"]:
                status["done"] = True
                done = True
            else:
                done = False
            failed = (not state.complete and not status["failed"]
                      and now - status["progress"] > spec.strategy.progress_deadline)
            if failed:
                status["failed"] = True
        if done:
            self.emit("rollout_done", lane, version=spec.version, revision=spec.revision,
                      duration=round(now - status["since"], 3))
        if failed:
            self.emit("rollout_failed", lane, version=spec.version, revision=spec.revision,
                      reason="ProgressDeadlineExceeded", **self._why_stuck(spec, state, status))

    def _why_stuck(self, spec: DeploymentSpec, state: LiveState, status: dict[str, Any]) -> dict[str, str]:
        """What a person needs to see about a rollout that stopped progressing."""
        ready = sum(1 for r in state.replicas if r.version == spec.version and r.state == "ready")
        waited = f"no progress for {spec.strategy.progress_deadline:g} s"
        if status["crashes"]:
            last = f": {status['last_crash']}" if status["last_crash"] else ""
            return {"detail": "CrashLoopBackOff",
                    "message": f"v{spec.version} crashes at start ({status['crashes']} in a row{last}); "
                               f"{ready}/{spec.replicas} ready, {waited}"}
        how = "never became ready" if ready == 0 else "not all ready"
        return {"detail": "NotReady", "message": f"v{spec.version} {how}: {ready}/{spec.replicas} ready, {waited}"}
