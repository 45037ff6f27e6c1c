"""Docker vs local, same models, same scenario, one run: lead time, image build, start-to-ready.

    python benchmarks/bench_docker.py [--scenario scenarios/push-vs-pull.yaml] [--duration S]
                                      [--replicas 3] [--rounds 2] [--json benchmarks/results/docker.json]

Measures, in one process, Docker then local back to back on the same machine:
- the scenario, headless through the Lab, once with `environment: local` and once with `docker`: per lane
  (push, pull) and per release, commit -> detected and commit -> 100 % of traffic on the new version
  (`report.summarise(...).to_json()["lanes"][lane]["releases"][i]["lead"]`), detected -> 100 % (delivery +
  rollout, without the pull agent's poll luck), and errors during each rollout;
- image build time and size (whole image, and what it adds over the base), per model version;
- replica start to ready (the controller's `replica_started` -> `replica_ready`), Docker vs local;
- apply v1 -> rollout_done and apply v2 -> rollout_done on the bare environment (no delivery).
Ratios are Docker / local.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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


def lab_lead_times(scenario_path: Path, kind: str, base: str, root: Path, duration: float | None) -> dict:
    """Runs the scenario headless through the Lab in `kind`; per lane, per release: lead times and errors."""
    import dataclasses

    from mlopslab import report, scenario
    from mlopslab.lab import Lab

    sc = scenario.load(scenario_path)
    sc = dataclasses.replace(sc, environment=scenario.EnvironmentSpec(kind, base_image=base if kind == "docker"
                                                                          else None))
    if duration is not None:
        sc = dataclasses.replace(sc, duration=duration)
    results = root / f"lab-{kind}-{int(time.time()) % 100000}"
    started = time.monotonic()
    lab = Lab(sc, results)
    status = lab.run()
    summary = report.summarise(lab.state).to_json()
    lanes = {}
    for name, lane in summary["lanes"].items():
        releases = {}
        for release in lane["releases"]:
            lead = release.get("lead") or {}
            detected, full = lead.get("detected"), lead.get("traffic_100")
            releases[release["version"]] = {
                "setup": bool(release.get("setup")), "detected_s": detected, "traffic_100_s": full,
                "detected_to_100_s": round(full - detected, 3) if full is not None and detected is not None
                else None,
                "errors": release.get("errors_during_rollout"), "requests": release.get("requests_during_rollout")}
        lanes[name] = {"delivery": lane.get("delivery"), "releases": releases, "requests": lane.get("requests"),
                       "errors": lane.get("errors")}
    return {"status": status, "wall_s": round(time.monotonic() - started, 1), "results": str(results),
            "lanes": lanes}


def _ratio(docker: float | None, local: float | None) -> float | None:
    return round(docker / local, 2) if docker is not None and local else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=Path, default=ROOT / "scenarios" / "push-vs-pull.yaml")
    parser.add_argument("--duration", type=float, default=None, help="cut the scenario short (seconds)")
    parser.add_argument("--skip-scenario", action="store_true", help="only the bare-environment measurements")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2, help="repeat each environment's rollout")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "docker.json")
    args = parser.parse_args(argv)

    import docker
    import docker.errors

    from mlopslab.envs import images
    from mlopslab.envs.cleanup import remove_run
    from mlopslab.envs.docker import DockerEnvironment
    from mlopslab.envs.local import LocalEnvironment
    from mlopslab.ml.registry import quiet_mlflow
    from mlopslab.ml.data import DataSpec, DataStream
    from mlopslab.ml.registry import Registry, TrainParams

    quiet_mlflow()
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
    scenario_runs = {}
    if not args.skip_scenario:
        for kind in ("docker", "local"):
            print(f"scenario {args.scenario.name} in {kind} ...", flush=True)
            scenario_runs[kind] = lab_lead_times(args.scenario, kind, base, root, args.duration)
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
        "metrics": {}, "scenario": None,
    }
    if scenario_runs:
        rows = []
        local_lanes, docker_lanes = scenario_runs["local"]["lanes"], scenario_runs["docker"]["lanes"]
        for lane in docker_lanes:
            for version, dock in docker_lanes[lane]["releases"].items():
                loc = local_lanes.get(lane, {}).get("releases", {}).get(version, {})
                rows.append({"lane": lane, "version": version, "setup": dock["setup"],
                             **{f"{k}_{env}": v for env, r in (("local", loc), ("docker", dock))
                                for k, v in r.items() if k != "setup"},
                             "ratio_traffic_100": _ratio(dock["traffic_100_s"], loc.get("traffic_100_s")),
                             "ratio_detected_to_100": _ratio(dock["detected_to_100_s"], loc.get("detected_to_100_s"))})
        report["scenario"] = {"path": str(args.scenario), "duration": args.duration, "rows": rows,
                              "runs": scenario_runs}
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
    if report["scenario"]:
        print(f"\nscenario {args.scenario.name}: commit -> 100 % traffic (s), docker / local")
        print(f"{'lane':<6} {'ver':>3} {'local':>7} {'docker':>7} {'ratio':>6}   "
              f"{'det->100 local':>14} {'docker':>7} {'ratio':>6}   errors l/d")
        for row in report["scenario"]["rows"]:
            def f(v):
                return "—" if v is None else f"{v:.2f}"
            print(f"{row['lane']:<6} {row['version']:>3} {f(row['traffic_100_s_local']):>7} "
                  f"{f(row['traffic_100_s_docker']):>7} {f(row['ratio_traffic_100']):>6}   "
                  f"{f(row['detected_to_100_s_local']):>14} {f(row['detected_to_100_s_docker']):>7} "
                  f"{f(row['ratio_detected_to_100']):>6}   {row['errors_local']}/{row['errors_docker']}"
                  + ("   (initial deploy)" if row["setup"] else ""))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    images_of_run = client.images.list(filters={"label": f"{images.LABEL_MODEL}=bench"})
    for image in images_of_run:
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(image.id, force=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
