"""The narration panel: the scenario's teaching lines, each shown at its time, oldest first like the event
log, the newest in bold at the bottom; when they do not all fit, the oldest give way, never the newest."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from mlopslab.tui.widgets.text import TextStatic

PLACEHOLDER = "The scenario's narration appears here as the run reaches each line."


def narration(lines: tuple[tuple[float, str], ...], errors: tuple[str, ...] = (), start: int = 0) -> Text:
    """Lines from `start` on (oldest first), then the run's last errors, each on lines of its own."""
    text = Text()
    if not lines and not errors:
        text.append(PLACEHOLDER, style="italic #8a8a8a")
    shown = lines[start:]
    for i, (t, line) in enumerate(shown):
        if i:
            text.append("\n")
        text.append(f"{t:4.0f}s ", style="#8a8a8a")
        text.append(line, style="bold" if i == len(shown) - 1 else "#b0b0b0")
    for error in errors[-2:]:
        text.append("\n" if text else "")
        text.append(f"error: {error.removeprefix('message=')}", style="bold #ff6b6b")
    return text


def fitting(lines: tuple[tuple[float, str], ...], errors: tuple[str, ...], console: Console, width: int,
            height: int) -> Text:
    """The narration from the oldest line that still lets the newest (and any error) fit in `height` rows."""
    options = console.options.update_width(max(width, 1))
    for start in range(len(lines) + 1):
        text = narration(lines, errors, start)
        if start == len(lines) or len(console.render_lines(text, options, pad=False)) <= height:
            return text
    return narration(lines, errors)


class Narration(TextStatic):
    """`show(lines, errors)`: as many of the newest lines as fit, oldest first; errors below them."""

    _fitted: tuple[object, ...] = ()

    def show(self, lines: tuple[tuple[float, str], ...], errors: tuple[str, ...] = ()) -> None:
        size = self.content_size
        key = (lines[-12:], errors[-2:], size)
        if key == self._fitted:   # most ticks bring other events: nothing to fit again
            return
        self._fitted = key
        if not size.width or not size.height:
            self.show_text(narration(lines[-6:], errors))
            return
        self.show_text(fitting(lines[-12:], errors, self.app.console, size.width, size.height))
