"""Plays a scenario's timeline and narration on the run's clock, through the lab's own actions (the same
methods the TUI's keys call), so a scripted replay and a person at the keyboard take one path."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

from mlopslab.scenario import Scenario, TimelineEvent


class Actions(Protocol):
    lane_names: list[str]

    def release(self, *, note: str = "", overrides: dict[str, Any] | None = None) -> str: ...
    def manual_change(self, lane: str, *, replicas: int | None = None, version: str | None = None) -> None: ...
    def kill_replica(self, lane: str) -> str | None: ...
    def pause_traffic(self) -> None: ...
    def resume_traffic(self) -> None: ...
    def inject_drift(self, kind: str, size: float, features: list[int] | None = None, ramp: float = 0.0) -> None: ...
    def retrain(self, lane: str) -> None: ...
    def pipeline_commit(self, lane: str, tests_pass: bool = True, note: str = "") -> bool: ...


class UnknownLane(LookupError):
    pass


def targets(lane: str, lanes: list[str]) -> list[str]:
    """`all` means every lane; anything else must be one."""
    if lane == "all":
        return list(lanes)
    if lane not in lanes:
        raise UnknownLane(f"no lane {lane!r} (lanes: {', '.join(lanes)})")
    return [lane]


def perform(lab: Actions, event: TimelineEvent) -> None:
    """Plays one timeline entry."""
    args = event.args
    per_lane: dict[str, Callable[[str], Any]] = {
        "manual_change": lambda lane: lab.manual_change(lane, replicas=args.get("replicas"),
                                                        version=args.get("version")),
        "kill_replica": lab.kill_replica,
        "retrain": lab.retrain,
        "pipeline_commit": lambda lane: lab.pipeline_commit(lane, bool(args.get("tests_pass", True)),
                                                            str(args.get("note", ""))),
    }
    whole_run: dict[str, Callable[[], Any]] = {
        "release": lambda: lab.release(note=str(args.get("note", "")),
                                       overrides={k: v for k, v in args.items() if k != "note"}),
        "pause_traffic": lab.pause_traffic,
        "resume_traffic": lab.resume_traffic,
        "drift": lambda: lab.inject_drift(args["kind"], float(args["size"]), args.get("features"),
                                          float(args.get("ramp", 0))),
    }
    if event.action in per_lane:
        for lane in targets(args.get("lane", "all"), lab.lane_names):
            per_lane[event.action](lane)
    else:
        whole_run[event.action]()


def play(lab: Actions, scenario: Scenario, now: Callable[[], float], stop: threading.Event,
         emit: Callable[..., Any]) -> None:
    """Waits for each entry's time on the scenario clock (`now`), then plays it; ends early on `stop`.
    A failing entry is an `error` event naming its file:line; the rest of the timeline plays on."""
    items: list[tuple[float, Any]] = [(n.at, n) for n in scenario.narration] + [(e.at, e) for e in scenario.timeline]
    items.sort(key=lambda item: item[0])
    for at, item in items:
        if stop.wait(max(0.0, at - now())):
            return
        if isinstance(item, TimelineEvent):
            try:
                perform(lab, item)
            except Exception as exc:
                emit("error", None, message=f"{scenario.path or 'scenario'}:{item.line}: "
                                            f"timeline ({item.action} at {item.at} s): {exc}")
        else:
            emit("narration", None, text=item.text)
