"""The event log: every event but the per-second series, newest at the bottom, scrollable.

Most events show their fields as `key=value`; the ML loop's (drift, alarms, retrain phases, pipeline
changes, human actions) read as sentences, from the typed event each line keeps (nothing is parsed back
from text), with a retrain's step times taken from its record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.text import Text
from textual.geometry import Size
from textual.reactive import Reactive
from textual.widgets import RichLog

from mlopslab import eventtypes as ev
from mlopslab.monitor.timeline import LogEntry
from mlopslab.report import waited_for_person
from mlopslab.tui.palette import SYNC_COLORS
from mlopslab.tui.view import RunView

RETRAIN = "#e6d65a"
KIND_STYLES = {"commit": "bold #e0e0e0", "detected": "#ffd75f", "rollout_done": "#4fd6d6", "traffic_100": "#6fd36f",
               "live_change": "bold #ffb347", "live_reverted": "bold #6fd36f", "replica_killed": "bold #ff7a7a",
               "error": "bold #ff6b6b", "rollout_failed": "bold #ff6b6b", "drift_injected": "bold #ffb347",
               "drift_alarm": "bold #ff6b6b", "narration": "italic #b0b0b0", "model_registered": "#d98cff",
               "human_action": "bold #5aa9ff", "retrain_started": f"bold {RETRAIN}", "retrain_trained": RETRAIN,
               "retrain_validated": RETRAIN, "retrain_registered": RETRAIN, "retrain_committed": RETRAIN,
               "retrain_delivered": RETRAIN, "retrain_done": f"bold {RETRAIN}", "retrain_failed": "bold #ff6b6b",
               "retrain_skipped": "#8a8a8a", "pipeline_committed": "#b0b0ff", "pipeline_accepted": "bold #6fd36f",
               "pipeline_rejected": "bold #ff6b6b"}
STEPS = (("detect", "detect"), ("wait_labels", "labels"), ("train", "train"), ("validate", "validate"),
         ("deliver", "deliver"))


def _secs(value: Any) -> str:
    return "—" if value is None else f"{float(value):.2f}s"


def _acc(value: Any) -> str:
    try:
        return f"{float(value):.3f}"
    except (TypeError, ValueError):
        return "?"


def _sha(value: str | None) -> str:
    return (value or "")[:7]


def _retrain(e: ev.Retrain, record: Mapping[str, Any], person: float | None = None) -> str:
    rid, version = e.retrain or "?", e.version or record.get("version")
    why = {"alarm": "on a drift alarm", "human": "by hand"}.get(e.reason or "", e.reason or "")
    match e:
        case ev.RetrainStarted():
            detector = f" ({e.detector})" if e.detector is not None else ""
            return (f"{rid} starts {why}{detector}: level {e.level if e.level is not None else '?'}, "
                    f"pipeline {e.pipeline_version}, champion v{e.champion if e.champion is not None else '?'}")
        case ev.RetrainTrained():
            return f"{rid} trained v{version} on {e.rows if e.rows is not None else '?'} labelled rows"
        case ev.RetrainValidated():
            verdict = "promoted" if e.promoted else "champion kept"
            return (f"{rid} holdout accuracy v{version} {_acc(e.challenger_acc)} vs champion "
                    f"v{e.champion} {_acc(e.champion_acc)}: {verdict}")
        case ev.RetrainRegistered():
            return f"{rid} registered v{version} as {', '.join(map(str, e.aliases or ()))}"
        case ev.RetrainCommitted():
            return f"{rid} committed v{version} to the env repo ({_sha(e.sha)}) for this lane"
        case ev.RetrainDelivered():
            return f"{rid} v{version} takes all of the lane's traffic"
        case ev.RetrainDone():
            timings = record.get("timings") or {}
            steps = ", ".join(([f"a person {_secs(person)}"] if person is not None else []) +
                              [f"{label} {_secs(timings.get(key))}" for key, label in STEPS
                               if timings.get(key) is not None])
            actions = record.get("human_actions", e.human_actions)
            return (f"{rid} {e.outcome or record.get('outcome', 'done')}: {steps or 'no step times'}"
                    f"{f'; human actions {actions}' if actions is not None else ''}")
        case ev.RetrainFailed():
            return f"{rid} failed: {e.error or record.get('error', '?')}"
        case ev.RetrainSkipped():
            return f"no retrain {why}: {e.why or ''}"
    return ""


def _drift_injected(e: ev.DriftInjected) -> str:
    features = f" on features {e.features}" if e.features is not None else (
        " on half of the features" if e.drift == "covariate" else "")
    ramp = f", ramp {e.ramp}s" if e.ramp else ""
    return f"{e.drift or '?'} drift, size {e.size}{features}{ramp}"


def _drift_alarm(e: ev.DriftAlarm) -> str:
    delay = f", {float(e.delay_seconds):.2f} s after the change" if e.delay_seconds is not None else ""
    value = float("nan") if e.value is None else float(e.value)
    if e.detector == "cusum":
        h = f" over h={float(e.h):g}" if e.h is not None else ""
        return f"CUSUM alarm: statistic {value:.1f}{h}{delay}"
    if e.detector == "dataset_drift":
        return f"dataset drift: {value:.0%} of the features drifted{delay}"
    return f"{e.detector or '?'} alarm: {e.statistic or ''} {'' if e.value is None else e.value}{delay}"


def _pipeline(e: ev.PipelineCommitted | ev.PipelineAccepted | ev.PipelineRejected) -> str:
    note = f" “{e.note}”" if e.note else ""
    match e:
        case ev.PipelineCommitted():
            return f"pipeline change{note} committed ({_sha(e.sha)}), CI runs its tests"
        case ev.PipelineAccepted():
            tested = "tests pass" if e.tested else "taken untested"
            return f"pipeline {e.version}{note} in use ({tested}; was {e.previous})"
    failed = f": {e.failed}" if e.failed else ""
    return f"pipeline change{note} rejected, a test fails{failed}; {e.kept_version or 'the old one'} stays"


def _human_action(e: ev.HumanAction) -> str:
    said = {"retrain": "a person starts a retrain of this lane",
            "pipeline_commit": "a person commits a change of the training pipeline"}
    return said.get(e.action or "", f"a person: {e.action or '?'}") + (f" “{e.note}”" if e.note else "")


def describe(entry: LogEntry, run: RunView | None = None) -> str:
    """The log's words for one entry, from the event it keeps: a sentence for the ML loop's events,
    `key=value` for the rest. A retrain's step times come from its record in the run."""
    e = entry.event
    match e:
        case ev.Retrain():
            record = run.retrains.get(e.retrain or "", {}) if run else {}
            person = (waited_for_person(dict(record), run.alarms, run.drifts)
                      if run and isinstance(e, ev.RetrainDone) else None)
            return _retrain(e, record, person) or entry.detail
        case ev.PipelineCommitted() | ev.PipelineAccepted() | ev.PipelineRejected():
            return _pipeline(e)
        case ev.DriftAlarm():
            return _drift_alarm(e)
        case ev.DriftInjected():
            return _drift_injected(e)
        case ev.Narration():
            return e.text or ""
        case ev.ClusterReady():
            return (f"Kubernetes {e.version or ''} ready in {e.started_in or 0:.1f} s; during the run: "
                    f"kubectl --kubeconfig {e.kubeconfig} get deploy,rs,pods -A")
        case ev.HumanAction():
            return _human_action(e)
    return entry.detail


