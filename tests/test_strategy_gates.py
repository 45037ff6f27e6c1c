"""Gates without processes: what each metric takes from a window of requests, and the per-tick threshold
judge (Flagger's thresholdRange) with its value, threshold and verdict."""

from __future__ import annotations

import pytest

from mlopslab.strategies import analysis
from mlopslab.strategies.samples import Samples
from mlopslab.strategies.spec import GateSpec


def _record(i: int, t: float, v: str, *, lat: float = 5.0, ok: bool = True, p: int = 1, m: bool = False) -> dict:
    return {"i": i, "lane": "a", "t": t, "lat": lat, "st": 200 if ok else 0, "v": v, "p": p, **({"m": 1} if m else {})}


def _store() -> Samples:
    store = Samples(["a"])
    for i in range(100):
        t = 0.05 + i * 0.1   # 10 s of requests, every tenth to the candidate v2 (a 10 % canary)
        candidate = i % 10 == 0
        store.add_result(_record(i, t, "2" if candidate else "1", lat=200.0 if candidate else 5.0,
                                 ok=not (candidate and i % 20 == 0), p=0 if candidate else 1))
        store.add_sample({"s": i, "t": t, "y": 1})
    return store


def _one(gate: GateSpec, store: Samples, now: float = 10.25, copies: bool = False, label_delay: float = 0.0):
    return analysis.evaluate([gate], store, "a", now, 10.0, label_delay, "1", "2", copies)[0][0]


@pytest.mark.parametrize("gate, value, verdict", [
    (GateSpec("success_rate", min=99, min_samples=5), 50.0, "fail"),       # 5 of 10 candidate requests failed
    (GateSpec("success_rate", min=40, min_samples=5), 50.0, "pass"),
    (GateSpec("p99", max=100, min_samples=5), 200.0, "fail"),
    (GateSpec("accuracy", min=0.5, min_samples=3), 0.0, "fail"),            # it predicts 0, the truth is 1
    # Jensen–Shannon distance (natural log) of all-0 against all-1 predictions: √ln 2
    (GateSpec("prediction_drift", max=0.5, min_samples=3), 0.8326, "fail"),
])
def test_threshold_judge_measures_the_candidate_against_the_bound(gate: GateSpec, value: float, verdict: str) -> None:
    result = _one(gate, _store())
    assert (result.value, result.verdict) == (pytest.approx(value, abs=1e-4), verdict)
    assert result.threshold == (gate.min if gate.min is not None else gate.max)


def test_too_few_samples_wait_instead_of_failing() -> None:
    result = _one(GateSpec("p99", max=100, min_samples=50), _store())
    assert result.verdict == "wait" and result.n_canary == 10 and "10 of 50" in result.detail


def test_accuracy_waits_for_labels_to_arrive() -> None:
    """With labels 20 s late nothing in the last 10 s can be scored yet."""
    assert _one(GateSpec("accuracy", min=0.5, min_samples=3), _store(), label_delay=20.0).verdict == "wait"


def test_disagreement_pairs_the_copy_with_the_primary_answer_to_the_same_request() -> None:
    store = Samples(["a"])
    for i in range(40):
        store.add_result(_record(i, i * 0.1, "1", p=1))
        store.add_result(_record(i, i * 0.1, "2", p=0 if i % 4 == 0 else 1, m=True))
    result = _one(GateSpec("disagreement", max=0.1, min_samples=10), store, now=4.5, copies=True)
    assert (result.value, result.verdict, result.n_canary) == (0.25, "fail", 40)


def test_input_drift_reads_the_lanes_drift_score() -> None:
    store = Samples(["a"])
    for t in range(10):
        store.on_event({"kind": "drift_score", "lane": "a", "t": float(t), "score": 0.5})
    result = _one(GateSpec("input_drift", max=0.25, min_samples=5), store)
    assert (result.value, result.verdict) == (0.5, "fail")


def test_a_judge_a_metric_cannot_take_falls_back_to_the_threshold_and_says_so() -> None:
    """Kayenta's Mann–Whitney compares per-version series; a disagreement has one side only."""
    store = Samples(["a"])
    for i in range(40):
        store.add_result(_record(i, i * 0.1, "1", p=1))
        store.add_result(_record(i, i * 0.1, "2", p=1, m=True))
    result = _one(GateSpec("disagreement", max=0.1, min_samples=10, judge="mann-whitney"), store, now=4.5, copies=True)
    assert result.judge == "threshold" and "threshold used" in result.detail and result.verdict == "pass"


def test_kayenta_and_the_msprt_judge_a_slow_candidate() -> None:
    """The statistical judges of mlopslab/analysis, on 20 s of a 10 % canary 195 ms slower than stable."""
    store = Samples(["a"])
    for i in range(400):
        candidate = i % 10 == 0
        store.add_result(_record(i, 0.05 + i * 0.05, "2" if candidate else "1", lat=200.0 + i % 7 if candidate
                                 else 5.0 + i % 7))
    for judge in ("mann-whitney", "msprt"):
        gate = GateSpec("p99", max=100, min_samples=5, judge=judge, window=None if judge == "msprt" else 20)
        result = analysis.evaluate([gate], store, "a", 20.3, 20.0, 0.0, "1", "2", False, started=0.0)[0][0]
        assert (result.judge, result.verdict) == (judge, "fail"), result
