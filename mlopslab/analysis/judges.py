"""Judges: what a gate's numbers mean for a rollout, as Flagger, Kayenta and Johari et al. decide it.

Each judge returns a `Decision`: a verdict (pass | fail | marginal | wait), the measured value, the threshold
it was held against, a short reason, and the judge's own numbers in `details`.

- `threshold_check` — Flagger's metric check: the value is compared with the gate's min or max once per
  interval. `FailedChecks` is Flagger's counter around it (`pkg/controller/scheduler.go`, `advanceCanary`):
  at each interval it first rolls back when the failed checks already reached `threshold` (Flagger's default
  threshold is 1), then runs the checks; a failed check adds one (cumulative: a pass never resets it) and
  halts advancement; all passing advance the weight; after `steps` advances the canary is promoted. A check
  that waits (not enough data yet, e.g. labels) neither counts nor advances. Flagger itself counts a metric
  query with no data as a failed check: gates choose per metric (`Gate.no_data`).
- `mann_whitney_check` — Kayenta's NetflixACAJudge metric classifier (`mannwhitney.classify`: confidence
  0.98, tolerance 0.25) on the control and experiment series; `kayenta_score` turns several of them into
  Kayenta's canary score with Pass / Marginal / Fail (thresholds 95 / 75).
- `msprt_check` — the sequential judge: one two-sample mSPRT per gate (`msprt.Msprt`), fed the new
  observations each tick; fail once the always-valid p-value is at or below α with the difference in the
  harmful direction. The p-value never rises again, so a failure is final (`FailedChecks(threshold=1)` is the
  natural pairing; a larger threshold only delays the rollback by that many intervals).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from mlopslab.analysis import mannwhitney
from mlopslab.analysis.msprt import Msprt

Verdict = Literal["pass", "fail", "marginal", "wait"]
Bound = Literal["min", "max"]
Action = Literal["advance", "halt", "wait", "rollback", "promote"]


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    value: float | None          # what was measured (a metric, a mean ratio, a p-value: see `judge`)
    threshold: float | None      # what it was held against
    reason: str
    judge: str                   # "threshold" | "mann-whitney" | "msprt" | "kayenta-score"
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "value": _round(self.value), "threshold": self.threshold,
                "reason": self.reason, "judge": self.judge,
                "details": {k: _round(v) if isinstance(v, float) else v for k, v in self.details.items()}}


# --- Flagger -----------------------------------------------------------------------------------------------


def threshold_check(value: float | None, threshold: float, bound: Bound, *, unit: str = "",
                    missing: str = "no data") -> Decision:
    """Flagger's per-interval metric check: pass when `value` is at least (min) or at most (max) `threshold`;
    wait when there is no value (the gate decides whether that should count as a failure)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return Decision("wait", None, threshold, missing, "threshold")
    ok = value >= threshold if bound == "min" else value <= threshold
    sign = ">=" if bound == "min" else "<="
    verdict: Verdict = "pass" if ok else "fail"
    reason = f"{value:.4g}{unit} {sign if ok else ('<' if bound == 'min' else '>')} {threshold:g}{unit}"
    return Decision(verdict, float(value), threshold, reason, "threshold")


@dataclass(frozen=True)
class Tick:
    """What one analysis interval decided for the rollout."""

    action: Action
    failed_checks: int
    advances: int
    reason: str
    checks: tuple[Any, ...] = ()


@dataclass(frozen=True)
class FailedChecks:
    """Flagger's cumulative failed-check counter: immutable, `tick` returns the next state and a `Tick`.

    `steps` is the number of passing intervals until promotion (Flagger: ⌈maxWeight / stepWeight⌉, the
    interval at maxWeight included); None leaves promotion to the caller.
    """

    threshold: int = 1
    steps: int | None = None
    failed: int = 0
    advances: int = 0

    def tick(self, checks: Sequence[Any]) -> tuple[FailedChecks, Tick]:
        """`checks` are `Decision`s or anything with a `verdict` (a gate's result)."""
        if self.failed >= self.threshold:
            return self, Tick("rollback", self.failed, self.advances,
                              f"failed checks {self.failed} reached threshold {self.threshold}", tuple(checks))
        verdicts = [c.verdict for c in checks]
        if "fail" in verdicts:
            state = replace(self, failed=self.failed + 1)
            names = ", ".join(_name(c) for c in checks if c.verdict == "fail")
            return state, Tick("halt", state.failed, self.advances,
                               f"{names} failed: failed checks {state.failed}/{self.threshold}", tuple(checks))
        if "wait" in verdicts:
            names = ", ".join(_name(c) for c in checks if c.verdict == "wait")
            return self, Tick("wait", self.failed, self.advances, f"waiting for {names}", tuple(checks))
        state = replace(self, advances=self.advances + 1)
        if self.steps is not None and state.advances >= self.steps:
            return state, Tick("promote", self.failed, state.advances,
                               f"all {self.steps} steps passed", tuple(checks))
        return state, Tick("advance", self.failed, state.advances, "all checks passed", tuple(checks))


