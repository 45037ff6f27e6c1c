"""The side-by-side summary table shown when a run ends (the same numbers as `report.table`)."""

from __future__ import annotations

from typing import Any

from textual.widgets import DataTable

from mlopslab import report
from mlopslab.monitor.timeline import PHASES


def rows(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    lanes = summary["lanes"]
    names = list(lanes)
    out: list[list[str]] = []
    versions = sorted({r["version"] for lane in lanes.values() for r in lane["releases"] if not r["setup"]},
                      key=report._version_key)
    for version in versions:
        per_lane = [next((r for r in lanes[n]["releases"] if r["version"] == version and not r["setup"]), None)
                    for n in names]
        out.append([f"v{version}"] + ["" for _ in names])
        for phase in PHASES[1:]:
            out.append([f"  commit → {report.PHASE_LABELS[phase]}"] +
                       [report._fmt(r["lead"][phase]) if r else "—" for r in per_lane])
        out.append(["  rollout (apply → 100%)"] + [report._fmt(r["rollout_duration"]) if r else "—" for r in per_lane])
        out.append(["  errors during rollout"] + [
            f"{r['errors_during_rollout']}/{r['requests_during_rollout']}" if r else "—" for r in per_lane])
        out.append(["  p99 during rollout"] + [report._fmt(r["p99_during_rollout_ms"], " ms") if r else "—"
                                              for r in per_lane])
    out.append(["live changes: self-heal"] + [
        ", ".join(report._fmt(c["reverted_after"]) if c["reverted_after"] is not None else "never"
                  for c in lanes[n]["live_changes"]) or "—" for n in names])
    out.append(["requests / errors"] + [f"{lanes[n]['requests']} / {lanes[n]['errors']}" for n in names])
    out.append(["p99 (median of 1 s windows)"] + [report._fmt(lanes[n]["p99_ms_median_of_windows"], " ms")
                                                  for n in names])
    header = [f"status: {summary['status']}"] + [f"{n} ({lanes[n]['delivery']})" for n in names]
    return header, out


class SummaryTable(DataTable):
    """`show(summary)` fills the table once per distinct summary."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(zebra_stripes=True, cursor_type="row", **kwargs)
        self._shown: Any = None

    def show(self, summary: dict[str, Any]) -> None:
        header, body = rows(summary)
        if (header, body) == self._shown:
            return
        self._shown = (header, body)
        self.clear(columns=True)
        for i, label in enumerate(header):
            self.add_column(label, width=max(len(str(row[i])) for row in [header, *body]))
        self.add_rows(body)
