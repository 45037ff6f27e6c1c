"""Faults a lab run must survive and show as what they are: hostile webhooks, an env repo that goes away,
a locked MLflow store, versions that crash or never become ready, a full disk, overload, SIGKILL.

Each test injects the fault into real parts (git, sqlite, processes, sockets, a tmpfs, the Docker engine) and
asserts what the user sees — the event, the lane's state, the summary row, the exit code — and that nothing
recorded is lost.
"""
# ruff: noqa: F811  (pytest fixtures imported from tests/docker_fixtures.py are parameters here)

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlopslab.envs.base import DeploymentSpec, Strategy
from mlopslab.envs.local import LocalEnvironment
from mlopslab.gitops import webhook
from mlopslab.gitops.pull import PullAgent
from mlopslab.gitops.push import PushRunner
from mlopslab.gitops.repo import EnvRepo
from mlopslab.ml.registry import Registry
from tests.conftest import MODEL, processes_mentioning, wait_until
from tests.docker_fixtures import agent_base, base_image, docker_client, models, run_id  # noqa: F401 — fixtures
from tests.events_helpers import Events


# --- webhooks: forged, replayed, oversized, slow ------------------------------------------------------------------

def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _signed(secret: str, payload: dict) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    return body, {webhook.SIGNATURE_HEADER: webhook.sign(secret, body), "Content-Type": "application/json"}


