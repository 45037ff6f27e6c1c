"""The Kubernetes environment on a real control plane: the lab's node runs pods as a kubelet would, the
real Deployment controller rolls out, deliveries hold ServiceAccounts confined to their namespace."""
# ruff: noqa: F811  (pytest fixtures imported from tests/kube_fixtures.py are parameters here)

from __future__ import annotations

import os
import re
import secrets
import time
import urllib.request
from pathlib import Path

import pytest

from mlopslab.envs.base import DeploymentSpec, Strategy
from mlopslab.gitops import manifests
from tests.kube_fixtures import Cluster, cluster, k8s_binaries, wait_for  # noqa: F401  (fixtures)

pytestmark = pytest.mark.kubernetes


def _namespace(cluster: Cluster) -> str:
    from kubernetes import client

    name = f"t-{secrets.token_hex(3)}"
    client.CoreV1Api(cluster.admin).create_namespace({"metadata": {"name": name}})
    return name


def _env(cluster: Cluster, namespace: str):
    from mlopslab.envs.kubernetes.environment import KubernetesEnvironment

    env = KubernetesEnvironment(cluster.admin, cluster.emit, {namespace: namespace}, manifests)
    env.start()
    return env


def _spec(namespace: str, version: str = "1", replicas: int = 2, **fields) -> DeploymentSpec:
    return DeploymentSpec(namespace, "churn", version, replicas=replicas, strategy=Strategy(1, 0, 30),
                          readiness_period=0.2, warmup=0.2, revision=f"rev-{version}", **fields)


def _listeners(pids: list[int]) -> list[str]:
    """Local addresses of the TCP sockets the given processes listen on."""
    inodes: set[str] = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:   # LISTEN
                address = cols[1].split(":")[0]
                if len(address) == 8:
                    found.append(".".join(str(int(address[i:i + 2], 16)) for i in (6, 4, 2, 0)))
                else:
                    found.append("ipv6:" + address)
    return found


def test_control_plane_is_one_upstream_release_on_loopback_with_tls_and_rbac(cluster: Cluster) -> None:
    version = cluster.bins.version()
    assert re.match(r"v1\.(3[4-9]|[4-9]\d)\.\d+$", version or ""), version
    server = cluster.kubectl("version", "-o", "json").stdout
    assert f'"gitVersion": "{version}"' in server
    listening = _listeners(cluster.control_plane.pids())
    assert len(listening) >= 5 and set(listening) == {"127.0.0.1"}, listening
    assert cluster.access.server.startswith("https://127.0.0.1:")
    # RBAC is on: the node's identity may not list secrets
    denied = cluster.kubectl("get", "secrets", "-A", kubeconfig=cluster.access.node, check=False)
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower()
    # nobody without a certificate the run's CA signed gets in
    with pytest.raises(OSError):
        urllib.request.urlopen(cluster.access.server + "/api", timeout=5)


def test_node_runs_a_deployments_pods_on_their_own_loopback_address(cluster: Cluster) -> None:
    namespace = _namespace(cluster)
    env = _env(cluster, namespace)
    try:
        env.apply(_spec(namespace))
        wait_for(lambda: env.observe(namespace).complete, 30, "the rollout")
        pods = cluster.kubectl("get", "pods", "-n", namespace, "-o", "wide").stdout
        assert pods.count("Running") == 2 and pods.count("1/1") == 2, pods
        node = cluster.kubectl("get", "node", "mlopslab-node").stdout
        assert " Ready " in node
        endpoints = env.endpoints(namespace)
        assert len(endpoints) == 2
        for endpoint in endpoints:
            assert re.match(r"http://127\.\d+\.\d+\.\d+:8080$", endpoint.url), endpoint.url
            with urllib.request.urlopen(endpoint.url + "/version", timeout=5) as response:
                assert b'"1"' in response.read() or response.status == 200
        kinds = [k for k, lane, _ in cluster.events if lane == namespace]
        assert kinds.count("replica_started") == 2 and kinds.count("replica_ready") == 2
        assert "rollout_done" in kinds
    finally:
        env.teardown()


