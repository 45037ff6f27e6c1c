"""Each strategy's state machine, driven tick by tick without processes: the anchors' semantics as tables
(Flagger's canary analysis and timing, Argo Rollouts' steps and blue-green, shadow, A/B, Recreate)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import pytest

from mlopslab import strategies
from mlopslab.envs.rollout import plan
from mlopslab.strategies import Check, Obs, State, StrategySpec
from mlopslab.strategies.spec import GateSpec, Step

GATE = (GateSpec("success_rate", min=99),)
PASS = (Check("success_rate", "pass", 100.0, 99.0),)
FAIL = (Check("success_rate", "fail", 80.0, 99.0),)
WAIT = (Check("accuracy", "wait", None, 0.8),)


@dataclass
class Run:
    """A lane whose replica groups are ready the moment they are asked for (unless `ready` says no)."""

    spec: StrategySpec
    checks: Callable[[float, State], tuple[Check, ...]] = lambda t, s: PASS
    ready: Callable[[float], bool] = lambda t: True
    commands: dict[float, str] | None = None
    replicas: int = 3
    target: str = "2"

    def go(self, until: float, dt: float = 0.5, state: State | None = None) -> list[tuple[float, State]]:
        state = state or State(phase="Initialized", stable="1", primary="1")
        trace = []
        t = 0.0
        while t <= until:
            obs = Obs(now=t, target=self.target, replicas=self.replicas, canary_ready=self.ready(t),
                      primary_ready=True, checks=self.checks(t, state),
                      command=(self.commands or {}).get(t))
            state = strategies.step(self.spec, state, obs)
            trace.append((t, state))
            t = round(t + dt, 6)
        return trace


def first(trace: list[tuple[float, State]], test: Callable[[State], bool]) -> float:
    return next(t for t, s in trace if test(s))


def weights(trace: list[tuple[float, State]]) -> list[float]:
    out: list[float] = []
    for _, s in trace:
        if not out or out[-1] != s.weight:
            out.append(s.weight)
    return out


# --- canary, Flagger form ------------------------------------------------------------------------------------
@pytest.mark.parametrize("interval, step, maximum", [(10, 20, 60), (5, 10, 50), (2, 30, 100), (4, 25, 60)])
def test_flagger_promotes_interval_times_ceil_max_over_step_after_the_first_shift(interval: float, step: float,
                                                                                   maximum: float) -> None:
    spec = StrategySpec("canary", interval=interval, step_weight=step, max_weight=maximum, threshold=2, gates=GATE)
    trace = Run(spec).go(interval * 20)
    shifted = first(trace, lambda s: s.weight > 0)
    promoted = first(trace, lambda s: s.decision == "promoted")
    assert promoted - shifted == pytest.approx(interval * math.ceil(maximum / step))
    ladder = [min(maximum, step * k) / 100 for k in range(1, math.ceil(maximum / step) + 1)]
    assert weights(trace)[:len(ladder) + 1] == [0.0, *ladder]
    final = trace[-1][1]
    assert (final.phase, final.stable, final.canary_replicas, final.decided_by) == ("Succeeded", "2", 0, "analysis")


def test_flagger_step_weights_follow_the_list() -> None:
    spec = StrategySpec("canary", interval=1, step_weights=(5, 25, 50), gates=GATE)
    trace = Run(spec).go(20)
    assert weights(trace)[:4] == [0.0, 0.05, 0.25, 0.5]
    assert first(trace, lambda s: s.decision == "promoted") - first(trace, lambda s: s.weight > 0) == 3


@pytest.mark.parametrize("interval, threshold", [(10, 1), (10, 3), (5, 5), (2, 2)])
def test_flagger_rolls_back_threshold_times_interval_after_the_first_failed_check(interval: float,
                                                                                 threshold: int) -> None:
    spec = StrategySpec("canary", interval=interval, step_weight=20, max_weight=60, threshold=threshold, gates=GATE)
    trace = Run(spec, checks=lambda t, s: FAIL).go(interval * (threshold + 5))
    failed_first = first(trace, lambda s: s.failed_checks == 1)
    rolled = first(trace, lambda s: s.phase == "Failed")
    assert rolled - failed_first == pytest.approx(threshold * interval)
    end = trace[-1][1]
    assert (end.weight, end.canary_replicas, end.decision, end.decided_by) == (0.0, 0, "rolled_back", "success_rate")
    assert end.stable == "1" and end.primary == "1"


def test_flagger_counts_failed_checks_cumulatively_not_in_a_row() -> None:
    verdicts = iter([FAIL, PASS, FAIL, PASS, PASS, PASS, PASS])
    spec = StrategySpec("canary", interval=1, step_weight=10, max_weight=50, threshold=2, gates=GATE)
    trace = Run(spec, checks=lambda t, s: next(verdicts, PASS) if t >= 2 else PASS).go(12, dt=1)
    assert trace[-1][1].phase == "Failed"


def test_a_gate_that_waits_for_labels_holds_the_weight_without_failing() -> None:
    spec = StrategySpec("canary", interval=1, step_weight=20, max_weight=60, threshold=1, gates=GATE)
    trace = Run(spec, checks=lambda t, s: WAIT if t < 6 else PASS).go(12, dt=1)
    held = [s.weight for t, s in trace if 2 <= t < 6]
    assert set(held) == {0.2} and all(s.failed_checks == 0 for _, s in trace)
    assert trace[-1][1].phase == "Succeeded"


def test_canary_waits_for_its_replicas_before_the_first_shift() -> None:
    spec = StrategySpec("canary", interval=1, step_weight=50, max_weight=50, gates=GATE)
    trace = Run(spec, ready=lambda t: t >= 4.2).go(12, dt=0.2)
    assert first(trace, lambda s: s.weight > 0) >= 4.2
    assert trace[1][1].canary_replicas == 3   # Flagger: the canary Deployment runs the target's replicas


# --- canary, Argo steps -----------------------------------------------------------------------------------------
def test_argo_steps_set_weight_scale_by_weight_pause_and_wait_for_a_person() -> None:
    steps = (Step("setWeight", 20), Step("pause", 3), Step("setWeight", 50), Step("pause", None))
    spec = StrategySpec("canary", interval=1, steps=steps)
    trace = Run(spec, commands={20.0: "promote"}).go(30, dt=0.5)
    at = dict(trace)
    scaled, shifted = first(trace, lambda s: s.canary_replicas == 1), first(trace, lambda s: s.weight == 0.2)
    assert scaled < shifted and at[shifted].canary_replicas == 1   # ceil(20 % of 3), traffic once it is ready
    second = first(trace, lambda s: s.weight == 0.5)
    assert second - shifted >= 3 and at[second].canary_replicas == 2   # after the 3 s pause
    assert at[19.5].phase == "Paused" and at[19.5].decision is None
    assert at[20.0].phase == "Progressing"
    assert trace[-1][1].phase == "Succeeded" and trace[-1][1].decided_by == "steps"


def test_argo_analysis_step_aborts_on_threshold_failures() -> None:
    steps = (Step("setWeight", 30), Step("analysis", 3), Step("setWeight", 100))
    spec = StrategySpec("canary", interval=1, threshold=2, steps=steps, gates=GATE)
    trace = Run(spec, checks=lambda t, s: FAIL).go(10, dt=0.5)
    end = trace[-1][1]
    assert (end.phase, end.weight, end.canary_replicas, end.decided_by) == ("Failed", 0.0, 0, "success_rate")


# --- blue-green -------------------------------------------------------------------------------------------------
def test_blue_green_previews_without_traffic_switches_at_once_and_scales_down_after_the_delay() -> None:
    spec = StrategySpec("blue-green", scale_down_delay_seconds=5)
    trace = Run(spec, ready=lambda t: t >= 2).go(12, dt=0.5)
    at = dict(trace)
    assert (at[1.0].weight, at[1.0].canary_replicas) == (0.0, 3)   # a full preview stack, no users
    assert at[2.0].weight == 1.0                                     # 100 % switch when ready
    assert at[6.5].primary == "1"                                    # old stack kept scaleDownDelaySeconds
    assert at[7.0].phase == "Finalising" and at[7.0].primary == "2"
    assert trace[-1][1].phase == "Succeeded" and trace[-1][1].decided_by == "autoPromotion"


def test_blue_green_without_auto_promotion_waits_for_a_person() -> None:
    spec = StrategySpec("blue-green", auto_promotion_enabled=False, scale_down_delay_seconds=0)
    trace = Run(spec, commands={8.0: "promote"}).go(12, dt=0.5)
    at = dict(trace)
    assert at[7.5].phase == "Paused" and at[7.5].weight == 0.0
    assert at[8.0].weight == 1.0 and at[8.0].decided_by == "human"


def test_blue_green_auto_promotion_seconds_delays_the_switch() -> None:
    spec = StrategySpec("blue-green", auto_promotion_seconds=4, scale_down_delay_seconds=0)
    trace = Run(spec).go(10, dt=0.5)
    assert first(trace, lambda s: s.weight == 1.0) == 4.5   # ready at 0.5 (its first tick) + 4 s


def test_blue_green_pre_promotion_analysis_mirrors_to_the_preview_and_a_failure_never_switches() -> None:
    spec = StrategySpec("blue-green", interval=1, threshold=2, pre_promotion_analysis=3, gates=GATE)
    trace = Run(spec, checks=lambda t, s: FAIL).go(10, dt=0.5)
    assert any(s.mirror for _, s in trace) and all(s.weight == 0 for _, s in trace)
    assert trace[-1][1].phase == "Failed"


def test_blue_green_failed_post_promotion_analysis_switches_back() -> None:
    spec = StrategySpec("blue-green", interval=1, threshold=1, post_promotion_analysis=3, gates=GATE)
    trace = Run(spec, checks=lambda t, s: FAIL).go(10, dt=0.5)
    assert any(s.weight == 1.0 for _, s in trace)
    end = trace[-1][1]
    assert (end.phase, end.weight, end.primary, end.decision) == ("Failed", 0.0, "1", "rolled_back")


# --- shadow and A/B -----------------------------------------------------------------------------------------------
def test_shadow_mirrors_and_never_serves_users_before_its_decision() -> None:
    spec = StrategySpec("shadow", interval=1, iterations=4, gates=GATE)
    trace = Run(spec).go(12, dt=0.5)
    decided = first(trace, lambda s: s.decision is not None)
    assert all(s.weight == 0 and s.cohort == 0 for t, s in trace if t < decided)
    assert any(s.mirror for _, s in trace)
    assert trace[-1][1].phase == "Succeeded"


def test_shadow_rolls_back_on_failed_checks() -> None:
    spec = StrategySpec("shadow", interval=1, iterations=10, threshold=2, gates=GATE)
    end = Run(spec, checks=lambda t, s: FAIL).go(10, dt=0.5)[-1][1]
    assert (end.phase, end.mirror, end.canary_replicas) == ("Failed", False, 0)


def test_ab_sends_a_sticky_share_of_cohorts_then_decides_by_its_gates() -> None:
    spec = StrategySpec("ab", interval=1, iterations=3, share=30, gates=GATE)
    trace = Run(spec).go(10, dt=0.5)
    assert 0.3 in {s.cohort for _, s in trace} and all(s.weight == 0 for _, s in trace if s.decision is None)
    assert trace[-1][1].phase == "Succeeded"


# --- what every strategy shares ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["canary", "blue-green", "shadow", "ab"])
def test_a_person_aborts_or_promotes_any_strategy(kind: str) -> None:
    spec = StrategySpec(kind, interval=1, iterations=50, max_weight=50, step_weight=1, gates=GATE,
                        scale_down_delay_seconds=100)
    aborted = Run(spec, commands={2.0: "abort"}).go(4)[-1][1]
    assert (aborted.phase, aborted.decided_by, aborted.weight, aborted.canary_replicas) == ("Failed", "human", 0, 0)
    promoted = Run(spec, commands={2.0: "promote"}).go(4)[-1][1]
    assert promoted.decision == "promoted" and promoted.decided_by == "human" and promoted.phase == "Succeeded"


def test_the_first_version_is_initialised_without_analysis() -> None:
    spec = StrategySpec("canary", gates=GATE)
    state = strategies.step(spec, State(), Obs(now=0, target="1", replicas=3))
    assert (state.phase, state.stable, state.primary) == ("Initialized", "1", "1")


def test_a_new_release_during_analysis_restarts_it_and_a_revert_rolls_back() -> None:
    spec = StrategySpec("canary", interval=1, step_weight=10, max_weight=50, gates=GATE)
    trace = Run(spec).go(3)
    state = trace[-1][1]
    restarted = strategies.step(spec, state, Obs(now=4, target="3", replicas=3, canary_ready=True))
    assert (restarted.version, restarted.weight, restarted.phase) == ("3", 0.0, "Progressing")
    reverted = strategies.step(spec, state, Obs(now=4, target="1", replicas=3, canary_ready=True))
    assert (reverted.phase, reverted.decided_by) == ("Failed", "revert")


def test_a_canary_that_never_gets_ready_is_rolled_back_by_its_progress_deadline() -> None:
    spec = StrategySpec("canary", interval=1, gates=GATE)
    state = Run(spec, ready=lambda t: False).go(2)[-1][1]
    state = strategies.step(spec, state, Obs(now=3, target="2", replicas=3, canary_failed=True))
    assert (state.phase, state.decided_by) == ("Failed", "progressDeadline")


# --- recreate ------------------------------------------------------------------------------------------------------
@dataclass(eq=False)
class R:
    template: tuple
    state: str = "ready"


def test_recreate_stops_every_old_replica_before_starting_a_new_one() -> None:
    old = [R(("v1",)) for _ in range(3)]
    step = plan(3, 1, 0, ("v2",), old, recreate=True)
    assert step.start == 0 and len(step.stop) == 3
    draining = [replace(r, state="terminating") for r in old]
    assert plan(3, 1, 0, ("v2",), draining, recreate=True).start == 0   # still there: nothing starts
    assert plan(3, 1, 0, ("v2",), [], recreate=True).start == 3
