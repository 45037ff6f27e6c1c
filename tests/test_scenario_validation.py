"""Scenario files: shipped ones are valid; malformed ones give file:line, field and expectation, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mlopslab import scenario

BAD = """\
name: Bad Name
duration: 30
model:
  name: churn
  data: {n_features: 1}
traffic:
  rate: fast
lanes:
  - name: push
    delivery: push
    poll: {interval: 5}
  - name: pull
    delivery: pul
    rollout: {maxSurg: 1, maxUnavailable: 200%}
timeline:
  - at: 45
    release: {}
  - at: 5
    manual_change: {lane: nowhere}
"""


def test_shipped_scenarios_are_valid() -> None:
    paths = scenario.shipped()
    assert {p.stem for p in paths} >= {"push-vs-pull", "polling-vs-webhook"}
    for path in paths:
        assert scenario.load(path).lanes


def test_malformed_scenario_reports_every_problem_with_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    with pytest.raises(scenario.ScenarioError) as info:
        scenario.load(path)
    found = {(p.line, p.path) for p in info.value.problems}
    assert found >= {
        (1, "name"), (5, "model.data.n_features"), (7, "traffic.rate"), (11, "lanes[0].poll"),
        (13, "lanes[1].delivery"), (14, "lanes[1].rollout.maxSurg"), (14, "lanes[1].rollout.maxUnavailable"),
        (16, "timeline[0].at"), (19, "timeline[1].manual_change.lane"), (19, "timeline[1].manual_change"),
    }
    text = str(info.value)
    assert f"{path}:14: lanes[1].rollout.maxSurg: unknown field (did you mean 'maxSurge'?)" in text
    assert "expected one of push, pull, flux, got 'pul'" in text


def test_invalid_yaml_points_at_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nlanes: [a, b\nduration: 3\n")
    with pytest.raises(scenario.ScenarioError) as info:
        scenario.load(path)
    assert info.value.problems[0].line in (2, 3)
    assert "not valid YAML" in info.value.problems[0].message


def test_validate_cli_exits_2_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    result = subprocess.run([sys.executable, "-m", "mlopslab.cli", "validate", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{path}:13: lanes[1].delivery:" in result.stderr
    ok = subprocess.run([sys.executable, "-m", "mlopslab.cli", "validate", "scenarios/push-vs-pull.yaml"],
                        capture_output=True, text=True, timeout=60, cwd=Path(__file__).parent.parent)
    assert ok.returncode == 0, ok.stderr


def test_run_with_a_bad_scenario_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    result = subprocess.run([sys.executable, "-m", "mlopslab.cli", "run", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "bad.yaml:1: name:" in result.stderr


def test_values_that_would_fail_at_run_time_are_caught_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "late.yaml"
    path.write_text("""\
name: late
duration: 30
environment: {kind: local, cluster: embedded}
drift_detection: {window: big, cusum_k: oops}
lanes:
  - name: a
    delivery: push
    rollout: {progressDeadlineSeconds: 1.5}
timeline:
  - at: 5
    drift: {kind: prior, size: 1.7}
  - at: 3
    drift: {kind: covariate, size: 1, features: [0, 9]}
""")
    with pytest.raises(scenario.ScenarioError) as info:
        scenario.load(path)
    found = {(p.line, p.path) for p in info.value.problems}
    assert found == {(3, "environment.cluster"), (4, "drift_detection.window"), (4, "drift_detection.cusum_k"),
                     (8, "lanes[0].rollout.progressDeadlineSeconds"), (11, "timeline[0].drift.size"),
                     (13, "timeline[1].drift.features")}


@pytest.mark.parametrize("strategy", ["{type: canary, stepWeight: 20}", "{type: blue-green}",
                                      "{type: shadow, gates: [{metric: disagreement, max: 0.1}]}",
                                      "{type: ab, gates: [{metric: accuracy, min: 0.8}]}"])
def test_a_progressive_strategy_on_a_docker_pull_lane_is_accepted(strategy: str) -> None:
    """The agent declares the lane's target in the engine and the rollout controller follows it
    (envs/docker_declared.py): no push delivery is needed any more."""
    sc = scenario.parse(f"name: p\nduration: 30\nenvironment: docker\nlanes:\n"
                        f"  - name: c\n    delivery: pull\n    strategy: {strategy}\n")
    assert sc.lanes[0].delivery == "pull" and sc.lanes[0].strategy.progressive
