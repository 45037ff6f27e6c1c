"""CUSUM and Page–Hinkley detect mean shifts with the run lengths the textbooks give, and calibrate."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlopslab.monitor.sequential import (
    Cusum,
    PageHinkley,
    cusum_run_lengths,
    cusum_threshold_for_arl0,
    detection_delay,
    detection_floor,
    siegmund_arl,
)

# Montgomery, Introduction to Statistical Quality Control, Table 9.3: tabular CUSUM, k = 1/2, h = 4.
MONTGOMERY_ARL0 = 168.0
MONTGOMERY_ARL_1SIGMA = 8.38
TOLERANCE = 0.08


def class_run_lengths(detector: Cusum, shift: float, n_runs: int, seed: int) -> np.ndarray:
    """Run lengths of the streaming detector itself, one value at a time."""
    rng = np.random.default_rng(seed)
    lengths = np.empty(n_runs, dtype=np.int64)
    for run in range(n_runs):
        detector.reset()
        while not any(detector.update(x) for x in rng.normal(shift, 1.0, size=256).tolist()):
            pass
        lengths[run] = detector.n  # any() stops at the alarm, so n counts the values up to it
    return lengths


def test_two_sided_cusum_has_montgomerys_run_lengths() -> None:
    in_control = cusum_run_lengths(4.0, 0.5, shift=0.0, n_runs=20_000, rng=1)
    shifted = cusum_run_lengths(4.0, 0.5, shift=1.0, n_runs=20_000, rng=2)
    assert in_control.mean() == pytest.approx(MONTGOMERY_ARL0, rel=TOLERANCE)
    assert shifted.mean() == pytest.approx(MONTGOMERY_ARL_1SIGMA, rel=TOLERANCE)


def test_upper_cusum_false_alarms_half_as_often_and_is_as_fast() -> None:
    in_control = cusum_run_lengths(4.0, 0.5, shift=0.0, n_runs=20_000, two_sided=False, rng=3)
    shifted = cusum_run_lengths(4.0, 0.5, shift=1.0, n_runs=20_000, two_sided=False, rng=4)
    assert in_control.mean() == pytest.approx(2 * MONTGOMERY_ARL0, rel=TOLERANCE)
    assert shifted.mean() == pytest.approx(MONTGOMERY_ARL_1SIGMA, rel=TOLERANCE)


def test_streaming_cusum_reproduces_the_arls() -> None:
    detector = Cusum(k=0.5, h=4.0)
    assert class_run_lengths(detector, 0.0, 3000, seed=5).mean() == pytest.approx(MONTGOMERY_ARL0, rel=TOLERANCE)
    assert class_run_lengths(detector, 1.0, 3000, seed=6).mean() == pytest.approx(MONTGOMERY_ARL_1SIGMA, rel=TOLERANCE)


def test_cusum_standardises_by_mu0_and_sigma_and_stays_in_alarm_until_reset() -> None:
    detector = Cusum(k=0.5, h=4.0, mu0=10.0, sigma=2.0)
    assert not any(detector.update(x) for x in [10.0, 11.0, 9.0, 10.5])
    values = [14.0] * 3  # each +2σ: C+ grows by 1.5 a value
    assert [detector.update(x) for x in values] == [False, False, True]
    assert detector.statistic == pytest.approx(4.5)
    assert detector.update(10.0)  # C+ falls back to 4.0, but the alarm holds
    assert detector.statistic == pytest.approx(4.0)
    detector.reset()
    assert (detector.statistic, detector.alarm, detector.n) == (0.0, False, 0)


def test_one_sided_cusum_ignores_a_downward_shift() -> None:
    upper = Cusum(two_sided=False)
    both = Cusum()
    values = [-2.0] * 20
    assert not any(upper.update(x) for x in values)
    assert any(both.update(x) for x in values)


def test_siegmund_approximation_is_close_to_the_table() -> None:
    assert siegmund_arl(4.0, 0.5) == pytest.approx(MONTGOMERY_ARL0, rel=0.02)
    assert siegmund_arl(4.0, 0.5, shift=1.0) == pytest.approx(MONTGOMERY_ARL_1SIGMA, rel=0.02)
    assert siegmund_arl(4.0, 0.5, two_sided=False) == pytest.approx(2 * siegmund_arl(4.0, 0.5))


def test_threshold_for_arl0_inverts_siegmund_and_simulation_refines_it() -> None:
    assert cusum_threshold_for_arl0(siegmund_arl(4.0, 0.5)) == pytest.approx(4.0, abs=1e-6)
    h = cusum_threshold_for_arl0(1000.0, k=0.5, refine_runs=4000, rng=7)
    measured = cusum_run_lengths(h, 0.5, shift=0.0, n_runs=8000, rng=8).mean()
    assert measured == pytest.approx(1000.0, rel=TOLERANCE)


def test_detection_floor_and_delay() -> None:
    assert detection_floor(10_000, 1.0) == pytest.approx(2 * math.log(10_000))
    assert detection_floor(10_000, 0.5) == pytest.approx(4 * detection_floor(10_000, 1.0))
    delay = detection_delay(change_index=100, alarm_index=109, rate=50.0)
    assert delay.samples == 10
    assert delay.seconds == pytest.approx(0.2)
    assert detection_delay(5, 5).samples == 1
    with pytest.raises(ValueError, match="false alarm"):
        detection_delay(change_index=100, alarm_index=99)


def page_hinkley_alarms(detector: PageHinkley, shift: float, n_streams: int, seed: int) -> list[int | None]:
    """Alarm index in each stream of 1000 in-control values followed by 200 shifted ones."""
    rng = np.random.default_rng(seed)
    alarms: list[int | None] = []
    for _ in range(n_streams):
        detector.reset()
        stream = np.concatenate((rng.normal(size=1000), rng.normal(shift, 1.0, size=200))).tolist()
        alarms.append(next((i for i, x in enumerate(stream) if detector.update(x)), None))
    return alarms


def test_page_hinkley_alarms_after_a_shift_and_rarely_before() -> None:
    alarms = page_hinkley_alarms(PageHinkley(delta=0.25, lambda_=20.0), shift=1.0, n_streams=200, seed=9)
    false_alarms = sum(1 for a in alarms if a is not None and a < 1000)
    delays = [detection_delay(1000, a).samples for a in alarms if a is not None and a >= 1000]
    assert false_alarms <= 4  # at most 2% of streams
    assert len(delays) >= 196  # and the rest all detect within the 200 shifted values
    assert 15 <= np.median(delays) <= 50


def test_two_sided_page_hinkley_catches_a_downward_shift() -> None:
    upward_only = page_hinkley_alarms(PageHinkley(delta=0.25, lambda_=20.0), shift=-1.0, n_streams=50, seed=10)
    both = page_hinkley_alarms(PageHinkley(delta=0.25, lambda_=20.0, two_sided=True), shift=-1.0, n_streams=50, seed=10)
    assert sum(a is not None for a in upward_only) <= 1
    assert sum(a is not None and a >= 1000 for a in both) >= 48


def test_page_hinkley_waits_for_min_instances() -> None:
    detector = PageHinkley(delta=0.0, lambda_=0.5, min_instances=10)
    results = [detector.update(x) for x in [0.0] * 5 + [5.0] * 6]
    assert results.index(True) == 9  # the alarm could fire at the 6th value, but waits for the 10th
