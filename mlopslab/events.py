"""The run's event stream: one JSON line per event, appended and flushed as it happens.

Every producer (lab, lanes, environments, traffic, monitor) emits through a `Recorder`; every consumer
(headless progress, TUI, report, replay) reads the same dicts. An event is a flat dict:

    {"t": seconds since run start, "wall": unix time, "kind": "...", "lane": "push" | None, ...}

Kinds used across the project (fields beyond t/wall/kind/lane):

    preflight_failed  environment, checks [{name, detail, fix}] (its environment is not usable: nothing started)
    lab_prepared      scenario {name, description, duration, seed, environment, rate, path}, lanes, results_dir
    run_started       scenario                                  (t of the scenario clock's zero)
    narration         text
    model_registered  model, version, run_id, accuracy, uri, note (lane for a lane's own retrain)
    commit            sha, version, message, lanes             (the env repo changed)
    detected          sha, how ("webhook" | "poll")            (a delivery noticed the commit)
    pipeline_done     sha, version, steps, ok, error
    apply_started     sha, version, revision
    replica_started   replica, version;  replica_ready  replica, version, startup
    replica_terminating  replica, version, reason              (out of the endpoints, draining)
    replica_stopped   replica, version, reason ("rollout" | "scale_down" | "manual_change" | "died");
                      replica_killed  replica
    rollout_done      version, revision, duration              (all replicas updated and available)
    rollout_failed    version, revision, reason
    traffic_100       version, at                              (from `at` on every request hit the version)
    live_change       change, by                               (a manual change of live state)
    live_reverted     change, revision                         (the pull agent put desired state back)
    sync              state ("Synced" | "OutOfSync" | "Progressing" | "Degraded"), head, live, live_version
    metrics           window, rps, errors, p50, p95, p99, versions {version: count}   (per lane, per second)
    accuracy          window, value, n, label_delay            (from ground truth once it has arrived)
    traffic_paused / traffic_resumed
    drift_injected    drift, size, features, ramp, change_point
    drift_score       score, method, dataset_drift, features;  drift_alarm  detector, statistic, value, delay...
    retrain_*         started, trained, validated, registered, committed, delivered, done, failed, skipped
    pipeline_*        committed, accepted, rejected {failed: "test_x: why"}  (MLOps level 2: the pipeline's CI)
    human_action      action                                   (what a person had to do)
    image_build*, agent_*                                      (Docker environment)
    base_image        configured, image, how ("present" | "offline" | "pull")   (Docker: what images build FROM)
    error             message
    run_finished      status ("ok" | "stopped" | "interrupted" | "failed"), duration
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

Event = dict[str, Any]
Listener = Callable[[Event], None]


class Recorder:
    """Stamps events on one clock, appends them to events.jsonl (flushed per line) and fans them out.

    Thread-safe: lanes, environments and the traffic reader all emit from their own threads. Stamping and
    writing happen under one lock, so the file is in time order; listeners are called by one dispatcher
    thread in file order, so a live RunState sees what a replay sees, and a slow consumer (a paused
    terminal) never blocks the threads that measure.
    """

    def __init__(self, path: Path | None, *, t0: float | None = None) -> None:
        self.t0 = time.monotonic() if t0 is None else t0
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._failed: set[int] = set()
        self._file = open(path, "a", encoding="utf-8", buffering=1) if path else None
        self.path = path
        self._queue: queue.SimpleQueue[Event | None] = queue.SimpleQueue()
        self._pending = 0
        self._idle = threading.Condition(self._lock)
        self._dispatcher = threading.Thread(target=self._dispatch, name="events", daemon=True)
        self._dispatcher.start()

    def now(self) -> float:
        """Seconds since the run started, on the run's one clock."""
        return time.monotonic() - self.t0

    def subscribe(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def emit(self, kind: str, lane: str | None = None, *, t: float | None = None, **fields: Any) -> Event:
        with self._lock:
            event: Event = {"t": round(self.now() if t is None else t, 4), "wall": round(time.time(), 3),
                            "kind": kind, "lane": lane, **fields}
            if self._file is not None and not self._file.closed:
                self._file.write(json.dumps(event, separators=(",", ":"), default=str) + "\n")
            self._pending += 1
            self._queue.put(event)
        return event

    def _dispatch(self) -> None:
        while (event := self._queue.get()) is not None:
            with self._lock:
                listeners = list(self._listeners)
            for listener in listeners:
                try:
                    listener(event)
                except Exception as exc:  # a broken consumer must never stop the run; say so once
                    if id(listener) not in self._failed:
                        self._failed.add(id(listener))
                        self.emit("error", None, message=f"event listener {getattr(listener, '__qualname__', listener)}"
                                                         f" failed: {type(exc).__name__}: {exc}")
            with self._lock:
                self._pending -= 1
                self._idle.notify_all()

    def drain(self, timeout: float = 10.0) -> None:
        """Waits until every event emitted so far has reached every listener."""
        with self._lock:
            self._idle.wait_for(lambda: self._pending == 0, timeout=timeout)

    def close(self) -> None:
        self.drain()
        self._queue.put(None)
        self._dispatcher.join(timeout=5)
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
            except json.JSONDecodeError:  # a torn line (a crash mid-write): skip it, keep what follows
                continue
