"""MLOps levels: after a covariate shift a level-1 lane retrains itself and recovers its (delayed-label)
accuracy while a level-0 lane does not until a person retrains it; a level-2 lane refuses pipeline code
whose tests fail and takes code whose tests pass. One real run: model servers, git, MLflow, load generator."""

from __future__ import annotations

import json
from pathlib import Path
from statistics import mean
from typing import Any

import numpy as np
import pytest

from mlopslab.events import read_events
from mlopslab.lab import Lab
from mlopslab.monitor.watch import DriftWatch
from mlopslab.scenario import parse

LANE = "replicas: 1, warmup: 0.1, readiness: {period: 0.05}, rollout: {maxSurge: 1, maxUnavailable: 0}"
SCENARIO = f"""\
name: levels-test
description: four lanes, one covariate shift
seed: 5
duration: 38
model: {{name: churn, data: {{n_samples: 1500}}}}
traffic: {{rate: 30, label_delay: 1.0}}
drift_detection: {{window: 150, cusum_h: 10, cusum_k: 0.5}}
lanes:
  - {{name: l0, delivery: push, level: 0, {LANE}}}
  - {{name: l0h, delivery: push, level: 0, {LANE}}}
  - {{name: l1, delivery: push, level: 1, {LANE}}}
  - {{name: l2, delivery: pull, level: 2, poll: {{interval: 1, jitter: 0.5}}, {LANE}}}
timeline:
  - at: 2
    pipeline_commit: {{lane: l2, tests_pass: false, note: "refactor prepare()"}}
  - at: 3.5
    pipeline_commit: {{lane: l2, tests_pass: true, note: "stronger regularisation"}}
  - at: 6
    drift: {{kind: covariate, size: 2.0, features: [0, 1, 2, 3]}}
  - at: 20
    retrain: {{lane: l0h}}
"""
SHIFT_AT = 6.0


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    results = tmp_path_factory.mktemp("levels") / "run"
    lab = Lab(parse(SCENARIO, "levels-test.yaml"), results)
    status = lab.run()
    events = list(read_events(results / "events.jsonl"))
    start = next(e["t"] for e in events if e["kind"] == "run_started")
    return {"lab": lab, "status": status, "events": events, "start": start, "dir": results}


def _of(run: dict[str, Any], kind: str, lane: str | None = None) -> list[dict[str, Any]]:
    return [e for e in run["events"] if e["kind"] == kind and (lane is None or e["lane"] == lane)]


def _accuracy(run: dict[str, Any], lane: str, low: float, high: float) -> float:
    values = [e["value"] for e in _of(run, "accuracy", lane) if low <= e["window"] - run["start"] < high]
    assert len(values) >= 3, f"too few accuracy windows for {lane} in [{low}, {high})"
    return mean(values)


