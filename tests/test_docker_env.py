"""The Docker environment on a real engine: real images, containers, HTTP, MLflow versions and git."""
# ruff: noqa: F811  (pytest fixtures imported from tests/docker_fixtures.py are parameters here)

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mlopslab.envs.base import DeploymentSpec
from mlopslab.envs.images import LABEL_LANE, LABEL_RUN, LABEL_VERSION
from tests.docker_fixtures import (  # noqa: F401
    Events,
    Traffic,
    agent_base,
    base_image,
    docker_client,
    models,
    no_leftovers,
    run_id,
    wait_until,
)

pytestmark = [pytest.mark.docker, pytest.mark.timeout(240)]

ROWS = [[0.1 * i for i in range(8)], [0.5] * 8]


@pytest.fixture
def env(docker_client, base_image, models, run_id, tmp_path):
    from mlopslab.envs.docker import DockerEnvironment

    events = Events()
    environment = DockerEnvironment(models.resolve, events, tmp_path / "logs" if (tmp_path / "logs").mkdir() is None
                                    else None, run_id=run_id, base_image=base_image, client=docker_client,
                                    state_dir=tmp_path / "state")
    environment.events = events
    yield environment
    environment.teardown()
    assert no_leftovers(docker_client, run_id) == []


def test_docker_rollout_replaces_containers_one_by_one_while_traffic_flows(env, models, docker_client, run_id):
    v1, v2 = models.versions
    env.apply(DeploymentSpec("push", models.name, v1, replicas=3))
    env.events.wait("rollout_done", 60, lane="push", version=v1)
    containers = docker_client.containers.list(filters={"label": [f"{LABEL_RUN}={run_id}", f"{LABEL_LANE}=push"]})
    assert len(containers) == 3
    attrs = containers[0].attrs
    assert attrs["Config"]["User"] == "10001:10001"
    assert attrs["HostConfig"]["ReadonlyRootfs"] is True
    assert attrs["HostConfig"]["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in attrs["HostConfig"]["SecurityOpt"]
    assert {b["HostIp"] for b in attrs["HostConfig"]["PortBindings"]["8080/tcp"]} == {"127.0.0.1"}
    assert attrs["Config"]["Labels"][LABEL_VERSION] == v1
    build = env.events.of("image_build", version=v1)[0]
    assert build["added"] < 200e6 and build["size"] > 0

    traffic = Traffic(env, "push", ROWS, duration=90).start()
    wait_until(lambda: traffic.ok > 20, what="traffic on v1")
    env.apply(DeploymentSpec("push", models.name, v2, replicas=3))
    env.events.wait("rollout_done", 90, lane="push", version=v2)
    wait_until(lambda: env.observe("push").complete and len(env.observe("push").replicas) == 3, 10)
    time.sleep(0.5)
    traffic.stop()

    assert traffic.errors == []
    assert traffic.versions.get(v1, 0) > 0 and traffic.versions.get(v2, 0) > 0
    started = [e for e in env.events.items if e["kind"] == "replica_started" and e["version"] == v2]
    stopped = [e for e in env.events.items if e["kind"] == "replica_stopped" and e["version"] == v1]
    assert len(started) == 3 and len(stopped) == 3
    # container by container: each v2 container starts only once the one before it is ready (maxSurge 1,
    # maxUnavailable 0), and a v1 container goes only after a v2 one is ready
    ready = sorted(e["t"] for e in env.events.items if e["kind"] == "replica_ready" and e["version"] == v2)
    for i, event in enumerate(sorted(started, key=lambda e: e["t"])[1:]):
        assert ready[i] <= event["t"]
    for i, event in enumerate(sorted(stopped, key=lambda e: e["t"])):
        assert ready[i] <= event["t"]
    versions = {c.labels[LABEL_VERSION] for c in
                docker_client.containers.list(filters={"label": [f"{LABEL_RUN}={run_id}", f"{LABEL_LANE}=push"]})}
    assert versions == {v2}


def test_killed_container_is_replaced(env, models, docker_client, run_id):
    v1 = models.versions[0]
    env.apply(DeploymentSpec("push", models.name, v1, replicas=2))
    env.events.wait("rollout_done", 60, lane="push")
    victim = docker_client.containers.list(filters={"label": f"{LABEL_RUN}={run_id}"})[0]
    victim.kill()  # a crash the controller did not ask for
    env.events.wait("replica_stopped", 20, lane="push", reason="died")
    wait_until(lambda: env.observe("push").ready == 2 and env.observe("push").complete, 30, what="replacement ready")
    ids = {c.id for c in docker_client.containers.list(filters={"label": f"{LABEL_RUN}={run_id}"})}
    assert victim.id not in ids and len(ids) == 2
    for endpoint in env.endpoints("push"):
        import urllib.request

        with urllib.request.urlopen(endpoint.url + "/ping", timeout=2) as response:
            assert response.status == 200


def test_pull_agent_container_reverts_a_manual_change(env, models, agent_base, docker_client, run_id, tmp_path):
    from mlopslab.envs.docker_agent import DockerAgent
    from mlopslab.gitops.repo import EnvRepo

    v1, v2 = models.versions
    repo = EnvRepo(tmp_path / "env-repo")
    sha = repo.commit_lanes([DeploymentSpec("pull", models.name, v1, replicas=2)], "release v1")
    agent = DockerAgent("pull", repo.path, env, env.events, models_dir=models.registry.cache, interval=1.0,
                        live_interval=0.5, agent_base=agent_base, log_dir=tmp_path)
    agent.start()
    try:
        env.events.wait("rollout_done", 90, lane="pull", version=v1)
        assert env.events.of("detected", lane="pull", sha=sha)
        live = wait_until(lambda: (s := env.observe("pull")).complete and s.ready == 2 and s, 10)
        assert live.spec.revision == sha and not env.controls("pull")  # the agent's controller, seen from the lab
        agent_attrs = docker_client.containers.get(agent.name).attrs
        assert agent_attrs["HostConfig"]["NetworkMode"] == "host" and agent_attrs["Config"]["User"] == "10001:10001"

        env.change_live("pull", version=v2)  # like `kubectl edit`, bypassing the env repo
        reverted = env.events.wait("live_reverted", 30, lane="pull")[0]
        assert reverted["revision"] == sha
        wait_until(lambda: (s := env.observe("pull")).complete and s.spec.version == v1
                   and {r.version for r in s.replicas} == {v1}, 60, what="back on v1")
        assert len(env.endpoints("pull")) == 2
    finally:
        agent.stop()
    assert not [c for c in docker_client.containers.list(all=True, filters={"label": f"{LABEL_RUN}={run_id}"})
                if c.labels.get("mlopslab.role") == "agent"]


SCRIPT = textwrap.dedent("""
    import sys, time, json
    from pathlib import Path
    from mlopslab.envs.base import DeploymentSpec
    from mlopslab.envs.docker import DockerEnvironment
    from mlopslab.envs.cleanup import on_signals
    run_id, base, models, model, version, state = sys.argv[1:]
    env = DockerEnvironment(lambda n, v: Path(models) / n / v, lambda *a, **k: None, run_id=run_id,
                            base_image=base, state_dir=Path(state))
    try:
        with on_signals():
            env.apply(DeploymentSpec("push", model, version, replicas=2))
            while env.observe("push").ready < 2:
                time.sleep(0.1)
            print("ready", flush=True)
            time.sleep(120)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    finally:
        env.teardown()
        print("clean", flush=True)
""")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_leaves_no_container_of_the_run(docker_client, base_image, models, run_id, tmp_path, signum):
    version = models.versions[0]
    models.resolve(models.name, version)
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, run_id, base_image, str(models.registry.cache),
                             models.name, version, str(tmp_path / "state")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        assert len(no_leftovers(docker_client, run_id)) == 2
        assert docker_client.networks.list(filters={"label": f"{LABEL_RUN}={run_id}"})
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "clean" in out, err
    assert no_leftovers(docker_client, run_id) == []
    assert docker_client.networks.list(filters={"label": f"{LABEL_RUN}={run_id}"}) == []


def test_clean_removes_leftovers_of_earlier_runs_by_label(docker_client, base_image, run_id):
    from mlopslab.envs.cleanup import clean
    from mlopslab.envs.images import LABEL_ROLE

    docker_client.networks.create(f"mlopslab-{run_id}", labels={LABEL_RUN: run_id})
    docker_client.containers.create(base_image, ["sleep", "60"], labels={LABEL_RUN: run_id, LABEL_ROLE: "replica"})
    removed = clean(run_id, client=docker_client)
    assert len(removed.containers) == 1 and removed.networks == [f"mlopslab-{run_id}"]
    assert no_leftovers(docker_client, run_id) == []


def test_doctor_reports_the_engine_and_the_base_image(docker_client, base_image, monkeypatch):
    from mlopslab.doctor import diagnose, format

    monkeypatch.setenv("MLOPSLAB_BASE_IMAGE", base_image)
    checks = {c.name: c for c in diagnose()}
    assert checks["docker engine"].ok and checks["docker engine"].detail
    assert checks["base image"].ok
    text = format(list(checks.values()))
    assert "docker" in text and base_image in text
    assert json.dumps([c.__dict__ for c in checks.values()])
    assert os.environ["MLOPSLAB_BASE_IMAGE"] == base_image


KILLED_SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from mlopslab.envs.base import DeploymentSpec
    from mlopslab.envs.docker import DockerEnvironment
    from mlopslab.envs.docker_agent import DockerAgent
    from mlopslab.gitops.repo import EnvRepo
    run_id, base, agent_base, models, model, version, tmp = sys.argv[1:]
    env = DockerEnvironment(lambda n, v: Path(models) / n / v, lambda *a, **k: None, run_id=run_id,
                            base_image=base, state_dir=Path(tmp) / "state")
    repo = EnvRepo(Path(tmp) / "repo")
    repo.commit_lanes([DeploymentSpec("pull", model, version, replicas=1)], "v1")
    agent = DockerAgent("pull", repo.path, env, lambda *a, **k: None, models_dir=Path(models), interval=1.0,
                        agent_base=agent_base, orphan_after=3.0)
    agent.start()
    env.apply(DeploymentSpec("push", model, version, replicas=1))
    while env.observe("pull").ready < 1 or env.observe("push").ready < 1:
        time.sleep(0.1)
    print("ready", flush=True)
    time.sleep(120)
""")


def test_a_killed_lab_leaves_nothing_once_its_agent_sees_the_heartbeat_stop(docker_client, base_image, agent_base,
                                                                              models, run_id, tmp_path):
    version = models.versions[0]
    models.resolve(models.name, version)
    proc = subprocess.Popen([sys.executable, "-c", KILLED_SCRIPT, run_id, base_image, agent_base,
                             str(models.registry.cache), models.name, version, str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        assert len(no_leftovers(docker_client, run_id)) == 3  # push replica, pull replica, agent
        proc.kill()  # SIGKILL: no teardown runs in the lab
        proc.wait(timeout=10)
        wait_until(lambda: no_leftovers(docker_client, run_id) == [], 30, what="the agent reaped the run")
        assert docker_client.networks.list(filters={"label": f"{LABEL_RUN}={run_id}"}) == []
    finally:
        if proc.poll() is None:
            proc.kill()


PULL_SCENARIO = """\
name: pull-rollout-docker
seed: 3
duration: 120
environment: {{kind: docker, base_image: {base}}}
model: {{name: churn, data: {{n_samples: 800}}}}
traffic: {{rate: 40}}
lanes:
  - name: pull
    delivery: pull
    replicas: 2
    warmup: 0.2
    readiness: {{period: 0.1}}
    rollout: {{maxSurge: 1, maxUnavailable: 0}}
    poll: {{interval: 1, jitter: 0}}
timeline:
  - at: 1
    release: {{C: 0.2, note: v2}}
"""


def test_pull_lane_rollout_under_traffic_has_no_errors(docker_client, base_image, agent_base, run_id, tmp_path,
                                                       monkeypatch):
    """The agent container's controller drains a replica out of the lab's Endpoints before SIGTERM, as
    Kubernetes removes an endpoint before the pod is signalled: no request of the pull lane fails."""
    from mlopslab import report, scenario
    from mlopslab.lab import Lab

    monkeypatch.setenv("MLOPSLAB_AGENT_BASE_IMAGE", agent_base)
    sc = scenario.parse(PULL_SCENARIO.format(base=base_image))
    lab = Lab(sc, tmp_path / run_id)  # the results dir's name is the run id (containers carry its label)
    try:
        lab.prepare()
        lab.start()

        def on_v2_only():  # stopping containers stay listed (terminating) until they are removed
            live = lab.env.observe("pull")
            return live.complete and [r.version for r in live.replicas] == ["2", "2"]

        wait_until(on_v2_only, 60, what="the pull lane on v2 with every v1 container gone")
        time.sleep(1.0)  # requests sent just before the last v1 container went have come back
    finally:
        lab.stop()
        lab.shutdown()
    assert no_leftovers(docker_client, run_id) == []

    summary = report.summarise(lab.state).to_json()
    release = next(r for r in summary["lanes"]["pull"]["releases"] if r["version"] == "2")
    assert release["lead"]["traffic_100"] is not None
    assert release["requests_during_rollout"] > 20
    stopped = [json.loads(line) for line in (tmp_path / run_id / "events.jsonl").read_text().splitlines()]
    stopped = [e for e in stopped if e["kind"] == "replica_stopped" and e["lane"] == "pull" and e["version"] == "1"]
    assert len(stopped) == 2  # both v1 containers were stopped while traffic flowed
    requests = [json.loads(line) for line in (tmp_path / run_id / "requests.jsonl").read_text().splitlines()]
    pull = [r for r in requests if r["lane"] == "pull"]
    failed = [r for r in pull if r["st"] != 200]
    assert len(pull) > 100 and failed == [], failed[:10]
    assert summary["lanes"]["pull"]["errors"] == 0 and release["errors_during_rollout"] == 0
