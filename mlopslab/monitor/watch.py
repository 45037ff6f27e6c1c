"""The online drift monitor: the lab feeds it every request row and every lane's prediction.

Per lane it keeps the training reference of the lane's current model (the rows that version was trained
on; the lab hands them over with `add_training_rows`, a `commit` event switches the lane to the committed
version) and a sliding window of the request rows that arrived since. Every second (`tick`) it

- compares the window with the reference, feature by feature (`drift.feature_drift_report`), and emits
  `drift_score` {score = share of drifted features, features: {name: value}, method, dataset_drift};
- raises `drift_alarm` on the dataset rule (share of drifted features >= `share`) or on a CUSUM of a
  standardised per-row signal (the mean of the row's features in reference standard deviations), once
  per reference: detector, statistic, value, the change point estimate, and — when a `drift_injected`
  event told the known change point — the detection delay in samples and seconds next to Lorden's floor
  2·ln(ARL0)/δ² (δ: the shift of the signal the injected drift causes, covariate drift only);
- emits `accuracy` {window, value, n, label_delay} per lane and per one-second window of arrivals, once
  the ground truth of that window has arrived: labels are known `label_delay` seconds after the request,
  not at once.

It also serves the labelled data a retraining pipeline may use: only rows whose labels have arrived.
Times are on the run clock (the load generator's `t`, the recorder's `t`).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlopslab.events import Emit
from mlopslab.eventtypes import Commit, DriftInjected, Event, decode
from mlopslab.monitor.drift import METHODS, DriftReference, feature_drift_report
from mlopslab.monitor.sequential import (
    Cusum,
    detection_delay,
    detection_floor,
    siegmund_arl,
)

AlarmHandler = Callable[[str, dict[str, Any]], None]

DEFAULTS: dict[str, Any] = {
    "window": 200,          # recent request rows compared with the reference
    "reference": "training",  # or an int: at most this many training rows (evenly thinned)
    "psi_threshold": None,  # set: judge every feature by PSI at this threshold; unset: by the KS test (p <= 0.05)
    "share": 0.5,           # dataset rule: share of drifted features that makes the dataset drift
    "cusum_h": 10.0,        # CUSUM threshold, in signal standard deviations (ARL0 ~ 7e4 samples with k = 0.5)
    "cusum_k": 0.5,         # CUSUM reference value (half the shift it is tuned for)
}
MIN_WINDOW = 100       # rows in the window before the dataset rule is judged
RESPONSE_SLACK = 0.5   # seconds after a label arrives before its window's accuracy is closed
KEEP_ROWS = 50_000


@dataclass
class _LaneWatch:
    name: str
    version: str | None = None
    window_start: int = 0            # index into rows: the window only holds rows from here on
    cusum: Cusum | None = None
    signal_mean: np.ndarray | None = None
    signal_scale: np.ndarray | None = None
    signal_mu: float = 0.0
    signal_sigma: float = 1.0
    cusum_last_zero: int = 0         # last row index at which the CUSUM sums were both zero
    alarmed: set[str] = field(default_factory=set)
    predictions: dict[int, Any] = field(default_factory=dict)   # sample index -> prediction
    accuracy_closed: int = -1        # last arrival second whose delayed accuracy was emitted


class DriftWatch:
    def __init__(self, lanes: list[str], feature_names: list[str], emit: Emit, *, label_delay: float,
                 config: dict[str, Any] | None = None, on_alarm: AlarmHandler | None = None) -> None:
        self.lanes = list(lanes)
        self.feature_names = list(feature_names)
        self.emit = emit
        self.label_delay = float(label_delay)
        self.config = {**DEFAULTS, **{k: v for k, v in (config or {}).items() if v is not None}}
        self.on_alarm = on_alarm
        self._lock = threading.Lock()
        self._training: dict[str, np.ndarray] = {}      # model version -> rows it was trained on
        self._references: dict[str, DriftReference] = {}
        self._lanes = {lane: _LaneWatch(lane) for lane in lanes}
        self._s: list[int] = []                          # per arrival: sample index, time, row, label
        self._t: list[float] = []
        self._x: list[np.ndarray] = []
        self._y: list[int] = []
        self._offset = 0                                 # rows dropped from the front
        self._change: dict[str, Any] | None = None      # the last drift_injected event

    # --- inputs ------------------------------------------------------------------------------------------
    def add_training_rows(self, version: str, X: np.ndarray) -> None:
        """The rows model `version` was trained on: the reference of every lane that serves it."""
        cap = self.config["reference"]
        X = np.asarray(X, dtype=np.float64)
        if isinstance(cap, int) and not isinstance(cap, bool) and 0 < cap < len(X):
            X = X[np.linspace(0, len(X) - 1, cap).astype(int)]
        with self._lock:
            self._training[str(version)] = X

    def set_lane_version(self, lane: str, version: str) -> None:
        """The lane now serves (or is about to serve) `version`: its reference changes, the window and the
        CUSUM start afresh, and a new alarm may be raised."""
        version = str(version)
        with self._lock:
            state = self._lanes.get(lane)
            if state is None or version not in self._training or state.version == version:
                return
            X = self._training[version]
            state.version = version
            if version not in self._references:
                self._references[version] = DriftReference(X, self.feature_names)
            state.window_start = self._offset + len(self._s)
            state.signal_mean = X.mean(axis=0)
            state.signal_scale = np.maximum(X.std(axis=0), 1e-9)
            signal = ((X - state.signal_mean) / state.signal_scale).mean(axis=1)
            state.signal_mu, state.signal_sigma = float(signal.mean()), float(max(signal.std(), 1e-9))
            state.cusum = Cusum(k=float(self.config["cusum_k"]), h=float(self.config["cusum_h"]),
                                mu0=state.signal_mu, sigma=state.signal_sigma)
            state.cusum_last_zero = state.window_start
            state.alarmed = set()

    def on_event(self, event: Event | dict[str, Any]) -> None:
        """Recorder listener: commits switch references, injected drifts give the known change point."""
        match e := decode(event):
            case Commit(lanes=lanes, version=version):
                for lane in lanes or []:
                    self.set_lane_version(lane, str(version))
            case DriftInjected():
                with self._lock:
                    self._change = e.as_dict()

    def add_sample(self, record: dict[str, Any]) -> None:
        """One arrival from the load generator: {"s", "t", "x", "y"}."""
        x = np.asarray(record["x"], dtype=np.float64)
        alarms = []
        with self._lock:
            index = self._offset + len(self._s)
            self._s.append(int(record["s"]))
            self._t.append(float(record["t"]))
            self._x.append(x)
            self._y.append(int(record["y"]))
            for state in self._lanes.values():
                if state.cusum is None or state.signal_mean is None:
                    continue
                value = float(((x - state.signal_mean) / state.signal_scale).mean())
                state.cusum.update(value)
                if state.cusum.upper == 0.0 and state.cusum.lower == 0.0:
                    state.cusum_last_zero = index + 1
                if state.cusum.alarm and "cusum" not in state.alarmed:
                    alarms.append(self._alarm(state, "cusum", "cusum_statistic", state.cusum.statistic, index,
                                              float(record["t"]), change_index=state.cusum_last_zero))
            if len(self._s) > KEEP_ROWS:
                drop = len(self._s) - KEEP_ROWS // 2
                del self._s[:drop], self._t[:drop], self._x[:drop], self._y[:drop]
                self._offset += drop
        for lane, alarm in alarms:
            self._raise(lane, alarm)

    def add_result(self, record: dict[str, Any]) -> None:
        """One lane's answer: {"i", "lane", "t", "lat", "st", "v", "p"}."""
        if record.get("st") != 200 or record.get("p") is None:
            return
        with self._lock:
            state = self._lanes.get(record["lane"])
            if state is not None:
                state.predictions[int(record["i"])] = record["p"]

    # --- outputs -----------------------------------------------------------------------------------------
    def tick(self, now: float) -> None:
        """Once a second: drift score and dataset rule per lane; delayed accuracy of closed windows."""
        scores, alarms, accuracy = [], [], []
        with self._lock:
            end = self._offset + len(self._s)
            cache: dict[tuple[str, int], Any] = {}
            for state in self._lanes.values():
                if state.version is None:
                    continue
                start = max(state.window_start, end - int(self.config["window"]), self._offset)
                if end - start < min(MIN_WINDOW, int(self.config["window"])):
                    continue
                key = (state.version, start)
                if key not in cache:
                    cache[key] = self._report(state.version, start, end)
                report = cache[key]
                scores.append((state.name, report, end - start))
                if report.dataset_drift and "dataset_drift" not in state.alarmed:
                    alarms.append(self._alarm(state, "dataset_drift", "share_drifted", report.share_drifted,
                                              end - 1, self._t[end - 1 - self._offset], report=report,
                                              change_index=state.cusum_last_zero))
            accuracy = self._close_accuracy(now)
        for lane, report, n in scores:
            method = report.features[0].method if report.features else None
            self.emit("drift_score", lane, score=round(report.share_drifted, 4), method=method,
                      dataset_drift=report.dataset_drift, n_window=n, n_reference=report.n_reference,
                      features={f.name: _round(f.value(f.method)) for f in report.features})
        for lane, alarm in alarms:
            self._raise(lane, alarm)
        for lane, fields in accuracy:
            self.emit("accuracy", lane, **fields)

    def drift_report(self, lane: str) -> dict[str, Any] | None:
        """The lane's current window against its reference, as a dict (for an MLflow artifact)."""
        with self._lock:
            state = self._lanes[lane]
            end = self._offset + len(self._s)
            start = max(state.window_start, end - int(self.config["window"]), self._offset)
            if state.version is None or end - start < 2:
                return None
            report = self._report(state.version, start, end, every_method=True)
            return {"reference_version": state.version, **report.to_dict()}

    def labelled(self, now: float, since: float | None = None, last: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows whose labels have arrived by `now` (arrived before now - label_delay), optionally only those
        that arrived at or after `since` and at most the `last` of them: (X, y, t)."""
        with self._lock:
            t = np.asarray(self._t)
            keep = t <= now - self.label_delay
            if since is not None:
                keep &= t >= since
            idx = np.flatnonzero(keep)
            if last is not None:
                idx = idx[-last:]
            if idx.size == 0:
                return np.empty((0, len(self.feature_names))), np.empty(0, np.int64), np.empty(0)
            return np.vstack([self._x[i] for i in idx]), np.asarray(self._y, np.int64)[idx], t[idx]

    # --- internals ---------------------------------------------------------------------------------------
    def _report(self, version: str, start: int, end: int, *, every_method: bool = False) -> Any:
        current = np.vstack(self._x[start - self._offset:end - self._offset])
        threshold = self.config["psi_threshold"]
        stattest = "psi" if threshold is not None else "ks"
        # the once-a-second score needs only the verdict's statistic; the MLflow artifact gets all four
        return feature_drift_report(self._references[version], current,
                                    methods=METHODS if every_method else (stattest,), stattest=stattest,
                                    thresholds={"psi": float(threshold)} if threshold is not None else None,
                                    drift_share=float(self.config["share"]))

    def _alarm(self, state: _LaneWatch, detector: str, statistic: str, value: float, index: int, t: float,
               *, change_index: int | None = None, report: Any = None) -> tuple[str, dict[str, Any]]:
        """Builds one alarm (under the lock); marks the detector as alarmed for this reference."""
        state.alarmed.add(detector)
        first = len(state.alarmed) == 1
        fields: dict[str, Any] = {"detector": detector, "statistic": statistic, "value": _round(value),
                                  "sample": self._s[index - self._offset], "at": round(t, 4), "first": first,
                                  "reference_version": state.version}
        # the change point estimate: the last row at which the CUSUM sums were zero (Page's estimator)
        if change_index is not None and self._offset <= change_index < self._offset + len(self._s):
            fields["estimated_change"] = round(self._t[change_index - self._offset], 4)
        else:
            fields["estimated_change"] = round(t, 4)
        if report is not None:
            fields["drifted_features"] = list(report.drifted_features)
        if detector == "cusum":
            k, h = float(self.config["cusum_k"]), float(self.config["cusum_h"])
            fields.update(h=h, k=k, arl0=round(siegmund_arl(h, k), 1))
        change = self._change
        if change is not None and change.get("change_point") is not None:
            cp = float(change["change_point"])
            change_at = next((i for i, ti in enumerate(self._t) if ti >= cp), None)
            fields["change_point"] = round(cp, 4)
            if change_at is not None and index - self._offset >= change_at:
                delay = detection_delay(change_at, index - self._offset)
                fields["delay_samples"] = delay.samples
                fields["delay_seconds"] = round(t - cp, 4)
                if detector == "cusum":
                    delta = self._signal_shift(state, change)
                    if delta:
                        fields["delta"] = round(delta, 4)
                        fields["floor_samples"] = round(detection_floor(fields["arl0"], delta), 3)
            elif t < cp:
                fields["false_alarm"] = True
        return state.name, fields

    def _signal_shift(self, state: _LaneWatch, change: dict[str, Any]) -> float | None:
        """δ of the CUSUM signal (in its reference σ) that an injected covariate drift causes."""
        if change.get("drift", change.get("kind")) != "covariate" or state.signal_scale is None:
            return None
        d = len(self.feature_names)
        features = change.get("features") or list(range(max(1, d // 2)))
        shift = np.zeros(d)
        shift[list(features)] = float(change["size"])
        delta = float((shift / state.signal_scale).mean() / state.signal_sigma)
        return abs(delta) if delta else None

    def _raise(self, lane: str, alarm: dict[str, Any]) -> None:
        self.emit("drift_alarm", lane, **alarm)
        if alarm.get("first") and self.on_alarm is not None:
            self.on_alarm(lane, alarm)

    def _close_accuracy(self, now: float) -> list[tuple[str, dict[str, Any]]]:
        """Per lane, the accuracy of each one-second arrival window whose labels have all arrived."""
        if not self._t:
            return []
        known = now - self.label_delay - RESPONSE_SLACK   # arrivals before this have their labels
        last_closed = math.floor(known) - 1                 # last whole second that ended before it
        out = []
        t = np.asarray(self._t)
        seconds = np.floor(t).astype(int)
        y = self._y
        for state in self._lanes.values():
            first = max(state.accuracy_closed + 1, int(seconds[0]))
            for second in range(first, last_closed + 1):
                idx = np.flatnonzero(seconds == second)
                scored = [(state.predictions.pop(self._s[i], None), y[i]) for i in idx]
                scored = [(p, label) for p, label in scored if p is not None]
                if scored:
                    value = sum(int(p == label) for p, label in scored) / len(scored)
                    out.append((state.name, {"window": second, "value": round(value, 4), "n": len(scored),
                                             "label_delay": self.label_delay}))
            state.accuracy_closed = max(state.accuracy_closed, last_closed)
        return out


def _round(value: Any) -> Any:
    return None if value is None else round(float(value), 5)