@pytest.mark.slow
def test_level1_recovers_after_covariate_shift_without_a_human_level0_does_not(run: dict[str, Any]) -> None:
    assert run["status"] == "ok"
    assert not _of(run, "error"), _of(run, "error")
    end = run["lab"].scenario.duration
    acc = {lane: (_accuracy(run, lane, 0, SHIFT_AT), _accuracy(run, lane, SHIFT_AT + 1, SHIFT_AT + 9),
                  _accuracy(run, lane, end - 10, end)) for lane in ("l0", "l0h", "l1", "l2")}
    before, after, final = acc["l0"]
    assert after < before - 0.1 and final < before - 0.1, acc            # the shift costs accuracy
    b1, a1, f1 = acc["l1"]
    assert f1 > a1 + 0.1 and f1 > before - 0.05, acc                       # level 1 repaired itself
    assert acc["l0h"][2] > a1 + 0.1, acc                                   # ... level 0 only by a person
    assert not _of(run, "retrain_started", "l0")
    assert _of(run, "retrain_skipped", "l0")[0]["reason"] == "alarm"

    done = {e["lane"]: e for e in _of(run, "retrain_done")}
    assert done["l1"]["reason"] == "alarm" and done["l1"]["outcome"] == "delivered"
    assert done["l1"]["human_actions"] == 0 and done["l0h"]["human_actions"] == 1
    assert done["l0h"]["reason"] == "human" and done["l0h"]["outcome"] == "delivered"
    timings = done["l1"]["timings"]
    assert all(timings[k] is not None and timings[k] >= 0 for k in ("detect", "train", "validate", "deliver", "total"))
    phases = ["retrain_started", "retrain_trained", "retrain_validated", "retrain_registered", "retrain_committed",
              "retrain_delivered", "retrain_done"]
    times = [_of(run, kind, "l1")[0]["t"] for kind in phases]
    assert times == sorted(times)
    validated = _of(run, "retrain_validated", "l1")[0]
    assert validated["promoted"] and validated["challenger_acc"] > validated["champion_acc"]
    committed = _of(run, "retrain_committed", "l1")[0]
    commit = next(e for e in _of(run, "commit") if e["sha"] == committed["sha"])
    assert commit["lanes"] == ["l1"]                                        # this lane only
    # the retrained model learned from rows after the shift whose labels had arrived
    trained = _of(run, "retrain_trained", "l1")[0]
    assert trained["t_from"] >= _of(run, "drift_injected")[0]["change_point"] - 1.0
    assert trained["t_to"] <= trained["t"] - run["lab"].scenario.label_delay

    alarm = next(e for e in _of(run, "drift_alarm", "l1") if e["first"])
    assert alarm["delay_samples"] >= 1 and alarm["delay_seconds"] < 3
    cusum = [e for e in _of(run, "drift_alarm", "l1") if e["detector"] == "cusum"]
    assert cusum and cusum[0]["floor_samples"] > 0 and cusum[0]["arl0"] > 1000
    scores = _of(run, "drift_score", "l0")
    assert max(e["score"] for e in scores) >= 0.5 and set(scores[-1]["features"]) == {f"f{i}" for i in range(8)}
    state = run["lab"].state
    assert state.retrains["l1-1"]["phases"].keys() >= {"started", "committed", "delivered", "done"}
    assert state.lanes["l1"].accuracy


@pytest.mark.slow
def test_accuracy_counts_only_labels_that_have_arrived(run: dict[str, Any]) -> None:
    delay = run["lab"].scenario.label_delay
    events = _of(run, "accuracy", "l1")
    assert events and all(e["t"] >= e["window"] + 1 + delay for e in events)


@pytest.mark.slow
def test_retraining_runs_are_tracked_in_mlflow(run: dict[str, Any]) -> None:
    registry = run["lab"].registry
    version = _of(run, "retrain_trained", "l1")[0]["version"]
    mv = registry.client.get_model_version("churn", version)
    mlrun = registry.client.get_run(mv.run_id)
    assert mlrun.data.tags["mlopslab.level"] == "1" and mlrun.data.tags["mlopslab.reason"] == "alarm"
    assert int(mlrun.data.params["window_rows"]) >= 100
    assert "holdout_accuracy_champion" in mlrun.data.metrics
    files = {f.path for f in registry.client.list_artifacts(mv.run_id)}
    assert {"data_window.json", "drift_report.json"} <= files
    report = json.loads(Path(registry.client.download_artifacts(mv.run_id, "drift_report.json")).read_text())
    assert report["dataset_drift"] is True
    assert registry.version_by_alias("churn", "champion-l1") == version


