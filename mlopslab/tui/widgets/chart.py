"""One small plot widget over plotext ≥ 6: build with plotext's API, draw its ANSI through Textual's line API.

A chart is given a `key` (what the data is) and a `paint(figure)` function; it rebuilds only when the
key or its size changes, so a 10 Hz snapshot timer costs nothing while the data stands still. With no
data it says so, in words, instead of drawing empty axes. plotext's rows become Textual strips directly
(`render_line`), without a rich Text in between: that conversion cost about as much as the plot itself,
on the CPU the lab measures latency with.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable
from functools import lru_cache
from typing import Any

import plotext as plt
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

from mlopslab.tui.palette import rgb

THEME = "mlopslab"
plt.add_theme(THEME, text=(150, 150, 150), grid=(70, 70, 70))

Painter = Callable[[Any], None]
BOLD = Style(bold=True)


class Chart(Widget):
    """A plotext figure sized to the widget. `plot(key, paint)` to show data, `empty(message)` when none."""

    DEFAULT_CSS = """
    Chart { height: 1fr; min-height: 5; }
    """

    def __init__(self, title: str = "", *, name: str | None = None, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.title = title
        self.legend: list[tuple[str, str]] = []   # (label, colour) shown after the title
        self._key: Hashable = None
        self._paint: Painter | None = None
        self._message = "waiting for data"
        self._strips: tuple[Hashable, list[Strip]] | None = None   # (what they show, the rows drawn)
        self._pass: list[Strip] | None = None
        self.builds = 0

    def plot(self, key: Hashable, paint: Painter, legend: list[tuple[str, str]] | None = None) -> None:
        if key != self._key or self._paint is None:
            self._key, self._paint = key, paint
            self.legend = legend or []
            self.refresh()

    def empty(self, message: str) -> None:
        if self._paint is not None or message != self._message:
            self._paint, self._key, self._message = None, ("empty", message), message
            self.refresh()

    @property
    def has_data(self) -> bool:
        return self._paint is not None

    def drop_cache(self) -> None:
        """Forget the built figure (the benchmark times a rebuild from scratch)."""
        self._strips = None

    def render(self) -> Text:
        """Exactly what `render_line` draws, as a rich Text (for tests, and anything that wants text)."""
        text = Text(no_wrap=True, end="")
        for i, line in enumerate(self.lines()):
            if i:
                text.append("\n")
            for segment in line:
                text.append(segment.text, segment.style)
        return text

    def render_lines(self, crop: Region) -> list[Strip]:
        self._pass = self.lines()  # once per pass, not once per row
        try:
            return super().render_lines(crop)
        finally:
            self._pass = None

    def render_line(self, y: int) -> Strip:
        lines = self._pass if self._pass is not None else self.lines()
        return lines[y] if y < len(lines) else Strip.blank(self.content_size.width, self.rich_style)

    def lines(self) -> list[Strip]:
        """The chart's rows as strips in the widget's style, built once per data key, size and style."""
        width, height = self.content_size.width, self.content_size.height
        base = self.rich_style
        key = (self._key, self._message, width, height, base, self.title, tuple(self.legend))
        if self._strips is not None and self._strips[0] == key:
            return self._strips[1]
        words = self._words(width, height)
        if words is not None:
            lines = [line.apply_style(base) for line in self._text_lines(words, width)]
        else:
            lines = [line.apply_style(base) for line in self._text_lines(self.heading(width), width)]
            marks = base + BOLD  # plotext leaves text (the mark glyphs) unstyled: bold, like the title
            lines += [Strip(row).adjust_cell_length(width).apply_style(marks)
                      for row in ansi_rows(self.build(width, height))]
        lines = lines[:height]
        self._strips = (key, lines)
        return lines

    def _words(self, width: int, height: int) -> Text | None:
        """The heading and a sentence instead of a plot: no data yet, or too little room."""
        if self._paint is None:
            return Text.assemble(self.heading(width), "\n", (self._message, "italic #8a8a8a"))
        if width < 12 or height < 4:
            return Text.assemble(self.heading(width), "\n", ("too small to plot here", "italic #8a8a8a"))
        return None

    def _text_lines(self, text: Text, width: int) -> list[Strip]:
        console = self.app.console
        return [Strip(line, width) for line in console.render_lines(text, console.options.update_width(width),
                                                                    pad=True)]

    def heading(self, width: int) -> Text:
        """The title and legend on one line, cut to the width (the help screen explains every mark)."""
        text = Text(self.title, style="bold")
        for label, color in self.legend:
            text.append("  ")
            if len(label) > 1 and label[1] == " ":  # a mark: its glyph in its colour, then the words
                text.append(label[0], style=f"bold {color}")
                text.append(label[1:], style="#b0b0b0")
            else:
                text.append("━ ", style=color)
                text.append(label, style="#b0b0b0")
        text.truncate(max(width, 1), overflow="ellipsis")
        return text

    def build(self, width: int, height: int) -> str:
        """plotext's ANSI for the plot area (all but the heading row), built now on the UI thread (its figure is one global)."""
        assert self._paint is not None
        fig = plt.figure
        fig.clear()
        fig.theme(THEME)
        fig.plot_size(width, height - 1)
        fig.legend(False)
        self._paint(fig)
        self.builds += 1
        return fig.build().string()


