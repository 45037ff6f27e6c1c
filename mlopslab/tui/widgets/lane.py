"""One lane's column: header (delivery, environment, HEAD vs live, sync, MLOps level), replicas and its
plots: latency, rollout timeline, and the ML loop — delayed-label accuracy next to the drift score."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll

from mlopslab.tui.palette import MARK_STYLES, SYNC_COLORS, version_color
from mlopslab.tui.view import LaneView, RunView, series_key
from mlopslab.tui.widgets.chart import Chart, line, thin, vline
from mlopslab.tui.widgets import strategy
from mlopslab.tui.widgets.replicas import ReplicaStrip
from mlopslab.tui.widgets.text import TextStatic

LATENCY = (("p50", "#8fd3ff"), ("p95", "#ffd75f"), ("p99", "#ff7a7a"))
ACCURACY_COLOR, DRIFT_COLOR, INJECTED_COLOR = "#6fd3a0", "#d98cff", "#ffb347"
WINDOW = 300.0  # seconds of history on the time axis once a run is longer than this
RETRAINING = {"started": "retrain: awaiting labels", "trained": "retrain: validating",
              "validated": "retrain: registering", "registered": "retrain: committing",
              "committed": "retrain: delivering", "delivered": "retrain: finishing"}
ROLLOUT_MARKS = ("commit", "detected", "applied", "100%", "alarm", "retrain", "retrain_validated", "retrain_failed")
ACCURACY_MARKS = ("alarm", "retrain", "retrain_failed")


def header(lane: LaneView, run: RunView, width: int = 0) -> Text:
    """Lines that fit a third of 120 columns (the border title names the lane, the status bar the environment):
    sync state and traffic; the lane's commit desired vs live; how it delivers; manual changes; MLOps level;
    a strategy's phase and gates (side by side as they fit in `width`)."""
    sync_color = SYNC_COLORS.get(lane.sync, SYNC_COLORS["Unknown"])
    text = Text()
    text.append(f"● {lane.sync}", style=f"bold {sync_color}")
    text.append(f"  req {lane.requests} err {lane.errors}", style="#8a8a8a" if not lane.errors else "#ff6b6b")
    text.append("\ndesired ", style="#b0b0b0")
    text.append(_revision(lane.head, lane.head_version))
    text.append("  live ", style="#b0b0b0")
    text.append(_revision(lane.live_revision, lane.live_version))
    text.append(f"\n{how(lane)}", style="#8a8a8a")
    if lane.changes:
        text.append(f"\nlive changes {lane.changes}, reverted {lane.reverted}", style="#ffb347")
    if lane.generator_bound:  # the generator fell behind its schedule: those seconds measured it too
        text.append(f"\ngenerator-bound {lane.generator_bound} s", style="bold #ff6b6b")
    if run.levels:
        text.append("\n")
        text.append_text(level(lane))
    if strategy.has_strategy(lane):   # its phase and the gate panel: each gate's value against its threshold
        text.append("\n")
        text.append_text(strategy.panel(lane, width))
    return text


LEVEL_WORDS = {0: "by hand", 1: "on alarm", 2: "on alarm + CI"}   # when the lane retrains (fits 36 columns)


def level(lane: LaneView) -> Text:
    """`L1 on alarm · pipeline builtin`, or the step of the retrain under way (`L1 ⟳ retrain: validating`)."""
    text = Text()
    text.append(f"L{lane.level or 0} ", style="bold #e6d65a")
    if lane.retraining:
        text.append(f"⟳ {RETRAINING.get(lane.retraining, lane.retraining)}", style="bold #e6d65a")
        return text
    text.append(LEVEL_WORDS.get(lane.level or 0, ""), style="#8a8a8a")
    text.append(" · pipeline ", style="#b0b0b0")
    text.append(lane.pipeline_version, style="bold")
    return text


def _revision(sha: str | None, version: str | None) -> Text:
    if sha is None:
        return Text("—", style="#8a8a8a")
    return Text.assemble((sha[:7], "bold"), " ", (f"v{version}" if version else "", version_color(version)))


def how(lane: LaneView) -> str:
    """How the lane learns of a commit. A pull agent fetches the repo every interval to interval + jitter
    seconds (or when a webhook wakes it) but watches live state all the time, so it heals within a second."""
    s = lane.settings
    if lane.delivery == "push":
        return "CI runner, triggered by the commit"
    if lane.delivery == "flux":   # Flux re-applies at its interval: drift lasts up to one interval
        interval = s.get("poll_interval") or 0.0
        return f"Flux polls repo {interval:g}s ±5%, heals every {interval:g}s"
    return f"{'webhook+poll' if s.get('webhook') else 'polls repo'} {poll_range(s)}" + (
        ", heals live" if s.get("self_heal", True) else ", no self-heal")


