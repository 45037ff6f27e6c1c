"""Drift statistics equal scipy's numbers and Evidently's definitions, feature by feature and in a report."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance

from mlopslab.monitor import drift

SIZES = [
    (8, 11),  # exact p-value, tiny
    (50, 60),
    (300, 300),  # exact, equal sizes
    (2000, 1500),
    (10_000, 10_000),  # the largest exact case of 'auto'
    (10_001, 500),  # the smallest asymptotic one
    (20_000, 15_000),
    (100_000, 100_000),
]


def samples(n: int, m: int, shift: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed + n + m)
    return rng.normal(size=n), rng.normal(shift, 1.05, size=m)


def evidently_binned(reference: np.ndarray, current: np.ndarray, fill_zeros: bool) -> tuple[np.ndarray, np.ndarray]:
    """Evidently's get_binned_data for a numerical column with more than 20 distinct reference values,
    transcribed with numpy's own histogram functions."""
    bins = np.histogram_bin_edges(np.concatenate((reference, current)), bins="sturges")
    ref = np.histogram(reference, bins)[0] / len(reference)
    cur = np.histogram(current, bins)[0] / len(current)
    if fill_zeros:
        for shares in (ref, cur):
            smallest = min(shares[shares != 0])
            np.place(shares, shares == 0, smallest / 10**6 if smallest <= 0.0001 else 0.0001)
    return ref, cur


@pytest.mark.parametrize(("n", "m"), SIZES)
def test_ks_equals_scipy_ks_2samp_on_exact_and_asymptotic_paths(n: int, m: int) -> None:
    reference, current = samples(n, m)
    ours = drift.ks_2samp(reference, current)
    theirs = stats.ks_2samp(reference, current)
    assert ours.statistic == float(theirs.statistic)
    assert ours.pvalue == float(theirs.pvalue)


@pytest.mark.parametrize(("n", "m"), SIZES)
def test_wasserstein_equals_scipy(n: int, m: int) -> None:
    reference, current = samples(n, m)
    assert drift.wasserstein_distance(reference, current) == stats.wasserstein_distance(reference, current)


def test_ks_and_wasserstein_handle_ties_like_scipy() -> None:
    rng = np.random.default_rng(3)
    reference = rng.integers(0, 5, size=3000).astype(float)
    current = rng.integers(0, 6, size=20_000).astype(float)
    ours = drift.ks_2samp(reference, current)
    theirs = stats.ks_2samp(reference, current)
    assert (ours.statistic, ours.pvalue) == (float(theirs.statistic), float(theirs.pvalue))
    assert drift.wasserstein_distance(reference, current) == stats.wasserstein_distance(reference, current)
    same = drift.ks_2samp(reference, reference.copy())
    assert same.statistic == 0.0 and same.pvalue == 1.0


@pytest.mark.parametrize(("n", "m"), [(500, 700), (5000, 4000), (100_000, 100_000)])
def test_wasserstein_normed_is_evidentlys_definition(n: int, m: int) -> None:
    reference, current = samples(n, m, shift=0.3)
    # Evidently: np.std of the reference column as given (unsorted), then scipy's distance over it.
    expected = stats.wasserstein_distance(reference, current) / max(float(np.std(reference)), 0.001)
    assert drift.wasserstein_normed(reference, current) == expected
    report = drift.feature_drift_report(reference, current, methods=("wasserstein",), stattest="wasserstein")
    assert report.features[0].wasserstein == expected


@pytest.mark.parametrize("n", [141, 1000, 20_000, 50_000])
def test_kstwo_shortcut_equals_scipys_kstwo_sf(n: int) -> None:
    # d spans kstwo's branches: n·d <= 1, Pelz-Good / Durbin (n·d² < 2.2), 2·smirnov (2.2 <= n·d² < 370),
    # 0 (n·d² >= 370), d >= 0.5, and n·d >= n - 1.
    for nd2 in (0.3, 1.0, 2.19, 2.2, 5.0, 40.0, 200.0, 369.9, 370.0, 900.0):
        d = math.sqrt(nd2 / n)
        for x in (d, 0.9 / n, 0.5, 0.75, 1 - 0.5 / n):
            assert drift._kstwo_sf(x, n) == float(np.clip(stats.kstwo.sf(x, n), 0, 1)), (n, x)


def test_binning_spans_a_constant_sample_like_numpy() -> None:
    reference = np.full(50, 3.0) + np.arange(50) * 1e-9  # over 20 distinct values, a tiny range
    current = np.full(60, 3.0)
    ours = drift.binned_shares(reference, current, fill_zeros=False)
    theirs = evidently_binned(reference, current, fill_zeros=False)
    np.testing.assert_array_equal(ours[0], theirs[0])
    np.testing.assert_array_equal(ours[1], theirs[1])


def test_wasserstein_normed_floors_a_constant_reference_spread() -> None:
    reference = np.full(100, 2.0)
    current = np.full(100, 2.5)
    assert drift.wasserstein_normed(reference, current) == pytest.approx(0.5 / 0.001)


