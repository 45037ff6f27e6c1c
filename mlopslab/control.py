"""The control channel of a run process: a person's actions go in, each one's outcome comes back.

`mlopslab tui` starts the run as a child `mlopslab run ... --control-fd N`: the same headless run, which
writes events.jsonl as always (the TUI follows that file), plus one end of a Unix socket pair on which it
takes requests, one JSON line each, and answers each with one JSON line:

    → {"id": 3, "op": "kill_replica", "args": {"lane": "pull"}}
    ← {"id": 3, "ok": true, "result": "pull-2"}            or  {"id": 3, "ok": false, "error": "..."}

`op` is one of the Lab's actions in `ACTIONS` (the same methods the timeline and the tests call), or `stop`.
The effects come back as events in events.jsonl like any other (commit, live_change, replica_killed, ...).
When the other end goes away (the TUI quit or crashed), the run stops and cleans up: a run nobody watches
is not left behind. Each request runs on its own thread: a release trains a model for seconds, and a kill
sent meanwhile must not wait for it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

ACTIONS = ("release", "manual_change", "kill_replica", "pause_traffic", "resume_traffic", "toggle_traffic",
           "inject_drift", "retrain", "pipeline_commit", "promote", "abort", "stop")


class ControlError(RuntimeError):
    """The run refused or failed an action (the message says why), or the run is gone."""


def serve(lab: Any, sock: socket.socket, on_close: Callable[[], None] | None = None) -> threading.Thread:
    """Answers requests on `sock` with `lab`'s actions until the other end closes; then calls `on_close`
    (default: `lab.stop`). Returns the (daemon) thread that reads."""
    lock = threading.Lock()
    writer = sock.makefile("w", encoding="utf-8")

    def answer(reply: dict[str, Any]) -> None:
        with lock:
            try:
                writer.write(json.dumps(reply, default=str) + "\n")
                writer.flush()
            except OSError:  # the controller is gone; its EOF ends the run
                pass

    def handle(request: dict[str, Any]) -> None:
        rid, op = request.get("id"), request.get("op")
        try:
            if op not in ACTIONS:
                raise ControlError(f"unknown action {op!r}")
            result = getattr(lab, op)(**(request.get("args") or {}))
            answer({"id": rid, "ok": True, "result": result})
        except Exception as exc:
            answer({"id": rid, "ok": False, "error": f"{type(exc).__name__}: {exc}"})

    def read() -> None:
        try:
            with sock.makefile("r", encoding="utf-8") as lines:
                for line in lines:
                    try:
                        request = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    threading.Thread(target=handle, args=(request,), name=f"control-{request.get('op')}",
                                     daemon=True).start()
        except OSError:
            pass
        (on_close or lab.stop)()

    thread = threading.Thread(target=read, name="control", daemon=True)
    thread.start()
    return thread


def serve_fd(lab: Any, fd: int) -> threading.Thread:
    """`serve` on an inherited socket's file descriptor (`mlopslab run --control-fd FD`)."""
    return serve(lab, socket.socket(fileno=fd))


class ControlClient:
    """The TUI's end: `call(op, **args)` sends a request and blocks until its answer (call it off the UI loop)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._ids = itertools.count(1)
        self._waiting: dict[int, Future[Any]] = {}
        self._lock = threading.Lock()
        self._writer = sock.makefile("w", encoding="utf-8")
        self._closed = False
        self._reader = threading.Thread(target=self._read, name="control-replies", daemon=True)
        self._reader.start()

    def call(self, op: str, timeout: float | None = 600.0, **args: Any) -> Any:
        future: Future[Any] = Future()
        self._request(op, args, future)
        return future.result(timeout)

    def send(self, op: str, **args: Any) -> None:
        """Sends a request without waiting for its answer (e.g. `stop` while the run winds down)."""
        with contextlib.suppress(ControlError):
            self._request(op, args, None)

    def _request(self, op: str, args: dict[str, Any], future: Future[Any] | None) -> None:
        with self._lock:
            if self._closed:
                raise ControlError("the run process is gone")
            rid = next(self._ids)
            if future is not None:
                self._waiting[rid] = future
            try:
                self._writer.write(json.dumps({"id": rid, "op": op, "args": args}) + "\n")
                self._writer.flush()
            except OSError as exc:
                self._waiting.pop(rid, None)
                raise ControlError(f"the run process is gone ({exc.strerror or exc})") from None

    def _read(self) -> None:
        try:
            with self.sock.makefile("r", encoding="utf-8") as lines:
                for line in lines:
                    try:
                        reply = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    with self._lock:
                        future = self._waiting.pop(reply.get("id"), None)
                    if future is None:
                        continue
                    if reply.get("ok"):
                        future.set_result(reply.get("result"))
                    else:
                        future.set_exception(ControlError(reply.get("error") or "failed"))
        except OSError:
            pass
        self._fail_waiting()

    def _fail_waiting(self) -> None:
        with self._lock:
            self._closed = True
            waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            future.set_exception(ControlError("the run process ended before it answered"))

    def close(self) -> None:
        """Closes our end: the run process sees EOF and stops (if it still runs)."""
        with self._lock:
            self._closed = True
        for closer in (self._writer.close, lambda: self.sock.shutdown(socket.SHUT_RDWR), self.sock.close):
            with contextlib.suppress(OSError):
                closer()
