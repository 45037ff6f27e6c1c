"""The run's event stream: one JSON line per event, appended and flushed as it happens.

Every producer (lab, lanes, environments, traffic, monitor) emits through a `Recorder`; every consumer
(headless progress, TUI, report, replay) reads the same dicts. An event is a flat dict:

    {"t": seconds since run start, "wall": unix time, "kind": "...", "lane": "push" | None, ...}

Kinds used across the project (fields beyond t/wall/kind/lane):

    run_started       scenario, environment, lanes, seed, results_dir
    narration         text
    model_registered  model, version, run_id, accuracy, uri
    commit            sha, version, message, lanes             (the env repo changed)
    detected          sha, version, how ("webhook" | "poll")   (a delivery noticed the commit)
    pipeline_done     sha, version, steps, ok, error
    apply_started     sha, version, revision
    replica_started   replica, version
    replica_ready     replica, version
    replica_stopped   replica, version, reason
    rollout_done      version, revision                        (all replicas updated and available)
    rollout_failed    version, reason
    traffic_100       version                                  (from here every request hit the new version)
    live_change       change, by                               (a manual change of live state)
    live_reverted     change, revision                         (the pull agent put desired state back)
    sync              state ("Synced" | "OutOfSync" | "Progressing" | "Degraded"), head, live
    metrics           window, rps, errors, p50, p95, p99, versions {version: count}, accuracy
    traffic_paused / traffic_resumed
    drift_injected    drift spec;  drift_alarm  detector, feature, statistic, value
    retrain_*         retraining pipeline phases (MLOps levels)
    error             message
    run_finished      status ("ok" | "interrupted" | "failed"), duration
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

Event = dict[str, Any]
Listener = Callable[[Event], None]


class Recorder:
    """Stamps events on one clock, appends them to events.jsonl (flushed per line) and fans them out.

    Thread-safe: lanes, environments and the traffic reader all emit from their own threads.
    """

    def __init__(self, path: Path | None, *, t0: float | None = None) -> None:
        self.t0 = time.monotonic() if t0 is None else t0
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._file = open(path, "a", encoding="utf-8", buffering=1) if path else None
        self.path = path

    def now(self) -> float:
        """Seconds since the run started, on the run's one clock."""
        return time.monotonic() - self.t0

    def subscribe(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def emit(self, kind: str, lane: str | None = None, *, t: float | None = None, **fields: Any) -> Event:
        event: Event = {"t": round(self.now() if t is None else t, 4), "wall": round(time.time(), 3),
                        "kind": kind, "lane": lane, **fields}
        line = json.dumps(event, separators=(",", ":"), default=str)
        with self._lock:
            if self._file is not None and not self._file.closed:
                self._file.write(line + "\n")
                self._file.flush()
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # a broken consumer must never stop the run
                pass
        return event

    def sync_to_disk(self) -> None:
        with self._lock:
            if self._file is not None and not self._file.closed:
                self._file.flush()
                os.fsync(self._file.fileno())

    def close(self) -> None:
        with self._lock:
            if self._file is not None and not self._file.closed:
                self._file.flush()
                self._file.close()


def read_events(path: Path) -> Iterator[Event]:
    """Yields the events of a run, tolerating a torn last line (a crash mid-write)."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                return
