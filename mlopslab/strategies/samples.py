"""Every request a strategy's gates may look at, per lane: who served it, how fast, whether it failed,
what it predicted, and (once its delay has passed) the true label — kept for `HISTORY` seconds.

`Samples.window` cuts one version's requests out of a time window, so a gate compares the candidate with
the stable version on the same stretch of time; copies (shadow) are kept apart from user requests."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

HISTORY = 900.0   # seconds of requests kept per lane


@dataclass(frozen=True)
class Request:
    t: float
    i: int
    version: str | None
    mirrored: bool
    latency: float
    ok: bool
    prediction: Any


class Samples:
    def __init__(self, lanes: list[str]) -> None:
        self._lock = threading.Lock()
        self._requests: dict[str, deque[Request]] = {lane: deque() for lane in lanes}
        self._labels: dict[int, int] = {}
        self._drift: dict[str, deque[tuple[float, float]]] = {lane: deque(maxlen=3600) for lane in lanes}
        self._label_order: deque[int] = deque()

    def add_result(self, record: dict[str, Any]) -> None:
        """A load-generator record (traffic/loadgen.py)."""
        lane = record.get("lane")
        if lane not in self._requests:
            return
        request = Request(float(record["t"]), int(record.get("i", -1)), None if record.get("v") is None
                          else str(record["v"]), bool(record.get("m")), float(record["lat"]), record["st"] == 200,
                          record.get("p"))
        with self._lock:
            queue = self._requests[lane]
            queue.append(request)
            while queue and queue[0].t < request.t - HISTORY:
                queue.popleft()

    def add_sample(self, sample: dict[str, Any]) -> None:
        """An arrival's row and true label ({"s": i, "y": label}); a gate reads it only after the delay."""
        if "s" not in sample or "y" not in sample:
            return
        with self._lock:
            self._labels[int(sample["s"])] = int(sample["y"])
            self._label_order.append(int(sample["s"]))
            while len(self._label_order) > 200_000:
                self._labels.pop(self._label_order.popleft(), None)

    def on_event(self, event: Any) -> None:
        """Recorder listener (a typed event, or a line's dict): the lane's input drift score (monitor/watch.py),
        for an input_drift gate."""
        lane, score = event.get("lane"), event.get("score")
        if event.get("kind") == "drift_score" and lane in self._drift and score is not None:
            with self._lock:
                self._drift[lane].append((float(event.get("t")), float(score)))

    def drift(self, lane: str, since: float, until: float) -> list[float]:
        with self._lock:
            return [score for t, score in self._drift.get(lane, ()) if since <= t < until]

    def window(self, lane: str, since: float, until: float) -> list[Request]:
        with self._lock:
            return [r for r in self._requests.get(lane, ()) if since <= r.t < until]

    def label(self, i: int) -> int | None:
        with self._lock:
            return self._labels.get(i)
