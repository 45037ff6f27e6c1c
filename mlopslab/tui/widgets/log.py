"""The event log: every event but the per-second metrics, newest at the bottom, scrollable."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import RichLog

from mlopslab.tui.palette import SYNC_COLORS

KIND_STYLES = {"commit": "bold #e0e0e0", "detected": "#ffd75f", "rollout_done": "#4fd6d6", "traffic_100": "#6fd36f",
               "live_change": "bold #ffb347", "live_reverted": "bold #6fd36f", "replica_killed": "bold #ff7a7a",
               "error": "bold #ff6b6b", "rollout_failed": "bold #ff6b6b", "drift_injected": "#ffb347",
               "drift_alarm": "bold #ff6b6b", "narration": "italic #b0b0b0", "model_registered": "#d98cff"}

Entry = tuple[float, str, "str | None", str]


def line(entry: Entry) -> Text:
    t, kind, lane, detail = entry
    text = Text(f"{t:7.1f}s ", style="#8a8a8a")
    text.append(f"{(lane or 'lab'):8.8} ", style="bold" if lane else "#8a8a8a")
    text.append(f"{kind:16} ", style=KIND_STYLES.get(kind, SYNC_COLORS["Unknown"]))
    text.append(detail, style="#c8c8c8")
    return text


class EventLog(RichLog):
    """`show(entries)` appends what is new; if the entries went back in time (a replay seek), it redraws."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(max_lines=1000, wrap=False, markup=False, auto_scroll=True, **kwargs)  # type: ignore[arg-type]
        self._shown: list[Entry] = []

    def show(self, entries: tuple[Entry, ...]) -> None:
        if not entries and not self._shown:
            return
        last = self._shown[-1] if self._shown else None
        start = 0
        if last is not None:
            try:
                start = len(entries) - 1 - entries[::-1].index(last) + 1
            except ValueError:
                start = -1
        if start < 0 or (last is not None and start == 0):
            self.clear()
            self._shown = []
            start = 0
        new = entries[start:]
        for entry in new:
            self.write(line(entry))
        self._shown.extend(new)
        del self._shown[:-1000]
