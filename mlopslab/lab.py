"""The lab: runs one scenario on one clock — it wires the lanes, keeps the clock and plays the timeline.

What differs per environment kind is a `Platform` (mlopslab/platforms); a lane's delivery, desired state
and verdict are a `Lane` (mlopslab/lanes.py); the load generator is a `TrafficProcess`; the timeline is
played by mlopslab/play.py. The lab knows nothing about Textual: the headless CLI and the TUI consume the
same event stream (`Lab.recorder.subscribe`) and state (`Lab.state`, a RunState fed by those events).
Actions a person takes are methods, so keys, timeline entries and tests go through one path.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mlopslab import lanes, play, signals
from mlopslab.envs.base import Environment
from mlopslab.events import AppendLog, Recorder
from mlopslab.ml.data import DataSpec, DataStream
from mlopslab.ml.pipeline import PipelineHost, Pipelines
from mlopslab.ml.registry import Registry, quiet_mlflow
from mlopslab.monitor.timeline import RunState
from mlopslab.monitor.traffic import TrafficMonitor
from mlopslab.monitor.watch import DriftWatch
from mlopslab.platforms import Platform, PlatformError, RunContext, platform_for
from mlopslab.releases import Releases
from mlopslab.scenario import Scenario
from mlopslab.traffic.process import TrafficProcess
from mlopslab.traffic.router import Router

SETUP_TIMEOUT = 120.0


class LabError(RuntimeError):
    pass


class PrerequisiteError(LabError):
    """The scenario's environment is not usable here: nothing was started. The message says how to fix it."""


