"""What a person does to a running lab — release a model, edit live state by hand, kill a replica,
promote or abort a progressive rollout, pause traffic, inject drift, start a retraining, commit a
pipeline change — each recorded as an event. The timeline (play.py), the TUI's keys (over control.py) and
tests all call these methods on the `Lab`, so every way in goes through one path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mlopslab import play
from mlopslab.envs.base import Environment
from mlopslab.events import Recorder
from mlopslab.ml.data import DataStream
from mlopslab.ml.registry import Registry
from mlopslab.preflight import LabError
from mlopslab.releases import Releases
from mlopslab.scenario import Scenario
from mlopslab.traffic.process import TrafficProcess


class LabActions:
    """Mixed into `Lab` (lab.py), whose run state these read: declared here, set up there."""

    scenario: Scenario
    recorder: Recorder
    registry: Registry
    releases: Releases
    stream: DataStream
    env: Environment | None
    traffic: TrafficProcess | None
    lane_names: list[str]
    pipelines: Any
    scenario_time: Callable[[], float]
    snapshot: Callable[[Callable[[Any], Any]], Any]

    # --- the actions --------------------------------------------------------------------------------------
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

    def promote(self, lane: str) -> None:   # kubectl argo rollouts promote: past a pause, or all the way
        self.env.command(lane, "promote")  # type: ignore[union-attr]

    def abort(self, lane: str) -> None:     # the candidate loses its traffic and is scaled to zero
        self.env.command(lane, "abort")  # type: ignore[union-attr]

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

    def _send_traffic(self, message: dict[str, Any]) -> None:
        if self.traffic is not None:
            self.traffic.send(message)
