"""Flux as a lane: the env repo over git's smart HTTP (read-only), the validator's rules for a Flux lane,
and a whole run of flux-vs-agent on the embedded cluster with Flux's real controllers.

No controllers built (.ci/flux.sh): the cluster tests skip, unless MLOPSLAB_REQUIRE_FLUX=1 (CI), where
that is a failure.
"""
# ruff: noqa: F811  (pytest fixtures imported from tests/*_fixtures.py are parameters here)

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import types
from pathlib import Path

import pytest

from mlopslab import scenario
from mlopslab.events import read_events
from tests.kube_fixtures import k8s_binaries, wait_for  # noqa: F401  (fixture)

REQUIRED = os.environ.get("MLOPSLAB_REQUIRE_FLUX") == "1"


@pytest.fixture(scope="session")
def flux_install():
    from mlopslab.gitops import flux

    found = flux.find()
    if (problem := found.problem()) is not None:
        if REQUIRED:
            pytest.fail(f"MLOPSLAB_REQUIRE_FLUX=1 but {problem}", pytrace=False)
        pytest.skip(problem)
    return found


def processes_of(results: Path) -> dict[int, str]:
    """{pid: executable name} of live processes that belong to the run: its path in their command line,
    environment (kustomize-controller's KUBECONFIG) or working directory."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (entry / "stat").read_text().split(") ")[1][0] == "Z":
                continue
            texts = [(entry / name).read_bytes().decode(errors="replace") for name in ("cmdline", "environ")]
            texts.append(os.readlink(entry / "cwd"))
            if any(str(results) in text for text in texts):
                found[int(entry.name)] = Path(os.readlink(entry / "exe")).name
        except OSError:
            continue
    return found


def _start(results: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mlopslab.cli", "run", "flux-vs-agent", "--results", str(results)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _events(results: Path) -> list[dict]:
    return list(read_events(results / "events.jsonl")) if (results / "events.jsonl").exists() else []


def _git(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_git_server_serves_fetches_and_refuses_pushes_and_other_paths(tmp_path: Path) -> None:
    from mlopslab.gitops.githttp import GitServer

    repo = tmp_path / "envrepo"
    repo.mkdir()
    _git("init", "-q", "-b", "main", cwd=repo)
    (repo / "a").write_text("one\n")
    _git("add", "a", cwd=repo)
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one", cwd=repo)
    (tmp_path / "other").mkdir()
    _git("init", "-q", str(tmp_path / "other"))
    server = GitServer(tmp_path, ("envrepo",)).start()
    try:
        assert server.url("envrepo").startswith("http://127.0.0.1:")
        listed = _git("ls-remote", server.url("envrepo"))
        assert listed.returncode == 0 and "refs/heads/main" in listed.stdout, listed.stderr
        clone = tmp_path / "clone"
        assert _git("clone", "-q", server.url("envrepo"), str(clone)).returncode == 0
        assert (clone / "a").read_text() == "one\n"
        pushed = _git("push", "origin", "HEAD:refs/heads/evil", cwd=clone)
        assert pushed.returncode != 0 and "403" in pushed.stderr
        assert _git("ls-remote", server.url("other")).returncode != 0   # only the env repo is served
    finally:
        server.close()


@pytest.mark.parametrize(("lane", "field", "words"), [
    ("{name: a, delivery: flux, webhook: true}", "lanes[0].webhook", "notification-controller"),
    ("{name: a, delivery: flux, self_heal: false}", "lanes[0].self_heal", "always corrects drift"),
    ("{name: a, delivery: flux, live_check: 5}", "lanes[0].live_check", "only the lab's pull agent"),
])
def test_validator_refuses_what_a_flux_lane_cannot_do(tmp_path: Path, lane: str, field: str, words: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(f"name: x\nduration: 30\nenvironment: kubernetes\nlanes:\n  - {lane}\n")
    with pytest.raises(scenario.ScenarioError) as info:
        scenario.load(path)
    assert any(p.path == field and p.line == 5 and words in p.message for p in info.value.problems), info.value


def test_live_check_sets_how_often_the_agent_looks_at_live_state(tmp_path: Path) -> None:
    from mlopslab.platforms.local import LocalPlatform

    path = tmp_path / "s.yaml"
    path.write_text("name: x\nduration: 30\nlanes:\n  - {name: a, delivery: pull, poll: {interval: 7}, live_check: 7}\n")
    lane = scenario.load(path).lanes[0]
    assert lane.live_check == 7.0
    platform = LocalPlatform.__new__(LocalPlatform)
    platform.env = object()   # the agent is only built, never started
    platform.context = types.SimpleNamespace(emit=lambda *a, **k: None)
    agent = platform.pull_agent(lane, _repo(tmp_path / "envrepo"), tmp_path / "work", seed=1)
    assert agent.live_interval == 7.0 and agent.interval == 7.0


def _repo(path: Path) -> Path:
    path.mkdir()
    _git("init", "-q", "-b", "main", cwd=path)
    (path / "a").write_text("one\n")
    _git("add", "a", cwd=path)
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one", cwd=path)
    return path


def test_sha_of_reads_fluxs_revision_form() -> None:
    from mlopslab.gitops.flux_delivery import sha_of

    assert sha_of("main@sha1:" + "a" * 40) == "a" * 40
    assert sha_of(None) is None


@pytest.mark.kubernetes
@pytest.mark.slow
def test_flux_vs_agent_runs_and_flux_objects_are_ready(tmp_path: Path, k8s_binaries, flux_install) -> None:
    results = tmp_path / "run"
    proc = _start(results)
    events = lambda: _events(results)  # noqa: E731
    try:
        wait_for(lambda: proc.poll() is not None or any(e["kind"] == "run_started" for e in events()),
                 180, "the run to start")
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        shown = subprocess.run([k8s_binaries["kubectl"], "--kubeconfig", str(results / "kubeconfig"), "get",
                                "gitrepositories,kustomizations", "-A"], capture_output=True, text=True, timeout=30)
        assert shown.returncode == 0, shown.stderr
        rows = [line for line in shown.stdout.splitlines() if line.startswith("flux-system")]
        assert len(rows) == 4 and all(" True " in row for row in rows), shown.stdout
        # the canary lane (Flagger's model beside Flux): Flux's Deployment at 0, the controller's primary serving
        shown = subprocess.run([k8s_binaries["kubectl"], "--kubeconfig", str(results / "kubeconfig"), "get", "deploy",
                                "-n", "flux-canary", "-o", "jsonpath={range .items[*]}{.metadata.name}={.spec.replicas} "
                                "{end}"], capture_output=True, text=True, timeout=30)
        assert set(shown.stdout.split()) == {"model-server=0", "model-server-primary=2"}, shown.stdout + shown.stderr
        names = set(processes_of(results).values())
        assert {"source-controller", "kustomize-controller"} <= names, names
        out, err = proc.communicate(timeout=200)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    summary = json.loads((results / "summary.json").read_text())
    lanes = summary["lanes"]
    assert "ServiceAccount flux-system/flux" in lanes["flux"]["credential"]
    for lane in ("push", "agent", "flux", "flux-canary"):
        v2 = next(r for r in lanes[lane]["releases"] if r["version"] == "2")
        assert v2["failed"] is None, (lane, v2)
        lead = v2["lead"]
        assert lead["traffic_100"] > lead["apply_started"] >= lead["detected"], (lane, lead)
        assert lanes[lane]["errors"] == 0, lane
    flux_v2 = next(r for r in lanes["flux"]["releases"] if r["version"] == "2")["lead"]
    assert flux_v2["detected"] <= 10 * 1.05 + 2, flux_v2          # within one interval (+5 % jitter, + a fetch)
    healed = lanes["flux"]["live_changes"][0]
    assert healed["reverted_by"] == "Flux drift correction" and healed["reverted_after"] <= 10 * 1.05 + 3, healed
    kinds = [e["kind"] for e in events() if e.get("lane") == "flux"]
    assert "flux_applied" in kinds and "flux_status" in kinds
    canary = [e for e in events() if e.get("lane") == "flux-canary"]
    declared = [(e["version"], e["replicas"], e["by"]) for e in canary if e["kind"] == "target_declared"]
    assert declared[:2] == [("1", 2, "kustomize-controller"), ("2", 2, "kustomize-controller")], declared
    assert ("2", 1, "kubectl-edit") in declared, declared            # the manual scale, an edit of model-server ...
    assert declared[declared.index(("2", 1, "kubectl-edit")) + 1] == ("2", 2, "kustomize-controller")  # ... Flux's revert
    decisions = {e["version"]: (e["decision"], e["by"]) for e in canary if e["kind"] == "strategy_decision"}
    assert decisions["2"] == ("promoted", "analysis") and decisions.get("3", ("",))[0] != "rolled_back", decisions
    assert lanes["flux-canary"]["live_changes"][0]["reverted_by"] == "Flux drift correction"
    assert processes_of(results) == {}


@pytest.mark.kubernetes
@pytest.mark.slow
def test_flux_reverts_what_its_manifests_set_keeps_the_rest_and_dies_with_the_lab(
        tmp_path: Path, k8s_binaries, flux_install) -> None:
    """A person scales the Flux lane's Deployment and adds an annotation with kubectl, and a tool adds another
    under a field manager of its own: at its next interval kustomize-controller puts replicas back and
    removes kubectl's annotation too (it takes over the fields of every `kubectl*` field manager, then
    applies its manifests, which do not have it), and leaves the tool's annotation alone.
    Then the lab is SIGKILLed: no controller outlives it."""
    import time

    results = tmp_path / "run"
    proc = _start(results)

    def kubectl(*args: str) -> str:
        done = subprocess.run([k8s_binaries["kubectl"], "--kubeconfig", str(results / "kubeconfig"), "-n", "flux",
                               *args], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout

    try:
        wait_for(lambda: proc.poll() is not None or any(e["kind"] == "run_started" for e in _events(results)),
                 180, "the run to start")
        assert {"source-controller", "kustomize-controller"} <= set(processes_of(results).values())
        kubectl("annotate", "deployment/model-server", "example.com/added-by=a-person")
        kubectl("annotate", "deployment/model-server", "example.com/added-by-tool=yes", "--field-manager=ops-tool")
        kubectl("scale", "deployment/model-server", "--replicas=4")
        changed = time.monotonic()
        replicas = lambda: kubectl("get", "deployment/model-server", "-o", "jsonpath={.spec.replicas}")  # noqa: E731
        wait_for(lambda: replicas() == "2", 10 * 1.05 + 5, "Flux to put replicas back")
        healed_in = time.monotonic() - changed
        assert healed_in <= 10 * 1.05 + 5
        wait_for(lambda: "a-person" not in kubectl("get", "deployment/model-server", "-o",
                                                   "jsonpath={.metadata.annotations}"), 5, "kubectl's annotation to go")
        annotations = kubectl("get", "deployment/model-server", "-o", "jsonpath={.metadata.annotations}")
        assert "added-by-tool" in annotations, annotations   # another manager's field, not in the manifests: kept
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        wait_for(lambda: processes_of(results) == {}, 15, "every child to be gone")
    finally:
        if proc.poll() is None:
            proc.kill()


def _delivery_reading(events: list) -> object:
    """A FluxDelivery with no cluster: only its reading of Flux's objects into events."""
    from mlopslab.gitops.flux_delivery import FluxDelivery

    delivery = FluxDelivery.__new__(FluxDelivery)
    delivery.lane, delivery.interval, delivery.detected = "flux", 10.0, None
    delivery._status, delivery._failing, delivery._failing_since = {}, {}, None
    delivery.clock = iter(range(100)).__next__
    delivery.emit = lambda kind, lane, **fields: events.append((kind, fields))
    return delivery


