"""A canary on the Docker environment: the candidate group is a second set of containers (labelled
`<lane>.canary`, like Flagger's canary Deployment beside the primary), the router shifts weight to it, and
the gates promote it; nothing is left behind."""
# ruff: noqa: F811  (pytest fixtures imported from tests/*_fixtures.py are parameters here)

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.docker_fixtures import (  # noqa: F401
    agent_base,
    base_image,
    docker_client,
    no_leftovers,
    run_id,
    wait_until,
)

pytestmark = [pytest.mark.docker, pytest.mark.timeout(300)]

SCENARIO = """\
name: canary-docker
seed: 4
duration: 120
environment: {{kind: docker, base_image: {base}}}
model: {{name: churn, data: {{n_samples: 800}}}}
traffic: {{rate: 20}}
lanes:
  - name: canary
    delivery: push
    replicas: 1
    warmup: 0.2
    readiness: {{period: 0.1}}
    strategy: {{type: canary, interval: 1.5, stepWeight: 50, maxWeight: 50, threshold: 2,
               gates: [{{metric: success_rate, min: 95, min_samples: 5}}]}}
timeline:
  - at: 1
    release: {{C: 0.2, note: v2}}
"""


def groups(docker_client, run_id: str) -> set[str]:
    """The replica groups (lane labels) of the run's running containers, listed without inspecting each (a
    container removed meanwhile is no error)."""
    from mlopslab.envs.images import LABEL_LANE, LABEL_RUN

    listed = docker_client.api.containers(filters={"label": f"{LABEL_RUN}={run_id}"})
    return {c["Labels"].get(LABEL_LANE, "") for c in listed}


def test_a_canary_on_docker_runs_a_second_container_group_and_is_promoted(docker_client, base_image, run_id,
                                                                          tmp_path: Path) -> None:
    from mlopslab import scenario
    from mlopslab.lab import Lab

    lab = Lab(scenario.parse(SCENARIO.format(base=base_image)), tmp_path / run_id)
    seen_groups: set[str] = set()
    try:
        lab.prepare()
        lab.start()

        def promoted() -> bool:
            seen_groups.update(groups(docker_client, run_id))
            state = lab.env.state("canary")
            return state is not None and state.phase == "Succeeded" and state.stable == "2"

        wait_until(promoted, 120, period=0.2, what="the canary promoted to v2")
        wait_until(lambda: lab.env.observe("canary").complete, 60, what="v2 on the primary group alone")
    finally:
        lab.stop()
        lab.shutdown()
    assert {"canary", "canary.canary"} <= seen_groups
    assert no_leftovers(docker_client, run_id) == []
    events = [json.loads(line) for line in (tmp_path / run_id / "events.jsonl").read_text().splitlines()]
    weights = [e["weight"] for e in events if e["kind"] == "strategy_step" and e["lane"] == "canary"]
    assert 50.0 in weights
    decision = next(e for e in events if e["kind"] == "strategy_decision" and e["lane"] == "canary"
                    and e["version"] == "2")
    assert (decision["decision"], decision["by"]) == ("promoted", "analysis")
    requests = [json.loads(line) for line in (tmp_path / run_id / "requests.jsonl").read_text().splitlines()]
    assert any(r["v"] == "2" for r in requests) and all(r["st"] == 200 for r in requests)


PULL_LANE = """\
  - name: {name}
    delivery: pull
    replicas: 1
    warmup: 0.2
    readiness: {{period: 0.1}}
    poll: {{interval: 1, jitter: 0}}
    live_check: 0.3
    strategy: {{type: canary, interval: 1.5, stepWeight: 25, maxWeight: 50, threshold: {threshold},
               gates: [{gate}]}}
"""


def pull_scenario(base: str) -> str:
    """Two canary pull lanes on one slow release: one gated on success rate, one on p99."""
    head = SCENARIO.split("lanes:")[0].format(base=base).replace("canary-docker", "canary-docker-pull")
    return head + "lanes:\n" + \
        PULL_LANE.format(name="slo", threshold=2, gate="{metric: success_rate, min: 95, min_samples: 5}") + \
        PULL_LANE.format(name="p99", threshold=1, gate="{metric: p99, max: 80, min_samples: 5}") + \
        'timeline:\n  - at: 1\n    release: {C: 0.2, latency_ms: 150, note: "v2 answers 150 ms late"}\n'


