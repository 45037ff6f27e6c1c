"""The judges against known results: Kayenta's own classifier tests, scipy's Mann–Whitney p-values, the mSPRT's
closed form and its false-rejection rate by simulation, and Flagger's failed-check counting."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from mlopslab.analysis import FailedChecks, Msprt, kayenta_score, mann_whitney_check, msprt_check, threshold_check
from mlopslab.analysis.judges import Decision
from mlopslab.analysis.mannwhitney import MetricClassification, canary_score, classify, remove_outliers, wilcoxon
from mlopslab.analysis.msprt import mixture_likelihood_ratio

# Kayenta's ClassifierSuite (kayenta-judge/src/test/scala/com/netflix/kayenta/judge/ClassifierSuite.scala):
# its data (tests/data/kayenta/classifier_suite.json), its classifier settings, its expected classifications.
# Its classifier is called directly, with no outlier removal (that happens in the judge), so
# remove_outliers=False here.
SUITE = json.loads((Path(__file__).parent / "data" / "kayenta" / "classifier_suite.json").read_text())
LOW_A, LOW_B, HIGH_A, HIGH_B = (SUITE[name] for name in ("low_a", "low_b", "high_a", "high_b"))
KAYENTA = dict(tolerance=0.10, confidence=0.95, remove_outliers=False)


@pytest.mark.parametrize("control, experiment, direction, expected", [
    (LOW_B, LOW_A, "either", "Pass"),        # "Pass Metric"
    (LOW_B, HIGH_A, "either", "High"),       # "High Metric"
    (HIGH_B, LOW_A, "either", "Low"),        # "Low Metric"
    (HIGH_B, LOW_A, "increase", "Pass"),     # "Directional Test: Increase"
    (LOW_B, HIGH_A, "decrease", "Pass"),     # "Directional Test: Decrease"
    (LOW_B, HIGH_A, "increase", "High"),     # "Directional Test: High Metric"
    (HIGH_B, LOW_A, "decrease", "Low"),      # "Directional Test: Low Metric"
    ([1.0, 1.0], [1.0, 1.0, 1.0], "decrease", "Pass"),                   # "Tied Observations"
    ([5.0, 4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0, 5.0], "decrease", "Pass"),   # "Identical Populations"
    ([1.0] * 5, [0.0, 1.0, 1.0, 1.0, 1.0], "decrease", "Pass"),         # "Leading Zero Identical Population"
    ([1.0, 2.0, 3.0, 4.0, 5.0], [], "decrease", "Nodata"),              # "Missing Experiment Data"
])
def test_mann_whitney_reproduces_kayentas_classifier_suite(control, experiment, direction, expected) -> None:
    assert classify(control, experiment, direction=direction, **KAYENTA).classification == expected


@pytest.mark.parametrize("control, experiment, thresholds, direction, expected", [
    ([1.0, 2.2, 1.1, 2.5, 3.0], [20.0, 22.0, 21.0, 25.0, 30.0], (0.8, 1.2), "either", "High"),
    (HIGH_B, LOW_A, (0.8, 1.2), "decrease", "Low"),
    ([20.0, 22.0, 21.0, 25.0, 30.0], [10.0, 12.2, 10.1, 12.5, 23.0], (0.5, 1.0), "either", "Pass"),
])
def test_mann_whitney_applies_kayentas_mean_ratio_effect_size(control, experiment, thresholds, direction,
                                                             expected) -> None:
    result = classify(control, experiment, direction=direction, allowed_decrease=thresholds[0],
                      allowed_increase=thresholds[1], **KAYENTA)
    assert result.classification == expected
    assert result.ratio == pytest.approx(np.mean(experiment) / np.mean(control))


def test_mann_whitney_on_kayentas_large_tied_input() -> None:
    """210 values a side, mostly zeros: High at tolerance 0.1; Pass once the mean ratio may reach 5."""
    data = json.loads((Path(__file__).parent / "data" / "kayenta" / "large_input.json").read_text())
    control, experiment = data["control"], data["experiment"]
    assert classify(control, experiment, **KAYENTA).classification == "High"
    relaxed = classify(control, experiment, allowed_decrease=1.0, allowed_increase=5.0, **KAYENTA)
    assert relaxed.classification == "Pass" and relaxed.ratio == pytest.approx(4.4466, abs=1e-4)


@pytest.mark.parametrize("seed, ties", [(0, False), (1, False), (2, True), (3, True)])
def test_mann_whitney_p_value_equals_scipys_asymptotic_test(seed: int, ties: bool) -> None:
    from scipy.stats import mannwhitneyu

    rng = np.random.default_rng(seed)
    control, experiment = rng.normal(10, 2, 40), rng.normal(10.8, 2, 55)
    if ties:
        control, experiment = np.round(control), np.round(experiment)
    expected = mannwhitneyu(experiment, control, alternative="two-sided", method="asymptotic", use_continuity=True)
    result = wilcoxon(control, experiment)
    assert result.statistic == expected.statistic
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-10)


def test_mann_whitney_interval_and_estimate_bracket_the_pairwise_differences() -> None:
    """Without ties the estimate is the Hodges–Lehmann median of the pairwise differences (to the step) and
    the interval ends sit on pairwise differences, the estimate inside."""
    rng = np.random.default_rng(7)
    control, experiment = rng.normal(0, 1, 31), rng.normal(1, 1, 29)
    result = wilcoxon(control, experiment, confidence=0.98)
    differences = np.sort((experiment[:, None] - control[None, :]).ravel())
    middle = differences.size // 2
    assert differences[middle - 1] - 1e-9 <= result.estimate <= differences[middle] + 1e-9
    assert result.ci_low < result.estimate < result.ci_high
    for end in (result.ci_low, result.ci_high):
        assert np.min(np.abs(differences - end)) < 1e-9
    # 98 % is wider than 95 %
    narrow = wilcoxon(control, experiment, confidence=0.95)
    assert narrow.ci_low > result.ci_low and narrow.ci_high < result.ci_high


def test_outlier_removal_keeps_values_within_both_fences() -> None:
    values = np.array([10.0] * 50 + [11.0] * 50 + [1000.0])
    assert 1000.0 not in remove_outliers(values) and remove_outliers(values).size == 100
    assert remove_outliers(np.arange(100.0)).size == 100


def _labelled(label: str, group: str = "default", critical: bool = False) -> MetricClassification:
    return MetricClassification(label, 1.0, "", group=group, critical=critical)  # type: ignore[arg-type]


def test_canary_score_is_kayentas_weighted_sum_with_default_thresholds() -> None:
    assert canary_score([_labelled("Pass")] * 19 + [_labelled("High")]).classification == "Pass"       # 95
    three_of_four = canary_score([_labelled("Pass")] * 3 + [_labelled("Low")])
    assert three_of_four.score == 75.0 and three_of_four.classification == "Marginal"
    assert canary_score([_labelled("Pass")] * 2 + [_labelled("Low")]).classification == "Fail"          # 66.7
    # Nodata does not count; NodataFailMetric counts as a failure
    assert canary_score([_labelled("Pass"), _labelled("Nodata")]).score == 100.0
    assert canary_score([_labelled("Pass"), _labelled("NodataFailMetric")]).score == 50.0
    # groups: weighted, unweighted groups share the rest
    grouped = [_labelled("Pass", "latency"), _labelled("High", "errors"), _labelled("Pass", "errors")]
    assert canary_score(grouped, {"latency": 70}).score == pytest.approx(70 + 15)
    # a failing critical metric zeroes the score
    assert canary_score([_labelled("Pass")] * 9 + [_labelled("High", critical=True)]).score == 0.0


def test_kayenta_score_over_gate_decisions() -> None:
    same = mann_whitney_check(LOW_B, LOW_A, "increase")
    worse = mann_whitney_check(LOW_B, HIGH_A, "increase")
    assert (same.verdict, worse.verdict) == ("pass", "fail")
    assert worse.details["classification"] == "High" and worse.value == pytest.approx(np.mean(HIGH_A) / np.mean(LOW_B))
    score = kayenta_score([same, worse])
    assert (score.verdict, score.value) == ("fail", 50.0)
    assert mann_whitney_check([1.0], [], "increase").verdict == "wait"


def test_threshold_check_compares_with_min_and_max() -> None:
    assert threshold_check(99.0, 99.0, "min").verdict == "pass"
    assert threshold_check(98.9, 99.0, "min").verdict == "fail"
    assert threshold_check(50.0, 50.0, "max").verdict == "pass"
    failed = threshold_check(50.1, 50.0, "max", unit=" ms")
    assert failed.verdict == "fail" and failed.reason == "50.1 ms > 50 ms"
    assert threshold_check(None, 1.0, "min").verdict == "wait"


def _check(verdict: str) -> Decision:
    return Decision(verdict, None, None, "", "threshold")  # type: ignore[arg-type]


def test_failed_checks_are_cumulative_and_roll_back_at_the_next_interval() -> None:
    """Flagger: a pass does not reset the count; once it reaches the threshold the next interval rolls back."""
    state = FailedChecks(threshold=2)
    actions = []
    for verdict in ("fail", "pass", "wait", "fail", "pass"):
        state, tick = state.tick([_check("pass"), _check(verdict)])
        actions.append((tick.action, tick.failed_checks))
    assert actions == [("halt", 1), ("advance", 1), ("wait", 1), ("halt", 2), ("rollback", 2)]


def test_failed_checks_promote_after_every_step_passed() -> None:
    state, actions = FailedChecks(threshold=1, steps=3), []
    for _ in range(3):
        state, tick = state.tick([_check("pass")])
        actions.append(tick.action)
    assert actions == ["advance", "advance", "promote"]


def test_msprt_likelihood_ratio_is_johari_et_als_closed_form() -> None:
    """Equal arms of n with common σ²: Λ = sqrt(2σ²/(2σ² + nτ²)) exp(n²τ²θ̂² / (4σ²(2σ² + nτ²)))."""
    n, sigma2, tau, theta = 400, 2.5, 0.3, 0.21
    expected = math.sqrt(2 * sigma2 / (2 * sigma2 + n * tau**2)) * math.exp(
        n**2 * tau**2 * theta**2 / (4 * sigma2 * (2 * sigma2 + n * tau**2)))
    assert mixture_likelihood_ratio(theta, 2 * sigma2 / n, tau) == pytest.approx(expected, rel=1e-12)


def test_msprt_likelihood_ratio_integrates_the_normal_likelihood_over_the_mixture() -> None:
    from scipy import integrate, stats

    difference, variance, tau = 0.8, 0.09, 0.5
    def integrand(theta: float) -> float:
        ratio = stats.norm.pdf(difference, theta, math.sqrt(variance)) / stats.norm.pdf(difference, 0, math.sqrt(variance))
        return ratio * stats.norm.pdf(theta, 0, tau)
    value, _ = integrate.quad(integrand, -10, 10, points=[difference])
    assert mixture_likelihood_ratio(difference, variance, tau) == pytest.approx(value, rel=1e-8)


def test_msprt_state_matches_the_batch_statistics_and_its_p_value_never_rises() -> None:
    rng = np.random.default_rng(3)
    stable, canary = rng.normal(10, 2, 600), rng.normal(10.4, 2, 200)
    state, p_values = Msprt(tau=0.5, min_samples=10), []
    for k in range(10):
        state = state.update(stable[k * 60:(k + 1) * 60], canary[k * 20:(k + 1) * 20])
        p_values.append(state.p_value)
    assert p_values == sorted(p_values, reverse=True)
    pooled = (np.sum((stable - stable.mean()) ** 2) + np.sum((canary - canary.mean()) ** 2)) / 798
    variance = pooled * (1 / 600 + 1 / 200)
    assert state.difference == pytest.approx(canary.mean() - stable.mean(), rel=1e-12)
    assert state.variance == pytest.approx(variance, rel=1e-9)
    assert state.likelihood_ratio == pytest.approx(mixture_likelihood_ratio(state.difference, variance, 0.5), rel=1e-9)


def test_msprt_false_rejections_stay_below_alpha_at_every_look() -> None:
    """A/A: 2,000 seeded runs, 200 looks each (20 observations per arm per look): the share of runs rejected
    by look k never exceeds α = 0.05 (with a binomial margin of 3 standard errors)."""
    rng = np.random.default_rng(11)
    runs, looks, per_look, alpha = 2000, 200, 20, 0.05
    rejected_by = np.zeros(looks)
    for _ in range(runs):
        state = Msprt(tau=0.2, alpha=alpha, min_samples=20)
        stable, canary = rng.normal(0, 1, (looks, per_look)), rng.normal(0, 1, (looks, per_look))
        for k in range(looks):
            state = state.update(stable[k], canary[k])
            if state.rejected:
                rejected_by[k:] += 1
                break
    rate = rejected_by / runs
    assert rate.max() <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs)
    assert rate[-1] > 0   # it can reject: the bound is not met by never looking


def test_msprt_check_fails_only_in_the_harmful_direction() -> None:
    rng = np.random.default_rng(5)
    slower, faster = Msprt(tau=5.0, min_samples=30), Msprt(tau=5.0, min_samples=30)
    slower, worse = msprt_check(slower, rng.normal(50, 5, 500), rng.normal(60, 5, 100), "increase")
    faster, better = msprt_check(faster, rng.normal(50, 5, 500), rng.normal(40, 5, 100), "increase")
    assert worse.verdict == "fail" and worse.value is not None and worse.value <= 0.05
    assert better.verdict == "pass" and better.reason.startswith("canary better")
    waiting = msprt_check(Msprt(tau=1.0, min_samples=30), [1.0] * 40, [1.0] * 10, "increase")[1]
    assert waiting.verdict == "wait"


def test_msprt_finding_keeps_the_direction_it_was_made_in() -> None:
    """A canary found better stays 'better' even if later data tilt the mean the other way: the always-valid
    p-value never rises, so the judgment is the one made when it first reached α."""
    state = Msprt(tau=1.0, min_samples=10)
    state, first = msprt_check(state, np.full(200, 10.0) + np.tile([-1, 1], 100), np.full(200, 9.0) + np.tile([-1, 1], 100),
                               "increase")
    assert first.verdict == "pass" and state.decided is not None and state.decided < 0
    state, later = msprt_check(state, np.full(50, 10.0) + np.tile([-1, 1], 25), np.full(2000, 10.2) + np.tile([-1, 1], 1000),
                               "increase")
    assert state.difference > 0 and later.verdict == "pass"
