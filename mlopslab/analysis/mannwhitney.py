"""Kayenta's canary judge: the Mann–Whitney metric classifier and the canary score, in numpy.

Semantics follow Kayenta's `NetflixACAJudge` and `MannWhitneyClassifier` (spinnaker/kayenta, kayenta-judge) and
its `MannWhitney` test (kayenta-mannwhitney), read from the source; no code is shared.

Per metric, control (stable) against experiment (canary):

1. NaNs are dropped; outliers are removed from each side with Kayenta's IQR detector (factor 3, reduced
   sensitivity: a value is removed only when it lies beyond both Tukey's fence and the 1st/99th percentile).
2. Either side empty → ``Nodata``. Identical samples, or a single distinct value over both → ``Pass``.
   Both sides constant but different → a tiny Gaussian noise (value × 1e-5, fixed seed here) breaks the ties,
   as Kayenta does.
3. R's asymptotic two-sample Wilcoxon procedure (``wilcox.test(x, y, conf.int=TRUE, correct=TRUE)``, which
   Kayenta ports): the confidence interval for the shift experiment − control at ``confidence`` (0.98 in
   the judge) and the Hodges–Lehmann-style estimate, both roots of the tie-corrected, continuity-corrected
   normal statistic as a function of the shift.
4. ``High`` when the interval lies above ``tolerance`` × |estimate| (0.25 in the judge) and the mean ratio
   experiment/control is at least ``allowed_increase`` (default 1.0); ``Low`` when it lies below
   −``tolerance`` × |estimate| and the ratio is at most ``allowed_decrease`` (1.0). ``direction`` limits the
   check to one side (Kayenta's increase | decrease | either). Otherwise ``Pass``.

Note what the tolerance is: a fraction of the estimate itself, not of the baseline. With enough data any
consistent shift, however small against the baseline, classifies; only the effect-size thresholds (the mean
ratio) bound it relative to the baseline.

The canary score is Kayenta's weighted sum: per group, 100 × Pass / (Pass + High + Low + NodataFailMetric)
(``Nodata`` is not counted); groups combine by weight (unweighted groups share what is left of 100); any
critical metric not ``Pass`` makes the score 0. The score classifies as ``Pass`` at or above the pass
threshold, ``Marginal`` at or above the marginal one, else ``Fail`` (Spinnaker's defaults: 95 and 75).

The p-value reported next to the classification is the two-sided normal approximation with tie and
continuity correction, equal to ``scipy.stats.mannwhitneyu(..., method="asymptotic")``; Kayenta reports a
p-value too but never classifies by it. Everything here is numpy and the standard library (no scipy).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np

Classification = Literal["High", "Low", "Pass", "Nodata", "NodataFailMetric"]
Direction = Literal["increase", "decrease", "either"]

CONFIDENCE = 0.98        # NetflixACAJudge's confLevel
TOLERANCE = 0.25         # NetflixACAJudge's tolerance
PASS_SCORE = 95.0        # Spinnaker's default scoreThresholds.pass
MARGINAL_SCORE = 75.0    # ... and scoreThresholds.marginal
_NOISE_SCALE = 1e-5
_MAX_PAIRS = 4_000_000   # pairwise differences held in memory to find the roots exactly


@dataclass(frozen=True)
class WilcoxonResult:
    """The asymptotic Wilcoxon rank-sum test of experiment − control."""

    statistic: float     # U of the experiment sample
    p_value: float       # two-sided, tie- and continuity-corrected normal approximation
    ci_low: float        # confidence interval for the shift experiment − control
    ci_high: float
    estimate: float      # the shift at which the statistic is zero (Hodges–Lehmann style)


@dataclass(frozen=True)
class MetricClassification:
    classification: Classification
    ratio: float                         # mean(experiment) / mean(control), Kayenta's effect size
    reason: str
    test: WilcoxonResult | None = None
    bounds: tuple[float, float] | None = None   # ±tolerance × |estimate|
    group: str = "default"
    critical: bool = False


@dataclass(frozen=True)
class CanaryScore:
    score: float
    classification: Literal["Pass", "Marginal", "Fail"]
    reason: str
    group_scores: Mapping[str, float]


def wilcoxon(control: Sequence[float] | np.ndarray, experiment: Sequence[float] | np.ndarray,
             confidence: float = CONFIDENCE) -> WilcoxonResult:
    """R's asymptotic two-sample Wilcoxon test with its confidence interval, as Kayenta's `MannWhitney` ports it.

    The statistic at a shift ``mu`` is z(mu) = (W(mu) − sign·½) / σ with W(mu) = U(experiment − mu, control) −
    n·m/2 and σ the tie-corrected standard deviation; z falls as mu grows. The interval ends are where z
    crosses ±z_{1−α/2} and the estimate where it crosses 0, each searched between min(x) − max(y) and
    max(x) − min(y) (the ends themselves when z does not cross there). z only changes at the pairwise
    differences x_i − y_j, so the crossing is one of them: found by bisection over the sorted differences
    (Kayenta's Brent solver converges to the same point), or over the reals to 1e-12 of the range when
    there are more than 4 million pairs.
    """
    x = np.asarray(experiment, dtype=np.float64)
    y = np.asarray(control, dtype=np.float64)
    if x.size == 0 or y.size == 0:
        raise ValueError("both samples need at least one value")
    z0, u = _z(x, y, 0.0)
    p_value = min(1.0, math.erfc(abs(z0) / math.sqrt(2.0)))
    quantile = NormalDist().inv_cdf(1.0 - (1.0 - confidence) / 2.0)
    low_end, high_end = float(x.min() - y.max()), float(x.max() - y.min())
    steps = np.unique(np.subtract.outer(x, y)) if x.size * y.size <= _MAX_PAIRS else None
    ci_low = _root(x, y, quantile, low_end, high_end, steps)
    ci_high = _root(x, y, -quantile, low_end, high_end, steps)
    estimate = _root(x, y, 0.0, low_end, high_end, steps)
    return WilcoxonResult(u, p_value, ci_low, ci_high, estimate)


def classify(control: Sequence[float] | np.ndarray, experiment: Sequence[float] | np.ndarray, *,
             direction: Direction = "either", tolerance: float = TOLERANCE, confidence: float = CONFIDENCE,
             allowed_increase: float = 1.0, allowed_decrease: float = 1.0, remove_outliers: bool = True,
             data_required: bool = False, group: str = "default", critical: bool = False) -> MetricClassification:
    """Kayenta's classification of one metric: ``High``, ``Low``, ``Pass``, or ``Nodata`` (``NodataFailMetric``
    when ``data_required``: counted as a failure in the score)."""
    x = _clean(experiment, remove_outliers)
    y = _clean(control, remove_outliers)
    if x.size == 0 or y.size == 0:
        label: Classification = "NodataFailMetric" if data_required else "Nodata"
        return MetricClassification(label, 1.0, "missing data for the canary or the baseline", group=group,
                                    critical=critical)
    if np.array_equal(np.sort(x), np.sort(y)):
        return MetricClassification("Pass", 1.0, "the canary and baseline data are identical", group=group)
    if np.unique(np.concatenate((x, y))).size == 1:
        return MetricClassification("Pass", 1.0, "a single value over both samples", group=group)
    if np.unique(x).size == 1 and np.unique(y).size == 1:   # each side constant: Kayenta adds noise
        rng = np.random.default_rng(0)
        x = x + rng.normal(0.0, abs(x[0]) * _NOISE_SCALE, x.size)
        y = y + rng.normal(0.0, abs(y[0]) * _NOISE_SCALE, y.size)
    test = wilcoxon(y, x, confidence)
    ratio = 1.0 if float(np.mean(y)) == 0.0 else _mean_ratio(y, x)
    bound = tolerance * abs(test.estimate)
    high = direction in ("increase", "either") and test.ci_low > bound and ratio >= allowed_increase
    low = direction in ("decrease", "either") and test.ci_high < -bound and ratio <= allowed_decrease
    label = "High" if high else "Low" if low else "Pass"
    interval = f"[{test.ci_low:.4g}, {test.ci_high:.4g}]"
    reason = (f"shift {test.estimate:.4g} ({confidence:.0%} CI {interval}) beyond ±{bound:.4g}, mean ratio {ratio:.3g}"
              if label != "Pass" else f"shift {test.estimate:.4g}, {confidence:.0%} CI {interval} within ±{bound:.4g}")
    return MetricClassification(label, ratio, reason, test, (-bound, bound), group, critical)


def canary_score(results: Sequence[MetricClassification], group_weights: Mapping[str, float] | None = None,
                 pass_score: float = PASS_SCORE, marginal_score: float = MARGINAL_SCORE) -> CanaryScore:
    """Kayenta's `WeightedSumScorer` and `ThresholdScoreClassifier` over metric classifications."""
    weights = dict(group_weights or {})
    groups: dict[str, list[str]] = {}
    for result in results:
        groups.setdefault(result.group, []).append(result.classification)
    scores: dict[str, float] = {}
    for name, labels in groups.items():
        counted = [c for c in labels if c in ("High", "Low", "Pass", "NodataFailMetric")]
        if counted:
            scores[name] = 100.0 * counted.count("Pass") / len(counted)
    unweighted = set(groups) - set(weights)
    share = (100.0 - sum(weights.values())) / len(unweighted) if unweighted else 0.0
    score = sum(s * weights.get(name, share) / 100.0 for name, s in scores.items())
    critical = [r for r in results if r.critical and r.classification != "Pass"]
    if critical:
        score = 0.0
    label: Literal["Pass", "Marginal", "Fail"] = (
        "Pass" if score >= pass_score else "Marginal" if score >= marginal_score else "Fail")
    passed = sum(r.classification == "Pass" for r in results)
    reason = (f"critical metric {critical[0].classification}" if critical else
              f"{passed} of {len(results)} metrics pass: score {score:.1f} "
              f"(pass ≥ {pass_score:g}, marginal ≥ {marginal_score:g})")
    return CanaryScore(score, label, reason, scores)