def test_the_real_deployment_controller_rolls_with_surge_and_readiness(cluster: Cluster) -> None:
    from kubernetes import client

    namespace = _namespace(cluster)
    env = _env(cluster, namespace)
    try:
        env.apply(_spec(namespace, replicas=3))
        wait_for(lambda: env.observe(namespace).complete, 30, "v1")
        mine = lambda: [(k, f) for k, lane, f in list(cluster.events) if lane == namespace]  # noqa: E731
        before = len(mine())
        env.apply(_spec(namespace, "2", replicas=3))
        wait_for(lambda: env.observe(namespace).complete and env.observe(namespace).spec.version == "2", 60, "v2")
        sets = client.AppsV1Api(cluster.admin).list_namespaced_replica_set(namespace).items
        assert sorted((rs.spec.template.metadata.labels["mlopslab.io/model-version"], rs.spec.replicas)
                      for rs in sets) == [("1", 0), ("2", 3)]
        # maxSurge 1, maxUnavailable 0: the Deployment controller keeps its ReplicaSets' replicas within 3..4
        # (its exact steps are asserted below) and never fewer than 3 pods ready. Pods can be one more for an
        # instant: each step scales the old ReplicaSet down and the new one up, and the ReplicaSet controller
        # syncs the two in separate workers, so under load a new pod can be created before the old one's
        # deletion (seen once in CI, with a busy loop beside it: 5)
        live: set[str] = set()
        ready: set[str] = set()
        most, least = 0, 3
        for i, (kind, fields) in enumerate(mine()):
            name = fields.get("replica")
            if kind == "replica_started":
                live.add(name)
            elif kind == "replica_ready":
                ready.add(name)
            elif kind in ("replica_terminating", "replica_stopped"):
                live.discard(name)
                ready.discard(name)
            if i >= before:
                most, least = max(most, len(live)), min(least, len(ready))
        terminating = [f for k, f in mine()[before:] if k == "replica_terminating"]
        assert 4 <= most <= 5 and least == 3, (most, least)
        # the Deployment controller's steps, one ReplicaSet scale at a time
        steps = [(f["version"], f["replicas"]) for k, f in mine()[before:] if k == "replicaset_scaled"]
        assert steps == [("2", 1), ("1", 2), ("2", 2), ("1", 1), ("2", 3), ("1", 0)], steps
        assert [f["reason"] for f in terminating] == ["rollout"] * 3
    finally:
        env.teardown()


def test_a_container_that_exits_is_restarted_with_back_off(cluster: Cluster) -> None:
    namespace = _namespace(cluster)
    env = _env(cluster, namespace)
    try:
        env.apply(_spec(namespace, "crash", replicas=1))

        def restarted() -> bool:
            out = cluster.kubectl("get", "pods", "-n", namespace, "-o",
                                  "jsonpath={.items[0].status.containerStatuses[0].restartCount}").stdout
            return out.isdigit() and int(out) >= 2

        wait_for(restarted, 40, "two restarts")
        wait_for(lambda: "CrashLoopBackOff" in cluster.kubectl("get", "pods", "-n", namespace).stdout, 20,
                 "CrashLoopBackOff in kubectl get pods")
        crashed = [f for k, lane, f in cluster.events if k == "replica_stopped" and lane == namespace]
        assert crashed and crashed[0]["reason"] == "crashed"
        assert not env.endpoints(namespace)
    finally:
        env.teardown()


def test_deletion_waits_for_prestop_then_stops_the_process_and_removes_the_pod(cluster: Cluster) -> None:
    from kubernetes import client

    namespace = _namespace(cluster)
    env = _env(cluster, namespace)
    core = client.CoreV1Api(cluster.admin)
    try:
        env.apply(_spec(namespace, replicas=1))
        wait_for(lambda: env.observe(namespace).complete, 30, "v1")
        pod = core.list_namespaced_pod(namespace).items[0]
        with cluster.node._lock:
            run = next(r for r in cluster.node.pods.values() if r.name == pod.metadata.name)
        began = time.monotonic()
        core.delete_namespaced_pod(pod.metadata.name, namespace)   # default grace: the pod's own (2 s)
        wait_for(lambda: not env.endpoints(namespace) or
                 all(e.replica != pod.metadata.name for e in env.endpoints(namespace)), 5, "out of the endpoints")
        assert time.monotonic() - began < 1.0      # out of traffic before the preStop sleep ends
        names = lambda: {p.metadata.name for p in core.list_namespaced_pod(namespace).items}  # noqa: E731
        wait_for(lambda: pod.metadata.name not in names(), 15, "the pod object removed")
        took = time.monotonic() - began
        assert 1.0 <= took < 10.0, took            # preStop sleep (1 s), then SIGTERM well within the grace
        assert run.handle.poll() is not None       # the process is gone
    finally:
        env.teardown()


def test_a_delivery_credential_is_confined_to_its_lane_namespace(cluster: Cluster, tmp_path: Path) -> None:
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    from mlopslab.envs.kubernetes import rbac

    mine, theirs = f"p-{secrets.token_hex(3)}", f"q-{secrets.token_hex(3)}"
    labels = {"app.kubernetes.io/part-of": "mlopslab"}
    path = rbac.grant(cluster.admin, cluster.access, mine, "ci-runner", labels, tmp_path / "push.kubeconfig")
    rbac.grant(cluster.admin, cluster.access, theirs, "gitops-agent", labels, tmp_path / "pull.kubeconfig")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    apps = client.AppsV1Api(config.new_client_from_config(str(path)))
    apps.list_namespaced_deployment(mine)                     # its own namespace: allowed
    for call in (lambda: apps.list_namespaced_deployment(theirs),
                 lambda: client.CoreV1Api(apps.api_client).list_namespaced_secret(mine),
                 lambda: client.CoreV1Api(apps.api_client).create_namespace({"metadata": {"name": "x-" + mine}})):
        with pytest.raises(ApiException) as info:
            call()
        assert info.value.status == 403
    # and it applies as itself: server-side apply with its own field manager
    from mlopslab.envs.kubernetes.environment import KubernetesEnvironment

    env = KubernetesEnvironment(cluster.admin, cluster.emit, {mine: mine}, manifests)
    env.start()
    try:
        env.apply_as(apps.api_client, "mlopslab-ci-runner", _spec(mine, replicas=1))
        deployment = client.AppsV1Api(cluster.admin).read_namespaced_deployment("model-server", mine)
        managers = {entry.manager for entry in deployment.metadata.managed_fields}
        assert "mlopslab-ci-runner" in managers
        with pytest.raises(ApiException) as info:
            env.apply_as(apps.api_client, "mlopslab-ci-runner", _spec(theirs, replicas=1)
                         if theirs in env.namespaces else DeploymentSpec(mine, "churn", "1"))
            KubernetesEnvironment(cluster.admin, cluster.emit, {theirs: theirs}, manifests).apply_as(
                apps.api_client, "mlopslab-ci-runner", _spec(theirs, replicas=1))
        assert info.value.status == 403
    finally:
        env.teardown()


