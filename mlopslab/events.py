"""The run's event stream: one JSON line per event, appended and flushed as it happens.

Every producer (lab, lanes, environments, traffic, monitor) emits through a `Recorder`; every consumer
(headless progress, TUI, report, replay) reads the same events. An event is written as a flat dict:

    {"t": seconds since run start, "wall": unix time, "kind": "...", "lane": "push" | None, ...}

Each kind is a frozen dataclass in `mlopslab.eventtypes` (its fields, what they mean); `decode` turns a line
into one, `encode` writes it back. The Recorder checks every event it stamps against its kind: with
MLOPSLAB_STRICT_EVENTS=1 (the tests set it) an unknown kind or an undeclared field raises, otherwise the
line is written as given and the reader keeps what it does not know in `extra`. A Recorder's listeners get
the typed event (decoded once, on the dispatcher thread), so they `match` on its dataclass.
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

from mlopslab import eventtypes
from mlopslab.eventtypes import decode, problems

Emit = Callable[..., Any]  # Recorder.emit(kind, lane, **fields): how every producer reports
Event = dict[str, Any]
Listener = Callable[[eventtypes.Event], None]   # gets the typed event
STRICT = "MLOPSLAB_STRICT_EVENTS"   # set to 1 (the tests do): a wrong event fails where it is emitted


def check(kind: str, fields: dict[str, Any]) -> None:
    """Raises on an event its kind's dataclass does not describe, when events are checked strictly."""
    if os.environ.get(STRICT) == "1" and (wrong := problems(kind, fields)):
        raise ValueError("; ".join(wrong))


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
        """Stamps, writes and fans out one event of `kind` (a kind of `mlopslab.eventtypes`, with its fields)."""
        check(kind, fields)
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
            typed = decode(event) if listeners else None
            for listener in listeners:
                try:
                    listener(typed)  # type: ignore[arg-type]
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


class Tail:
    """Follows an events.jsonl that a run process is still writing: each `read()` returns the events of the
    whole lines appended since the last call (none while the file does not exist yet). A line being written
    (or torn by a crash) waits until its newline arrives."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: Any = None
        self._rest = b""

    def read(self) -> list[Event]:
        if self._handle is None:
            try:
                self._handle = open(self.path, "rb")  # noqa: SIM115 (kept open while the run writes)
            except FileNotFoundError:
                return []
        chunk = self._handle.read()
        if not chunk:
            return []
        *lines, self._rest = (self._rest + chunk).split(b"\n")
        events = []
        for line in lines:
            with contextlib.suppress(json.JSONDecodeError, UnicodeDecodeError):
                if line.strip():
                    events.append(json.loads(line))
        return events

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