# --- Kayenta -----------------------------------------------------------------------------------------------


def mann_whitney_check(control: Sequence[float] | np.ndarray, experiment: Sequence[float] | np.ndarray,
                       harmful: Literal["increase", "decrease"], *, tolerance: float = mannwhitney.TOLERANCE,
                       confidence: float = mannwhitney.CONFIDENCE, allowed_increase: float = 1.0,
                       allowed_decrease: float = 1.0, data_required: bool = False, group: str = "default",
                       critical: bool = False) -> Decision:
    """Kayenta's classification of experiment against control, looking only in the `harmful` direction
    (Kayenta's metric `direction`): High (or Low) there fails; Pass passes; Nodata waits (NodataFailMetric,
    when `data_required`, fails). `value` is Kayenta's mean ratio experiment / control; `threshold` the
    allowed ratio in the harmful direction."""
    result = mannwhitney.classify(control, experiment, direction=harmful, tolerance=tolerance,
                                  confidence=confidence, allowed_increase=allowed_increase,
                                  allowed_decrease=allowed_decrease, data_required=data_required, group=group,
                                  critical=critical)
    label = result.classification
    verdict: Verdict = ("wait" if label == "Nodata" else "pass" if label == "Pass" else "fail")
    details: dict[str, Any] = {"classification": label, "group": group, "critical": critical,
                               "confidence": confidence, "tolerance": tolerance}
    if result.test is not None:
        details.update(p_value=result.test.p_value, ci_low=result.test.ci_low, ci_high=result.test.ci_high,
                       estimate=result.test.estimate)
    allowed = allowed_increase if harmful == "increase" else allowed_decrease
    return Decision(verdict, result.ratio, allowed, f"{label}: {result.reason}", "mann-whitney", details)


def kayenta_score(decisions: Sequence[Decision], group_weights: Mapping[str, float] | None = None,
                  pass_score: float = mannwhitney.PASS_SCORE,
                  marginal_score: float = mannwhitney.MARGINAL_SCORE) -> Decision:
    """Kayenta's canary score over Mann–Whitney decisions: pass, marginal or fail (`value` is the score,
    `threshold` the pass score)."""
    results = [mannwhitney.MetricClassification(d.details["classification"], d.value or 1.0, d.reason,
                                                group=d.details.get("group", "default"),
                                                critical=bool(d.details.get("critical")))
               for d in decisions if d.judge == "mann-whitney"]
    score = mannwhitney.canary_score(results, group_weights, pass_score, marginal_score)
    verdict: Verdict = {"Pass": "pass", "Marginal": "marginal", "Fail": "fail"}[score.classification]
    return Decision(verdict, score.score, pass_score, score.reason, "kayenta-score",
                    {"classification": score.classification, "marginal": marginal_score,
                     "group_scores": dict(score.group_scores)})


# --- Johari et al. -----------------------------------------------------------------------------------------


def msprt_check(state: Msprt, stable: Sequence[float] | np.ndarray, canary: Sequence[float] | np.ndarray,
                harmful: Literal["increase", "decrease"]) -> tuple[Msprt, Decision]:
    """Feed one tick's new observations to the gate's mSPRT and judge: fail when H0 (no difference) is
    rejected with the canary worse, pass otherwise (no evidence of harm: the schedule goes on), wait until
    each arm has `min_samples` observations. `value` is the always-valid p-value, `threshold` α."""
    state = state.update(stable, canary)
    details = {"difference": state.difference, "n_stable": state.n_stable, "n_canary": state.n_canary,
               "likelihood_ratio": state.likelihood_ratio, "tau": state.tau}
    if state.looks == 0:
        return state, Decision("wait", None, state.alpha,
                               f"{min(state.n_stable, state.n_canary)} of {state.min_samples} observations per arm",
                               "msprt", details)
    # the p-value never rises again, so the finding keeps the direction it had when it was made
    found = state.decided if state.decided is not None else state.difference
    worse = found > 0 if harmful == "increase" else found < 0
    low, high = state.confidence_interval()
    details.update(ci_low=low, ci_high=high)
    if state.rejected and worse:
        reason = f"canary {'higher' if harmful == 'increase' else 'lower'} by {abs(state.difference):.4g}, p = {state.p_value:.3g} <= {state.alpha:g}"
        return state, Decision("fail", state.p_value, state.alpha, reason, "msprt", details)
    reason = (f"canary better, p = {state.p_value:.3g}" if state.rejected
              else f"no evidence of harm, p = {state.p_value:.3g} > {state.alpha:g}")
    return state, Decision("pass", state.p_value, state.alpha, reason, "msprt", details)


def _name(check: Any) -> str:
    return str(getattr(check, "gate", None) or getattr(check, "judge", "check"))


def _round(value: Any) -> Any:
    if isinstance(value, float) and math.isfinite(value):
        return round(value, 6)
    return value
