"""Blue-green, as Argo Rollouts does it.

The new version starts as a full-size preview stack that users never reach. Once it is ready, the
prePromotionAnalysis (if any) runs the gates on it: the lab's preview traffic is a copy of each user
request (Argo points a preview Service at it; what reaches it is up to you). Then, with
autoPromotionEnabled (default true), the switch happens at once or autoPromotionSeconds after the preview
was ready; without it the rollout pauses until a person promotes. The switch sends 100 % of requests to the
new stack. A postPromotionAnalysis then runs on live traffic: failing it switches back (rolled back). The
old stack is kept for scaleDownDelaySeconds (default 30) after the switch, then scaled down.

Stages: preview (starting) → pre (analysis) → ready (waiting to switch, or Paused) → switched (post
analysis, scale-down delay).
"""

from __future__ import annotations

from dataclasses import replace

from mlopslab.strategies.machine import Obs, State, count, promote
from mlopslab.strategies.spec import StrategySpec


def step(spec: StrategySpec, state: State, obs: Obs) -> State:
    if state.stage == "preview":
        if not obs.canary_ready:
            return state
        if spec.pre_promotion_analysis:
            return replace(state, stage="pre", mirror=True, next_check=obs.now + spec.interval, passed=0)
        return _ready(spec, state, obs)
    if state.stage == "pre":
        if obs.now < state.next_check:
            return state
        counted, outcome = count(state, obs, spec, needed=spec.pre_promotion_analysis)
        return _ready(spec, counted, obs) if outcome == "done" else counted
    if state.stage == "ready":
        if state.phase == "Paused":
            return _switch(spec, state, obs) if obs.command == "promote" else state
        return _switch(spec, state, obs) if obs.now >= state.until else state
    # switched: postPromotionAnalysis, then the old stack's scale-down delay
    if spec.post_promotion_analysis and state.passed < spec.post_promotion_analysis:
        if obs.now < state.next_check:
            return state
        counted, outcome = count(state, obs, spec, needed=spec.post_promotion_analysis)
        if outcome == "rollback":   # switch back: users return to the old stack at once
            return counted
        if outcome == "done":
            return replace(counted, decision="promoted", decided_by="analysis", decided_at=obs.now)
        return counted
    if state.decision is None:
        by = "analysis" if spec.pre_promotion_analysis else "autoPromotion"
        state = replace(state, decision="promoted", decided_by=by, decided_at=obs.now)
    if obs.now >= state.until:   # scale-down delay over: the primary group takes the new version
        return replace(promote(state, obs, state.decided_by or "autoPromotion"), phase="Finalising",
                       primary=state.version, weight=1.0)
    return state


def _ready(spec: StrategySpec, state: State, obs: Obs) -> State:
    ready = replace(state, stage="ready", mirror=False, passed=0)
    if not spec.auto_promotion_enabled:
        return replace(ready, phase="Paused")
    if not spec.auto_promotion_seconds:
        return _switch(spec, ready, obs)
    return replace(ready, until=obs.now + spec.auto_promotion_seconds)


def _switch(spec: StrategySpec, state: State, obs: Obs) -> State:
    return replace(state, phase="Progressing", stage="switched", weight=1.0, mirror=False, first_shift=obs.now,
                   passed=0, next_check=obs.now + spec.interval, until=obs.now + spec.scale_down_delay_seconds,
                   **({"decision": "promoted", "decided_by": "human", "decided_at": obs.now}
                      if obs.command == "promote" and not spec.post_promotion_analysis else {}))

