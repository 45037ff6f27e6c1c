"""Repeated trials in the TUI: the distributions per grid point, lane and phase; enter replays one run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, OptionList, Static
from textual.widgets.option_list import Option

COLUMNS = ("point", "lane", "phase", "n", "median", "IQR", "95 % interval", "predicted")


def rows(summary: dict[str, Any]) -> list[tuple[str, ...]]:
    """One row per grid point, lane and phase, as the table shows it."""
    out = []
    for point in summary["points"]:
        params = ", ".join(f"{p.rsplit('.', 1)[-1]}={v}" for p, v in point["params"].items()) or "as written"
        for lane, phases in point["lanes"].items():
            for phase, s in phases.items():
                out.append((params, lane, phase, str(s["n"]), f"{s['median']:.3f}",
                            f"{s['iqr'][0]:.3f}–{s['iqr'][1]:.3f}", f"{s['ci95'][0]:.3f}–{s['ci95'][1]:.3f}",
                            "" if s.get("prediction") is None else f"{s['prediction']:g}"))
    return out


class TrialsScreen(Screen):
    BINDINGS = [Binding("enter", "replay", "replay run", tooltip="replay the highlighted run", priority=False)]

    def __init__(self, parent: Path, summary: dict[str, Any]) -> None:
        super().__init__()
        self.parent_dir, self.summary = parent, summary
        self.runs = [run for point in summary["points"] for run in point["runs"]]

    def compose(self) -> ComposeResult:
        sc = self.summary["scenario"]
        points = len(self.summary["points"])
        yield Static(f" {sc['name']}: {points} point(s) × {self.summary['repeat']} run(s) — {self.parent_dir}  "
                     "(seconds; enter replays the highlighted run)", id="title")
        with Horizontal(id="trials"):
            yield DataTable(id="distributions", zebra_stripes=True, cursor_type="row")
            yield OptionList(*[Option(run, id=run) for run in self.runs], id="runs")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.border_title = "per lane and phase: median, IQR, 95 % interval of the median"
        table.add_columns(*COLUMNS)
        table.add_rows(rows(self.summary))
        runs = self.query_one(OptionList)
        runs.border_title = "runs"
        runs.focus()

    @on(OptionList.OptionSelected, "#runs")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        self.replay(self.runs[event.option_index])

    def action_replay(self) -> None:
        index = self.query_one(OptionList).highlighted
        if index is not None:
            self.replay(self.runs[index])

    def replay(self, run: str) -> None:
        events = self.parent_dir / run / "events.jsonl"
        if not events.exists():
            self.notify(f"{run} has no events.jsonl (did it start?)", severity="error")
            return
        self.app.open_replay(events)
