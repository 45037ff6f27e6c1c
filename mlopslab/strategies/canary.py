"""Canary: Flagger's analysis, or Argo Rollouts' steps.

Flagger form. Every `interval` the scheduler ticks. While the canary group is not ready it waits. With no
traffic on the canary yet, the first tick only shifts the weight to the first step (Flagger skips the
analysis while no traffic is routed to the canary). After that each tick runs the gates: a failure adds
to the cumulative failed-check count (at the tick after it reaches `threshold`: roll back); a pass shifts
the weight to the next step (`stepWeight` up to `maxWeight`, or the next of `stepWeights`); a pass at the
last step promotes. So from the first shift to promotion takes interval × ceil(maxWeight / stepWeight), and
a canary that fails every check is rolled back threshold × interval after its first failed check.

Argo form (`steps`). setWeight N sends N % of requests to the canary and scales its group to
ceil(N % × replicas) (at least one); pause {duration} waits; pause with no duration waits for a person's
promote; analysis {checks: N} runs the gates until N checks passed (threshold failures abort). With gates
and no analysis step, the gates run in the background every interval while the canary has traffic.
After the last step the rollout is promoted.
"""

from __future__ import annotations

import math
from dataclasses import replace

from mlopslab.strategies.machine import INF, Obs, State, count, promote
from mlopslab.strategies.spec import StrategySpec


def step(spec: StrategySpec, state: State, obs: Obs) -> State:
    return _steps(spec, state, obs) if spec.steps else _flagger(spec, state, obs)


def _flagger(spec: StrategySpec, state: State, obs: Obs) -> State:
    if obs.now < state.next_check:
        return state
    if not obs.canary_ready:
        return replace(state, next_check=obs.now + spec.interval)
    ladder = spec.weights()
    if state.weight == 0.0:   # no traffic on the canary yet: nothing to analyse, shift to the first step
        return replace(state, weight=ladder[0] / 100.0, step=1, first_shift=obs.now,
                       next_check=obs.now + spec.interval)
    if not spec.gates and state.failed_checks < spec.threshold:
        outcome, counted = "pass", replace(state, next_check=obs.now + spec.interval)
    else:
        counted, outcome = count(state, obs, spec, needed=1)
    if outcome in ("rollback", "fail", "wait"):
        return counted
    if state.step >= len(ladder):
        return promote(counted, obs, "analysis")
    return replace(counted, weight=ladder[state.step] / 100.0, step=state.step + 1, passed=0)


def _size(spec: StrategySpec, weight: float, replicas: int) -> int:
    return max(1, math.ceil(weight * replicas - 1e-9)) if weight > 0 else 0


def _steps(spec: StrategySpec, state: State, obs: Obs) -> State:
    inline = state.step < len(spec.steps) and spec.steps[state.step].kind == "analysis"
    if spec.gates and not inline and state.weight > 0 and obs.canary_ready and obs.now >= state.next_check:
        state, outcome = count(replace(state, passed=0), obs, spec, needed=1)   # background analysis
        if outcome == "rollback":
            return state
    if state.step >= len(spec.steps):
        return promote(state, obs, "steps")
    current = spec.steps[state.step]
    if current.kind == "setWeight":   # scale the canary group first, shift the traffic once it is ready
        weight = (current.value or 0.0) / 100.0
        size = _size(spec, weight, obs.replicas)
        if state.canary_replicas < size:
            return replace(state, canary_replicas=size)
        if not obs.canary_ready:
            return state
        first = state.first_shift if state.first_shift is not None or weight == 0 else obs.now
        return _next(replace(state, weight=weight, canary_replicas=size, first_shift=first), obs)
    if current.kind == "pause":
        if current.value is None:   # waits for a person
            if obs.command == "promote":
                return replace(_next(state, obs), phase="Progressing")
            return replace(state, phase="Paused")
        if state.until == INF:
            return replace(state, until=obs.now + current.value)
        return _next(state, obs) if obs.now >= state.until else state
    if obs.now < state.next_check or not obs.canary_ready:   # analysis {checks: N}
        return state
    counted, outcome = count(state, obs, spec, needed=int(current.value or 1))
    return _next(counted, obs) if outcome == "done" else counted


def _next(state: State, obs: Obs) -> State:
    return replace(state, step=state.step + 1, until=INF, passed=0)
