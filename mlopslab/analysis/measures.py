"""What each gate metric is, computed from `Samples`: the canary's value and the stable's, per-step series
for Kayenta's judge, and per-request observations for the mSPRT. Pure numpy; monitor/drift.py is imported
only by the two drift metrics, when they are measured."""

from __future__ import annotations

import math

import numpy as np

from mlopslab.analysis.samples import Arm, Samples


def measure(metric: str, s: Samples) -> tuple[float | None, float | None, int]:
    """(canary value, stable value, canary observations) of `metric` over the samples."""
    c, b = s.canary, s.stable
    if metric == "success-rate":
        return _percent(c.ok), _percent(b.ok), len(c)
    if metric == "latency-p99":
        return _p99(c.latency), _p99(b.latency), len(c)
    if metric == "accuracy":
        mine, theirs = c.labelled(s.now), b.labelled(s.now)
        return (_share(c.prediction[mine] == c.label[mine]), _share(b.prediction[theirs] == b.label[theirs]),
                int(mine.sum()))
    if metric == "disagreement":
        mine, theirs = _pairs(b, c)
        return _share(mine != theirs), None, int(mine.size)
    if metric == "prediction-drift":
        cp, bp = c.prediction[~np.isnan(c.prediction)], b.prediction[~np.isnan(b.prediction)]
        if cp.size == 0 or bp.size == 0:
            return None, None, int(cp.size)
        from mlopslab.monitor.drift import prediction_drift
        return prediction_drift(bp, cp).jensenshannon, None, int(cp.size)
    # input-drift
    rows = c.inputs if c.inputs is not None else np.empty((0, 0))
    reference = s.reference if s.reference is not None else b.inputs
    if rows.shape[0] < 2 or reference is None or reference.shape[0] < 2:
        return None, None, int(rows.shape[0])
    from mlopslab.monitor.drift import feature_drift_report
    return feature_drift_report(reference, rows).share_drifted, None, int(rows.shape[0])


def series(metric: str, s: Samples, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-step values of the metric for stable and canary: the time series Kayenta compares.

    A p99 depends on how many values it is taken over: at a 10 % canary weight the canary's per-second p99
    comes from a ninth as many requests as the stable's and is systematically lower, so identical versions
    would classify Low. Kayenta's practice is a baseline as large as the canary; here the stable's requests
    of each step are thinned (evenly, in send order) to the canary's count before the p99 is taken, and
    steps without canary requests are left out. Means (success rate, accuracy) need no thinning.
    """
    def values(arm: Arm) -> tuple[np.ndarray, np.ndarray]:
        if metric == "accuracy":
            keep = arm.labelled(s.now)
            return arm.t[keep], (arm.prediction[keep] == arm.label[keep]).astype(float)
        return arm.t, (100.0 * arm.ok if metric == "success-rate" else arm.latency)

    (t_s, v_s), (t_c, v_c) = values(s.stable), values(s.canary)
    b_s, b_c = np.floor(t_s / step).astype(np.int64), np.floor(t_c / step).astype(np.int64)
    if metric != "latency-p99":
        return (np.asarray([float(np.mean(v_s[b_s == b])) for b in np.unique(b_s)]),
                np.asarray([float(np.mean(v_c[b_c == b])) for b in np.unique(b_c)]))
    stable, canary = [], []
    for bucket in np.unique(b_c):
        mine, theirs = v_c[b_c == bucket], v_s[b_s == bucket]
        canary.append(float(np.percentile(mine, 99)))
        if theirs.size:
            thinned = theirs[np.linspace(0, theirs.size - 1, min(mine.size, theirs.size)).round().astype(int)]
            stable.append(float(np.percentile(thinned, 99)))
    return np.asarray(stable), np.asarray(canary)


def observations(metric: str, s: Samples, since: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Per-request values newer than `since` (send time; label arrival for accuracy), and the newest time."""
    def values(arm: Arm) -> tuple[np.ndarray, np.ndarray]:
        if metric == "accuracy":
            keep = arm.labelled(s.now) & (arm.label_t > since)
            return (arm.prediction[keep] == arm.label[keep]).astype(float), arm.label_t[keep]
        keep = (arm.t > since) & (arm.t <= s.now)
        return (100.0 * arm.ok[keep] if metric == "success-rate" else arm.latency[keep]), arm.t[keep]
    (stable, t1), (canary, t2) = values(s.stable), values(s.canary)
    return stable, canary, max(since, float(t1.max(initial=since)), float(t2.max(initial=since)))


def _pairs(stable: Arm, canary: Arm) -> tuple[np.ndarray, np.ndarray]:
    """Predictions of both versions on the same requests (arrival index), where both answered."""
    b = {int(i): p for i, p, ok in zip(stable.request, stable.prediction, stable.ok) if ok and not math.isnan(p)}
    pairs = [(p, b[int(i)]) for i, p, ok in zip(canary.request, canary.prediction, canary.ok)
             if ok and not math.isnan(p) and int(i) in b]
    mine = np.asarray([p for p, _ in pairs], dtype=np.float64)
    return mine, np.asarray([q for _, q in pairs], dtype=np.float64)


def _share(flags: np.ndarray) -> float | None:
    return float(np.mean(flags)) if flags.size else None


def _percent(flags: np.ndarray) -> float | None:
    return 100.0 * float(np.mean(flags)) if flags.size else None


def _p99(latency: np.ndarray) -> float | None:
    return float(np.percentile(latency, 99)) if latency.size else None
