"""The TUI drives a run process: actions over the control channel, and no process left behind whichever side
ends first (the TUI quits, is killed or gets SIGTERM; the run process crashes)."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from mlopslab.control import ControlClient, ControlError, serve
from tests.conftest import wait_until
from tests.test_tui_live import SCENARIO, _alive

ROOT = Path(__file__).resolve().parent.parent


class FakeLab:
    def __init__(self) -> None:
        self.stopped = threading.Event()
        self.killed: list[str] = []

    def kill_replica(self, lane: str) -> str:
        self.killed.append(lane)
        return f"{lane}-1"

    def release(self, note: str = "") -> str:
        time.sleep(0.5)   # training takes a while: a kill sent meanwhile must not wait for it
        return "abc1234"

    def manual_change(self, lane: str, replicas: int | None = None) -> None:
        raise LookupError(f"no lane {lane!r}")

    def stop(self) -> None:
        self.stopped.set()


def test_control_channel_answers_each_action_and_stops_the_run_when_the_tui_goes_away() -> None:
    lab = FakeLab()
    theirs, ours = socket.socketpair()
    serve(lab, theirs)
    client = ControlClient(ours)
    results: dict[str, Any] = {}
    slow = threading.Thread(target=lambda: results.update(release=client.call("release", note="x")))
    slow.start()
    time.sleep(0.05)
    started = time.monotonic()
    assert client.call("kill_replica", lane="pull") == "pull-1"
    assert time.monotonic() - started < 0.4, "a kill does not wait behind a release"
    slow.join(5)
    assert results["release"] == "abc1234"
    with pytest.raises(ControlError, match="LookupError: no lane 'nope'"):
        client.call("manual_change", lane="nope", replicas=1)
    with pytest.raises(ControlError, match="unknown action 'shutdown'"):
        client.call("shutdown")   # only the actions a person takes, not any method of the Lab
    assert not lab.stopped.is_set()
    client.close()   # the TUI quit or crashed
    assert lab.stopped.wait(5), "a run nobody controls any more stops"


def _scenario(tmp_path: Path, duration: int = 60) -> Path:
    path = tmp_path / "quick.yaml"
    path.write_text(SCENARIO.replace("duration: 20", f"duration: {duration}"))
    return path


def _last_event(results: Path) -> dict[str, Any]:
    lines = (results / "events.jsonl").read_text().splitlines()
    return json.loads(lines[-1])


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_crash_of_the_run_process_shows_as_a_failure_with_the_results_so_far(tmp_path: Path) -> None:
    from mlopslab import scenario
    from mlopslab.tui.sources import LiveRun

    source = LiveRun(scenario.load(_scenario(tmp_path)), tmp_path / "results")
    source.start()
    wait_until(lambda: source.running and source.view().lanes[0].requests > 0, 60,
          "traffic in the run process")
    pids = source.child_pids()
    assert len(pids) >= 4, pids   # the run, its load generator, a replica per lane
    os.kill(pids[0], signal.SIGKILL)
    wait_until(source.done.is_set, 10, "the TUI to notice")
    assert source.status == "failed" and source.exit_code == 1
    assert source.error and "SIGKILL" in source.error and str(source.results_dir) in source.error
    assert source.view().lanes[0].requests > 0, "what the run recorded before the crash stays on screen"
    wait_until(lambda: not [pid for pid in pids if _alive(pid)], 20, "the run's children to die with it")
    source.close()


def _tui_in_a_terminal(path: Path, results: Path) -> subprocess.Popen[bytes]:
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "MLOPSLAB_RESULTS": str(results)}
    proc = subprocess.Popen([sys.executable, "-m", "mlopslab", "tui", str(path)], stdin=slave, stdout=slave,
                            stderr=slave, env=env, cwd=ROOT, start_new_session=True)
    os.close(slave)

    def drain() -> None:   # a terminal reads what the app draws
        while True:
            try:
                if not os.read(master, 65536):
                    return
            except OSError:
                return

    threading.Thread(target=drain, daemon=True).start()
    return proc


def _run_dir(results: Path) -> Path:
    wait_until(lambda: results.exists() and any(results.iterdir()), 30, "the results directory")
    return next(results.iterdir())


@pytest.mark.slow
@pytest.mark.timeout(150)
@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_sigterm_or_sigkill_of_the_tui_stops_the_run_process_and_leaves_no_process(tmp_path: Path, how: str) -> None:
    """SIGTERM: the TUI stops the run in order and exits 130. SIGKILL: the run process sees its control
    channel close and stops itself. Either way the summary is written and nothing is left running."""
    from mlopslab.tui.sources import _descendants

    proc = _tui_in_a_terminal(_scenario(tmp_path), tmp_path / "results")
    try:
        run = _run_dir(tmp_path / "results")
        wait_until(lambda: (run / "events.jsonl").exists() and '"kind":"metrics"' in (run / "events.jsonl").read_text(),
              60, "the run to measure")
        pids = _descendants(proc.pid)
        assert len(pids) >= 4, pids
        os.kill(proc.pid, getattr(signal, how))
        code = proc.wait(40)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == (130 if how == "SIGTERM" else -signal.SIGKILL)
    wait_until(lambda: not [pid for pid in pids if _alive(pid)], 40, "every process of the run gone")
    assert _last_event(run)["kind"] == "run_finished" and _last_event(run)["status"] == "stopped"
    assert (run / "summary.json").exists()
