"""Repeated trials and sweeps: every grid point validated up front with file:line, runs in their own
directories, distributions with intervals, and the prediction beside the polling agent's detection delay."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlopslab import scenario, sweep, trials
from mlopslab.scenario import LaneSpec
from tests.scenario_texts import push_and_pull

ROOT_SCENARIOS = Path(__file__).parent.parent / "scenarios"

TINY = """\
name: tiny
description: small and quick
seed: 3
duration: 12
model: {name: tiny, data: {n_features: 4, n_samples: 600}}
traffic: {rate: 10}
""" + push_and_pull(jitter="0.5") + """\
timeline:
  - {at: 3, release: {C: 0.5}}
  - {at: 7, release: {C: 2.0}}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(text)
    return path


def test_a_sweep_is_a_grid_of_validated_scenarios(tmp_path: Path) -> None:
    path = _write(tmp_path, TINY + "sweep:\n  lanes[pull].poll.interval: [1, 4]\n  traffic.rate: [5, 20, 40]\n")
    points = sweep.grid(path)
    assert len(points) == 6
    assert {(p.params["lanes[pull].poll.interval"], p.params["traffic.rate"]) for p in points} == {
        (i, r) for i in (1, 4) for r in (5, 20, 40)}
    for point in points:
        pull = next(lane for lane in point.scenario.lanes if lane.name == "pull")
        assert pull.poll_interval == point.params["lanes[pull].poll.interval"]
        assert point.scenario.rate == point.params["traffic.rate"]
        assert "sweep" not in point.document


def test_command_line_sets_replace_the_files_sweep_of_the_same_field(tmp_path: Path) -> None:
    path = _write(tmp_path, TINY + "sweep:\n  lanes[pull].poll.interval: [1, 4]\n")
    points = sweep.grid(path, [sweep.parse_set("lanes[pull].poll.interval=3,6,9")])
    assert [p.params for p in points] == [{"lanes[pull].poll.interval": v} for v in (3, 6, 9)]
    assert [p.scenario.lanes[1].poll_interval for p in points] == [3, 6, 9]


@pytest.mark.parametrize("entry, line, path, words", [
    ("lanes[nobody].poll.interval: [1, 2]", 15, "sweep.lanes[nobody].poll.interval", "no item named 'nobody'"),
    ("lanes[pull].poll.interval: [1, -2]", 15, "sweep.lanes[pull].poll.interval", "value -2: expected a value"),
    ("traffic.rate: []", 15, "sweep.traffic.rate", "non-empty list"),
    ("lanes..poll: [1]", 15, "sweep.lanes..poll", "not a field path"),
    ("traffic.speed: [1]", 15, "sweep.traffic.speed", "value 1: unknown field"),
])
def test_a_bad_sweep_path_or_value_gets_the_sweep_entrys_line(tmp_path: Path, entry: str, line: int, path: str,
                                                              words: str) -> None:
    file = _write(tmp_path, TINY + "sweep:\n  " + entry + "\n")
    with pytest.raises(scenario.ScenarioError) as info:
        sweep.grid(file)
    problem = info.value.problems[0]
    assert (problem.file, problem.line, problem.path) == (str(file), line, path)
    assert words in problem.message, problem.message


