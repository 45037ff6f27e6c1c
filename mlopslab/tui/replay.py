"""A recorded run as a Source: a playback clock (play, pause, speed 1×–100×, seek) fed into a fresh RunState.

Times are scenario seconds (0 = `run_started`); the setup before it (training, first rollout) plays as
negative time. Seeking backwards rebuilds the state from the first event — a run is a few thousand
events, so that is cheap and keeps `RunState` a pure reducer.
"""

from __future__ import annotations

from bisect import bisect_right
from pathlib import Path
from typing import Any

from mlopslab.events import read_events
from mlopslab.monitor.timeline import RunState
from mlopslab.summary import Summary
from mlopslab.tui import view as views
from mlopslab.tui.sources import Source

SPEEDS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)


class Playback:
    def __init__(self, events: list[dict[str, Any]], *, speed: float = 10.0, playing: bool = True) -> None:
        if not events:
            raise ValueError("the run has no events")
        self.events = events
        self.times = [e["t"] for e in events]
        start = next((e["t"] for e in events if e["kind"] == "run_started"), None)
        self.origin = start if start is not None else events[0]["t"]
        self.first = self.times[0] - self.origin
        self.last = self.times[-1] - self.origin
        self.finished = any(e["kind"] == "run_finished" for e in events[-3:])
        self.speed = clamp_speed(speed)
        self.playing = playing
        self.position = self.first
        self.state = RunState()
        self._applied = 0

    @classmethod
    def load(cls, path: Path, **kwargs: Any) -> Playback:
        return cls(list(read_events(path)), **kwargs)

    @property
    def at_end(self) -> bool:
        return self.position >= self.last

    def advance(self, seconds: float) -> None:
        """Moves the clock by `seconds` of wall time (times the speed) while playing."""
        if self.playing:
            self.seek(self.position + seconds * self.speed)
            if self.at_end:
                self.playing = False

    def seek(self, position: float) -> None:
        position = min(max(position, self.first), self.last)
        if position < self.position:
            self.state, self._applied = RunState(), 0
        self.position = position
        upto = bisect_right(self.times, position + self.origin)
        for event in self.events[self._applied:upto]:
            self.state.apply(event)
        self._applied = max(self._applied, upto)

    def seek_by(self, seconds: float) -> None:
        self.seek(self.position + seconds)

    def toggle(self) -> None:
        if self.at_end and not self.playing:
            self.seek(self.first)
        self.playing = not self.playing

    def faster(self) -> None:
        self.speed = next((s for s in SPEEDS if s > self.speed), SPEEDS[-1])

    def slower(self) -> None:
        self.speed = next((s for s in reversed(SPEEDS) if s < self.speed), SPEEDS[0])


def clamp_speed(speed: float) -> float:
    return min(max(float(speed), SPEEDS[0]), SPEEDS[-1])


class ReplayRun(Source):
    """A recorded run (its events.jsonl) played back on the run screen."""

    can_pause = can_seek = True
    active = running = False   # nothing runs: a quit needs no question, and it takes no actions
    exit_code = 0
    status = "replay"

    def __init__(self, events_path: Path, *, speed: float = 10.0, at: float | None = None,
                 playing: bool = True) -> None:
        self.events_path = events_path
        self.results_dir = events_path.parent
        self.playback = Playback.load(events_path, speed=speed, playing=playing)
        if at is not None:
            self.playback.seek(at)

    @property
    def title(self) -> str:
        return self.playback.state.scenario.get("name") or self.results_dir.name

    @property
    def lane_names(self) -> list[str]:
        for event in self.playback.events:
            if event["kind"] == "lab_prepared":
                return [lane["name"] for lane in event.get("lanes", [])]
        return sorted({e["lane"] for e in self.playback.events if e.get("lane")})

    def summary(self) -> Summary:
        from mlopslab import report

        return report.summarise(self.playback.state)

    def tick(self, seconds: float) -> None:
        self.playback.advance(seconds)

    def progress(self, view: views.RunView) -> list[tuple[str, str]]:
        pb = self.playback
        state = "▶ playing" if pb.playing else ("■ end" if pb.at_end else "⏸ paused")
        return [(f"  replay {state} {pb.speed:g}×", "bold #d98cff"), (f"  t {pb.position:6.1f} / {pb.last:.1f} s", "bold")]

    def position(self, view: views.RunView) -> float:
        return self.playback.position

    def toggle(self) -> None:
        self.playback.toggle()

    def seek(self, where: float | str) -> None:
        pb = self.playback
        pb.seek(pb.first if where == "start" else pb.last if where == "end" else float(where))

    def seek_by(self, seconds: float) -> None:
        self.playback.seek_by(seconds)

    def set_speed(self, speed: float | str) -> None:
        if speed == "faster":
            self.playback.faster()
        elif speed == "slower":
            self.playback.slower()
        else:
            self.playback.speed = clamp_speed(float(speed))

    def view(self) -> views.RunView:
        return views.take(self.playback.state)