def test_webhook_rejects_forged_replayed_oversized_and_slow_requests_without_blocking_the_next_delivery() -> None:
    got: list[dict] = []
    secret = webhook.new_secret()
    receiver = webhook.WebhookReceiver(secret, got.append, deadline=3.0)
    host, port = receiver.server.server_address[:2]
    lorises: list[socket.socket] = []
    try:
        # slow lorises: a header trickled byte by byte, and a body that never comes
        for _ in range(8):
            loris = socket.create_connection((host, port), timeout=10)
            loris.sendall(b"POST /hook HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            lorises.append(loris)
        stalled = socket.create_connection((host, port), timeout=10)
        stalled.sendall(b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{\"after\":")
        lorises.append(stalled)
        trickling = threading.Event()

        def trickle() -> None:
            while not trickling.wait(0.2):
                for loris in lorises[:8]:
                    try:
                        loris.send(b"a")
                    except OSError:
                        pass

        threading.Thread(target=trickle, daemon=True).start()

        body, headers = _signed("not-the-secret", {"after": "forged", "sent_at": time.time(), "delivery": "f1"})
        assert _post(receiver.url, body, headers) == 401
        oversized = b"x" * (webhook.MAX_BODY + 1)
        assert _post(receiver.url, oversized, {webhook.SIGNATURE_HEADER: webhook.sign(secret, oversized)}) == 413
        assert _post(receiver.url, b"not json", {webhook.SIGNATURE_HEADER: webhook.sign(secret, b"not json")}) == 400
        body, headers = _signed(secret, {"after": "first", "sent_at": time.time(), "delivery": "d1"})
        assert _post(receiver.url, body, headers) == 202
        assert _post(receiver.url, body, headers) == 409  # the same signed delivery, captured and replayed

        started = time.monotonic()
        assert webhook.deliver(receiver.url, secret, {"after": "next"}) == 202  # while the lorises still hang on
        assert time.monotonic() - started < 1.5  # well before any slow client is cut off (3 s)
        assert [p["after"] for p in got] == ["first", "next"]
        assert receiver.rejected == 4

        # every slow client is cut off by the deadline (3 s here), though it is still sending
        deadline = time.monotonic() + 8.0
        for loris in lorises:
            loris.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                while loris.recv(1024):  # the server's answer (if any), then end of stream
                    pass
            except ConnectionResetError:
                pass
        assert time.monotonic() < deadline
        trickling.set()
        assert receiver.cut_off == len(lorises) and receiver.rejected == 4
    finally:
        for loris in lorises:
            loris.close()
        receiver.close()


# --- the env repo's origin unreachable, then corrupt ---------------------------------------------------------

def _spec(lane: str, version: str, replicas: int = 1, **changes) -> DeploymentSpec:
    return DeploymentSpec(lane=lane, model=MODEL, version=version, replicas=replicas, warmup=0.1,
                          readiness_period=0.05, strategy=Strategy(1, 0, changes.pop("deadline", 20)), **changes)


_wait = wait_until


def _blob_path(repo_path: Path, sha: str, file: str) -> Path:
    import git

    blob = git.Repo(repo_path).commit(sha).tree / file
    return repo_path / ".git" / "objects" / blob.hexsha[:2] / blob.hexsha[2:]


def test_pull_agent_backs_off_while_origin_is_gone_or_corrupt_and_recovers_by_itself(tmp_path: Path,
                                                                                     registry: Registry) -> None:
    events = Events()
    env = LocalEnvironment(registry.serving_dir, events.emit)
    repo = EnvRepo(tmp_path / "repo")
    sha1 = repo.commit_lanes([_spec("pull", "1"), _spec("push", "1")], "v1")
    agent = PullAgent("pull", repo.path, tmp_path / "agent", env, events.emit, interval=0.3, live_interval=0.1,
                      retry_base=0.2, retry_cap=0.8)
    runner = PushRunner("push", repo.path, tmp_path / "ci", env, events.emit, registry.exists)
    agent.start()
    runner.start()
    away = repo.path.with_name("origin-away")
    try:
        _wait(lambda: env.observe("pull").complete and env.observe("pull").spec.revision == sha1)
        # 1. origin is gone (the git host is down)
        repo.path.rename(away)
        t_gone = events.t0 + events.items[-1]["t"]
        failures = [events.wait_for("fetch_failed", "pull", count=n, timeout=15) for n in range(1, 6)]
        assert all(f"'{repo.path}' does not appear to be a git repository" in f["error"] for f in failures)
        assert [f["retry_in"] for f in failures] == [0.2, 0.4, 0.8, 0.8, 0.8]  # doubling, capped
        gaps = [b["t"] - a["t"] for a, b in zip(failures, failures[1:])]
        assert all(gap >= a["retry_in"] * 0.9 for gap, a in zip(gaps, failures)), gaps
        assert webhook.deliver(runner.hook_url, runner.secret, {"after": sha1}) == 202  # CI is triggered now
        ci = events.wait_for("pipeline_done", "push", sha=sha1)
        assert not ci["ok"] and ci["error"].startswith("checkout: git fetch") and ci["steps"] == []
        assert env.observe("pull").spec.revision == sha1 and len(env.endpoints("pull")) == 1  # still serving
        # 2. it comes back holding a new commit whose objects are corrupt (a disk error on the host)
        sha2 = EnvRepo(away).commit_lanes([_spec("pull", "2")], "v2")
        broken = _blob_path(away, sha2, "lanes/pull/deployment.yaml")
        good = broken.read_bytes()
        broken.chmod(0o644)
        broken.write_bytes(good[: len(good) // 2])
        away.rename(repo.path)
        broken = repo.path / broken.relative_to(away)
        corrupt = events.wait_for("fetch_failed", "pull", count=len(events.of("fetch_failed", "pull")) + 3,
                                  timeout=15)
        assert corrupt["error"].startswith(f"git fetch {repo.path}: ") and "pack" in corrupt["error"]
        assert "fetch_recovered" not in [e["kind"] for e in events.items if e["t"] < corrupt["t"]]
        assert env.observe("pull").spec.revision == sha1  # never a partial or unread revision
        # 3. repaired: the agent recovers by itself and applies v2, exactly once
        broken.write_bytes(good)
        recovered = events.wait_for("fetch_recovered", "pull", timeout=15)
        assert recovered["attempts"] >= 8 and recovered["down_for"] >= 1.0
        _wait(lambda: env.observe("pull").complete and env.observe("pull").spec.revision == sha2)
        applied = [(e["sha"], e["version"]) for e in events.of("apply_started", "pull")]
        assert applied == [(sha1, "1"), (sha2, "2")]
        assert [e["sha"] for e in events.of("detected", "pull")] == [sha1, sha2]
        assert time.monotonic() - t_gone < 60
    finally:
        if away.exists() and not repo.path.exists():
            away.rename(repo.path)
        agent.stop()
        runner.stop()
        env.teardown()


# --- versions that cannot start: a crash loop, a replica that is never ready --------------------------------

LANES = ("replicas: 2, warmup: 0.1, readiness: {period: 0.05}, "
         "rollout: {maxSurge: 1, maxUnavailable: 0, progressDeadlineSeconds: 4}")
SCENARIO = f"""\
name: faults
description: two lanes, a release that cannot start
seed: 3
duration: DURATION
model: {{name: churn, data: {{n_samples: 1000}}}}
traffic: {{rate: 20}}
lanes:
  - {{name: push, delivery: push, {LANES}}}
  - {{name: pull, delivery: pull, poll: {{interval: 1, jitter: 0.2}}, {LANES}}}
"""


class LabRun:
    """A Lab running in a thread, for tests that inject a fault into it while it runs."""

    def __init__(self, results: Path, duration: float, scenario: str = SCENARIO) -> None:
        from mlopslab.lab import Lab
        from mlopslab.scenario import parse

        self.dir = results
        self.lab = Lab(parse(scenario.replace("DURATION", str(duration)), "faults.yaml"), results)
        self.status: str | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.status = self.lab.run()
        except BaseException as exc:  # noqa: BLE001 — the test asserts on it
            self.status = f"raised {exc!r}"

    def events(self) -> list[dict]:
        """Every line of events.jsonl — each must parse: nothing torn, nothing lost."""
        lines = (self.dir / "events.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]

    def wait_for(self, kind: str, timeout: float = 60.0, **match) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (self.dir / "events.jsonl").exists():
                for event in self.events():
                    if event["kind"] == kind and all(event.get(k) == v for k, v in match.items()):
                        return event
            assert self.thread.is_alive(), f"the run ended ({self.status}) before {kind} {match}"
            time.sleep(0.1)
        raise AssertionError(f"no {kind} {match} within {timeout} s")

    def finish(self, timeout: float = 90.0) -> list[dict]:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the run did not end"
        return self.events()


def _requests(results: Path) -> list[dict]:
    return [json.loads(line) for line in (results / "requests.jsonl").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["crash-loop", "never-ready"])
def test_a_version_that_cannot_start_fails_its_rollout_while_old_replicas_serve(tmp_path: Path, fault: str) -> None:
    from mlopslab import report

    run = LabRun(tmp_path / "results", duration=16)
    lab = run.lab
    try:
        run.wait_for("run_started")
        mv = lab.releases.train(note=fault)
        if fault == "crash-loop":  # the exported artifact is corrupt: every server of v2 dies loading it
            npz = lab.registry.serving_dir(mv.name, mv.version) / "model.npz"
            npz.write_bytes(npz.read_bytes()[:100])
            sha = lab.releases.commit(lab.lane_names, mv.version, f"release {mv.uri} (corrupt artifact)")
        else:  # a readiness probe that never passes: an hour of warm-up
            sha = lab.releases.commit(lab.lane_names, mv.version, f"release {mv.uri} (never ready)", warmup=3600.0)
        failed = {lane: run.wait_for("rollout_failed", lane=lane, revision=sha, timeout=30) for lane in lab.lane_names}
        events = run.finish()
    finally:
        lab.stop()
        run.thread.join(60)
    assert run.status == "ok"  # the run goes on
    detail, words = {"crash-loop": ("CrashLoopBackOff", "crashes at start"),
                     "never-ready": ("NotReady", "never became ready")}[fault]
    for lane, event in failed.items():
        assert event["reason"] == "ProgressDeadlineExceeded" and event["detail"] == detail
        assert words in event["message"] and "0/2 ready" in event["message"]
        syncs = [e["state"] for e in events if e["kind"] == "sync" and e["lane"] == lane and e["t"] >= event["t"]]
        assert syncs and syncs[0] == "Degraded"
        v2 = [e for e in events if e["kind"] in ("replica_ready", "traffic_100", "rollout_done") and e["lane"] == lane
              and str(e.get("version")) == mv.version]
        assert v2 == []  # no progress
    stopped = [e for e in events if e["kind"] == "replica_stopped" and str(e.get("version")) == mv.version
               and e.get("reason") != "rollout"]
    if fault == "crash-loop":
        crashes = [e for e in stopped if e["lane"] == "push"]
        assert len(crashes) >= 3 and all(e["reason"] == "crashed" for e in crashes)
        assert [e["backoff"] for e in crashes[:3]] == [0.5, 1.0, 2.0]  # CrashLoopBackOff doubles
        assert "exit 1" in crashes[0]["last_words"]
    else:
        assert stopped == []
    summary = json.loads((run.dir / "summary.json").read_text())
    header, rows = report.rows(summary)
    rollout_row = next(row for row in rows if row[0].strip() == "rollout (apply → 100%)")
    expected = {"crash-loop": "rollout failed (crash loop)", "never-ready": "rollout failed (not ready)"}[fault]
    assert rollout_row[1:] == [expected, expected]
    for lane in lab.lane_names:  # the old replicas served every request, without an error
        assert summary["lanes"][lane]["errors"] == 0
        release = next(r for r in summary["lanes"][lane]["releases"] if r["version"] == mv.version)
        assert release["errors_during_rollout"] == 0 and release["requests_during_rollout"] > 0
    requests = _requests(run.dir)
    samples = {r["i"] for r in requests}
    assert len(requests) == 2 * len(samples) and all(r["st"] == 200 and r["v"] == "1" for r in requests)


@pytest.mark.docker
def test_docker_crash_loop_fails_the_rollout_while_the_old_container_serves(docker_client, base_image, models, run_id,
                                                                             tmp_path: Path, stream) -> None:
    from mlopslab.envs.docker import DockerEnvironment
    from mlopslab.ml.registry import TrainParams
    from tests.docker_fixtures import Events as DockerEvents
    from tests.docker_fixtures import Traffic, no_leftovers

    X, y = stream.sample(500)
    bad = models.registry.train_and_register(MODEL, X, y, X, y, stream.feature_names, TrainParams(C=0.5))
    npz = models.resolve(MODEL, bad.version) / "model.npz"
    npz.write_bytes(npz.read_bytes()[:100])  # the artifact in the image is corrupt: the server dies loading it
    events = DockerEvents()
    env = DockerEnvironment(models.resolve, events, run_id=run_id, base_image=base_image, client=docker_client,
                            state_dir=tmp_path / "state")
    traffic = None
    try:
        env.apply(_spec("lane", models.versions[0], deadline=6))
        _wait(lambda: env.observe("lane").complete, timeout=90, what="v1 ready")
        traffic = Traffic(env, "lane", [[0.1 * i for i in range(8)]], duration=120).start()
        env.apply(_spec("lane", bad.version, deadline=6))
        failed = events.wait("rollout_failed", timeout=90)[0]
        traffic.stop()
        crashes = events.of("replica_stopped", reason="crashed")
        assert failed["detail"] == "CrashLoopBackOff" and "crashes at start" in failed["message"]
        assert crashes and crashes[0]["last_words"].startswith("exit 1")
        assert traffic.ok > 0 and traffic.errors == [] and set(traffic.versions) == {models.versions[0]}
    finally:
        if traffic is not None:
            traffic.stop()
        env.teardown()
    assert no_leftovers(docker_client, run_id) == []


# --- the env repo gone, as the lab shows it ----------------------------------------------------------------------

@pytest.mark.slow
def test_lab_shows_the_pull_lane_degraded_while_the_env_repo_is_gone_and_synced_after(tmp_path: Path) -> None:
    run = LabRun(tmp_path / "results", duration=14)
    lab = run.lab
    away: Path | None = None
    try:
        run.wait_for("run_started")
        away = lab.repo.path.with_name("envrepo-away")
        lab.repo.path.rename(away)
        degraded = run.wait_for("sync", lane="pull", state="Degraded", timeout=20)
        assert "does not appear to be a git repository" in degraded["error"]
        assert lab.snapshot(lambda state: state.lanes["pull"].sync) == "Degraded"  # what the TUI draws
        time.sleep(2.0)
        away.rename(lab.repo.path)
        recovered = run.wait_for("fetch_recovered", lane="pull", timeout=20)
        events = run.finish()
    finally:
        if away is not None and away.exists() and not lab.repo.path.exists():
            away.rename(lab.repo.path)
        lab.stop()
        run.thread.join(60)
    assert run.status == "ok"
    after = [e for e in events if e["kind"] == "sync" and e["lane"] == "pull" and e["t"] >= recovered["t"]]
    assert after and after[0]["state"] == "Synced" and "error" not in after[0]
    assert not any(e["kind"] == "sync" and e["lane"] == "push" and e["state"] == "Degraded" for e in events)
    retries = [e["retry_in"] for e in events if e["kind"] == "fetch_failed"]
    assert retries[:2] == [0.5, 1.0] and max(retries) == 1.0  # capped at the poll interval
    assert json.loads((run.dir / "summary.json").read_text())["lanes"]["pull"]["errors"] == 0


# --- the MLflow store is locked by another writer ---------------------------------------------------------------

RELEASE_AT_1 = SCENARIO + "timeline:\n  - at: 1\n    release: {note: v2}\n"


def _lock(store_path: Path):
    """Another program writes to the MLflow store: sqlite lets one writer in, and it holds the lock."""
    import sqlite3

    store = sqlite3.connect(store_path, isolation_level=None, timeout=30)
    store.execute("BEGIN EXCLUSIVE")
    return store


@pytest.mark.slow
def test_release_waits_out_a_locked_mlflow_store_and_the_run_goes_on(tmp_path: Path) -> None:
    run = LabRun(tmp_path / "results", duration=34, scenario=RELEASE_AT_1)
    lab = run.lab
    try:
        run.wait_for("run_started")
        store = _lock(lab.registry.root / "mlflow.db")
        locked_at = time.monotonic()
        busy = run.wait_for("registry_busy", timeout=40)  # MLflow waits 20 s for the lock, then gives up
        time.sleep(max(0.0, 23.0 - (time.monotonic() - locked_at)))
        store.execute("COMMIT")
        store.close()
        registered = run.wait_for("model_registered", version="2", timeout=40)
        events = run.finish()
    finally:
        lab.stop()
        run.thread.join(60)
    assert run.status == "ok"
    assert busy["error"] == "database is locked" and busy["attempt"] == 1 and busy["retry_in"] > 0
    assert registered["t"] > busy["t"]
    for lane in lab.lane_names:  # the release went out once the store was free, and nothing failed meanwhile
        assert any(e["kind"] == "traffic_100" and e["lane"] == lane and e["version"] == "2" for e in events)
    assert [e for e in events if e["kind"] == "error"] == []
    assert sorted(str(v.version) for v in lab.registry.client.search_model_versions("name='churn'")) == ["1", "2"]
    summary = json.loads((run.dir / "summary.json").read_text())
    assert all(summary["lanes"][lane]["errors"] == 0 for lane in lab.lane_names)
    requests = _requests(run.dir)
    assert len(requests) == 2 * len({r["i"] for r in requests}) and all(r["st"] == 200 for r in requests)


@pytest.mark.slow
def test_release_fails_with_a_clear_error_when_the_mlflow_store_stays_locked_and_the_run_goes_on(
        tmp_path: Path) -> None:
    run = LabRun(tmp_path / "results", duration=26, scenario=RELEASE_AT_1)
    lab = run.lab
    lab.registry.busy_attempts = 1  # give up after one try (each waits MLflow's 20 s busy timeout)
    try:
        run.wait_for("run_started")
        store = _lock(lab.registry.root / "mlflow.db")
        error = run.wait_for("error", timeout=45)
        store.execute("COMMIT")
        store.close()
        events = run.finish()
    finally:
        lab.stop()
        run.thread.join(60)
    assert run.status == "ok"  # the run went on
    assert "timeline (release at 1" in error["message"] and "stayed locked by another writer" in error["message"]
    assert not any(e["kind"] in ("model_registered", "commit") and str(e.get("version")) == "2" for e in events)
    assert sum(1 for e in events if e["kind"] == "error") == 1
    summary = json.loads((run.dir / "summary.json").read_text())
    assert all(summary["lanes"][lane]["errors"] == 0 and summary["lanes"][lane]["requests"] > 0
               for lane in lab.lane_names)


# --- the results stop being writable ---------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path: Path):
    """A tmpfs of its own (64 MiB), so the test can fill it up or make it read-only."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@contextlib.contextmanager
def _lab_process(tmp_path: Path, results: Path, duration: float, scenario: str = SCENARIO,
                 env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    """`mlopslab run` on the scenario, as a user starts it; killed on the way out if it still runs."""
    path = tmp_path / "faults.yaml"
    path.write_text(scenario.replace("DURATION", str(duration)))
    proc = subprocess.Popen([sys.executable, "-m", "mlopslab.cli", "run", str(path), "--results", str(results)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _sigkill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)


def _wait_for_event(results: Path, kind: str, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        path = results / "events.jsonl"
        if path.exists() and f'"kind":"{kind}"' in path.read_text():
            return
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.1)
    raise AssertionError(f"no {kind} within {timeout} s")


def _whole_lines(path: Path) -> list[dict]:
    text = path.read_text()
    assert text == "" or text.endswith("\n"), f"{path.name} ends in a torn line"
    return [json.loads(line) for line in text.splitlines()]


@pytest.mark.slow
def test_disk_full_mid_run_stops_the_lab_with_exit_1_and_keeps_whole_lines(tmp_path: Path, small_disk: Path) -> None:
    results = small_disk / "results"
    with _lab_process(tmp_path, results, duration=60) as proc:
        _wait_for_event(results, "metrics", proc)
        filled_at = time.monotonic()
        with open(small_disk / "filler", "wb") as filler:  # another program takes the rest of the disk
            chunk = b"\0" * (1 << 20)
            try:
                while True:
                    filler.write(chunk)
                    filler.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err[-3000:]
    assert time.monotonic() - filled_at < 40  # it stopped, well before its 60 s
    assert "Traceback" not in err
    assert "mlopslab: the run stopped: cannot write" in err and "No space left on device" in err
    assert processes_mentioning(str(results)) == []
    events = _whole_lines(results / "events.jsonl")
    assert events[0]["kind"] == "lab_prepared" and any(e["kind"] == "run_started" for e in events)
    requests = _whole_lines(results / "requests.jsonl")
    assert requests and all({"i", "lane", "lat", "st"} <= set(r) for r in requests)
    assert not (results / "summary.json").exists()  # not written, rather than torn
    assert "status: failed" in out
    (small_disk / "filler").unlink()


def test_a_read_only_results_directory_is_refused_with_exit_1(tmp_path: Path, small_disk: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    results = small_disk / "results"
    with _lab_process(tmp_path, results, duration=10) as proc:
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "Traceback" not in err
    assert f"mlopslab: cannot write the results to {results}: Read-only file system" in err


# --- the lab is killed with SIGKILL ------------------------------------------------------------------------------

def _gone(pids: list[int]) -> bool:
    return all(pid not in processes_mentioning("mlopslab") for pid in pids)


@pytest.mark.slow
def test_sigkill_of_the_lab_takes_every_child_process_with_it(tmp_path: Path) -> None:
    results = tmp_path / "results"
    with _lab_process(tmp_path, results, duration=60) as proc:
        _wait_for_event(results, "metrics", proc)
        children = processes_mentioning(str(results))
        cmdlines = {pid: Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace") for pid in children}
        replicas = [pid for pid, cmd in cmdlines.items() if "mlopslab.serving.server" in cmd]
        loadgen = [pid for pid, cmd in cmdlines.items() if "mlopslab.traffic.loadgen" in cmd]
        assert len(replicas) == 4 and len(loadgen) == 1, cmdlines  # two lanes of two, one load generator
        # (the push runner, the pull agent and the webhook receivers are threads of the lab itself)
        _sigkill(proc)
    _wait(lambda: processes_mentioning(str(results)) == [], timeout=20, what="every child gone after SIGKILL")
    events = _whole_lines(results / "events.jsonl")  # replayable up to the kill
    assert events[0]["kind"] == "lab_prepared" and events[-1]["kind"] != "run_finished"
    assert _whole_lines(results / "requests.jsonl")


@pytest.mark.slow
@pytest.mark.docker
def test_sigkill_of_a_docker_lab_leaves_only_what_mlopslab_clean_removes(docker_client, base_image, agent_base,
                                                                      run_id, tmp_path: Path) -> None:
    from mlopslab.envs.cleanup import leftovers

    scenario = SCENARIO.replace("traffic:", f"environment: {{kind: docker, base_image: {base_image}}}\ntraffic:")
    results = tmp_path / run_id  # the results directory's name is the run id the containers carry
    env = {**os.environ, "MLOPSLAB_AGENT_BASE_IMAGE": agent_base}
    with _lab_process(tmp_path, results, 120, scenario, env) as proc:
        _wait_for_event(results, "metrics", proc, timeout=240)
        running = leftovers(docker_client, run_id)
        assert any("agent-pull" in name for name in running) and len(running) >= 5, running  # agent + 4 replicas
        local = processes_mentioning(str(results))
        _sigkill(proc)
    _wait(lambda: _gone(local), timeout=20, what="the load generator gone after SIGKILL")
    assert leftovers(docker_client, run_id)  # containers outlive the lab: that is what clean is for
    done = subprocess.run([sys.executable, "-m", "mlopslab.cli", "clean", "--run", run_id], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and "removed" in done.stdout, done.stderr[-2000:]
    assert leftovers(docker_client, run_id) == []
    assert docker_client.networks.list(filters={"label": f"mlopslab.run={run_id}"}) == []
    _whole_lines(results / "events.jsonl")


# --- traffic beyond what a lane can serve ------------------------------------------------------------------------

def test_a_lane_that_cannot_keep_up_reports_its_errors_and_latency_and_loses_no_request(registry: Registry) -> None:
    """One lane's only replica stalls (SIGSTOP: it serves nothing for 3.5 s) under an open-loop stream; the
    other lane's does not. Latency counts from the intended send time, so the stall shows in full."""
    from dataclasses import replace

    from mlopslab.envs.local import ProcessDriver
    from mlopslab.monitor.traffic import TrafficMonitor
    from mlopslab.traffic.loadgen import TIMEOUT

    driver = ProcessDriver(registry.serving_dir)
    servers = {lane: driver.start(replace(_spec(lane, "1"), warmup=0.0), f"{lane}-1")
               for lane in ("stalled", "healthy")}
    try:
        _wait(lambda: all(driver.probe(url) for _, url in servers.values()), what="both servers ready")
        t0 = time.monotonic()
        config = {"rate": 40, "t0": t0, "seed": 1, "lanes": list(servers), "duration": 8.0}
        generator = subprocess.Popen([sys.executable, "-m", "mlopslab.traffic.loadgen", json.dumps(config)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for lane, (_, url) in servers.items():
            generator.stdin.write(json.dumps({"op": "endpoints", "lane": lane, "endpoints": [[url, "1"]]}) + "\n")
        generator.stdin.flush()
        time.sleep(max(0.0, 2.0 - (time.monotonic() - t0)))
        stalled = servers["stalled"][0]
        os.kill(stalled.pid, signal.SIGSTOP)
        stall_from = time.monotonic() - t0
        time.sleep(3.5)
        os.kill(stalled.pid, signal.SIGCONT)
        stall_to = time.monotonic() - t0
        out, _ = generator.communicate(timeout=30)
    finally:
        for proc, _ in servers.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGCONT)
            driver.stop(proc, 1.0)
    assert generator.returncode == 0
    lines = [json.loads(line) for line in out.splitlines()]
    sent = {r["s"] for r in lines if "s" in r}
    results = [r for r in lines if "i" in r]
    for lane in servers:  # every request sent has its record, answered or not
        assert sorted(r["i"] for r in results if r["lane"] == lane) == sorted(sent)
    stalled_records = [r for r in results if r["lane"] == "stalled"]
    left = lambda r: r["t"] + r["lag"] / 1000  # noqa: E731  (when it really left: a busy machine sends late)
    timed_out = [r for r in stalled_records if stall_from + 0.3 < left(r) < stall_to - TIMEOUT - 0.3]
    assert timed_out and all(r["st"] == 0 and r["lat"] >= TIMEOUT * 1000 for r in timed_out)
    late = [r for r in stalled_records if stall_to - TIMEOUT + 0.3 < r["t"] < stall_to - 0.5]
    assert late and all(r["lat"] >= (stall_to - r["t"]) * 1000 * 0.9 for r in late)  # waited, counted in full

    events = Events()
    monitor = TrafficMonitor(list(servers), events.emit)
    for record in results:
        monitor.add_result(record)
    monitor.tick(float("inf"))
    for lane in servers:
        windows = events.of("metrics", lane)
        assert sum(w["rps"] for w in windows) == len(sent)
        assert sum(w["errors"] for w in windows) == sum(1 for r in results if r["lane"] == lane and r["st"] != 200)
    # a window's first requests waited from its start to the stall's end: beyond the timeout, some failed
    during = lambda w: stall_from + 0.5 < w["window"] < stall_to - TIMEOUT - 0.3  # noqa: E731
    stalled_windows = [w for w in events.of("metrics", "stalled") if during(w)]
    assert stalled_windows and all(w["errors"] > 0 and w["p99"] >= TIMEOUT * 1000 for w in stalled_windows), \
        [(w["window"], w["errors"], w["p99"]) for w in events.of("metrics", "stalled")] + [(stall_from, stall_to)]
    healthy = events.of("metrics", "healthy")
    assert sum(w["errors"] for w in healthy) == 0 and all(w["p99"] < 1000 for w in healthy)
