"""The lab: runs one scenario on one clock — model registry, env repo, lanes, traffic, timeline, events.

It knows nothing about Textual. The headless CLI and the TUI are two consumers of the same event stream
(`Lab.recorder.subscribe`) and of the same state (`Lab.state`, a RunState fed by those events).
Actions a person takes (release, manual change, kill a replica, pause traffic, inject drift) are
methods, so keys in the TUI, timeline entries and tests all go through one path.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from mlopslab.envs.base import DeploymentSpec, Environment, Strategy
from mlopslab.events import Recorder
from mlopslab.ml.data import DataSpec, DataStream
from mlopslab.ml.pipeline import PipelineHost, Pipelines
from mlopslab.ml.registry import CHAMPION, ModelVersion, Registry, TrainParams
from mlopslab.monitor.timeline import RunState
from mlopslab.monitor.traffic import TrafficMonitor
from mlopslab.monitor.watch import DriftWatch
from mlopslab.scenario import LaneSpec, Scenario, TimelineEvent

SETUP_TIMEOUT = 120.0


class LabError(RuntimeError):
    pass


class PrerequisiteError(LabError):
    """The scenario's environment is not usable here: nothing was started. The message says how to fix it."""


def make_environment(scenario: Scenario, registry: Registry, recorder: Recorder, run_dir: Path,
                     run_id: str) -> Environment:
    kind = scenario.environment.kind
    if kind == "local":
        from mlopslab.envs.local import LocalEnvironment

        return LocalEnvironment(registry.serving_dir, recorder.emit, log_dir=run_dir / "logs")
    if kind == "docker":
        from mlopslab.envs.docker import DockerEnvironment

        return DockerEnvironment(registry.serving_dir, recorder.emit, log_dir=run_dir / "logs", run_id=run_id,
                                 base_image=scenario.environment.base_image)
    raise LabError(f"environment {kind!r} is not available in this build (see `mlopslab doctor`)")


def docker_base_image(scenario: Scenario, log: Callable[[str], None] | None = None) -> tuple[Scenario, Any]:
    """A Docker scenario with the base image it will build FROM (the configured one, the offline base, or
    pulled once), decided before anything starts; LabError names the command that builds one."""
    from mlopslab.envs import baseimage

    try:
        choice = baseimage.resolve(None, scenario.environment.base_image, log=log)
    except baseimage.BaseImageError as exc:
        raise LabError(str(exc)) from None
    return replace(scenario, environment=replace(scenario.environment, base_image=choice.image)), choice


