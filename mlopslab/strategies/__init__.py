"""Deployment strategies: one pure state machine per strategy (canary, blue-green, shadow, A/B; recreate
and rolling are the Deployment controller's own plans), the gates that feed them, and the controller that
makes their state so through the environment's replica groups and the traffic router."""

from __future__ import annotations

from types import ModuleType

from mlopslab.strategies import ab, bluegreen, canary, shadow
from mlopslab.strategies.machine import Check, Obs, State, advance
from mlopslab.strategies.spec import GateSpec, StrategySpec

MACHINES: dict[str, ModuleType] = {"canary": canary, "blue-green": bluegreen, "shadow": shadow, "ab": ab}


def step(spec: StrategySpec, state: State, obs: Obs) -> State:
    """One tick of the lane's strategy."""
    return advance(MACHINES[spec.type], spec, state, obs)


__all__ = ["MACHINES", "Check", "GateSpec", "Obs", "State", "StrategySpec", "step"]
