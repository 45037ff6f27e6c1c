"""Models in MLflow: train a classifier, track the run, register the version, export it for serving.

The tracking and registry store is a sqlite database inside the run directory; artifacts live next to it.
mlflow and scikit-learn are imported here only, lazily, so `mlopslab --help` and the model server stay fast.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlopslab.serving import artifact

CHAMPION = "champion"
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


class Registry:
    """One run's MLflow tracking server and Model Registry (sqlite store), plus a serving-artifact cache."""

    def __init__(self, root: Path, experiment: str = "mlopslab") -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.tracking_uri = f"sqlite:///{self.root / 'mlflow.db'}"
        self.artifact_root = (self.root / "mlartifacts").as_uri()
        self.cache = self.root / "models"
        self.experiment = experiment
        self._lock = threading.Lock()  # mlflow's fluent API keeps a global active run
        self._client: Any = None
        self._experiment_id: str | None = None

    @property
    def client(self) -> Any:
        if self._client is None:
            import mlflow
            from mlflow import MlflowClient

            mlflow.set_tracking_uri(self.tracking_uri)
            mlflow.set_registry_uri(self.tracking_uri)
            self._client = MlflowClient(self.tracking_uri, self.tracking_uri)
            found = self._client.get_experiment_by_name(self.experiment)
            self._experiment_id = (found.experiment_id if found else
                                   self._client.create_experiment(self.experiment, self.artifact_root))
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
            with mlflow.start_run(experiment_id=self._experiment_id, tags=tags or {}) as run:
                mlflow.log_params({"C": params.C, "max_iter": params.max_iter, "n_train": len(X),
                                   "n_features": X.shape[1]})
                mlflow.log_metrics({"val_accuracy": accuracy, "train_positive_share": float(y.mean())})
                for filename, content in (extra_artifacts or {}).items():
                    mlflow.log_dict(content, filename)
                example = pd.DataFrame(X[:3], columns=feature_names)
                info = mlflow.sklearn.log_model(
                    pipeline, name="model", input_example=example,
                    pip_requirements=["scikit-learn", "numpy", "pandas"])
                run_id = run.info.run_id
            with contextlib.redirect_stderr(io.StringIO()):  # mlflow prints "Created version ..." itself
                registered = mlflow.register_model(info.model_uri, name)
        version = str(registered.version)
        export_dir = self.cache / name / version
        artifact.export(pipeline, export_dir, name=name, version=version, feature_names=feature_names)
        client.log_artifacts(run_id, str(export_dir), artifact.ARTIFACT_DIR)
        client.set_model_version_tag(name, version, "accuracy", f"{accuracy:.4f}")
        return ModelVersion(name, version, run_id, accuracy, {"C": params.C, "max_iter": params.max_iter})

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(name, alias, version)

    def version_by_alias(self, name: str, alias: str) -> str:
        return str(self.client.get_model_version_by_alias(name, alias).version)

    def exists(self, name: str, version: str) -> bool:
        try:
            self.client.get_model_version(name, version)
            return True
        except Exception:
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
