"""Env repo, signed webhooks, the push CI runner and the pull agent, on real git and real processes."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from mlopslab.envs.base import DeploymentSpec, Strategy
from mlopslab.envs.local import LocalEnvironment
from mlopslab.gitops import manifests, webhook
from mlopslab.gitops.pull import PullAgent
from mlopslab.gitops.push import PushRunner
from mlopslab.gitops.repo import Checkout, EnvRepo
from mlopslab.ml.registry import Registry
from tests.conftest import MODEL
from tests.events_helpers import Events


def _spec(lane: str, version: str, replicas: int = 1) -> DeploymentSpec:
    return DeploymentSpec(lane=lane, model=MODEL, version=version, replicas=replicas, warmup=0.1,
                          readiness_period=0.05, strategy=Strategy(1, 0, 20))


def test_manifests_round_trip_and_render_with_kustomize(tmp_path: Path) -> None:
    repo = EnvRepo(tmp_path / "repo")
    sha = repo.commit_lanes([_spec("push", "3", replicas=2)], "v3")
    assert Checkout(repo.path, tmp_path / "clone").render(sha, "push") == replace(_spec("push", "3", 2), revision=sha)
    def words(path: Path) -> str:  # a field that turns token mounting off is no secret
        return path.read_text().lower().replace("automountserviceaccounttoken: false", "")

    secret_like = [p for p in repo.path.rglob("*") if p.is_file() and ".git" not in p.parts
                   and ("secret" in words(p) or "token" in words(p))]
    assert secret_like == []
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl is needed to check that lanes render with kustomize (it ships with this machine image)")
    out = subprocess.run(["kubectl", "kustomize", str(repo.path / "lanes" / "push")], capture_output=True,
                         text=True, check=True).stdout
    docs = {d["kind"]: d for d in yaml.safe_load_all(out)}
    assert set(docs) == {"Namespace", "Deployment", "Service"}
    deployment = docs["Deployment"]
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"mlopslab/{MODEL}:v3"
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_malformed_manifest_is_rejected_with_the_reason() -> None:
    files = manifests.render_lane(_spec("push", "1"))
    files["deployment.yaml"] = files["deployment.yaml"].replace("replicas: 1", "replicas: -2")
    with pytest.raises(manifests.ManifestError, match="spec.replicas"):
        manifests.parse_lane(files)


def test_a_progressive_lanes_manifest_leaves_replicas_to_the_rollout_controller() -> None:
    """Flagger's canary Deployment has no spec.replicas in git (Flux would scale it back up at every interval);
    the lane's size is an annotation, read back as the spec's replicas. A live object's spec.replicas (the
    controller's) wins over it."""
    spec = replace(_spec("flux", "2", replicas=3), progressive='{"type": "canary", "interval": 2}')
    files = manifests.render_lane(spec)
    deployment = yaml.safe_load(files["deployment.yaml"])
    assert "replicas" not in deployment["spec"]
    assert deployment["metadata"]["annotations"]["mlopslab.io/replicas"] == "3"
    assert manifests.parse_lane(files) == spec
    deployment["spec"]["replicas"] = 0
    assert manifests.parse_deployment(deployment).replicas == 0
    del deployment["spec"]["replicas"], deployment["metadata"]["annotations"]["mlopslab.io/replicas"]
    with pytest.raises(manifests.ManifestError, match="spec.replicas is missing .* mlopslab.io/replicas"):
        manifests.parse_deployment(deployment)
    assert "replicas" in yaml.safe_load(manifests.render_lane(_spec("push", "2"))["deployment.yaml"])["spec"]


