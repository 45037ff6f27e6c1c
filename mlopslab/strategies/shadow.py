"""Shadow (KServe/Seldon's shadow, Flagger's mirroring): the candidate gets a copy of every request; its
answers reach no user and are compared with the primary's on the same inputs (latency, errors,
disagreement). After `iterations` passing checks it is promoted; `threshold` failed checks roll it back.
Users are never served by it before the decision: its exposure is 0 by construction."""

from __future__ import annotations

from dataclasses import replace

from mlopslab.strategies.machine import Obs, State, count, promote
from mlopslab.strategies.spec import StrategySpec


def step(spec: StrategySpec, state: State, obs: Obs) -> State:
    if not obs.canary_ready:
        return state
    if not state.mirror:
        return replace(state, mirror=True, next_check=obs.now + spec.interval)
    if obs.now < state.next_check:
        return state
    counted, outcome = count(state, obs, spec, needed=spec.iterations)
    return promote(counted, obs, "analysis") if outcome == "done" else counted
