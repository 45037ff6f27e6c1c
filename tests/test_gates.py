"""Gates: parsing their scenario form, and what each measures over a window of stable and canary requests."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlopslab.analysis import Arm, Gate, Samples, parse_gate, parse_gates
from mlopslab.monitor.drift import prediction_drift


def test_parse_gate_reads_the_scenario_forms() -> None:
    gate = parse_gate({"metric": "success-rate", "min": 99, "window": 10})
    assert (gate.metric, gate.bound, gate.threshold, gate.window, gate.judge) == ("success-rate", "min", 99.0, 10.0,
                                                                                   "threshold")
    assert gate.no_data == "fail"          # Flagger: a query with no values fails the check
    latency = parse_gate({"metric": "latency-p99", "max": 50, "judge": "mann-whitney"})
    assert (latency.bound, latency.threshold, latency.judge, latency.window) == ("max", 50.0, "mann-whitney", None)
    accuracy = parse_gate({"metric": "accuracy", "min": 0.8, "min_labels": 100, "judge": "msprt"})
    assert (accuracy.min_samples, accuracy.no_data, accuracy.tau) == (100, "wait", 0.05)
    assert parse_gate({"metric": "disagreement", "max": 0.05}).threshold == 0.05
    assert parse_gate({"metric": "prediction-drift", "max": 0.2}).bound == "max"
    assert parse_gate({"metric": "input-drift", "max": 0.5, "name": "world"}).name == "world"


@pytest.mark.parametrize("spec, field", [
    ({"metric": "throughput", "min": 1}, "metric"),
    ({"min": 1}, "metric"),
    ({"metric": "success-rate"}, "min"),
    ({"metric": "success-rate", "max": 1}, "max"),
    ({"metric": "success-rate", "min": 120}, "min"),
    ({"metric": "success-rate", "min": "99%"}, "min"),
    ({"metric": "latency-p99", "max": True}, "max"),
    ({"metric": "accuracy", "min": 80}, "min"),
    ({"metric": "accuracy", "min": 0.8, "min_labels": 0}, "min_labels"),
    ({"metric": "latency-p99", "max": 50, "min_labels": 10}, "min_labels"),
    ({"metric": "latency-p99", "max": 50, "window": -1}, "window"),
    ({"metric": "latency-p99", "max": 50, "judge": "bayes"}, "judge"),
    ({"metric": "disagreement", "max": 0.05, "judge": "msprt"}, "judge"),
    ({"metric": "success-rate", "min": 99, "alpha": 2}, "alpha"),
    ({"metric": "success-rate", "min": 99, "no_data": "skip"}, "no_data"),
    ({"metric": "success-rate", "min": 99, "interval": 5}, "interval"),
    ({"metric": "accuracy", "min": 0.8, "judge": "msprt", "window": 30}, "window"),
])
def test_parse_gate_names_the_bad_field(spec: dict, field: str) -> None:
    with pytest.raises(ValueError) as error:
        parse_gate(spec)
    assert str(error.value).startswith(f"{field}:")


def test_parse_gates_prefixes_the_position() -> None:
    with pytest.raises(ValueError, match=r"^gates\[1\]\.max: "):
        parse_gates([{"metric": "success-rate", "min": 99}, {"metric": "latency-p99"}])
    with pytest.raises(ValueError, match="named 'accuracy'"):
        parse_gates([{"metric": "accuracy", "min": 0.8}, {"metric": "accuracy", "min": 0.9, "judge": "msprt"}])


def _arm(version: str, n: int, start: float = 0.0, end: float = 10.0, **columns) -> Arm:
    t = np.linspace(start, end, n, endpoint=False) + (end - start) / n
    return Arm.of(version, t, columns.pop("latency", np.full(n, 20.0)), **columns)


def test_success_rate_and_latency_p99_over_the_window() -> None:
    statuses = [200] * 95 + [500] * 3 + [0] * 2
    canary = _arm("2", 100, latency=np.arange(1.0, 101.0), status=statuses)
    samples = Samples(10.0, _arm("1", 100), canary)
    rate = parse_gate({"metric": "success-rate", "min": 99}).evaluate(samples)
    assert (rate.value, rate.baseline, rate.verdict, rate.n) == (95.0, 100.0, "fail", 100)
    p99 = parse_gate({"metric": "latency-p99", "max": 99.5}).evaluate(samples)
    assert p99.value == pytest.approx(np.percentile(np.arange(1.0, 101.0), 99)) and p99.verdict == "pass"
    # the last 5 s only: requests 51..100 (latencies 51..100, statuses all failed at the end)
    recent = parse_gate({"metric": "success-rate", "min": 99, "window": 5}).evaluate(samples)
    assert recent.n == 50 and recent.value == pytest.approx(90.0)


def test_no_canary_requests_fail_a_builtin_check_unless_told_to_wait() -> None:
    samples = Samples(10.0, _arm("1", 100), Arm.empty("2"))
    assert parse_gate({"metric": "success-rate", "min": 99}).evaluate(samples).verdict == "fail"
    waiting = parse_gate({"metric": "success-rate", "min": 99, "no_data": "wait"}).evaluate(samples)
    assert waiting.verdict == "wait" and waiting.value is None


def test_accuracy_waits_for_labels_then_judges_them() -> None:
    """Labels arrive 5 s after each request; the gate needs 30 of them."""
    labels = np.array([0, 1] * 50, dtype=float)
    predictions = labels.copy()
    predictions[::4] = 1 - predictions[::4]                      # every fourth answer wrong: 75 % accurate
    results, arrivals = [], []
    for i, t in enumerate(np.linspace(0.1, 10.0, 100)):
        arrivals.append({"s": i, "t": t, "x": [0.0, 1.0], "y": int(labels[i])})
        results.append({"i": i, "lane": "a", "t": t, "lat": 10.0, "st": 200, "v": "2", "p": int(predictions[i])})
        results.append({"i": i, "lane": "a", "t": t, "lat": 9.0, "st": 200, "v": "1", "p": int(labels[i]), "m": 1})
    gate = parse_gate({"metric": "accuracy", "min": 0.8, "min_labels": 30})
    early = Samples.from_records(results, arrivals, stable="1", canary="2", now=7.0, label_delay=5.0)
    assert early.canary.labelled(7.0).sum() == 20                    # sent by t = 2.0
    first = gate.evaluate(early)
    assert (first.verdict, first.n) == ("wait", 20) and "20 of 30 labels" in first.decision.reason
    later = gate.evaluate(Samples.from_records(results, arrivals, stable="1", canary="2", now=15.0, label_delay=5.0))
    assert later.n == 100 and later.value == pytest.approx(0.75) and later.verdict == "fail"
    # the stable arm takes user-facing answers only: the mirrored copies of "1" are not its traffic
    assert len(early.stable) == 0


def test_disagreement_pairs_identical_requests_of_the_shadow() -> None:
    stable = Arm.of("1", [1, 2, 3, 4, 5], [10] * 5, prediction=[0, 1, 1, 0, 1], request=[0, 1, 2, 3, 4])
    shadow = Arm.of("2", [1, 2, 3, 4, 6], [12] * 5, status=[200, 200, 200, 0, 200], prediction=[0, 0, 1, math.nan, 1],
                    request=[0, 1, 2, 3, 99])
    result = Gate("disagreement", "max", 0.05, min_samples=1).evaluate(Samples(10.0, stable, shadow))
    assert result.n == 3 and result.value == pytest.approx(1 / 3) and result.verdict == "fail"


def test_prediction_drift_is_evidentlys_jensen_shannon_of_the_classes() -> None:
    stable_p = [0] * 70 + [1] * 30
    canary_p = [0] * 40 + [1] * 60
    samples = Samples(10.0, _arm("1", 100, prediction=stable_p), _arm("2", 100, prediction=canary_p))
    result = parse_gate({"metric": "prediction-drift", "max": 0.2}).evaluate(samples)
    assert result.value == pytest.approx(prediction_drift(np.array(stable_p), np.array(canary_p)).jensenshannon)
    assert result.verdict == "fail"


def test_input_drift_is_the_share_of_drifted_features() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(1000, 4))
    rows = rng.normal(size=(200, 4))
    rows[:, :2] += 1.0                                              # two of four features moved by 1 σ
    samples = Samples(10.0, _arm("1", 10), _arm("2", 200, inputs=rows), reference=reference)
    result = parse_gate({"metric": "input-drift", "max": 0.25}).evaluate(samples)
    assert result.value == 0.5 and result.verdict == "fail"
    few = Samples(10.0, _arm("1", 10), _arm("2", 50, inputs=rows[:50]), reference=reference)
    assert parse_gate({"metric": "input-drift", "max": 0.25}).evaluate(few).verdict == "wait"


def test_mann_whitney_gate_compares_per_second_p99_series() -> None:
    rng = np.random.default_rng(1)
    stable = _arm("1", 3000, end=60.0, latency=rng.gamma(4, 5, 3000))
    same = _arm("2", 300, end=60.0, latency=rng.gamma(4, 5, 300))
    slow = _arm("2", 300, end=60.0, latency=rng.gamma(4, 5, 300) + 25)
    gate = parse_gate({"metric": "latency-p99", "max": 100, "judge": "mann-whitney", "window": 60})
    assert gate.evaluate(Samples(60.0, stable, same)).verdict == "pass"
    regressed = gate.evaluate(Samples(60.0, stable, slow))
    assert regressed.verdict == "fail" and regressed.decision.details["classification"] == "High"


def test_msprt_gate_carries_its_state_and_never_counts_a_request_twice() -> None:
    rng = np.random.default_rng(2)
    stable = _arm("1", 900, end=30.0, latency=rng.normal(50, 5, 900))
    canary = _arm("2", 100, end=30.0, latency=rng.normal(50, 5, 100))
    gate = parse_gate({"metric": "latency-p99", "max": 100, "judge": "msprt", "min_samples": 10})
    state = gate.start()
    counts = []
    for now in (10.0, 10.0, 20.0, 30.0):       # the same instant twice: nothing new the second time
        result = gate.evaluate(Samples(now, stable, canary), state)
        state = result.state
        counts.append((state.n_stable, state.n_canary))
    assert counts == [(300, 33), (300, 33), (600, 66), (900, 100)]
    assert result.verdict == "pass"


def test_samples_from_load_generator_records() -> None:
    """Records as traffic/loadgen.py writes them: failures count against the version they were sent to,
    other lanes and versions are left out, predictions and rows are joined by arrival index."""
    arrivals = [{"s": i, "t": 0.5 * i, "x": [float(i), 1.0], "y": i % 2} for i in range(6)]
    results = [
        {"i": 0, "lane": "canary", "t": 0.0, "lat": 5.0, "st": 200, "v": "1", "p": 0, "lag": 0.1, "b": "u1"},
        {"i": 1, "lane": "canary", "t": 0.5, "lat": 7.0, "st": 200, "v": "2", "p": 0, "lag": 0.1, "b": "u2"},
        {"i": 2, "lane": "canary", "t": 1.0, "lat": 2000.0, "st": 0, "v": "2", "p": None, "lag": 0.1, "b": "u2"},
        {"i": 3, "lane": "other", "t": 1.5, "lat": 5.0, "st": 200, "v": "2", "p": 1, "lag": 0.1, "b": "u9"},
        {"i": 4, "lane": "canary", "t": 2.0, "lat": 6.0, "st": 200, "v": "3", "p": 1, "lag": 0.1, "b": "u3"},
        {"i": 5, "lane": "canary", "t": 9.0, "lat": 6.0, "st": 200, "v": "2", "p": 1, "lag": 0.1, "b": "u2"},
    ]
    samples = Samples.from_records(results, arrivals, stable="1", canary="2", now=5.0, label_delay=1.0, lane="canary")
    assert list(samples.canary.request) == [1, 2] and list(samples.stable.request) == [0]
    assert list(samples.canary.status) == [200, 0] and math.isnan(samples.canary.prediction[1])
    assert samples.canary.inputs is not None and samples.canary.inputs.tolist() == [[1.0, 1.0], [2.0, 1.0]]
    assert list(samples.canary.label) == [1.0, 0.0]
    assert parse_gate({"metric": "success-rate", "min": 99}).evaluate(samples).value == 50.0


def test_accuracy_window_counts_labels_by_their_arrival() -> None:
    """A 10 s window at t = 30 with labels 20 s late holds the requests sent between 0 and 10 s."""
    t = np.arange(0.5, 30.0, 1.0)
    canary = Arm.of("2", t, [10.0] * t.size, prediction=[1.0] * t.size, label=[1.0] * 10 + [0.0] * 20,
                    label_t=t + 20.0)
    result = parse_gate({"metric": "accuracy", "min": 0.8, "window": 10, "min_labels": 5}).evaluate(
        Samples(30.0, Arm.empty("1"), canary))
    assert (result.n, result.value, result.verdict) == (10, 1.0, "pass")


def test_mann_whitney_p99_series_thin_the_stable_to_the_canarys_size() -> None:
    """Identical latencies at a 10 % canary weight: the canary's per-second p99 comes from 10 requests, the
    stable's from 90. Unthinned, the canary's p99 series is lower (Kayenta would say Low); thinned, they match."""
    from mlopslab.analysis.measures import series as _series

    rng = np.random.default_rng(4)
    stable = _arm("1", 5400, end=60.0, latency=np.exp(rng.normal(3.0, 0.4, 5400)))
    canary = _arm("2", 600, end=60.0, latency=np.exp(rng.normal(3.0, 0.4, 600)))
    samples = Samples(60.0, stable, canary)
    thinned, series = _series("latency-p99", samples, 1.0)
    buckets = np.floor(stable.t)
    assert thinned.size == series.size == np.unique(buckets).size
    unthinned = np.array([np.percentile(stable.latency[buckets == b], 99) for b in np.unique(buckets)])
    assert np.median(series) < 0.85 * np.median(unthinned)
    assert 0.8 < np.median(series) / np.median(thinned) < 1.25
    result = parse_gate({"metric": "latency-p99", "max": 100, "judge": "mann-whitney"}).evaluate(samples)
    assert result.verdict == "pass"


def test_gate_results_feed_flaggers_counter_and_become_events() -> None:
    from mlopslab.analysis import FailedChecks

    samples = Samples(10.0, _arm("1", 100), _arm("2", 100, status=[200] * 90 + [500] * 10))
    result = parse_gate({"metric": "success-rate", "min": 99, "name": "errors"}).evaluate(samples)
    state, tick = FailedChecks(threshold=2).tick([result])
    assert (tick.action, tick.failed_checks) == ("halt", 1) and tick.reason.startswith("errors failed")
    assert result.to_event() == {"gate": "errors", "metric": "success-rate", "value": 90.0, "baseline": 100.0,
                                 "threshold": 99.0, "bound": "min", "verdict": "fail", "judge": "threshold",
                                 "n": 100, "reason": "90% < 99%"}