@pytest.mark.parametrize(("n", "m"), [(200, 300), (5000, 4000), (30_000, 35_536), (100_000, 100_000)])
def test_binning_is_evidentlys_sturges_histogram(n: int, m: int) -> None:
    reference, current = samples(n, m, shift=0.4)  # 30,000 + 35,536 = 2**16: Sturges' count is whole
    for fill in (True, False):
        ours = drift.binned_shares(reference, current, fill_zeros=fill)
        theirs = evidently_binned(reference, current, fill_zeros=fill)
        np.testing.assert_array_equal(ours[0], theirs[0])
        np.testing.assert_array_equal(ours[1], theirs[1])


@pytest.mark.parametrize(("n", "m"), [(200, 300), (5000, 4000), (100_000, 100_000)])
def test_jensenshannon_equals_scipy_on_the_binned_distributions(n: int, m: int) -> None:
    reference, current = samples(n, m, shift=0.4)
    p, q = drift.binned_shares(reference, current, fill_zeros=False)
    expected = distance.jensenshannon(p, q)
    assert drift.js_distance(p, q) == pytest.approx(expected, rel=1e-12)
    assert drift.jensenshannon(reference, current) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("n", "m"), [(200, 300), (5000, 4000), (100_000, 100_000)])
def test_psi_is_evidentlys_formula_on_its_bins(n: int, m: int) -> None:
    reference, current = samples(n, m, shift=0.4)
    ref, cur = evidently_binned(reference, current, fill_zeros=True)
    assert drift.psi(reference, current) == np.sum((ref - cur) * np.log(ref / cur))


def test_psi_by_hand_on_two_values() -> None:
    reference = np.array([0.0] * 50 + [1.0] * 50)
    current = np.array([0.0] * 80 + [1.0] * 20)
    by_hand = (0.5 - 0.8) * math.log(0.5 / 0.8) + (0.5 - 0.2) * math.log(0.5 / 0.2)
    assert drift.psi(reference, current) == pytest.approx(by_hand, rel=1e-12)
    assert by_hand == pytest.approx(0.41589, abs=1e-5)


def test_psi_fills_an_empty_bin_with_a_ten_thousandth() -> None:
    reference = np.array([0.0] * 50 + [1.0] * 50)
    current = np.zeros(100)
    by_hand = (0.5 - 1.0) * math.log(0.5 / 1.0) + (0.5 - 0.0001) * math.log(0.5 / 0.0001)
    assert drift.psi(reference, current) == pytest.approx(by_hand, rel=1e-12)


def test_psi_fills_an_empty_bin_with_a_millionth_of_a_tiny_share() -> None:
    reference = np.array([0.0] * 19_999 + [1.0])  # shares 0.99995, 5e-5, and no 2s
    current = np.array([0.0] * 9_999 + [2.0])  # shares 0.9999, no 1s, 1e-4
    ref = np.array([0.99995, 5e-5, 5e-5 / 1e6])
    cur = np.array([0.9999, 1e-4 / 1e6, 1e-4])
    assert drift.psi(reference, current) == pytest.approx(float(np.sum((ref - cur) * np.log(ref / cur))), rel=1e-12)


def test_a_reference_of_twenty_values_is_binned_by_value_and_of_twenty_one_by_sturges() -> None:
    current = np.arange(21.0)
    twenty = drift.binned_shares(np.arange(20.0), current, fill_zeros=False)
    assert len(twenty[0]) == 21  # one bin per value seen in either sample
    twenty_one = drift.binned_shares(np.arange(21.0), current, fill_zeros=False)
    assert len(twenty_one[0]) == math.ceil(math.log2(42) + 1)


def test_report_values_equal_the_single_feature_statistics() -> None:
    rng = np.random.default_rng(11)
    reference = rng.normal(size=(5000, 4))
    current = rng.normal(size=(4000, 4))
    current[:, 1] += 0.5
    current[:, 3] *= 1.5
    report = drift.feature_drift_report(reference, current, feature_names=["a", "b", "c", "d"])
    for j, feature in enumerate(report.features):
        ref, cur = reference[:, j], current[:, j]
        ks = stats.ks_2samp(ref, cur)
        assert feature.ks_statistic == float(ks.statistic)
        assert feature.ks_pvalue == float(ks.pvalue)
        assert feature.psi == drift.psi(ref, cur)
        expected_js = distance.jensenshannon(*evidently_binned(ref, cur, fill_zeros=False))
        assert feature.jensenshannon == pytest.approx(expected_js, rel=1e-12)
        assert feature.wasserstein == stats.wasserstein_distance(ref, cur) / max(float(np.std(ref)), 0.001)
    assert report.drifted_features == ("b", "d")
    assert report.dataset_drift  # 2 of 4 drifted: a share of 0.5 reaches the 0.5 threshold


