"""A person at the TUI promotes a blue-green rollout that waits for them (`p`) and aborts another (`a`): each
key goes to the run process over the control channel; the promoted lane switches, the aborted one rolls back
(decided by "human"), and the gate panel and weight plot show it."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from mlopslab.scenario import load
from mlopslab.tui.app import LabApp
from mlopslab.tui.screens.run import RunScreen
from mlopslab.tui.widgets.lane import LanePanel

SCENARIO = """\
name: tui-strategies
seed: 2
duration: 45
model: {name: churn, data: {n_samples: 1000}}
traffic: {rate: 20}
lanes:
  - {name: rolling, delivery: push, replicas: 1, warmup: 0.2}
  - name: bg
    delivery: push
    replicas: 1
    warmup: 0.2
    strategy: {type: blue-green, autoPromotionEnabled: false, scaleDownDelaySeconds: 1}
  - name: bg2
    delivery: push
    replicas: 1
    warmup: 0.2
    strategy: {type: blue-green, autoPromotionEnabled: false, scaleDownDelaySeconds: 1}
timeline:
  - at: 2
    release: {C: 0.3}
"""


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_p_promotes_and_a_aborts_paused_blue_green_lanes_through_the_run_process(tmp_path: Path) -> None:
    path = tmp_path / "tui-strategies.yaml"
    path.write_text(SCENARIO)

    async def until(pilot, condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await pilot.pause(0.2)

    def phase(app: LabApp, name: str = "bg") -> str | None:
        screen = app.screen
        view = screen.view if isinstance(screen, RunScreen) else None
        lane = view.lane(name) if view else None
        return lane.rollout_step.get("phase") if lane else None

    async def drive() -> None:
        app = LabApp(scenario=load(path), results=tmp_path / "results")
        async with app.run_test(size=(160, 48)) as pilot:
            await until(pilot, lambda: phase(app) == "Paused", 120, "the blue-green lane to wait for a person")
            screen = app.screen
            assert isinstance(screen, RunScreen) and screen.check_action("promote", ())   # p and a in the footer
            header = screen.query_one("#lane-bg", LanePanel).query_one(".lane-header")
            await until(pilot, lambda: "waiting for a person" in str(header.render()), 5, "the gate panel")
            await pilot.press("l")   # bg is the second lane
            await pilot.press("p")
            await until(pilot, lambda: phase(app) == "Succeeded", 60, "the promotion")
            weights = screen.query_one("#lane-bg", LanePanel).query_one(".weights")
            await until(pilot, lambda: weights.display and weights.has_data, 10, "the weight plot")
            await until(pilot, lambda: phase(app, "bg2") == "Paused", 30, "the second blue-green lane to wait")
            await pilot.press("l")   # bg2, the third lane
            await pilot.press("a")
            await until(pilot, lambda: phase(app, "bg2") == "Failed", 60, "the abort")
            await pilot.press("q")
            await pilot.pause(0.5)
            if app.screen is not screen:   # the quit question
                await pilot.press("y")
            await pilot.pause(2)

    asyncio.run(drive())
    events = (tmp_path / "results" / "events.jsonl").read_text()
    compact = events.replace(" ", "")
    assert '"kind":"human_action","lane":"bg","action":"promote"' in compact
    assert '"kind":"human_action","lane":"bg2","action":"abort"' in compact
    assert '"kind":"human_action","lane":"bg","action":"abort"' not in compact   # each key went to its lane
    done = {e["lane"]: e for e in map(json.loads, events.splitlines()) if e.get("kind") == "strategy_done"}
    assert (done["bg"]["decision"], done["bg"]["by"]) == ("promoted", "human")
    assert (done["bg2"]["decision"], done["bg2"]["by"]) == ("rolled_back", "human")
