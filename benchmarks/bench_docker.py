"""Docker vs local, same models, same rollout, one run: image build, start-to-ready, apply-to-100 %.

    python benchmarks/bench_docker.py [--replicas 3] [--rounds 3] [--json out.json]

Measures, with two freshly trained MLflow versions:
- image build time and size (whole image, and what it adds over the base), per model version;
- replica start to ready (the controller's `replica_started` -> `replica_ready`), Docker vs local;
- apply v1 -> rollout_done (every replica updated and ready) and apply v2 -> rollout_done, Docker vs
  local: the environment's share of commit-to-100 % lead time (the lab's headless run adds the delivery).
Ratios are Docker / local, measured in the same process one after the other.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlopslab.envs.base import DeploymentSpec, Environment


class Collector:
    def __init__(self) -> None:
        self.events: list[dict] = []
        self._cond = threading.Condition()

    def __call__(self, kind: str, lane: str | None = None, **fields) -> None:
        with self._cond:
            self.events.append({"t": time.monotonic(), "kind": kind, "lane": lane, **fields})
            self._cond.notify_all()

    def wait(self, kind: str, timeout: float = 120.0, **match) -> dict:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events:
                    if event["kind"] == kind and all(event.get(k) == v for k, v in match.items()):
                        return event
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{kind} {match}")
                self._cond.wait(deadline - time.monotonic())


def rollout(env: Environment, events: Collector, lane: str, model: str, versions: list[str],
            replicas: int) -> dict[str, float]:
    """apply -> rollout_done per version, in seconds, plus the startups of the replicas it started."""
    out: dict[str, float] = {}
    for version in versions:
        started = time.monotonic()
        env.apply(DeploymentSpec(lane, model, version, replicas=replicas))
        done = events.wait("rollout_done", lane=lane, version=version)
        out[f"apply_to_100_v{version}"] = done["t"] - started
    startups = [e["startup"] for e in events.events if e["kind"] == "replica_ready" and e["lane"] == lane]
    out["start_to_ready_median"] = statistics.median(startups)
    out["start_to_ready_max"] = max(startups)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2, help="repeat each environment's rollout")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    import docker

    from mlopslab.envs import images
    from mlopslab.envs.cleanup import remove_run
    from mlopslab.envs.docker import DockerEnvironment
    from mlopslab.envs.local import LocalEnvironment
    from mlopslab.ml.data import DataSpec, DataStream
    from mlopslab.ml.registry import Registry, TrainParams

    client = docker.from_env()
    base = images.base_image_from_env()
    if not images.image_present(client, base) and images.image_present(client, images.OFFLINE_BASE):
        base = images.OFFLINE_BASE
    root = Path(tempfile.mkdtemp(prefix="mlopslab-bench-"))
    registry = Registry(root / "mlflow")
    stream = DataStream(DataSpec(n_samples=1000), seed=int(time.time()))
    versions = []
    for C in (1.0, 0.1):
        X, y = stream.sample(1000)
        X_val, y_val = stream.sample(300)
        versions.append(registry.train_and_register("bench", X, y, X_val, y_val, stream.feature_names,
                                                    TrainParams(C=C)).version)
    results: dict[str, dict[str, list[float]]] = {"local": {}, "docker": {}}
    builds = []
    for round_ in range(args.rounds):
        for kind in ("local", "docker"):
            events = Collector()
            run_id = f"bench{round_}{int(time.time()) % 100000}"
            if kind == "local":
                env: Environment = LocalEnvironment(registry.serving_dir, events)
            else:
                env = DockerEnvironment(registry.serving_dir, events, run_id=run_id, base_image=base, client=client,
                                        state_dir=root / f"state-{run_id}")
            try:
                measured = rollout(env, events, "bench", "bench", versions, args.replicas)
            finally:
                env.teardown()
                if kind == "docker":
                    remove_run(client, run_id)
            for key, value in measured.items():
                results[kind].setdefault(key, []).append(value)
            builds += [e for e in events.events if e["kind"] == "image_build"]

    fresh = [b for b in builds if not b["cached"]]
    base_size = client.images.get(base).attrs["Size"]
    report = {
        "base_image": base, "base_size_mb": round(base_size / 1e6, 1), "replicas": args.replicas,
        "rounds": args.rounds, "engine": client.version().get("Version"),
        "image_build_s": [b["seconds"] for b in fresh],
        "image_size_mb": [round(b["size"] / 1e6, 1) for b in fresh],
        "image_added_kb": [round(b["added"] / 1e3, 1) for b in fresh],
        "metrics": {},
    }
    for key in results["local"]:
        local = statistics.median(results["local"][key])
        dock = statistics.median(results["docker"][key])
        report["metrics"][key] = {"local_s": round(local, 3), "docker_s": round(dock, 3),
                                  "ratio": round(dock / local, 2) if local > 0 else None}
    print(f"base {base}: {report['base_size_mb']} MB   engine {report['engine']}   replicas {args.replicas}")
    print(f"model image build: {report['image_build_s']} s, adds {report['image_added_kb']} kB "
          f"(total {report['image_size_mb']} MB)")
    print(f"{'metric (median of rounds)':<28} {'local':>8} {'docker':>8} {'ratio':>6}")
    for key, row in report["metrics"].items():
        print(f"{key:<28} {row['local_s']:>8.3f} {row['docker_s']:>8.3f} {row['ratio']:>6}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    images_of_run = client.images.list(filters={"label": f"{images.LABEL_MODEL}=bench"})
    for image in images_of_run:
        try:
            client.images.remove(image.id, force=True)
        except Exception:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
