"""The TUI's edges: the domain stays free of Textual, drift plots appear with data, SVG export works."""

from __future__ import annotations

import ast
import asyncio
import json
from pathlib import Path

import pytest

import mlopslab
from mlopslab.tui.app import LabApp
from mlopslab.tui.export import export_svg
from mlopslab.tui.widgets.chart import Chart, ansi_rows

PACKAGE = Path(mlopslab.__file__).parent
RECORDED = Path(__file__).parent / "data" / "short-run" / "events.jsonl"


def test_the_domain_never_imports_textual() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if "tui" in path.relative_to(PACKAGE).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "textual" or n.startswith("textual.") for n in names):
                offenders.append(str(path.relative_to(PACKAGE)))
    assert not offenders


def test_plotext_ansi_keeps_text_and_foreground_drops_background() -> None:
    rows = ansi_rows("\x1b[0m\x1b[38;2;1;2;3;48;5;0mab\x1b[0mc\x1b[1;31md\ne")
    assert ["".join(segment.text for segment in row) for row in rows] == ["abcd", "e"]
    styled = [segment for segment in rows[0] if segment.style is not None]
    assert [segment.style.color.name for segment in styled] == ["rgb(1,2,3)", "color(1)"]
    assert styled[1].style.bold
    assert all(segment.style.bgcolor is None for segment in styled)


def test_drift_plot_appears_once_drift_is_measured(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    origin = 0.0
    with open(events, "w") as handle:
        for line in RECORDED.read_text().splitlines():
            handle.write(line + "\n")
            event = json.loads(line)
            origin = event["t"] if event["kind"] == "run_started" else origin
            if event["kind"] == "metrics" and event["lane"] == "pull" and 3 < event["t"] - origin < 10:
                handle.write(json.dumps({**event, "kind": "drift_score", "score": 0.02 * event["window"]}) + "\n")

    async def drive() -> None:
        app = LabApp(replay=events, at=10.5, playing=False)  # the recording's own scores start at 11 s
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.pause()
            pull = app.screen.query_one("#lane-pull .drift", Chart)
            push = app.screen.query_one("#lane-push .drift", Chart)
            assert pull.has_data and not pull.has_class("-empty")
            assert "drift" in pull.render().plain and "┤" in pull.render().plain
            assert not push.has_data and "no drift measured yet" in push.render().plain

    asyncio.run(drive())


def test_export_svg_saves_the_final_run_screen_into_the_results(tmp_path: Path) -> None:
    (tmp_path / "events.jsonl").write_text(RECORDED.read_text())
    path = export_svg(tmp_path)
    assert path == tmp_path / "run-screen.svg"
    svg = path.read_text()
    assert svg.startswith("<svg") and "short-push-pull" in svg and "summary" in svg


def test_s_saves_an_svg_of_the_screen_into_the_results_directory(tmp_path: Path) -> None:
    (tmp_path / "events.jsonl").write_text(RECORDED.read_text())

    async def drive() -> None:
        app = LabApp(replay=tmp_path / "events.jsonl", at=10.0, playing=False)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            await pilot.press("s")
            await pilot.pause()

    asyncio.run(drive())
    assert [p.name for p in tmp_path.glob("*.svg")] == ["run-screen-010.0s.svg"]


def test_cli_tui_takes_several_scenarios_and_replay_starts_at_a_time(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from mlopslab import cli
    from mlopslab.tui import app

    calls: list[tuple[str, dict]] = []
    monkeypatch.setattr(app, "run_app", lambda **kw: calls.append(("tui", kw)) or 0)
    monkeypatch.setattr(app, "run_replay", lambda events, **kw: calls.append(("replay", {"events": events, **kw})) or 0)
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    for path in (a, b):   # files that exist (a name that is neither a file nor shipped gets "did you mean")
        path.write_text("name: x\n")
    assert cli.main(["tui", str(a), str(b)]) == 0
    assert cli.main(["tui", str(a)]) == 0
    (tmp_path / "events.jsonl").write_text(RECORDED.read_text())
    assert cli.main(["replay", str(tmp_path), "--at", "12.5"]) == 0
    assert calls[0] == ("tui", {"files": [a, b]})
    assert calls[1] == ("tui", {"scenario": str(a)})
    assert calls[2] == ("replay", {"events": tmp_path / "events.jsonl", "speed": 10.0, "at": 12.5})


def test_summary_widget_and_markdown_table_share_one_row_builder() -> None:
    from mlopslab import report
    from mlopslab.tui.replay import Playback

    playback = Playback.load(RECORDED)
    playback.seek(playback.last)
    summary = report.summarise(playback.state)
    header, body = report.rows(summary)
    table = report.table(summary).splitlines()
    assert len(table) == len(body) + 2 and "**live changes**" in table[2 + body.index(["live changes", "", ""])]
    assert "ML loop" not in report.table(summary)       # no retrains in this run: no ML loop block
    assert summary.ml_loop["push"].retrains == [] and summary.ml_loop["push"].accuracy_final is not None
