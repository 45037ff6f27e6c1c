"""The run screen's status bar: scenario, environment, where the source is (its own words), traffic, results."""

from __future__ import annotations

from rich.text import Text

from mlopslab.tui.sources import Source
from mlopslab.tui.view import RunView
from mlopslab.tui.widgets.text import TextStatic


class StatusBar(TextStatic):
    def show(self, source: Source, view: RunView) -> None:
        self.show_text(status(source, view))


def status(source: Source, view: RunView) -> Text:
    text = Text()
    text.append(" mlopslab ", style="bold #101010 on #5aa9ff")
    text.append(f" {source.title}", style="bold")
    env = view.scenario.get("environment")
    if env:
        text.append(f" · {env}", style="#b0b0b0")
    for piece, style in source.progress(view):
        text.append(piece, style=style)
    if view.started and not view.finished:
        text.append("  traffic ", style="#b0b0b0")
        text.append("paused" if view.paused else "flowing", style="bold #ffb347" if view.paused else "#6fd36f")
    if view.finished:
        text.append(f"  finished: {view.finished.get('status')}", style="bold")
    text.append(f"  {source.results_dir.name}", style="#6a6a6a")
    return text