def remove_outliers(values: np.ndarray, factor: float = 3.0) -> np.ndarray:
    """Kayenta's `IQRDetector(factor, reduceSensitivity=true)`: keep values within
    [min(p1, Q1 − factor·IQR), max(p99, Q3 + factor·IQR)], percentiles as commons-math estimates them."""
    if values.size == 0:
        return values
    ordered = np.sort(values)
    p1, p25, p75, p99 = (_percentile(ordered, q) for q in (1.0, 25.0, 75.0, 99.0))
    iqr = p75 - p25
    low, high = min(p1, p25 - factor * iqr), max(p99, p75 + factor * iqr)
    return values[(values >= low) & (values <= high)]


# --- internals ------------------------------------------------------------------------------------------------


def _clean(values: Sequence[float] | np.ndarray, outliers: bool) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    array = array[~np.isnan(array)]
    return remove_outliers(array) if outliers else array


def _percentile(ordered: np.ndarray, q: float) -> float:
    """commons-math `Percentile` (legacy estimation): position q·(n+1)/100, clamped to the ends."""
    n = ordered.size
    position = q * (n + 1) / 100.0
    if position < 1:
        return float(ordered[0])
    if position >= n:
        return float(ordered[-1])
    whole = int(math.floor(position))
    return float(ordered[whole - 1] + (position - whole) * (ordered[whole] - ordered[whole - 1]))


