"""A Static that redraws only when its text changes, and asks for a new layout only when its height would.

`Static.update` lays out the whole screen by default: at 160×48 that costs about 17 ms of the UI thread,
on the machine that measures the lanes. The run screen updates a lane's header and replica strip once a
second; their size almost never changes, so almost none of those updates needs a layout.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class TextStatic(Static):
    """`show_text(text)`: nothing happens if the text is unchanged; a layout only if the height changes."""

    _shown: Text | None = None

    def show_text(self, text: Text) -> None:
        if self._shown is not None and text == self._shown and text.style == self._shown.style:
            return
        self._shown = text
        height = self.styles.height
        if height is None or not height.is_auto or not self.size.width:
            # Fixed height: no layout. Not laid out yet: lay it out, unless it is hidden (a lane in another
            # tab), which gets its layout when it is shown.
            hidden = any(not node.display for node in self.ancestors_with_self)
            self.update(text, layout=not self.size.width and not hidden)
            return
        before = self.content_size.height
        self.update(text, layout=False)
        width = self.content_size.width
        if self.get_content_height(self.content_size, self.app.size, width) != before:
            self.refresh(layout=True)
