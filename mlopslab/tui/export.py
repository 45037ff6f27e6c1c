"""Headless SVG export: replay a finished run to its end in an app of fixed size and save the run screen."""

from __future__ import annotations

import asyncio
from pathlib import Path

SIZE = (160, 48)
NAME = "run-screen.svg"


def export_svg(results_dir: Path, *, size: tuple[int, int] = SIZE, at: float | None = None,
               filename: str = NAME) -> Path:
    """Saves results_dir/run-screen.svg (the run screen at the end of the run, or at `at` seconds)."""
    results_dir = Path(results_dir)
    events = results_dir / "events.jsonl" if results_dir.is_dir() else results_dir
    out_dir = events.parent
    return asyncio.run(_export(events, out_dir, size, at, filename))


async def _export(events: Path, out_dir: Path, size: tuple[int, int], at: float | None, filename: str) -> Path:
    from mlopslab.tui.app import LabApp
    from mlopslab.tui.replay import Playback

    if at is None:
        at = Playback.load(events).last
    app = LabApp(replay=events, at=at, playing=False)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        screen = app.screen
        screen.refresh_view()  # type: ignore[attr-defined]
        await pilot.pause()
        await pilot.wait_for_scheduled_animations()
        path = app.save_screenshot(filename=filename, path=str(out_dir))
    return Path(path)
