"""The ML loop's events: models registered, accuracy, drift (injected, scored, alarmed), retrains and
changes of the training pipeline (MLOps level 2)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlopslab.eventtypes.base import Event, kind


@kind("model_registered")
class ModelRegistered(Event):
    """A lane's own retrain carries its lane."""

    model: str | None = None
    version: int | str | None = None
    run_id: str | None = None
    accuracy: float | None = None
    uri: str | None = None
    note: str | None = None
    params: dict[str, Any] | None = None


@kind("accuracy")
class Accuracy(Event):
    """From ground truth once it has arrived."""

    window: float | None = None
    value: float | None = None
    n: int | None = None
    label_delay: float | None = None


@kind("drift_injected")
class DriftInjected(Event):
    drift: str | None = None
    size: float | None = None
    features: list[int] | None = None
    ramp: float | None = None
    change_point: float | None = None


@kind("drift_score")
class DriftScore(Event):
    score: float | None = None
    method: str | None = None
    dataset_drift: bool | None = None
    n_window: int | None = None
    n_reference: int | None = None
    features: dict[str, Any] | None = None


@kind("drift_alarm")
class DriftAlarm(Event):
    detector: str | None = None                    # "cusum" | "dataset_drift" | ...
    statistic: str | None = None
    value: float | None = None
    sample: int | None = None
    at: float | None = None
    first: bool | None = None
    reference_version: int | str | None = None
    estimated_change: float | None = None
    drifted_features: list[Any] | None = None
    h: float | None = None
    k: float | None = None
    arl0: float | None = None
    change_point: float | None = None
    delay_samples: int | None = None
    delay_seconds: float | None = None
    delta: float | None = None
    floor_samples: float | None = None
    false_alarm: bool | None = None


@dataclass(frozen=True, kw_only=True)
class Retrain(Event):
    """What every phase of one retrain carries."""

    retrain: str | None = None                     # the retrain's id
    reason: str | None = None                      # "alarm" | "human" | ...
    version: int | str | None = None


@kind("retrain_started")
class RetrainStarted(Retrain):
    level: int | None = None
    pipeline_version: str | None = None
    champion: int | str | None = None
    detector: str | None = None


@kind("retrain_trained")
class RetrainTrained(Retrain):
    run_id: str | None = None
    rows: int | None = None
    t_from: float | None = None
    t_to: float | None = None


@kind("retrain_validated")
class RetrainValidated(Retrain):
    champion: int | str | None = None
    challenger_acc: float | None = None
    champion_acc: float | None = None
    promoted: bool | None = None
    holdout: int | None = None


@kind("retrain_registered")
class RetrainRegistered(Retrain):
    aliases: list[str] | None = None


@kind("retrain_committed")
class RetrainCommitted(Retrain):
    sha: str | None = None


@kind("retrain_delivered")
class RetrainDelivered(Retrain):
    sha: str | None = None


@kind("retrain_done")
class RetrainDone(Retrain):
    level: int | None = None
    outcome: str | None = None
    promoted: bool | None = None
    pipeline_version: str | None = None
    human_actions: int | None = None
    timings: dict[str, Any] | None = None


@kind("retrain_failed")
class RetrainFailed(Retrain):
    error: str | None = None


@kind("retrain_skipped")
class RetrainSkipped(Retrain):
    level: int | None = None
    why: str | None = None


@kind("pipeline_committed")
class PipelineCommitted(Event):
    """A change of the training pipeline's code, to be tested by its CI."""

    sha: str | None = None
    note: str | None = None
    level: int | None = None
    initial: bool | None = None


@kind("pipeline_accepted")
class PipelineAccepted(Event):
    sha: str | None = None
    version: str | None = None
    previous: str | None = None
    tested: bool | None = None
    note: str | None = None
    params: dict[str, Any] | None = None
    duration: float | None = None


@kind("pipeline_rejected")
class PipelineRejected(Event):
    sha: str | None = None
    failed: str | None = None                      # "test_x: why"
    note: str | None = None
    output: str | None = None
    duration: float | None = None
    kept_version: str | None = None
