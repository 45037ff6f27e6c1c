"""Gates: turn a lane's recent requests into two samples per gate (stable, candidate) and ask a judge.

The judge interface is the seam between strategies and statistics: a `Judge` takes a gate and the two
windowed samples (one number per request: 1/0 success, latency in ms, 1/0 correct once labelled, 1/0
disagreement on the same input, 1/0 predicted positive) and returns a `GateResult` with the measured
value, the threshold and the verdict. `threshold` (Flagger's per-tick thresholdRange) lives here;
statistical judges (Kayenta's Mann–Whitney, a sequential mSPRT) plug in through `JUDGES`.

Where the samples come from, per metric:
- success_rate (%, Flagger's request-success-rate) and p99 (ms, request-duration): user requests of the
  window (copies, for a shadow or a blue-green preview);
- accuracy: requests whose label has arrived (`label_delay` after they were sent): the window ends
  `label_delay` seconds ago, so until labels arrive the gate waits (verdict `wait`);
- disagreement: pairs of answers to the same request, the candidate's copy against the primary's answer;
- prediction_drift: the difference between the candidate's and the stable version's positive rate;
- input_drift: the lane's input drift score (share of features whose recent rows differ from the training
  rows, monitor/watch.py) over the window: a rollout should not be judged on inputs the model never saw.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlopslab.strategies.samples import Request, Samples
from mlopslab.strategies.spec import GateSpec


@dataclass(frozen=True)
class GateResult:
    gate: str
    metric: str
    judge: str
    value: float | None
    threshold: float | None
    bound: str                 # min | max
    verdict: str               # pass | fail | wait | marginal
    n_stable: int = 0
    n_canary: int = 0
    detail: str = ""


Judge = Callable[[GateSpec, Sequence[float], Sequence[float]], GateResult]


def aggregate(metric: str, stable: Sequence[float], canary: Sequence[float]) -> float:
    """The number a per-tick threshold compares: the candidate's own, or its difference from stable."""
    if metric == "success_rate":
        return 100.0 * float(np.mean(canary))
    if metric == "p99":
        return float(np.percentile(canary, 99))
    if metric == "prediction_drift":
        return abs(float(np.mean(canary)) - float(np.mean(stable)))
    return float(np.mean(canary))   # accuracy, disagreement


def threshold(gate: GateSpec, stable: Sequence[float], canary: Sequence[float]) -> GateResult:
    """Flagger: the metric of this tick's window against its thresholdRange."""
    bound, limit = ("min", gate.min) if gate.min is not None else ("max", gate.max)
    needs_stable = gate.metric == "prediction_drift"
    if len(canary) < gate.min_samples or (needs_stable and len(stable) < gate.min_samples):
        return GateResult(gate.label, gate.metric, "threshold", None, limit, bound, "wait", len(stable), len(canary),
                          f"{len(canary)} of {gate.min_samples} samples")
    value = aggregate(gate.metric, stable, canary)
    ok = (gate.min is None or value >= gate.min) and (gate.max is None or value <= gate.max)
    if not ok and gate.min is not None and value < gate.min:
        bound, limit = "min", gate.min
    elif not ok:
        bound, limit = "max", gate.max
    return GateResult(gate.label, gate.metric, "threshold", round(value, 4), limit, bound, "pass" if ok else "fail",
                      len(stable), len(canary))


JUDGES: dict[str, Judge] = {"threshold": threshold}
# metrics mlopslab/analysis measures (Flagger's threshold, Kayenta's Mann–Whitney, the mSPRT judge them there)
ANALYSIS_METRICS = {"success_rate": "success-rate", "p99": "latency-p99", "accuracy": "accuracy",
                    "disagreement": "disagreement", "prediction_drift": "prediction-drift"}


def judge_for(name: str) -> tuple[Judge, str]:
    """The judge named, or the threshold judge with a note when that judge is not built in."""
    if name in JUDGES:
        return JUDGES[name], ""
    return threshold, f"{name} not available here: threshold used"


def analysis_gate(gate: GateSpec, interval: float) -> Any:
    """The gate as mlopslab/analysis spells it, or None when it cannot be (a bound its metric does not
    take: those stay with the threshold judge here). A gate with too few samples waits (`no_data: wait`)."""
    from mlopslab.analysis import gates

    metric = ANALYSIS_METRICS.get(gate.metric)
    if metric is None:
        return None
    bound = gates.METRICS[metric][0]
    limit = gate.min if bound == "min" else gate.max
    other = gate.max if bound == "min" else gate.min
    if limit is None or other is not None:
        return None
    spec: dict[str, Any] = {"metric": metric, bound: limit, "judge": gate.judge, "name": gate.label,
                            "no_data": "wait",
                            ("min_labels" if metric == "accuracy" else "min_samples"): gate.min_samples}
    if gate.judge != "msprt":   # the mSPRT judges every request since the analysis began
        spec["window"] = gate.window or interval
    try:
        return gates.parse_gate(spec)
    except ValueError:
        return None


