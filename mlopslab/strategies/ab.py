"""A/B: users are split by a sticky cohort key the load generator attaches to each request (a user id,
hashed to [0, 1)); cohorts below `share` % get the candidate, the rest the stable version, every time.
Outcomes are compared once labels arrive (an accuracy gate waits for them). After `iterations` passing
checks the candidate is promoted to everyone; `threshold` failed checks roll it back."""

from __future__ import annotations

from dataclasses import replace

from mlopslab.strategies.machine import Obs, State, count, promote
from mlopslab.strategies.spec import StrategySpec


def step(spec: StrategySpec, state: State, obs: Obs) -> State:
    if not obs.canary_ready:
        return state
    if state.cohort == 0.0:
        return replace(state, cohort=spec.share / 100.0, first_shift=obs.now, next_check=obs.now + spec.interval)
    if obs.now < state.next_check:
        return state
    counted, outcome = count(state, obs, spec, needed=spec.iterations)
    return promote(counted, obs, "analysis") if outcome == "done" else counted
