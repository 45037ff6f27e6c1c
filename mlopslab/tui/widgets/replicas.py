"""The replica strip: one cell per replica, coloured by its model version, solid when ready."""

from __future__ import annotations

from rich.text import Text

from mlopslab.tui.palette import version_color
from mlopslab.tui.view import LaneView
from mlopslab.tui.widgets.text import TextStatic


def strip(lane: LaneView) -> Text:
    """`replicas 2/2 ready  v2 v2 v1×`: ready and starting replicas count; a draining one (out of the
    endpoints, stopping) is shown struck out and not counted."""
    serving = [r for r in lane.replicas if r[2] != "terminating"]
    ready = sum(1 for _, _, state in serving if state == "ready")
    want = lane.desired_replicas
    text = Text("replicas ", style="#b0b0b0")
    text.append(f"{ready}/{len(serving)} ready", style="bold" if ready else "#ff6b6b")
    if want is not None and want != len(serving):
        text.append(f" (desired {want})", style="#ffb347")
    text.append("  ")
    for name, version, state in lane.replicas:
        color = version_color(version)
        if state == "ready":
            text.append(f" v{version} ", style=f"bold #101010 on {color}")
        elif state == "terminating":
            text.append(f" v{version}×", style=f"strike {color} on #303030")
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
