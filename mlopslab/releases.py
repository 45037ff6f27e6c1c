"""Model releases: train on the data as it is now, register in MLflow as the champion, and commit the
lanes' desired state to the env repo — the one path for the first deployment, a person's release, a
timeline entry and a pipeline's retrained version."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from mlopslab.lanes import Lane
from mlopslab.ml.data import DataStream
from mlopslab.ml.pipeline import PipelineHost, Pipelines
from mlopslab.ml.registry import CHAMPION, ModelVersion, Registry, TrainParams
from mlopslab.monitor.watch import DriftWatch
from mlopslab.scenario import Scenario


class Releases:
    def __init__(self, scenario: Scenario, stream: DataStream, registry: Registry, lanes: dict[str, Lane],
                 emit: Callable[..., Any], scenario_time: Callable[[], float],
                 on_trained: Callable[[str, Any], None], run_id: str) -> None:
        self.scenario, self.stream, self.registry, self.lanes = scenario, stream, registry, lanes
        self.emit, self.scenario_time, self.on_trained, self.run_id = emit, scenario_time, on_trained, run_id
        self.repo: Any = None  # the env repo, once made
        self.train_lock = threading.Lock()    # one training at a time (the data stream's sampler is shared)
        self.desired_lock = threading.Lock()  # every lane's desired state and head, changed with its commit

    def train(self, *, note: str = "", overrides: dict[str, Any] | None = None,
              at: float | None = None) -> ModelVersion:
        """Trains a version on data as it is now, registers it, makes it the champion."""
        params = {**self.scenario.train, **(overrides or {})}
        corrupt = float(params.pop("corrupt_labels", 0.0) or 0.0)
        n = int(params.pop("n_samples", None) or self.scenario.data.get("n_samples", 4000))
        t = self.scenario_time() if at is None else at
        with self.train_lock:
            X, y = self.stream.sample(n, t)
            X_val, y_val = self.stream.sample(max(500, n // 4), t)
            if corrupt:   # a broken labelling job: this share of the positive training labels reads negative
                y = y.copy()
                flip = (y == 1) & (np.random.default_rng([self.scenario.seed, len(y)]).random(len(y)) < corrupt)
                y[flip] = 0
            mv = self.registry.train_and_register(
                self.scenario.model_name, X, y, X_val, y_val, self.stream.feature_names, TrainParams(**params),
                tags={"mlopslab.run": self.run_id, "note": note})
            self.registry.set_alias(mv.name, CHAMPION, mv.version)
            self.on_trained(mv.version, X)  # e.g. the drift reference of lanes that will serve it
        self.emit("model_registered", None, model=mv.name, version=mv.version, run_id=mv.run_id,
                  accuracy=round(mv.accuracy, 4), uri=mv.uri, note=note,
                  params={**mv.params, **({"corrupt_labels": corrupt} if corrupt else {})})
        return mv

    def commit(self, lanes: list[str], version: str, message: str, **changes: Any) -> str:
        """Sets `version` (and other DeploymentSpec fields in `changes`, e.g. warmup) as the lanes' desired
        state and commits it, in one step (releases and retrains commit from different threads)."""
        changes.setdefault("latency_ms", 0.0)   # a slowed server is one release's property, not the lane's
        with self.desired_lock:
            chosen = [self.lanes[name] for name in lanes]
            for lane in chosen:
                lane.desired = replace(lane.desired, version=str(version), **changes)  # type: ignore[type-var]
                lane.head = ""

            def on_commit(sha: str) -> None:  # recorded before any webhook leaves
                for lane in chosen:
                    lane.head = sha
                self.emit("commit", None, sha=sha, version=version, message=message, lanes=lanes)

            return self.repo.commit_lanes([lane.desired for lane in chosen], message, notify=on_commit)

    def release(self, *, lanes: list[str] | None = None, note: str = "", overrides: dict[str, Any] | None = None) -> str:
        """A new model version: train, register, commit it to the env repo for `lanes` (default: all)."""
        overrides = dict(overrides or {})
        latency = float(overrides.pop("latency_ms", 0.0) or 0.0)   # serve this version that much slower
        mv = self.train(note=note, overrides=overrides)
        return self.commit(lanes or list(self.lanes), mv.version, f"release {mv.uri}" + (f": {note}" if note else "")
                           + (f" (server slowed by {latency:g} ms)" if latency else ""), latency_ms=latency)

    def pipelines(self, watch: DriftWatch, now: Callable[[], float], stopped: Callable[[], bool],
                  work: Path) -> Pipelines:
        """Each lane's retraining pipeline (MLOps levels), delivering what it trains through `commit`."""
        sc = self.scenario
        return Pipelines(
            {lane.name: lane.level for lane in sc.lanes},
            PipelineHost(emit=self.emit, now=now, labelled=watch.labelled, drift_report=watch.drift_report,
                         deliver=lambda lane, version, message: self.commit([lane], str(version), message),
                         champion_version=lambda lane: self.lanes[lane].desired.version,  # type: ignore[union-attr]
                         add_training_rows=watch.add_training_rows, stopped=stopped, registry=self.registry,
                         model_name=sc.model_name, feature_names=self.stream.feature_names,
                         train_lock=self.train_lock, run_id=self.run_id, defaults=dict(sc.retrain)),
            work)
