"""`mlopslab report`: one self-contained HTML page (and a Markdown twin) per set of runs, checked in headless
Chromium from Debian's packages: the page loads from a file:// URL, every plot has a size, a screenshot is
taken. No Chromium: the browser tests skip, unless MLOPSLAB_REQUIRE_CHROMIUM=1 (CI), where they fail."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from mlopslab import report
from mlopslab.reporting import page, runs

DATA = Path(__file__).resolve().parent / "data"
REPO = Path(__file__).resolve().parents[1]
SHORT = DATA / "short-run"
DRIFT = DATA / "drift-levels-short"
RECORDED = REPO / "assets" / "push-vs-pull.events.jsonl"
SWEEP = DATA / "trials-sweep"
REPEAT = DATA / "trials-repeat"
BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--proxy-server=127.0.0.1:9"]  # a proxy nothing listens on: a page that fetched would break


@pytest.fixture(scope="session")
def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        reason = "chromium is not installed (apt-get install -y chromium)"
        if os.environ.get("MLOPSLAB_REQUIRE_CHROMIUM") == "1":
            pytest.fail(f"MLOPSLAB_REQUIRE_CHROMIUM=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    return path


def _browser(chromium: str, html: Path, tmp_path: Path, *extra: str) -> str:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    profile.mkdir()
    done = subprocess.run([chromium, *BROWSER_FLAGS, f"--user-data-dir={profile}", *extra, html.resolve().as_uri()],
                          capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _rendered(chromium: str, html: Path, tmp_path: Path) -> tuple[int, int]:
    """(plots with a size, plots) as the page's own check wrote them into the DOM Chromium built."""
    dom = _browser(chromium, html, tmp_path, "--dump-dom")
    found = re.search(r'id="render-check" data-rendered="(\d+)" data-total="(\d+)"', dom)
    assert found, "the page's render check did not run"
    return int(found.group(1)), int(found.group(2))


def _write(tmp_path: Path, *paths: Path, name: str = "report.html") -> tuple[Path, Path, str]:
    html, md = page.write(list(paths), tmp_path / name)
    return html, md, html.read_text()


def _plot_keys(text: str) -> list[str]:
    return re.findall(r'<svg class="plot" data-plot="([^"]+)"', text)


def test_report_of_a_recorded_run_renders_every_plot_in_chromium(chromium, tmp_path):
    html, _, text = _write(tmp_path, DRIFT)
    keys = _plot_keys(text)
    assert keys == ["s0-latency", "s0-shares", "s0-lead", "s0-drift"]
    assert _rendered(chromium, html, tmp_path) == (4, 4)
    shot = tmp_path / "report.png"
    _browser(chromium, html, tmp_path, "--window-size=1100,2400", "--hide-scrollbars", f"--screenshot={shot}")
    head = shot.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", head[16:24]) == (1100, 2400)


def test_render_check_flags_a_plot_with_no_size(chromium, tmp_path):
    html, _, text = _write(tmp_path, SHORT)
    html.write_text(text.replace('data-plot="s0-shares"', 'data-plot="s0-shares" style="display:none"', 1))
    rendered, total = _rendered(chromium, html, tmp_path)
    assert (rendered, total) == (total - 1, len(_plot_keys(text)))


def test_report_page_fetches_nothing(tmp_path):
    _, _, text = _write(tmp_path, SHORT)
    assert "<link" not in text and "@import" not in text
    assert not re.search(r'\b(src|href)="(https?:)?//', text)
    assert not re.search(r"url\((['\"]?)(https?:)?//", text)
    assert "<script src" not in text


def test_report_from_an_events_file_alone_rebuilds_the_side_by_side_summary(tmp_path):
    html, md, text = _write(tmp_path, RECORDED)
    summary = runs.load(RECORDED).summary
    assert not (RECORDED.parent / "summary.json").exists()
    header, body = report.rows(summary)
    for row in body:
        cells = "".join(f"<td>{page._e(c)}</td>" for c in row)
        assert cells in text, row
    assert report.table(summary) in md.read_text()
    assert "A release is committed" in text  # the narration, as it was narrated
    assert summary.scenario["description"] in text


def test_drift_and_accuracy_appear_only_for_runs_that_have_them(tmp_path):
    _, _, with_drift = _write(tmp_path, DRIFT, name="drift.html")
    _, _, without = _write(tmp_path, RECORDED, name="plain.html")
    assert "s0-drift" in _plot_keys(with_drift)
    assert "s0-drift" not in _plot_keys(without)


def test_markdown_twin_links_an_svg_file_for_every_plot(tmp_path):
    html, md, text = _write(tmp_path, DRIFT)
    links = re.findall(r"!\[[^\]]*\]\(([^)]+\.svg)\)", md.read_text())
    assert [Path(link).stem for link in links] == _plot_keys(text)
    for link in links:
        assert (md.parent / link).read_text().startswith("<svg")


def test_report_of_a_sweep_draws_curves_with_the_prediction_and_a_distribution_per_point(chromium, tmp_path):
    html, md, text = _write(tmp_path, SWEEP)
    summary = json.loads((SWEEP / "summary.json").read_text())
    keys = _plot_keys(text)
    assert keys == ["s0-curves"] + [f"s0-dist{i}" for i in range(len(summary["points"]))]
    curves = text[text.index('data-plot="s0-curves"'):]
    assert "pull: prediction" in curves[:curves.index("</svg>")]
    for point in summary["points"]:
        pull = point["lanes"]["pull"]["detected"]
        assert f"{pull['median']:.2f}" in text and f"{pull['prediction']:.2f}" in text
    assert "self-heal (changed → reverted)" in text  # an extra key the set carries
    assert "commit → commit" not in text               # 0 by definition: not a phase to show
    assert "Both lanes start from version 1" in text  # narration from the set's first run directory
    assert _rendered(chromium, html, tmp_path) == (len(keys), len(keys))