def test_validate_checks_every_point_of_a_sweep(tmp_path: Path) -> None:
    file = _write(tmp_path, TINY + "sweep:\n  lanes[pull].poll.interval: [1, 0]\n")
    result = subprocess.run([sys.executable, "-m", "mlopslab", "validate", str(file)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert f"{file}:15: sweep.lanes[pull].poll.interval: value 0: expected a value between 0.1 and 3600" in result.stderr


def test_a_bad_set_on_the_command_line_exits_2_naming_it(tmp_path: Path) -> None:
    file = _write(tmp_path, TINY)
    result = subprocess.run([sys.executable, "-m", "mlopslab", "run", str(file), "--set", "lanes[pull].poll=1"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("--set: lanes[pull].poll: value 1: expected a mapping"), result.stderr


def test_stats_give_the_median_its_iqr_and_a_bootstrap_interval_around_it() -> None:
    rng = np.random.default_rng(1)
    values = list(rng.uniform(0, 10, 400))
    s = trials.stats(values, np.random.default_rng(0))
    assert s["n"] == 400 and abs(s["median"] - 5) < 0.8
    assert s["iqr"][0] < s["median"] < s["iqr"][1] and abs(s["iqr"][0] - 2.5) < 0.8
    assert s["ci95"][0] < s["median"] < s["ci95"][1] and s["ci95"][1] - s["ci95"][0] < 2.0


def test_the_prediction_of_a_polling_agent_is_renewal_theory_and_simulation_agrees() -> None:
    lane = LaneSpec(name="p", delivery="pull", poll_interval=8.0, poll_jitter=4.0)
    predicted = trials.prediction(lane, "detected")
    rng = np.random.default_rng(2)
    polls = np.cumsum(8.0 + rng.uniform(0, 4.0, 200_000))       # the agent's poll instants
    commits = rng.uniform(polls[0], polls[-2], 100_000)           # commits at random moments
    waits = polls[np.searchsorted(polls, commits)] - commits
    assert abs(predicted - waits.mean()) < 0.05, (predicted, waits.mean())
    assert trials.prediction(LaneSpec(name="w", delivery="pull", webhook=True), "detected") is None
    assert trials.prediction(LaneSpec(name="c", delivery="push"), "detected") is None


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_repeat_runs_each_seed_in_its_own_directory_and_summarises_with_intervals(tmp_path: Path) -> None:
    file = _write(tmp_path, TINY)
    parent = tmp_path / "trials"
    result = subprocess.run([sys.executable, "-m", "mlopslab", "run", str(file), "--repeat", "2", "--results",
                             str(parent)], capture_output=True, text=True, timeout=380)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "run 1 of 2" in result.stdout and "run 2 of 2" in result.stdout and "ETA" in result.stdout
    summary = json.loads((parent / "summary.json").read_text())
    assert summary["kind"] == "trials" and summary["repeat"] == 2
    (point,) = summary["points"]
    assert point["runs"] == ["run-1", "run-2"] and point["statuses"] == ["ok", "ok"]
    seeds = [json.loads(line)["scenario"]["seed"] for run in point["runs"]
             for line in (parent / run / "events.jsonl").read_text().splitlines()[:1]]
    assert seeds == [3, 4]
    detected = point["lanes"]["pull"]["detected"]
    assert detected["n"] == 4 and len(detected["values"]) == 4   # 2 releases × 2 runs; setup left out
    assert detected["ci95"][0] <= detected["median"] <= detected["ci95"][1]
    assert detected["prediction"] == trials.prediction(scenario.load(file).lanes[1], "detected")
    assert "| pull | detected | 4 |" in (parent / "summary.md").read_text()
    assert detected["mean"] == pytest.approx(sum(detected["values"]) / 4, abs=1e-3)
    replay = subprocess.run([sys.executable, "-m", "mlopslab", "replay", str(parent), "--run", "nope"],
                            capture_output=True, text=True, timeout=60)
    assert replay.returncode == 2 and "no run 'nope'" in replay.stderr and "| pull | detected |" in replay.stdout


def test_what_a_drift_cost_each_level_comes_from_its_retrains_and_its_accuracy() -> None:
    """On the recorded drift-levels run: levels 1 and 2 retrained on an alarm, level 0 when a person did."""
    from mlopslab import report
    from mlopslab.monitor.timeline import RunState

    state = RunState()
    for line in (Path(__file__).parent / "data" / "drift-levels-short" / "events.jsonl").read_text().splitlines():
        state.apply(json.loads(line))
    loop = report.summarise(state).to_json()["ml_loop"]   # as summary.json holds it
    costs = {lane: trials.ml_costs(loop[lane]) for lane in ("level0", "level1", "level2")}
    for lane in ("level1", "level2"):
        retrain = next(r for r in loop[lane]["retrains"] if r["outcome"] == "delivered")
        assert costs[lane]["drift_to_retrained"] == retrain["change_to_delivered"] > retrain["timings"]["wait_labels"]
        assert costs[lane]["wait_labels"] == retrain["timings"]["wait_labels"] > 0
        assert 0 < costs[lane]["training_seconds"] < 5
    assert [r["reason"] for r in loop["level0"]["retrains"]] == ["human"]
    assert costs["level0"]["drift_to_retrained"] > costs["level1"]["drift_to_retrained"]
    assert costs["level0"]["accuracy_seconds_lost"] > costs["level1"]["accuracy_seconds_lost"]


def test_a_case_axis_sets_its_fields_together_and_errors_name_the_case(tmp_path: Path) -> None:
    points = sweep.grid(ROOT_SCENARIOS / "levels-by-size.yaml")
    assert [p.params["size"] for p in points] == ["small", "medium", "large"]
    assert [p.scenario.retrain["min_rows"] for p in points] == [150, 400, 1000]
    assert [{lane.replicas for lane in p.scenario.lanes} for p in points] == [{1}, {3}, {6}]
    file = _write(tmp_path, TINY + "sweep:\n  size:\n    small: {\"lanes[*].replicas\": 1}\n"
                  "    huge:\n      \"lanes[*].replicas\": 99\n")
    with pytest.raises(scenario.ScenarioError) as info:
        sweep.grid(file)
    assert [str(p) for p in info.value.problems] == [
        f"{file}:18: sweep.size.huge.lanes[*].replicas: value 99: expected a value between 0 and 20, got 99"]


def test_replay_of_a_trials_directory_shows_the_distributions_and_enter_replays_a_run(tmp_path: Path) -> None:
    import asyncio
    import shutil

    from mlopslab.tui.app import LabApp
    from mlopslab.tui.screens.run import RunScreen
    from mlopslab.tui.screens.trials import TrialsScreen

    parent = tmp_path / "trials"
    shutil.copytree(Path(__file__).parent / "data" / "short-run", parent / "run-1")
    detected = {**trials.stats([4.1, 5.0, 6.2], np.random.default_rng(0)), "prediction": 5.07}
    summary = {"kind": "trials", "scenario": {"name": "short-push-pull", "description": ""}, "repeat": 1,
               "params": [], "points": [{"params": {}, "runs": ["run-1"], "statuses": ["ok"],
                                         "lanes": {"pull": {"detected": detected}}}]}
    (parent / "summary.json").write_text(json.dumps(summary))
    assert trials.is_parent(parent) and not trials.is_parent(parent / "run-1")

    async def drive() -> None:
        app = LabApp(trials=parent)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            assert isinstance(app.screen, TrialsScreen)
            table = app.screen.query_one("#distributions")
            assert table.row_count == 1
            assert [str(c) for c in table.get_row_at(0)][1:] == ["pull", "detected", "3", "5.000", "4.550–5.600",
                                                                 f"{detected['ci95'][0]:.3f}–{detected['ci95'][1]:.3f}",
                                                                 "5.07"]
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, RunScreen)
            assert app.source is not None and app.source.results_dir == parent / "run-1"
            await pilot.press("q")

    asyncio.run(drive())


def test_a_release_the_run_ended_before_detecting_is_counted_as_censored_not_dropped(tmp_path: Path) -> None:
    points = sweep.grid(_write(tmp_path, TINY))
    lead = {phase: None for phase in trials.PHASES}
    releases = [{"setup": True, "lead": {**lead, "detected": 0.1}},
                {"lead": {**lead, "detected": 1.5, "traffic_100": 2.0}},
                {"lead": lead, "failed": None}]
    (tmp_path / "run-1").mkdir()
    (tmp_path / "run-1" / "summary.json").write_text(json.dumps(
        {"status": "ok", "lanes": {"pull": {"releases": releases, "live_changes": []}}}))
    summary = trials.summarise(points, {1: ["run-1"]}, tmp_path, 1)
    detected = summary["points"][0]["lanes"]["pull"]["detected"]
    assert (detected["n"], detected["censored"], detected["values"]) == (1, 1, [1.5])
    assert "| pull | detected | 1 (+1 not reached) |" in trials.markdown(summary)
