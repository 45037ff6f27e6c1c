"""The run screen: one column per lane side by side (tabs when narrow), narration, events and summary.

One timer pulls a snapshot (`source.view()`, copied under the lab's lock) 8 times a second and updates
every widget inside one `batch_update`; nothing reacts per event, so drawing never slows the run. Actions
(release, manual change, kill, inject drift, retrain) are real work on git, MLflow and processes: they run
in thread workers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Tab, TabbedContent, TabPane, Tabs

from mlopslab.tui.screens.failure import FailureScreen
from mlopslab.tui.sources import Source
from mlopslab.tui.view import LaneView, RunView, series_key
from mlopslab.tui.widgets.lane import LanePanel, span
from mlopslab.tui.widgets.log import EventLog
from mlopslab.tui.widgets.narration import Narration
from mlopslab.tui.widgets.strategy import has_strategy
from mlopslab.tui.widgets.summary import SummaryTable
from mlopslab.tui.widgets.status import StatusBar

FPS = 8
PLOT_PERIOD = 2.0   # live: a lane's plots redraw at most every 2 s, or at once when a mark appears
NARROW = 120   # below this many columns the lanes become tabs
WIDE = 160     # from this many columns the summary has room beside the narration
MEDIUM = 46    # below this many rows the bottom panels give the lanes' plots more room
SHORT = 36     # below this many rows they shrink further
ACTIONS = {"release", "manual_change", "kill", "drift", "retrain"}   # a source that can act
SEEKING = {"seek", "faster", "slower", "seek_start", "seek_end"}      # a source that can seek
MANUAL_REPLICAS = 1
DRIFTS = {  # kind -> (size, what it does): the `d` key injects the first, the palette offers all three
    "covariate": (2.0, "half of the features move by 2σ"),
    "prior": (0.85, "85% of the labels become positive"),
    "concept": (2.0, "the decision rule turns (weights move by 2 along a fixed direction)"),
}


HELP_TIP = "this help: keys, what the states, marks and colours mean, and what only looks contradictory"
QUIT_TIP = "quit; while a run is going it asks first, then stops every process and writes the summary"


def _header_key(lane: LaneView, view: RunView) -> tuple[Any, ...]:
    """Changes when a lane's header or replica strip would change."""
    return (lane.sync, lane.head, lane.head_version, lane.live_revision, lane.live_version, lane.replicas,
            lane.requests, lane.errors, lane.changes, lane.reverted, lane.pipeline_version, lane.retraining,
            view.levels, tuple(lane.rollout_step.items()), tuple(tuple(g.items()) for g in lane.gates))


def _plots_key(lane: LaneView, view: RunView) -> tuple[Any, ...]:
    """Changes when a lane's plots would change; its last item, the marks (commit, detected, applied, done,
    alarms, injected drift, retrains), changes only when one appears."""
    return (series_key(lane.latency), series_key(lane.shares), series_key(lane.drift), series_key(lane.accuracy),
            series_key(lane.weights), span(view),
            (len(lane.marks), len(view.drifts), len(view.alarms), len(view.retrains), len(lane.decisions)))


