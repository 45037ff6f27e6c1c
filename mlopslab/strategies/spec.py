"""What a lane's `strategy:` says, as frozen data: the strategy's type and parameters and its gates.

Names and defaults follow the anchors: Flagger's canary analysis (interval, threshold, stepWeight or
stepWeights, maxWeight, iterations), Argo Rollouts' canary steps (setWeight, pause, pause with no
duration, analysis) and blue-green (autoPromotionEnabled, autoPromotionSeconds, scaleDownDelaySeconds,
prePromotionAnalysis, postPromotionAnalysis), KServe/Seldon's shadow and A/B split. A spec travels through
the env repo as one JSON annotation (`to_json` / `from_json`), so a pull agent's copy is the same object.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

TYPES = ("rolling", "recreate", "blue-green", "canary", "shadow", "ab")
PROGRESSIVE = ("blue-green", "canary", "shadow", "ab")   # need a second replica group and the router
METRICS = ("success_rate", "p99", "accuracy", "disagreement", "prediction_drift", "input_drift")
JUDGES = ("threshold", "mann-whitney", "msprt")


@dataclass(frozen=True)
class GateSpec:
    """One analysis metric with its bound (Flagger's thresholdRange) and the window it is measured over."""

    metric: str
    min: float | None = None
    max: float | None = None
    window: float | None = None     # seconds of requests looked at; None: the strategy's interval
    judge: str = "threshold"
    min_samples: int = 10           # fewer samples in the window: the verdict is "wait"
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or self.metric


@dataclass(frozen=True)
class Step:
    """An Argo Rollouts canary step: setWeight N, pause (seconds; None waits for a person), analysis N checks."""

    kind: str                        # setWeight | pause | analysis
    value: float | None = None


@dataclass(frozen=True)
class StrategySpec:
    type: str = "rolling"
    interval: float = 60.0                       # Flagger: analysis.interval (1m in its examples)
    threshold: int = 5                           # failed checks before rollback (Flagger's examples: 5)
    step_weight: float = 10.0                    # percent
    step_weights: tuple[float, ...] = ()
    max_weight: float = 50.0
    iterations: int = 10                         # shadow / A/B / blue-green analyses: checks to pass
    steps: tuple[Step, ...] = ()                 # Argo form; when given it replaces the Flagger form
    auto_promotion_enabled: bool = True
    auto_promotion_seconds: float | None = None
    scale_down_delay_seconds: float = 30.0
    pre_promotion_analysis: int = 0              # checks that must pass on the preview (copies of traffic)
    post_promotion_analysis: int = 0             # checks that must pass after the switch, else switch back
    share: float = 50.0                          # A/B: percent of cohorts that get the candidate
    gates: tuple[GateSpec, ...] = field(default_factory=tuple)

    @property
    def progressive(self) -> bool:
        return self.type in PROGRESSIVE

    def weights(self) -> tuple[float, ...]:
        """The Flagger form's weight ladder, in percent: stepWeights, else stepWeight up to maxWeight."""
        if self.step_weights:
            return self.step_weights
        n = max(1, math.ceil(self.max_weight / self.step_weight))
        return tuple(min(self.max_weight, self.step_weight * (k + 1)) for k in range(n))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> StrategySpec:
        data: dict[str, Any] = json.loads(text)
        return cls(**{**data, "step_weights": tuple(data.get("step_weights", ())),
                      "steps": tuple(Step(**s) for s in data.get("steps", ())),
                      "gates": tuple(GateSpec(**g) for g in data.get("gates", ()))})