def poll_range(settings: dict[str, Any]) -> str:
    """`8–12s`: an agent waits the interval plus up to the jitter between two fetches of the repo."""
    interval, jitter = settings.get("poll_interval") or 0.0, settings.get("poll_jitter") or 0.0
    return f"{interval:g}–{interval + jitter:g}s" if jitter else f"{interval:g}s"


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
        yield TextStatic(classes="lane-header")
        yield ReplicaStrip(classes="replicas")
        with Vertical(classes="plots"):   # not scrolled: its plots share the height the column has
            yield Chart("weight %", classes="weights")   # a strategy's lane: instead of the share plot
            yield Chart("rollout: share per version", classes="rollout")
            yield Chart("latency ms", classes="latency")
            with Horizontal(classes="ml"):
                yield Chart("accuracy", classes="accuracy")
                yield Chart("drift", classes="drift")

    def show(self, lane: LaneView, run: RunView, plots: bool = True) -> None:
        """Header and replicas from the snapshot; the plots too unless `plots` is False."""
        title = f"{lane.name} ({lane.delivery}{f' · L{lane.level}' if run.levels else ''})"
        if title != self.border_title:  # setting a title repaints the whole column, every chart in it
            self.border_title = title
        width = self.content_size.width or self.screen.size.width - 2   # hidden behind a tab: about the screen's
        self.query_one(".lane-header", TextStatic).show_text(header(lane, run, width))
        self.query_one(ReplicaStrip).show(lane)
        if not plots:
            return
        x0, x1 = span(run)
        show_latency(self.query_one(".latency", Chart), lane, (x0, x1))
        show_rollout(self.query_one(".rollout", Chart), lane, (x0, x1))
        weights = self.query_one(".weights", Chart)
        weights.set_class(strategy.has_strategy(lane), "-on")
        self.set_class(strategy.has_strategy(lane), "-strategy")
        if strategy.has_strategy(lane):
            strategy.show_weights(weights, lane, (x0, x1))
        accuracy, drift = self.query_one(".accuracy", Chart), self.query_one(".drift", Chart)
        show_accuracy(accuracy, lane, run, (x0, x1))
        show_drift(drift, lane, run, (x0, x1))
        for chart in (accuracy, drift):
            chart.set_class(not chart.has_data, "-empty")
        self.query_one(".ml").set_class(not accuracy.has_data and not drift.has_data, "-empty")


STEPS = (1, 2, 5, 10, 15, 20, 30, 60, 120, 300)   # seconds between time-axis ticks


