"""What every strategy's state machine shares: its state, what it observes each tick, and the moves
common to all of them (start a candidate, promote, finalise, roll back). Pure: no clock, no I/O.

A strategy is a module with `step(spec, state, obs) -> state`. The controller (controller.py) makes the
state so, level-based like a Kubernetes controller: the candidate's replica group gets
`canary_replicas`, the primary group runs `primary`, the router sends `weight` of the user traffic to the
candidate, copies every request to it when `mirror`, and sends it the cohorts below `cohort` (A/B).

Phases follow Flagger's: Initialized (the first version, no analysis), Progressing (a candidate under
analysis), Paused (waits for a person: Argo's pause without duration, blue-green without auto-promotion),
Promoting (the candidate group scales to full size, then takes all traffic), Finalising (the primary
group is replaced by the candidate's version while it gets no traffic), Succeeded, Failed (rolled back:
weight 0, candidate scaled to zero).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from mlopslab.strategies.spec import StrategySpec

ACTIVE = ("Progressing", "Paused", "Promoting", "Finalising")
INF = math.inf


@dataclass(frozen=True)
class Check:
    """One gate's verdict at one tick (what the judges return, reduced to what a machine needs)."""

    gate: str
    verdict: str           # pass | fail | wait (not enough samples yet: labels have not arrived)
    value: float | None = None
    threshold: float | None = None


@dataclass(frozen=True)
class Obs:
    now: float
    target: str                        # the version the lane's applied spec asks for
    replicas: int                      # the lane's replicas
    canary_ready: bool = False         # the candidate group runs `canary_replicas`, all ready
    canary_failed: bool = False        # ... or its rollout missed its progress deadline
    primary_ready: bool = False        # the primary group runs `primary`, all ready
    checks: tuple[Check, ...] | None = None   # the gates' verdicts, when a check was due
    command: str | None = None         # promote | abort, from a person


@dataclass(frozen=True)
class State:
    phase: str = "Idle"
    stable: str = ""                   # the version users get when no candidate is in play
    primary: str = ""                  # the version the primary group runs
    version: str = ""                  # the candidate
    weight: float = 0.0                # share of user requests to the candidate, 0..1
    mirror: bool = False
    cohort: float = 0.0                # A/B: cohorts in [0, cohort) get the candidate
    canary_replicas: int = 0
    step: int = 0                      # Argo steps: which; Flagger: how many weight shifts
    stage: str = ""                    # a strategy's sub-phase (blue-green: preview | pre | switched | post)
    passed: int = 0                    # checks passed in the current analysis
    failed_checks: int = 0             # cumulative, as Flagger counts
    failing: str | None = None         # the gate that failed last
    next_check: float = INF
    until: float = INF                 # a pause or a delay ends
    started: float = 0.0
    first_shift: float | None = None   # the first time users got the candidate (Flagger: first weight shift)
    decided_at: float | None = None
    decision: str | None = None        # promoted | rolled_back
    decided_by: str | None = None      # the gate, "analysis", "human", "progressDeadline", "revert", "steps"

    @property
    def active(self) -> bool:
        return self.phase in ACTIVE


def verdict(checks: tuple[Check, ...] | None) -> tuple[str, str | None]:
    """(pass | fail | wait | none, the gate that failed or waits): one failing gate fails the check."""
    if checks is None:
        return "none", None
    for c in checks:
        if c.verdict == "fail":
            return "fail", c.gate
    for c in checks:
        if c.verdict == "wait":
            return "wait", c.gate
    return "pass", None


def begin(state: State, obs: Obs, spec: StrategySpec) -> State:
    """A new candidate: its group starts (full size unless the strategy scales it by weight)."""
    size = obs.replicas if not spec.steps else 0
    return State(phase="Progressing", stable=state.stable, primary=state.primary, version=obs.target,
                 canary_replicas=size, started=obs.now, next_check=obs.now + spec.interval,
                 stage="preview" if spec.type == "blue-green" else "")


def promote(state: State, obs: Obs, by: str) -> State:
    """Decided: the candidate group scales to full size; once ready it takes every request."""
    return replace(state, phase="Promoting", canary_replicas=obs.replicas, decision="promoted", decided_by=by,
                   decided_at=obs.now if state.decided_at is None else state.decided_at, until=INF, next_check=INF)


def rollback(state: State, obs: Obs, by: str) -> State:
    """Flagger's rollback: weight to 0, no copies, candidate scaled to zero, phase Failed."""
    return replace(state, phase="Failed", weight=0.0, mirror=False, cohort=0.0, canary_replicas=0,
                   decision="rolled_back", decided_by=by, decided_at=obs.now, until=INF, next_check=INF)


def common(spec: StrategySpec, state: State, obs: Obs) -> State | None:
    """The moves every strategy makes the same way; None when the strategy's own step decides."""
    if not state.stable:   # the first version: Flagger's initialisation, no analysis
        return State(phase="Initialized", stable=obs.target, primary=obs.target)
    if obs.target not in (state.version, state.stable):
        if state.active and state.phase in ("Promoting", "Finalising"):
            return None   # finish the promotion first; the next candidate starts after it
        return begin(state, obs, spec)
    if obs.target == state.stable and state.active and state.phase not in ("Promoting", "Finalising"):
        return rollback(state, obs, "revert")   # the repo went back to the stable version
    if state.phase == "Promoting":
        if obs.canary_ready:
            return replace(state, phase="Finalising", weight=1.0, mirror=False, cohort=0.0, primary=state.version)
        return state
    if state.phase == "Finalising":
        if obs.primary_ready:
            return replace(state, phase="Succeeded", stable=state.version, weight=0.0, canary_replicas=0)
        return state
    if not state.active:
        return state
    if obs.command == "abort":
        return rollback(state, obs, "human")
    if obs.canary_failed:
        return rollback(state, obs, "progressDeadline")
    if obs.command == "promote" and state.phase != "Paused":
        return promote(state, obs, "human")   # like `kubectl argo rollouts promote --full`
    return None


def advance(module: object, spec: StrategySpec, state: State, obs: Obs) -> State:
    """One tick of a strategy: the common moves, else the strategy's own `step`."""
    moved = common(spec, state, obs)
    if moved is not None:
        return moved
    return module.step(spec, state, obs)  # type: ignore[attr-defined]


def count(state: State, obs: Obs, spec: StrategySpec, needed: int, then: State | None = None) -> tuple[State, str]:
    """One analysis check: a failure adds to the cumulative count (threshold reached: roll back),
    a pass counts toward `needed`. Returns (state, outcome: fail | rollback | wait | pass | done)."""
    if state.failed_checks >= spec.threshold:   # Flagger rolls back at the tick after the threshold-th failure
        return rollback(state, obs, state.failing or "analysis"), "rollback"
    result, gate = verdict(obs.checks)
    later = replace(state, next_check=obs.now + spec.interval)
    if result == "fail":
        return replace(later, failed_checks=state.failed_checks + 1, failing=gate), "fail"
    if result in ("wait", "none"):
        return later, "wait"
    passed = state.passed + 1
    return replace(later, passed=passed), ("done" if passed >= needed else "pass")
