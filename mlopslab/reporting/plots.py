"""The report's figures, drawn with matplotlib (no pyplot: no global state, no GUI backend) and returned as
SVG to inline in a page: text stays text, ids are prefixed per figure so several figures share one page.

Each function returns a `Plot` (key, title, caption, svg) or None when the run has nothing to draw, so
a page shows only what happened (no empty drift panel in a run without drift).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from mlopslab.report import PHASE_LABELS
from mlopslab.reporting.runs import Point, Run, Trials

LANE_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
VERSION_COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")
MARKS = {  # phase in RunState.marks -> (label, colour, line style)
    "commit": ("commit", "#555555", (0, (4, 2))),
    "detected": ("detected", "#ff7f0e", (0, (1, 1.5))),
    "applied": ("applied", "#2ca02c", (0, (5, 2, 1, 2))),
    "100%": ("100 %", "#000000", "-"),
}
STYLE = {"svg.fonttype": "none", "font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
         "axes.grid": True, "grid.alpha": 0.25, "legend.frameon": False, "figure.dpi": 100}
WIDTH = 10.0  # inches: 720 pt, the page's column


@dataclass(frozen=True)
class Plot:
    key: str
    title: str
    caption: str
    svg: str


# --- single runs ------------------------------------------------------------------------------------------------
def latency(run: Run, key: str) -> Plot | None:
    lanes = [(name, lane) for name, lane in run.state.lanes.items() if lane.latency]
    if not lanes:
        return None
    with _style(key):
        fig, axes = _grid(len(lanes), height=2.6, sharey=True)
        for i, (ax, (name, lane)) in enumerate(zip(axes, lanes)):
            t, p50, p95, p99 = (np.array(column, dtype=float) for column in zip(*lane.latency))
            for values, label, width in ((p50, "p50", 1.0), (p95, "p95", 1.0), (p99, "p99", 1.4)):
                ax.plot(t, values, lw=width, label=label)
            _marks(ax, lane.marks)
            ax.set_title(f"{name} ({lane.delivery})", loc="left")
            ax.set_xlabel("scenario time (s)")
            if i == 0:
                ax.set_ylabel("latency (ms)")
        axes[0].legend(loc="upper left", ncols=3)
        _mark_legend(fig)
        return _plot(fig, key, "Latency percentiles per lane",
                     "p50, p95 and p99 of each 1 s window, measured from each request's intended send time; "
                     "vertical lines mark each release's commit, detection, applied and 100 % of traffic.")


def shares(run: Run, key: str) -> Plot | None:
    lanes = [(name, lane) for name, lane in run.state.lanes.items() if lane.shares]
    if not lanes:
        return None
    versions = sorted({v for _, lane in lanes for _, share in lane.shares for v in share}, key=_version_key)
    colours = {v: VERSION_COLOURS[i % len(VERSION_COLOURS)] for i, v in enumerate(versions)}
    with _style(key):
        fig, axes = _grid(len(lanes), height=2.4, sharey=True)
        for i, (ax, (name, lane)) in enumerate(zip(axes, lanes)):
            t = np.array([row[0] for row in lane.shares], dtype=float)
            stacks = [np.array([row[1].get(v, 0.0) for row in lane.shares]) * 100 for v in versions]
            ax.stackplot(t, *stacks, colors=[colours[v] for v in versions], step="post", alpha=0.85,
                         labels=[f"v{v}" for v in versions])
            _marks(ax, lane.marks)
            ax.set_ylim(0, 100)
            ax.set_title(f"{name} ({lane.delivery})", loc="left")
            ax.set_xlabel("scenario time (s)")
            if i == 0:
                ax.set_ylabel("share of requests (%)")
        axes[0].legend(loc="lower left", ncols=len(versions))
        _mark_legend(fig)
        return _plot(fig, key, "Share of traffic per model version",
                     "Which model version answered each 1 s window's requests, per lane; marks at commit, "
                     "detected, applied (all replicas updated) and 100 % (every request on the new version).")


def lead_times(runs: list[Run], key: str) -> Plot | None:
    """Commit → each phase, per lane: one bar per release of one run, or the median over runs and releases
    with its spread when there are several."""
    values: dict[str, dict[str, list[float]]] = {}
    for run in runs:
        for name, lane in run.summary.lanes.items():
            for release in lane.releases:
                if release.setup:
                    continue
                for phase, lead in release.lead.items():
                    if lead is not None:
                        values.setdefault(name, {}).setdefault(phase, []).append(lead)
    if not values:
        return None
    phases = [p for p in PHASE_LABELS if any(p in lane for lane in values.values())]
    lanes = list(values)
    spread = max(len(v) for lane in values.values() for v in lane.values()) > 1
    with _style(key):
        fig = Figure(figsize=(WIDTH, 3.2), layout="constrained")
        ax = fig.add_subplot()
        width = 0.8 / len(lanes)
        for i, name in enumerate(lanes):
            x = np.arange(len(phases)) + (i - (len(lanes) - 1) / 2) * width
            data = [values[name].get(p, []) for p in phases]
            med = np.array([np.median(d) if d else np.nan for d in data])
            ax.bar(x, med, width * 0.92, color=LANE_COLOURS[i % len(LANE_COLOURS)], label=name)
            if spread:
                lo = np.array([_interval(d)[0] if d else np.nan for d in data])
                hi = np.array([_interval(d)[1] if d else np.nan for d in data])
                ax.errorbar(x, med, yerr=[med - lo, hi - med], fmt="none", ecolor="black", capsize=3, lw=1)
        ax.set_xticks(np.arange(len(phases)), [f"commit → {PHASE_LABELS[p]}" for p in phases])
        ax.set_ylabel("seconds after the commit")
        ax.legend(loc="upper left")
        n = sum(1 for run in runs for lane in run.summary.lanes.values() for r in lane.releases if not r.setup)
        caption = ("Lead time from the commit to each phase, per lane"
                   + (f": median over {len(runs)} run(s) and their releases ({n} lane-releases); whiskers: the "
                      "range below 10 values, else the 2.5–97.5 % percentile interval." if spread else "."))
        return _plot(fig, key, "Lead times", caption)


def drift_accuracy(run: Run, key: str) -> Plot | None:
    lanes = list(run.state.lanes.items())
    has_accuracy = any(lane.accuracy for _, lane in lanes)
    has_drift = any(lane.drift for _, lane in lanes) or run.state.drifts
    if not has_accuracy and not has_drift:
        return None
    with _style(key):
        fig = Figure(figsize=(WIDTH, 4.2 if has_accuracy and has_drift else 2.6), layout="constrained")
        rows = [r for r, on in (("accuracy", has_accuracy), ("drift", has_drift)) if on]
        axes = fig.subplots(len(rows), 1, sharex=True, squeeze=False)[:, 0]
        for ax, row in zip(axes, rows):
            for i, (name, lane) in enumerate(lanes):
                series = lane.accuracy if row == "accuracy" else lane.drift
                if series:
                    t, v = zip(*series)
                    ax.plot(t, v, lw=1.2, color=LANE_COLOURS[i % len(LANE_COLOURS)], label=name)
                alarms = [t for t, phase, _ in lane.marks if phase == "alarm"]
                if row == "drift" and alarms:
                    ax.plot(alarms, [0] * len(alarms), "^", color=LANE_COLOURS[i % len(LANE_COLOURS)], ms=6,
                            clip_on=False)
            for drift in run.state.drifts:
                ax.axvline(drift["rel"], color="#c44e52", lw=1.2, ls="--")
            ax.set_ylabel("accuracy" if row == "accuracy" else "drift score")
        axes[0].legend(loc="lower left", ncols=len(lanes))
        axes[-1].set_xlabel("scenario time (s)")
        return _plot(fig, key, "Drift and accuracy",
                     "Accuracy of each lane's predictions once their ground truth arrived, and the drift "
                     "monitor's score; the dashed red line is the injected drift, triangles are drift alarms.")


# --- trial sets -------------------------------------------------------------------------------------------------
def distributions(trials: Trials, point: Point, key: str) -> Plot:
    """Per phase, per lane: every measurement of the runs (dots), their box (median and IQR, whiskers to the
    extremes) and the 95 % interval of the median (black bar); the prediction as a red cross."""
    phases = [p for p in trials.phases() if any(p in lane for lane in point.lanes.values())]
    lanes = trials.lanes()
    with _style(key):
        fig, axes = _grid(len(phases), height=2.5, per_row=3)
        rng = np.random.default_rng(0)
        for ax, phase in zip(axes, phases):
            for i, name in enumerate(lanes):
                cell = point.lanes.get(name, {}).get(phase)
                if not cell or cell.get("median") is None:
                    continue
                colour = LANE_COLOURS[i % len(LANE_COLOURS)]
                values = [v for v in cell.get("values") or [] if v is not None]
                q1, q3 = cell.get("iqr") or (cell["median"], cell["median"])
                lo, hi = (min(values), max(values)) if values else (q1, q3)
                ax.bxp([{"med": cell["median"], "q1": q1, "q3": q3, "whislo": lo, "whishi": hi}], positions=[i],
                       widths=0.5, showfliers=False, patch_artist=True,
                       boxprops={"facecolor": colour, "alpha": 0.35, "edgecolor": colour},
                       medianprops={"color": colour, "lw": 2}, whiskerprops={"color": colour},
                       capprops={"color": colour})
                if values:
                    ax.plot(i + rng.uniform(-0.12, 0.12, len(values)), values, "o", ms=3, color=colour, alpha=0.8)
                ci = cell.get("ci95")
                if ci and None not in ci:
                    ax.errorbar([i + 0.34], [cell["median"]], yerr=[[cell["median"] - ci[0]], [ci[1] - cell["median"]]],
                                fmt="o", color="black", ms=3, capsize=3, lw=1.2)
                if cell.get("prediction") is not None:
                    ax.plot([i + 0.34], [cell["prediction"]], "x", color="#c44e52", ms=7, mew=2)
            ax.set_xticks(range(len(lanes)), lanes)
            ax.set_xlim(-0.6, len(lanes) - 0.3)
            _phase_axis(ax, phase)
        title = f"Distributions — {point.label()}"
        n = max((c.get("n") or 0 for lane in point.lanes.values() for c in lane.values()), default=0)
        return _plot(fig, key, title,
                     f"Each dot is one measurement (a release, or a live change, in one of the runs; n up to {n}); "
                     "box: median and interquartile range, whiskers to the extremes; black bar: 95 % interval of "
                     "the median; red cross: the prediction, where one exists.")


def curves(trials: Trials, key: str) -> Plot | None:
    """Each phase against the swept parameter, per lane: median, IQR band, 95 % interval; the prediction
    dashed beside it. Over a grid, the first parameter is the x axis and the others make separate lines."""
    if not trials.params or len(trials.points) < 2:
        return None
    param, others = trials.params[0], trials.params[1:]
    xs_raw = [point.params.get(param) for point in trials.points]
    numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs_raw)
    categories = list(dict.fromkeys(map(str, xs_raw)))
    phases = trials.phases()
    lanes = trials.lanes()
    with _style(key):
        fig, axes = _grid(len(phases), height=2.7, per_row=3)
        for ax, phase in zip(axes, phases):
            for i, name in enumerate(lanes):
                colour = LANE_COLOURS[i % len(LANE_COLOURS)]
                groups: dict[tuple, list[tuple[Any, dict[str, Any]]]] = {}
                for point in trials.points:
                    cell = point.lanes.get(name, {}).get(phase)
                    if cell and cell.get("median") is not None:
                        group = tuple(point.params.get(o) for o in others)
                        groups.setdefault(group, []).append((point.params.get(param), cell))
                for g, (group, cells) in enumerate(groups.items()):
                    cells.sort(key=lambda c: c[0] if numeric else categories.index(str(c[0])))
                    x = np.array([v if numeric else categories.index(str(v)) for v, _ in cells], dtype=float)
                    med = np.array([c["median"] for _, c in cells], dtype=float)
                    label = name + "".join(f", {o.split('.')[-1]}={v}" for o, v in zip(others, group))
                    style = ("-", "--", ":", "-.")[g % 4]
                    ax.plot(x, med, style, marker="o", ms=4, color=colour, label=label)
                    iqr = [c.get("iqr") for _, c in cells]
                    if all(iqr):
                        ax.fill_between(x, [q[0] for q in iqr], [q[1] for q in iqr], color=colour, alpha=0.15, lw=0)
                    ci = [c.get("ci95") for _, c in cells]
                    if all(ci):
                        ax.errorbar(x, med, yerr=[med - [c[0] for c in ci], [c[1] for c in ci] - med], fmt="none",
                                    ecolor=colour, capsize=3, lw=1)
                    pred = [c.get("prediction") for _, c in cells]
                    if any(p is not None for p in pred):
                        ax.plot(x, [np.nan if p is None else p for p in pred], ls=(0, (2, 2)), marker="x", ms=6,
                                color=colour, alpha=0.9, label=f"{label}: prediction")
            _phase_axis(ax, phase)
            ax.set_xlabel(param)
            if not numeric:
                ax.set_xticks(range(len(categories)), categories)
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=min(4, max(1, len(labels))))
        return _plot(fig, key, f"Phases against {param}",
                     "Median per parameter value (line), interquartile range (band) and 95 % interval of the "
                     "median (bars), per lane; dashed with crosses: the prediction where one exists (for a polling "
                     "agent, the expected wait for its next poll).")


# --- helpers ----------------------------------------------------------------------------------------------------
@contextmanager
def _style(key: str) -> Iterator[None]:
    with matplotlib.rc_context({**STYLE, "svg.hashsalt": key}):
        yield


def _grid(n: int, *, height: float, per_row: int = 2, sharey: bool = False) -> tuple[Figure, list[Any]]:
    cols = min(n, per_row)
    rows = -(-n // cols)
    fig = Figure(figsize=(WIDTH, height * rows + 0.4), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, sharey=sharey).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _marks(ax: Any, marks: list[tuple[float, str, str]]) -> None:
    for t, phase, _version in marks:
        if phase in MARKS and t >= 0:
            _, colour, style = MARKS[phase]
            ax.axvline(t, color=colour, ls=style, lw=0.9, alpha=0.8)


EXTRA_PHASES = {  # other keys a trial set carries (trials.py): title, unit
    "self_heal": ("self-heal (changed → reverted)", "seconds"),
    "drift_to_retrained": ("drift → retrained model at 100 %", "seconds"),
    "wait_labels": ("wait for labelled rows", "seconds"),
    "training_seconds": ("time spent training (all retrains)", "seconds"),
    "accuracy_seconds_lost": ("accuracy-seconds lost", "accuracy × s"),
}


def phase_title(phase: str) -> str:
    """`commit → 1st ready` for a lead-time phase, a known extra by its name; any other key as it is."""
    if phase in PHASE_LABELS:
        return f"commit → {PHASE_LABELS[phase]}"
    return EXTRA_PHASES[phase][0] if phase in EXTRA_PHASES else phase


def _phase_axis(ax: Any, phase: str) -> None:
    ax.set_title(phase_title(phase), loc="left")
    if phase in PHASE_LABELS:
        ax.set_ylabel("seconds after the commit")
    elif phase in EXTRA_PHASES:
        ax.set_ylabel(EXTRA_PHASES[phase][1])


def _mark_legend(fig: Figure) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, ls=s, lw=1) for _, c, s in MARKS.values()]
    fig.legend(handles, [label for label, _, _ in MARKS.values()], loc="outside lower center", ncols=len(MARKS))


def _interval(values: list[float]) -> tuple[float, float]:
    if len(values) < 10:
        return min(values), max(values)
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (1 << 30, version)


def _plot(fig: Figure, key: str, title: str, caption: str) -> Plot:
    return Plot(key, title, caption, to_svg(fig, key, title))


def to_svg(fig: Figure, key: str, title: str) -> str:
    """The figure as an <svg> element for inlining: no XML prolog, ids prefixed with `key`, a title."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r'\bid="([^"]+)"', rf'id="{key}-\1"', text)
    text = re.sub(r"url\(#([^)]+)\)", rf"url(#{key}-\1)", text)
    text = re.sub(r'href="#([^"]+)"', rf'href="#{key}-\1"', text)
    label = title.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    return text.replace("<svg ", f'<svg class="plot" data-plot="{key}" role="img" aria-label="{label}" ', 1)
