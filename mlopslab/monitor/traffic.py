"""Turns the load generator's per-request records into per-second windows and the 100 %-traffic mark.

Windows are keyed by intended send time (when the request *should* have left), closed once no record of
theirs can still arrive (a timed-out request reports after the load generator's timeout); each becomes a `metrics` event per lane: rate, errors, p50/p95/p99 latency, per version sent to
(`by_version`: n, errors, p99) and per mirrored version (`mirrored`, shadow copies no user saw), requests per
served version, and the load generator's schedule lag at p99 (`lag_p99`, ms; absent in runs
recorded before the generator measured it). `traffic_100` marks, after a rollout finished, the first moment from which every
request of the lane was answered by the new version.
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlopslab.envs.base import Emit
from mlopslab.eventtypes import Event, RolloutDone, decode
from mlopslab.traffic.loadgen import TIMEOUT

LATE = TIMEOUT + 0.5  # a request's record arrives at most this long after its intended send time
SETTLE = LATE         # seconds after a rollout finishes before the 100 % mark is decided
HISTORY = 120.0       # seconds of per-request history kept per lane for that decision


@dataclass
class _Window:
    latencies: list[float] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    errors: int = 0
    versions: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    # per version the lane's requests were sent to, and per version mirrored copies went to:
    # version -> (latencies, errors), so a gate can compare a canary with its stable version
    by_version: dict[str, tuple[list[float], list[int]]] = field(default_factory=dict)
    mirrored: dict[str, tuple[list[float], list[int]]] = field(default_factory=dict)


class TrafficMonitor:
    def __init__(self, lanes: list[str], emit: Emit) -> None:
        self.lanes = lanes
        self.emit = emit
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, int], _Window] = {}
        self._history: dict[str, deque[tuple[float, str | None, bool]]] = {lane: deque() for lane in lanes}
        self._targets: dict[str, tuple[str, float]] = {}   # lane -> (version, decide after t)
        self._full: dict[str, str] = {}                    # lane -> version that last reached 100 %
        self._closed_before = 0

    # --- inputs ------------------------------------------------------------------------------------
    def on_event(self, event: Event | dict[str, Any]) -> None:
        """Recorder listener: a finished rollout arms the 100 % detector for its lane."""
        match decode(event):
            case RolloutDone(lane=str(lane), version=version, t=t) if lane in self._history:
                with self._lock:
                    if self._full.get(lane) != str(version):  # a scale or self-heal of the same version is no release
                        self._targets[lane] = (str(version), t + SETTLE)

    def add_result(self, record: dict[str, Any]) -> None:
        lane, t = record["lane"], record["t"]
        ok = record["st"] == 200
        with self._lock:
            window = self._windows.setdefault((lane, max(int(t), self._closed_before)), _Window())
            if record.get("v") is not None:
                latencies, errors = (window.mirrored if record.get("m") else window.by_version).setdefault(
                    str(record["v"]), ([], [0]))
                latencies.append(record["lat"])
                errors[0] += not ok
            if record.get("m"):  # a shadow copy: no user saw it, so it is not the lane's traffic
                return
            window.latencies.append(record["lat"])
            if "lag" in record:
                window.lags.append(record["lag"])
            if ok:
                window.versions[str(record["v"])] += 1
            else:
                window.errors += 1
            history = self._history[lane]
            history.append((t, str(record["v"]) if ok else None, ok))
            while history and history[0][0] < t - HISTORY:
                history.popleft()

    # --- outputs -----------------------------------------------------------------------------------
    def tick(self, now: float) -> None:
        """Closes windows no record can still reach and decides pending 100 % marks."""
        with self._lock:
            due = sorted(key for key in self._windows if key[1] + 1 + LATE <= now)
            closed = [(key, self._windows.pop(key)) for key in due]
            if due:
                self._closed_before = max(self._closed_before, max(k[1] for k in due) + 1)
            decisions = []
            for lane, (version, after) in list(self._targets.items()):
                if now >= after:
                    mark = self._first_all_new(lane, version)
                    if mark is not None:
                        decisions.append((lane, version, mark))
                        del self._targets[lane]
        for (lane, second), window in closed:
            self.emit("metrics", lane, **summarise(window.latencies, window.errors, window.versions, window.lags),
                      **_per_version(window), window=second)
        for lane, version, mark in decisions:
            self._full[lane] = version
            self.emit("traffic_100", lane, version=version, at=round(mark, 4))

    def _first_all_new(self, lane: str, version: str) -> float | None:
        history = self._history[lane]
        last_other = max((t for t, v, ok in history if not ok or v != version), default=None)
        after = [t for t, v, ok in history if last_other is None or t > last_other]
        return min(after) if after else None


def _per_version(window: _Window) -> dict[str, Any]:
    """{"by_version": {v: {n, errors, p99}}} and, when a version was mirrored, {"mirrored": {...}}."""
    def stats(groups: dict[str, tuple[list[float], list[int]]]) -> dict[str, Any]:
        return {v: {"n": len(lat), "errors": err[0], "p99": round(float(np.percentile(lat, 99)), 3)}
                for v, (lat, err) in sorted(groups.items()) if lat}

    out: dict[str, Any] = {"by_version": stats(window.by_version)}
    if window.mirrored:
        out["mirrored"] = stats(window.mirrored)
    return out


def summarise(latencies: list[float], errors: int, versions: dict[str, int],
              lags: list[float] | None = None) -> dict[str, Any]:
    if latencies:
        p50, p95, p99 = (round(float(v), 3) for v in np.percentile(latencies, [50, 95, 99]))
    else:
        p50 = p95 = p99 = None
    out = {"rps": len(latencies), "errors": errors, "p50": p50, "p95": p95, "p99": p99, "versions": dict(versions)}
    if lags:
        out["lag_p99"] = round(float(np.percentile(lags, 99)), 3)
    return out