def _mean_ratio(control: np.ndarray, experiment: np.ndarray) -> float:
    """Kayenta's `EffectSizes.meanRatio`: mean(experiment) / mean(control); NaN when either mean is 0."""
    c, e = float(np.mean(control)), float(np.mean(experiment))
    return math.nan if c == 0.0 or e == 0.0 else e / c


def _average_ranks(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ranks 1..N with ties averaged, and the size of every tie group."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    sizes = np.diff(np.append(starts, ordered.size))
    mean_rank = starts + (sizes + 1) / 2.0
    ranks = np.empty(values.size)
    ranks[order] = np.repeat(mean_rank, sizes)
    return ranks, sizes


def _z(x: np.ndarray, y: np.ndarray, mu: float) -> tuple[float, float]:
    """The corrected normal statistic of x − mu against y, and U of x − mu."""
    n, m = float(x.size), float(y.size)
    ranks, ties = _average_ranks(np.concatenate((x - mu, y)))
    u = float(ranks[: x.size].sum()) - n * (n + 1) / 2.0
    dz = u - n * m / 2.0
    correction = 0.5 * np.sign(dz)
    sigma = math.sqrt(n * m / 12.0 * ((n + m + 1) - float(np.sum(ties.astype(np.float64) ** 3 - ties))
                                      / ((n + m) * (n + m - 1))))
    if sigma == 0:
        raise ValueError("cannot compute the interval when all observations are tied")
    return (dz - correction) / sigma, u


def _root(x: np.ndarray, y: np.ndarray, target: float, low: float, high: float,
          steps: np.ndarray | None = None) -> float:
    """Where z(mu) crosses `target` in [low, high] (z falls as mu grows); an end when it does not cross.

    With `steps` (the sorted distinct pairwise differences, where z can change) the answer is the first
    step after which z is at or below the target, tested between steps."""
    if _z(x, y, low)[0] - target <= 0:
        return low
    if _z(x, y, high)[0] - target >= 0:
        return high
    if steps is not None and steps.size > 1:
        first, last = 0, steps.size - 1   # invariant: above target between steps[first-1] and steps[first]
        while first < last:
            middle = (first + last) // 2
            if _z(x, y, (steps[middle] + steps[middle + 1]) / 2.0)[0] - target > 0:
                first = middle + 1
            else:
                last = middle
        step = float(steps[first])
        # z jumps at the step: the crossing is just after it when z there is still above the target, just
        # before it when already below (where a bisection over the reals, like Kayenta's solver, ends up).
        # With ties a jump can be large (Kayenta's large tied input: z leaps across the whole interval at a
        # shift of 0), and that side decides High against Pass, as it does for Kayenta.
        above = _z(x, y, step)[0] - target
        return step if above == 0 else float(np.nextafter(step, math.inf if above > 0 else -math.inf))
    tolerance = 1e-12 * max(1.0, high - low)
    while high - low > tolerance:
        middle = (low + high) / 2.0
        if _z(x, y, middle)[0] - target > 0:
            low = middle
        else:
            high = middle
    return (low + high) / 2.0