def _no_binaries_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLOPSLAB_K8S_BIN", "KUBEBUILDER_ASSETS")}
    env["MLOPSLAB_K8S_CACHE"] = str(tmp_path / "no-cache")
    return env


@pytest.mark.kubernetes
def test_no_binaries_exits_2_with_the_fix_before_anything_starts(tmp_path: Path) -> None:
    import subprocess
    import sys

    results = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "mlopslab.cli", "run", "push-vs-pull-k8s", "--results", str(results)],
                          capture_output=True, text=True, timeout=60, env=_no_binaries_env(tmp_path))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "kube-apiserver" in done.stderr and "bash .ci/k8s.sh" in done.stderr and "MLOPSLAB_K8S_BIN" in done.stderr
    assert not results.exists()
    doctor = subprocess.run([sys.executable, "-m", "mlopslab.cli", "doctor"], capture_output=True, text=True,
                            timeout=60, env=_no_binaries_env(tmp_path))
    assert "NO  kubernetes binaries" in doctor.stdout and "environment kubernetes  not usable here" in doctor.stdout


def test_binaries_come_from_mlopslab_k8s_bin_then_kubebuilder_assets(k8s_binaries, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from mlopslab.envs.kubernetes import binaries

    assets = tmp_path / "envtest"   # what setup-envtest downloads: no controller-manager, no scheduler
    assets.mkdir()
    for name in ("etcd", "kube-apiserver", "kubectl"):
        (assets / name).symlink_to(k8s_binaries.paths[name])
    monkeypatch.setenv("MLOPSLAB_K8S_CACHE", str(tmp_path / "no-cache"))
    monkeypatch.delenv("MLOPSLAB_K8S_BIN", raising=False)
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(assets))
    found = binaries.find()
    assert found.sources["kube-apiserver"] == "KUBEBUILDER_ASSETS"
    assert found.missing == ["kube-controller-manager", "kube-scheduler"]
    assert "kube-controller-manager" in (found.problem() or "")
    full = tmp_path / "bin"
    full.mkdir()
    for name in binaries.NAMES:
        (full / name).symlink_to(k8s_binaries.paths[name])
    monkeypatch.setenv("MLOPSLAB_K8S_BIN", str(full))
    found = binaries.find()
    assert found.missing == [] and set(found.sources.values()) == {"MLOPSLAB_K8S_BIN"}
    assert found.problem() is None and found.version() == k8s_binaries.version()


def test_the_env_repos_files_are_applied_as_they_are(cluster: Cluster) -> None:
    from dataclasses import replace

    from kubernetes import client

    namespace = _namespace(cluster)
    env = _env(cluster, namespace)
    try:
        files = manifests.render_lane(_spec(namespace, replicas=1))
        files["deployment.yaml"] = files["deployment.yaml"].replace(
            "  annotations:\n", "  annotations:\n    team.example/owner: by-hand\n", 1)   # an edit in the repo
        spec = manifests.parse_lane(files, revision="abc1234")
        assert spec == replace(_spec(namespace, replicas=1), revision="abc1234")   # what the lab reads of it
        env.apply(spec)
        live = client.AppsV1Api(cluster.admin).read_namespaced_deployment("model-server", namespace)
        assert live.metadata.annotations["team.example/owner"] == "by-hand"
        assert live.metadata.annotations["mlopslab.io/revision"] == "abc1234"
    finally:
        env.teardown()


def test_flux_lanes_without_flux_controllers_exit_2_before_anything_starts(k8s_binaries, tmp_path: Path) -> None:
    import subprocess
    import sys

    results = tmp_path / "run"
    env = {**os.environ, "MLOPSLAB_FLUX_DIR": str(tmp_path / "no-flux")}
    done = subprocess.run([sys.executable, "-m", "mlopslab.cli", "run", "flux-vs-agent", "--results", str(results)],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "flux controllers" in done.stderr and "bash .ci/flux.sh" in done.stderr
    assert not results.exists()
