"""A lane's strategy on screen: the weight plot (percent of user requests on the candidate, copies and
cohorts shaded apart, promote/rollback marked) and the gate panel (each gate's latest measured value
against its threshold, and its verdict), both drawn from the same snapshot in a live run and a replay."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from mlopslab.tui.view import LaneView, series_key
from mlopslab.tui.widgets.chart import Chart, line, vline

WEIGHT_COLOR, MIRROR_COLOR, COHORT_COLOR = "#5aa9ff", "#d98cff", "#e6d65a"
DECISION_COLORS = {"promoted": "#6fd36f", "rolled_back": "#ff6b6b"}
VERDICTS = {"pass": ("✓", "#6fd36f"), "fail": ("✗", "#ff6b6b"), "wait": ("…", "#ffd75f"),
            "marginal": ("~", "#ffb347")}
PHASE_COLORS = {"Failed": "#ff6b6b", "Succeeded": "#6fd36f", "Paused": "#ffb347", "Promoting": "#4fd6d6",
                "Finalising": "#4fd6d6"}


def has_strategy(lane: LaneView) -> bool:
    return bool(lane.strategy) and lane.strategy not in ("rolling", "recreate")


def panel(lane: LaneView) -> Text:
    """`canary Progressing v2 40 % · failed checks 1`, then one line per gate: `✓ p99 23.5 ≤ 100`."""
    step, text = lane.rollout_step, Text()
    phase = step.get("phase") or "—"
    text.append(f"{lane.strategy} ", style="bold #5aa9ff")
    text.append(phase, style=f"bold {PHASE_COLORS.get(phase, '#e0e0e0')}")
    if step.get("version") and step.get("version") != step.get("stable"):
        text.append(f" v{step.get('version')}")
        if step.get("weight"):
            text.append(f" {step['weight']:g}%", style=WEIGHT_COLOR)
        if step.get("mirror"):
            text.append(" copies", style=MIRROR_COLOR)
        if step.get("cohort"):
            text.append(f" cohorts {step['cohort']:g}%", style=COHORT_COLOR)
    if step.get("failed_checks"):
        text.append(f" · failed {step['failed_checks']}", style="#ff6b6b")
    if phase == "Paused":
        text.append("\n  waiting for a person: p promote, a abort", style="bold #ffb347")
    for gate in lane.gates:
        glyph, color = VERDICTS.get(str(gate.get("verdict")), ("?", "#8a8a8a"))
        text.append(f"\n{glyph} ", style=f"bold {color}")
        text.append(f"{gate.get('gate')} ")
        value, limit = gate.get("value"), gate.get("threshold")
        sign = "≥" if gate.get("bound") == "min" else "≤"
        if value is None:
            text.append(f"waiting ({gate.get('n_canary', 0)} samples) {sign} {limit:g}" if limit is not None
                        else "waiting", style="#ffd75f")
        else:
            text.append(f"{value:.3g} {sign} {limit:g}" if limit is not None else f"{value:.3g}", style=color)
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
    legend = [("% users", WEIGHT_COLOR)]
    if any(p[2] for p in points):
        legend.append(("copies", MIRROR_COLOR))
    if any(p[3] for p in points):
        legend.append(("% cohorts", COHORT_COLOR))
    legend += [(d.replace("_", " "), DECISION_COLORS.get(d, "#e0e0e0")) for d in sorted({d for _, d in decisions})]

    def paint(fig: Any) -> None:
        from mlopslab.tui.widgets.lane import time_axis

        x = [p[0] for p in stepped]
        line(fig, x, [p[1] for p in stepped], WEIGHT_COLOR)
        if any(p[2] for p in stepped):
            line(fig, x, [100.0 if p[2] else 0.0 for p in stepped], MIRROR_COLOR)
        if any(p[3] for p in stepped):
            line(fig, x, [p[3] for p in stepped], COHORT_COLOR)
        for t, decision in decisions:
            vline(fig, t, DECISION_COLORS.get(decision, "#e0e0e0"))
        time_axis(fig, xs, chart.content_size.width)
        fig.ruler("y").lim(0, 105)
        fig.ruler("y").ticks([0, 50, 100], ["0", "50", "100"])

    chart.plot((series_key(lane.weights), tuple(lane.decisions), xs), paint, legend)