def test_webhook_accepts_only_correctly_signed_fresh_payloads() -> None:
    got: list[dict] = []
    secret = webhook.new_secret()
    receiver = webhook.WebhookReceiver(secret, got.append)
    try:
        assert receiver.url.startswith("http://127.0.0.1:")
        assert webhook.deliver(receiver.url, secret, {"after": "abc"}) == 202
        assert webhook.deliver(receiver.url, "wrong-secret", {"after": "evil"}) == 401
        body = json.dumps({"after": "old", "sent_at": time.time() - 3600}).encode()
        request = urllib.request.Request(receiver.url, data=body, method="POST",
                                         headers={webhook.SIGNATURE_HEADER: webhook.sign(secret, body)})
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=5)
        assert info.value.code == 410  # replayed/stale delivery
        unsigned = urllib.request.Request(receiver.url, data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(unsigned, timeout=5)
        assert [p["after"] for p in got] == ["abc"] and receiver.rejected == 3
    finally:
        receiver.close()


@pytest.fixture
def lab_parts(tmp_path: Path, registry: Registry) -> Iterator[tuple[EnvRepo, LocalEnvironment, Events]]:
    events = Events()
    env = LocalEnvironment(registry.serving_dir, events.emit)
    repo = EnvRepo(tmp_path / "repo")
    yield repo, env, events
    env.teardown()


def _wait(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_push_runner_reacts_to_the_commit_and_never_reverts_live_changes(lab_parts, tmp_path, registry) -> None:
    repo, env, events = lab_parts
    runner = PushRunner("push", repo.path, tmp_path / "ci", env, events.emit, registry.exists)
    repo.add_hook(runner.hook_url, runner.secret)
    runner.start()
    try:
        t_commit = time.monotonic() - events.t0
        sha = repo.commit_lanes([_spec("push", "1", replicas=2)], "v1")
        detected = events.wait_for("detected", "push", sha=sha)
        assert detected["how"] == "webhook" and detected["t"] - t_commit < 2.0
        done = events.wait_for("pipeline_done", "push", sha=sha)
        assert done["ok"] and done["steps"] == ["checkout", "validate", "model-exists"]
        _wait(lambda: env.observe("push").complete)
        env.change_live("push", replicas=1)
        time.sleep(2.0)
        assert env.observe("push").spec.replicas == 1  # nobody looks: the drift stays
        sha2 = repo.commit_lanes([_spec("push", "99", replicas=2)], "a version that was never registered")
        failed = events.wait_for("pipeline_done", "push", sha=sha2)
        assert not failed["ok"] and "not in the registry" in failed["error"]
        assert env.observe("push").spec.version == "1"
    finally:
        runner.stop()


def test_pull_agent_detects_within_interval_plus_jitter_and_self_heals(lab_parts, tmp_path) -> None:
    repo, env, events = lab_parts
    interval, jitter = 1.0, 0.5
    repo.commit_lanes([_spec("pull", "1", replicas=2)], "v1")
    agent = PullAgent("pull", repo.path, tmp_path / "agent", env, events.emit, interval=interval, jitter=jitter,
                      live_interval=0.2, seed=3)
    agent.start()
    try:
        _wait(lambda: env.observe("pull").complete)
        delays = []
        for version in ("2", "1", "2"):
            t_commit = time.monotonic() - events.t0
            sha = repo.commit_lanes([_spec("pull", version, replicas=2)], f"v{version}")
            detected = events.wait_for("detected", "pull", sha=sha, timeout=10)
            assert detected["how"] == "poll"
            delays.append(detected["t"] - t_commit)
            _wait(lambda: env.observe("pull").complete and env.observe("pull").spec.revision == sha)
        assert all(0.0 <= d <= interval + jitter + 0.3 for d in delays), delays
        env.change_live("pull", replicas=1)
        reverted = events.wait_for("live_reverted", "pull", timeout=5)
        assert reverted["change"] == {"replicas": ["1", "2"]}
        _wait(lambda: env.observe("pull").spec.replicas == 2 and env.observe("pull").complete)
    finally:
        agent.stop()


def test_pull_agent_wakes_on_a_signed_webhook(lab_parts, tmp_path) -> None:
    repo, env, events = lab_parts
    repo.commit_lanes([_spec("hook", "1")], "v1")
    agent = PullAgent("hook", repo.path, tmp_path / "agent", env, events.emit, interval=600, webhook=True)
    repo.add_hook(agent.hook_url, agent.secret)
    agent.start()
    try:
        _wait(lambda: env.observe("hook").complete)
        t_commit = time.monotonic() - events.t0
        sha = repo.commit_lanes([_spec("hook", "2")], "v2")
        detected = events.wait_for("detected", "hook", sha=sha, timeout=10)
        assert detected["how"] == "webhook" and detected["t"] - t_commit < 2.0  # not 600 s
    finally:
        agent.stop()


def test_a_lanes_strategy_and_a_slowed_release_travel_in_its_manifest_and_render_with_kustomize(
        tmp_path: Path) -> None:
    from mlopslab.strategies.spec import GateSpec, Step, StrategySpec

    canary = StrategySpec("canary", interval=5, steps=(Step("setWeight", 20), Step("pause", None)),
                          gates=(GateSpec("p99", max=200),))
    specs = [replace(_spec("canary", "3"), progressive=canary.to_json(), latency_ms=150.0),
             replace(_spec("recreate", "3"), strategy=Strategy(0, "100%", 20, type="Recreate"))]
    repo = EnvRepo(tmp_path / "repo")
    sha = repo.commit_lanes(specs, "v3")
    clone = Checkout(repo.path, tmp_path / "clone")
    for spec in specs:   # what a pull agent reads back is what was committed
        assert clone.render(sha, spec.lane) == replace(spec, revision=sha)
    assert StrategySpec.from_json(clone.render(sha, "canary").progressive) == canary
    out = subprocess.run(["kubectl", "kustomize", str(repo.path / "lanes" / "canary")], capture_output=True,
                         text=True, check=True).stdout
    deployment = next(d for d in yaml.safe_load_all(out) if d["kind"] == "Deployment")
    assert deployment["metadata"]["annotations"]["mlopslab.io/strategy"] == "canary"
    assert "--latency-ms" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    out = subprocess.run(["kubectl", "kustomize", str(repo.path / "lanes" / "recreate")], capture_output=True,
                         text=True, check=True).stdout
    deployment = next(d for d in yaml.safe_load_all(out) if d["kind"] == "Deployment")
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
