"""The serving artifact: a registered model version exported to plain arrays, loadable with numpy alone.

MLflow's pyfunc loader imports mlflow, pandas and scikit-learn (seconds); the model server must be ready
in well under a second, so registration also writes `serving/model.npz` + `serving/model.json` next to
the MLflow model. Predictions are computed with the same float operations scikit-learn uses
(StandardScaler then a linear decision function), so they equal `mlflow.pyfunc` on the same version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ARTIFACT_DIR = "serving"


@dataclass(frozen=True)
class ServingModel:
    name: str
    version: str
    feature_names: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    classes: np.ndarray

    def decision(self, X: np.ndarray) -> np.ndarray:
        X = np.array(X, dtype=np.float64, copy=True)
        X -= self.mean
        X /= self.scale
        scores = X @ self.coef.T + self.intercept
        return scores.ravel() if scores.shape[1] == 1 else scores

    def predict(self, X: np.ndarray) -> np.ndarray:
        scores = self.decision(X)
        if scores.ndim == 1:
            return self.classes[(scores > 0).astype(int)]
        return self.classes[scores.argmax(axis=1)]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        scores = self.decision(X)
        if scores.ndim == 1:
            p = 1.0 / (1.0 + np.exp(-scores))
            return np.column_stack([1 - p, p])
        e = np.exp(scores - scores.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


def export(pipeline: Any, directory: Path, *, name: str, version: str, feature_names: list[str]) -> Path:
    """Writes a fitted Pipeline(StandardScaler, LogisticRegression) as a serving artifact."""
    scaler, classifier = pipeline[0], pipeline[-1]
    directory.mkdir(parents=True, exist_ok=True)
    np.savez(directory / "model.npz", mean=scaler.mean_, scale=scaler.scale_, coef=classifier.coef_,
             intercept=classifier.intercept_, classes=classifier.classes_)
    (directory / "model.json").write_text(json.dumps(
        {"name": name, "version": str(version), "feature_names": list(feature_names), "format": 1}))
    return directory


def load(directory: Path) -> ServingModel:
    meta = json.loads((directory / "model.json").read_text())
    with np.load(directory / "model.npz") as arrays:
        return ServingModel(meta["name"], str(meta["version"]), tuple(meta["feature_names"]),
                            arrays["mean"], arrays["scale"], arrays["coef"], arrays["intercept"],
                            arrays["classes"])
