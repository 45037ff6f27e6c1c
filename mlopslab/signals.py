"""Ctrl-C and SIGTERM, the same way everywhere: SIGTERM takes Ctrl-C's orderly path; clean-up holds both off."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

STOPS = (signal.SIGINT, signal.SIGTERM)


def terminate_as_interrupt() -> None:
    """SIGTERM raises KeyboardInterrupt, like Ctrl-C, so one `except KeyboardInterrupt` cleans up after both."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def ignore_stops() -> None:
    """From now on Ctrl-C and SIGTERM are ignored (everything is stopped and written; the interpreter exits)."""
    for sig in STOPS:
        signal.signal(sig, signal.SIG_IGN)


@contextlib.contextmanager
def held() -> Iterator[list[int]]:
    """On the main thread, Ctrl-C and SIGTERM are held off (and dropped, listed in the yielded list) until
    the block is done; elsewhere signals cannot be handled, and nothing changes."""
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return
    previous = {sig: signal.signal(sig, lambda signum, frame: caught.append(signum)) for sig in STOPS}
    try:
        yield caught
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
