"""Where the run screen's snapshots come from: a live Lab, or a Playback of a recorded run.

Both give `view()` (a RunView copy) on the UI thread; the live one also carries the actions a person
takes. The Lab runs on its own threads (and its load generator in its own process): `LiveRun.run` is
meant for a thread worker, and everything else here returns at once.
"""

from __future__ import annotations

import threading
from pathlib import Path

from mlopslab.monitor.timeline import RunState
from mlopslab.summary import Summary
from mlopslab.scenario import Scenario
from mlopslab.tui import view as views
from mlopslab.tui.replay import Playback

ACTIVE = ("created", "preparing", "running")


class LiveRun:
    live = True

    def __init__(self, scenario: Scenario, results_dir: Path | None = None) -> None:
        from mlopslab.lab import Lab, new_results_dir

        self.scenario = scenario
        self.lab = Lab(scenario, results_dir or new_results_dir(scenario))
        self.results_dir = self.lab.dir
        self.error: str | None = None
        self.done = threading.Event()
        self._taken: tuple[int, views.RunView] = (-1, views.EMPTY)

    @property
    def title(self) -> str:
        return self.scenario.name

    @property
    def lane_names(self) -> list[str]:
        return [lane.name for lane in self.scenario.lanes]

    def summary(self) -> Summary:
        from mlopslab import report

        return self.lab.snapshot(report.summarise)

    @property
    def active(self) -> bool:
        return not self.done.is_set() and self.lab.status in ACTIVE

    @property
    def running(self) -> bool:
        return self.lab.status == "running" and not self.done.is_set()

    @property
    def exit_code(self) -> int:
        """As headless: 1 when the run failed (or could not start), else 0."""
        return 1 if self.error or self.lab.status == "failed" else 0

    def run(self) -> None:
        """The whole scenario, blocking (a thread worker): prepare, start, play, tear down."""
        try:
            self.lab.run()
        except BaseException as exc:  # KeyboardInterrupt from a stop during setup included
            from mlopslab.lab import LabError

            if self.lab.status not in ("stopped", "interrupted"):
                self.error = str(exc) if isinstance(exc, LabError) else f"{type(exc).__name__}: {exc}"
        finally:
            self.lab.shutdown()
            self.done.set()

    def view(self) -> views.RunView:
        """A copy of the run's state; the same object as last time if no event arrived since."""
        def take(state: RunState) -> tuple[int, views.RunView | None]:
            return state.applied, (views.take(state) if state.applied != self._taken[0] else None)

        applied, view = self.lab.snapshot(take)
        if view is None:
            return self._taken[1]
        self._taken = (applied, view)
        return view

    # --- actions (call from a thread worker: each is real work on git, MLflow or processes) ----------------
    def release(self) -> str:
        return self.lab.release(note="released from the TUI")

    def manual_change(self, lane: str, replicas: int = 1) -> None:
        self.lab.manual_change(lane, replicas=replicas)

    def kill(self, lane: str) -> str | None:
        return self.lab.kill_replica(lane)

    def rollout(self, lane: str, action: str) -> None:
        """promote | abort the lane's rollout."""
        (self.lab.promote if action == "promote" else self.lab.abort)(lane)

    def toggle_traffic(self) -> None:
        self.lab.toggle_traffic()

    def inject_drift(self, kind: str, size: float) -> None:
        self.lab.inject_drift(kind, size)

    def retrain(self, lane: str) -> None:
        """A person starts the lane's retraining pipeline (the pipeline itself runs on its own thread)."""
        self.lab.retrain(lane)

    def stop(self) -> None:
        self.lab.stop()

    def close(self, timeout: float = 30.0) -> None:
        """Stops the run and waits for its clean-up (every replica and the load generator gone)."""
        self.lab.stop()
        if not self.done.wait(timeout):
            self.lab.shutdown()


class ReplayRun:
    live = False

    def __init__(self, events_path: Path, *, speed: float = 10.0, at: float | None = None,
                 playing: bool = True) -> None:
        self.events_path = events_path
        self.results_dir = events_path.parent
        self.playback = Playback.load(events_path, speed=speed, playing=playing)
        if at is not None:
            self.playback.seek(at)
        self.active = False
        self.running = False

    @property
    def title(self) -> str:
        return self.playback.state.scenario.get("name") or self.results_dir.name

    @property
    def lane_names(self) -> list[str]:
        for event in self.playback.events:
            if event["kind"] == "lab_prepared":
                return [lane["name"] for lane in event.get("lanes", [])]
        return sorted({e["lane"] for e in self.playback.events if e.get("lane")})

    exit_code = 0

    def summary(self) -> Summary:
        from mlopslab import report

        return report.summarise(self.playback.state)

    def tick(self, seconds: float) -> None:
        self.playback.advance(seconds)

    def view(self) -> views.RunView:
        return views.take(self.playback.state)

    def close(self, timeout: float = 0.0) -> None:
        pass
