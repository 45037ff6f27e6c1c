"""The rolling update as a pure plan, against Kubernetes' documented arithmetic (Deployment, RollingUpdate):
maxSurge rounds up, maxUnavailable rounds down; never more than replicas + surge, never fewer ready than
replicas - unavailable. No processes: each row is a state of the replicas and what the plan does next."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from mlopslab.envs.base import Strategy
from mlopslab.envs.rollout import plan

OLD, NEW = ("v1",), ("v2",)


@dataclass(eq=False)   # replicas are told apart by identity, as pods by name
class R:
    template: tuple
    state: str = "ready"


def replicas(old_ready: int = 0, old_starting: int = 0, new_ready: int = 0, new_starting: int = 0,
             terminating: int = 0) -> list[R]:
    return ([R(OLD) for _ in range(old_ready)] + [R(OLD, "starting") for _ in range(old_starting)]
            + [R(NEW) for _ in range(new_ready)] + [R(NEW, "starting") for _ in range(new_starting)]
            + [R(OLD, "terminating") for _ in range(terminating)])


@pytest.mark.parametrize("replicas_, surge, unavailable, expected", [
    # the Kubernetes docs' example: 25 % of 10 is 3 surge (2.5 up) and 2 unavailable (2.5 down)
    (10, "25%", "25%", (3, 2)),
    (3, "25%", "25%", (1, 0)),       # 0.75: surge 1, unavailable 0
    (4, "25%", "25%", (1, 1)),
    (1, "25%", "25%", (1, 0)),
    (5, "50%", "0%", (3, 0)),
    (5, 2, "40%", (2, 2)),
    (3, 0, 0, (0, 1)),               # both zero: Kubernetes refuses it; unavailable 1 if it reaches here
])
def test_surge_rounds_up_and_unavailability_rounds_down(replicas_: int, surge: int | str, unavailable: int | str,
                                                        expected: tuple[int, int]) -> None:
    assert Strategy(surge, unavailable).resolve(replicas_) == expected


@pytest.mark.parametrize("name, spec, current, start, stop", [
    # 3 replicas, maxSurge 1, maxUnavailable 0: one new at a time, an old one goes once a new one is ready
    ("surge first", (3, 1, 0), replicas(old_ready=3), 1, 0),
    ("wait for readiness", (3, 1, 0), replicas(old_ready=3, new_starting=1), 0, 0),
    ("new ready: one old goes", (3, 1, 0), replicas(old_ready=3, new_ready=1), 0, 1),
    ("while it drains: the next new", (3, 1, 0), replicas(old_ready=2, new_ready=1, terminating=1), 1, 0),
    ("done", (3, 1, 0), replicas(new_ready=3), 0, 0),
    # maxSurge 0, maxUnavailable 1: take one old down first, then start its replacement
    ("no surge: an old one goes first", (3, 0, 1), replicas(old_ready=3), 0, 1),
    ("no surge: then its replacement", (3, 0, 1), replicas(old_ready=2, terminating=1), 1, 0),
    # 10 replicas at 25 %/25 %: 3 surge at once and 2 old ones down at once
    ("docs example, first step", (10, 3, 2), replicas(old_ready=10), 3, 2),
    # the Deployment controller's maxScaledDown = pods (4, with the new one) - floor (3) - new unready (1) = 0:
    # an unready old replica stays until a new one is ready
    ("unready old replicas wait for a ready new one", (3, 1, 0), replicas(old_ready=2, old_starting=1), 1, 0),
    ("then they go first", (3, 1, 0), replicas(old_ready=2, old_starting=1, new_ready=1), 0, 1),
    ("a crashing new version adds nothing beyond the surge", (3, 1, 0), replicas(old_ready=3, new_starting=1), 0, 0),
])
def test_rolling_update_steps(name: str, spec: tuple[int, int, int], current: list[R], start: int, stop: int) -> None:
    step = plan(spec[0], spec[1], spec[2], NEW, current)
    assert (step.start, len(step.stop)) == (start, stop), name
    assert all(r.template == OLD for r in step.stop)
    active = [r for r in current if r.state != "terminating"]
    assert len(active) + step.start <= spec[0] + spec[1], "more than replicas + maxSurge"
    ready_after = sum(1 for r in active if r.state == "ready" and r not in step.stop)
    assert ready_after >= min(spec[0] - spec[2], sum(1 for r in active if r.state == "ready")), "below the floor"


def test_unready_old_replicas_are_stopped_before_ready_ones() -> None:
    current = replicas(old_ready=2, old_starting=1)
    step = plan(3, 1, 2, NEW, current)      # floor 1: one ready old one may go too, after the unready one
    assert [r.state for r in step.stop] == ["starting", "ready"]
    assert [r.state for r in plan(3, 1, 1, NEW, current).stop] == ["starting"]   # floor 2: only the unready


def test_a_plain_scale_down_stops_unready_replicas_first() -> None:
    current = [R(NEW), R(NEW, "starting"), R(NEW), R(NEW)]
    step = plan(2, 1, 0, NEW, current)
    assert step.stop == () and [r.state for r in step.scale_down] == ["starting", "ready"]


def test_a_back_off_starts_nothing_and_progress_counts_only_the_new_version() -> None:
    current = replicas(old_ready=3, new_starting=1)
    held = plan(3, 1, 0, NEW, current, hold_starts=True)
    assert held.start == 0 and held.progress == (1, 0, -3)
    assert plan(3, 1, 0, NEW, replicas(new_ready=3)).idle


def test_a_whole_rollout_converges_within_its_bounds() -> None:
    """Plays the plan to the end: every new replica becomes ready one tick after it starts; a drained one
    disappears one tick after it was stopped. Surge and availability hold at every tick."""
    for total, surge, unavailable in [(3, 1, 0), (3, 0, 1), (10, 3, 2), (5, 2, 2), (1, 1, 0)]:
        current = replicas(old_ready=total)
        for _ in range(50):
            current = [r for r in current if r.state != "terminating"]
            for r in current:
                if r.state == "starting":
                    r.state = "ready"
            step = plan(total, surge, unavailable, NEW, current)
            if step.idle and all(r.template == NEW for r in current):
                break
            for r in step.stop:
                r.state = "terminating"
            current += [R(NEW, "starting") for _ in range(step.start)]
            active = [r for r in current if r.state != "terminating"]
            assert len(active) <= total + surge
            assert sum(1 for r in active if r.state == "ready") >= total - unavailable
        assert len(current) == total and all(r.template == NEW and r.state == "ready" for r in current)


def test_a_new_template_with_a_new_replica_count_scales_the_old_replicas_first() -> None:
    """Kubernetes' isScalingEvent: a Deployment scaled by hand to 1, then a release at 3 replicas, first
    scales the old ReplicaSet to 3, then rolls one at a time (and only while it is a scaling event)."""
    current = replicas(old_ready=1)
    step = plan(3, 1, 0, NEW, current, scaling=True)
    assert step.start == 0 and step.start_old == (OLD, 2) and step.stop == ()
    assert plan(3, 1, 0, NEW, current).start_old is None          # not a scaling event: roll at once
    after = replicas(old_ready=1, old_starting=2)
    rolling = plan(3, 1, 0, NEW, after)
    assert rolling.start == 1 and rolling.stop == ()                # surge 1, and nothing below the floor
    down = plan(1, 1, 0, NEW, replicas(old_ready=3), scaling=True)
    assert len(down.stop) == 2 and down.start == 0
