"""Fixtures for tests on a real Docker engine: the engine (or a skip/failure), the base image, a registry.

No engine: the tests skip, unless MLOPSLAB_REQUIRE_DOCKER=1 (CI), where a missing engine or base image
is a failure. The base image is $MLOPSLAB_BASE_IMAGE, else the offline `mlopslab/base:bookworm`, built
with debootstrap when missing (minutes, once; `.ci/docker.sh` does it ahead of the suite).
"""

from __future__ import annotations

import os
import secrets
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mlopslab.envs import images
from mlopslab.envs.cleanup import leftovers, remove_run

REQUIRED = os.environ.get("MLOPSLAB_REQUIRE_DOCKER") == "1"


def _unavailable(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"MLOPSLAB_REQUIRE_DOCKER=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def docker_client():
    try:
        import docker

        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as exc:
        _unavailable(f"no Docker engine reachable ({exc.__class__.__name__}: {exc})")
    return client


@pytest.fixture(scope="session")
def base_image(docker_client) -> str:
    name = os.environ.get("MLOPSLAB_BASE_IMAGE") or images.OFFLINE_BASE
    if images.image_present(docker_client, name):
        return name
    if name != images.OFFLINE_BASE:
        _unavailable(f"base image {name} is missing (no registry here: use {images.OFFLINE_BASE})")
    try:
        images.build_base(docker_client, name, images.BASE_PACKAGES, cache_dir=Path("/var/cache/mlopslab/debs"))
    except Exception as exc:
        _unavailable(f"cannot build the offline base image: {exc}")
    return name


@pytest.fixture(scope="session")
def agent_base(docker_client, base_image) -> str:
    name = os.environ.get("MLOPSLAB_AGENT_BASE_IMAGE") or images.OFFLINE_AGENT_BASE
    if not images.image_present(docker_client, name):
        try:
            images.build_base(docker_client, name, images.AGENT_PACKAGES,
                              cache_dir=Path("/var/cache/mlopslab/debs"))
        except Exception as exc:
            _unavailable(f"cannot build the agent base image {name}: {exc}")
    return name


@dataclass
class Models:
    registry: object
    name: str
    versions: list[str]

    def resolve(self, model: str, version: str) -> Path:
        return self.registry.serving_dir(model, version)


@pytest.fixture(scope="session")
def models(registry) -> Models:
    """Two real versions of one model, trained and registered in MLflow (conftest's registry)."""
    from tests.conftest import MODEL

    return Models(registry, MODEL, ["1", "2"])


@pytest.fixture
def run_id(docker_client):
    run = "t" + secrets.token_hex(4)
    yield run
    remove_run(docker_client, run)


class Events:
    """Collects emitted events (an Emit stand-in) and waits for them."""

    def __init__(self) -> None:
        self.items: list[dict] = []
        self._cond = threading.Condition()

    def __call__(self, kind: str, lane: str | None = None, **fields) -> dict:
        event = {"t": time.monotonic(), "kind": kind, "lane": lane, **fields}
        with self._cond:
            self.items.append(event)
            self._cond.notify_all()
        return event

    def of(self, kind: str, **match) -> list[dict]:
        with self._cond:
            return [e for e in self.items if e["kind"] == kind and all(e.get(k) == v for k, v in match.items())]

    def wait(self, kind: str, timeout: float = 30.0, count: int = 1, **match) -> list[dict]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(found := [e for e in self.items if e["kind"] == kind
                                and all(e.get(k) == v for k, v in match.items())]) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {count}x {kind} {match} within {timeout} s; got "
                                         f"{[(e['kind'], e.get('lane')) for e in self.items][-30:]}")
                self._cond.wait(left)
            return found


def wait_until(predicate, timeout: float = 30.0, period: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(period)
    raise AssertionError(f"{what} not reached within {timeout} s")


@dataclass
class Traffic:
    """A bounded request loop over a lane's ready endpoints (127.0.0.1 only), in a thread."""

    env: object
    lane: str
    rows: list[list[float]]
    duration: float = 60.0
    ok: int = 0
    errors: list[str] = field(default_factory=list)
    versions: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Traffic:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        import json

        body = json.dumps({"inputs": self.rows}).encode()
        deadline = time.monotonic() + self.duration
        i = 0
        while not self._stop.is_set() and time.monotonic() < deadline:
            endpoints = self.env.endpoints(self.lane)
            if not endpoints:
                time.sleep(0.02)
                continue
            endpoint = endpoints[i % len(endpoints)]
            i += 1
            assert endpoint.url.startswith("http://127.0.0.1:")
            request = urllib.request.Request(endpoint.url + "/invocations", data=body,
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    version = response.headers.get("X-Model-Version", "?")
                    response.read()
                self.ok += 1
                self.versions[version] = self.versions.get(version, 0) + 1
            except Exception as exc:
                self.errors.append(f"{endpoint.replica}: {exc!r}")
            time.sleep(0.01)


def no_leftovers(client, run: str) -> list[str]:
    return leftovers(client, run)
