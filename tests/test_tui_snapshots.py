"""SVG snapshots of the run screen, made deterministic by replaying a recorded run, paused at a fixed time.

Create or refresh the baselines with `pytest tests/test_tui_snapshots.py --snapshot-update`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mlopslab.tui.app import LabApp

RECORDED = Path(__file__).parent / "data" / "short-run" / "events.jsonl"
AT = 16.0   # after the release and the manual change, before the end


@pytest.fixture(autouse=True)
def _no_blink(monkeypatch: pytest.MonkeyPatch) -> None:
    from textual.widgets import Input

    monkeypatch.setattr(Input, "cursor_blink", False, raising=False)


def _app(at: float = AT) -> LabApp:
    return LabApp(replay=RECORDED, at=at, playing=False)


def test_run_screen_at_80x24_shows_one_lane_as_a_tab(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(_app(), terminal_size=(80, 24))


def test_run_screen_at_160x48_shows_lanes_side_by_side(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(_app(), terminal_size=(160, 48))


def test_run_screen_at_the_end_shows_the_summary(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(_app(at=1000.0), terminal_size=(160, 48))


THREE_LANES = Path(__file__).parent / "data" / "polling-vs-webhook" / "events.jsonl"
MID_RUN = 45.0   # after the second release: one poller still on v2, the others rolled out


def test_three_lanes_at_120x40_mid_run_show_every_rollout_plot(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(LabApp(replay=THREE_LANES, at=MID_RUN, playing=False), terminal_size=(120, 40))


def test_three_lanes_at_120x40_at_the_end_show_every_lanes_summary_column(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(LabApp(replay=THREE_LANES, at=1000.0, playing=False), terminal_size=(120, 40))


def test_three_lanes_at_80x24_mid_run_keep_help_and_quit_in_the_footer(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(LabApp(replay=THREE_LANES, at=MID_RUN, playing=False), terminal_size=(80, 24))


def test_three_lanes_at_80x24_at_the_end(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(LabApp(replay=THREE_LANES, at=1000.0, playing=False), terminal_size=(80, 24))


STRATEGIES = Path(__file__).parent / "data" / "canary-gates" / "events.jsonl"
GATES_AT = 24.0   # v2: the SLO canary promoting it, the accuracy canary waiting for labels, the shadow rolled back


def test_strategy_lanes_at_160x48_show_phase_gates_and_weight_plot(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(LabApp(replay=STRATEGIES, at=GATES_AT, playing=False), terminal_size=(160, 48))


def test_strategy_lanes_at_80x24_keep_gates_and_weight_plot_above_the_fold(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(LabApp(replay=STRATEGIES, at=GATES_AT, playing=False), terminal_size=(80, 24))
