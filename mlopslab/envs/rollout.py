"""The rolling update as a pure plan: from the desired spec and the replicas there are, what to start and
what to stop. No processes, no clock, no locks: tests drive it with tables (tests/test_rollout_plan.py).

Kubernetes Deployment semantics (RollingUpdate):
- at most `replicas + maxSurge` replicas exist that are not terminating (maxSurge rounds up);
- at least `replicas - maxUnavailable` stay ready (maxUnavailable rounds down; both 0 is refused by the
  validator, and treated as maxUnavailable 1 should it reach here);
- old replicas that are not ready go first, as far as the pods there will be (with this step's starts)
  minus the availability floor minus the new ones not yet ready allow (the Deployment controller's
  `maxScaledDown`), then ready ones as far as the availability floor allows;
- without old replicas, extra new ones are scaled down, unready first;
- a change of template *and* replica count before any new replica exists is a scaling event first, as
  the Deployment controller's `isScalingEvent` makes it: the old replicas are scaled to the new count
  (`Step.start_old`, or stops), and the rolling update starts at the next step.

The runner (`ControlledEnvironment.reconcile`, envs/controller.py) carries the step out through a `ReplicaDriver`, and judges
progress by `Step.progress` for progressDeadlineSeconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class ReplicaState(Protocol):
    template: tuple
    state: str  # starting | ready | terminating


@dataclass(frozen=True)
class Step:
    start: int                    # replicas of the desired template to start now
    stop: tuple[Any, ...]         # replicas to take out of the endpoints and drain: old ones of the rollout
    scale_down: tuple[Any, ...]   # ... and extra new ones when the spec asks for fewer
    progress: tuple[int, int, int]  # (new, new and ready, -old): any part rising is progress
    start_old: tuple[tuple, int] | None = None   # (old template, replicas of it to start): a scaling event

    @property
    def idle(self) -> bool:
        return not (self.start or self.stop or self.scale_down or self.start_old)


def plan(replicas: int, surge: int, unavailable: int, template: tuple, current: Sequence[ReplicaState], *,
         hold_starts: bool = False, scaling: bool = False, recreate: bool = False) -> Step:
    """One reconcile's worth of rolling update. `hold_starts` (a crash loop's back-off) starts nothing.
    `scaling`: the spec changed its template and its replica count at once (a scaling event).
    `recreate` (strategy.type Recreate): every old replica stops, and new ones start only once none is left."""
    if recreate and any(r.template != template for r in current):
        old = [r for r in current if r.template != template and r.state != "terminating"]
        new = [r for r in current if r.template == template and r.state != "terminating"]
        return Step(0, tuple(old), (), (len(new), sum(1 for r in new if r.state == "ready"), -len(old)))
    if surge == 0 and unavailable == 0:
        unavailable = 1
    active = [r for r in current if r.state != "terminating"]
    new = [r for r in active if r.template == template]
    old = [r for r in active if r.template != template]
    if scaling and old and not new and len(old) != replicas:   # scale the old replicas first
        progress = (0, 0, -len(old))
        if len(old) < replicas:
            newest = old[-1].template
            return Step(0, (), (), progress, start_old=(newest, 0 if hold_starts else replicas - len(old)))
        extra = sorted(old, key=lambda r: r.state == "ready")[: len(old) - replicas]
        return Step(0, tuple(extra), (), progress)
    start = 0 if hold_starts else max(0, min(replicas - len(new), replicas + surge - len(active)))
    available = sum(1 for r in active if r.state == "ready")
    floor = replicas - unavailable
    new_unready = len(new) + start - sum(1 for r in new if r.state == "ready")
    cleanup = max(0, len(active) + start - floor - new_unready)
    spare = max(0, available - floor)
    stop = [r for r in old if r.state != "ready"][:cleanup] + [r for r in old if r.state == "ready"][:spare]
    scale_down: list[Any] = []
    if not old and len(new) > replicas:
        scale_down = sorted(new, key=lambda r: r.state == "ready")[: len(new) - replicas]
    progress = (min(len(new), replicas), sum(1 for r in new if r.state == "ready"), -len(old))
    return Step(start, tuple(stop), tuple(scale_down), progress)
