"""The retraining pipeline of one lane, and the MLOps level that decides who starts it.

- Level 0: a person retrains (`Lab.retrain(lane)`, timeline `retrain`); a drift alarm only informs.
- Level 1: a drift alarm starts the pipeline (continuous training).
- Level 2: level 1, and the pipeline's own code changes go through CI: `commit_code` commits
  `pipelines/<lane>/{train.py,test_train.py}` to a git repository of pipelines, runs the committed test
  file in a fresh Python process, and only when it passes does that commit become the code the lane
  retrains with (`pipeline_accepted`; else `pipeline_rejected` and the old code stays).

One run of the pipeline: wait for labelled recent data (rows whose labels have arrived, from the drift
monitor) → train a challenger with the pipeline code's `prepare` and `PARAMS` → validate it against the
lane's champion on the same recent holdout → register it in MLflow (alias `challenger-<lane>`, then
`champion-<lane>` when promoted) → commit the new version to the env repo for this lane only → the lane's
delivery (push or pull) rolls it out. Events, all with the lane, the reason ("alarm" | "human") and a
retrain id: retrain_started, retrain_trained, retrain_validated {challenger_acc, champion_acc, promoted},
retrain_registered, retrain_committed {sha}, retrain_delivered, and retrain_done with the timings
(detect, wait_labels, train, validate, deliver, total) and the human actions it needed; retrain_failed
when it cannot run; retrain_skipped when a level-0 lane sees an alarm.

The lab is reached through a `PipelineHost` of callables, so this module does not import the lab. The
pipeline code itself (built in, or committed and tested at level 2) is ml/pipeline_code.py.
"""

from __future__ import annotations

import runpy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlopslab.eventtypes import Event, RolloutFailed, StrategyDone, Traffic100, decode
from mlopslab.ml.pipeline_code import (
    PREPARE_BROKEN,
    PREPARE_OK,
    TEST_CODE,
    TRAIN_CODE,
    PipelineCode,
    PipelineRepo,
    default_code,
    exec_source,
    failed_test,
)
from mlopslab.ml.registry import CHALLENGER, CHAMPION, Registry, TrainParams
from mlopslab.serving import artifact

LEVELS = {0: "manual retraining", 1: "continuous training", 2: "CI/CD of the training pipeline"}
MAX_WAIT = 60.0      # seconds a pipeline waits for enough labelled rows before it gives up

@dataclass
class PipelineHost:
    """What the pipeline needs from the lab."""

    emit: Callable[..., Any]
    now: Callable[[], float]                                        # run clock
    labelled: Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]]  # (now, since, last) -> X, y, t
    drift_report: Callable[[str], dict[str, Any] | None]
    champion_version: Callable[[str], str]
    deliver: Callable[[str, str, str], str]                         # (lane, version, message) -> sha
    add_training_rows: Callable[[str, np.ndarray], None]
    stopped: Callable[[], bool]
    registry: Registry
    model_name: str
    feature_names: list[str]
    train_lock: Any
    run_id: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)


