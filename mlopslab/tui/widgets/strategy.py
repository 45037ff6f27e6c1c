"""A lane's strategy on screen: the weight plot (percent of user requests on the candidate, copies and
cohorts shaded apart, promote/rollback and the rollout's commit, detected, applied, done marked) and the gate panel (each gate's latest measured value
against its threshold, and its verdict), both drawn from the same snapshot in a live run and a replay."""

from __future__ import annotations

import re
from typing import Any

from rich.text import Text

from mlopslab.tui.view import LaneView, series_key
from mlopslab.tui.widgets.chart import Chart, line, vline

WEIGHT_COLOR, MIRROR_COLOR, COHORT_COLOR = "#5aa9ff", "#d98cff", "#e6d65a"
DECISION_COLORS = {"promoted": "#6fd36f", "rolled_back": "#ff6b6b"}
VERDICTS = {"pass": ("✓", "#6fd36f"), "fail": ("✗", "#ff6b6b"), "wait": ("…", "#ffd75f"),
            "marginal": ("~", "#ffb347")}
SAMPLES = re.compile(r"(\d+) of (\d+) samples")
PHASE_COLORS = {"Failed": "#ff6b6b", "Succeeded": "#6fd36f", "Paused": "#ffb347", "Promoting": "#4fd6d6",
                "Finalising": "#4fd6d6"}


def has_strategy(lane: LaneView) -> bool:
    return bool(lane.strategy) and lane.strategy not in ("rolling", "recreate")


def panel(lane: LaneView, width: int = 0) -> Text:
    """`canary Progressing v2 40 % · failed checks 1`, then the gates: `✓ p99 23.5 ≤ 100`, one a line, or
    side by side as they fit in `width` columns, beside the phase if all fit (a full-width lane keeps its
    plots on a short terminal)."""
    step, head = lane.rollout_step, Text()
    phase = step.get("phase") or "—"
    head.append(f"{lane.strategy} ", style="bold #5aa9ff")
    head.append(phase, style=f"bold {PHASE_COLORS.get(phase, '#e0e0e0')}")
    if step.get("version") and step.get("version") != step.get("stable"):
        head.append(f" v{step.get('version')}")
        if step.get("weight"):
            head.append(f" {step['weight']:g}%", style=WEIGHT_COLOR)
        if step.get("mirror"):
            head.append(" copies", style=MIRROR_COLOR)
        if step.get("cohort"):
            head.append(f" cohorts {step['cohort']:g}%", style=COHORT_COLOR)
    if step.get("failed_checks"):
        head.append(f" · failed {step['failed_checks']}", style="#ff6b6b")
    gates = list(map(_gate, lane.gates))
    text = _pack([head, *gates], width)   # all on the phase's line if they fit, else the gates under it
    if gates and "\n" in text.plain:
        text = Text.assemble(head, "\n", _pack(gates, width))
    if phase == "Paused":   # after the phase's line: what the person is to do
        first, newline, rest = text.plain.partition("\n")
        text = Text.assemble(text[:len(first)], ("\n  waiting for a person: p promote, a abort", "bold #ffb347"),
                             text[len(first):] if newline else "")
    return text


def _gate(gate: dict[str, Any]) -> Text:
    glyph, color = VERDICTS.get(str(gate.get("verdict")), ("?", "#8a8a8a"))
    text = Text.assemble((f"{glyph} ", f"bold {color}"), f"{gate.get('gate')} ")
    value, limit = gate.get("value"), gate.get("threshold")
    sign = "≥" if gate.get("bound") == "min" else "≤"
    if value is None:   # `… accuracy ≥ 0.75: 22/25 samples`: what it waits for, in a lane's 36 columns
        have = SAMPLES.search(str(gate.get("detail") or ""))
        count = f"{have[1]}/{have[2]}" if have else str(gate.get("n_canary", 0))
        text.append(f"{sign} {limit:g}: {count} samples" if limit is not None else f"waiting: {count} samples",
                    style="#ffd75f")
    else:
        text.append(f"{value:.3g} {sign} {limit:g}" if limit is not None else f"{value:.3g}", style=color)
    return text


def _pack(pieces: list[Text], width: int) -> Text:
    """The pieces one a line, or as many side by side (two spaces apart) as fit in `width`."""
    text, used = Text(), 0
    for i, piece in enumerate(pieces):
        if i and used and used + 2 + len(piece) <= width:
            text.append("  ")
            used += 2
        elif i:
            text.append("\n")
            used = 0
        text.append_text(piece)
        used += len(piece)
    return text


def show_weights(chart: Chart, lane: LaneView, xs: tuple[float, float]) -> None:
    if not lane.weights:
        chart.empty("no release under this strategy yet")
        return
    points = [p for p in lane.weights if p[0] >= xs[0]] or [lane.weights[-1]]
    # a step function: each weight holds until the next step
    stepped: list[tuple[float, float, bool, float]] = []
    for point in points:
        if stepped:
            stepped.append((point[0], stepped[-1][1], stepped[-1][2], stepped[-1][3]))
        stepped.append(point)
    stepped.append((xs[1], *stepped[-1][1:]))
    decisions = [(t, d) for t, d in lane.decisions if xs[0] <= t <= xs[1]]
    from mlopslab.tui.widgets import lane as lanes

    marks = lanes.shown_marks(lane, xs, lanes.ROLLOUT_MARKS)
    legend = [("users", WEIGHT_COLOR)]
    if any(p[2] for p in points):
        legend.append(("copies", MIRROR_COLOR))
    if any(p[3] for p in points):
        legend.append(("cohorts", COHORT_COLOR))
    legend += [(d.replace("_", " "), DECISION_COLORS.get(d, "#e0e0e0")) for d in sorted({d for _, d in decisions})]
    legend += lanes.mark_legend(marks)

    def paint(fig: Any) -> None:

        x = [p[0] for p in stepped]
        line(fig, x, [p[1] for p in stepped], WEIGHT_COLOR)
        if any(p[2] for p in stepped):
            line(fig, x, [100.0 if p[2] else 0.0 for p in stepped], MIRROR_COLOR)
        if any(p[3] for p in stepped):
            line(fig, x, [p[3] for p in stepped], COHORT_COLOR)
        for t, decision in decisions:
            vline(fig, t, DECISION_COLORS.get(decision, "#e0e0e0"))
        lanes.draw_marks(fig, marks, 112, lanes.cell(chart, xs))
        lanes.time_axis(fig, xs, chart.content_size.width)
        fig.ruler("y").lim(0, 120)
        fig.ruler("y").ticks([0, 50, 100], ["0", "50", "100"])

    chart.plot((series_key(lane.weights), tuple(lane.decisions), len(lane.marks), xs), paint, legend)