class RunScreen(Screen):
    BINDINGS = [  # help and quit first: the footer cuts from the right on a narrow terminal
        Binding("question_mark", "app.help", "help", key_display="?", tooltip=HELP_TIP),
        Binding("q", "app.quit", "quit", tooltip=QUIT_TIP),
        Binding("space", "space", "pause", priority=True, tooltip="live: pause or resume traffic; replay: play or pause"),
        Binding("c", "release", "release", tooltip="release a new model version (train, register, commit)"),
        Binding("m", "manual_change", "manual", tooltip="scale the active lane to 1 replica by hand (not via git)"),
        Binding("k", "kill", "kill", tooltip="kill one replica of the active lane"),
        Binding("d", "drift", "drift", tooltip="inject drift: covariate shift, half of the features move by 2σ "
                "(palette: prior, concept)"),
        Binding("r", "retrain", "retrain", tooltip="retrain the active lane's model by hand (a level-0 human action)"),
        Binding("left", "seek(-5)", "-5s", tooltip="seek back 5 s (shift: 30 s)", priority=True),
        Binding("right", "seek(5)", "+5s", tooltip="seek forward 5 s (shift: 30 s)", priority=True),
        Binding("shift+left", "seek(-30)", "-30s", show=False, priority=True),
        Binding("shift+right", "seek(30)", "+30s", show=False, priority=True),
        Binding("minus", "slower", "slower", key_display="-"),
        Binding("plus,equals_sign", "faster", "faster", key_display="+"),
        Binding("home", "seek_start", "start", show=False, priority=True),
        Binding("end", "seek_end", "end", show=False, priority=True),
        Binding("p", "promote", "promote", tooltip="promote the active lane's rollout (past a pause, or all the way)"),
        Binding("a", "promote(None, 'abort')", "abort", tooltip="abort the active lane's rollout (candidate to 0)"),
        Binding("l", "next_lane", "lane", tooltip="make the next lane active (m, k and r act on it)"),
        Binding("e", "details('events')", "events", show=False, tooltip="show the event log"),
        Binding("t", "details('summary')", "summary", show=False, tooltip="show the summary table"),
        Binding("s", "export", "svg", tooltip="save an SVG screenshot into the results directory"),
    ]

    def __init__(self, source: Source) -> None:
        super().__init__()
        self.source = source
        self.lanes = source.lane_names
        self.active_lane = self.lanes[0] if self.lanes else ""
        self.view: RunView | None = None
        self._lane_keys: dict[str, tuple[Any, Any]] = {}   # lane -> (header key, plots key) drawn
        self._plotted: dict[str, float] = {}                 # lane -> when its plots were last drawn
        self._deferred = False                               # some lane's new data waits for its plot period
        self.plot_period = 0.0 if source.can_seek else PLOT_PERIOD   # a recorded run measures nothing: draw at once
        self.clock: Callable[[], float] = time.monotonic   # when plots were drawn, how far a replay plays
        self._last = self.clock()
        self._finished_seen = False
        self._error_shown = False
        self._ticks = 0

    # --- layout -----------------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        yield Tabs(*[Tab(name, id=f"tab-{name}") for name in self.lanes], id="lane-tabs")
        with Horizontal(id="lanes"):
            for name in self.lanes:
                yield LanePanel(name)
        with Horizontal(id="bottom"):
            yield Narration(id="narration")
            with TabbedContent(id="details"):
                with TabPane("events", id="events"):
                    yield EventLog(id="log")
                with TabPane("summary", id="summary"):
                    yield SummaryTable(id="summary-table")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#narration").border_title = "narration"
        self._layout(self.size.width, self.size.height)
        self._mark_active()
        if self.lanes:
            self.query_one(f"#lane-{self.active_lane}", LanePanel).focus()
        self.source.start()   # a live run starts its process; this screen follows its events
        self.refresh_view()
        self.set_interval(1 / FPS, self.refresh_view, name="snapshot")

    def on_resize(self, event: Any) -> None:
        self._layout(event.size.width, event.size.height)
        if self._finished_seen:   # the summary's headers depend on the width
            self.query_one(SummaryTable).show(self.source.summary())

    def _layout(self, width: int, height: int) -> None:
        self.set_class(width < NARROW, "-narrow")
        self.set_class(width >= WIDE, "-wide")
        self.set_class(SHORT <= height < MEDIUM, "-medium")
        self.set_class(height < SHORT, "-short")
        self._mark_active()

    def _mark_active(self) -> None:
        narrow = self.has_class("-narrow")
        for panel in self.query(LanePanel):
            panel.set_class(panel.lane == self.active_lane, "-active")
            panel.display = not narrow or panel.lane == self.active_lane
        self._lane_keys.clear()   # a header fits its lane's width: draw the lanes again at the next tick
        self._deferred = True

    # --- the one timer ---------------------------------------------------------------------------------------
    def refresh_view(self) -> None:
        """One tick: take a snapshot and redraw only what changed, inside one batch.

        Drawing costs CPU on the machine that measures the lanes (see benchmarks/README.md): a lane's
        header is redrawn when it changes, its plots in a live run at most every PLOT_PERIOD seconds (at
        once when a mark appears: commit, detected, applied, done, alarm), all in one screen update, and
        nothing asks for a new layout unless a size really changes (a layout costs more than a plot).
        """
        now = self.clock()
        elapsed, self._last = now - self._last, now
        if not self.is_current:
            return
        self.source.tick(elapsed)
        view = self.source.view()
        self._ticks += 1
        unseen_error = bool(self.source.error) and not self._error_shown
        if view is self.view and not self._deferred and not unseen_error:  # no event since the last tick
            self.query_one(StatusBar).show(self.source, view)  # the phase can change without events
            return
        if self.view is None or len(view.lanes) != len(self.view.lanes):   # whether any lane takes promote
            self.call_later(self.refresh_bindings)
        self.set_class(any(map(has_strategy, view.lanes)), "-strategies")   # their gate panels need the rows
        self.view = view
        self._deferred = False
        with self.app.batch_update():
            self.query_one(StatusBar).show(self.source, view)
            for lane in view.lanes:
                if lane.name not in self.lanes:
                    continue
                header, plots = _header_key(lane, view), _plots_key(lane, view)
                drawn_header, drawn_plots = self._lane_keys.get(lane.name, (None, None))
                redraw_plots = plots != drawn_plots and (
                    drawn_plots is None or plots[-1] != drawn_plots[-1]
                    or now - self._plotted.get(lane.name, 0.0) >= self.plot_period)
                if redraw_plots or header != drawn_header:
                    self.query_one(f"#lane-{lane.name}", LanePanel).show(lane, view, plots=redraw_plots)
                if redraw_plots:
                    self._plotted[lane.name] = now
                elif plots != drawn_plots:
                    self._deferred = True   # new data waits for the plot period: check again next tick
                self._lane_keys[lane.name] = (header, plots if redraw_plots else drawn_plots)
            self._show_rest(view)

    def draw(self, view: RunView) -> None:
        """Everything at once (the frame the benchmark times)."""
        self.query_one(StatusBar).show(self.source, view)
        for lane in view.lanes:
            if lane.name in self.lanes:
                self.query_one(f"#lane-{lane.name}", LanePanel).show(lane, view)
        self._show_rest(view)

    def _show_rest(self, view: RunView) -> None:
        """Narration, the event log, a failed run's error, and the summary once the run ends."""
        self.query_one(Narration).show(view.narration, view.errors)
        self.query_one(EventLog).show(view.log, view)
        error = self.source.error
        if error and not self._error_shown:
            self._error_shown = True
            started = view.started
            self.app.push_screen(FailureScreen("the run failed" if started else "the run could not start",
                                               error, str(self.source.results_dir)))
        details = self.query_one(TabbedContent)
        if view.finished and not self._finished_seen:
            self._finished_seen = True
            self.refresh_bindings()   # the footer drops the live run's actions
            self.query_one(SummaryTable).show(self.source.summary())
            details.active = "summary"
            if self.source.can_act:   # a run that was live here wrote them
                self.notify(f"results in {self.source.results_dir}", title="run finished", timeout=8)
        elif not view.finished:
            self._finished_seen = False
            if details.active == "summary" and self._ticks % FPS == 0:
                self.query_one(SummaryTable).show(self.source.summary())

    @on(TabbedContent.TabActivated, "#details")
    def _details_shown(self, event: TabbedContent.TabActivated) -> None:
        """The summary needs a column per lane: below WIDE columns it takes the narration's room too."""
        self.set_class(event.tabbed_content.active == "summary", "-summary")

    # --- lanes --------------------------------------------------------------------------------------------------
    @on(Tabs.TabActivated, "#lane-tabs")
    def _tab_activated(self, event: Tabs.TabActivated) -> None:
        if event.tab.id:
            self.active_lane = event.tab.id.removeprefix("tab-")
            self._mark_active()

    def on_descendant_focus(self, event: Any) -> None:
        for node in event.widget.ancestors_with_self:
            if isinstance(node, LanePanel):
                self._activate(node.lane)
                break

    def _activate(self, lane: str) -> None:
        if lane != self.active_lane:
            self.active_lane = lane
            self.query_one("#lane-tabs", Tabs).active = f"tab-{lane}"
            self._mark_active()

    def action_next_lane(self) -> None:
        if self.lanes:
            self._activate(self.lanes[(self.lanes.index(self.active_lane) + 1) % len(self.lanes)])

    def action_details(self, pane: str) -> None:
        self.query_one(TabbedContent).active = pane
        if pane == "summary":
            self.query_one(SummaryTable).show(self.source.summary())

    # --- actions ------------------------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        source = self.source
        if action == "promote":   # and abort: where a lane has a canary, blue-green, shadow or A/B
            return source.can_act and source.active and any(map(has_strategy, getattr(self.view, "lanes", ())))
        if action in ACTIONS:   # a run that has ended offers no more actions on it
            return source.can_act and source.active
        if action in SEEKING:
            return source.can_seek
        if action == "space":
            return source.can_pause
        return True

    def _ready(self) -> bool:
        if self.source.can_act and self.source.running:
            return True
        what = "setting up: try again once traffic flows" if self.source.active else "the run has ended"
        self.notify(what, severity="warning", timeout=3)
        return False

    def action_space(self) -> None:
        if not self.source.can_act:   # a playback: at once
            self.source.toggle()
            self._last = self.clock()  # playing resumes from now, not from the last tick
            self.refresh_view()
        elif self._ready():   # the run's traffic, over its control channel
            self.source.toggle()

    def action_release(self) -> None:
        if self._ready():
            self.notify("training and registering a new version…", timeout=2)
            self._act(self.source.release, lambda sha: f"committed {sha[:7]} to the env repo", "release")

    def action_manual_change(self, lane: str | None = None, replicas: int = MANUAL_REPLICAS) -> None:
        if self._ready():
            lane = lane or self.active_lane
            self._act(lambda: self.source.manual_change(lane, replicas),
                      lambda _: f"{lane}: scaled to {replicas} by hand, not through git", "manual live change")

    @work(thread=True, group="actions")
    def _act(self, action: Callable[[], Any], said: Callable[[Any], str], title: str) -> None:
        """Runs a person's action off the UI loop (real work on git, MLflow or processes), then says how it went."""
        try:
            result = action()
            self.app.call_from_thread(self.notify, said(result), title=title)
        except Exception as exc:
            self.app.call_from_thread(self.notify, f"{type(exc).__name__}: {exc}", title=f"{title} failed",
                                      severity="error")

    def action_kill(self, lane: str | None = None) -> None:
        if self._ready():
            lane = lane or self.active_lane
            self._act(lambda: self.source.kill(lane), lambda name: f"{lane}: killed {name or 'nothing (no replica)'}",
                      "replica killed")

    def action_drift(self, kind: str = "covariate") -> None:
        if self._ready():
            size, what = DRIFTS[kind]
            self._act(lambda: self.source.inject_drift(kind, size), lambda _: f"{kind}: {what}", "drift injected")

    def action_retrain(self, lane: str | None = None) -> None:
        if self._ready():
            lane = lane or self.active_lane
            self._act(lambda: self.source.retrain(lane),
                      lambda _: f"{lane}: the pipeline trains on the latest labelled rows "
                                "(skipped if a retrain is under way: see the event log)", "retrain by hand")

    def action_promote(self, lane: str | None = None, what: str = "promote") -> None:  # kubectl argo rollouts …
        if self._ready():
            lane = lane or self.active_lane
            self._act(lambda: self.source.rollout(lane, what), lambda _: f"{lane}: {what} sent to its strategy", what)

    def action_seek(self, seconds: float) -> None:
        self.seek_with(lambda: self.source.seek_by(seconds))

    def action_seek_start(self) -> None:
        self.seek_with(lambda: self.source.seek("start"))

    def action_seek_end(self) -> None:
        self.seek_with(lambda: self.source.seek("end"))

    def action_faster(self) -> None:
        self.seek_with(lambda: self.source.set_speed("faster"))

    def action_slower(self) -> None:
        self.seek_with(lambda: self.source.set_speed("slower"))

    def seek_with(self, move: Callable[[], None]) -> None:
        """Moves a recorded run in time (or changes its speed) and shows the result at once."""
        if self.source.can_seek:
            move()
            self.refresh_view()

    def action_export(self) -> None:
        t = self.source.position(self.view) if self.view else 0.0
        path = self.app.save_screenshot(filename=f"run-screen-{t:05.1f}s.svg", path=str(self.source.results_dir))
        self.notify(path, title="SVG saved", timeout=6)
