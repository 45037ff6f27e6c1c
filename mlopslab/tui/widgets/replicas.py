"""The replica strip: one cell per replica, coloured by its model version, solid when ready."""

from __future__ import annotations

from rich.text import Text

from mlopslab.tui.palette import version_color
from mlopslab.tui.view import LaneView
from mlopslab.tui.widgets.text import TextStatic


def strip(lane: LaneView) -> Text:
    ready = sum(1 for _, _, state in lane.replicas if state == "ready")
    want = lane.desired_replicas
    text = Text("replicas ", style="#b0b0b0")
    text.append(f"{ready}/{len(lane.replicas)} ready", style="bold" if ready else "#ff6b6b")
    if want is not None and want != len(lane.replicas):
        text.append(f" (desired {want})", style="#ffb347")
    text.append("  ")
    for name, version, state in lane.replicas:
        color = version_color(version)
        if state == "ready":
            text.append(f" v{version} ", style=f"bold #101010 on {color}")
        else:
            text.append(f" v{version}…", style=f"{color} on #303030")
        text.append(" ")
    if not lane.replicas:
        text.append("none running", style="italic #8a8a8a")
    return text


class ReplicaStrip(TextStatic):
    """`show(lane)`; ready replicas are filled with their version's colour, starting ones are dim."""

    DEFAULT_CSS = "ReplicaStrip { height: auto; }"

    def show(self, lane: LaneView) -> None:
        self.show_text(strip(lane))