def test_report_of_plain_repeats_draws_distributions_without_curves(tmp_path):
    _, _, text = _write(tmp_path, REPEAT)
    assert _plot_keys(text) == ["s0-dist0"]
    assert "repeated trials" in text
    assert "errors_during_rollout" in text  # a key the report does not know is shown as it is
    assert "run-4 (failed)" in text


def test_several_runs_of_one_scenario_get_lead_times_with_intervals_over_all_of_them(tmp_path):
    other = tmp_path / "again"
    shutil.copytree(SHORT, other)
    _, _, text = _write(tmp_path, SHORT, other, RECORDED)
    assert "short-push-pull — across 2 runs" in text
    assert "s3-lead" in _plot_keys(text)
    assert "median over 2 run(s)" in text
    assert "across 1 run" not in text and "push-vs-pull — across" not in text  # another scenario: not pooled


def test_report_of_a_crashed_run_shows_what_it_recorded_and_says_it_is_unfinished(tmp_path):
    torn = tmp_path / "crashed"
    torn.mkdir()
    (torn / "events.jsonl").write_bytes((SHORT / "events.jsonl").read_bytes()[:20000])  # cut mid-line
    _, _, text = _write(tmp_path, torn)
    assert "short-push-pull — unfinished" in text and "without run_finished" in text
    assert {"s0-latency", "s0-shares", "s0-lead"} <= set(_plot_keys(text))


def test_report_cli_refuses_a_directory_that_is_not_a_run(tmp_path):
    done = subprocess.run([sys.executable, "-m", "mlopslab", "report", str(tmp_path)], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert done.returncode == 2
    assert "not a results directory" in done.stderr and "Traceback" not in done.stderr


def test_report_cli_writes_report_html_into_the_results_directory(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(SHORT, run)
    done = subprocess.run([sys.executable, "-m", "mlopslab", "report", str(run)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (run / "report.html").exists() and (run / "report.md").exists()


def test_cli_does_not_import_matplotlib_until_a_report_is_written():
    probe = "import sys, mlopslab.cli; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}).stdout.strip()
    assert out == "False"


def test_report_of_a_grid_draws_one_line_per_value_of_the_other_parameter(tmp_path):
    """Two swept parameters (like levels-by-size): the first is the x axis, the second makes the lines."""
    def cell(median: float) -> dict:
        return {"n": 3, "median": median, "iqr": [median - 1, median + 1], "ci95": [median - 2, median + 2],
                "values": [median - 1, median, median + 1], "prediction": None}

    points = [{"params": {"model.data.n_samples": rows, "lanes[level1].replicas": replicas},
               "runs": [], "lanes": {"level1": {"drift_to_retrained": cell(rows / 1000 + replicas),
                                                "accuracy_seconds_lost": cell(rows / 500),
                                                "a_key_nobody_knows": cell(1.0)}}}
              for rows in (2000, 8000) for replicas in (1, 3)]
    parent = tmp_path / "grid"
    parent.mkdir()
    (parent / "summary.json").write_text(json.dumps({
        "kind": "trials", "scenario": {"name": "grid"}, "repeat": 3,
        "params": ["model.data.n_samples", "lanes[level1].replicas"], "points": points}))
    _, _, text = _write(tmp_path, parent)
    curves = text[text.index('data-plot="s0-curves"'):]
    curves = curves[:curves.index("</svg>")]
    assert "level1, replicas=1" in curves and "level1, replicas=3" in curves
    assert "accuracy-seconds lost" in curves and "drift → retrained model at 100 %" in curves
    assert "a_key_nobody_knows" in curves  # shown as it is
    assert _plot_keys(text) == ["s0-curves"] + [f"s0-dist{i}" for i in range(4)]


def test_report_of_a_sweep_over_named_cases_puts_the_cases_on_the_axis_in_order(tmp_path):
    """levels-by-size sweeps named cases (small, medium, large): categories on the x axis, one line per level."""
    cases = ("small", "medium", "large")
    points = [{"params": {"size": case}, "runs": [],
               "lanes": {f"level{k}": {"accuracy_seconds_lost": {"n": 1, "median": 10.0 * (i + 1) / (k + 1),
                                                                 "iqr": None, "ci95": None, "values": [1.0]}}
                         for k in range(3)}}
              for i, case in enumerate(cases)]
    parent = tmp_path / "levels"
    parent.mkdir()
    (parent / "summary.json").write_text(json.dumps({"kind": "trials", "scenario": {"name": "levels-by-size"},
                                                     "repeat": 1, "params": ["size"], "points": points}))
    _, _, text = _write(tmp_path, parent)
    curves = text[text.index('data-plot="s0-curves"'):]
    curves = curves[:curves.index("</svg>")]
    ticks = [curves.index(f">{case}<") for case in cases]
    assert ticks == sorted(ticks)  # small, medium, large: left to right as the sweep lists them
    assert all(f">level{k}<" in curves for k in range(3))