def _obj(ready: str, reason: str, reconciling: bool = False, stalled: bool = False, message: str = "") -> dict:
    conditions = [{"type": "Ready", "status": ready, "reason": reason, "message": message}]
    conditions.append({"type": "Reconciling", "status": "True" if reconciling else "False"})
    if stalled:
        conditions.append({"type": "Stalled", "status": "True", "reason": reason})
    return {"status": {"conditions": conditions}}


def test_flux_conditions_make_the_lane_degraded_while_failed_and_recovered_after() -> None:
    events: list = []
    delivery = _delivery_reading(events)
    # before the first artifact, a Kustomization waiting for it is not a failure (Flux retries by itself)
    delivery._conditions("Kustomization", _obj("False", "ArtifactFailed", message="Source artifact not found"))
    delivery._health()
    assert [k for k, _ in events] == ["flux_status"]
    delivery.detected = "a" * 40
    delivery._conditions("Kustomization", _obj("True", "ReconciliationSucceeded"))
    delivery._conditions("GitRepository", _obj("False", "GitOperationFailed", message="repository not found"))
    delivery._health()
    failed = [f for k, f in events if k == "fetch_failed"]
    assert len(failed) == 1 and "GitRepository/flux-system/flux: GitOperationFailed: repository not found" in failed[0]["error"]
    delivery._conditions("GitRepository", _obj("False", "GitOperationFailed", reconciling=True))  # retrying
    delivery._conditions("GitRepository", _obj("Unknown", "Progressing", reconciling=True))        # trying again
    delivery._health()
    assert [k for k, _ in events].count("fetch_recovered") == 0 and [k for k, _ in events].count("fetch_failed") == 1
    delivery._conditions("GitRepository", _obj("True", "Succeeded"))
    delivery._health()
    assert [k for k, _ in events].count("fetch_recovered") == 1
    delivery._conditions("Kustomization", _obj("False", "BuildFailed", stalled=True))
    delivery._health()
    assert [k for k, _ in events].count("fetch_failed") == 2
    statuses = [f for k, f in events if k == "flux_status"]
    assert statuses[-1]["stalled"] is True and statuses[-1]["reason"] == "BuildFailed"
