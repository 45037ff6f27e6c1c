"""The embedded default environment: replicas are model-server child processes on 127.0.0.1.

Each replica gets a listening socket bound by the lab (port 0, so no port races) and inherits it; the
child watches its parent and exits if the lab dies, and runs in its own session so a terminal's Ctrl-C
reaches the lab, which stops every child in order.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from mlopslab.envs.base import DeploymentSpec, Emit, ReplicaDriver
from mlopslab.envs.controller import ControlledEnvironment

ModelResolver = Callable[[str, str], Path]  # (model name, version) -> serving artifact directory


class ProcessDriver(ReplicaDriver):
    def __init__(self, resolve_model: ModelResolver, log_dir: Path | None = None) -> None:
        self.resolve_model = resolve_model
        self.log_dir = log_dir
        self._procs: set[subprocess.Popen] = set()
        self._logs: dict[int, Path] = {}  # pid -> the replica's log
        self._lock = threading.Lock()

    def start(self, spec: DeploymentSpec, name: str,
              bind: tuple[str, int] = ("127.0.0.1", 0)) -> tuple[subprocess.Popen, str]:
        """`bind`: the loopback address and port to serve on (a pod's own address); port 0 picks one."""
        model_dir = self.resolve_model(spec.model, spec.version)
        sock = socket.create_server(bind, backlog=128)
        host, port = sock.getsockname()[:2]
        log = open(self.log_dir / f"{name}.log", "wb") if self.log_dir else subprocess.DEVNULL
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "mlopslab.serving.server", "--model-dir", str(model_dir),
                 "--fd", str(sock.fileno()), "--warmup", str(spec.warmup), "--parent-pid", str(os.getpid())]
                + (["--latency-ms", str(spec.latency_ms)] if spec.latency_ms else []),
                pass_fds=(sock.fileno(),), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        finally:
            sock.close()
            if log is not subprocess.DEVNULL:
                log.close()
        with self._lock:
            self._procs.add(proc)
            if self.log_dir:
                self._logs[proc.pid] = self.log_dir / f"{name}.log"
        return proc, f"http://{host}:{port}"

    def alive(self, handle: subprocess.Popen) -> bool:
        return handle.poll() is None

    def stop(self, handle: subprocess.Popen, grace: float) -> None:
        if handle.poll() is None:
            try:
                handle.send_signal(signal.SIGTERM if grace > 0 else signal.SIGKILL)
                handle.wait(timeout=grace if grace > 0 else 5)
            except subprocess.TimeoutExpired:
                handle.kill()
                handle.wait(timeout=5)
            except ProcessLookupError:
                pass
        with self._lock:
            self._procs.discard(handle)

    def last_words(self, handle: subprocess.Popen) -> str:
        code = handle.poll()
        status = "" if code is None else (f"killed by signal {-code}" if code < 0 else f"exit {code}")
        log = self._logs.get(handle.pid)
        try:
            lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()] if log else []
        except OSError:
            lines = []
        return "; ".join(part for part in (status, lines[-1][:200] if lines else "") if part)

    def close(self) -> None:
        with self._lock:
            leftovers = list(self._procs)
        for proc in leftovers:
            self.stop(proc, grace=0.0)

    def pids(self) -> list[int]:
        with self._lock:
            return [p.pid for p in self._procs if p.poll() is None]


class LocalEnvironment(ControlledEnvironment):
    kind = "local"

    def __init__(self, resolve_model: ModelResolver, emit: Emit, log_dir: Path | None = None) -> None:
        super().__init__(ProcessDriver(resolve_model, log_dir), emit)

    def credential(self) -> str:
        return "the lab user's right to start and signal its processes (held by whoever runs apply)"
