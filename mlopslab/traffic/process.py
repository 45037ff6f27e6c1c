"""The load generator as the lab sees it: a child process, its JSON-lines control pipe and its records.

`TrafficProcess` starts `python -m mlopslab.traffic.loadgen` in its own session (so a terminal's Ctrl-C
reaches the lab, which stops it in order), sends it control messages (endpoints, pause, resume, drift,
stop) and hands every line it prints to `on_sample` (one per arrival: the row and its label) or
`on_result` (one per request: lane, latency, status, version). The protocol is the loadgen's docstring.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO


class TrafficProcess:
    def __init__(self, config: dict[str, Any], log: Path, on_sample: Callable[[dict[str, Any]], None],
                 on_result: Callable[[dict[str, Any], str], None]) -> None:
        self.config, self.log = config, log
        self.on_sample, self.on_result = on_sample, on_result
        self.proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Starts the generator paused: traffic flows once the scenario clock starts (`resume`)."""
        with open(self.log, "wb") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mlopslab.traffic.loadgen", json.dumps(self.config)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, start_new_session=True, text=True,
                bufsize=1)
        self.send({"op": "pause"})

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def read(self) -> int | None:
        """Reads records until the generator's output ends; returns its exit code (None if never started)."""
        if self.proc is None or self.proc.stdout is None:
            return None
        self._read(self.proc.stdout)
        return self.proc.wait()

    def _read(self, stream: TextIO) -> None:
        for line in stream:
            record = json.loads(line)
            if "s" in record:
                self.on_sample(record)
            else:
                self.on_result(record, line)

    def send(self, message: dict[str, Any]) -> None:
        with self._lock:
            proc = self.proc
            if proc is None or proc.poll() is not None or proc.stdin is None:
                return
            try:
                proc.stdin.write(json.dumps(message) + "\n")
                proc.stdin.flush()
            except (BrokenPipeError, ValueError):
                pass

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        self.send({"op": "stop"})
        try:
            proc.wait(timeout=4)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        with self._lock:
            if proc.stdin:
                try:
                    proc.stdin.close()
                except OSError:
                    pass

