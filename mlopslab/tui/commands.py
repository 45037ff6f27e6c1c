"""The command palette (`:` or ctrl+p): every action by name, with arguments like k9s (`scale pull 2`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from mlopslab.tui.replay import SPEEDS
from mlopslab.tui.screens.run import DRIFTS, RunScreen
from mlopslab.tui.widgets.strategy import has_strategy

Command = tuple[str, Callable[[], object], str]
SCALE = re.compile(r"^\s*scale\s+(\S+)\s+(\d{1,2})\s*$")


class LabCommands(Provider):
    def commands(self) -> list[Command]:
        app, screen = self.app, self.screen
        out: list[Command] = []
        if isinstance(screen, RunScreen):
            source = screen.source
            if source.can_act and not source.active:
                pass   # an ended run takes no more actions: only what follows (export, summary, lanes…)
            elif source.can_act:
                out.append(("release a new model version", screen.action_release,
                            "train, register in MLflow, commit to the env repo (c)"))
                for lane in screen.lanes:
                    out.append((f"manual change {lane}: scale to 1 replica", partial(screen.action_manual_change, lane),
                                "a live edit, not through git (m); `scale LANE N` for another count"))
                    out.append((f"kill a replica in {lane}", partial(screen.action_kill, lane), "(k)"))
                for kind, (_, what) in DRIFTS.items():
                    out.append((f"inject {kind} drift", partial(screen.action_drift, kind),
                                what + (" (d)" if kind == "covariate" else "")))
                for lane in [v.name for v in (screen.view.lanes if screen.view else ()) if has_strategy(v)]:
                    out.append((f"promote {lane}", partial(screen.action_promote, lane),
                                "like kubectl argo rollouts promote: past a pause, or all the way (p)"))
                    out.append((f"abort {lane}", partial(screen.action_promote, lane, "abort"),
                                "the candidate loses its traffic and is scaled to zero (a)"))
                for lane in screen.lanes:
                    out.append((f"retrain {lane} by hand", partial(screen.action_retrain, lane),
                                "start the lane's retraining pipeline: a human action (r)"))
                out.append(("pause or resume traffic", screen.action_space, "(space)"))
            if source.can_seek:
                out.append(("play or pause the replay", screen.action_space, "(space)"))
                out += [(f"speed {s:g}×", partial(self._speed, screen, s), "playback speed") for s in SPEEDS]
                out.append(("seek to the start", screen.action_seek_start, "(home)"))
                out.append(("seek to the end", screen.action_seek_end, "(end)"))
            out.append(("export svg", screen.action_export, "save the run screen into the results directory (s)"))
            out.append(("show summary", partial(screen.action_details, "summary"), "the side-by-side table (t)"))
            out.append(("show events", partial(screen.action_details, "events"), "the event log (e)"))
            for lane in screen.lanes:
                out.append((f"lane {lane}", partial(screen._activate, lane), "make this lane active"))
        out.append(("help", app.action_help, "keys and what the colours mean (?)"))
        running = getattr(getattr(app, "source", None), "active", False)
        out.append(("quit", app.action_quit, "stop the run, clean up and leave (q)" if running else "leave the lab (q)"))
        return out

    @staticmethod
    def _speed(screen: RunScreen, speed: float) -> None:
        screen.seek_with(lambda: screen.source.set_speed(speed))

    async def discover(self) -> Hits:
        for name, callback, help in self.commands():
            yield DiscoveryHit(name, callback, help=help)

    async def search(self, query: str) -> Hits:
        screen = self.screen
        scale = SCALE.match(query)
        if scale and isinstance(screen, RunScreen) and screen.source.can_act:
            lane, n = scale.group(1), int(scale.group(2))
            if lane in screen.lanes:
                yield Hit(1.0, f"scale {lane} to {n} replicas (manual live change)",
                          partial(screen.action_manual_change, lane, n), help="a live edit, not through git")
        matcher = self.matcher(query)
        for name, callback, help in self.commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help)
