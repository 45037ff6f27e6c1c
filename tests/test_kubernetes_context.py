"""`cluster: context`: a run on an existing cluster, handed over as a kubeconfig context — here an embedded
cluster started separately, whose node runs pods as containers on the Docker engine from the model images
the run builds. The run makes its own namespaces, deletes them at the end, and touches nothing else."""
# ruff: noqa: F811  (pytest fixtures imported from tests/*_fixtures.py are parameters here)

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from mlopslab.events import read_events
from tests.docker_fixtures import base_image, docker_client  # noqa: F401  (fixtures)
from tests.kube_fixtures import k8s_binaries, wait_for  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.kubernetes, pytest.mark.docker, pytest.mark.slow]

SCENARIO = """\
name: on-a-context
duration: 30
environment: {{kind: kubernetes, cluster: context, kubeconfig: {kubeconfig}, context: handed-over,
               base_image: {base}}}
model: {{name: churn, data: {{n_features: 8, n_samples: 2000}}}}
traffic: {{rate: 10}}
lanes:
  - {{name: push, delivery: push, replicas: 2, warmup: 0.5, rollout: {{maxSurge: 1, maxUnavailable: 0}}}}
  - {{name: pull, delivery: pull, replicas: 2, warmup: 0.5, rollout: {{maxSurge: 1, maxUnavailable: 0}},
     poll: {{interval: 3}}}}
timeline:
  - at: 6
    release: {{C: 0.3}}
  - at: 18
    manual_change: {{lane: pull, replicas: 1}}
"""


@pytest.fixture
def handed_over(k8s_binaries, docker_client, tmp_path: Path) -> Iterator[tuple[Path, object]]:
    from kubernetes import config

    from mlopslab.envs.kubernetes.containers import LABEL, ContainerRuntime
    from mlopslab.envs.kubernetes.controlplane import NODE, ControlPlane
    from mlopslab.envs.kubernetes.node import VirtualKubelet
    from mlopslab.gitops import manifests

    control_plane = ControlPlane(k8s_binaries, tmp_path / "cluster", tmp_path / "admin.kubeconfig")
    access = control_plane.start()
    node_id = f"ctx-{secrets.token_hex(3)}"
    node = VirtualKubelet(config.new_client_from_config(str(access.node)),
                          ContainerRuntime(docker_client, node_id, manifests.image_for), name=NODE,
                          report=lambda message: None)
    node.start()
    doc = yaml.safe_load(access.admin.read_text())    # the user's kubeconfig: a context named otherwise
    doc["contexts"][0]["name"] = "handed-over"
    doc["contexts"].append({"name": "elsewhere", "context": dict(doc["contexts"][0]["context"])})
    doc["current-context"] = "elsewhere"
    path = tmp_path / "user.kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    try:
        yield path, config.new_client_from_config(str(access.admin))
    finally:
        node.stop()
        control_plane.stop()
        assert docker_client.api.containers(all=True, filters={"label": f"{LABEL}={node_id}"}) == []


def test_a_run_on_a_handed_over_context_uses_its_own_namespaces_only(handed_over, base_image,
                                                                      tmp_path: Path) -> None:
    from kubernetes import client

    kubeconfig, admin = handed_over
    core = client.CoreV1Api(admin)
    core.create_namespace({"metadata": {"name": "bystander"}})
    core.create_namespaced_config_map("bystander", {"metadata": {"name": "keep"}, "data": {"a": "1"}})
    before = core.read_namespaced_config_map("keep", "bystander").metadata.resource_version
    scenario = tmp_path / "context.yaml"
    scenario.write_text(SCENARIO.format(kubeconfig=kubeconfig, base=base_image))
    results = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "mlopslab.cli", "run", str(scenario), "--results", str(results)],
                          capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    events = list(read_events(results / "events.jsonl"))
    ready = next(e for e in events if e["kind"] == "cluster_ready")
    assert ready["cluster"] == "context" and ready["version"].startswith("v1.")
    built = {e["version"] for e in events if e["kind"] == "image_build"}
    assert {"1", "2"} <= built                                    # the model images the nodes run
    summary = json.loads((results / "summary.json").read_text())
    for lane in ("push", "pull"):
        v2 = next(r for r in summary["lanes"][lane]["releases"] if r["version"] == "2")
        assert v2["failed"] is None and v2["lead"]["traffic_100"] is not None
        assert summary["lanes"][lane]["errors"] == 0
    assert summary["lanes"]["pull"]["live_changes"][0]["reverted_by"] == "agent self-heal"
    # its namespaces were the run's own, and they are gone; the bystander is untouched
    names = {ns.metadata.name for ns in core.list_namespace().items}
    assert not any(n.startswith(("push-", "pull-")) for n in names), names
    assert core.read_namespaced_config_map("keep", "bystander").metadata.resource_version == before
    assert "ServiceAccount push-" in summary["lanes"]["push"]["credential"]


def test_an_embedded_cluster_runs_its_pods_as_containers_with_the_docker_runtime(k8s_binaries, base_image,
                                                                                 docker_client, tmp_path: Path) -> None:
    scenario = tmp_path / "docker-pods.yaml"
    text = SCENARIO.format(kubeconfig="x", base=base_image).replace(
        "{kind: kubernetes, cluster: context, kubeconfig: x, context: handed-over,\n               base_image: ",
        "{kind: kubernetes, runtime: docker, base_image: ")
    scenario.write_text(text)
    results = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "mlopslab.cli", "run", str(scenario), "--results", str(results)],
                          capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:] + text
    events = list(read_events(results / "events.jsonl"))
    assert {"1", "2"} <= {e["version"] for e in events if e["kind"] == "image_build"}
    summary = json.loads((results / "summary.json").read_text())
    assert all(summary["lanes"][lane]["errors"] == 0 for lane in ("push", "pull"))
    v2 = next(r for r in summary["lanes"]["push"]["releases"] if r["version"] == "2")
    assert v2["lead"]["traffic_100"] is not None
    run_id = results.name
    assert docker_client.api.containers(all=True, filters={"label": f"mlopslab.node=mlopslab-{run_id}"}) == []
