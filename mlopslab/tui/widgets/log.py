"""The event log: every event but the per-second series, newest at the bottom, scrollable.

Most events show their fields as `key=value`; the ML loop's (drift, alarms, retrain phases, pipeline
changes, human actions) read as sentences, with a retrain's step times taken from its record.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from rich.text import Text
from textual.geometry import Size
from textual.reactive import Reactive
from textual.widgets import RichLog

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
FIELD = re.compile(r"(\w+)=(.*?)(?= \w+=|$)")

Entry = tuple["float | None", str, "str | None", str]   # t None: during the setup, before the scenario clock


def fields(detail: str) -> dict[str, str]:
    """`key=value key=value` (a value may hold spaces) back into a dict."""
    return {m.group(1): m.group(2) for m in FIELD.finditer(detail)}


def _secs(value: Any) -> str:
    return "—" if value is None else f"{float(value):.2f}s"


def _acc(value: Any) -> str:
    try:
        return f"{float(value):.3f}"
    except (TypeError, ValueError):
        return "?"


def _retrain(f: dict[str, str], record: Mapping[str, Any], kind: str, person: float | None = None) -> str:
    rid, version = f.get("retrain", "?"), f.get("version") or record.get("version")
    why = {"alarm": "on a drift alarm", "human": "by hand"}.get(f.get("reason", ""), f.get("reason", ""))
    if kind == "retrain_started":
        detector = f" ({f['detector']})" if f.get("detector") not in (None, "None") else ""
        return (f"{rid} starts {why}{detector}: level {f.get('level', '?')}, pipeline {f.get('pipeline_version')}, "
                f"champion v{f.get('champion', '?')}")
    if kind == "retrain_trained":
        return f"{rid} trained v{version} on {f.get('rows', '?')} labelled rows"
    if kind == "retrain_validated":
        verdict = "promoted" if f.get("promoted") == "True" else "champion kept"
        return (f"{rid} holdout accuracy v{version} {_acc(f.get('challenger_acc'))} vs champion "
                f"v{f.get('champion')} {_acc(f.get('champion_acc'))}: {verdict}")
    if kind == "retrain_registered":
        return f"{rid} registered v{version} as {f.get('aliases', '').strip('[]').replace(chr(39), '')}"
    if kind == "retrain_committed":
        return f"{rid} committed v{version} to the env repo ({f.get('sha', '')}) for this lane"
    if kind == "retrain_delivered":
        return f"{rid} v{version} takes all of the lane's traffic"
    if kind == "retrain_done":
        timings = record.get("timings") or {}
        steps = ", ".join(([f"a person {_secs(person)}"] if person is not None else []) +
                          [f"{label} {_secs(timings.get(key))}" for key, label in STEPS if timings.get(key) is not None])
        actions = record.get("human_actions", f.get("human_actions"))
        return (f"{rid} {f.get('outcome', record.get('outcome', 'done'))}: {steps or 'no step times'}"
                f"{f'; human actions {actions}' if actions is not None else ''}")
    if kind == "retrain_failed":
        return f"{rid} failed: {f.get('error', record.get('error', '?'))}"
    return f"no retrain {why}: {f.get('why', '')}" if kind == "retrain_skipped" else ""


def _drift_injected(f: dict[str, str]) -> str:
    features = f" on features {f['features']}" if f.get("features") not in (None, "None") else (
        " on half of the features" if f.get("drift") == "covariate" else "")
    ramp = f", ramp {f['ramp']}s" if f.get("ramp") not in (None, "0", "0.0") else ""
    return f"{f.get('drift', '?')} drift, size {f.get('size')}{features}{ramp}"


def _drift_alarm(f: dict[str, Any]) -> str:
    seconds = f.get("delay_seconds")
    delay = f", {float(seconds):.2f} s after the change" if seconds not in (None, "None") else ""
    try:
        value = float(f.get("value", "nan"))
    except ValueError:
        value = float("nan")
    if f.get("detector") == "cusum":
        h = f" over h={float(f['h']):g}" if f.get("h") is not None else ""
        return f"CUSUM alarm: statistic {value:.1f}{h}{delay}"
    if f.get("detector") == "dataset_drift":
        return f"dataset drift: {value:.0%} of the features drifted{delay}"
    return f"{f.get('detector', '?')} alarm: {f.get('statistic', '')} {f.get('value', '')}{delay}"


def _pipeline(kind: str, f: dict[str, str]) -> str:
    note = f" “{f['note']}”" if f.get("note") else ""
    if kind == "pipeline_committed":
        return f"pipeline change{note} committed ({f.get('sha', '')}), CI runs its tests"
    if kind == "pipeline_accepted":
        tested = "tests pass" if f.get("tested") == "True" else "taken untested"
        return f"pipeline {f.get('version')}{note} in use ({tested}; was {f.get('previous')})"
    failed = f": {f['failed']}" if f.get("failed") else ""
    return f"pipeline change{note} rejected, a test fails{failed}; {f.get('kept_version', 'the old one')} stays"


READABLE: dict[str, Callable[[dict[str, str]], str]] = {
    "narration": lambda f: f.get("text", ""),
    "drift_injected": _drift_injected,
    "drift_alarm": _drift_alarm,
    "human_action": lambda f: {"retrain": "a person starts a retrain of this lane",
                               "pipeline_commit": "a person commits a change of the training pipeline"}.get(
        f.get("action", ""), f"a person: {f.get('action', '?')}") + (f" “{f['note']}”" if f.get("note") else ""),
}


def describe(kind: str, detail: str, run: RunView | None = None, t: float | None = None,
             lane: str | None = None) -> str:
    """The log's words for one event: a sentence for the ML loop's events, `key=value` for the rest.
    `detail` is cut at 160 characters, so alarms and retrains take their numbers from the run's records."""
    if kind.startswith("retrain_"):
        f = fields(detail)
        record = run.retrains.get(f.get("retrain", ""), {}) if run else {}
        person = waited_for_person(dict(record), run.alarms, run.drifts) if run and kind == "retrain_done" else None
        return _retrain(f, record, kind, person) or detail
    if kind.startswith("pipeline_") and kind != "pipeline_done":
        return _pipeline(kind, fields(detail))
    if kind == "drift_alarm":
        alarm = next((a for a in (run.alarms if run else ()) if a.get("rel") == t and a.get("lane") == lane), None)
        return _drift_alarm(alarm if alarm is not None else fields(detail))
    if kind in READABLE:
        return READABLE[kind](fields(detail))
    return detail


KIND_WIDTH = 17   # the longest kinds (retrain_registered, preflight_failed…) end in an ellipsis, the columns hold


def _cell(word: str, width: int) -> str:
    return f"{word:{width}}" if len(word) <= width else word[: width - 1] + "…"


def line(entry: Entry, run: RunView | None = None) -> Text:
    """`  12.5s fast-poll traffic_100       …`: the lane column as wide as the run's longest lane name."""
    t, kind, lane, detail = entry
    names = max((len(view.name) for view in run.lanes), default=8) if run is not None else 8
    text = Text("  setup  " if t is None else f"{t:7.1f}s ", style="#8a8a8a")
    text.append(f"{_cell(lane or 'lab', max(3, min(names, 16)))} ", style="bold" if lane else "#8a8a8a")
    text.append(f"{_cell(kind, KIND_WIDTH)} ", style=KIND_STYLES.get(kind, SYNC_COLORS["Unknown"]))
    text.append(describe(kind, detail, run, t, lane), style="#c8c8c8")
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
        self._shown: list[Entry] = []

    def show(self, entries: tuple[Entry, ...], run: RunView | None = None) -> None:
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