def test_a_canary_on_a_docker_pull_lane_follows_what_the_agent_declares_in_the_engine(
        docker_client, base_image, agent_base, run_id, tmp_path: Path, monkeypatch) -> None:
    """The agent container declares each lane's target in the engine; the lab's rollout controller
    picks it up from there and runs the canary: the success-rate lane steps 25 → 50 % and promotes the slow v2,
    the p99 lane rolls it back. A manual change of a lane edits the declared object; the agent reverts it."""
    from mlopslab import scenario
    from mlopslab.envs.docker_declared import ROLE
    from mlopslab.envs.images import LABEL_LANE, LABEL_ROLE, LABEL_RUN
    from mlopslab.lab import Lab

    monkeypatch.setenv("MLOPSLAB_AGENT_BASE_IMAGE", agent_base)
    lab = Lab(scenario.parse(pull_scenario(base_image)), tmp_path / run_id)
    log = tmp_path / run_id / "events.jsonl"
    seen_groups: set[str] = set()
    try:
        lab.prepare()
        lab.start()

        def decided() -> bool:
            seen_groups.update(groups(docker_client, run_id))
            slo, p99 = lab.env.state("slo"), lab.env.state("p99")
            return (slo is not None and slo.phase == "Succeeded" and slo.stable == "2"
                    and p99 is not None and p99.phase == "Failed" and p99.version == "2")

        wait_until(decided, 120, period=0.2, what="slo promoted v2 and p99 rolled it back")
        wait_until(lambda: lab.env.observe("slo").complete, 60, what="v2 on the slo lane's primary group alone")
        declared = docker_client.api.containers(all=True, filters={"label": [f"{LABEL_RUN}={run_id}",
                                                                             f"{LABEL_ROLE}={ROLE}"]})
        assert sorted(c["Labels"][LABEL_LANE] for c in declared) == ["p99", "slo"]   # one generation each
        assert all(c["State"] == "created" and c["HostConfig"]["NetworkMode"] == "none" for c in declared)

        lab.manual_change("slo", replicas=2)   # `kubectl edit` of the declared object, bypassing the repo
        wait_until(lambda: '"kind":"live_reverted","lane":"slo"' in log.read_text().replace(" ", ""), 30,
                   what="the agent reverted the edit")
        wait_until(lambda: (s := lab.env.observe("slo")).complete and s.spec.replicas == 1
                   and len([r for r in s.replicas if r.state != "terminating"]) == 1, 60, what="slo back to 1")

        def last_sync() -> str | None:   # the lab's verdict comes on its own period, after the replicas settle
            states = [e["state"] for e in map(json.loads, log.read_text().splitlines())
                      if e.get("kind") == "sync" and e.get("lane") == "slo"]
            return states[-1] if states else None

        wait_until(lambda: last_sync() == "Synced", 30, period=0.2, what="the slo lane's verdict back to Synced")
    finally:
        lab.stop()
        lab.shutdown()
    assert {"slo", "slo.canary", "p99", "p99.canary"} <= seen_groups
    assert no_leftovers(docker_client, run_id) == []
    events = [json.loads(line) for line in log.read_text().splitlines()]
    of = lambda kind, lane: [e for e in events if e["kind"] == kind and e["lane"] == lane]  # noqa: E731
    assert all(e.get("via") == "agent-container" for e in of("apply_started", "slo") + of("apply_started", "p99"))
    declared = [(e["version"], e["replicas"], e["by"]) for e in of("target_declared", "slo")]
    # level-based: the controller may miss the edit's generation when the agent reverts it within one poll
    assert declared[:2] == [("1", 1, "agent"), ("2", 1, "agent")] and declared[-1] == ("2", 1, "agent"), declared
    assert set(declared[2:-1]) <= {("2", 2, "lab:manual")}, declared
    generations = [e["generation"] for e in of("target_declared", "slo")]
    assert generations == sorted(set(generations))
    reverted = of("live_reverted", "slo")
    assert len(reverted) == 1 and reverted[0]["change"] == {"replicas": ["2", "1"]}
    assert [e["weight"] for e in of("strategy_step", "slo") if e["version"] == "2" and e["weight"]][:2] == [25.0, 50.0]
    slo = next(e for e in of("strategy_decision", "slo") if e["version"] == "2")
    p99 = next(e for e in of("strategy_decision", "p99") if e["version"] == "2")
    assert (slo["decision"], slo["by"]) == ("promoted", "analysis")
    assert (p99["decision"], p99["by"], p99["value"] > p99["threshold"]) == ("rolled_back", "p99", True)
    assert [e["state"] for e in of("sync", "p99")][-1] == "Degraded"   # the repo asks for what was rolled back
    after_edit = [e["state"] for e in of("sync", "slo") if e["t"] >= reverted[0]["t"] - 3.0]
    assert after_edit[-1:] == ["Synced"] and ("OutOfSync" in after_edit) == (len(declared) == 4), after_edit
    done = {e["lane"]: e for e in events if e["kind"] == "strategy_done" and e["version"] == "2"}
    assert done["slo"]["decision"] == "promoted" and done["p99"]["decision"] == "rolled_back"
    assert done["p99"]["exposure"] > 0 and done["slo"]["exposure"] > 0 and done["p99"]["errors"] == 0
