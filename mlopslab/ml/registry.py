"""Models in MLflow: train a classifier, track the run, register the version, export it for serving.

The tracking and registry store is a sqlite database inside the run directory; artifacts live next to it.
mlflow and scikit-learn are imported here only, lazily, so `mlopslab --help` and the model server stay fast.

sqlite allows one writer: while another program holds the store locked, each MLflow call waits (MLflow's
busy timeout, 20 s) and then fails "database is locked". Every store call here is retried on that, step by
step (so a retry never registers a version twice), with a doubling pause; `on_busy` hears of each retry;
after `busy_attempts` tries a `RegistryBusy` says plainly that the store stayed locked.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlopslab.serving import artifact

CHAMPION = "champion"
BUSY_ATTEMPTS = 3
CHALLENGER = "challenger"


@dataclass(frozen=True)
class TrainParams:
    C: float = 1.0
    max_iter: int = 200


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str
    run_id: str
    accuracy: float
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


class RegistryBusy(RuntimeError):
    """The MLflow store stayed locked by another writer through every retry."""


def _locked(exc: BaseException) -> bool:
    return "database is locked" in str(exc) or "database is busy" in str(exc)


class Registry:
    """One run's MLflow tracking server and Model Registry (sqlite store), plus a serving-artifact cache."""

    def __init__(self, root: Path, experiment: str = "mlopslab", *, busy_attempts: int = BUSY_ATTEMPTS,
                 on_busy: Callable[..., Any] | None = None) -> None:
        self.root = root.resolve()
        self.busy_attempts = busy_attempts
        self.on_busy = on_busy  # on_busy(step=..., attempt=..., error=..., retry_in=...)
        self.root.mkdir(parents=True, exist_ok=True)
        self.tracking_uri = f"sqlite:///{self.root / 'mlflow.db'}"
        self.artifact_root = (self.root / "mlartifacts").as_uri()
        self.cache = self.root / "models"
        self.experiment = experiment
        self._lock = threading.Lock()  # mlflow's fluent API keeps a global active run
        self._client: Any = None
        self._experiment_id: str | None = None

    def _retry(self, step: str, call: Callable[[], Any]) -> Any:
        """Runs one store call; while the store is locked, tries again after 0.5, 1, 2 ... s."""
        attempt = 0
        while True:
            try:
                return call()
            except Exception as exc:
                if not _locked(exc):
                    raise
                attempt += 1
                if attempt >= self.busy_attempts:
                    raise RegistryBusy(f"the MLflow store {self.root / 'mlflow.db'} stayed locked by another writer "
                                       f"(sqlite busy) through {attempt} tries of {step}") from None
                delay = min(4.0, 0.5 * 2.0 ** (attempt - 1))
                if self.on_busy is not None:
                    self.on_busy(step=step, attempt=attempt, error="database is locked", retry_in=delay)
                time.sleep(delay)

    @property
    def client(self) -> Any:
        if self._client is None:
            import mlflow
            from mlflow import MlflowClient

            mlflow.set_tracking_uri(self.tracking_uri)
            mlflow.set_registry_uri(self.tracking_uri)
            client = MlflowClient(self.tracking_uri, self.tracking_uri)
            found = self._retry("get experiment", lambda: client.get_experiment_by_name(self.experiment))
            self._experiment_id = (found.experiment_id if found else self._retry(
                "create experiment", lambda: client.create_experiment(self.experiment, self.artifact_root)))
            self._client = client
        return self._client

    def train_and_register(self, name: str, X: np.ndarray, y: np.ndarray, X_val: np.ndarray, y_val: np.ndarray,
                           feature_names: list[str], params: TrainParams, *, tags: dict[str, str] | None = None,
                           extra_artifacts: dict[str, Any] | None = None) -> ModelVersion:
        """Trains Pipeline(StandardScaler, LogisticRegression), logs it, registers a new version, exports it."""
        import mlflow
        import mlflow.sklearn
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        import pandas as pd

        client = self.client
        pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=params.C, max_iter=params.max_iter))
        pipeline.fit(pd.DataFrame(X, columns=feature_names), y)
        accuracy = float((pipeline.predict(pd.DataFrame(X_val, columns=feature_names)) == y_val).mean())
        with self._lock:
            # mlflow's fluent API works on one process-wide store: point it at ours for this run only
            mlflow.set_tracking_uri(self.tracking_uri)
            mlflow.set_registry_uri(self.tracking_uri)
            retry = self._retry
            run = retry("start run", lambda: mlflow.start_run(experiment_id=self._experiment_id, tags=tags or {}))
            with run:
                retry("log params", lambda: mlflow.log_params({"C": params.C, "max_iter": params.max_iter,
                                                               "n_train": len(X), "n_features": X.shape[1]}))
                retry("log metrics", lambda: mlflow.log_metrics({"val_accuracy": accuracy,
                                                                 "train_positive_share": float(y.mean())}))
                for filename, content in (extra_artifacts or {}).items():
                    mlflow.log_dict(content, filename)
                example = pd.DataFrame(X[:3], columns=feature_names)
                info = retry("log model", lambda: mlflow.sklearn.log_model(
                    pipeline, name="model", input_example=example,
                    pip_requirements=["scikit-learn", "numpy", "pandas"]))
                run_id = run.info.run_id
            with contextlib.redirect_stderr(io.StringIO()):  # mlflow prints "Created version ..." itself
                registered = retry("register model", lambda: mlflow.register_model(info.model_uri, name))
        version = str(registered.version)
        export_dir = self.cache / name / version
        artifact.export(pipeline, export_dir, name=name, version=version, feature_names=feature_names)
        self._retry("log artifacts", lambda: client.log_artifacts(run_id, str(export_dir), artifact.ARTIFACT_DIR))
        self._retry("tag version", lambda: client.set_model_version_tag(name, version, "accuracy", f"{accuracy:.4f}"))
        return ModelVersion(name, version, run_id, accuracy, {"C": params.C, "max_iter": params.max_iter})

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self._retry("set alias", lambda: self.client.set_registered_model_alias(name, alias, version))

    def version_by_alias(self, name: str, alias: str) -> str:
        return str(self._retry("get alias", lambda: self.client.get_model_version_by_alias(name, alias)).version)

    def exists(self, name: str, version: str) -> bool:
        """Whether the version is registered; a store that cannot answer (locked) raises, it is not a no."""
        try:
            self._retry("get version", lambda: self.client.get_model_version(name, version))
            return True
        except RegistryBusy:
            raise
        except Exception:  # not found, or not a version at all
            return False

    def serving_dir(self, name: str, version: str) -> Path:
        """The exported artifact of models:/name/version, fetched from the registry when not cached."""
        target = self.cache / name / str(version)
        if (target / "model.npz").exists():
            return target
        with self._lock:
            mv = self.client.get_model_version(name, str(version))
            tmp = self.cache / f".{name}-{version}.download"
            shutil.rmtree(tmp, ignore_errors=True)
            path = self.client.download_artifacts(mv.run_id, artifact.ARTIFACT_DIR, str(tmp))
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(path, target)
            shutil.rmtree(tmp, ignore_errors=True)
        return target


def quiet_mlflow() -> None:
    """mlflow logs registrations and warns about environment inference on stderr; the lab reports instead.
    Only mlflow's and scikit-learn's own warnings are silenced, not every UserWarning of the process."""
    import logging
    import os
    import warnings

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    warnings.filterwarnings("ignore", module=r"(mlflow|sklearn)(\..*)?$")
    for name in ("mlflow", "alembic", "urllib3"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # a locked store is retried and reported as an event (registry_busy); not a traceback on stderr
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
