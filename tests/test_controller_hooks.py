"""An environment that keeps the live object outside its process (Docker's state records) plugs into the
rolling-update controller through its hooks, not by overriding its steps: every apply and edit is recorded,
a newer recorded object is taken up, status is published, and a replica stays listed until it is stopped."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

from mlopslab.envs.base import DeploymentSpec, ReplicaDriver, ReplicaView, Strategy
from mlopslab.envs.controller import ControlledEnvironment
from tests.conftest import wait_until
from tests.events_helpers import Events


class InstantDriver(ReplicaDriver):
    """Replicas that start and are ready at once; stopping one waits until the test lets it finish."""

    def __init__(self) -> None:
        self.let_stop = threading.Event()

    def start(self, spec: DeploymentSpec, name: str) -> tuple[Any, str]:
        return name, f"http://replica/{name}"

    def alive(self, handle: Any) -> bool:
        return True

    def probe(self, url: str, timeout: float = 0.5) -> bool:
        return True

    def stop(self, handle: Any, grace: float) -> None:
        self.let_stop.wait(10)


class RecordedEnvironment(ControlledEnvironment):
    """The live object in a store another process could write too, with a generation per write."""

    drain = 0.05

    def __init__(self, driver: ReplicaDriver, emit: Any) -> None:
        super().__init__(driver, emit)
        self.store: dict[str, tuple[int, DeploymentSpec, bool]] = {}
        self.published: list[list[ReplicaView]] = []

    def record(self, spec: DeploymentSpec, *, by_hand: bool = False) -> int:
        generation = self.store[spec.lane][0] + 1 if spec.lane in self.store else 1
        self.store[spec.lane] = (generation, spec, by_hand)
        return generation

    def recorded(self, lane: str) -> tuple[int, DeploymentSpec | None]:
        generation, spec, _ = self.store.get(lane, (0, None, False))
        return generation, spec

    def publish(self, lane: str) -> None:
        self.published.append(self.stopping(lane))


def test_controller_records_takes_up_a_newer_record_publishes_and_lists_replicas_until_stopped() -> None:
    driver, events = InstantDriver(), Events()
    env = RecordedEnvironment(driver, events.emit)
    spec = DeploymentSpec(lane="a", model="m", version="1", replicas=2,
                          strategy=Strategy(max_surge=1, max_unavailable=0))
    try:
        env.apply(spec)
        assert env.store["a"][:2] == (1, spec) and env.generation("a") == 1
        wait_until(lambda: env.observe("a").complete, 10, "v1 available")
        assert env.published and env.controls("a") and not env.controls("b")

        edited = replace(spec, version="2")
        env.store["a"] = (2, edited, True)        # written by another process
        wait_until(lambda: env.observe("a").spec == edited and env.generation("a") == 2, 10, "record taken up")
        wait_until(lambda: len(env.stopping("a")) == 2, 10, "old replicas stopping")
        assert {v.version for v in env.stopping("a")} == {"1"} and all(v.state == "terminating"
                                                                        for v in env.stopping("a"))
        assert any(views for views in env.published)   # observers learnt they are terminating
        driver.let_stop.set()
        wait_until(lambda: env.stopping("a") == [] and env.observe("a").complete, 10, "v2 available")

        env.store["a"] = (1, spec, False)          # an older generation is not taken up
        env.change_live("a", replicas=1)           # a person's edit is recorded, by hand
        generation, recorded, by_hand = env.store["a"]
        assert (generation, recorded.version, recorded.replicas, by_hand) == (2, "2", 1, True)
        wait_until(lambda: len(env.observe("a").replicas) == 1, 10, "scaled to one")
        assert env.observe("a").spec.version == "2"
    finally:
        driver.let_stop.set()
        env.teardown()