def _judged(gate: GateSpec, judged: Any, store: Samples, lane: str, now: float, started: float, label_delay: float,
            stable: str, candidate: str, copies: bool, state: Any) -> tuple[GateResult, Any]:
    """One gate judged by mlopslab/analysis on the lane's requests since the analysis began."""
    from mlopslab.analysis.samples import Samples as Arms

    requests = store.window(lane, started, now)
    records = [{"i": r.i, "lane": lane, "t": r.t, "lat": r.latency, "st": 200 if r.ok else 0, "v": r.version,
                "p": r.prediction, **({"m": 1} if r.mirrored else {})} for r in requests]
    arrivals = [{"s": r.i, "y": y} for r in requests if (y := store.label(r.i)) is not None]
    arms = Arms.from_records(records, arrivals, stable=stable, canary=candidate, now=now, label_delay=label_delay,
                             lane=lane, canary_mirrored=copies)
    result = judged.evaluate(arms, state)
    value, limit = result.value, result.threshold
    if result.judge != "threshold":   # Kayenta's mean ratio against the allowed one; the mSPRT's p-value against α
        value, limit = result.decision.value, result.decision.threshold
    return GateResult(gate.label, gate.metric, result.judge, None if value is None else round(float(value), 4),
                      limit, result.bound, result.verdict, len(arms.stable), result.n, result.decision.reason), \
        result.state


def samples(gate: GateSpec, requests: Sequence[Request], stable: str, candidate: str, copies: bool,
            label: Callable[[int], int | None]) -> tuple[list[float], list[float]]:
    """(stable, candidate) values of one gate's metric from a window's requests."""
    mine = [r for r in requests if r.version == candidate and r.mirrored == copies]
    theirs = [r for r in requests if r.version == stable and not r.mirrored]
    if gate.metric == "success_rate":
        return [float(r.ok) for r in theirs], [float(r.ok) for r in mine]
    if gate.metric == "p99":
        return [r.latency for r in theirs], [r.latency for r in mine]
    if gate.metric == "prediction_drift":
        return ([float(r.prediction) for r in theirs if r.ok], [float(r.prediction) for r in mine if r.ok])
    if gate.metric == "accuracy":
        def correct(rs: list[Request]) -> list[float]:
            out = []
            for r in rs:
                y = label(r.i) if r.ok else None
                if y is not None:
                    out.append(float(int(r.prediction) == y))
            return out
        return correct(theirs), correct(mine)
    # disagreement: the candidate's copy against the primary's answer to the same request
    primary = {r.i: r.prediction for r in theirs if r.ok}
    pairs = [float(primary[r.i] != r.prediction) for r in mine if r.ok and r.i in primary]
    return [0.0] * len(pairs), pairs


def evaluate(gates: Sequence[GateSpec], store: Samples, lane: str, now: float, interval: float, label_delay: float,
             stable: str, candidate: str, copies: bool, started: float | None = None,
             states: dict[str, Any] | None = None) -> list[tuple[GateResult, float]]:
    """Every gate's verdict now, each with the window it looked at (seconds). `states` carries what a
    sequential gate keeps from one look to the next (per candidate: a new one starts empty)."""
    out = []
    states = {} if states is None else states
    for gate in gates:
        window = gate.window or interval
        late = label_delay if gate.metric == "accuracy" else 0.0
        # the answers of the last quarter second may still be on their way: the window ends before them
        until = now - 0.25
        judged = analysis_gate(gate, interval)
        if judged is not None:
            since = started if started is not None else until - window - late - 1.0
            result, states[gate.label] = _judged(gate, judged, store, lane, until, since, label_delay, stable,
                                                 candidate, copies, states.get(gate.label))
            out.append((result, window))
            continue
        judge, note = judge_for(gate.judge)
        if gate.metric == "input_drift":
            result = judge(gate, [], store.drift(lane, until - window, until))
        else:
            requests = store.window(lane, until - late - window, until - late)
            result = judge(gate, *samples(gate, requests, stable, candidate, copies, store.label))
        if note:
            result = GateResult(**{**result.__dict__, "detail": "; ".join(x for x in (result.detail, note) if x)})
        out.append((result, window))
    return out
