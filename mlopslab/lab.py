"""The lab: runs one scenario on one clock — it wires the lanes, keeps the clock and plays the timeline.

What differs per environment kind is a `Platform` (mlopslab/platforms); a lane's delivery, desired state
and verdict are a `Lane` (mlopslab/lanes.py); the load generator is a `TrafficProcess`; the timeline is
played by mlopslab/play.py. The lab knows nothing about Textual: the headless CLI subscribes to its typed
events (`Lab.recorder.subscribe`); the TUI runs it as a child `mlopslab run` and follows events.jsonl.
Actions a person takes are methods (mlopslab/actions.py; reached from the TUI through mlopslab/control.py),
so keys, timeline entries and tests go through one path.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from mlopslab import lanes, play, preflight, signals
from mlopslab.actions import LabActions
from mlopslab.envs.base import Environment
from mlopslab.events import Recorder
from mlopslab.eventtypes import Event
from mlopslab.ml.data import DataSpec, DataStream
from mlopslab.ml.registry import Registry, quiet_mlflow
from mlopslab.monitor.timeline import RunState
from mlopslab.monitor.traffic import TrafficMonitor
from mlopslab.monitor.watch import DriftWatch
from mlopslab.platforms import Platform, RunContext
from mlopslab.preflight import LabError, PrerequisiteError
from mlopslab.releases import Releases
from mlopslab.rundir import new_results_dir, write_summary
from mlopslab.runtraffic import RunTraffic
from mlopslab.scenario import Scenario
from mlopslab.strategies.controller import Rollouts, group_emit
from mlopslab.traffic.process import TrafficProcess
from mlopslab.traffic.router import Router
from mlopslab.workers import Workers

__all__ = ["Lab", "LabError", "PrerequisiteError", "new_results_dir"]
SETUP_TIMEOUT = 120.0


class Lab(LabActions):
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
        self.workers = Workers(self._stop, self.recorder.emit)
        self.load: RunTraffic | None = None
        self.traffic: TrafficProcess | None = None
        self.router: Router | None = None   # where each lane's requests go (traffic/router.py)
        self._torn_down = False
        # MLOps levels: an online drift monitor per lane, and each lane's retraining pipeline
        self.watch = DriftWatch(self.lane_names, self.stream.feature_names, self.recorder.emit,
                                label_delay=scenario.label_delay, config=scenario.drift_detection,
                                on_alarm=self._on_drift_alarm)
        self.recorder.subscribe(self.watch.on_event)
        self.releases = Releases(scenario, self.stream, self.registry, self.lanes, self.recorder.emit,
                                 self.scenario_time, self.watch.add_training_rows, self.run_id)
        self.pipelines = self.releases.pipelines(self.watch, self.recorder.now, self._stop.is_set, self.dir)
        self.recorder.subscribe(self.pipelines.on_event)

    # --- state for consumers ------------------------------------------------------------------------
    def _update_state(self, event: Event) -> None:
        with self._state_lock:
            self.state.apply(event)
        lanes.on_event(self.lanes, event)

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
        context = RunContext(self.scenario, self.dir, self.run_id, group_emit(self.recorder.emit), self.recorder.now,
                             self.registry.serving_dir, self.registry.cache, self.registry.exists)
        self.platform, self.scenario = preflight.open_platform(context), context.scenario
        quiet_mlflow()
        self.env = self.platform.env = Rollouts(   # runs each lane's strategy (mlopslab/strategies)
            self.platform.make_environment(), self.recorder.emit, self.recorder.now, self.scenario.label_delay,
            self.lane_names, self.recorder.subscribe)
        sc = self.scenario
        for lane in self.lanes.values():
            lane.credential = self.platform.credential(lane.spec)
        self.recorder.emit("lab_prepared", None, **lanes.prepared(sc, self.lanes, self.dir))
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
        self.workers.spawn(lambda: lanes.watch(self.lanes, self.env, self.releases.desired_lock, self._stop, self.recorder.emit,
                                        self.router.endpoints), "watch-env")
        lanes.wait_ready(self.env, self.lane_names, self._stop, SETUP_TIMEOUT, self.dir / "logs",
                         lambda: self.storage_error)
        for name in self.lane_names:  # traffic must not start before the generator knows the ready replicas
            lanes.publish_endpoints(self.env, name, self.router.endpoints)  # type: ignore[union-attr]

    def check_prerequisites(self) -> None:
        """What `mlopslab doctor` checks for this scenario's environment, before anything is trained or started."""
        preflight.check_prerequisites(self.scenario, self.recorder.emit)

    def start(self) -> None:
        """Starts the scenario clock: traffic flows and the timeline plays."""
        self.start_t = self.recorder.now()
        self.status = "running"
        self.recorder.emit("run_started", None, scenario=self.scenario.name)
        self._send_traffic({"op": "resume"})
        self.workers.spawn(lambda: play.play(self, self.scenario, self.scenario_time, self._stop, self.recorder.emit),
                    "timeline")
        self.workers.every(0.25, lambda: self.monitor.tick(self.recorder.now()), "monitor")
        self.workers.every(1.0, lambda: self.watch.tick(self.recorder.now()), "drift-watch")

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
                if (failed := write_summary(self.dir, self.snapshot)) is not None:
                    self.storage_error = self.storage_error or f"cannot write the summary: {failed}"
                    self.recorder.emit("error", None, message=f"summary not written: {failed}")
            finally:
                if self.load is not None:
                    self.load.close()
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
        self.workers.join(timeout=3)
        self.pipelines.join(timeout=3)

    # --- internals ------------------------------------------------------------------------------------
    def _on_drift_alarm(self, lane: str, alarm: dict[str, Any]) -> None:
        if self.status == "running" and not self._stop.is_set():
            self.pipelines.on_alarm(lane, alarm)

    # --- traffic --------------------------------------------------------------------------------------
    def _start_traffic(self) -> None:
        self.load = RunTraffic(self.dir, self.scenario, self.recorder.t0, self.monitor, self.watch,
                               self._on_storage_error, tap=self.env)
        self.traffic, self.router = self.load.process, self.load.router
        self.load.start()
        self.workers.spawn(lambda: self.load.read(self._stop.is_set, self._traffic_died), "loadgen-reader")

    def _traffic_died(self, message: str) -> None:
        """The traffic died under a running scenario: the numbers stop meaning much."""
        self.recorder.emit("error", None, message=message)
        self.status = "failed"
        self._stop.set()

    def child_pids(self) -> list[int]:
        pid = self.traffic.pid if self.traffic is not None else None
        return ([pid] if pid else []) + (self.platform.child_pids() if self.platform is not None else [])

