"""The report page: one self-contained HTML file (inline CSS and SVG, nothing fetched) and a Markdown twin.

For each run: the scenario and its narration, the side-by-side summary (`report.rows`, the table the
terminal prints), the credentials, and the plots. For a trial set (repeat or sweep): the aggregate per
lane, phase and parameter point, the distributions and the parameter curves. Several runs side by side
also get lead-time bars with intervals over all of them. A small inline script checks, when the page is
opened, that every plot has a size, and says so at the bottom (`#render-check`): the test reads it.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mlopslab import report
from mlopslab.reporting.runs import ReportError, Run, Trials, load

__all__ = ["ReportError", "build", "default_out", "write"]

CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d1d1f; margin: 0;
       background: #fafafa; }
main { max-width: 1000px; margin: 0 auto; padding: 24px 20px 48px; background: #fff; }
h1 { font-size: 1.6em; margin: 0 0 4px; } h2 { margin-top: 2em; border-bottom: 2px solid #e5e5e5; }
h3 { margin: 1.4em 0 0.4em; font-size: 1.08em; }
.meta, figcaption, footer { color: #555; font-size: 0.9em; }
table { border-collapse: collapse; font-size: 0.88em; margin: 8px 0; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid #e5e5e5; padding: 3px 10px; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
tr.section td { font-weight: 600; background: #f3f4f6; }
ol.narration { padding-left: 0; list-style: none; } ol.narration li { margin: 2px 0; }
.t { display: inline-block; min-width: 4.5em; color: #666; font-variant-numeric: tabular-nums; }
figure { margin: 18px 0; } figure svg { width: 100%; height: auto; display: block; }
figure.broken { outline: 3px solid #c44e52; }
code { font-size: 0.92em; }
"""

CHECK = """
(function () {
  var plots = document.querySelectorAll("svg.plot"), ok = 0;
  plots.forEach(function (svg) {
    var box = svg.getBoundingClientRect();
    if (box.width > 0 && box.height > 0 && svg.querySelector("path, use, rect")) { ok++; }
    else { svg.closest("figure").classList.add("broken"); }
  });
  var out = document.getElementById("render-check");
  out.dataset.rendered = ok; out.dataset.total = plots.length;
  out.textContent = "Plots rendered in this browser: " + ok + " of " + plots.length + ".";
})();
"""


@dataclass
class Section:
    """One run, trial set or comparison: its HTML and Markdown, and the plots both show."""

    html: list[str] = field(default_factory=list)
    md: list[str] = field(default_factory=list)
    plots: list[Any] = field(default_factory=list)

    def heading(self, level: int, text: str) -> None:
        self.html.append(f"<h{level}>{_e(text)}</h{level}>")
        self.md += ["#" * level + " " + text, ""]

    def para(self, text: str, cls: str = "") -> None:
        if text:
            self.html.append(f'<p class="{cls}">{_e(text)}</p>' if cls else f"<p>{_e(text)}</p>")
            self.md += [text, ""]

    def plot(self, plot: Any) -> None:
        if plot is None:
            return
        self.plots.append(plot)
        self.html.append(f'<figure id="{plot.key}"><h3>{_e(plot.title)}</h3>{plot.svg}'
                         f"<figcaption>{_e(plot.caption)}</figcaption></figure>")
        self.md += [f"### {plot.title}", "", f"![{plot.title}]({{plots}}/{plot.key}.svg)", "", f"*{plot.caption}*", ""]

    def table(self, header: list[str], body: list[list[str]], md: str | None = None) -> None:
        cells = "".join(f"<th>{_e(h)}</th>" for h in header)
        rows = []
        for row in body:
            cls = ' class="section"' if report.is_section(row) else ""
            rows.append(f"<tr{cls}>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>")
        self.html.append(f"<table><thead><tr>{cells}</tr></thead><tbody>{''.join(rows)}</tbody></table>")
        self.md += [md if md is not None else _md_table(header, body), ""]


