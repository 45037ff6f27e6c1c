"""The lab as a person uses it: pick a scenario, run it for real, release, change live state, quit cleanly."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from mlopslab.tui.app import LabApp
from mlopslab.tui.screens.confirm import ConfirmScreen
from mlopslab.tui.screens.picker import PickerScreen
from mlopslab.tui.screens.run import RunScreen

SCENARIO = """\
name: tui-quick
description: A quick real run for the TUI tests.
seed: 5
duration: 20
environment: local
model: {name: quick, data: {n_features: 4, n_samples: 600}}
traffic: {rate: 10}
lanes:
  - {name: push, delivery: push, replicas: 1, warmup: 0.2, rollout: {maxSurge: 1, maxUnavailable: 0}}
  - {name: pull, delivery: pull, replicas: 1, warmup: 0.2, rollout: {maxSurge: 1, maxUnavailable: 0},
     poll: {interval: 2, jitter: 0}}
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
            lab = source.lab
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
