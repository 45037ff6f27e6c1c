"""The lab as a person uses it: pick a scenario, run it for real, release, change live state, quit cleanly."""

from __future__ import annotations

import asyncio
import io
import os
import time
from pathlib import Path

import pytest

from mlopslab.tui.app import LabApp
from mlopslab.tui.screens.confirm import ConfirmScreen
from mlopslab.tui.screens.picker import PickerScreen
from mlopslab.tui.screens.run import RunScreen
from mlopslab.tui.sources import LiveRun
from tests.scenario_texts import push_and_pull

SCENARIO = """\
name: tui-quick
description: A quick real run for the TUI tests.
seed: 5
duration: 20
environment: local
model: {name: quick, data: {n_features: 4, n_samples: 600}}
traffic: {rate: 10}
""" + push_and_pull(jitter="0") + """\
narration:
  - {at: 0, text: "Two lanes, one replica each."}
"""


@pytest.fixture(autouse=True)
def _no_blink(monkeypatch: pytest.MonkeyPatch) -> None:
    from textual.widgets import Input

    monkeypatch.setattr(Input, "cursor_blink", False, raising=False)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purposes
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"
    except OSError:
        return False


async def _until(pilot, condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.1)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_pick_run_release_manual_change_and_quit_cleans_up(tmp_path: Path) -> None:
    path = tmp_path / "quick.yaml"
    path.write_text(SCENARIO)

    async def drive() -> list[int]:
        app = LabApp(files=[path], results=tmp_path / "results")
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.pause()
            assert isinstance(app.screen, PickerScreen)
            await pilot.press("enter")          # the named file is listed first
            await pilot.pause()
            assert isinstance(app.screen, RunScreen)
            source = app.source
            lab = source   # the run is a child process: the source follows its events and sends it the keys
            await _until(pilot, lambda: source.running, 60, "the lanes to be ready and the run to start")
            pids = lab.child_pids()
            assert pids

            await pilot.press("c")
            await _until(pilot, lambda: lab.snapshot(lambda s: any(str(c["version"]) == "2"
                                                                   for c in s.commits.values())),
                         15, "the release commit")
            await pilot.press("m")
            await _until(pilot, lambda: lab.snapshot(lambda s: bool(s.lanes["push"].changes)), 10,
                         "the manual live change")
            await pilot.press("l", "k")         # the next lane is active: kill one of its replicas
            await _until(pilot, lambda: any(e[1] == "replica_killed" and e[2] == "pull"
                                            for e in lab.snapshot(lambda s: list(s.log))), 10, "the kill")
            await pilot.press("space")
            await _until(pilot, lambda: lab.snapshot(lambda s: s.paused), 5, "traffic to pause")

            await pilot.press("q")
            await pilot.pause()
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("y")
            await _until(pilot, lambda: source.done.is_set(), 30, "the clean-up")
            await pilot.pause(0.5)
        assert app.return_code == 0
        assert lab.status == "stopped"
        return pids

    pids = asyncio.run(drive())
    assert not [pid for pid in pids if _alive(pid)], "every replica and the load generator are gone"
    results = tmp_path / "results"
    assert (results / "summary.json").exists()
    kinds = (results / "events.jsonl").read_text()
    assert '"kind":"live_change"' in kinds and '"kind":"run_finished"' in kinds


ML_SCENARIO = """\
name: tui-ml
description: A quick real run for the TUI's ML keys.
seed: 3
duration: 40
environment: local
model: {name: quick, data: {n_features: 4, n_samples: 600}}
traffic: {rate: 10, label_delay: 1}
lanes:
  - {name: solo, delivery: push, level: 0, replicas: 1, warmup: 0.1, rollout: {maxSurge: 1, maxUnavailable: 0}}
"""


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_d_injects_drift_and_r_retrains_the_active_lane_by_hand(tmp_path: Path) -> None:
    from rich.console import Console
    from textual.command import CommandPalette

    from mlopslab.scenario import load
    from mlopslab.tui.screens.help import keys
    from mlopslab.tui.widgets.lane import LanePanel

    path = tmp_path / "ml.yaml"
    path.write_text(ML_SCENARIO)

    def kinds(lab: LiveRun) -> list[tuple[str, str | None, str]]:
        return lab.snapshot(lambda s: [(entry.kind, entry.lane, entry.detail) for entry in s.log])

    async def drive() -> None:
        app = LabApp(scenario=load(path), results=tmp_path / "results")
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, RunScreen)
            lab = app.source
            assert screen.check_action("drift", ()) and screen.check_action("retrain", ())   # in the footer
            console = Console(width=160, record=True, file=io.StringIO())
            console.print(keys(screen))
            help_text = console.export_text()
            assert "inject drift: covariate shift" in help_text and "retrain the active lane" in help_text
            await _until(pilot, lambda: app.source.running, 60, "the run to start")

            await pilot.press("d")
            await _until(pilot, lambda: lab.snapshot(lambda s: len(s.drifts)) == 1, 10, "drift_injected")
            drift = lab.snapshot(lambda s: s.drifts[0])
            assert drift["drift"] == "covariate" and drift["size"] == 2.0 and drift["features"] is None

            await pilot.press("r")
            await _until(pilot, lambda: ("retrain_started", "solo") in [(k, n) for k, n, _ in kinds(lab)], 10,
                         "retrain_started")
            log = kinds(lab)
            assert ("human_action", "solo", "action=retrain") in log
            assert "reason=human" in next(d for k, _, d in log if k == "retrain_started")
            header = screen.query_one("#lane-solo", LanePanel).query_one(".lane-header")
            await _until(pilot, lambda: "L0 " in str(header.render()), 5, "the level in the header")

            await pilot.press("colon")
            for _ in range(50):
                if isinstance(app.screen, CommandPalette):
                    break
                await pilot.pause(0.05)
            await pilot.press(*"inject concept drift")
            await pilot.pause(0.3)
            await pilot.press("enter")
            await _until(pilot, lambda: lab.snapshot(lambda s: len(s.drifts)) == 2, 10, "the palette's drift")
            assert lab.snapshot(lambda s: s.drifts[1]["drift"]) == "concept"

            await pilot.press("q")
            await pilot.pause()
            await pilot.press("y")
            await _until(pilot, lambda: app.source.done.is_set(), 30, "the clean-up")
            await pilot.pause(0.3)
            assert not [detail for kind, _, detail in kinds(lab) if kind == "error"]
            assert app.source.status == "stopped"

    asyncio.run(drive())
