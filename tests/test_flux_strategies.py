"""A progressive strategy on a Flux lane, as Flagger runs beside Flux: Flux's real kustomize-controller
applies the env repo's Deployment (without spec.replicas), the rollout controller follows it from the
cluster, keeps `model-server-primary` beside it and rolls a slowed release back; Flux's next reconcile
neither prunes the primary nor scales the canary back up."""
# ruff: noqa: F811  (pytest fixtures imported from tests/*_fixtures.py are parameters here)

from __future__ import annotations

import secrets
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from mlopslab import scenario
from mlopslab.envs.base import DeploymentSpec, Strategy
from mlopslab.gitops import manifests
from tests.kube_fixtures import Cluster, Traffic, cluster, deployments, k8s_binaries, wait_for  # noqa: F401  (fixtures)
from tests.test_flux import flux_install  # noqa: F401  (fixture)
from tests.test_kubernetes_strategies import LANES

pytestmark = pytest.mark.kubernetes

# the Kubernetes strategies test's canary lane (p99 ≤ 150 ms, one step to 50 %), applied here by Flux
CANARY = scenario.parse(LANES.replace("delivery: push", "delivery: flux", 1), "flux.yaml").lanes[0]


def _reconcile(custom: Any, name: str) -> None:
    """`flux reconcile kustomization <name>`: ask for a reconcile now and wait until Flux has handled it."""
    from mlopslab.gitops.flux import KUSTOMIZE, NAMESPACE

    group, version, plural = KUSTOMIZE
    asked = str(time.time())
    custom.patch_namespaced_custom_object(group, version, NAMESPACE, plural, name, {
        "metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": asked}}})
    wait_for(lambda: (custom.get_namespaced_custom_object(group, version, NAMESPACE, plural, name).get("status")
                      or {}).get("lastHandledReconcileAt") == asked, 30, "Flux to reconcile on request")


@pytest.mark.timeout(180)
def test_a_flux_canary_rolls_a_slow_release_back_and_flux_keeps_the_primary(
        cluster: Cluster, flux_install, tmp_path: Path) -> None:
    from kubernetes import client, config

    from mlopslab.envs.kubernetes import declared, rbac
    from mlopslab.envs.kubernetes.environment import KubernetesEnvironment
    from mlopslab.envs.kubernetes.groups import CONTROLLER_ACCOUNT
    from mlopslab.gitops.flux import FluxSystem
    from mlopslab.gitops.flux_delivery import FluxDelivery
    from mlopslab.gitops.repo import EnvRepo
    from mlopslab.strategies.controller import Rollouts, group_emit

    suffix = secrets.token_hex(3)
    lane = f"f-{suffix}"
    assert CANARY.delivery == "flux" and CANARY.strategy is not None
    strategy = CANARY.strategy.to_json()
    labels = {"app.kubernetes.io/part-of": "mlopslab", "mlopslab.io/run": suffix}
    system = FluxSystem(flux_install, cluster.control_plane, cluster.admin, tmp_path, [lane], labels).start()
    env = KubernetesEnvironment(cluster.admin, group_emit(cluster.emit), {lane: lane}, manifests)
    path = rbac.grant(cluster.admin, cluster.access, lane, CONTROLLER_ACCOUNT, labels, tmp_path / "rollouts.kubeconfig")
    env.controllers[lane] = config.new_client_from_config(str(path))
    env.start()
    rollouts = Rollouts(env, cluster.emit, time.monotonic, label_delay=0, lanes=[lane])
    declared.follow(rollouts, lane, cluster.emit)
    repo = EnvRepo(tmp_path / "envrepo")
    v1 = DeploymentSpec(lane, "churn", "1", replicas=1, strategy=Strategy(1, 0, 30), readiness_period=0.2,
                        warmup=0.2, progressive=strategy)
    repo.commit_lanes([v1], "v1")
    delivery = FluxDelivery(lane, system, repo.path, tmp_path / "work", rollouts, cluster.emit, interval=1.0,
                            namespace=lane)
    delivery.start()
    traffic = Traffic(rollouts, lane)
    try:
        wait_for(lambda: rollouts.observe(lane).condition == "Available", 60, "the lane at v1")
        wait_for(lambda: deployments(cluster, lane)["model-server"].spec.replicas == 0, 10,
                 "the declared Deployment scaled to zero")
        traffic.start()
        repo.commit_lanes([replace(v1, version="2", latency_ms=400)], "v2: slow")   # the p99 gate fails it
        wait_for(lambda: rollouts.observe(lane + ".canary").ready == 1, 60, "the canary's pod")
        wait_for(lambda: (s := rollouts.state(lane)) is not None and s.phase == "Failed", 60, "the rollback")
        wait_for(lambda: deployments(cluster, lane)["model-server"].spec.replicas == 0
                 and not env.observe(lane + ".canary").replicas, 30, "the canary scaled to zero")
        _reconcile(client.CustomObjectsApi(cluster.admin), lane)
        after = deployments(cluster, lane)
    finally:
        traffic.stop.set()
        if traffic.is_alive():
            traffic.join(timeout=10)
        delivery.stop()
        rollouts.teardown()
        system.stop()
        client.CoreV1Api(cluster.admin).delete_namespace(lane)

    # Flux applied the declared Deployment, the controller made the primary; Flux's reconcile kept both as they were
    primary, declared_ = after["model-server-primary"], after["model-server"]
    assert primary.spec.replicas == 1 and declared_.spec.replicas == 0
    assert primary.spec.template.metadata.labels["mlopslab.io/model-version"] == "1"
    assert declared_.spec.template.metadata.labels["mlopslab.io/model-version"] == "2"
    managers = {e.manager for e in primary.metadata.managed_fields if e.subresource != "status"}
    assert managers == {"mlopslab-rollouts"}, managers   # Flux never wrote it (not in its inventory)
    owners = {e.manager: set((e.fields_v1 or {}).get("f:spec", {})) for e in declared_.metadata.managed_fields}
    assert "f:template" in owners["kustomize-controller"] and "f:replicas" not in owners["kustomize-controller"]
    assert "f:replicas" in owners["mlopslab-rollouts"]
    events = [(kind, fields) for kind, name, fields in cluster.events if name == lane]
    targets = [(f["version"], f["replicas"], f["by"]) for kind, f in events if kind == "target_declared"]
    assert targets == [("1", 1, "kustomize-controller"), ("2", 1, "kustomize-controller")], targets
    decision = next(f for kind, f in events if kind == "strategy_decision" and f["version"] == "2")
    assert (decision["decision"], decision["by"]) == ("rolled_back", "p99") and decision["value"] > 150
    assert traffic.served.get("2", 0) > 0 and traffic.served.get("1", 0) > 0
    assert not [f for kind, f in events if kind == "error"]
