"""Gates: one analysis metric each, over a window of the stable and canary requests, judged by one judge.

Metrics (what a scenario writes under a lane's analysis):

- ``success-rate`` (min, %) and ``latency-p99`` (max, ms): Flagger's built-ins ``request-success-rate`` and
  ``request-duration``, over the canary's requests in the window. With no canary request in the window
  the check fails, as Flagger's does when its query finds no values (``no_data: wait`` to change that).
- ``accuracy`` (min, 0..1): the canary's predictions against the labels that have *arrived* by now (its
  window counts labels by arrival: the requests sent a label delay before it); until ``min_labels`` have,
  the gate waits.
- ``prediction-drift`` (max): Jensen–Shannon distance between the canary's and the stable's predicted
  classes in the window (Evidently's categorical treatment, monitor/drift.py `prediction_drift`).
- ``disagreement`` (max, 0..1): share of identical requests (same arrival index: shadow copies) on which
  the canary's prediction differs from the champion's.
- ``input-drift`` (max, 0..1): share of features whose distribution in the canary's window drifted from
  the canary model's training data (Evidently's per-feature tests and dataset share, monitor/drift.py).

Judges: ``threshold`` (every metric), ``mann-whitney`` and ``msprt`` (success-rate, latency-p99, accuracy:
the metrics that exist per version and can be compared). Mann–Whitney compares per-``step`` series of the
metric (Kayenta compares metric time series; latency: p99 per step), mSPRT compares per-request values
(success 1/0, latency ms, correct 1/0) accumulated since the analysis began.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from mlopslab.analysis.judges import Decision, mann_whitney_check, msprt_check, threshold_check
from mlopslab.analysis.measures import measure, observations, series
from mlopslab.analysis.msprt import Msprt
from mlopslab.analysis.samples import Samples

Judge = Literal["threshold", "mann-whitney", "msprt"]

# metric -> (bound, unit, harmful direction, judges, default min samples, default mSPRT tau)
METRICS: dict[str, tuple[str, str, str, tuple[str, ...], int, float]] = {
    "success-rate": ("min", "%", "decrease", ("threshold", "mann-whitney", "msprt"), 1, 1.0),
    "latency-p99": ("max", " ms", "increase", ("threshold", "mann-whitney", "msprt"), 1, 10.0),
    "accuracy": ("min", "", "decrease", ("threshold", "mann-whitney", "msprt"), 30, 0.05),
    "prediction-drift": ("max", "", "increase", ("threshold",), 30, 0.0),
    "disagreement": ("max", "", "increase", ("threshold",), 30, 0.0),
    "input-drift": ("max", "", "increase", ("threshold",), 100, 0.0),
}
JUDGES = ("threshold", "mann-whitney", "msprt")
_KEYS = {"metric", "name", "min", "max", "window", "judge", "min_labels", "min_samples", "no_data", "step",
         "alpha", "tau", "confidence", "tolerance"}


@dataclass(frozen=True)
class GateResult:
    gate: str                  # the gate's name
    metric: str
    value: float | None        # the canary's measured metric
    baseline: float | None     # the stable's, where the metric has one
    threshold: float
    bound: str                 # "min" | "max"
    verdict: str               # pass | fail | marginal | wait
    judge: str
    n: int                     # canary observations the value rests on
    decision: Decision         # the judge's own numbers (p-value, interval, classification, ...)
    state: Any = None          # what the gate carries to its next evaluation (the mSPRT)

    def to_event(self) -> dict[str, Any]:
        """The fields of a gate-decision event."""
        return {"gate": self.gate, "metric": self.metric, "value": _round(self.value),
                "baseline": _round(self.baseline), "threshold": self.threshold, "bound": self.bound,
                "verdict": self.verdict, "judge": self.judge, "n": self.n, "reason": self.decision.reason}


@dataclass(frozen=True)
class Gate:
    metric: str
    bound: str
    threshold: float
    window: float | None = None        # seconds; None: every request since the analysis began
    judge: Judge = "threshold"
    name: str = ""
    min_samples: int = 1               # canary observations (labels, for accuracy) in the window before judging;
                                       # for the mSPRT, observations per arm since the start
    no_data: Literal["fail", "wait"] = "wait"
    step: float = 1.0                  # seconds per point of a Mann–Whitney series
    alpha: float = 0.05                # mSPRT
    tau: float = 1.0                   # mSPRT mixture scale, in the metric's per-request unit
    confidence: float = 0.98           # Mann–Whitney (Kayenta)
    tolerance: float = 0.25

    def start(self) -> Msprt | None:
        """The state an mSPRT gate starts from (None for the other judges)."""
        return Msprt(tau=self.tau, alpha=self.alpha, min_samples=self.min_samples) if self.judge == "msprt" else None

    def evaluate(self, samples: Samples, state: Msprt | None = None) -> GateResult:
        """Judge the window of `samples`. An mSPRT gate takes the `state` of its last result (or `start()`)
        and consumes only requests newer than what that state has seen."""
        windowed = samples.window(self.window, by_label=self.metric == "accuracy")
        value, baseline, n = measure(self.metric, windowed)
        if self.judge != "msprt" and n < self.min_samples:
            decision = self._missing(value, n)
        elif self.judge == "threshold":
            decision = threshold_check(value, self.threshold, self.bound, unit=METRICS[self.metric][1])  # type: ignore[arg-type]
        elif self.judge == "mann-whitney":
            control, experiment = series(self.metric, windowed, self.step)
            decision = mann_whitney_check(control, experiment, _harmful(self.metric),
                                          tolerance=self.tolerance, confidence=self.confidence)
        else:
            state = state if state is not None else self.start()
            assert state is not None
            stable, canary, seen = observations(self.metric, samples, state.since)
            state, decision = msprt_check(replace(state, since=seen), stable, canary, _harmful(self.metric))
        return GateResult(self.name or self.metric, self.metric, value, baseline, self.threshold, self.bound,
                          decision.verdict, self.judge, n, decision, state)

    def _missing(self, value: float | None, n: int) -> Decision:
        """Too few canary observations in the window to judge: fail (Flagger's built-ins) or wait."""
        what = "labels" if self.metric == "accuracy" else "canary requests"
        missing = f"{n} of {self.min_samples} {what} in the window"
        if self.no_data == "fail":
            return Decision("fail", value, self.threshold, missing + " (no data fails, as in Flagger)", self.judge)
        return Decision("wait", value, self.threshold, missing, self.judge)


def parse_gate(spec: Mapping[str, Any]) -> Gate:
    """A gate from its scenario form, e.g. {metric: success-rate, min: 99, window: 10, judge: threshold}.
    Raises ValueError naming the offending field."""
    if not isinstance(spec, Mapping):
        raise ValueError(f"gate: expected a mapping, got {type(spec).__name__}")
    unknown = sorted(set(spec) - _KEYS)
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown gate field (expected one of {', '.join(sorted(_KEYS))})")
    metric = spec.get("metric")
    if metric not in METRICS:
        raise ValueError(f"metric: expected one of {', '.join(METRICS)}, got {metric!r}")
    bound, _, _, judges, min_default, tau_default = METRICS[metric]
    other = "max" if bound == "min" else "min"
    if other in spec:
        raise ValueError(f"{other}: {metric} takes {bound}, not {other}")
    if bound not in spec:
        raise ValueError(f"{bound}: {metric} needs a {bound} threshold")
    threshold = _number(spec, bound)
    if metric == "success-rate" and not 0 <= threshold <= 100:
        raise ValueError(f"min: a success rate is a percentage in 0..100, got {threshold:g}")
    if metric in ("accuracy", "disagreement", "input-drift") and not 0 <= threshold <= 1:
        raise ValueError(f"{bound}: {metric} is a share in 0..1, got {threshold:g}")
    if metric in ("latency-p99", "prediction-drift") and threshold < 0:
        raise ValueError(f"{bound}: must not be negative, got {threshold:g}")
    judge = spec.get("judge", "threshold")
    if judge not in JUDGES:
        raise ValueError(f"judge: expected one of {', '.join(JUDGES)}, got {judge!r}")
    if judge not in judges:
        raise ValueError(f"judge: {metric} has no per-version values to compare, so only threshold judges it")
    if "min_labels" in spec and metric != "accuracy":
        raise ValueError(f"min_labels: only the accuracy gate waits for labels (use min_samples for {metric})")
    window = _number(spec, "window", positive=True) if spec.get("window") is not None else None
    if window is not None and judge == "msprt":
        raise ValueError("window: the mSPRT judges every request since the analysis began (a window would void "
                         "its always-valid guarantee); leave window out")
    minimum = spec.get("min_labels", spec.get("min_samples", min_default))
    key = "min_labels" if "min_labels" in spec else "min_samples"
    if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 1:
        raise ValueError(f"{key}: expected a whole number >= 1, got {minimum!r}")
    no_data = spec.get("no_data", "fail" if metric in ("success-rate", "latency-p99") else "wait")
    if no_data not in ("fail", "wait"):
        raise ValueError(f"no_data: expected fail or wait, got {no_data!r}")
    name = spec.get("name", metric)
    if not isinstance(name, str) or not name:
        raise ValueError(f"name: expected a non-empty string, got {name!r}")
    alpha = _number(spec, "alpha", positive=True) if "alpha" in spec else 0.05
    confidence = _number(spec, "confidence", positive=True) if "confidence" in spec else 0.98
    for key, value in (("alpha", alpha), ("confidence", confidence)):
        if not 0 < value < 1:
            raise ValueError(f"{key}: expected a number between 0 and 1, got {value:g}")
    return Gate(metric, bound, threshold, window, judge, name, minimum, no_data,
                _number(spec, "step", positive=True) if "step" in spec else 1.0, alpha,
                _number(spec, "tau", positive=True) if "tau" in spec else tau_default, confidence,
                _number(spec, "tolerance", positive=True) if "tolerance" in spec else 0.25)


def parse_gates(specs: Sequence[Mapping[str, Any]]) -> list[Gate]:
    """Every gate of a lane; the ValueError names the gate's position: "gates[2].min: ..."."""
    if not isinstance(specs, Sequence) or isinstance(specs, (str, bytes)):
        raise ValueError("gates: expected a list of gates")
    gates = []
    for k, spec in enumerate(specs):
        try:
            gates.append(parse_gate(spec))
        except ValueError as error:
            raise ValueError(f"gates[{k}].{error}") from None
    names = [g.name for g in gates]
    for name in names:
        if names.count(name) > 1:
            raise ValueError(f"gates: two gates are named {name!r}; give one a name")
    return gates


def _harmful(metric: str) -> Literal["increase", "decrease"]:
    return "increase" if METRICS[metric][2] == "increase" else "decrease"


def _number(spec: Mapping[str, Any], key: str, positive: bool = False) -> float:
    value = spec[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{key}: expected a number, got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{key}: must be positive, got {value!r}")
    return float(value)


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)
