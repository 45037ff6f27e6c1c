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
    replica_stopped   replica, version, reason ("rollout" | "scale_down" | "manual_change" | "died" | "crashed":
                      died before it was ever ready, with crashes (in a row), backoff, last_words);
    replica_killed    replica
    rollout_done      version, revision, duration              (all replicas updated and available)
    rollout_failed    version, revision, reason, detail ("CrashLoopBackOff" | "NotReady"), message
    traffic_100       version, at                              (from `at` on every request hit the version)
    live_change       change, by                               (a manual change of live state)
    live_reverted     change, revision                         (the pull agent put desired state back)
    sync              state ("Synced" | "OutOfSync" | "Progressing" | "Degraded"), head, live, live_version,
                      error (while the lane's delivery cannot read the env repo)
    fetch_failed      error, attempt, retry_in                  (a pull agent could not read the env repo)
    fetch_recovered   attempts, sha, down_for                   (it could again)
    registry_busy     step, attempt, error, retry_in            (the MLflow store was locked; the step is retried)
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

import contextlib
import json
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

Emit = Callable[..., Any]  # Recorder.emit(kind, lane, **fields): how every producer reports
Event = dict[str, Any]
Listener = Callable[[Event], None]


class AppendLog:
    """A JSON-lines file that only ever holds whole lines: each line goes out in one write, and a write that
    fails (disk full, file system gone read-only) is cut back to the last whole line. After a failure the
    log takes no more lines, so what it holds has no gap; `error` says what happened, and `on_error` (if
    set) is called once with it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._size = os.fstat(self._fd).st_size
        self.error: str | None = None
        self.on_error: Callable[[str], None] | None = None

    def write(self, line: str) -> bool:
        """Appends one line (with its newline); False if the log has failed (now or before) or is closed."""
        if self._fd is None or self.error is not None:
            return False
        data = line.encode()
        try:
            written = 0
            while written < len(data):
                written += os.write(self._fd, data[written:])
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)  # no torn line: the file ends at the last whole one
            self.error = f"cannot write {self.path}: {exc.strerror or exc}"
            if self.on_error is not None:
                self.on_error(self.error)
            return False
        self._size += len(data)
        return True

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    @property
    def closed(self) -> bool:
        return self._fd is None


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
        self._file = AppendLog(path) if path else None
        self.path = path
        self._queue: queue.SimpleQueue[Event | None] = queue.SimpleQueue()
        self._pending = 0
        self._idle = threading.Condition(self._lock)
        self.on_write_error: Callable[[str], None] | None = None
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
            failed_now = False
            if self._file is not None and self._file.error is None:
                self._file.write(json.dumps(event, separators=(",", ":"), default=str) + "\n")
                failed_now = self._file.error is not None
            self._pending += 1
            self._queue.put(event)
        if failed_now and self.on_write_error is not None:  # outside the lock: the handler may emit
            self.on_write_error(self._file.error)
        return event

    @property
    def write_error(self) -> str | None:
        """Why events.jsonl takes no more lines (disk full, ...), or None while it does."""
        return self._file.error if self._file is not None else None

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
            if self._file is not None:
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
