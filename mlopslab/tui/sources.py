"""Where the run screen's snapshots come from: one `Source` type, a live run process or a recorded run
(`replay.ReplayRun`), each declaring what it can do: pause, act (a person's actions), seek.

Both give `view()` (a RunView copy) on the UI thread; the screen asks a source's capabilities, never its type. A live run is `mlopslab run` in a child process (the
same code path as a headless run): it writes events.jsonl as it happens and this side follows that file into
its own RunState, as a replay reads it, so drawing never shares an interpreter with what it measures. A
person's actions go to the run over its control channel (mlopslab/control.py) and their effects come back
as events. `LiveRun.start` starts the process (a daemon thread waits for it); every action blocks until
the run answers, so call them from thread workers too; everything else returns at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlopslab.events import Tail
from mlopslab.monitor.timeline import RunState
from mlopslab.scenario import Scenario
from mlopslab.summary import Summary
from mlopslab.tui import view as views

ACTIVE = ("created", "preparing", "running")
STOP_GRACE = 30.0   # seconds the run process gets to stop every replica and write its summary


class Source:
    """What the run screen reads and drives. A capability a source does not declare raises if used; the
    screen checks `can_pause`, `can_act` and `can_seek` (and the footer and palette offer what they allow)."""

    can_pause = False   # space: a live run pauses its traffic, a replay its playback
    can_act = False     # a person's actions on the run: release, manual change, kill, drift, retrain, promote, abort
    can_seek = False    # move in time and change speed (a recorded run: it measures nothing, so it draws at once)
    error: str | None = None
    results_dir: Path

    title: str
    lane_names: list[str]
    active: bool        # the run is still going (a quit must stop it first)
    running: bool       # traffic flows: a person's actions may start
    exit_code: int
    status: str

    def start(self) -> None:
        """Begins (a live run starts its process); returns at once."""

    def tick(self, seconds: float) -> None:
        """`seconds` of wall time passed on the screen (a replay moves its clock)."""

    def view(self) -> views.RunView:
        raise NotImplementedError

    def summary(self) -> Summary:
        raise NotImplementedError

    def progress(self, view: views.RunView) -> list[tuple[str, str]]:
        """The status bar's (text, style) pieces for where the run is: its phase and clock."""
        raise NotImplementedError

    def position(self, view: views.RunView) -> float:
        """The scenario time on screen."""
        return view.now

    def close(self, timeout: float = 0.0) -> None:
        """Stops whatever the source started (a live run: every process) and waits for it."""

    # --- can_pause ------------------------------------------------------------------------------------------
    def toggle(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} cannot pause")

    # --- can_seek -------------------------------------------------------------------------------------------
    def seek(self, where: float | str) -> None:
        """To a scenario time, or "start" / "end"."""
        raise NotImplementedError(f"{type(self).__name__} cannot seek")

    def seek_by(self, seconds: float) -> None:
        raise NotImplementedError(f"{type(self).__name__} cannot seek")

    def set_speed(self, speed: float | str) -> None:
        """A playback speed, or "faster" / "slower"."""
        raise NotImplementedError(f"{type(self).__name__} cannot seek")

    # --- can_act (each blocks until the run answers: call them from thread workers) ------------------------
    def release(self) -> str:
        raise NotImplementedError(f"{type(self).__name__} takes no actions")

    def manual_change(self, lane: str, replicas: int = 1) -> None:
        raise NotImplementedError(f"{type(self).__name__} takes no actions")

    def kill(self, lane: str) -> str | None:
        raise NotImplementedError(f"{type(self).__name__} takes no actions")

    def rollout(self, lane: str, action: str) -> None:
        raise NotImplementedError(f"{type(self).__name__} takes no actions")

    def inject_drift(self, kind: str, size: float) -> None:
        raise NotImplementedError(f"{type(self).__name__} takes no actions")

    def retrain(self, lane: str) -> None:
        raise NotImplementedError(f"{type(self).__name__} takes no actions")


