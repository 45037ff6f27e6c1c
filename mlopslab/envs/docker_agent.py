"""The pull lane's agent as a container of its own, started and followed by the lab.

The agent container (`python3 -m mlopslab.gitops.agent`, image from `images.build_agent_image`) gets:
the env repo mounted read-only at /repo (it fetches from it like from a git host), the exported models
read-only at /models (to build a version's image when it is missing), the run's state records at /state
(the live Deployment objects, shared with the lab, see `envs.docker`) and the engine's socket
/var/run/docker.sock — the credential of pull delivery, root-equivalent on the host. It shares the host's
network namespace (`network_mode=host`) only to probe its replicas' readiness on their ports published on
127.0.0.1, as the lab does (a kubelet probes its pods; an engine health check instead costs an exec in
every container every readiness period, most of a core on 2 cores: benchmarks/README.md, issue 16); git
goes through the mount and the engine through the socket. It runs as uid 10001 in the socket's group,
read-only root filesystem, every capability dropped, no-new-privileges, so it can bind no port below 1024.

For a lane with a progressive strategy the agent declares the lane's target in the engine rather than
converging replicas itself; `watch` (envs/docker_declared.py) is the lab's rollout controller's watch on
it, started and stopped with the container.

Its stdout is a stream of JSON-line events; `DockerAgent` follows it in a thread and re-emits each event
into the lab's `emit`, with `t` put on the lab's clock (containers share the host's CLOCK_MONOTONIC;
wall-clock arithmetic is the fallback for an engine elsewhere). Lines that are not events go to the
agent's log file.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlopslab.envs import baseimage
from mlopslab.envs.base import Emit
from mlopslab.envs.docker import DockerEnvironment
from mlopslab.envs.images import LABEL_LANE, LABEL_ROLE, LABEL_RUN, SERVER_USER, build_agent_image

SOCKET = "/var/run/docker.sock"


class DockerAgent:
    """Starts, follows and stops one lane's pull agent container."""

    def __init__(self, lane: str, origin: Path, env: DockerEnvironment, emit: Emit, *, models_dir: Path,
                 clock: Callable[[], float] | None = None, interval: float = 10.0, jitter: float = 0.0,
                 self_heal: bool = True, live_interval: float = 1.0, seed: int = 0, agent_base: str | None = None,
                 log_dir: Path | None = None, orphan_after: float = 30.0, watch: Any = None) -> None:
        self.lane = lane
        self.origin = Path(origin).resolve()
        self.env = env
        self.emit = emit
        self.models_dir = Path(models_dir).resolve()
        self.clock = clock or time.monotonic
        self.options = {"interval": interval, "jitter": jitter, "live-interval": live_interval, "seed": seed,
                        "orphan-after": orphan_after}
        self.self_heal = self_heal
        self.agent_base = agent_base
        self.log_path = (log_dir / f"agent-{lane}.log") if log_dir else None
        self.name = f"mlopslab-{env.run_id}-agent-{lane}"
        self.watch = watch   # a progressive lane: the rollout controller's watch on what the agent declares
        self.container: Any = None
        self.tail: deque[str] = deque(maxlen=50)
        self._offset = 0.0
        self._thread: threading.Thread | None = None

    def credential(self) -> str:
        return (f"the Docker engine socket {SOCKET} (root-equivalent on the host), mounted into the agent "
                f"container {self.name}")

    def start(self) -> None:
        client = self.env.client
        started = time.monotonic()
        image = build_agent_image(client, self.agent_base or baseimage.agent_base(client, self.env.base_image))
        self.emit("image_build", self.lane, role="agent", image=image.tag, id=image.id[:19], seconds=image.seconds,
                  size=image.size, added=image.added, cached=not image.built,
                  total=round(time.monotonic() - started, 3))
        command = ["--lane", self.lane, "--origin", "/repo", "--run-id", self.env.run_id, "--state-dir", "/state",
                   "--models", "/models", "--base-image", self.env.base_image]
        if self.env.network:
            command += ["--network", self.env.network]
        for option, value in self.options.items():
            command += [f"--{option}", str(value)]
        if not self.self_heal:
            command.append("--no-self-heal")
        with contextlib.suppress(Exception):
            client.api.remove_container(self.name, force=True)  # a leftover of a crashed lab with our name
        self._offset = self.clock() - time.monotonic()
        self.container = client.containers.run(
            image.id, command=command, name=self.name, detach=True,
            user=SERVER_USER, group_add=[str(os.stat(SOCKET).st_gid)],
            read_only=True, cap_drop=["ALL"], security_opt=["no-new-privileges"], network_mode="host",
            tmpfs={"/tmp": "size=64m,mode=1777"},
            volumes={str(self.origin): {"bind": "/repo", "mode": "ro"},
                     str(self.models_dir): {"bind": "/models", "mode": "ro"},
                     str(self.env.state_dir.resolve()): {"bind": "/state", "mode": "rw"},
                     SOCKET: {"bind": SOCKET, "mode": "rw"}},
            environment={"HOME": "/tmp"},
            labels={LABEL_RUN: self.env.run_id, LABEL_LANE: self.lane, LABEL_ROLE: "agent"})
        self.emit("agent_container_started", self.lane, container=self.name, image=image.tag,
                  credential=self.credential())
        self._thread = threading.Thread(target=self._follow, name=f"agent-log-{self.lane}", daemon=True)
        self._thread.start()
        if self.watch is not None:
            self.watch.start()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM: the agent stops reconciling and removes its lane's replicas; then the container goes."""
        import docker.errors

        if self.watch is not None:
            self.watch.stop()
        if self.container is None:
            return
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            self.container.stop(timeout=int(timeout))
        if self._thread is not None:
            self._thread.join(timeout=5)
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            self.container.remove(force=True)
        deadline = time.monotonic() + 10
        while self.running_or_present() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.container = None

    def running_or_present(self) -> bool:
        import docker.errors

        try:
            self.env.client.api.inspect_container(self.container.id)
            return True
        except docker.errors.NotFound:
            return False

    # --- the event stream --------------------------------------------------------------------------------
    def _follow(self) -> None:
        log = open(self.log_path, "a", encoding="utf-8") if self.log_path else None
        buffer = b""
        try:
            for chunk in self.container.logs(stream=True, follow=True, stdout=True, stderr=True):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    self._line(line.decode(errors="replace"), log)
        except Exception as exc:  # the container went away under us
            self.tail.append(f"log stream ended: {exc!r}")
        finally:
            if buffer:
                self._line(buffer.decode(errors="replace"), log)
            if log:
                log.close()
        with contextlib.suppress(Exception):
            code = self.container.wait(timeout=5).get("StatusCode")
            if code not in (0, None):
                self.emit("error", self.lane, message=f"agent container exited with {code}: "
                          + " | ".join(list(self.tail)[-5:]))

    def _line(self, line: str, log: Any) -> None:
        if log:
            log.write(line + "\n")
            log.flush()
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            event = None
        if not isinstance(event, dict) or "kind" not in event:
            if line.strip():
                self.tail.append(line)
            return
        kind, lane = event.pop("kind"), event.pop("lane", self.lane)
        mono, wall = event.pop("mono", None), event.pop("wall", None)
        self.emit(kind, lane, t=self.lab_time(mono, wall), via="agent-container", **event)

    def lab_time(self, mono: float | None, wall: float | None) -> float:
        """The agent's timestamp on the lab's clock."""
        by_wall = self.clock() - (time.time() - wall) if wall is not None else self.clock()
        if mono is None:
            return by_wall
        by_mono = mono + self._offset
        return by_mono if abs(by_mono - by_wall) < 1.0 else by_wall
