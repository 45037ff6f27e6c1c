"""Drift of features and predictions against a training reference: PSI, KS, Wasserstein, Jensen–Shannon.

Every statistic is the one Evidently's stattest of the same name computes, so a verdict here means what it
means there (`evidently/legacy/calculations/stattests/`):

- ``psi``: shares per bin from ``get_binned_data`` (empty bins filled with a tiny share), summed as
  ``(ref - cur) * ln(ref / cur)``; drift when the value is >= 0.1.
- ``ks``: ``scipy.stats.ks_2samp`` (method 'auto'), judged by its p-value; drift when p <= 0.05.
- ``wasserstein``: ``scipy.stats.wasserstein_distance(ref, cur) / max(std(ref), 0.001)`` (population std);
  drift when >= 0.1.
- ``jensenshannon``: ``scipy.spatial.distance.jensenshannon`` of the binned shares, empty bins left empty;
  drift when >= 0.1.

Binning is Evidently's: a numerical column whose reference has more than 20 distinct values is cut into
equal-width Sturges bins over the range of reference and current together; otherwise each distinct value
is its own bin. The dataset drifts when the share of drifted features reaches ``drift_share`` (0.5, as in
Evidently's DataDriftPreset).

Everything is numpy: each feature's reference is sorted once (`DriftReference`) and a window's current
columns in one sort; PSI and Jensen–Shannon count the sorted samples into bins by binary search, KS and
Wasserstein share one merge of the two (a single linear pass) per feature, made only when one of them is
asked for. The Wasserstein norm is the reference std over the column as given, the order numpy (and pandas,
for Evidently) sums it in. Scipy is imported lazily for the KS p-value alone, so the p-value is scipy's own:
its exact small-sample path on our statistic, or for large samples ``kstwo.sf``, whose costly branch
(``2 * smirnov(n, d)``, a sum of ~n/2 double-double terms: ~23 ms at n = 50,000, the same call ks_2samp
makes for Evidently) is called directly. No cheaper formula gives the same bits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from mlopslab.monitor.stattests import (  # noqa: F401  (re-exported: the statistics are part of this API)
    _MAX_VALUE_BINS,
    _MIN_NORM,
    KSResult,
    _as_table,
    _check_finite,
    _columns,
    _fill_zeros,
    _kstwo_sf,
    _Merge,
    _psi,
    _workspace,
    binned_shares,
    jensenshannon,
    js_distance,
    ks_2samp,
    psi,
    wasserstein_distance,
    wasserstein_normed,
)

Method = Literal["psi", "ks", "wasserstein", "jensenshannon"]

METHODS: tuple[Method, ...] = ("wasserstein", "psi", "jensenshannon", "ks")
THRESHOLDS: Mapping[Method, float] = {"psi": 0.1, "ks": 0.05, "wasserstein": 0.1, "jensenshannon": 0.1}
DRIFT_SHARE = 0.5

_SMALL_REFERENCE = 1000  # Evidently's default stattest is ks up to this many reference rows
_FEW_VALUES = 5  # ... and jensenshannon above it when reference+current hold this few values


def stattest_drifted(method: Method, value: float, threshold: float | None = None) -> bool:
    """Evidently's verdict: a p-value (ks) drifts at or below its threshold, a distance at or above it."""
    limit = THRESHOLDS[method] if threshold is None else threshold
    return value <= limit if method == "ks" else value >= limit


def is_dataset_drift(drifted: Sequence[bool], drift_share: float = DRIFT_SHARE) -> bool:
    """The dataset drifts when the share of drifted features is at least `drift_share`."""
    if not drifted:
        return False
    return sum(drifted) / len(drifted) >= drift_share


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's statistics; `drifted` is the verdict of `method` against `threshold`."""

    name: str
    method: Method
    threshold: float
    drifted: bool
    psi: float | None = None
    ks_statistic: float | None = None
    ks_pvalue: float | None = None
    wasserstein: float | None = None
    jensenshannon: float | None = None

    def value(self, method: Method) -> float:
        """The value Evidently reports for `method` (for ks, the p-value)."""
        value = {
            "psi": self.psi,
            "ks": self.ks_pvalue,
            "wasserstein": self.wasserstein,
            "jensenshannon": self.jensenshannon,
        }[method]
        if value is None:
            raise KeyError(f"{method} was not computed for feature {self.name!r}")
        return value

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "method": self.method,
            "threshold": self.threshold,
            "drifted": self.drifted,
            "psi": self.psi,
            "ks_statistic": self.ks_statistic,
            "ks_pvalue": self.ks_pvalue,
            "wasserstein": self.wasserstein,
            "jensenshannon": self.jensenshannon,
        }


