"""The pull agent as a program of its own: the entry point of the agent's container in the Docker lab.

    python3 -m mlopslab.gitops.agent --lane pull --origin /repo --run-id RUN --state-dir /state \\
        --models /models --base-image mlopslab/base:bookworm [--interval S --jitter S --live-interval S]

It builds a `PullAgent` over a `DockerEnvironment` that controls only its lane (the lab owns the run),
and prints every event as one JSON line on stdout: {"mono", "wall", "kind", "lane", ...}. `mono` is
CLOCK_MONOTONIC, which containers share with the host, so the lab puts the events on its own clock
exactly (`envs.docker_agent`). SIGTERM stops the loop and removes the lane's replicas.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

_print_lock = threading.Lock()


def emit(kind: str, lane: str | None = None, **fields: Any) -> dict[str, Any]:
    event = {"mono": time.monotonic(), "wall": time.time(), "kind": kind, "lane": lane, **fields}
    line = json.dumps(event, separators=(",", ":"), default=str)
    with _print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    return event


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlopslab-agent", description=__doc__.splitlines()[0])
    parser.add_argument("--lane", required=True)
    parser.add_argument("--origin", type=Path, required=True, help="the env repo (a path git can fetch)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/checkout"))
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--models", type=Path, required=True, help="exported models: <dir>/<name>/<version>")
    parser.add_argument("--base-image", required=True)
    parser.add_argument("--network", default=None)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--jitter", type=float, default=0.0)
    parser.add_argument("--live-interval", type=float, default=1.0)
    parser.add_argument("--no-self-heal", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--orphan-after", type=float, default=30.0,
                        help="seconds without the lab's heartbeat after which the run's containers are removed")
    args = parser.parse_args(argv)

    from mlopslab.envs.docker import DockerEnvironment
    from mlopslab.envs.docker_declared import DeclaredStore, DeclaringEnvironment
    from mlopslab.gitops.pull import PullAgent

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    env = DockerEnvironment(lambda name, version: args.models / name / str(version), emit, run_id=args.run_id,
                            base_image=args.base_image, state_dir=args.state_dir, owns_run=False,
                            network=args.network, actor="agent")
    # a lane with a progressive strategy is declared in the engine for the rollout controller beside it
    declaring = DeclaringEnvironment(env, DeclaredStore(env.client, args.run_id, args.base_image))
    agent = PullAgent(args.lane, args.origin, args.workdir, declaring, emit, interval=args.interval, jitter=args.jitter,
                      self_heal=not args.no_self_heal, live_interval=args.live_interval, seed=args.seed)
    emit("agent_started", args.lane, interval=args.interval, jitter=args.jitter, self_heal=not args.no_self_heal)
    agent.start()
    orphaned = False
    try:
        while not stop.wait(1.0):
            age = env.store.heartbeat_age()
            if age is not None and age > args.orphan_after:
                orphaned = True
                emit("agent_orphaned", args.lane, heartbeat_age=round(age, 1))
                break
    finally:
        agent.stop()
        env.teardown()
        emit("agent_stopped", args.lane)
    if orphaned:
        reap(env)
    return 0


def reap(env: Any) -> None:
    """The lab died without tearing down: remove the run's replicas and network, then this container."""
    import socket

    from mlopslab.envs.cleanup import remove_networks, remove_run

    remove_run(env.client, env.run_id, role="replica")
    me = socket.gethostname()  # a container's hostname is its short id
    others = [c for c in env.client.api.containers(all=True, filters={"label": f"mlopslab.run={env.run_id}"})
              if not c["Id"].startswith(me)]
    for container in others:
        env.client.api.remove_container(container["Id"], force=True)
    remove_networks(env.client, env.run_id)
    env.client.api.remove_container(me, force=True)


if __name__ == "__main__":
    sys.exit(main())
