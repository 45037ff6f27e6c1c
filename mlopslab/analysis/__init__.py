"""Rollout analysis: gates (what to measure over a window) and judges (what the numbers mean), pure functions.

A strategy's state machine builds `Samples` (stable vs canary requests) each interval, evaluates its
`Gate`s and hands the results to a `FailedChecks` counter (Flagger) or `kayenta_score` (Kayenta); an
mSPRT gate carries its state from one evaluation to the next. Nothing here starts processes or keeps time.
"""

from mlopslab.analysis.gates import METRICS, Gate, GateResult, parse_gate, parse_gates
from mlopslab.analysis.judges import (
    Decision,
    FailedChecks,
    Tick,
    kayenta_score,
    mann_whitney_check,
    msprt_check,
    threshold_check,
)
from mlopslab.analysis.msprt import Msprt, mixture_likelihood_ratio
from mlopslab.analysis.samples import Arm, Samples

__all__ = [
    "METRICS", "Arm", "Decision", "FailedChecks", "Gate", "GateResult", "Msprt", "Samples", "Tick",
    "kayenta_score", "mann_whitney_check", "mixture_likelihood_ratio", "msprt_check", "parse_gate",
    "parse_gates", "threshold_check",
]