@dataclass(frozen=True)
class DriftReport:
    """Per-feature drift of one current window against the reference, and the dataset verdict."""

    features: tuple[FeatureDrift, ...]
    n_reference: int
    n_current: int
    drift_share: float = DRIFT_SHARE

    @property
    def drifted_features(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if f.drifted)

    @property
    def share_drifted(self) -> float:
        return len(self.drifted_features) / len(self.features) if self.features else 0.0

    @property
    def dataset_drift(self) -> bool:
        return is_dataset_drift([f.drifted for f in self.features], self.drift_share)

    def feature(self, name: str) -> FeatureDrift:
        for result in self.features:
            if result.name == name:
                return result
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "drift_share": self.drift_share,
            "share_drifted": self.share_drifted,
            "dataset_drift": self.dataset_drift,
            "drifted_features": list(self.drifted_features),
            "features": [f.to_dict() for f in self.features],
        }


class DriftReference:
    """A training reference prepared once — columns sorted, spread and distinct values counted — for
    comparing many current windows against it.

    `spread=False` skips the reference standard deviations, which only the wasserstein statistic needs
    (they are taken over the columns in their original order, as numpy and pandas sum them for Evidently).
    """

    def __init__(
        self, reference: np.ndarray, feature_names: Sequence[str] | None = None, *, spread: bool = True
    ) -> None:
        array = _as_table(reference, "reference")
        columns = _columns(array)
        if feature_names is None:
            feature_names = [f"x{i}" for i in range(columns.shape[0])]
        if len(feature_names) != columns.shape[0]:
            raise ValueError(f"{len(feature_names)} feature names for {columns.shape[0]} features")
        self._norms = np.maximum([np.std(column) for column in columns], _MIN_NORM) if spread else None
        columns.sort(axis=1)
        _check_finite(columns[:, 0], columns[:, -1], "reference")
        self.feature_names: tuple[str, ...] = tuple(feature_names)
        self._columns = columns
        self._distinct_counts: np.ndarray | None = None

    @property
    def _distinct(self) -> np.ndarray:
        """Distinct values per reference column (counted when binning or the default stattest first asks)."""
        if self._distinct_counts is None:
            columns = self._columns
            self._distinct_counts = 1 + np.count_nonzero(columns[:, 1:] != columns[:, :-1], axis=1)
        return self._distinct_counts

    @property
    def n_rows(self) -> int:
        return int(self._columns.shape[1])

    @property
    def n_features(self) -> int:
        return int(self._columns.shape[0])

    def compare(
        self,
        current: np.ndarray,
        methods: Sequence[Method] = METHODS,
        stattest: Method | None = None,
        thresholds: Mapping[Method, float] | None = None,
        drift_share: float = DRIFT_SHARE,
    ) -> DriftReport:
        """Drift of `current` (rows × the reference's features) against this reference.

        `methods` are computed for every feature; `stattest` decides each feature's verdict (None picks
        Evidently's default: ks for a reference of at most 1000 rows, else jensenshannon when reference
        and current hold at most five distinct values, else wasserstein). `thresholds` override the
        per-method defaults.
        """
        table = _as_table(current, "current")
        if table.shape[1] != self.n_features:
            raise ValueError(f"current has {table.shape[1]} features, the reference {self.n_features}")
        unknown = [m for m in (*methods, stattest) if m is not None and m not in METHODS]
        if unknown:
            raise ValueError(f"unknown drift methods {unknown}; known: {METHODS}")
        limits = {**THRESHOLDS, **(thresholds or {})}
        # Every current column sorted at once; a feature's merge with its reference only when KS or
        # Wasserstein asks for it.
        merge = _workspace(self.n_rows, table.shape[0], self.n_features)
        columns = _columns(table, out=merge.columns)
        columns.sort(axis=1)
        _check_finite(columns[:, 0], columns[:, -1], "current")
        features = []
        for j, name in enumerate(self.feature_names):
            merge.load(self._columns[j], columns[j])
            method = stattest or self._default_stattest(j, merge)
            values = self._values(j, merge, set(methods) | {method})
            features.append(
                FeatureDrift(
                    name=name,
                    method=method,
                    threshold=limits[method],
                    drifted=stattest_drifted(method, values[method], limits[method]),
                    psi=values.get("psi"),
                    ks_statistic=values.get("ks_statistic"),
                    ks_pvalue=values.get("ks"),
                    wasserstein=values.get("wasserstein"),
                    jensenshannon=values.get("jensenshannon"),
                )
            )
        return DriftReport(tuple(features), self.n_rows, int(table.shape[0]), drift_share)

    def _default_stattest(self, j: int, merge: _Merge) -> Method:
        # Evidently picks chi-square or z for <= 5 values on a small reference; both are out of scope here.
        if self.n_rows <= _SMALL_REFERENCE:
            return "ks"
        few = self._distinct[j] <= _FEW_VALUES and merge.n_distinct() <= _FEW_VALUES
        return "jensenshannon" if few else "wasserstein"

    def _values(self, j: int, merge: _Merge, wanted: set[Method]) -> dict[str, float]:
        values: dict[str, float] = {}
        if wanted & {"psi", "jensenshannon"}:
            ref, cur = merge.shares(bool(self._distinct[j] <= _MAX_VALUE_BINS))
            if "psi" in wanted:
                values["psi"] = _psi(_fill_zeros(ref), _fill_zeros(cur))
            if "jensenshannon" in wanted:
                values["jensenshannon"] = js_distance(ref, cur)
        if "wasserstein" in wanted:
            if self._norms is None:
                raise ValueError("this reference was prepared with spread=False; wasserstein needs it")
            values["wasserstein"] = merge.wasserstein() / float(self._norms[j])
        if "ks" in wanted:
            ks = merge.ks()
            values["ks"], values["ks_statistic"] = ks.pvalue, ks.statistic
        return values


