"""An in-memory event sink for tests that drive environments and deliveries directly."""

from __future__ import annotations

import threading
import time
from typing import Any


class Events:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.t0 = time.monotonic()

    def emit(self, kind: str, lane: str | None = None, **fields: Any) -> dict[str, Any]:
        event = {"t": time.monotonic() - self.t0, "kind": kind, "lane": lane, **fields}
        with self.lock:
            self.items.append(event)
        return event

    def of(self, kind: str, lane: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.items if e["kind"] == kind and (lane is None or e["lane"] == lane)]

    def wait_for(self, kind: str, lane: str | None = None, timeout: float = 30.0, count: int = 1,
                 **match: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [e for e in self.of(kind, lane) if all(e.get(k) == v for k, v in match.items())]
            if len(found) >= count:
                return found[count - 1]
            time.sleep(0.02)
        raise AssertionError(f"no {kind} event for {lane} matching {match} within {timeout} s; "
                             f"saw {[e['kind'] for e in self.items][-30:]}")