SGR = re.compile(r"\x1b\[([0-9;]*)m")


def ansi_rows(ansi: str) -> list[list[Segment]]:
    """plotext's ANSI as one list of segments per row, foreground and bold only (the terminal's background
    stays). plotext writes a reset before every run of cells, so the codes since the last reset are the style."""
    rows: list[list[Segment]] = [[]]
    codes: tuple[str, ...] = ()
    for i, piece in enumerate(SGR.split(ansi)):
        if i % 2:
            codes = () if piece in ("0", "") else codes + (piece,)
            continue
        style = _style(codes)
        first, *rest = piece.split("\n")
        if first:
            rows[-1].append(Segment(first, style))
        for part in rest:
            rows.append([Segment(part, style)] if part else [])
    return rows


@lru_cache(maxsize=512)
def _style(codes: tuple[str, ...]) -> Style | None:
    color: str | None = None
    bold = False
    for code in codes:
        parts = code.split(";")
        while parts:
            head = parts.pop(0)
            if head == "1":
                bold = True
            elif head in ("38", "48") and parts:
                mode = parts.pop(0)
                value = (f"rgb({parts[0]},{parts[1]},{parts[2]})" if mode == "2" and len(parts) >= 3
                         else f"color({parts[0]})" if parts else None)
                del parts[:3 if mode == "2" else 1]
                if head == "38":
                    color = value
            elif head.isdigit() and (30 <= int(head) <= 37 or 90 <= int(head) <= 97):
                color = f"color({int(head) - 30 if int(head) < 90 else int(head) - 82})"
    if color is None and not bold:
        return None
    return Style(color=color, bold=bold)


def vline(fig: Any, x: float, color: str) -> None:
    fig.line(x, "vertical", pixel=plt.pixel(foreground=rgb(color)))


def line(fig: Any, xs: list[float], ys: list[float], color: str, label: str | None = None) -> None:
    """A connected series in one colour (hd markers: two points per cell each way)."""
    signal = fig.signal(xs, ys, marker=plt.marker("hd", pixel=plt.pixel(foreground=rgb(color))))
    signal.lines()
    if label:
        signal.label(label)
    fig.draw(signal)


def thin(points: list[Any], limit: int) -> list[Any]:
    """At most `limit` points, evenly picked, first and last kept: more cannot be drawn anyway."""
    if len(points) <= limit or limit < 2:
        return points
    step = (len(points) - 1) / (limit - 1)
    return [points[round(i * step)] for i in range(limit)]
