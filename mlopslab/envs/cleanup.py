"""Clean-up of Docker leftovers by label: a run's containers and network, or those of every run.

Everything the Docker environment creates carries `mlopslab.run=<run id>` (and replicas/agents
`mlopslab.lane`), so removal never depends on remembering names: `remove_run` is what a torn-down
environment calls, `clean` is `mlopslab clean` (leftovers of earlier runs, e.g. after a SIGKILL).
`on_signals` turns SIGTERM/SIGHUP into KeyboardInterrupt so one `finally:` tears down on Ctrl-C or kill.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from mlopslab.envs.images import LABEL_LANE, LABEL_ROLE, LABEL_RUN


@dataclass
class Removed:
    containers: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.containers or self.networks or self.images)

    def summary(self) -> str:
        return (f"removed {len(self.containers)} container(s), {len(self.networks)} network(s), "
                f"{len(self.images)} image(s)")


def _label_filter(run_id: str | None, lane: str | None = None) -> list[str]:
    labels = [LABEL_RUN if run_id is None else f"{LABEL_RUN}={run_id}"]
    if lane is not None:
        labels.append(f"{LABEL_LANE}={lane}")
    return labels


def remove_run(client: Any, run_id: str | None, *, lane: str | None = None, networks: bool = True,
               images: bool = False, role: str | None = None) -> Removed:
    """Force-removes the containers (then networks, optionally images) labelled with the run (None: any run),
    optionally only those of one lane and/or one role (replica | agent)."""
    import docker.errors

    removed = Removed()
    labels = _label_filter(run_id, lane) + ([f"{LABEL_ROLE}={role}"] if role else [])
    listed = client.api.containers(all=True, filters={"label": labels})
    # agents first, so none of them starts a replacement while its replicas go
    listed.sort(key=lambda c: (c.get("Labels") or {}).get(LABEL_ROLE) != "agent")
    agents = [c for c in listed if (c.get("Labels") or {}).get(LABEL_ROLE) == "agent"]
    others = [c for c in listed if c not in agents]

    def remove(container: dict[str, Any]) -> None:
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            client.api.remove_container(container["Id"], force=True)
            removed.containers.append((container.get("Names") or [container["Id"][:12]])[0].lstrip("/"))

    for batch in (agents, others):
        threads = [threading.Thread(target=remove, args=(c,), daemon=True) for c in batch]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    if networks and lane is None:
        removed.networks += remove_networks(client, run_id)
    if images and lane is None:
        for image in client.images.list(filters={"label": _label_filter(run_id)}):
            if (image.labels or {}).get(LABEL_ROLE) in ("model-image", "agent-image"):
                with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                    client.images.remove(image.id, force=True)
                    removed.images.append(image.tags[0] if image.tags else image.short_id)
    return removed


def remove_networks(client: Any, run_id: str | None) -> list[str]:
    """Removes the networks labelled with the run (None: any run); returns their names."""
    import docker.errors

    names = []
    for network in client.networks.list(filters={"label": _label_filter(run_id)}):
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            network.remove()
            names.append(network.name)
    return names


def leftovers(client: Any, run_id: str | None = None) -> list[str]:
    """Names of containers still labelled with the run (None: any run)."""
    return [(c.get("Names") or ["?"])[0].lstrip("/")
            for c in client.api.containers(all=True, filters={"label": _label_filter(run_id)})]


def clean(run_id: str | None = None, *, images: bool = False, client: Any = None) -> Removed:
    """`mlopslab clean [--run ID] [--images]`: removes leftovers of earlier runs by label."""
    if client is None:
        import docker

        client = docker.from_env()
    removed = remove_run(client, run_id, images=False)
    if images:
        for image in client.images.list(filters={"label": LABEL_ROLE}):
            if (image.labels or {}).get(LABEL_ROLE) in ("model-image", "agent-image"):
                with contextlib.suppress(Exception):
                    client.images.remove(image.id, force=True)
                    removed.images.append(image.tags[0] if image.tags else image.short_id)
    return removed


@contextlib.contextmanager
def on_signals(*signums: int) -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise KeyboardInterrupt like Ctrl-C does (main thread only)."""
    signums = signums or (signal.SIGTERM, signal.SIGHUP)

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {s: signal.signal(s, interrupt) for s in signums}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
