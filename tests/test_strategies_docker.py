"""A canary on the Docker environment: the candidate group is a second set of containers (labelled
`<lane>.canary`, like Flagger's canary Deployment beside the primary), the router shifts weight to it, and
the gates promote it; nothing is left behind."""
# ruff: noqa: F811  (pytest fixtures imported from tests/*_fixtures.py are parameters here)

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.docker_fixtures import (  # noqa: F401
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


def test_a_canary_on_docker_runs_a_second_container_group_and_is_promoted(docker_client, base_image, run_id,
                                                                          tmp_path: Path) -> None:
    from mlopslab import scenario
    from mlopslab.envs.images import LABEL_LANE, LABEL_RUN
    from mlopslab.lab import Lab

    lab = Lab(scenario.parse(SCENARIO.format(base=base_image)), tmp_path / run_id)
    seen_groups: set[str] = set()
    try:
        lab.prepare()
        lab.start()

        def promoted() -> bool:
            for container in docker_client.containers.list(filters={"label": f"{LABEL_RUN}={run_id}"}):
                seen_groups.add(container.labels.get(LABEL_LANE, ""))
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