KIND_WIDTH = 17   # the longest kinds (retrain_registered, preflight_failed…) end in an ellipsis, the columns hold


def _cell(word: str, width: int) -> str:
    return f"{word:{width}}" if len(word) <= width else word[: width - 1] + "…"


def line(entry: LogEntry, run: RunView | None = None) -> Text:
    """`  12.5s fast-poll traffic_100       …`: the lane column as wide as the run's longest lane name."""
    t, kind, lane = entry.t, entry.kind, entry.lane
    names = max((len(view.name) for view in run.lanes), default=8) if run is not None else 8
    text = Text("  setup  " if t is None else f"{t:7.1f}s ", style="#8a8a8a")
    text.append(f"{_cell(lane or 'lab', max(3, min(names, 16)))} ", style="bold" if lane else "#8a8a8a")
    text.append(f"{_cell(kind, KIND_WIDTH)} ", style=KIND_STYLES.get(kind, SYNC_COLORS["Unknown"]))
    text.append(describe(entry, run), style="#c8c8c8")
    return text


class EventLog(RichLog):
    """`show(entries)` appends what is new; if the entries went back in time (a replay seek), it redraws.

    A new line changes the log's virtual size, which for a RichLog means a layout of the whole screen
    (about 12 ms at 160×48, on the machine that measures). Here it only moves the scroll bars, and asks for
    a layout only when a scroll bar appears or goes.
    """

    virtual_size = Reactive(Size(0, 0), layout=False)

    def watch_virtual_size(self, size: Size) -> None:
        bars = (self.show_vertical_scrollbar, self.show_horizontal_scrollbar)
        self._scroll_update(size)
        if (self.show_vertical_scrollbar, self.show_horizontal_scrollbar) != bars:
            self.refresh(layout=True)

    def __init__(self, **kwargs: object) -> None:
        super().__init__(max_lines=1000, wrap=False, markup=False, auto_scroll=True, **kwargs)  # type: ignore[arg-type]
        self._shown: list[LogEntry] = []

    def show(self, entries: tuple[LogEntry, ...], run: RunView | None = None) -> None:
        if not entries and not self._shown:
            return
        if entries and self._shown and entries[-1] == self._shown[-1]:
            return  # nothing new (a seek that keeps the last entry changes nothing either)
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
            self.write(line(entry, run))
        self._shown.extend(new)
        del self._shown[:-1000]
