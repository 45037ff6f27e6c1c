"""Synthetic tabular data with a known truth and scheduled drift (covariate, prior, concept).

The truth is a fixed, slightly curved decision rule over Gaussian features, so a linear model fits it
well where it was trained and worse once the features move: covariate shift really costs accuracy and
retraining on recent data really repairs it. Every drift has a known change point, kind and size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DRIFT_KINDS = ("covariate", "prior", "concept")


@dataclass(frozen=True)
class DataSpec:
    n_features: int = 8
    n_samples: int = 4000        # rows used to train a version
    curvature: float = 0.6       # how far the truth is from linear (0 = a linear truth)
    label_noise: float = 0.05    # share of labels flipped at random


@dataclass(frozen=True)
class Drift:
    """A change of the data at `at` seconds, reaching full `size` after `ramp` seconds.

    covariate: the means of `features` move by `size` reference standard deviations.
    prior:     the share of positive labels becomes `size` (0..1).
    concept:   the decision rule turns: weights move by `size` along a fixed random direction.
    """

    kind: str
    at: float
    size: float
    features: tuple[int, ...] | None = None
    ramp: float = 0.0

    def weight(self, t: float) -> float:
        if t < self.at:
            return 0.0
        if self.ramp <= 0:
            return 1.0
        return min(1.0, (t - self.at) / self.ramp)


@dataclass
class DataStream:
    """Draws labelled rows at a moment of the run, with every drift scheduled so far applied."""

    spec: DataSpec
    seed: int
    drifts: list[Drift] = field(default_factory=list)

    def __post_init__(self) -> None:
        truth = np.random.default_rng([self.seed, 1])
        d = self.spec.n_features
        self.weights = truth.normal(0.0, 1.0, d) / np.sqrt(d) * 2.0
        self.concept_direction = truth.normal(0.0, 1.0, d)
        self.concept_direction /= np.linalg.norm(self.concept_direction)
        self._rng = np.random.default_rng([self.seed, 2])

    @property
    def feature_names(self) -> list[str]:
        return [f"f{i}" for i in range(self.spec.n_features)]

    def add_drift(self, drift: Drift) -> None:
        if drift.kind not in DRIFT_KINDS:
            raise ValueError(f"unknown drift kind {drift.kind!r}, expected one of {DRIFT_KINDS}")
        if drift.kind == "prior" and not 0.0 <= drift.size <= 1.0:
            raise ValueError(f"a prior drift's size is the new positive share (0..1), got {drift.size}")
        bad = [f for f in drift.features or () if not 0 <= f < self.spec.n_features]
        if bad:
            raise ValueError(f"feature indexes {bad} out of range 0..{self.spec.n_features - 1}")
        self.drifts.append(drift)

    def _shift(self, t: float) -> np.ndarray:
        shift = np.zeros(self.spec.n_features)
        for drift in self.drifts:
            if drift.kind == "covariate":
                features = drift.features or tuple(range(max(1, self.spec.n_features // 2)))
                shift[list(features)] += drift.size * drift.weight(t)
        return shift

    def _weights(self, t: float) -> np.ndarray:
        w = self.weights.copy()
        for drift in self.drifts:
            if drift.kind == "concept":
                w += drift.size * drift.weight(t) * self.concept_direction
        return w

    def _positive_share(self, t: float) -> float | None:
        share = None
        for drift in self.drifts:
            if drift.kind == "prior" and drift.weight(t) > 0:
                share = drift.size * drift.weight(t) + 0.5 * (1 - drift.weight(t))
        return share

    def label(self, X: np.ndarray, t: float = 0.0, rng: np.random.Generator | None = None) -> np.ndarray:
        """The true labels of rows X at time t (the rule in force then), with label noise."""
        rng = rng or self._rng
        score = X @ self._weights(t) + self.spec.curvature * (X[:, 0] ** 2 - 1.0)
        y = (score > 0).astype(np.int64)
        flip = rng.random(len(y)) < self.spec.label_noise
        return np.where(flip, 1 - y, y)

    def sample(self, n: int, t: float = 0.0, rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        rng = rng or self._rng
        share = self._positive_share(t)
        X, y = self._draw(n, t, rng)
        if share is None:
            return X, y
        # Prior shift: keep P(x | y), resample rows so that each is positive with probability `share`
        # (a binomial count, so one row at a time has the right share too).
        n_pos = int(rng.binomial(n, share))
        pos, neg = X[y == 1], X[y == 0]
        while len(pos) < n_pos or len(neg) < n - n_pos:
            X2, y2 = self._draw(n, t, rng)
            pos, neg = np.vstack([pos, X2[y2 == 1]]), np.vstack([neg, X2[y2 == 0]])
        X = np.vstack([pos[:n_pos], neg[: n - n_pos]])
        y = np.concatenate([np.ones(n_pos, np.int64), np.zeros(n - n_pos, np.int64)])
        order = rng.permutation(n)
        return X[order], y[order]

    def _draw(self, n: int, t: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        X = rng.normal(0.0, 1.0, (n, self.spec.n_features)) + self._shift(t)
        return X, self.label(X, t, rng)
