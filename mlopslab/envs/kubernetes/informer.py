"""A small informer: list, then watch one kind of object, keeping a cache and calling back on every
change, as client-go's informers do. A watch that expires (410 Gone) or breaks is resumed by listing
again; a callback's exception is reported, never kills the loop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

Handler = Callable[[str, Any], None]   # (ADDED | MODIFIED | DELETED, object)


class Informer:
    def __init__(self, list_call: Callable[..., Any], handler: Handler, *, name: str,
                 on_error: Callable[[str], None] | None = None, **selectors: Any) -> None:
        self.list_call = list_call
        self.handler = handler
        self.selectors = selectors
        self.name = name
        self.on_error = on_error or (lambda message: None)
        self.cache: dict[tuple[str, str], Any] = {}
        self.lock = threading.RLock()
        self.synced = threading.Event()
        self._stop = threading.Event()
        self._watch: Any = None
        self._thread = threading.Thread(target=self._run, name=f"informer-{name}", daemon=True)

    def start(self) -> Informer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()
        self._thread.join(timeout=5)

    def items(self) -> list[Any]:
        with self.lock:
            return list(self.cache.values())

    def _key(self, obj: Any) -> tuple[str, str]:
        return (obj.metadata.namespace or "", obj.metadata.name)

    def _deliver(self, kind: str, obj: Any) -> None:
        with self.lock:
            if kind == "DELETED":
                self.cache.pop(self._key(obj), None)
            else:
                self.cache[self._key(obj)] = obj
        try:
            self.handler(kind, obj)
        except Exception as exc:  # a handler's bug is reported, the watch goes on
            self.on_error(f"{self.name}: {exc!r}")

    def _run(self) -> None:
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        backoff = 0.2
        while not self._stop.is_set():
            try:
                listed = self.list_call(**self.selectors)
                seen = {self._key(o): o for o in listed.items}
                with self.lock:
                    gone = [o for k, o in self.cache.items() if k not in seen]
                for obj in gone:
                    self._deliver("DELETED", obj)
                for obj in listed.items:
                    self._deliver("MODIFIED" if self._key(obj) in self.cache else "ADDED", obj)
                self.synced.set()
                version = listed.metadata.resource_version
                self._watch = watch.Watch()
                for event in self._watch.stream(self.list_call, resource_version=version,
                                                timeout_seconds=300, allow_watch_bookmarks=False,
                                                **self.selectors):
                    if self._stop.is_set():
                        break
                    if event["type"] == "ERROR":
                        break
                    self._deliver(event["type"], event["object"])
                backoff = 0.2
            except ApiException as exc:
                if exc.status != 410 and not self._stop.is_set():
                    self.on_error(f"{self.name}: watch failed ({exc.status} {exc.reason})")
            except Exception as exc:  # connection refused while the API server stops, etc.
                if not self._stop.is_set():
                    self.on_error(f"{self.name}: {exc.__class__.__name__}: {exc}")
                    self._stop.wait(backoff)
                    backoff = min(5.0, backoff * 2)