class LanePipeline:
    """The retraining pipeline of one lane at one MLOps level."""

    def __init__(self, lane: str, level: int, host: PipelineHost, repo: PipelineRepo | None, work: Path) -> None:
        self.lane = lane
        self.level = level
        self.host = host
        self.repo = repo
        self.work = work
        self.code = default_code(lane, **host.defaults)
        self.history: list[PipelineCode] = [self.code]
        self._busy = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pending: dict[str, dict[str, Any]] = {}   # version -> retrain record awaiting delivery
        self._count = 0

    # --- pipeline code (level 2: through CI) -----------------------------------------------------------
    def bootstrap(self) -> None:
        """Level 2: the first pipeline version is committed and tested like any other."""
        if self.level >= 2 and self.repo is not None:
            self.commit_code(True, "initial pipeline", initial=True)

    def commit_code(self, tests_pass: bool = True, note: str = "", *, initial: bool = False) -> bool:
        """Commits a new version of the pipeline code; at level 2 it becomes current only if its tests pass.
        `tests_pass: false` commits a change with a bug (labels inverted) that the tests catch."""
        emit, lane = self.host.emit, self.lane
        C = self.code.params.get("C", 1.0) if initial else round(float(self.code.params.get("C", 1.0)) * 0.8, 4)
        source = TRAIN_CODE.format(lane=lane, C=C, min_rows=int(self.code.params.get("min_rows", 300)),
                                   max_rows=int(self.code.params.get("max_rows", 2000)),
                                   prepare_doc="clip outliers" if tests_pass else "clip outliers (refactored)",
                                   prepare_body=PREPARE_OK if tests_pass else PREPARE_BROKEN)
        files = {"train.py": source, "test_train.py": TEST_CODE.format(lane=lane)}
        if self.repo is None:  # levels 0-1 keep no pipeline repo: the change is taken as it is, untested
            namespace = exec_source(source)
            self._accept(PipelineCode(f"local-{len(self.history)}", dict(namespace["PARAMS"]), namespace["prepare"],
                                      note=note), tested=False, sha=None, duration=0.0)
            return True
        sha = self.repo.commit(lane, files, f"{lane}: {note or 'pipeline change'}")
        emit("pipeline_committed", lane, sha=sha, note=note, level=self.level, initial=initial)
        ok, output, duration = self.repo.run_tests(sha, lane, self.work)
        if not ok:
            emit("pipeline_rejected", lane, sha=sha, failed=failed_test(output), note=note, output=output,
                 duration=round(duration, 3), kept_version=self.code.version)
            return False
        namespace = runpy.run_path(str(self.repo.export(sha, lane, self.work / sha[:12]) / "train.py"))
        self._accept(PipelineCode(sha[:7], dict(namespace["PARAMS"]), namespace["prepare"], sha, note),
                     tested=True, sha=sha, duration=duration)
        return True

    def _accept(self, code: PipelineCode, *, tested: bool, sha: str | None, duration: float) -> None:
        previous = self.code.version
        self.code = code
        self.history.append(code)
        self.host.emit("pipeline_accepted", self.lane, sha=sha, version=code.version, previous=previous,
                       tested=tested, note=code.note, params=code.params, duration=round(duration, 3))

    # --- retraining ------------------------------------------------------------------------------------
    def trigger(self, reason: str, alarm: dict[str, Any] | None = None) -> bool:
        """Starts one run in its own thread; False (and a `retrain_skipped` event) if one is under way."""
        if not self._busy.acquire(blocking=False):
            self.host.emit("retrain_skipped", self.lane, reason=reason, why="a retraining run is under way")
            return False
        self._count += 1
        rid = f"{self.lane}-{self._count}"
        self._thread = threading.Thread(target=self._run_guarded, args=(rid, reason, alarm),
                                        name=f"retrain-{self.lane}", daemon=True)
        self._thread.start()
        return True

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _run_guarded(self, rid: str, reason: str, alarm: dict[str, Any] | None) -> None:
        try:
            self._run(rid, reason, alarm)
        except Exception as exc:
            self.host.emit("retrain_failed", self.lane, retrain=rid, reason=reason,
                           error=f"{type(exc).__name__}: {exc}")
        finally:
            self._busy.release()

    def _run(self, rid: str, reason: str, alarm: dict[str, Any] | None) -> None:
        host, lane, code = self.host, self.lane, self.code
        emit = host.emit
        params = code.params
        started = host.now()
        record: dict[str, Any] = {"retrain": rid, "lane": lane, "level": self.level, "reason": reason,
                                  "pipeline_version": code.version, "started": started,
                                  "human_actions": 1 if reason == "human" else 0}
        if alarm is not None:
            record["alarm_at"] = alarm.get("at")
            if alarm.get("change_point") is not None and alarm.get("false_alarm") is not True:
                record["change_point"] = alarm["change_point"]
        champion = host.champion_version(lane)
        emit("retrain_started", lane, retrain=rid, reason=reason, level=self.level, pipeline_version=code.version,
             champion=champion, detector=(alarm or {}).get("detector"))

        # 1. data: recent rows whose labels have arrived (since the estimated change, after an alarm)
        min_rows, max_rows = int(params.get("min_rows", 300)), int(params.get("max_rows", 2000))
        since = None
        if alarm is not None:
            since = alarm.get("estimated_change", alarm.get("at"))
        deadline = time.monotonic() + MAX_WAIT
        while True:
            X, y, t = host.labelled(host.now(), since, max_rows)
            if len(X) >= min_rows or host.stopped():
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if host.stopped():
            emit("retrain_failed", lane, retrain=rid, reason=reason, error="the run stopped")
            return
        if since is None:  # a person asked: the most recent labelled rows
            X, y, t = X[-min_rows:], y[-min_rows:], t[-min_rows:]
        if len(X) < max(50, min_rows // 3) or len(np.unique(y)) < 2:
            emit("retrain_failed", lane, retrain=rid, reason=reason, error=f"only {len(X)} labelled rows")
            return
        data_ready = host.now()
        n_hold = max(20, int(round(len(X) * float(params.get("holdout", 0.25)))))
        X_train, y_train, X_hold, y_hold = X[:-n_hold], y[:-n_hold], X[-n_hold:], y[-n_hold:]
        X_fit, y_fit = code.prepare(X_train, y_train)
        window = {"rows": int(len(X)), "train_rows": int(len(X_train)), "holdout_rows": int(n_hold),
                  "t_from": round(float(t[0]), 4), "t_to": round(float(t[-1]), 4), "since": since,
                  "label_delay_respected": True, "source": "request rows whose labels had arrived"}

        # 2. train + register the challenger (MLflow run: params, metrics, data window, drift report)
        drift = host.drift_report(lane) or {}
        tags = {"mlopslab.run": host.run_id, "mlopslab.lane": lane, "mlopslab.level": str(self.level),
                "mlopslab.reason": reason, "mlopslab.pipeline_version": code.version, "mlopslab.retrain": rid,
                "note": f"retrain {rid} ({reason})"}
        with host.train_lock:
            mv = host.registry.train_and_register(
                host.model_name, np.asarray(X_fit), np.asarray(y_fit), X_hold, y_hold, host.feature_names,
                TrainParams(C=float(params.get("C", 1.0)), max_iter=int(params.get("max_iter", 200))), tags=tags,
                extra_artifacts={"data_window.json": window, "drift_report.json": drift,
                                 "alarm.json": alarm or {}, "pipeline.json": {"version": code.version,
                                                                              "sha": code.sha, "params": params}})
        trained = host.now()
        emit("retrain_trained", lane, retrain=rid, reason=reason, version=mv.version, run_id=mv.run_id,
             rows=window["rows"], t_from=window["t_from"], t_to=window["t_to"])
        emit("model_registered", lane, model=mv.name, version=mv.version, run_id=mv.run_id,
             accuracy=round(mv.accuracy, 4), uri=mv.uri, note=f"retrain {rid} ({reason})", params=mv.params)

        # 3. validate against the champion on the same holdout
        champion_model = artifact.load(host.registry.serving_dir(host.model_name, champion))
        champion_acc = float((champion_model.predict(X_hold) == y_hold).mean())
        challenger_acc = float(mv.accuracy)
        promoted = challenger_acc > champion_acc
        client = host.registry.client
        client.log_metric(mv.run_id, "holdout_accuracy_champion", champion_acc)
        client.log_metric(mv.run_id, "holdout_accuracy_challenger", challenger_acc)
        for key, value in (("window_rows", window["rows"]), ("window_t_from", window["t_from"]),
                           ("window_t_to", window["t_to"]), ("champion_version", champion)):
            client.log_param(mv.run_id, key, value)
        client.set_tag(mv.run_id, "mlopslab.promoted", str(promoted).lower())
        validated = host.now()
        emit("retrain_validated", lane, retrain=rid, reason=reason, version=mv.version, champion=champion,
             challenger_acc=round(challenger_acc, 4), champion_acc=round(champion_acc, 4), promoted=promoted,
             holdout=n_hold)
        host.registry.set_alias(mv.name, f"{CHALLENGER}-{lane}", mv.version)
        if promoted:
            host.registry.set_alias(mv.name, f"{CHAMPION}-{lane}", mv.version)
        emit("retrain_registered", lane, retrain=rid, reason=reason, version=mv.version,
             aliases=[f"{CHALLENGER}-{lane}"] + ([f"{CHAMPION}-{lane}"] if promoted else []))
        record.update(data_ready=data_ready, trained=trained, validated=validated, version=mv.version,
                      promoted=promoted, challenger_acc=challenger_acc, champion_acc=champion_acc)
        if not promoted:
            self._finish(record, outcome="champion kept")
            return

        # 4. commit to the env repo for this lane only; the lane's delivery takes it from there
        if host.stopped():
            emit("retrain_failed", lane, retrain=rid, reason=reason, version=mv.version, error="the run stopped")
            return
        host.add_training_rows(mv.version, np.asarray(X_train))
        self._pending[mv.version] = record
        sha = host.deliver(lane, mv.version, f"retrain {mv.uri} for {lane} ({reason}, level {self.level})")
        record.update(committed=host.now(), sha=sha)
        emit("retrain_committed", lane, retrain=rid, reason=reason, version=mv.version, sha=sha)

    def on_event(self, event: Event) -> None:
        """The lane's delivery finished rolling a retrained version out, or its strategy rolled it back (a
        canary's gate, a person's abort): the retrain is done."""
        if event.lane != self.lane or not isinstance(event, (Traffic100, RolloutFailed, StrategyDone)):
            return
        if isinstance(event, StrategyDone) and event.decision not in ("rolled_back", "failed"):
            return   # promoted: traffic_100 ends it; undecided: the run ended during the change
        record = self._pending.pop(str(event.version), None)
        if record is None:
            return
        if isinstance(event, RolloutFailed):
            self._finish(record, outcome=f"rollout failed: {event.reason}")
            return
        if isinstance(event, StrategyDone):
            self._finish(record, outcome=f"rolled back by the lane's {event.strategy} ({event.by})")
            return
        record["delivered"] = float(event.get("at", event.t))
        self.host.emit("retrain_delivered", self.lane, retrain=record["retrain"], reason=record["reason"],
                       version=record["version"], sha=record.get("sha"))
        self._finish(record, outcome="delivered")

    def _finish(self, record: dict[str, Any], outcome: str) -> None:
        def span(a: str, b: str) -> float | None:
            return round(record[b] - record[a], 3) if a in record and b in record else None

        record["outcome"] = outcome
        timings = {"detect": span("change_point", "alarm_at"), "wait_labels": span("started", "data_ready"),
                   "train": span("data_ready", "trained"), "validate": span("trained", "validated"),
                   "deliver": span("committed", "delivered"),
                   "total": span("change_point" if "change_point" in record else "started", "delivered")}
        record["timings"] = timings
        self.host.emit("retrain_done", self.lane, retrain=record["retrain"], reason=record["reason"],
                       level=self.level, outcome=outcome, version=record.get("version"),
                       promoted=record.get("promoted"), pipeline_version=record["pipeline_version"],
                       human_actions=record["human_actions"], timings=timings)


class Pipelines:
    """Every lane's pipeline; routes drift alarms by MLOps level."""

    def __init__(self, levels: dict[str, int], host: PipelineHost, work: Path) -> None:
        self.host = host
        self.repo = PipelineRepo(work / "pipelines") if any(level >= 2 for level in levels.values()) else None
        self.lanes = {lane: LanePipeline(lane, level, host, self.repo if level >= 2 else None,
                                         work / "pipelines-ci" / lane)
                      for lane, level in levels.items()}

    def bootstrap(self) -> None:
        for pipeline in self.lanes.values():
            pipeline.bootstrap()

    def on_alarm(self, lane: str, alarm: dict[str, Any]) -> None:
        pipeline = self.lanes.get(lane)
        if pipeline is None:
            return
        if pipeline.level == 0:
            self.host.emit("retrain_skipped", lane, reason="alarm", level=0,
                           why="level 0: retraining waits for a person")
            return
        pipeline.trigger("alarm", alarm)

    def on_event(self, event: Event | dict[str, Any]) -> None:
        """Recorder listener: a lane's rollout of a retrained version ended (100 % of traffic, failed, or
        rolled back by its strategy)."""
        match e := decode(event):
            case Traffic100(lane=str(lane)) | RolloutFailed(lane=str(lane)) | StrategyDone(lane=str(lane)) \
                    if lane in self.lanes:
                self.lanes[lane].on_event(e)

    def join(self, timeout: float = 5.0) -> None:
        for pipeline in self.lanes.values():
            pipeline.join(timeout)