class Lab:
    def __init__(self, scenario: Scenario, results_dir: Path) -> None:
        self.scenario = scenario
        self.dir = results_dir.resolve()
        if (self.dir / "events.jsonl").exists():
            raise LabError(f"{self.dir} already holds a run; choose another results directory")
        (self.dir / "logs").mkdir(parents=True, exist_ok=True)
        self.run_id = self.dir.name
        self.recorder = Recorder(self.dir / "events.jsonl")
        self.recorder.on_write_error = self._on_storage_error
        self.storage_error: str | None = None  # the results stopped being writable (disk full, read-only)
        self.state = RunState()
        self._state_lock = threading.Lock()
        self.recorder.subscribe(self._update_state)
        self.lanes = {spec.name: lanes.Lane(spec) for spec in scenario.lanes}
        self.lane_names = list(self.lanes)
        self.monitor = TrafficMonitor(self.lane_names, self.recorder.emit)
        self.recorder.subscribe(self.monitor.on_event)
        self.stream = DataStream(DataSpec(**scenario.data), scenario.seed)
        self.registry = Registry(self.dir / "mlflow",
                                 on_busy=lambda **step: self.recorder.emit("registry_busy", None, **step))
        self.platform: Platform | None = None
        self.env: Environment | None = None
        self.repo: Any = None
        self.start_t: float | None = None
        self.status = "created"
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.traffic: TrafficProcess | None = None
        self.router: Router | None = None   # where each lane's requests go (traffic/router.py)
        self._requests_file: AppendLog | None = None
        self._torn_down = False
        # MLOps levels: an online drift monitor per lane, and each lane's retraining pipeline
        self.watch = DriftWatch(self.lane_names, self.stream.feature_names, self.recorder.emit,
                                label_delay=scenario.label_delay, config=scenario.drift_detection,
                                on_alarm=self._on_drift_alarm)
        self.recorder.subscribe(self.watch.on_event)
        self.releases = Releases(scenario, self.stream, self.registry, self.lanes, self.recorder.emit,
                                 self.scenario_time, self.watch.add_training_rows, self.run_id)
        self.pipelines = Pipelines(
            {lane.name: lane.level for lane in scenario.lanes},
            PipelineHost(emit=self.recorder.emit, now=self.recorder.now, labelled=self.watch.labelled,
                         drift_report=self.watch.drift_report,
                         deliver=lambda lane, version, message: self.releases.commit([lane], str(version), message),
                         champion_version=lambda lane: self.lanes[lane].desired.version,  # type: ignore[union-attr]
                         add_training_rows=self.watch.add_training_rows, stopped=self._stop.is_set,
                         registry=self.registry, model_name=scenario.model_name,
                         feature_names=self.stream.feature_names, train_lock=self.releases.train_lock,
                         run_id=self.run_id, defaults=dict(scenario.retrain)),
            self.dir)
        self.recorder.subscribe(self.pipelines.on_event)

    # --- state for consumers ------------------------------------------------------------------------
    def _update_state(self, event: dict[str, Any]) -> None:
        with self._state_lock:
            self.state.apply(event)
        if event["kind"] in ("fetch_failed", "fetch_recovered") and event.get("lane") in self.lanes:
            self.lanes[event["lane"]].repo_error = event.get("error", "") if event["kind"] == "fetch_failed" else None

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
        from mlopslab.gitops.delivery import hook
        from mlopslab.gitops.repo import EnvRepo

        self.check_prerequisites()
        self.platform = self._platform()
        quiet_mlflow()
        self.env = self.platform.make_environment()
        sc = self.scenario
        for lane in self.lanes.values():
            lane.credential = self.platform.credential(lane.spec)
        self.recorder.emit("lab_prepared", None, scenario={"name": sc.name, "description": sc.description,
                                                           "duration": sc.duration, "seed": sc.seed,
                                                           "environment": sc.environment.kind,
                                                           "rate": sc.rate, "path": str(sc.path or "")},
                           lanes=[{**asdict(lane.spec), "credential": lane.credential} for lane in self.lanes.values()],
                           results_dir=str(self.dir))
        self.status = "preparing"
        first = self.releases.train(note="initial version")
        self.pipelines.bootstrap()
        self.repo = self.releases.repo = EnvRepo(self.dir / "envrepo")
        for i, lane in enumerate(self.lanes.values()):
            lane.desired = lane.deployment(sc.model_name, first.version)
            lane.delivery = self.platform.delivery(lane.spec, self.repo.path, seed=sc.seed + i)
            if (webhook := hook(lane.delivery)) is not None:
                self.repo.add_hook(*webhook)
        self.releases.commit(self.lane_names, first.version, "deploy v1")
        for lane in self.lanes.values():
            lane.delivery.start()  # type: ignore[union-attr]
        self._start_traffic()
        self._spawn(lambda: lanes.watch(self.lanes, self.env, self.releases.desired_lock, self._stop, self.recorder.emit,
                                        self.router.endpoints), "watch-env")
        deadline = time.monotonic() + SETUP_TIMEOUT
        while not all(self.env.observe(name).complete for name in self.lane_names):
            if self._stop.is_set():
                raise LabError(self.storage_error) if self.storage_error else KeyboardInterrupt
            if time.monotonic() > deadline:
                raise LabError(f"the lanes did not become ready within {SETUP_TIMEOUT:.0f} s; see {self.dir / 'logs'}")
            time.sleep(0.05)
        self._publish_endpoints()  # traffic must not start before the generator knows the ready replicas

    def _platform(self) -> Platform:
        context = RunContext(self.scenario, self.dir, self.run_id, self.recorder.emit, self.recorder.now,
                             self.registry.serving_dir, self.registry.cache, self.registry.exists)
        try:
            platform = platform_for(self.scenario.environment.kind, context)
            platform.prepare()   # e.g. the Docker base image to build FROM (pulled once if need be)
        except PlatformError as exc:  # the message says how to fix it
            raise LabError(str(exc)) from None
        self.scenario = context.scenario
        return platform

    def check_prerequisites(self) -> None:
        """What `mlopslab doctor` checks for this scenario's environment, before anything is trained or started."""
        from mlopslab import doctor

        kind = self.scenario.environment.kind
        env = self.scenario.environment
        failed = doctor.problems(kind, env.base_image, env.cluster, env.runtime,
                                 tuple(lane.delivery for lane in self.scenario.lanes))
        if failed:
            self.recorder.emit("preflight_failed", None, environment=kind,
                               checks=[{"name": c.name, "detail": c.detail, "fix": c.fix} for c in failed])
            raise PrerequisiteError(doctor.explain(kind, failed))

    def start(self) -> None:
        """Starts the scenario clock: traffic flows and the timeline plays."""
        self.start_t = self.recorder.now()
        self.status = "running"
        self.recorder.emit("run_started", None, scenario=self.scenario.name)
        self._send_traffic({"op": "resume"})
        self._spawn(lambda: play.play(self, self.scenario, self.scenario_time, self._stop, self.recorder.emit),
                    "timeline")
        self._spawn(lambda: self._every(0.25, lambda: self.monitor.tick(self.recorder.now())), "monitor")
        self._spawn(lambda: self._every(1.0, lambda: self.watch.tick(self.recorder.now())), "drift-watch")

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

        with signals.held():
            steps = [self._stop.set, *([self.traffic.stop] if self.traffic else []),
                     *(lane.delivery.stop for lane in self.lanes.values() if lane.delivery is not None),
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
            except OSError as exc:  # a torn summary is worse than none
                for name in ("summary.json", "summary.md"):
                    with contextlib.suppress(OSError):
                        (self.dir / name).unlink(missing_ok=True)
                self.storage_error = self.storage_error or f"cannot write the summary: {exc}"
                self.recorder.emit("error", None, message=f"summary not written: {exc}")
            finally:
                if self._requests_file:
                    self._requests_file.close()
                self.recorder.close()

    def _on_storage_error(self, message: str) -> None:
        """The results cannot be written any more: what is not recorded is lost, so the run stops now,
        failed, with the reason. The files keep every whole line written before."""
        if self.storage_error is not None:
            return
        self.storage_error = message
        if self.status in ("preparing", "running", "created"):
            self.status = "failed"
        self.recorder.emit("error", None, message=f"{message}; the run stops")
        self._stop.set()

    def _join_threads(self) -> None:
        for thread in self._threads:
            thread.join(timeout=3)
        self.pipelines.join(timeout=3)

    # --- actions --------------------------------------------------------------------------------------
    def release(self, *, lanes: list[str] | None = None, note: str = "", overrides: dict[str, Any] | None = None) -> str:
        """A new model version: train, register, commit it to the env repo for `lanes` (default: all)."""
        return self.releases.release(lanes=lanes, note=note, overrides=overrides)

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
        self._send_traffic({"op": "pause"})
        self.recorder.emit("traffic_paused", None)

    def resume_traffic(self) -> None:
        self._send_traffic({"op": "resume"})
        self.recorder.emit("traffic_resumed", None)

    def toggle_traffic(self) -> None:
        paused = self.snapshot(lambda state: state.paused)
        (self.resume_traffic if paused else self.pause_traffic)()

    def inject_drift(self, kind: str, size: float, features: list[int] | None = None, ramp: float = 0.0) -> None:
        """Changes the data from now on (recorded with its known change point)."""
        from mlopslab.ml.data import Drift

        at = self.recorder.now()
        self.stream.add_drift(Drift(kind, self.scenario_time(), size, tuple(features) if features else None, ramp))
        self._send_traffic({"op": "drift", "kind": kind, "at": at, "size": size, "features": features, "ramp": ramp})
        # the drift's kind goes in `drift`: `kind` is the event's own kind
        self.recorder.emit("drift_injected", None, drift=kind, size=size, features=features, ramp=ramp, change_point=at)

    def retrain(self, lane: str) -> None:
        """A person starts the lane's retraining pipeline (the only way at MLOps level 0)."""
        play.targets(lane, self.lane_names)
        self.recorder.emit("human_action", lane, action="retrain")
        self.pipelines.lanes[lane].trigger("human")

    def pipeline_commit(self, lane: str, tests_pass: bool = True, note: str = "") -> bool:
        """A person commits a change of the lane's training pipeline code (at level 2 it goes through CI)."""
        play.targets(lane, self.lane_names)
        self.recorder.emit("human_action", lane, action="pipeline_commit", note=note)
        return self.pipelines.lanes[lane].commit_code(bool(tests_pass), str(note))

    def perform(self, event: Any) -> None:
        """Plays one timeline entry (mlopslab/play.py)."""
        play.perform(self, event)

    # --- internals ------------------------------------------------------------------------------------
    def _on_drift_alarm(self, lane: str, alarm: dict[str, Any]) -> None:
        if self.status == "running" and not self._stop.is_set():
            self.pipelines.on_alarm(lane, alarm)

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=self._guard, args=(target, name), name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _guard(self, target: Any, name: str) -> None:
        try:
            target()
        except Exception as exc:
            self.recorder.emit("error", None, message=f"{name}: {type(exc).__name__}: {exc}")

    def _every(self, period: float, tick: Any) -> None:
        while not self._stop.wait(period):
            tick()

    def _publish_endpoints(self) -> None:
        assert self.env is not None and self.router is not None
        for lane in self.lane_names:
            self.router.endpoints(lane, [(e.url, e.version) for e in self.env.endpoints(lane)])

    # --- traffic --------------------------------------------------------------------------------------
    def _start_traffic(self) -> None:
        config = {"run": str(self.dir), "rate": self.scenario.rate, "t0": self.recorder.t0, "seed": self.scenario.seed,
                  "lanes": self.lane_names, "data": self.scenario.data}
        self._requests_file = AppendLog(self.dir / "requests.jsonl")
        self._requests_file.on_error = self._on_storage_error
        self.traffic = TrafficProcess(config, self.dir / "logs" / "loadgen.log", self.watch.add_sample,
                                      self._on_result)
        self.router = Router(self.traffic.send)
        self.traffic.start()
        self._spawn(self._read_traffic, "loadgen-reader")

    def _on_result(self, record: dict[str, Any], line: str) -> None:
        self.monitor.add_result(record)
        if not record.get("m"):  # a mirrored copy's prediction reached no user
            self.watch.add_result(record)
        if self._requests_file:
            self._requests_file.write(line)

    def _read_traffic(self) -> None:
        assert self.traffic is not None
        code = self.traffic.read()
        if not self._stop.is_set():  # the traffic died under a running scenario: the numbers stop meaning much
            self.recorder.emit("error", None, message=f"the load generator exited ({code}) during the run; "
                                                      f"see {self.dir / 'logs' / 'loadgen.log'}")
            self.status = "failed"
            self._stop.set()

    def _send_traffic(self, message: dict[str, Any]) -> None:
        if self.traffic is not None:
            self.traffic.send(message)

    def child_pids(self) -> list[int]:
        pid = self.traffic.pid if self.traffic is not None else None
        return ([pid] if pid else []) + (self.platform.child_pids() if self.platform is not None else [])


def new_results_dir(scenario: Scenario, root: Path | None = None) -> Path:
    root = root or Path(os.environ.get("MLOPSLAB_RESULTS", "results"))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = root / f"{scenario.name}-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = root / f"{scenario.name}-{stamp}-{n}"
    return path
