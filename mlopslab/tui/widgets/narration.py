"""The narration panel: the scenario's teaching lines, each shown at its time, the newest on top in bold."""

from __future__ import annotations

from rich.text import Text

from mlopslab.tui.widgets.text import TextStatic


def narration(lines: tuple[tuple[float, str], ...], errors: tuple[str, ...] = ()) -> Text:
    text = Text()
    if not lines:
        text.append("The scenario's narration appears here as the run reaches each line.", style="italic #8a8a8a")
    for error in errors[-2:]:
        text.append(f"error: {error}\n", style="bold #ff6b6b")
    for i, (t, line) in enumerate(reversed(lines[-6:])):  # newest first: it must never be the one cut off
        if i:
            text.append("\n")
        text.append(f"{t:4.0f}s ", style="#8a8a8a")
        text.append(line, style="bold" if i == 0 else "#8a8a8a")
    return text


class Narration(TextStatic):
    """`show(lines, errors)`; errors first, then the lines, newest first."""

    def show(self, lines: tuple[tuple[float, str], ...], errors: tuple[str, ...] = ()) -> None:
        self.show_text(narration(lines, errors))
