"""Progressive strategies on Kubernetes, as Flagger runs them: the delivery applies the lane's declared
Deployment with its own ServiceAccount, the rollout controller makes a `-primary` Deployment beside it and
scales the declared one (the canary) with its own; a gate rolls a bad canary back, a blue-green promotes."""
# ruff: noqa: F811  (pytest fixtures imported from tests/kube_fixtures.py are parameters here)

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

import pytest

from mlopslab import scenario
from mlopslab.envs.base import DeploymentSpec, Strategy
from mlopslab.gitops import manifests
from tests.kube_fixtures import Cluster, Traffic, cluster, deployments, k8s_binaries, wait_for  # noqa: F401  (fixtures)

pytestmark = pytest.mark.kubernetes

LANES = """\
name: k8s-strategies
duration: 60
environment: {kind: kubernetes}
lanes:
  - name: canary
    delivery: push
    strategy: {type: canary, interval: 1, stepWeight: 50, maxWeight: 50, threshold: 1,
               gates: [{metric: p99, max: 150, min_samples: 3, window: 3}]}
  - name: bluegreen
    delivery: pull
    strategy: {type: blue-green, autoPromotionSeconds: 1, scaleDownDelaySeconds: 1}
"""


def test_the_validator_accepts_progressive_lanes_on_kubernetes_with_flux_too_but_not_flux_elsewhere() -> None:
    lanes = scenario.parse(LANES, "k8s.yaml").lanes
    assert [lane.strategy.type for lane in lanes] == ["canary", "blue-green"]
    flux = LANES.replace("delivery: pull", "delivery: flux")
    assert scenario.parse(flux, "k8s.yaml").lanes[1].delivery == "flux"   # the controller follows what Flux applies
    with pytest.raises(scenario.ScenarioError) as info:
        scenario.parse(flux.replace("{kind: kubernetes}", "{kind: docker}"), "k8s.yaml")
    problem, = info.value.problems
    assert (problem.line, problem.path) == (10, "lanes[1].delivery") and "needs environment kind kubernetes" in problem.message


def _managers(deployment: Any) -> dict[str, set[str]]:
    """field manager -> the top-level spec fields it owns."""
    return {e.manager: set((e.fields_v1 or {}).get("f:spec", {})) for e in deployment.metadata.managed_fields}


