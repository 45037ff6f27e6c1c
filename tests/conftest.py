"""Shared fixtures: a real MLflow registry with two trained versions, and helpers to wait for a condition and
to find stray processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("MLOPSLAB_STRICT_EVENTS", "1")   # an event its kind does not describe fails where emitted

# A suite started as a background job of a script (`(cmd &)`, nohup) inherits SIGINT ignored, and an ignored
# signal stays ignored across exec: every lab the tests start would then shrug off the Ctrl-C they send it, as
# POSIX wants of background jobs. A handled signal is reset to the default at exec, so the children get Ctrl-C.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

from mlopslab.ml.data import DataSpec, DataStream
from mlopslab.ml.registry import Registry, TrainParams

MODEL = "churn"


@pytest.fixture(scope="session")
def stream() -> DataStream:
    return DataStream(DataSpec(), seed=7)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory, stream: DataStream) -> Registry:
    """A sqlite-backed MLflow registry holding models:/churn/1 and models:/churn/2."""
    registry = Registry(tmp_path_factory.mktemp("mlflow"))
    for C in (1.0, 0.05):
        X, y = stream.sample(2000)
        X_val, y_val = stream.sample(500)
        registry.train_and_register(MODEL, X, y, X_val, y_val, stream.feature_names, TrainParams(C=C))
    return registry


def start_server(registry: Registry, version: str) -> tuple[subprocess.Popen, str]:
    """A real model server for models:/churn/VERSION on a free 127.0.0.1 port, answering /ping."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "mlopslab.serving.server", "--model-dir",
                             str(registry.serving_dir(MODEL, version)), "--port", str(port)])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/ping", timeout=0.5)
            break
        except OSError:
            time.sleep(0.05)
    return proc, url


def wait_until(predicate: Callable[[], object], timeout: float = 20.0, what: str = "condition",
               period: float = 0.02) -> None:
    """Polls `predicate` until it holds; fails the test, naming `what`, after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not reached within {timeout} s"
        time.sleep(period)


def processes_mentioning(text: str) -> list[int]:
    """PIDs of live processes whose command line contains `text` (zombies excluded)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().split(") ")[1][0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(int(entry.name))
    return found