def write(paths: list[Path], out: Path | None = None) -> tuple[Path, Path]:
    """Writes the HTML page, its Markdown twin (.md) and the twin's SVG files (<stem>-plots/)."""
    if not paths:
        raise ReportError("no results given")
    out = Path(out) if out else default_out(Path(paths[0]))
    items = [load(Path(p)) for p in paths]
    page, md, plots = build(items, sources=[str(p) for p in paths])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    folder = out.parent / f"{out.stem}-plots"
    folder.mkdir(exist_ok=True)
    for plot in plots:
        (folder / f"{plot.key}.svg").write_text(plot.svg, encoding="utf-8")
    md_path = out.with_suffix(".md")
    md_path.write_text(md.replace("{plots}", folder.name), encoding="utf-8")
    return out, md_path


def default_out(first: Path) -> Path:
    """report.html in a results directory; beside an events file, named after it."""
    if first.is_dir():
        return first / "report.html"
    return first.parent / f"{first.name.split('.')[0]}-report.html"


def build(items: list[Run | Trials], *, sources: list[str]) -> tuple[str, str, list[Any]]:
    """(HTML page, Markdown with `{plots}` where the SVG folder goes, the plots)."""
    sections = []
    for i, item in enumerate(items):
        sections.append(_trials(item, f"s{i}") if isinstance(item, Trials) else _run(item, f"s{i}"))
    by_scenario: dict[str, list[Run]] = {}
    for item in items:
        if isinstance(item, Run):
            by_scenario.setdefault(item.name, []).append(item)
    for runs in by_scenario.values():  # runs of one scenario side by side: their lead times pooled
        if len(runs) > 1:
            sections.append(_across(runs, f"s{len(sections)}"))
    names = ", ".join(dict.fromkeys(item.name for item in items))
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    intro = f"Generated by mlopslab on {stamp} from {', '.join(sources)}."
    body = "\n".join(part for s in sections for part in s.html)
    page = (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>mlopslab report — {_e(names)}</title><style>{CSS}</style></head>\n"
            f"<body><main><h1>mlopslab report — {_e(names)}</h1><p class=\"meta\">{_e(intro)}</p>\n{body}\n"
            f'<footer><p id="render-check" data-rendered="" data-total="">Plots: '
            f"{sum(len(s.plots) for s in sections)} (inline SVG).</p></footer></main>"
            f"<script>{CHECK}</script></body></html>\n")
    md = "\n".join([f"# mlopslab report — {names}", "", intro, ""] + [line for s in sections for line in s.md])
    return page, md, [plot for s in sections for plot in s.plots]


def _run(run: Run, key: str) -> Section:
    from mlopslab.reporting import plots

    summary = run.summary
    sc = summary.scenario
    out = Section()
    status = summary.status
    out.heading(2, f"{run.name} — {'unfinished' if status == 'running' else status}")
    if status == "running":
        out.para("The events end without run_finished: the run crashed, or was still going when this was "
                 "written. Everything up to its last event is shown.", "meta")
    out.para(sc.get("description", ""))
    out.para(_meta(sc, summary.duration, run.path), "meta")
    _narration(out, run)
    out.heading(3, "Side-by-side summary")
    if summary.lanes:
        header, body = report.rows(summary)
        out.table(header, body, report.table(summary))
        out.para("Times are seconds after the commit, on the run's one clock; — means the phase did not happen.",
                 "meta")
        out.heading(3, "Credentials per lane")
        for name, lane in summary.lanes.items():
            out.html.append(f"<p><b>{_e(name)}</b> ({_e(lane.delivery)}): {_e(lane.credential)}</p>")
            out.md += [f"- **{name}** ({lane.delivery}): {lane.credential}"]
        out.md.append("")
    else:
        out.para("The run has no lanes: it stopped before any started.")
    out.plot(plots.latency(run, f"{key}-latency"))
    out.plot(plots.shares(run, f"{key}-shares"))
    out.plot(plots.lead_times([run], f"{key}-lead"))
    out.plot(plots.drift_accuracy(run, f"{key}-drift"))
    return out


