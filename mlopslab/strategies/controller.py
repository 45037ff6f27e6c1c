"""The rollout controller: makes each lane's strategy so, the way Flagger runs beside a cluster.

It wraps the run's Environment. What a delivery applies (the lane's Deployment, its strategy in an
annotation) becomes the lane's *target*. A lane with a rolling or recreate strategy goes straight through
to the environment. For a progressive lane (canary, blue-green, shadow, A/B) the controller keeps two
replica groups in the environment, like Flagger's primary and canary Deployments: the primary (the lane's
own name) and the candidate group (`<lane>.canary`; on Kubernetes two Deployments, envs/kubernetes/groups.py);
every `tick` it observes both, runs the gates when a check is due, steps the strategy's pure state machine
(strategies/machine.py) and makes the new state so: the groups' versions and sizes through
`Environment.apply`, the candidate's share of requests, its copies and its cohorts through the traffic router.

`observe(lane)` answers for the lane as a whole (the target as its spec, both groups' replicas, Failed
after a rollback), so deliveries, sync verdicts and self-heal see one object, as Argo CD sees a Rollout.

Every change of a lane's version is accounted for, whatever the strategy: the decision and what made it,
the time to decision, the exposure (user requests the new version served before the decision), the
errors during the change, and the peak replicas and replica-seconds it cost (`strategy_done`).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from mlopslab import strategies
from mlopslab.envs.base import DeploymentSpec, Endpoint, Environment, LiveState, Strategy
from mlopslab.strategies import analysis
from mlopslab.strategies.machine import Check, Obs, State
from mlopslab.strategies.samples import Samples
from mlopslab.strategies.spec import StrategySpec

GROUP = "canary"
SETTLE = 1.5   # seconds after a change ends before its requests are counted (records arrive late)


def group_of(lane: str) -> str:
    return f"{lane}.{GROUP}"


def group_emit(emit: Callable[..., Any]) -> Callable[..., Any]:
    """An environment's emit for the run: events of a `<lane>.canary` group are the lane's, with `group`;
    the group's own rollout_done / rollout_failed are the controller's business, not the lane's."""
    def relay(kind: str, lane: str | None = None, **fields: Any) -> Any:
        if lane and "." in lane:
            lane, _, group = lane.partition(".")
            if kind in ("rollout_done", "rollout_failed"):
                return None
            fields["group"] = group
        return emit(kind, lane, **fields)
    return relay


@functools.lru_cache(maxsize=64)
def parse(progressive: str) -> StrategySpec:
    return StrategySpec.from_json(progressive)


@dataclass
class Change:
    """One lane's move to a new version, for the summary."""

    version: str
    stable: str
    strategy: str
    began: float
    last: float
    peak: int = 0
    replica_seconds: float = 0.0
    decision: str | None = None
    by: str | None = None
    decided_at: float | None = None
    ended: float | None = None