def time_axis(fig: Any, xs: tuple[float, float], width: int = 80) -> None:
    """The time axis from xs[0] to xs[1], ticked at whole multiples of a round step (0 10 20 … 60): plotext's
    own ticks split the span evenly, so they land on 20.1, 30.1 and lose one to rounding as the span grows."""
    fig.ruler("x").lim(*xs)
    most = max(3, min(7, (width - 6) // 5))   # labels need about 5 cells each beside the y labels' 6
    step = next((s for s in STEPS if (xs[1] - xs[0]) / s <= most), STEPS[-1])
    first = -(-xs[0] // step) * step
    ticks = [first + i * step for i in range(int((xs[1] - first) // step) + 1)]
    fig.ruler("x").ticks(ticks, [f"{tick:g}" for tick in ticks])


def _visible(series: tuple[Any, ...], x0: float) -> list[Any]:
    return thin([p for p in series if p[0] >= x0], 400)


def draw_marks(fig: Any, marks: list[tuple[float, str, str]], top: float, cell: float) -> None:
    """A coloured line per mark, and its glyph above; glyphs that would fall in one cell (`cell` seconds
    wide) are written side by side (`!R`: an alarm and the retrain it started)."""
    groups: list[tuple[float, str]] = []
    for t, phase, _ in sorted(marks, key=lambda mark: mark[0]):
        glyph, color = MARK_STYLES[phase]
        vline(fig, t, color)
        if groups and t - groups[-1][0] < cell * len(groups[-1][1]):
            if glyph not in groups[-1][1]:
                groups[-1] = (groups[-1][0], groups[-1][1] + glyph)
        else:
            groups.append((t, glyph))
    for t, glyphs in groups:
        fig.draw(fig.text(t, top, glyphs, alignment="left"))


def cell(chart: Chart, xs: tuple[float, float]) -> float:
    """Seconds per character cell of the chart's plot area (its y labels take about 6 cells)."""
    return (xs[1] - xs[0]) / max(10, chart.content_size.width - 6)


def shown_marks(lane: LaneView, xs: tuple[float, float], phases: tuple[str, ...]) -> list[tuple[float, str, str]]:
    return [m for m in lane.marks if xs[0] <= m[0] <= xs[1] and m[1] in phases]


def mark_legend(marks: list[tuple[float, str, str]], words: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """Only the marks that are on the plot, in a fixed order: `(glyph words, colour)`."""
    present = {phase for _, phase, _ in marks}
    words = {"100%": "done", "retrain_validated": "validated", "retrain_failed": "failed", **(words or {})}
    return [(f"{glyph} {words.get(phase, phase)}", color) for phase, (glyph, color) in MARK_STYLES.items()
            if phase in present]


def show_latency(chart: Chart, lane: LaneView, xs: tuple[float, float]) -> None:
    if not lane.latency:
        chart.empty("no requests measured yet")
        return
    points = _visible(lane.latency, xs[0])

    def paint(fig: Any) -> None:
        x = [p[0] for p in points]
        for i, (label, color) in enumerate(LATENCY, start=1):
            line(fig, x, [p[i] for p in points], color)
        time_axis(fig, xs, chart.content_size.width)
        fig.ruler("y").lim(0, None)

    chart.plot((series_key(lane.latency), xs), paint, list(LATENCY))


def show_rollout(chart: Chart, lane: LaneView, xs: tuple[float, float]) -> None:
    if not lane.shares:
        chart.empty("no traffic yet: the share per version shows once requests flow")
        return
    points = _visible(lane.shares, xs[0])
    versions = sorted({v for _, shares in points for v in shares}, key=lambda v: (len(v), v))
    marks = shown_marks(lane, xs, ROLLOUT_MARKS)
    legend = [(f"v{v}", version_color(v)) for v in versions] + mark_legend(marks)

    def paint(fig: Any) -> None:
        x = [p[0] for p in points]
        for version in versions:
            line(fig, x, [shares.get(version, 0.0) for _, shares in points], version_color(version))
        draw_marks(fig, marks, 1.12, cell(chart, xs))
        time_axis(fig, xs, chart.content_size.width)
        fig.ruler("y").lim(0, 1.2)
        fig.ruler("y").ticks([0, 0.5, 1], ["0", "½", "1"])

    chart.plot((series_key(lane.shares), len(lane.marks), xs), paint, legend)


def show_accuracy(chart: Chart, lane: LaneView, run: RunView, xs: tuple[float, float]) -> None:
    """Accuracy of each second of predictions, scored once its labels arrived; alarms, retrains and the
    moment a retrained version took all traffic (✓) marked, and the injected drift in orange."""
    if not lane.accuracy:
        chart.empty("no labels yet")  # the ground truth comes label_delay seconds after each request
        return
    points = _visible(lane.accuracy, xs[0])
    retrained = {str(r.get("version")) for r in run.retrains.values() if r.get("lane") == lane.name}
    marks = shown_marks(lane, xs, ACCURACY_MARKS)
    marks += [m for m in shown_marks(lane, xs, ("100%",)) if m[2] in retrained]
    injected = [d["rel"] for d in run.drifts if xs[0] <= d["rel"] <= xs[1]]
    low = min(0.5, min((p[1] for p in points), default=0.5))
    low = max(0.0, int(low * 10) / 10)
    legend = ([("injected", INJECTED_COLOR)] if injected else []) + mark_legend(marks, {"100%": "retrained"})

    def paint(fig: Any) -> None:
        line(fig, [p[0] for p in points], [p[1] for p in points], ACCURACY_COLOR)
        for t in injected:
            vline(fig, t, INJECTED_COLOR)
        draw_marks(fig, marks, 1.0 + (1.0 - low) * 0.12, cell(chart, xs))
        time_axis(fig, xs, chart.content_size.width)
        fig.ruler("y").lim(low, 1.0 + (1.0 - low) * 0.2)
        ticks = [low, round((low + 1) / 2, 2), 1.0]
        fig.ruler("y").ticks(ticks, [f"{tick:g}" for tick in ticks])

    chart.plot((series_key(lane.accuracy), tuple(marks), tuple(injected), xs), paint, legend)


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
        line(fig, [p[0] for p in points], [p[1] for p in points], DRIFT_COLOR)
        for t in injected:
            vline(fig, t, INJECTED_COLOR)
        for t in alarms:
            vline(fig, t, MARK_STYLES["alarm"][1])
        time_axis(fig, xs, chart.content_size.width)
        fig.ruler("y").lim(0, None)

    chart.plot((series_key(lane.drift), len(alarms), len(injected), xs), paint,
               [("score", DRIFT_COLOR), ("injected", INJECTED_COLOR), ("alarm", MARK_STYLES["alarm"][1])])