@pytest.mark.timeout(180)
def test_a_gate_rolls_a_kubernetes_canary_back_and_a_blue_green_lane_promotes(cluster: Cluster, tmp_path: Path) -> None:
    from kubernetes import config

    from mlopslab.envs.kubernetes import rbac
    from mlopslab.envs.kubernetes.acting import Acting
    from mlopslab.envs.kubernetes.environment import KubernetesEnvironment
    from mlopslab.envs.kubernetes.groups import CONTROLLER_ACCOUNT
    from mlopslab.strategies.controller import Rollouts, group_emit

    suffix = secrets.token_hex(3)
    canary, bluegreen = f"c-{suffix}", f"b-{suffix}"
    parsed = scenario.parse(LANES, "k8s.yaml").lanes
    strategies = {canary: parsed[0].strategy.to_json(), bluegreen: parsed[1].strategy.to_json()}
    env = KubernetesEnvironment(cluster.admin, group_emit(cluster.emit), {canary: canary, bluegreen: bluegreen},
                                manifests)
    labels = {"app.kubernetes.io/part-of": "mlopslab"}
    deliveries = {}
    for lane, account in ((canary, "ci-runner"), (bluegreen, "gitops-agent")):
        path = rbac.grant(cluster.admin, cluster.access, lane, account, labels, tmp_path / f"{lane}.kubeconfig")
        deliveries[lane] = (config.new_client_from_config(str(path)), f"mlopslab-{account}")
        path = rbac.grant(cluster.admin, cluster.access, lane, CONTROLLER_ACCOUNT, labels, tmp_path / f"{lane}.r")
        env.controllers[lane] = config.new_client_from_config(str(path))
    env.start()
    rollouts = Rollouts(env, cluster.emit, time.monotonic, label_delay=0, lanes=[canary, bluegreen])
    acting = {lane: Acting(rollouts, api, manager, lane) for lane, (api, manager) in deliveries.items()}

    def spec(lane: str, version: str, **fields: Any) -> DeploymentSpec:
        return DeploymentSpec(lane, "churn", version, replicas=1, strategy=Strategy(1, 0, 30), readiness_period=0.2,
                              warmup=0.2, revision=f"rev-{version}", progressive=strategies[lane], **fields)

    traffic = Traffic(rollouts, canary)
    try:
        for lane in (canary, bluegreen):
            acting[lane].apply(spec(lane, "1"))
        for lane in (canary, bluegreen):
            wait_for(lambda: rollouts.observe(lane).condition == "Available", 60, f"{lane} at v1")
            wait_for(lambda: deployments(cluster, lane)["model-server"].spec.replicas == 0, 10,
                     "the declared Deployment scaled to zero")
        traffic.start()
        acting[canary].apply(spec(canary, "2", latency_ms=400))      # a slow release: the p99 gate fails it
        acting[bluegreen].apply(spec(bluegreen, "2"))

        wait_for(lambda: rollouts.observe(canary + ".canary").complete
                 and rollouts.observe(canary + ".canary").ready == 1, 60, "the canary's pod")
        both = deployments(cluster, canary)
        primary, declared = both["model-server-primary"], both["model-server"]
        assert (primary.spec.replicas, declared.spec.replicas) == (1, 1)
        template = {name: d.spec.template.metadata.labels for name, d in both.items()}
        assert template["model-server-primary"]["mlopslab.io/group"] == "primary"
        assert template["model-server-primary"]["mlopslab.io/model-version"] == "1"
        assert template["model-server"]["mlopslab.io/group"] == "canary"
        assert template["model-server"]["mlopslab.io/model-version"] == "2"
        # the delivery owns the declared template; the controller, its own identity, the replicas and the primary
        owners = _managers(declared)
        assert "f:template" in owners["mlopslab-ci-runner"] and "f:replicas" not in owners["mlopslab-ci-runner"]
        assert "f:replicas" in owners["mlopslab-rollouts"]
        assert "mlopslab-rollouts" in _managers(primary) and "mlopslab-ci-runner" not in _managers(primary)

        wait_for(lambda: (s := rollouts.state(canary)) is not None and s.phase == "Failed", 60, "the rollback")
        wait_for(lambda: deployments(cluster, canary)["model-server"].spec.replicas == 0
                 and not rollouts.inner.observe(canary + ".canary").replicas, 30, "the canary scaled to zero")
        wait_for(lambda: (s := rollouts.state(bluegreen)) is not None and s.phase == "Succeeded", 60,
                 "the blue-green promotion")
        wait_for(lambda: deployments(cluster, bluegreen)["model-server"].spec.replicas == 0
                 and rollouts.observe(bluegreen).complete, 30, "the preview scaled down after the switch")
    finally:
        traffic.stop.set()
        traffic.join(timeout=10)
        rollouts.teardown()

    after = deployments(cluster, canary)
    assert after["model-server-primary"].spec.template.metadata.labels["mlopslab.io/model-version"] == "1"
    assert deployments(cluster, bluegreen)["model-server-primary"].spec.template.metadata.labels[
        "mlopslab.io/model-version"] == "2"
    assert traffic.served.get("2", 0) > 0 and traffic.served.get("1", 0) > 0
    events = [(kind, lane, fields) for kind, lane, fields in cluster.events if lane in (canary, bluegreen)]
    decisions = {lane: f for kind, lane, f in events if kind == "strategy_decision" and f["version"] == "2"}
    assert (decisions[canary]["decision"], decisions[canary]["by"]) == ("rolled_back", "p99")
    assert decisions[canary]["value"] > 150 == decisions[canary]["threshold"]
    assert decisions[bluegreen]["decision"] == "promoted"
    # the canary's pods are reported as the lane's, with their group
    assert any(kind == "replica_ready" and lane == canary and f.get("group") == "canary" and f["version"] == "2"
               for kind, lane, f in events)
    assert not any(lane == canary and kind == "rollout_done" and f.get("group") for kind, lane, f in events)
    # a primary names the commit of the version it runs: no rollout_done of v1 stamped with v2's commit
    assert [(lane, f["version"], f["revision"]) for kind, lane, f in events
            if kind == "rollout_done" and f["revision"] != f"rev-{f['version']}"] == []