def _trials(trials: Trials, key: str) -> Section:
    from mlopslab.reporting import plots

    out = Section()
    runs = sum(len(point.runs) for point in trials.points)
    kind = f"sweep over {', '.join(trials.params)}" if trials.params else "repeated trials"
    out.heading(2, f"{trials.name} — {kind}")
    out.para(trials.scenario.get("description", ""))
    out.para(f"{len(trials.points)} parameter point(s), {runs} run(s)"
             + (f", {trials.repeat} per point" if trials.repeat else "") + f"; results in {trials.path}.", "meta")
    if trials.first is not None:
        _narration(out, trials.first)
    out.heading(3, "Per lane and phase")
    header, body = _trial_rows(trials)
    out.table(header, body)
    out.para("Lead times in seconds after the commit; the ML loop's costs in seconds, accuracy-seconds lost in "
             "accuracy × s. IQR: the middle half of the measurements; 95 %: the interval of the median; pred: the "
             "prediction, where one exists.", "meta")
    out.plot(plots.curves(trials, f"{key}-curves"))
    for i, point in enumerate(trials.points):
        out.plot(plots.distributions(trials, point, f"{key}-dist{i}"))
    out.heading(3, "Runs")
    listed = ", ".join(f"{name} ({status})" if status else name for point in trials.points
                       for name, status in zip(point.runs, point.statuses + [None] * len(point.runs)))
    out.para(f"Each a results directory under {trials.path}: {listed}." if listed else "No runs listed.", "meta")
    return out


def _trial_rows(trials: Trials) -> tuple[list[str], list[list[str]]]:
    """One row block per parameter point, one row per phase; per lane: median, IQR, 95 % (and prediction)."""
    from mlopslab.reporting.plots import phase_title

    lanes = trials.lanes()
    predicted = {lane for point in trials.points for lane in lanes
                 if any(c.get("prediction") is not None for c in point.lanes.get(lane, {}).values())}
    header = [""]
    for lane in lanes:
        header += [f"{lane} median", "IQR", "95 %"] + (["pred"] if lane in predicted else [])
    body = []
    for point in trials.points:
        body.append([point.label()] + [""] * (len(header) - 1))
        for phase in trials.phases():
            row = [f"  {phase_title(phase)}"]
            for lane in lanes:
                cell = point.lanes.get(lane, {}).get(phase) or {}
                row += [_num(cell.get("median")), _range(cell.get("iqr")), _range(cell.get("ci95"))]
                row += [_num(cell.get("prediction"))] if lane in predicted else []
            body.append(row)
    return header, body


def _across(runs: list[Run], key: str) -> Section:
    from mlopslab.reporting import plots

    out = Section()
    out.heading(2, f"{runs[0].name} — across {len(runs)} runs")
    out.plot(plots.lead_times(runs, f"{key}-lead"))
    return out


def _narration(out: Section, run: Run) -> None:
    if not run.state.narration:
        return
    out.heading(3, "Narration")
    items = "".join(f'<li><span class="t">{t:.0f} s</span>{_e(text)}</li>' for t, text in run.state.narration)
    out.html.append(f'<ol class="narration">{items}</ol>')
    out.md += [f"- **{t:.0f} s** {text}" for t, text in run.state.narration] + [""]


def _meta(sc: dict[str, Any], duration: Any, path: Path) -> str:
    parts = [f"Environment: {sc.get('environment', '?')}", f"traffic {sc.get('rate', '?')} req/s"]
    if duration is not None:
        parts.append(f"ran {float(duration):.0f} s")
    if sc.get("seed") is not None:
        parts.append(f"seed {sc['seed']}")
    return ", ".join(parts) + f"; results: {path}"


def _md_table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    body = [[f"**{row[0]}**", *row[1:]] if report.is_section(row) else row for row in body]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body]
    return "\n".join(lines)


def _num(value: Any) -> str:
    return "—" if value is None else f"{float(value):.2f}"


def _range(pair: Any) -> str:
    return "—" if not pair or None in pair else f"{float(pair[0]):.2f}–{float(pair[1]):.2f}"


def _e(text: Any) -> str:
    return html.escape(str(text))
