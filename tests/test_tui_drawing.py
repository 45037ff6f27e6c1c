"""What drawing costs: the run screen redraws what changed and lays the screen out only when a size changes.

A layout of the whole screen is the most expensive thing Textual does for us (about 12–17 ms at 160×48),
and the TUI runs on the machine whose latency it shows: these tests count layouts while data flows.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from rich.text import Text
from textual.app import App, ComposeResult
from textual.screen import Screen

from mlopslab.eventtypes import decode
from mlopslab.monitor.timeline import LogEntry
from mlopslab.tui.app import LabApp
from mlopslab.tui.widgets.chart import Chart
from mlopslab.tui.widgets.log import EventLog
from mlopslab.tui.widgets.text import TextStatic

RECORDED = Path(__file__).parent / "data" / "short-run" / "events.jsonl"


@pytest.fixture
def layouts(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """One entry per layout of a screen, from now on."""
    calls: list[float] = []
    original = Screen._refresh_layout

    def counted(self: Screen, *args: object, **kwargs: object) -> None:
        calls.append(1.0)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Screen, "_refresh_layout", counted)
    return calls


@pytest.mark.parametrize("size", [(160, 48), (100, 40)], ids=["side-by-side", "tabs"])
def test_a_playing_run_redraws_its_plots_and_log_without_laying_the_screen_out(
        layouts: list[float], size: tuple[int, int]) -> None:
    """Side by side, and with lanes as tabs (the hidden lane's header changes too, unseen)."""
    async def drive() -> None:
        app = LabApp(replay=RECORDED, at=2.0, speed=4.0, playing=False)   # traffic flows from 0 s
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            charts = list(app.screen.query(Chart))
            log = app.screen.query_one(EventLog)
            builds, lines = sum(c.builds for c in charts), len(log.lines)
            clock = _stepped(app.screen)
            await pilot.press("space")           # play at 4×: new windows, marks and events every tick
            await pilot.pause()
            before = len(layouts)
            for _ in range(16):                  # 2 s of ticks on the screen's clock, each drawn
                await _tick(pilot, app.screen, clock)
            during = len(layouts) - before
            assert sum(c.builds for c in charts) >= builds + 4, "the plots did not redraw while playing"
            assert len(log.lines) > lines, "the event log got no new lines while playing"
            assert during <= 2, f"{during} layouts of the screen in 2 s of playback"
            await pilot.press("q")

    asyncio.run(drive())


def _stepped(screen: Screen) -> list[float]:
    """Gives the run screen a clock that only the test moves: the app's own timer then sees no time pass,
    so what is drawn depends on the ticks the test makes, not on how busy the machine is."""
    now = [screen.clock()]
    screen.clock = lambda: now[0]
    return now


async def _tick(pilot: object, screen: Screen, clock: list[float], seconds: float = 0.125) -> None:
    clock[0] += seconds
    screen.refresh_view()
    await pilot.pause()  # type: ignore[attr-defined]   # lets Textual draw what the tick changed


def test_live_plots_redraw_at_most_once_per_plot_period_unless_a_mark_appears() -> None:
    """A live run rate-limits its plots (the header still follows every snapshot); shown on a replay given
    the live period and a clock of the test's own, with new data at every tick."""
    async def drive() -> None:
        app = LabApp(replay=RECORDED, at=2.0, playing=False)
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.pause()
            screen = app.screen
            clock = [1000.0]
            screen.clock, screen.plot_period = (lambda: clock[0]), 1.0
            header = screen.query_one("#lane-push .lane-header", TextStatic)
            first = header._shown
            drawn: list[float] = []
            for tick in range(32):               # 4 s of ticks at 8 a second; the run moves 0.5 s per tick
                clock[0] += 0.125
                app.source.playback.seek(2.0 + tick * 0.5)
                before, marks = screen._plotted.get("push"), screen._lane_keys["push"][1][-1]
                screen.refresh_view()
                if screen._plotted.get("push") != before and screen._lane_keys["push"][1][-1] == marks:
                    drawn.append(clock[0])          # a redraw for new data, not for a new mark
            assert len(drawn) >= 2
            assert all(later - earlier >= 1.0 for earlier, later in zip(drawn, drawn[1:])), drawn
            assert header._shown is not first and "req" in header._shown.plain
            await pilot.press("q")

    asyncio.run(drive())


class _LogApp(App[None]):
    def compose(self) -> ComposeResult:
        yield EventLog(id="log")


def test_the_event_log_scrolls_to_its_newest_line_without_a_layout_per_line(layouts: list[float]) -> None:
    async def drive() -> None:
        app = _LogApp()
        async with app.run_test(size=(60, 10)) as pilot:
            log = app.query_one(EventLog)
            await pilot.pause()
            entries: list[LogEntry] = []
            counts = []
            for i in range(40):
                event = decode({"t": float(i), "kind": "commit", "lane": "push", "sha": f"abc{i:03d}", "version": 2})
                entries.append(LogEntry(float(i), "commit", "push", f"sha=abc{i:03d} version=2", event))
                before = len(layouts)
                log.show(tuple(entries))
                await pilot.pause()
                counts.append(len(layouts) - before)
            assert len(log.lines) == 40
            assert log.max_scroll_y == 40 - log.scrollable_content_region.height > 0
            assert log.scroll_y == log.max_scroll_y, "the newest line is not in view"
            assert log.show_vertical_scrollbar
            assert sum(counts) <= 2, f"layouts per new line: {counts}"   # only when the scroll bar appears

    asyncio.run(drive())


class _TextApp(App[None]):
    def compose(self) -> ComposeResult:
        yield TextStatic(id="auto")


def test_a_text_widget_lays_out_only_when_its_height_changes(layouts: list[float]) -> None:
    async def drive() -> None:
        app = _TextApp()
        async with app.run_test(size=(40, 10)) as pilot:
            widget = app.query_one(TextStatic)
            widget.styles.height = "auto"
            widget.show_text(Text("one line"))
            await pilot.pause()
            assert widget.size.height == 1
            before = len(layouts)
            widget.show_text(Text("another line"))         # same height: no layout
            await pilot.pause()
            assert len(layouts) == before
            widget.show_text(Text("another line"))         # same text: not even a repaint
            assert not widget._repaint_required
            widget.show_text(Text("a line\nand a second one"))
            await pilot.pause()
            assert len(layouts) > before and widget.size.height == 2

    asyncio.run(drive())


def test_a_live_source_copies_the_run_state_only_when_an_event_arrived(tmp_path: Path) -> None:
    from mlopslab import scenario
    from mlopslab.tui.sources import LiveRun

    source = LiveRun(scenario.load(Path(__file__).parent.parent / "scenarios" / "push-vs-pull.yaml"), tmp_path / "run")
    first = source.view()
    assert source.view() is first                       # nothing happened: the same copy, no work under the lock
    source.snapshot(lambda state: state.apply({"kind": "narration", "t": 0.0, "text": "a teaching line"}))
    second = source.view()
    assert second is not first and second.narration[-1][1] == "a teaching line"
    assert source.view() is second
