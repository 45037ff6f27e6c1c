"""Strategies in a real run: replica groups, the router's weights, copies and cohorts, gates that decide
with their measured value and threshold, a person's promote and abort, and what each change cost."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from mlopslab.lab import Lab
from mlopslab.monitor.timeline import RunState
from mlopslab.scenario import parse

SCENARIO = """\
name: strategies-test
seed: 3
duration: 60
model: {name: churn, data: {n_samples: 1500}}
traffic: {rate: 30, label_delay: 2}
lanes:
  - name: acc
    delivery: push
    replicas: 1
    warmup: 0.2
    strategy:
      type: canary
      interval: 2
      threshold: 2
      steps: [{setWeight: 40}, {analysis: {checks: 3}}, {setWeight: 80}]
      gates: [{metric: accuracy, min: 0.75, window: 6}]
  - name: shadow
    delivery: pull
    poll: {interval: 1, jitter: 0}
    replicas: 1
    warmup: 0.2
    strategy:
      type: shadow
      interval: 2
      threshold: 2
      gates: [{metric: disagreement, max: 0.1, window: 4}]
  - name: ab
    delivery: push
    replicas: 1
    warmup: 0.2
    strategy:
      type: ab
      share: 50
      interval: 2
      threshold: 2
      gates: [{metric: accuracy, min: 0.75, window: 6}]
  - name: bg
    delivery: push
    replicas: 1
    warmup: 0.2
    strategy: {type: blue-green, autoPromotionEnabled: false, scaleDownDelaySeconds: 1}
  - name: manual
    delivery: push
    replicas: 1
    warmup: 0.2
    strategy: {type: canary, interval: 2, stepWeight: 10, maxWeight: 50, gates: [{metric: p99, max: 1000}]}
timeline:
  - at: 2
    release: {corrupt_labels: 0.7, note: "v2 on corrupted labels"}
"""


def _events(path: Path) -> list[dict]:
    return [json.loads(line) for line in (path / "events.jsonl").read_text().splitlines()]


def _wait(lab: Lab, results: Path, test, timeout: float = 60.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = _events(results)
        if test(events):
            return events
        time.sleep(0.2)
    raise AssertionError("not reached in time")


def _step(events: list[dict], lane: str) -> dict:
    return [e for e in events if e["kind"] == "strategy_step" and e["lane"] == lane][-1]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_gates_decide_each_lane_and_a_person_promotes_or_aborts(tmp_path: Path) -> None:
    results = tmp_path / "run"
    lab = Lab(parse(SCENARIO, "strategies-test.yaml"), results)
    try:
        lab.prepare()
        lab.start()
        _wait(lab, results, lambda ev: _step(ev, "bg")["phase"] == "Paused"
              and _step(ev, "manual")["weight"] >= 10)
        lab.promote("bg")
        lab.abort("manual")
        done = lambda ev: {e["lane"] for e in ev if e["kind"] == "strategy_done"} >= {"acc", "shadow", "ab", "bg",  # noqa: E731
                                                                                       "manual"}
        events = _wait(lab, results, done, timeout=90)
        primaries = {lane: lab.env.inner.observe(lane).spec for lane in ("acc", "shadow", "ab", "bg", "manual")}
    finally:
        lab.stop()
        lab.shutdown()
    outcome = {e["lane"]: e for e in events if e["kind"] == "strategy_done"}
    assert {lane: (o["decision"], o["by"]) for lane, o in outcome.items()} == {
        "acc": ("rolled_back", "accuracy"), "shadow": ("rolled_back", "disagreement"),
        "ab": ("rolled_back", "accuracy"), "bg": ("promoted", "human"), "manual": ("rolled_back", "human")}
    assert outcome["shadow"]["exposure"] == 0 and outcome["acc"]["exposure"] > 0 and outcome["ab"]["exposure"] > 0
    assert all(o["peak_replicas"] == 2 and o["replica_seconds"] > 0 for o in outcome.values())

    decisions = {e["lane"]: e for e in events if e["kind"] == "strategy_decision"}
    assert decisions["acc"]["value"] < 0.75 == decisions["acc"]["threshold"]
    gates = [e for e in events if e["kind"] == "gate" and e["lane"] == "shadow"]
    assert gates and all({"value", "threshold", "verdict"} <= set(g) for g in gates)
    assert any(e["kind"] == "human_action" and e["action"] == "promote" and e["lane"] == "bg" for e in events)

    requests = [json.loads(line) for line in (results / "requests.jsonl").read_text().splitlines()]
    shadow = [r for r in requests if r["lane"] == "shadow"]
    assert any(r.get("m") and r["v"] == "2" for r in shadow)
    assert not any(r["v"] == "2" and not r.get("m") for r in shadow)   # no user ever got the shadow's answer
    ab = [r for r in requests if r["lane"] == "ab" and "c" in r and r["st"] == 200]
    assert ab and all((r["v"] == "2") == (r["c"] < 0.5) for r in ab)   # sticky cohorts: the key decides
    bg_after = [r for r in requests if r["lane"] == "bg" and r["t"] > decisions["bg"]["t"] + 1.0]
    assert bg_after and all(r["v"] == "2" for r in bg_after if r["st"] == 200)

    manifest = (results / "envrepo" / "lanes" / "acc" / "deployment.yaml").read_text()
    assert "mlopslab.io/strategy: canary" in manifest and "setWeight" in manifest
    summary = json.loads((results / "summary.json").read_text())
    change = summary["lanes"]["shadow"]["strategy_changes"][0]
    assert (change["decision"], change["exposure"]) == ("rolled_back", 0)

    # the timing columns tell what happened: each primary group names the commit of the version it runs (never
    # the new target's while it still runs the stable one, which read as "rolled out" 0.2 s after the commit);
    # a rolled-back release ends at its rollback, never rolled out nor at 100 %; a promoted one reaches 100 %
    # at its promotion, then is rolled out once its primary runs it
    sha = {str(e["version"]): e["sha"] for e in events if e["kind"] == "commit"}
    assert {lane: (spec.version, spec.revision) for lane, spec in primaries.items()} == {
        **{lane: ("1", sha["1"]) for lane in ("acc", "shadow", "ab", "manual")}, "bg": ("2", sha["2"])}
    state = RunState()
    for event in _events(results):
        state.apply(event)
    for lane in ("acc", "shadow", "ab", "manual"):
        release = state.lanes[lane].releases[sha["2"]]
        assert "first_ready" in release.times and release.end == decisions[lane]["t"]
        assert not {"rollout_done", "traffic_100"} & set(release.times), lane
        assert release.failed == f"rolled back ({outcome[lane]['by']})"
    bg = state.lanes["bg"].releases[sha["2"]].times
    assert bg["first_ready"] < decisions["bg"]["t"] - 0.5 < bg["traffic_100"] < bg["rollout_done"]
    lead = summary["lanes"]["acc"]["releases"][-1]["lead"]
    assert lead["first_ready"] is not None and lead["rollout_done"] is lead["traffic_100"] is None