@pytest.mark.slow
def test_level2_refuses_pipeline_code_whose_tests_fail(run: dict[str, Any]) -> None:
    rejected = _of(run, "pipeline_rejected", "l2")
    accepted = _of(run, "pipeline_accepted", "l2")
    assert len(rejected) == 1 and "prepare must not change labels" in rejected[0]["output"]
    initial, change = accepted[0], accepted[1]
    assert initial["tested"] and rejected[0]["kept_version"] == initial["version"]   # the old code stayed
    assert change["previous"] == initial["version"] and change["t"] > rejected[0]["t"]
    pipeline = run["lab"].pipelines.lanes["l2"]
    assert pipeline.code.version == change["version"] == change["sha"][:7]
    assert rejected[0]["sha"][:7] not in [code.version for code in pipeline.history]
    started = _of(run, "retrain_started", "l2")[0]
    assert started["pipeline_version"] == change["version"] and started["t"] > change["t"]
    assert run["lab"].state.lanes["l2"].pipeline_version == change["version"]
    # the pipelines repo holds both commits: CI ran on what was committed
    log = run["lab"].pipelines.repo.git.git.log("--format=%H")
    assert rejected[0]["sha"] in log and change["sha"] in log


def test_delayed_accuracy_waits_for_labels() -> None:
    events: list[tuple[str, str | None, dict[str, Any]]] = []
    watch = DriftWatch(["a"], ["f0", "f1"], lambda kind, lane=None, **f: events.append((kind, lane, f)),
                       label_delay=5.0)
    rng = np.random.default_rng(0)
    watch.add_training_rows("1", rng.normal(size=(500, 2)))
    watch.set_lane_version("a", "1")
    for i in range(40):  # 10 rows a second over 4 s; the lane is right on even rows
        t = 10 + i / 10
        watch.add_sample({"s": i, "t": t, "x": list(rng.normal(size=2)), "y": 1})
        watch.add_result({"i": i, "lane": "a", "t": t, "lat": 1.0, "st": 200, "v": "1", "p": int(i % 2 == 0)})
    watch.tick(12.0)
    assert not [e for e in events if e[0] == "accuracy"]                  # no label has arrived yet
    watch.tick(16.6)                                                       # labels of second 10 arrived
    accuracy = [f for kind, lane, f in events if kind == "accuracy"]
    assert [a["window"] for a in accuracy] == [10] and accuracy[0]["value"] == 0.5 and accuracy[0]["n"] == 10
    X, y, t = watch.labelled(16.6)
    assert len(X) == len(y) in (16, 17) and t.max() <= 11.6              # only rows whose labels arrived


def test_a_retrain_whose_version_a_canary_rolls_back_ends_and_says_so(tmp_path: Path) -> None:
    """A level-1 lane with a progressive strategy: its gates may roll the retrained version back, which is
    neither 100 % of traffic nor a failed rollout; the retrain must end there, not wait for ever."""
    import time

    from mlopslab.eventtypes import StrategyDone, Traffic100
    from mlopslab.ml.pipeline import PipelineHost, Pipelines
    from tests.events_helpers import Events

    events = Events()
    host = PipelineHost(emit=events.emit, now=time.monotonic, labelled=None, drift_report=None,  # type: ignore[arg-type]
                        champion_version=None, deliver=None, add_training_rows=None,  # type: ignore[arg-type]
                        stopped=lambda: False, registry=None, model_name="m", feature_names=[],  # type: ignore[arg-type]
                        train_lock=None)
    pipelines = Pipelines({"c": 1}, host, tmp_path)
    for version in ("3", "4"):   # what a retrain leaves pending once it committed its version
        pipelines.lanes["c"]._pending[version] = {"retrain": f"r{version}", "reason": "alarm", "version": version,
                                                 "pipeline_version": 1, "human_actions": 0, "started": 1.0}
    undecided = StrategyDone(t=5.0, lane="c", strategy="canary", version="3", decision="undecided")
    pipelines.on_event(undecided)
    assert events.of("retrain_done") == []   # the run ended during the change: nothing decided
    pipelines.on_event(StrategyDone(t=6.0, lane="c", strategy="canary", version="3", decision="rolled_back",
                                    by="accuracy"))
    pipelines.on_event(Traffic100(t=7.0, lane="c", version="4"))
    done = {e["version"]: e["outcome"] for e in events.of("retrain_done", "c")}
    assert done == {"3": "rolled back by the lane's canary (accuracy)", "4": "delivered"}
