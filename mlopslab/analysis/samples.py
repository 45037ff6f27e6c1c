"""What a gate looks at: the requests each version (stable, canary) answered in a window, with their labels.

The load generator (traffic/loadgen.py) writes one arrival record per request, {"s": i, "t", "x": row,
"y": label}, and one result record per lane and copy, {"i": i, "lane", "t", "lat" (ms), "st" (HTTP status,
0 = no answer), "v" (version), "p" (prediction), "b" (backend), "m": 1 for a mirrored copy}. A result and its
arrival share the index i, so every answer can be paired with its input row and its true label. As in
monitor/watch.py, a label is known `label_delay` seconds after the request was sent, not at once.

`Samples.from_records` builds the two arms from those records; tests and benchmarks build `Arm`s directly.

Choose `now` as the time up to which every record is in: a request reports up to the load generator's
timeout after it was sent (monitor/traffic.py's LATE = 2.5 s), and a window closed earlier misses exactly
the slow and failed requests, which biases a p99 or a success rate towards the healthy. The mSPRT gates
also never look again at requests sent before the `now` they last saw.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Arm:
    """One version's requests, one entry per answered (or failed) request, in send order."""

    version: str | None
    t: np.ndarray            # intended send time, seconds on the run clock
    latency: np.ndarray      # ms, measured from the intended send time
    status: np.ndarray       # HTTP status; 0 = no answer (timeout, refused)
    prediction: np.ndarray   # the served prediction; NaN without one
    label: np.ndarray        # the true label; NaN until it has arrived
    label_t: np.ndarray      # when the label arrives (t + label delay); inf if never
    request: np.ndarray      # the arrival index i shared with the other arm (shadow pairs)
    inputs: np.ndarray | None = None   # (requests × features) rows, when known

    @classmethod
    def empty(cls, version: str | None = None, features: int | None = None) -> Arm:
        nothing = np.empty(0)
        return cls(version, nothing, nothing, np.empty(0, np.int64), nothing, nothing, nothing,
                   np.empty(0, np.int64), None if features is None else np.empty((0, features)))

    @classmethod
    def of(cls, version: str | None, t: Iterable[float], latency: Iterable[float], status: Iterable[int] | None = None,
           prediction: Iterable[float] | None = None, label: Iterable[float] | None = None,
           label_t: Iterable[float] | None = None, request: Iterable[int] | None = None,
           inputs: np.ndarray | None = None) -> Arm:
        """An arm from plain lists; missing columns default to: status 200, no prediction, no label."""
        times = np.asarray(list(t), dtype=np.float64)
        n = times.size

        def column(values: Iterable[Any] | None, fill: float, dtype: Any = np.float64) -> np.ndarray:
            return np.full(n, fill, dtype=dtype) if values is None else np.asarray(list(values), dtype=dtype)

        return cls(version, times, column(latency, math.nan), column(status, 200, np.int64),
                   column(prediction, math.nan), column(label, math.nan), column(label_t, math.inf),
                   column(request, -1, np.int64) if request is not None else np.arange(n, dtype=np.int64),
                   None if inputs is None else np.asarray(inputs, dtype=np.float64))

    def __len__(self) -> int:
        return int(self.t.size)

    def select(self, keep: np.ndarray) -> Arm:
        return Arm(self.version, self.t[keep], self.latency[keep], self.status[keep], self.prediction[keep],
                   self.label[keep], self.label_t[keep], self.request[keep],
                   None if self.inputs is None else self.inputs[keep])

    @property
    def ok(self) -> np.ndarray:
        return self.status == 200

    def labelled(self, now: float) -> np.ndarray:
        """Requests answered with a prediction whose label has arrived by `now`."""
        return self.ok & ~np.isnan(self.prediction) & ~np.isnan(self.label) & (self.label_t <= now)


@dataclass(frozen=True)
class Samples:
    """Stable against canary at time `now`. For a shadow lane the canary arm holds the mirrored copies.

    `reference` is the training data of the canary's model (rows × features), for the input-drift gate.
    """

    now: float
    stable: Arm
    canary: Arm
    reference: np.ndarray | None = None

    def window(self, seconds: float | None, by_label: bool = False) -> Samples:
        """Only the requests sent in the last `seconds` (None: all); with `by_label`, those whose labels
        arrived in the last `seconds` (a delayed-label metric's window: requests sent a label delay earlier)."""
        if seconds is None:
            return self
        start = self.now - seconds

        def recent(arm: Arm) -> Arm:
            when = arm.label_t if by_label else arm.t
            return arm.select((when > start) & (when <= self.now))

        return Samples(self.now, recent(self.stable), recent(self.canary), self.reference)

    @classmethod
    def from_records(cls, results: Iterable[Mapping[str, Any]], arrivals: Iterable[Mapping[str, Any]] = (), *,
                     stable: str, canary: str, now: float, label_delay: float = math.inf, lane: str | None = None,
                     canary_mirrored: bool | None = None, reference: np.ndarray | None = None) -> Samples:
        """The arms from the load generator's records.

        results: per-lane result records ("i", "lane", "t", "lat", "st", "v", "p", optional "m");
        arrivals: arrival records ("s", "t", "x", "y") giving each request's input row and true label;
        stable / canary: the versions (the record's "v", compared as strings);
        canary_mirrored: True takes only mirrored copies for the canary (shadow), False only user-facing
        answers, None both; the stable arm always takes user-facing answers.
        Records sent after `now` are ignored; labels count as arrived at t + label_delay.
        A failed request carries the version it was sent to (the load generator's "v"), so it counts against
        that version.
        """
        rows: dict[int, tuple[list[float], float]] = {}
        for a in arrivals:
            rows[int(a["s"])] = (a.get("x"), float(a["y"]) if a.get("y") is not None else math.nan)
        columns: dict[str, list[list[Any]]] = {"stable": [[] for _ in range(7)], "canary": [[] for _ in range(7)]}
        inputs: dict[str, list[Any]] = {"stable": [], "canary": []}
        for r in results:
            if (lane is not None and r.get("lane") != lane) or float(r["t"]) > now or r.get("v") is None:
                continue
            version, mirrored = str(r["v"]), bool(r.get("m"))
            if version == str(canary) and (canary_mirrored is None or canary_mirrored == mirrored):
                arm = "canary"
            elif version == str(stable) and not mirrored:
                arm = "stable"
            else:
                continue
            i = int(r["i"])
            x, y = rows.get(i, (None, math.nan))
            prediction = r.get("p")
            for column, value in zip(columns[arm], (float(r["t"]), float(r["lat"]), int(r["st"]),
                                                    math.nan if prediction is None else float(prediction),
                                                    y, float(r["t"]) + label_delay, i), strict=True):
                column.append(value)
            inputs[arm].append(x)

        def build(arm: str, version: str) -> Arm:
            t, lat, st, p, y, yt, i = columns[arm]
            have_rows = bool(inputs[arm]) and all(x is not None for x in inputs[arm])
            made = Arm.of(version, t, lat, st, p, y, yt, i, np.asarray(inputs[arm], dtype=np.float64) if have_rows else None)
            return _hide_future_labels(made, now)

        return cls(now, build("stable", str(stable)), build("canary", str(canary)), reference)


def _hide_future_labels(arm: Arm, now: float) -> Arm:
    """Labels that have not arrived by `now` are unknown (NaN), as they are to the lab at that moment."""
    label = np.where(arm.label_t <= now, arm.label, math.nan)
    return Arm(arm.version, arm.t, arm.latency, arm.status, arm.prediction, label, arm.label_t, arm.request, arm.inputs)