def test_report_picks_evidentlys_default_stattest() -> None:
    rng = np.random.default_rng(5)
    small = drift.feature_drift_report(rng.normal(size=(1000, 1)), rng.normal(size=(800, 1)))
    assert small.features[0].method == "ks"
    large = drift.feature_drift_report(rng.normal(size=(1001, 1)), rng.normal(size=(800, 1)))
    assert large.features[0].method == "wasserstein"
    few_values = drift.feature_drift_report(rng.integers(0, 5, size=(2000, 1)), rng.integers(0, 5, size=(800, 1)))
    assert few_values.features[0].method == "jensenshannon"
    chosen = drift.feature_drift_report(rng.normal(size=(2000, 1)), rng.normal(size=(800, 1)), stattest="psi")
    assert chosen.features[0].method == "psi" and chosen.features[0].threshold == 0.1


def test_dataset_drift_needs_half_of_the_features() -> None:
    assert drift.is_dataset_drift([True, False])
    assert not drift.is_dataset_drift([True, False, False])
    assert drift.is_dataset_drift([True, False, False], drift_share=0.3)
    assert not drift.is_dataset_drift([])


def test_report_to_dict_is_json() -> None:
    rng = np.random.default_rng(2)
    report = drift.feature_drift_report(rng.normal(size=(3000, 3)), rng.normal(0.5, 1, size=(3000, 3)))
    decoded = json.loads(json.dumps(report.to_dict()))
    assert decoded["dataset_drift"] is True
    assert decoded["drifted_features"] == ["x0", "x1", "x2"]
    assert set(decoded["features"][0]) >= {"psi", "ks_statistic", "ks_pvalue", "wasserstein", "jensenshannon"}


def test_value_bins_are_the_values_of_both_samples() -> None:
    reference = np.array([1.0] * 6 + [2.0] * 3 + [4.0])
    current = np.array([0.0, 1.0, 1.0, 3.0, 3.0, 3.0, 4.0, 4.0])  # 0 and 3 only in current, 2 only in reference
    ref, cur = drift.binned_shares(reference, current, fill_zeros=False)
    np.testing.assert_array_equal(ref, np.array([0, 6, 3, 0, 1]) / 10)
    np.testing.assert_array_equal(cur, np.array([1, 2, 0, 3, 2]) / 8)


def test_reports_of_changing_shapes_reuse_no_stale_arrays() -> None:
    rng = np.random.default_rng(9)
    reference = rng.normal(size=(3000, 2))
    for rows, shift in ((500, 0.0), (800, 0.4), (500, 0.2), (3000, 0.1)):
        current = rng.normal(shift, 1, size=(rows, 2))
        report = drift.feature_drift_report(reference, current)
        for j, feature in enumerate(report.features):
            ks = stats.ks_2samp(reference[:, j], current[:, j])
            assert (feature.ks_statistic, feature.ks_pvalue) == (float(ks.statistic), float(ks.pvalue))
            assert feature.wasserstein == drift.wasserstein_normed(reference[:, j], current[:, j])


def test_a_reference_prepared_without_spread_refuses_wasserstein() -> None:
    rng = np.random.default_rng(10)
    prepared = drift.DriftReference(rng.normal(size=(2000, 2)), spread=False)
    assert prepared.compare(rng.normal(size=(300, 2)), ("psi",), "psi").features[0].psi is not None
    with pytest.raises(ValueError, match="spread"):
        prepared.compare(rng.normal(size=(300, 2)), ("wasserstein",))


def test_prepared_reference_gives_the_same_report_window_after_window() -> None:
    rng = np.random.default_rng(8)
    reference = rng.normal(size=(20_000, 3))
    prepared = drift.DriftReference(reference, ["a", "b", "c"])
    for shift in (0.0, 0.2):
        window = rng.normal(shift, 1, size=(5000, 3))
        assert prepared.compare(window) == drift.feature_drift_report(reference, window, ["a", "b", "c"])


def test_report_rejects_missing_values_and_mismatched_features() -> None:
    reference = np.zeros((10, 2))
    with pytest.raises(ValueError, match="NaN"):
        drift.feature_drift_report(reference, np.array([[0.0, np.nan]] * 10))
    with pytest.raises(ValueError, match="features"):
        drift.feature_drift_report(reference, np.zeros((10, 3)))


def test_prediction_drift_sees_a_change_in_the_share_of_positives() -> None:
    rng = np.random.default_rng(4)
    reference = (rng.random(5000) < 0.3).astype(int)
    steady = drift.prediction_drift(reference, (rng.random(2000) < 0.3).astype(int))
    assert not steady.drifted
    shifted = drift.prediction_drift(reference, (rng.random(2000) < 0.5).astype(int))
    assert shifted.drifted
    assert shifted.classes == (0, 1)
    assert shifted.current_shares[1] == pytest.approx(0.5, abs=0.03)
    assert shifted.jensenshannon == pytest.approx(
        distance.jensenshannon(shifted.reference_shares, shifted.current_shares), rel=1e-12
    )
    json.dumps(shifted.to_dict())


def test_prediction_drift_counts_a_class_missing_from_one_window() -> None:
    result = drift.prediction_drift(np.array(["a"] * 60 + ["b"] * 40), np.array(["a"] * 50 + ["c"] * 50), method="psi")
    assert result.classes == ("a", "b", "c")
    assert result.reference_shares == (0.6, 0.4, 0.0)
    assert result.current_shares == (0.5, 0.0, 0.5)
    assert result.drifted and result.method == "psi"
