"""One lane's column: header (delivery, environment, HEAD vs live, sync), replicas and its three plots."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from mlopslab.tui.palette import MARK_STYLES, SYNC_COLORS, version_color
from mlopslab.tui.view import LaneView, RunView, series_key
from mlopslab.tui.widgets.chart import Chart, line, thin, vline
from mlopslab.tui.widgets.replicas import ReplicaStrip

LATENCY = (("p50", "#8fd3ff"), ("p95", "#ffd75f"), ("p99", "#ff7a7a"))
WINDOW = 300.0  # seconds of history on the time axis once a run is longer than this


def header(lane: LaneView, run: RunView) -> Text:
    env = run.scenario.get("environment", "?")
    sync_color = SYNC_COLORS.get(lane.sync, SYNC_COLORS["Unknown"])
    text = Text()
    text.append(lane.name, style="bold")
    text.append(f"  {lane.delivery} · {env}  ", style="#b0b0b0")
    text.append(f"● {lane.sync}", style=f"bold {sync_color}")
    text.append("\nrepo HEAD ", style="#b0b0b0")
    text.append(_revision(lane.head, lane.head_version))
    text.append("  live ", style="#b0b0b0")
    text.append(_revision(lane.live_revision, lane.live_version))
    text.append(f"\n{how(lane)}", style="#8a8a8a")
    text.append(f"  req {lane.requests} err {lane.errors}", style="#8a8a8a" if not lane.errors else "#ff6b6b")
    if lane.changes:
        text.append(f"  live changes {lane.changes}, reverted {lane.reverted}", style="#ffb347")
    return text


def _revision(sha: str | None, version: str | None) -> Text:
    if sha is None:
        return Text("—", style="#8a8a8a")
    return Text.assemble((sha[:7], "bold"), " ", (f"v{version}" if version else "", version_color(version)))


def how(lane: LaneView) -> str:
    s = lane.settings
    if lane.delivery == "push":
        return "CI runner, triggered by the commit"
    wake = "webhook + poll" if s.get("webhook") else "polls"
    heal = "self-heals" if s.get("self_heal", True) else "no self-heal"
    return f"agent {wake} {s.get('poll_interval', '?'):g}s ±{s.get('poll_jitter', 0):g}s, {heal}"


def span(run: RunView) -> tuple[float, float]:
    end = max(run.now, run.duration, 10.0)
    return (max(0.0, end - WINDOW) if end > WINDOW else 0.0, end)


class LanePanel(VerticalScroll, can_focus=True):
    """`show(lane, run)` updates everything in the column from one snapshot."""

    def __init__(self, lane: str) -> None:
        super().__init__(id=f"lane-{lane}", classes="lane")
        self.lane = lane
        self.border_title = lane

    def compose(self) -> ComposeResult:
        yield Static(classes="lane-header")
        yield ReplicaStrip(classes="replicas")
        yield Chart("latency ms", classes="latency")
        yield Chart("rollout: share per version", classes="rollout")
        yield Chart("drift", classes="drift")

    def show(self, lane: LaneView, run: RunView) -> None:
        self.border_title = f"{lane.name} ({lane.delivery})"
        self.query_one(".lane-header", Static).update(header(lane, run))
        self.query_one(ReplicaStrip).show(lane)
        x0, x1 = span(run)
        show_latency(self.query_one(".latency", Chart), lane, (x0, x1))
        show_rollout(self.query_one(".rollout", Chart), lane, (x0, x1))
        drift = self.query_one(".drift", Chart)
        show_drift(drift, lane, run, (x0, x1))
        drift.set_class(not drift.has_data, "-empty")


def _visible(series: tuple[Any, ...], x0: float) -> list[Any]:
    return thin([p for p in series if p[0] >= x0], 400)


def _marks(fig: Any, lane: LaneView, x0: float, x1: float, top: float | None = None) -> None:
    for t, phase, _ in lane.marks:
        if x0 <= t <= x1 and phase in MARK_STYLES:
            glyph, color = MARK_STYLES[phase]
            vline(fig, t, color)
            if top is not None:
                fig.draw(fig.text(t, top, glyph))


def show_latency(chart: Chart, lane: LaneView, xs: tuple[float, float]) -> None:
    if not lane.latency:
        chart.empty("no requests measured yet")
        return
    points = _visible(lane.latency, xs[0])

    def paint(fig: Any) -> None:
        x = [p[0] for p in points]
        for i, (label, color) in enumerate(LATENCY, start=1):
            line(fig, x, [p[i] for p in points], color)
        fig.ruler("x").lim(*xs)
        fig.ruler("y").lim(0, None)

    chart.plot((series_key(lane.latency), xs), paint, list(LATENCY))


def show_rollout(chart: Chart, lane: LaneView, xs: tuple[float, float]) -> None:
    if not lane.shares:
        chart.empty("no traffic yet: the share per version shows once requests flow")
        return
    points = _visible(lane.shares, xs[0])
    versions = sorted({v for _, shares in points for v in shares}, key=lambda v: (len(v), v))
    legend = [(f"v{v}", version_color(v)) for v in versions]
    legend += [(f"{glyph} {'done' if phase == '100%' else phase}", color) for phase, (glyph, color)
               in MARK_STYLES.items() if phase != "alarm"]

    def paint(fig: Any) -> None:
        x = [p[0] for p in points]
        for version in versions:
            line(fig, x, [shares.get(version, 0.0) for _, shares in points], version_color(version))
        _marks(fig, lane, *xs, top=1.12)
        fig.ruler("x").lim(*xs)
        fig.ruler("y").lim(0, 1.2)
        fig.ruler("y").ticks([0, 0.5, 1], ["0", "½", "1"])

    chart.plot((series_key(lane.shares), len(lane.marks), xs), paint, legend)


def show_drift(chart: Chart, lane: LaneView, run: RunView, xs: tuple[float, float]) -> None:
    if not lane.drift:
        injected = [d for d in run.drifts if d.get("rel", 0) >= 0]
        if injected:
            d = injected[-1]
            chart.empty(f"no drift measured yet (drift injected at {d['rel']:.0f} s: {d.get('drift') or d.get('kind')}, "
                        f"size {d.get('size')})")
        else:
            chart.empty("no drift measured yet")
        return
    points = _visible(lane.drift, xs[0])
    alarms = [a["rel"] for a in run.alarms if a.get("lane") in (None, lane.name)]
    injected = [d["rel"] for d in run.drifts]

    def paint(fig: Any) -> None:
        line(fig, [p[0] for p in points], [p[1] for p in points], "#d98cff")
        for t in injected:
            vline(fig, t, "#ffb347")
        for t in alarms:
            vline(fig, t, MARK_STYLES["alarm"][1])
        fig.ruler("x").lim(*xs)
        fig.ruler("y").lim(0, None)

    chart.plot((series_key(lane.drift), len(alarms), len(injected), xs), paint,
               [("score", "#d98cff"), ("injected", "#ffb347"), ("alarm", MARK_STYLES["alarm"][1])])
