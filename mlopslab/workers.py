"""The lab's background threads: each one named, an exception in it recorded as an `error` event (a broken
part must not end the run silently), all of them joined at shutdown."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class Workers:
    def __init__(self, stop: threading.Event, emit: Callable[..., Any]) -> None:
        self._stop = stop
        self._emit = emit
        self._threads: list[threading.Thread] = []

    def spawn(self, target: Callable[[], Any], name: str) -> None:
        thread = threading.Thread(target=self._guard, args=(target, name), name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def every(self, period: float, tick: Callable[[], Any], name: str) -> None:
        """Calls `tick` every `period` seconds until the run stops."""
        def loop() -> None:
            while not self._stop.wait(period):
                tick()

        self.spawn(loop, name)

    def join(self, timeout: float = 3.0) -> None:
        for thread in self._threads:
            thread.join(timeout=timeout)

    def _guard(self, target: Callable[[], Any], name: str) -> None:
        try:
            target()
        except Exception as exc:
            self._emit("error", None, message=f"{name}: {type(exc).__name__}: {exc}")