class Rollouts(Environment):
    tick = 0.1

    def __init__(self, inner: Environment, emit: Callable[..., Any], now: Callable[[], float],
                 label_delay: float = 5.0, lanes: list[str] | tuple[str, ...] = (),
                 subscribe: Callable[[Callable[[dict[str, Any]], None]], Any] | None = None) -> None:
        self.inner = inner
        self.samples = Samples(list(lanes))   # what the gates look at: fed by the run's traffic (add_result)
        if subscribe is not None:             # ... and by the run's events (the lanes' drift scores)
            subscribe(self.samples.on_event)
        self.emit = emit
        self.now = now
        self.label_delay = label_delay
        self.router: Any = None             # the traffic router, once traffic runs
        self._lock = threading.RLock()
        self._targets: dict[str, DeploymentSpec] = {}
        self._versions: dict[str, dict[str, DeploymentSpec]] = {}
        self._states: dict[str, State] = {}
        self._commands: dict[str, str] = {}
        self._applied: dict[str, DeploymentSpec] = {}
        self._shown: dict[str, tuple[Any, ...]] = {}
        self._routes: dict[str, tuple[Any, ...]] = {}
        self._changes: dict[str, Change] = {}
        self._gate_states: dict[str, tuple[str, dict[str, Any]]] = {}   # lane -> (candidate, what its gates keep)
        self._done: list[tuple[float, str, Change]] = []
        self._threads: dict[str, threading.Thread] = {}
        self._stop = threading.Event()
        self.editors: dict[str, Callable[[DeploymentSpec], None]] = {}   # lane -> where its target is declared

    def __getattr__(self, name: str) -> Any:   # what an environment kind offers beyond the port (Docker's client)
        if name == "inner":   # not set yet (or being unpickled): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    # --- the port -----------------------------------------------------------------------------------------
    def apply(self, spec: DeploymentSpec, *, declare: Callable[[DeploymentSpec], None] | None = None) -> None:
        """`declare`: how the delivery writes the lane's declared object itself, with its own credential
        (Kubernetes: envs/kubernetes/acting.py); the groups are then the controller's to make so."""
        lane = spec.lane
        with self._lock:
            previous = self._targets.get(lane)
            self._targets[lane] = spec
            self._versions.setdefault(lane, {})[spec.version] = spec
            if previous is not None and previous.version != spec.version:
                self._begin(lane, spec, previous)
        if not spec.progressive:
            (declare or self.inner.apply)(spec)
        else:
            if declare is not None:
                declare(spec)
            self.reconcile(lane)
        if lane not in self._threads:
            thread = threading.Thread(target=self._loop, args=(lane,), name=f"rollouts-{lane}", daemon=True)
            self._threads[lane] = thread
            thread.start()

    def observe(self, lane: str, *args: Any) -> LiveState:
        """The lane as one object; what else an environment's observe takes (Kubernetes: the live spec as a
        delivery's identity read it) goes to it unchanged for a lane without a progressive strategy."""
        with self._lock:
            target, state = self._targets.get(lane), self._states.get(lane)
        if target is None or not target.progressive or state is None:
            return self.inner.observe(lane, *args)
        primary = self.inner.observe(lane)
        canary = self.inner.observe(group_of(lane)) if group_of(lane) in self._applied else None
        views = primary.replicas + (canary.replicas if canary else ())
        updated = sum(1 for r in views if r.version == target.version and r.state != "terminating")
        live = LiveState(lane, target, views, updated, sum(1 for r in views if r.state == "ready"))
        settled = state.phase in ("Succeeded", "Initialized") and primary.spec is not None \
            and primary.spec.version == target.version
        condition = "Failed" if state.phase == "Failed" else ("Available" if settled and live.complete
                                                             else "Progressing")
        return replace(live, condition=condition)

    def endpoints(self, lane: str) -> list[Endpoint]:
        own = self.inner.endpoints(lane)
        if group_of(lane) not in self._applied:
            return own
        return own + [replace(e, lane=lane) for e in self.inner.endpoints(group_of(lane))]

    def change_live(self, lane: str, *, replicas: int | None = None, version: str | None = None) -> DeploymentSpec:
        with self._lock:
            target = self._targets.get(lane)
        if target is None or not target.progressive:
            return self.inner.change_live(lane, replicas=replicas, version=version)
        edited = replace(target, replicas=target.replicas if replicas is None else replicas,
                         version=target.version if version is None else version)
        if version is not None and version not in self._versions.get(lane, {}):
            self._versions[lane][version] = edited
        self.editors.get(lane, self.apply)(edited)
        return edited

    def kill_replica(self, lane: str, name: str | None = None) -> str | None:
        return self.inner.kill_replica(lane, name)

    def credential(self) -> str:
        return self.inner.credential()

    # --- the traffic it steers and measures (runtraffic.RunTraffic taps it) -----------------------------------
    def add_result(self, record: dict[str, Any]) -> None:
        self.samples.add_result(record)

    def add_sample(self, sample: dict[str, Any]) -> None:
        self.samples.add_sample(sample)

    def teardown(self) -> None:
        self._stop.set()
        for thread in list(self._threads.values()):
            thread.join(timeout=3)
        with self._lock:
            pending = [(lane, change) for lane, change in self._changes.items()] + \
                      [(lane, change) for _, lane, change in self._done]
            self._changes.clear()
            self._done.clear()
        for lane, change in pending:
            self._report(lane, change)
        self.inner.teardown()

    # --- actions ---------------------------------------------------------------------------------------------
    def command(self, lane: str, action: str) -> str:
        """promote | abort, for the lane's strategy's next tick; returns what will happen."""
        with self._lock:
            state = self._states.get(lane)
            target = self._targets.get(lane)
            if target is None or not target.progressive:
                raise ValueError(f"lane {lane!r} has no canary, blue-green, shadow or A/B strategy")
            if state is None or not state.active:
                raise ValueError(f"lane {lane!r} has no rollout in progress ({state.phase if state else 'none'})")
            self._commands[lane] = action
        self.reconcile(lane)
        return action

    def state(self, lane: str) -> State | None:
        with self._lock:
            return self._states.get(lane)

    # --- the loop --------------------------------------------------------------------------------------------
    def _loop(self, lane: str) -> None:
        last_error = ""
        while not self._stop.wait(self.tick):
            try:
                target = self._targets.get(lane)
                if target is not None and target.progressive:
                    self.reconcile(lane)
                self._account(lane)
                last_error = ""
            except Exception as exc:   # keep going; report each new problem once
                message = f"rollout controller: {exc!r}"
                if message != last_error:
                    self.emit("error", lane, message=message)
                last_error = message

    def reconcile(self, lane: str) -> None:
        with self._lock:
            target = self._targets[lane]
            spec = parse(target.progressive)
            state = self._states.get(lane, State())
            command = self._commands.pop(lane, None)
            now = self.now()
            obs = self._observe(lane, target, state, now, command)
            checks: list[tuple[analysis.GateResult, float]] = []
            if self._due(spec, state, obs):
                version, states = self._gate_states.get(lane, ("", {}))
                if version != state.version:   # a sequential judge starts afresh with each candidate
                    states = {}
                    self._gate_states[lane] = (state.version, states)
                checks = analysis.evaluate(spec.gates, self.samples, lane, now, spec.interval, self.label_delay,
                                           state.stable, state.version, copies=state.mirror, started=state.started,
                                           states=states)
                obs = replace(obs, checks=tuple(Check(r.gate, r.verdict if r.verdict != "marginal" else "wait",
                                                      r.value, r.threshold) for r, _ in checks))
            new = strategies.step(spec, state, obs)
            self._states[lane] = new
        for result, window in checks:
            self.emit("gate", lane, version=state.version, gate=result.gate, metric=result.metric, judge=result.judge,
                      value=result.value, threshold=result.threshold, bound=result.bound, verdict=result.verdict,
                      n_stable=result.n_stable, n_canary=result.n_canary, window=window,
                      **({"detail": result.detail} if result.detail else {}))
        if command:
            self.emit("human_action", lane, action=command)
        self._make_so(lane, target, spec, new)
        self._report_step(lane, spec, state, new, checks)

    def _due(self, spec: StrategySpec, state: State, obs: Obs) -> bool:
        return (bool(spec.gates) and state.phase == "Progressing" and obs.now >= state.next_check
                and obs.canary_ready and (state.weight > 0 or state.mirror or state.cohort > 0))

    def _observe(self, lane: str, target: DeploymentSpec, state: State, now: float, command: str | None) -> Obs:
        canary = self.inner.observe(group_of(lane)) if group_of(lane) in self._applied else None
        primary = self.inner.observe(lane) if lane in self._applied else None
        canary_ready = bool(canary and canary.spec and state.canary_replicas > 0
                            and canary.spec.version == state.version and canary.spec.replicas == state.canary_replicas
                            and canary.complete)
        canary_failed = bool(canary and canary.spec and canary.spec.version == state.version
                             and canary.condition == "Failed")
        primary_ready = bool(primary and primary.spec and primary.spec.version == state.primary and primary.complete)
        return Obs(now=now, target=target.version, replicas=target.replicas, canary_ready=canary_ready,
                   canary_failed=canary_failed, primary_ready=primary_ready, command=command)

    def _make_so(self, lane: str, target: DeploymentSpec, spec: StrategySpec, state: State) -> None:
        """A group names the commit that declared its version, not the target's: its rollout_done is that release's."""
        versions = self._versions[lane]
        if state.primary:
            base = versions.get(state.primary, target)
            recreate = state.phase == "Finalising"   # it gets no traffic now: replace it at once
            strategy = Strategy(0, "100%", target.strategy.progress_deadline, type="Recreate") if recreate \
                else target.strategy
            self._ensure(replace(base, lane=lane, replicas=target.replicas, progressive="", strategy=strategy,
                                 source=()))
        if state.version and (state.canary_replicas > 0 or group_of(lane) in self._applied):
            base = versions.get(state.version, target)
            self._ensure(replace(base, lane=group_of(lane), replicas=state.canary_replicas, progressive="", source=(),
                                 strategy=target.strategy))
        self._route(lane, state)

    def _ensure(self, spec: DeploymentSpec) -> None:
        if self._applied.get(spec.lane) != spec:
            self.inner.apply(spec)
            self._applied[spec.lane] = spec

    def _route(self, lane: str, state: State) -> None:
        if self.router is None:
            return
        draining = group_of(lane) in self._applied and any(
            r.state != "terminating" for r in self.inner.observe(group_of(lane)).replicas)
        weights = None
        if state.active or draining or state.weight > 0:
            weights = {state.stable: 1.0 - state.weight}
            weights[state.version or state.stable] = state.weight if state.version != state.stable else 1.0
        mirror = frozenset({state.version}) if state.mirror else frozenset()
        cohorts = {state.version: state.cohort} if state.cohort > 0 else {}
        route = (tuple(sorted((weights or {}).items())) if weights is not None else None, mirror,
                 tuple(sorted(cohorts.items())))
        if self._routes.get(lane) == route:
            return
        self._routes[lane] = route
        self.router.mirror(lane, mirror)
        self.router.cohort(lane, cohorts)
        self.router.weigh(lane, weights)

    # --- events and accounting ---------------------------------------------------------------------------------
    def _report_step(self, lane: str, spec: StrategySpec, old: State, new: State,
                     checks: list[tuple[analysis.GateResult, float]]) -> None:
        shown = (new.phase, new.stage, new.version, new.weight, new.mirror, new.cohort, new.canary_replicas, new.step,
                 new.failed_checks)
        if self._shown.get(lane) != shown:
            self._shown[lane] = shown
            self.emit("strategy_step", lane, strategy=spec.type, phase=new.phase, stage=new.stage or None,
                      version=new.version or new.stable, stable=new.stable, weight=round(100 * new.weight, 2),
                      mirror=new.mirror, cohort=round(100 * new.cohort, 2), canary_replicas=new.canary_replicas,
                      step=new.step, failed_checks=new.failed_checks)
        if new.decision and new.decided_at is not None and old.decided_at is None:
            deciding = next((r for r, _ in checks if r.gate == new.decided_by), None)
            with self._lock:
                change = self._changes.get(lane)
                if change is not None and change.version == new.version:
                    change.decision, change.by, change.decided_at = new.decision, new.decided_by, new.decided_at
            began = change.began if change is not None else new.started
            self.emit("strategy_decision", lane, strategy=spec.type, version=new.version, stable=old.stable,
                      decision=new.decision, by=new.decided_by, after=round(new.decided_at - began, 3),
                      **({"value": deciding.value, "threshold": deciding.threshold} if deciding else {}))

    def _begin(self, lane: str, spec: DeploymentSpec, previous: DeploymentSpec) -> None:
        old = self._changes.pop(lane, None)
        if old is not None:
            old.ended = old.ended or self.now()
            self._done.append((old.ended, lane, old))
        kind = parse(spec.progressive).type if spec.progressive else (
            "recreate" if spec.strategy.type == "Recreate" else "rolling")
        now = self.now()
        state = self._states.get(lane)   # after a rollback the stable version is not the previous target
        self._changes[lane] = Change(spec.version, state.stable if state and state.stable else previous.version,
                                     kind, now, now)

    def _account(self, lane: str) -> None:
        now = self.now()
        with self._lock:
            change = self._changes.get(lane)
            target = self._targets.get(lane)
        if change is not None and target is not None:
            views = self.inner.observe(lane).replicas
            if group_of(lane) in self._applied:
                views += self.inner.observe(group_of(lane)).replicas
            count = len(views)
            with self._lock:
                change.peak = max(change.peak, count)
                change.replica_seconds += count * max(0.0, now - change.last)
                change.last = now
                if change.decision is None and not target.progressive:
                    live = self.inner.observe(lane)
                    if live.condition == "Failed":
                        change.decision, change.by, change.decided_at = "failed", "progressDeadline", now
                    elif live.complete and live.spec is not None and live.spec.version == change.version:
                        change.decision, change.by, change.decided_at = "promoted", "rollout", now
                    if change.decision:
                        self.emit("strategy_decision", lane, strategy=change.strategy, version=change.version,
                                  stable=change.stable, decision=change.decision, by=change.by,
                                  after=round(now - change.began, 3))
                state = self._states.get(lane)
                over = change.decision is not None and (
                    not target.progressive or (state is not None and state.phase in ("Succeeded", "Failed")))
                promoted = change.decision == "promoted"
                if over and (all(v.version == change.version for v in views) if promoted
                             else not any(v.version == change.version for v in views)):
                    change.ended = now
                    self._done.append((now, lane, self._changes.pop(lane)))
        with self._lock:
            due = [item for item in self._done if item[1] == lane and item[0] + SETTLE <= now]
            self._done = [item for item in self._done if item not in due]
        for _, _, finished in due:
            self._report(lane, finished)

    def _report(self, lane: str, change: Change) -> None:
        ended = change.ended if change.ended is not None else self.now()
        requests = [r for r in self.samples.window(lane, change.began, ended) if not r.mirrored]
        decided = change.decided_at if change.decided_at is not None else ended
        exposure = sum(1 for r in requests if r.version == change.version and r.t < decided)
        self.emit("strategy_done", lane, strategy=change.strategy, version=change.version, stable=change.stable,
                  decision=change.decision or "undecided", by=change.by, began=round(change.began, 3),
                  time_to_decision=None if change.decided_at is None else round(change.decided_at - change.began, 3),
                  duration=round(ended - change.began, 3), exposure=exposure, requests=len(requests),
                  errors=sum(1 for r in requests if not r.ok), peak_replicas=change.peak,
                  replica_seconds=round(change.replica_seconds, 1))