class Lab:
    def __init__(self, scenario: Scenario, results_dir: Path) -> None:
        self.scenario = scenario
        self.dir = results_dir.resolve()
        if (self.dir / "events.jsonl").exists():
            raise LabError(f"{self.dir} already holds a run; choose another results directory")
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "logs").mkdir(exist_ok=True)
        self.run_id = self.dir.name
        self.recorder = Recorder(self.dir / "events.jsonl")
        self.state = RunState()
        self._state_lock = threading.Lock()
        self.recorder.subscribe(self._update_state)
        self.lane_names = [lane.name for lane in scenario.lanes]
        self.monitor = TrafficMonitor(self.lane_names, self.recorder.emit)
        self.recorder.subscribe(self.monitor.on_event)
        self.stream = DataStream(DataSpec(**scenario.data), scenario.seed)
        self.registry = Registry(self.dir / "mlflow")
        self.env: Environment | None = None
        self.repo: Any = None
        self.deliveries: dict[str, Any] = {}
        self.desired: dict[str, DeploymentSpec] = {}
        self.versions: list[ModelVersion] = []
        self.start_t: float | None = None
        self.status = "created"
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._loadgen: subprocess.Popen | None = None
        self._loadgen_lock = threading.Lock()
        self._endpoints: dict[str, list[list[str]]] = {}
        self._endpoints_lock = threading.Lock()
        self._requests_file = None
        self._train_lock = threading.Lock()
        self._desired_lock = threading.Lock()
        self._lane_head: dict[str, str] = {}
        self._torn_down = False
        # MLOps levels: an online drift monitor per lane, and each lane's retraining pipeline
        self.watch = DriftWatch(self.lane_names, self.stream.feature_names, self.recorder.emit,
                                label_delay=scenario.label_delay, config=scenario.drift_detection,
                                on_alarm=self._on_drift_alarm)
        self.recorder.subscribe(self.watch.on_event)
        self.pipelines = Pipelines(
            {lane.name: lane.level for lane in scenario.lanes},
            PipelineHost(emit=self.recorder.emit, now=self.recorder.now, labelled=self.watch.labelled,
                         drift_report=self.watch.drift_report, champion_version=lambda lane: self.desired[lane].version,
                         deliver=self._deliver_lane, add_training_rows=self.watch.add_training_rows,
                         stopped=self._stop.is_set, registry=self.registry, model_name=scenario.model_name,
                         feature_names=self.stream.feature_names, train_lock=self._train_lock, run_id=self.run_id,
                         defaults=dict(scenario.retrain)),
            self.dir)
        self.recorder.subscribe(self.pipelines.on_event)

    # --- state for consumers ------------------------------------------------------------------------
    def _update_state(self, event: dict[str, Any]) -> None:
        with self._state_lock:
            self.state.apply(event)

    def snapshot(self, reader: Any) -> Any:
        """Calls reader(state) under the state lock (the TUI copies what it draws)."""
        with self._state_lock:
            return reader(self.state)

    def scenario_time(self) -> float:
        return 0.0 if self.start_t is None else self.recorder.now() - self.start_t

    # --- lifecycle ------------------------------------------------------------------------------------
    def run(self) -> str:
        """Runs the whole scenario, blocking; returns the final status. Always tears down."""
        try:
            self.prepare()
            self.start()
            self._stop.wait(max(0.0, self.scenario.duration - self.scenario_time()))
            self.status = "ok" if self.status == "running" else self.status
        except KeyboardInterrupt:
            self.status = "interrupted"
            raise
        except BaseException as exc:
            self.status = "failed"
            self.recorder.emit("error", None, message=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            self.shutdown()
        return self.status

    def prepare(self) -> None:
        """Trains and registers v1, makes the env repo, starts the environment and every lane, waits ready."""
        from mlopslab.gitops.repo import EnvRepo

        self.check_prerequisites()
        if self.scenario.environment.kind == "docker":  # the base to build FROM (pulled once if need be)
            self.scenario, base = docker_base_image(self.scenario)
            self.recorder.emit("base_image", None, configured=base.configured, image=base.image, how=base.how)
        sc = self.scenario
        _quiet_mlflow()
        lanes = []
        self.env = make_environment(sc, self.registry, self.recorder, self.dir, self.run_id)
        for lane in sc.lanes:
            lanes.append({**asdict(lane), "credential": self._credential(lane)})
        self.recorder.emit("lab_prepared", None, scenario={"name": sc.name, "description": sc.description,
                                                           "duration": sc.duration, "seed": sc.seed,
                                                           "environment": sc.environment.kind,
                                                           "rate": sc.rate, "path": str(sc.path or "")},
                           lanes=lanes, results_dir=str(self.dir))
        self.status = "preparing"
        first = self.train(note="initial version")
        self.pipelines.bootstrap()
        self.repo = EnvRepo(self.dir / "envrepo")
        for lane in sc.lanes:
            self.desired[lane.name] = self._spec(lane, first.version)
        for lane in sc.lanes:
            self.deliveries[lane.name] = self._delivery(lane)
        self.commit(list(self.desired), first.version, "deploy v1")
        for delivery in self.deliveries.values():
            delivery.start()
        self._start_loadgen()
        self._spawn(self._watch_environment, "watch-env")
        deadline = time.monotonic() + SETUP_TIMEOUT
        while not all(self.env.observe(name).complete for name in self.lane_names):
            if self._stop.is_set():
                raise KeyboardInterrupt
            if time.monotonic() > deadline:
                raise LabError("the lanes did not become ready within "
                               f"{SETUP_TIMEOUT:.0f} s; see {self.dir / 'logs'}")
            time.sleep(0.05)
        self._publish_endpoints()  # traffic must not start before the generator knows the ready replicas

    def check_prerequisites(self) -> None:
        """What `mlopslab doctor` checks for this scenario's environment, before anything is trained or started."""
        from mlopslab import doctor

        kind = self.scenario.environment.kind
        failed = doctor.problems(kind, self.scenario.environment.base_image)
        if failed:
            self.recorder.emit("preflight_failed", None, environment=kind,
                               checks=[{"name": c.name, "detail": c.detail, "fix": c.fix} for c in failed])
            raise PrerequisiteError(doctor.explain(kind, failed))

    def start(self) -> None:
        """Starts the scenario clock: traffic flows and the timeline plays."""
        self.start_t = self.recorder.now()
        self.status = "running"
        self.recorder.emit("run_started", None, scenario=self.scenario.name)
        self._send_loadgen({"op": "resume"})
        self._spawn(self._play_timeline, "timeline")
        self._spawn(self._tick_monitor, "monitor")
        self._spawn(self._tick_watch, "drift-watch")

    def stop(self) -> None:
        """Asks a running scenario to end now (the TUI's quit, a test)."""
        if self.status == "running":
            self.status = "stopped"
        self._stop.set()

    def shutdown(self) -> None:
        """Stops traffic, deliveries and every replica; writes the summary. Idempotent.

        Runs to the end even if Ctrl-C or SIGTERM arrives again meanwhile: on the main thread both are
        held off until the clean-up is done, and each step runs whatever the one before did.
        """
        if self._torn_down:
            return
        self._torn_down = True
        from mlopslab import report

        with _signals_held():
            steps = [self._stop.set, self._stop_loadgen, *(d.stop for d in self.deliveries.values()),
                     *([self.env.teardown] if self.env is not None else []), self._join_threads,
                     lambda: self.monitor.tick(float("inf"))]
            for step in steps:
                try:
                    step()
                except Exception as exc:
                    self.recorder.emit("error", None, message=f"shutdown: {type(exc).__name__}: {exc}")
            self.recorder.emit("run_finished", None, status=self.status, duration=round(self.scenario_time(), 3))
            self.recorder.drain()
            try:
                self.snapshot(lambda state: report.write(self.dir, state))
            finally:
                if self._requests_file:
                    self._requests_file.close()
                self.recorder.close()

    def _join_threads(self) -> None:
        for thread in self._threads:
            thread.join(timeout=3)
        self.pipelines.join(timeout=3)

    # --- actions --------------------------------------------------------------------------------------
    def train(self, *, note: str = "", overrides: dict[str, Any] | None = None,
              at: float | None = None) -> ModelVersion:
        """Trains a version on data as it is now, registers it, makes it the champion."""
        params = {**self.scenario.train, **(overrides or {})}
        n = int(params.pop("n_samples", None) or self.scenario.data.get("n_samples", 4000))
        t = self.scenario_time() if at is None else at
        with self._train_lock:
            X, y = self.stream.sample(n, t)
            X_val, y_val = self.stream.sample(max(500, n // 4), t)
            mv = self.registry.train_and_register(
                self.scenario.model_name, X, y, X_val, y_val, self.stream.feature_names, TrainParams(**params),
                tags={"mlopslab.run": self.run_id, "note": note})
            self.registry.set_alias(mv.name, CHAMPION, mv.version)
            self.versions.append(mv)
            self.watch.add_training_rows(mv.version, X)  # the drift reference of lanes that will serve it
        self.recorder.emit("model_registered", None, model=mv.name, version=mv.version, run_id=mv.run_id,
                           accuracy=round(mv.accuracy, 4), uri=mv.uri, note=note, params=mv.params)
        return mv

    def commit(self, lanes: list[str], version: str, message: str) -> str:
        """Sets `version` as the lanes' desired state and commits it, in one step (releases and retrains
        commit from different threads)."""
        with self._desired_lock:
            for name in lanes:
                self.desired[name] = replace(self.desired[name], version=str(version))
            specs = [self.desired[name] for name in lanes]
            self._lane_head.update({name: "" for name in lanes})

            def on_commit(sha: str) -> None:  # recorded before any webhook leaves
                self._lane_head.update({name: sha for name in lanes})
                self.recorder.emit("commit", None, sha=sha, version=version, message=message, lanes=lanes)

            return self.repo.commit_lanes(specs, message, notify=on_commit)

    def release(self, *, lanes: list[str] | None = None, note: str = "", overrides: dict[str, Any] | None = None) -> str:
        """A new model version: train, register, commit it to the env repo for `lanes` (default: all)."""
        mv = self.train(note=note, overrides=overrides)
        return self.commit(lanes or self.lane_names, mv.version,
                           f"release {mv.uri}" + (f": {note}" if note else ""))

    def manual_change(self, lane: str, *, replicas: int | None = None, version: str | None = None) -> None:
        """A person edits live state directly (kubectl edit / docker run by hand), not through git."""
        assert self.env is not None
        if version is not None and not self.registry.exists(self.scenario.model_name, str(version)):
            raise LabError(f"models:/{self.scenario.model_name}/{version} is not in the registry")
        self.env.change_live(lane, replicas=replicas, version=None if version is None else str(version))
        change = {k: v for k, v in {"replicas": replicas, "version": version}.items() if v is not None}
        self.recorder.emit("live_change", lane, change=change, by="human")

    def kill_replica(self, lane: str) -> str | None:
        assert self.env is not None
        name = self.env.kill_replica(lane)
        self.recorder.emit("replica_killed", lane, replica=name)
        return name

    def pause_traffic(self) -> None:
        self._send_loadgen({"op": "pause"})
        self.recorder.emit("traffic_paused", None)

    def resume_traffic(self) -> None:
        self._send_loadgen({"op": "resume"})
        self.recorder.emit("traffic_resumed", None)

    def toggle_traffic(self) -> None:
        (self.resume_traffic if self.state.paused else self.pause_traffic)()

    def inject_drift(self, kind: str, size: float, features: list[int] | None = None, ramp: float = 0.0) -> None:
        """Changes the data from now on (recorded with its known change point)."""
        from mlopslab.ml.data import Drift

        at = self.recorder.now()
        drift = {"kind": kind, "at": at, "size": size, "features": features, "ramp": ramp}
        self.stream.add_drift(Drift(kind, self.scenario_time(), size, tuple(features) if features else None, ramp))
        self._send_loadgen({"op": "drift", **drift})
        # the drift's kind goes in `drift`: `kind` is the event's own kind
        self.recorder.emit("drift_injected", None, drift=kind, size=size, features=features, ramp=ramp, change_point=at)

    def retrain(self, lane: str) -> None:
        """A person starts the lane's retraining pipeline (the only way at MLOps level 0)."""
        self._targets(lane)
        self.recorder.emit("human_action", lane, action="retrain")
        self.pipelines.lanes[lane].trigger("human")

    def pipeline_commit(self, lane: str, tests_pass: bool = True, note: str = "") -> bool:
        """A person commits a change of the lane's training pipeline code (at level 2 it goes through CI)."""
        self._targets(lane)
        self.recorder.emit("human_action", lane, action="pipeline_commit", note=note)
        return self.pipelines.lanes[lane].commit_code(bool(tests_pass), str(note))

    # --- internals ------------------------------------------------------------------------------------
    def _on_drift_alarm(self, lane: str, alarm: dict[str, Any]) -> None:
        if self.status == "running" and not self._stop.is_set():
            self.pipelines.on_alarm(lane, alarm)

    def _deliver_lane(self, lane: str, version: str, message: str) -> str:
        """A retrained version goes to one lane only, through the env repo like any release."""
        return self.commit([lane], str(version), message)

    def _spec(self, lane: LaneSpec, version: str) -> DeploymentSpec:
        return DeploymentSpec(lane=lane.name, model=self.scenario.model_name, version=str(version),
                              replicas=lane.replicas, readiness_period=lane.readiness_period, warmup=lane.warmup,
                              strategy=Strategy(lane.max_surge, lane.max_unavailable, lane.progress_deadline))

    def _credential(self, lane: LaneSpec) -> str:
        env = self.env.credential() if self.env else "?"
        if lane.delivery == "pull" and self.scenario.environment.kind == "docker":
            return (f"the agent container mlopslab-{self.run_id}-agent-{lane.name} holds the engine socket "
                    "(/var/run/docker.sock mounted); it has no network and reads the repo read-only")
        if lane.delivery == "push":
            return f"CI runner holds environment access: {env}"
        return f"agent beside the environment holds it: {env}; outside needs only read access to the repo"

    def _delivery(self, lane: LaneSpec) -> Any:
        assert self.env is not None
        work = self.dir / "work" / lane.name
        if lane.delivery == "push":
            from mlopslab.gitops.push import PushRunner

            runner = PushRunner(lane.name, self.repo.path, work, self.env, self.recorder.emit, self.registry.exists)
            self.repo.add_hook(runner.hook_url, runner.secret)
            return runner
        if self.scenario.environment.kind == "docker":  # the agent runs in a container beside the engine
            from mlopslab.envs.docker_agent import DockerAgent

            return DockerAgent(lane.name, self.repo.path, self.env, self.recorder.emit, models_dir=self.registry.cache,
                               clock=self.recorder.now, interval=lane.poll_interval, jitter=lane.poll_jitter,
                               self_heal=lane.self_heal, seed=self.scenario.seed + len(self.deliveries),
                               log_dir=self.dir / "logs")
        from mlopslab.gitops.pull import PullAgent

        agent = PullAgent(lane.name, self.repo.path, work, self.env, self.recorder.emit,
                          interval=lane.poll_interval, jitter=lane.poll_jitter, webhook=lane.webhook,
                          self_heal=lane.self_heal, seed=self.scenario.seed + len(self.deliveries))
        if agent.hook_url:
            self.repo.add_hook(agent.hook_url, agent.secret)
        return agent

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=self._guard, args=(target,), name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _guard(self, target: Any) -> None:
        try:
            target()
        except Exception as exc:
            self.recorder.emit("error", None, message=f"{target.__name__}: {type(exc).__name__}: {exc}")

    def _play_timeline(self) -> None:
        items: list[tuple[float, Any]] = [(n.at, n) for n in self.scenario.narration]
        items += [(e.at, e) for e in self.scenario.timeline]
        items.sort(key=lambda item: item[0])
        for at, item in items:
            if self._stop.wait(max(0.0, at - self.scenario_time())):
                return
            if isinstance(item, TimelineEvent):
                try:
                    self.perform(item)
                except Exception as exc:
                    self.recorder.emit("error", None, message=f"{self.scenario.path or 'scenario'}:{item.line}: "
                                                              f"timeline ({item.action} at {item.at} s): {exc}")
            else:
                self.recorder.emit("narration", None, text=item.text)

    def perform(self, event: TimelineEvent) -> None:
        """Plays one timeline entry; `lane: all` means every lane."""
        args = event.args
        per_lane = {
            "manual_change": lambda lane: self.manual_change(lane, replicas=args.get("replicas"),
                                                             version=args.get("version")),
            "kill_replica": self.kill_replica,
            "retrain": self.retrain,
            "pipeline_commit": lambda lane: self.pipeline_commit(lane, bool(args.get("tests_pass", True)),
                                                                 str(args.get("note", ""))),
        }
        whole_run = {
            "release": lambda: self.release(note=str(args.get("note", "")),
                                            overrides={k: v for k, v in args.items() if k != "note"}),
            "pause_traffic": self.pause_traffic,
            "resume_traffic": self.resume_traffic,
            "drift": lambda: self.inject_drift(args["kind"], float(args["size"]), args.get("features"),
                                               float(args.get("ramp", 0))),
        }
        if event.action in per_lane:
            for lane in self._targets(args.get("lane", "all")):
                per_lane[event.action](lane)
        else:
            whole_run[event.action]()

    def _targets(self, lane: str) -> list[str]:
        if lane == "all":
            return list(self.lane_names)
        if lane not in self.lane_names:
            raise LabError(f"no lane {lane!r} (lanes: {', '.join(self.lane_names)})")
        return [lane]

    def _tick_monitor(self) -> None:
        while not self._stop.wait(0.25):
            self.monitor.tick(self.recorder.now())

    def _tick_watch(self) -> None:
        while not self._stop.wait(1.0):
            self.watch.tick(self.recorder.now())

    def _watch_environment(self) -> None:
        """Pushes ready endpoints to the load generator (like Endpoints → kube-proxy) and reports sync."""
        syncs: dict[str, tuple[str, str | None]] = {}
        while not self._stop.wait(0.05):
            self._publish_endpoints()
            for lane in self.lane_names:
                state = self._sync_state(lane)
                if syncs.get(lane) != state[:2]:
                    syncs[lane] = state[:2]
                    self.recorder.emit("sync", lane, state=state[0], live=state[1], head=self._lane_head.get(lane),
                                       live_version=state[2])

    def _sync_state(self, lane: str) -> tuple[str, str | None, str | None]:
        """(state, live revision, live version), as Argo CD judges it: the lane's desired manifests vs live."""
        assert self.env is not None
        live = self.env.observe(lane)
        with self._desired_lock:
            desired = self.desired.get(lane)
        revision = live.spec.revision if live.spec else None
        version = live.spec.version if live.spec else None
        if live.condition == "Failed":
            return "Degraded", revision, version
        if desired is None or desired.diff(live.spec):
            return "OutOfSync", revision, version
        return ("Synced" if live.complete else "Progressing"), revision, version

    def _publish_endpoints(self) -> None:
        assert self.env is not None
        with self._endpoints_lock:
            for lane in self.lane_names:
                endpoints = sorted([e.url, e.version] for e in self.env.endpoints(lane))
                if endpoints != self._endpoints.get(lane):
                    self._endpoints[lane] = endpoints
                    self._send_loadgen({"op": "endpoints", "lane": lane, "endpoints": endpoints})

    # --- traffic process ------------------------------------------------------------------------------
    def _start_loadgen(self) -> None:
        config = {"run": str(self.dir), "rate": self.scenario.rate, "t0": self.recorder.t0, "seed": self.scenario.seed,
                  "lanes": self.lane_names, "data": self.scenario.data}
        self._requests_file = open(self.dir / "requests.jsonl", "a", encoding="utf-8", buffering=1)
        self._loadgen = subprocess.Popen(
            [sys.executable, "-m", "mlopslab.traffic.loadgen", json.dumps(config)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(self.dir / "logs" / "loadgen.log", "wb"),
            start_new_session=True, text=True, bufsize=1)
        self._send_loadgen({"op": "pause"})  # traffic flows once the scenario clock starts
        self._spawn(self._read_loadgen, "loadgen-reader")

    def _read_loadgen(self) -> None:
        assert self._loadgen is not None and self._loadgen.stdout is not None
        self._read_records(self._loadgen.stdout)
        if not self._stop.is_set():  # the traffic died under a running scenario: the numbers stop meaning much
            code = self._loadgen.wait()
            self.recorder.emit("error", None, message=f"the load generator exited ({code}) during the run; "
                                                      f"see {self.dir / 'logs' / 'loadgen.log'}")
            self.status = "failed"
            self._stop.set()

    def _read_records(self, stream: Any) -> None:
        for line in stream:
            record = json.loads(line)
            if "s" in record:
                self.watch.add_sample(record)
            else:
                self.monitor.add_result(record)
                self.watch.add_result(record)
                if self._requests_file and not self._requests_file.closed:
                    self._requests_file.write(line)

    def _send_loadgen(self, message: dict[str, Any]) -> None:
        with self._loadgen_lock:
            proc = self._loadgen
            if proc is None or proc.poll() is not None or proc.stdin is None:
                return
            try:
                proc.stdin.write(json.dumps(message) + "\n")
                proc.stdin.flush()
            except (BrokenPipeError, ValueError):
                pass

    def _stop_loadgen(self) -> None:
        proc = self._loadgen
        if proc is None:
            return
        self._send_loadgen({"op": "stop"})
        try:
            proc.wait(timeout=4)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        with self._loadgen_lock:
            if proc.stdin:
                try:
                    proc.stdin.close()
                except OSError:
                    pass

    def child_pids(self) -> list[int]:
        pids = [self._loadgen.pid] if self._loadgen and self._loadgen.poll() is None else []
        driver = getattr(self.env, "driver", None)
        return pids + (driver.pids() if driver is not None and hasattr(driver, "pids") else [])


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """On the main thread, Ctrl-C and SIGTERM are held off (and dropped) until the block is done."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: caught.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _quiet_mlflow() -> None:
    """mlflow logs registrations and warns about environment inference on stderr; the lab reports instead."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    warnings.filterwarnings("ignore", module=r"mlflow.*")
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    for name in ("mlflow", "alembic", "urllib3"):
        logging.getLogger(name).setLevel(logging.ERROR)


def new_results_dir(scenario: Scenario, root: Path | None = None) -> Path:
    root = root or Path(os.environ.get("MLOPSLAB_RESULTS", "results"))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = root / f"{scenario.name}-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = root / f"{scenario.name}-{stamp}-{n}"
    return path