def feature_drift_report(
    reference: np.ndarray | DriftReference,
    current: np.ndarray,
    feature_names: Sequence[str] | None = None,
    methods: Sequence[Method] = METHODS,
    stattest: Method | None = None,
    thresholds: Mapping[Method, float] | None = None,
    drift_share: float = DRIFT_SHARE,
) -> DriftReport:
    """Drift of every feature of `current` (n_cur × d) against `reference` (n_ref × d, or prepared once as
    a `DriftReference`, whose own feature names then apply). See `DriftReference.compare`."""
    if not isinstance(reference, DriftReference):
        spread = stattest is None or "wasserstein" in (*methods, stattest)
        reference = DriftReference(reference, feature_names, spread=spread)
    return reference.compare(current, methods, stattest, thresholds, drift_share)


# --- predictions --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PredictionDrift:
    """How the distribution of predicted classes moved: a label-shift signal that needs no labels."""

    classes: tuple[Any, ...]
    reference_shares: tuple[float, ...]
    current_shares: tuple[float, ...]
    jensenshannon: float
    psi: float
    method: Literal["jensenshannon", "psi"]
    threshold: float
    drifted: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "classes": list(self.classes),
            "reference_shares": list(self.reference_shares),
            "current_shares": list(self.current_shares),
            "jensenshannon": self.jensenshannon,
            "psi": self.psi,
            "method": self.method,
            "threshold": self.threshold,
            "drifted": self.drifted,
        }


def prediction_drift(
    reference_predictions: np.ndarray,
    current_predictions: np.ndarray,
    method: Literal["jensenshannon", "psi"] = "jensenshannon",
    threshold: float | None = None,
) -> PredictionDrift:
    """Compare the shares of predicted classes (e.g. of predicted positives) in two windows.

    Uses Evidently's categorical treatment: one bin per class seen in either window; PSI fills empty
    bins with a tiny share, Jensen–Shannon leaves them empty.
    """
    reference_predictions = np.asarray(reference_predictions).ravel()
    current_predictions = np.asarray(current_predictions).ravel()
    if reference_predictions.size == 0 or current_predictions.size == 0:
        raise ValueError("both windows need at least one prediction")
    classes = np.union1d(reference_predictions, current_predictions)
    ref = _class_counts(reference_predictions, classes) / reference_predictions.size
    cur = _class_counts(current_predictions, classes) / current_predictions.size
    js = js_distance(ref, cur)
    psi_value = _psi(_fill_zeros(ref), _fill_zeros(cur))
    limit = THRESHOLDS[method] if threshold is None else threshold
    return PredictionDrift(
        classes=tuple(classes.tolist()),
        reference_shares=tuple(ref.tolist()),
        current_shares=tuple(cur.tolist()),
        jensenshannon=js,
        psi=psi_value,
        method=method,
        threshold=limit,
        drifted=stattest_drifted(method, js if method == "jensenshannon" else psi_value, limit),
    )


def _class_counts(predictions: np.ndarray, classes: np.ndarray) -> np.ndarray:
    ordered = np.sort(predictions)
    return np.searchsorted(ordered, classes, side="right") - np.searchsorted(ordered, classes, side="left")