class LiveRun(Source):
    can_pause = can_act = True

    def __init__(self, scenario: Scenario, results_dir: Path | None = None) -> None:
        from mlopslab.rundir import new_results_dir

        self.scenario = scenario
        self.results_dir = (results_dir or new_results_dir(scenario)).resolve()
        self.error: str | None = None
        self.done = threading.Event()
        self.proc: subprocess.Popen[bytes] | None = None
        self.control: Any = None   # control.ControlClient once the process runs
        self.state = RunState()
        self._lock = threading.Lock()       # the state, and the tail that feeds it
        self._tail = Tail(self.results_dir / "events.jsonl")
        self._taken: tuple[int, views.RunView] = (-1, views.EMPTY)
        self._stopping = False              # we asked the run to end (quit): its exit is no failure

    @property
    def title(self) -> str:
        return self.scenario.name

    @property
    def lane_names(self) -> list[str]:
        return [lane.name for lane in self.scenario.lanes]

    @property
    def status(self) -> str:
        """As the Lab's: created, preparing, running, then the status its run_finished event carries
        (ok, stopped, interrupted, failed); failed too when the process ended without one."""
        self._pump()
        if self.state.finished is not None:
            return str(self.state.finished.get("status") or "failed")
        if self.proc is not None and self.proc.poll() is not None:
            return "stopped" if self._stopping and not self.error else "failed"
        if self.state.start is not None:
            return "running"
        return "preparing" if self.state.scenario else "created"

    def summary(self) -> Summary:
        from mlopslab import report

        return self.snapshot(report.summarise)

    @property
    def active(self) -> bool:
        return not self.done.is_set() and self.status in ACTIVE

    @property
    def running(self) -> bool:
        return self.status == "running" and not self.done.is_set()

    @property
    def exit_code(self) -> int:
        """As headless: 1 when the run failed (or could not start), else 0."""
        return 1 if self.error or self.status == "failed" else 0

    # --- the process --------------------------------------------------------------------------------------
    def start(self) -> None:
        """Starts the run process and returns; a daemon thread waits for it (not a Textual worker: the app's
        exit waits for those, and a run that is not told to stop goes on for its whole duration)."""
        threading.Thread(target=self.run, name="run-process", daemon=True).start()

    def run(self) -> None:
        """Starts the run process and waits for it to end (blocking); says why if it failed."""
        try:
            if self._start():
                assert self.proc is not None
                self.proc.wait()
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self._pump()
            self._judge_exit()
            self.done.set()

    def _start(self) -> bool:
        from mlopslab.control import ControlClient

        path = self.scenario.path
        if path is None:
            raise ValueError(f"scenario {self.scenario.name!r} has no file to run")
        logs = self.results_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        ours, theirs = socket.socketpair()
        with self._lock:
            if self._stopping:   # closed before it started
                ours.close()
                theirs.close()
                return False
            with open(logs / "run.out", "wb") as out, open(logs / "run.err", "wb") as err:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "mlopslab", "run", str(Path(path).resolve()), "--results",
                     str(self.results_dir), "--quiet", "--control-fd", str(theirs.fileno())],
                    pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                    start_new_session=True)   # its Ctrl-C and SIGTERM come from us, in order
            theirs.close()
            self.control = ControlClient(ours)
        return True

    def _judge_exit(self) -> None:
        """The run process ended: a crash or a failure to start becomes `error` (the failure panel)."""
        if self.proc is None or self.error:
            return
        code = self.proc.returncode
        said = _said(self.results_dir / "logs" / "run.err")
        if code == 0 or (self._stopping and code == 130):
            return
        if said:
            self.error = said
        elif self.state.finished is None:
            how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit {code}"
            self.error = (f"the run process ended ({how}) before the run finished; the results so far are in "
                          f"{self.results_dir}")

    def child_pids(self) -> list[int]:
        """The run process and every process under it (load generator, replicas), while they live."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        return [self.proc.pid, *_descendants(self.proc.pid)]

    def stop(self) -> None:
        """Asks the run to end now; it stops every process and writes its summary."""
        self._stopping = True
        if self.control is not None:
            self.control.send("stop")

    def close(self, timeout: float = STOP_GRACE) -> None:
        """Stops the run and waits for its clean-up (every replica and the load generator gone); a run process
        that does not end in time gets SIGTERM (the orderly path), then SIGKILL."""
        with self._lock:
            self._stopping = True
            proc, control = self.proc, self.control
        if proc is None:
            return
        if proc.poll() is None:
            control.send("stop")
            for sig, wait in ((None, timeout), (signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
                if sig is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(proc.pid, sig)
                try:
                    proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        control.close()
        self.done.wait(5)

    # --- what the screen reads -------------------------------------------------------------------------------
    def _pump(self) -> None:
        with self._lock:
            for event in self._tail.read():
                self.state.apply(event)

    def snapshot(self, reader: Callable[[RunState], Any]) -> Any:
        """Calls reader(state) on the run's state, brought up to the last whole line of events.jsonl."""
        self._pump()
        with self._lock:
            return reader(self.state)

    def view(self) -> views.RunView:
        """A copy of the run's state; the same object as last time if no event arrived since."""
        def take(state: RunState) -> tuple[int, views.RunView | None]:
            return state.applied, (views.take(state) if state.applied != self._taken[0] else None)

        applied, view = self.snapshot(take)
        if view is None:
            return self._taken[1]
        self._taken = (applied, view)
        return view

    def progress(self, view: views.RunView) -> list[tuple[str, str]]:
        run_status = self.status
        phase = {"preparing": "setting up (training v1, first rollout)…", "running": "▶ running",
                 "created": "starting…"}.get(run_status, f"■ {run_status}")
        if self.done.is_set():
            phase = f"■ finished ({run_status})"
        out = [(f"  {phase}", "bold #6fd36f" if run_status == "running" else "bold #ffb347")]
        if view.started:   # whole seconds: one redraw a second
            out.append((f"  t {view.now:4.0f} / {view.duration:.0f} s", "bold"))
        return out

    # --- actions (call from a thread worker: each waits for real work on git, MLflow or processes) -----------
    def _call(self, op: str, **args: Any) -> Any:
        from mlopslab.control import ControlError

        if self.control is None:
            raise ControlError("the run process has not started")
        return self.control.call(op, **args)

    def release(self) -> str:
        return self._call("release", note="released from the TUI")

    def manual_change(self, lane: str, replicas: int = 1) -> None:
        self._call("manual_change", lane=lane, replicas=replicas)

    def kill(self, lane: str) -> str | None:
        return self._call("kill_replica", lane=lane)

    def rollout(self, lane: str, action: str) -> None:
        """promote | abort the lane's rollout."""
        self._call(action, lane=lane)

    def toggle(self) -> None:
        """Pauses or resumes the run's traffic."""
        self._call("toggle_traffic")

    def inject_drift(self, kind: str, size: float) -> None:
        self._call("inject_drift", kind=kind, size=size)

    def retrain(self, lane: str) -> None:
        """A person starts the lane's retraining pipeline (the pipeline itself runs on its own thread)."""
        self._call("retrain", lane=lane)


def _said(path: Path) -> str:
    """What a headless run said went wrong: its stderr from the first `mlopslab: ` line, or a traceback's end."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    lines = text.splitlines()
    first = next((i for i, line in enumerate(lines) if line.startswith("mlopslab: ")), None)
    if first is not None:
        return "\n".join(lines[first:]).removeprefix("mlopslab: ").strip()[-3000:]
    if "Traceback" in text:
        return "\n".join(lines[-6:])
    return ""


def _descendants(pid: int) -> list[int]:
    found, queue = [], [pid]
    while queue:
        parent = queue.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                children = [int(c) for c in Path(f"/proc/{parent}/task/{task}/children").read_text().split()]
            except OSError:
                continue
            found += children
            queue += children
    return found
