"""The local environment: replicas are real processes; rolling updates follow Deployment semantics."""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import replace

import pytest

from mlopslab.envs.base import DeploymentSpec, Strategy
from mlopslab.envs.local import LocalEnvironment
from mlopslab.ml.registry import Registry
from tests.conftest import MODEL, wait_until
from tests.events_helpers import Events


@pytest.fixture
def env(registry: Registry) -> Iterator[tuple[LocalEnvironment, Events]]:
    events = Events()
    environment = LocalEnvironment(registry.serving_dir, events.emit)
    yield environment, events
    environment.teardown()
    assert environment.driver.pids() == []


def _spec(version: str, **kw) -> DeploymentSpec:
    fields = {"replicas": 3, "warmup": 0.3, "readiness_period": 0.05,
              "strategy": Strategy(max_surge=1, max_unavailable=0, progress_deadline=20), **kw}
    return DeploymentSpec(lane="a", model=MODEL, version=version, revision=f"rev-{version}", **fields)


def _wait_complete(env: LocalEnvironment, lane: str = "a", timeout: float = 30) -> None:
    wait_until(lambda: env.observe(lane).complete, timeout, f"lane {lane} complete")


def test_strategy_rounds_like_kubernetes() -> None:
    assert Strategy().resolve(3) == (1, 0)            # 25% of 3: surge rounds up, unavailable down
    assert Strategy().resolve(4) == (1, 1)
    assert Strategy("0%", "0%").resolve(3) == (0, 1)  # never both zero
    assert Strategy(2, "50%").resolve(5) == (2, 2)


def test_rolling_update_keeps_capacity_and_serves_both_versions_then_only_the_new(env) -> None:
    environment, events = env
    environment.apply(_spec("1"))
    _wait_complete(environment)
    seen: list[tuple[int, set[str]]] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            endpoints = environment.endpoints("a")
            seen.append((len(endpoints), {e.version for e in endpoints}))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    environment.apply(_spec("2"))
    _wait_complete(environment)
    stop.set()
    watcher.join()
    assert min(n for n, _ in seen) >= 3          # maxUnavailable 0: capacity never dips
    assert max(n for n, _ in seen) <= 4          # maxSurge 1: at most one extra replica
    assert any(v == {"1", "2"} for _, v in seen)  # old and new served side by side mid-rollout
    assert {e.version for e in environment.endpoints("a")} == {"2"}
    for endpoint in environment.endpoints("a"):
        with urllib.request.urlopen(endpoint.url + "/version", timeout=5) as response:
            assert b'"version": "2"' in response.read()
    done = events.wait_for("rollout_done", "a", version="2")
    assert done["revision"] == "rev-2"
    starts = [e["t"] for e in events.of("replica_started", "a") if e["version"] == "2"]
    assert len(starts) == 3 and starts == sorted(starts) and starts[-1] - starts[0] > 0.3  # one at a time


def test_killed_replica_is_replaced(env) -> None:
    environment, events = env
    environment.apply(_spec("1", replicas=2))
    _wait_complete(environment)
    victim = environment.kill_replica("a")
    assert victim is not None
    events.wait_for("replica_stopped", "a", replica=victim, reason="died")
    wait_until(lambda: environment.observe("a").ready == 2
               and victim not in {r.name for r in environment.observe("a").replicas}, 20, "a replacement ready")


def test_manual_live_change_is_what_the_environment_converges_to(env) -> None:
    environment, _ = env
    environment.apply(_spec("1"))
    _wait_complete(environment)
    edited = environment.change_live("a", replicas=1)
    assert edited.revision == "rev-1" and edited.diff(_spec("1")) == {"replicas": (1, 3)}
    wait_until(lambda: len(environment.endpoints("a")) == 1, 10, "one endpoint left")


def test_a_manual_scale_down_stops_replicas_as_a_manual_change_not_a_rollout(env) -> None:
    environment, events = env
    environment.apply(_spec("1"))
    _wait_complete(environment)
    environment.change_live("a", replicas=1)
    stopped = [events.wait_for("replica_stopped", "a", timeout=10, count=n) for n in (1, 2)]
    assert {e["reason"] for e in stopped} == {"manual_change"}
    draining = {e["replica"]: e for e in events.of("replica_terminating", "a")}   # out of endpoints first
    assert all(draining[e["replica"]]["t"] <= e["t"] and draining[e["replica"]]["reason"] == "manual_change"
               for e in stopped)
    environment.apply(_spec("1", replicas=2))   # the spec itself asks for fewer replicas than before
    _wait_complete(environment)
    environment.apply(_spec("1", replicas=1))
    assert events.wait_for("replica_stopped", "a", timeout=10, count=3)["reason"] == "scale_down"


def test_stuck_rollout_is_marked_failed_after_the_progress_deadline(env) -> None:
    environment, events = env
    environment.apply(_spec("1", replicas=1))
    _wait_complete(environment)
    stuck = _spec("2", replicas=1, warmup=600.0, strategy=Strategy(1, 0, progress_deadline=1.0))
    environment.apply(stuck)
    failed = events.wait_for("rollout_failed", "a", timeout=15)
    assert failed["reason"] == "ProgressDeadlineExceeded"
    assert environment.observe("a").condition == "Failed"
    assert {e.version for e in environment.endpoints("a")} == {"1"}  # the old version keeps serving
    environment.apply(replace(stuck, warmup=0.1, revision="rev-3"))
    _wait_complete(environment)
