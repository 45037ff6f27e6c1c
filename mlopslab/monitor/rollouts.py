"""A lane's strategy as its events tell it: the weight series for the plot, each gate's latest verdict for
the gate panel, and the decisions and costs for the summary. Folded by RunState (monitor/timeline.py)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from mlopslab import eventtypes as ev

SERIES = 900


@dataclass
class RolloutView:
    strategy: str | None = None
    phase: str | None = None
    step: dict[str, Any] = field(default_factory=dict)                    # the latest strategy_step's fields
    weights: deque = field(default_factory=lambda: deque(maxlen=SERIES))  # (t, % to candidate, mirror, % cohorts)
    gates: dict[str, dict[str, Any]] = field(default_factory=dict)        # gate -> its latest verdict (+ "rel")
    marks: list[tuple[float, str]] = field(default_factory=list)          # (t, promoted | rolled_back)
    done: list[dict[str, Any]] = field(default_factory=list)              # strategy_done events


def reduce(view: RolloutView, e: ev.Event, t: float) -> None:
    match e:
        case ev.StrategyStep():
            view.strategy, view.phase, view.step = e.strategy, e.phase, e.fields()
            if e.version != e.stable or e.phase in ("Succeeded", "Failed"):
                if e.phase in ("Progressing", "Paused") and not view.weights:
                    view.weights.append((t, 0.0, False, 0.0))
                # once promoted the candidate takes every request (until the next one starts at 0)
                weight = 100.0 if e.phase == "Succeeded" else float(e.weight or 0.0)
                view.weights.append((t, weight, bool(e.mirror), float(e.cohort or 0.0)))
        case ev.Gate():
            view.gates[str(e.gate)] = {**e.fields(), "rel": t}
        case ev.StrategyDecision():
            view.marks.append((t, str(e.decision)))
            if e.strategy:
                view.strategy = e.strategy
        case ev.StrategyDone():
            view.done.append(e.fields())
