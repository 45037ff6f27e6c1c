"""The replay: a playback clock over a recorded run, and the same screens driven by keys and the palette."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest

from mlopslab.events import read_events
from mlopslab.monitor.timeline import RunState
from mlopslab.tui.app import LabApp
from mlopslab.tui.replay import Playback
from mlopslab.tui.screens.help import HelpScreen
from mlopslab.tui.screens.run import RunScreen
from mlopslab.tui.widgets.chart import Chart
from mlopslab.tui.widgets.log import EventLog

RECORDED = Path(__file__).parent / "data" / "short-run" / "events.jsonl"


@pytest.fixture(autouse=True)
def _no_blink(monkeypatch: pytest.MonkeyPatch) -> None:
    from textual.widgets import Input

    monkeypatch.setattr(Input, "cursor_blink", False, raising=False)


def _plain(screen: object) -> str:
    from rich.console import Console

    from mlopslab.tui.screens.help import keys

    console = Console(width=120, record=True, file=io.StringIO())
    console.print(keys(screen))  # type: ignore[arg-type]
    return console.export_text()


def _plain_legend() -> str:
    from rich.console import Console

    from mlopslab.tui.screens.help import legend

    console = Console(width=120, record=True, file=io.StringIO())
    console.print(legend())
    return console.export_text()


def _state_at(position: float) -> RunState:
    events = list(read_events(RECORDED))
    origin = next(e["t"] for e in events if e["kind"] == "run_started")
    state = RunState()
    for event in events:
        if event["t"] - origin <= position:
            state.apply(event)
    return state


def test_playback_seek_backwards_rebuilds_the_same_state_as_playing_forward() -> None:
    playback = Playback.load(RECORDED, playing=False)
    playback.seek(20.0)
    playback.seek(8.0)
    expected = _state_at(8.0)
    assert playback.position == 8.0
    assert playback.state.now == expected.now
    assert {n: len(l.latency) for n, l in playback.state.lanes.items()} == \
           {n: len(l.latency) for n, l in expected.lanes.items()}
    assert len(playback.state.log) == len(expected.log)


def test_playback_advances_by_wall_time_times_speed_and_stops_at_the_end() -> None:
    playback = Playback.load(RECORDED, speed=10.0, playing=True)
    playback.seek(0.0)
    playback.advance(0.5)
    assert playback.position == pytest.approx(5.0)
    playback.speed = 100.0
    playback.advance(10.0)
    assert playback.at_end and not playback.playing
    assert playback.state.finished is not None


def test_playback_speed_steps_stay_within_1x_and_100x() -> None:
    playback = Playback.load(RECORDED, speed=500.0)
    assert playback.speed == 100.0
    for _ in range(10):
        playback.slower()
    assert playback.speed == 1.0
    playback.faster()
    assert playback.speed == 2.0


def test_replay_of_a_crashed_run_plays_up_to_the_crash(tmp_path: Path) -> None:
    lines = RECORDED.read_text().splitlines()
    torn = tmp_path / "events.jsonl"
    torn.write_text("\n".join(lines[: len(lines) // 2]) + '\n{"t": 12.5, "kind": "metr')
    playback = Playback.load(torn, playing=False)
    playback.seek(playback.last)
    assert playback.state.finished is None and playback.state.lanes


def test_replay_keys_seek_and_change_speed() -> None:
    async def drive() -> None:
        app = LabApp(replay=RECORDED, speed=10.0, at=10.0, playing=False)
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, RunScreen)
            playback = screen.source.playback
            await pilot.press("right", "right")
            assert playback.position == pytest.approx(20.0)
            await pilot.press("left")
            assert playback.position == pytest.approx(15.0)
            await pilot.press("plus", "plus")
            assert playback.speed == 50.0
            await pilot.press("minus")
            assert playback.speed == 20.0
            await pilot.press("home")
            assert playback.position == playback.first
            await pilot.press("end")
            assert playback.at_end
            await pilot.pause(0.3)
            assert app.screen.query_one("#details").active == "summary"   # the run ended: its summary shows
            await pilot.press("left")
            await pilot.press(*["minus"] * 6)
            assert playback.speed == 1.0
            before = playback.position
            await pilot.press("space")
            assert playback.playing
            await pilot.pause(0.5)
            assert before + 0.2 < playback.position < before + 3
            log = screen.query_one(EventLog)
            assert log.lines, "the event log shows the replayed events"
            plotted = [c for c in screen.query(Chart) if c.has_data]
            assert len(plotted) == 8  # latency, rollout, accuracy and drift (measured from 11 s on) per lane
            await pilot.press("home")
            drift = screen.query_one(".drift", Chart)
            assert not drift.has_data and "no drift measured yet" in drift.render().plain

    asyncio.run(drive())


def test_the_run_screen_asks_a_sources_capabilities_not_its_type() -> None:
    """A recorded run that declares it cannot seek: its seek and speed keys do nothing, the footer drops
    them, its plots keep the live period; and no source offers the actions it did not declare."""
    from mlopslab.tui.replay import ReplayRun
    from mlopslab.tui.screens.run import PLOT_PERIOD

    class Pinned(ReplayRun):
        can_seek = False

    async def drive() -> None:
        app = LabApp(replay=RECORDED, at=10.0, playing=False)
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.pause()
            pinned = Pinned(RECORDED, at=10.0, playing=False)
            screen = RunScreen(pinned)
            await app.push_screen(screen)
            await pilot.pause()
            assert not screen.check_action("seek", ()) and not screen.check_action("faster", ())
            assert not screen.check_action("release", ()) and screen.check_action("space", ())
            assert screen.plot_period == PLOT_PERIOD
            await pilot.press("right", "plus")
            assert (pinned.playback.position, pinned.playback.speed) == (pytest.approx(10.0), 10.0)
            with pytest.raises(NotImplementedError, match="takes no actions"):
                pinned.release()

    asyncio.run(drive())


def test_help_lists_the_screens_keys_and_closes_with_escape() -> None:
    async def drive() -> None:
        app = LabApp(replay=RECORDED, at=5.0, playing=False)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            await pilot.press("question_mark")
            await pilot.pause()
            assert isinstance(app.screen, HelpScreen)
            text = _plain(app.screen.under) + _plain_legend()
            assert "seek back 5 s" in text and "Synced" in text and "command palette" in text
            assert "release a new model" not in text   # live-only keys are not offered in a replay
            await pilot.press("escape")
            await pilot.pause()
            assert isinstance(app.screen, RunScreen)

    asyncio.run(drive())


async def _palette_open(pilot, app) -> None:  # type: ignore[no-untyped-def]
    from textual.command import CommandPalette

    for _ in range(50):  # typed too early, "s" would be the export key, not a letter of the query
        if isinstance(app.screen, CommandPalette):
            return
        await pilot.pause(0.05)
    raise AssertionError("the command palette did not open")


def test_command_palette_runs_our_commands() -> None:
    async def drive() -> None:
        app = LabApp(replay=RECORDED, at=5.0, playing=False)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            await pilot.press("colon")
            await _palette_open(pilot, app)
            await pilot.press(*"speed 100")
            await pilot.pause(0.3)
            await pilot.press("enter")
            await pilot.pause(0.2)
            assert isinstance(app.screen, RunScreen)
            assert app.screen.source.playback.speed == 100.0
            await pilot.press("ctrl+p")
            await _palette_open(pilot, app)
            await pilot.press(*"seek to the end")
            await pilot.pause(0.3)
            await pilot.press("enter")
            await pilot.pause(0.2)
            assert app.screen.source.playback.at_end

    asyncio.run(drive())


def test_quit_from_a_replay_does_not_ask() -> None:
    async def drive() -> None:
        app = LabApp(replay=RECORDED, at=5.0, playing=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            await pilot.press("q")
            await pilot.pause()
        assert app.return_code == 0

    asyncio.run(drive())


DRIFT_LEVELS = Path(__file__).parent / "data" / "drift-levels-short" / "events.jsonl"
ALARM = "rgb(255,107,107)"   # MARK_STYLES["alarm"]


def _colours(chart: Chart) -> set[str]:
    """The colours drawn in the plot (below the heading line)."""
    text = chart.render()
    body = text.plain.index("\n")
    return {span.style.color.name for span in text.spans
            if span.start > body and not isinstance(span.style, str) and span.style.color is not None}


def test_replay_of_a_drift_levels_run_plots_accuracy_and_drift_with_alarm_and_retrain_marks() -> None:
    """A real 45 s run: covariate shift at 10 s, levels 1 and 2 retrain on the alarm, a person retrains
    level 0 at 30 s. The accuracy and drift plots, the lane headers, the log and the summary show it."""
    from rich.console import Console

    from mlopslab import report
    from mlopslab.tui.widgets.lane import LanePanel
    from mlopslab.tui.widgets.summary import SummaryTable

    async def drive() -> None:
        app = LabApp(replay=DRIFT_LEVELS, at=4.5, playing=False)
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, RunScreen)
            early = screen.query_one("#lane-level0 .accuracy", Chart)
            assert not early.has_data and "no labels yet" in early.render().plain   # labels come 3 s late
            await pilot.press("right")                                 # 9.5 s: labels, no alarm yet
            assert early.has_data and "!" not in early.render().plain

            await pilot.press("right", "right")                       # 19.5 s: alarms raised, retrains under way
            await pilot.pause()
            for lane in ("level0", "level1", "level2"):
                accuracy = screen.query_one(f"#lane-{lane} .accuracy", Chart)
                drift = screen.query_one(f"#lane-{lane} .drift", Chart)
                assert accuracy.has_data and drift.has_data
                assert "!" in accuracy.render().plain                   # the alarm's glyph over its line
                assert ALARM in _colours(accuracy) and ALARM in _colours(drift)
            level1 = screen.query_one("#lane-level1", LanePanel)
            header = level1.query_one(".lane-header").render()
            assert "L1" in str(header) and "⟳ retrain: awaiting labels" in str(header)
            assert "R" in screen.query_one("#lane-level1 .rollout", Chart).render().plain
            assert not screen.check_action("drift", ()) and not screen.check_action("retrain", ())
            assert "inject drift" not in _plain(screen)                  # live-only keys hidden in a replay

            await pilot.press("end")
            await pilot.pause(0.3)
            level0 = screen.query_one("#lane-level0 .accuracy", Chart).render().plain
            assert "R" in level0 and "✓" in level0    # the person's retrain, then its version at 100%
            assert "pipeline 62e40f6" in str(screen.query_one("#lane-level2 .lane-header").render())
            console = Console(width=300, record=True, file=io.StringIO())
            for entry in screen.query_one(EventLog).lines:
                console.print(entry.text)
            log = console.export_text()
            assert "level1-1 delivered: detect 0.51s, labels 13.90s" in log
            assert "a person starts a retrain of this lane" in log and "CUSUM alarm" in log

            table = screen.query_one(SummaryTable)
            summary = screen.source.summary()
            header, body = report.rows(summary)
            assert table.row_count == len(body)
            assert [str(c.label) for c in table.columns.values()][1:] == header[1:]
            loop = {row[0].strip(): row[1:] for row in body}
            assert loop["retrains (reason)"] == ["1 (human)", "1 (alarm)", "1 (alarm)"]
            assert loop["human actions"] == ["1", "0", "0"]
            assert "**ML loop**" in report.table(summary)

    asyncio.run(drive())


def test_replay_of_a_strategies_run_shows_the_weight_plot_and_the_gate_panel() -> None:
    """canary-gates, recorded: at 80 s the SLO canary has rolled v3 back by its p99 gate, the accuracy
    canary has promoted it, the shadow rolled it back without a user ever seeing it."""
    recorded = Path(__file__).parent / "data" / "canary-gates" / "events.jsonl"

    async def drive() -> None:
        app = LabApp(replay=recorded, speed=10.0, at=80.0, playing=False)
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, RunScreen)
            headers = {panel.lane: str(panel.query_one(".lane-header").render()) for panel in screen.query("LanePanel")}
            assert "canary Failed v3" in headers["canary-slo"] and "✗ p99" in headers["canary-slo"]
            assert "canary Succeeded" in headers["canary-acc"] and "✓ accuracy" in headers["canary-acc"]
            assert "shadow Failed v3" in headers["shadow"] and "✓ disagreement" in headers["shadow"]
            for panel in screen.query("LanePanel"):
                weights = panel.query_one(".weights")
                assert weights.display and weights.has_data
            await pilot.press("p")   # a replay takes no actions: nothing happens, nothing breaks
            summary = screen.source.summary()
            change = summary.lanes["shadow"].strategy_changes[0]
            assert (change.decision, change.by, change.exposure) == ("rolled_back", "disagreement", 0)

    asyncio.run(drive())


@pytest.mark.parametrize(("size", "rows"), [((160, 48), 5), ((80, 24), 3)])
def test_strategy_lanes_show_phase_gates_and_a_weight_plot_with_rows_to_read(size: tuple[int, int], rows: int) -> None:
    """canary-gates at 24 s: every lane on screen (all three side by side at 160×48, the active tab at 80×24)
    shows its phase, its gates and its weight plot whole, with `rows` rows of weight (5: 0 to 100 in steps a
    person can read, 3 at least 0, 50 and 100); the share plot gives its room to the weight plot."""
    recorded = Path(__file__).parent / "data" / "canary-gates" / "events.jsonl"

    async def drive() -> None:
        app = LabApp(replay=recorded, at=24.0, playing=False)
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            await pilot.pause(0.3)
            screen = app.screen
            assert isinstance(screen, RunScreen)
            shown = [panel for panel in screen.query("LanePanel") if panel.display]
            assert len(shown) == (3 if size[0] >= 120 else 1)
            for panel in shown:
                header = str(panel.query_one(".lane-header").render())
                assert "canary " in header or "shadow " in header
                assert any(glyph in header for glyph in "✓✗…")
                weights, rollout = panel.query_one(".weights", Chart), panel.query_one(".rollout", Chart)
                assert weights.display and not rollout.display
                assert weights.region.height - 4 >= rows   # less its heading, the marks' row and the time axis
                assert weights.region.bottom <= panel.region.bottom, "the weight plot is cut off"

    asyncio.run(drive())
