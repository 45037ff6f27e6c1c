"""The two-sample statistics behind the drift report, computed the way Evidently and scipy compute them.

KS (exact p-value on small samples, scipy's lattice-path count), PSI and Jensen-Shannon on Evidently's
bins, Wasserstein (plain and normed by the reference's spread), all on one merged, sorted workspace per
feature (`_Merge`) so a report over many features and windows allocates nothing per call. Numbers match
scipy and Evidently bit for bit (tests/test_drift_statistics.py; benchmarks/bench_drift.py).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

_MAX_VALUE_BINS = 20  # reference distinct values up to which Evidently bins by value
_MAX_EXACT_KS = 10_000  # ks_2samp 'auto' computes the exact p-value while both samples are this small
_MIN_NORM = 0.001  # Evidently's floor on the reference std in the normed Wasserstein distance
_WORKSPACE = threading.local()


@dataclass(frozen=True)
class KSResult:
    statistic: float
    pvalue: float


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index as Evidently's `psi` stattest computes it."""
    return _psi(*binned_shares(reference, current))


def ks_2samp(reference: np.ndarray, current: np.ndarray) -> KSResult:
    """Two-sample Kolmogorov–Smirnov test, two-sided, equal to `scipy.stats.ks_2samp` (method 'auto')."""
    return _Merge.of(reference, current).ks()


def wasserstein_distance(reference: np.ndarray, current: np.ndarray) -> float:
    """First Wasserstein distance between two samples, equal to `scipy.stats.wasserstein_distance`."""
    return _Merge.of(reference, current).wasserstein()


def wasserstein_normed(reference: np.ndarray, current: np.ndarray) -> float:
    """Wasserstein distance in reference standard deviations, as Evidently's `wasserstein` stattest."""
    spread = float(np.std(_as_table(reference, "reference")[:, 0]))  # in the sample's own order, as Evidently
    return _Merge.of(reference, current).wasserstein() / max(spread, _MIN_NORM)


def jensenshannon(reference: np.ndarray, current: np.ndarray) -> float:
    """Jensen–Shannon distance of the binned samples, as Evidently's `jensenshannon` stattest."""
    return js_distance(*binned_shares(reference, current, fill_zeros=False))


def binned_shares(reference: np.ndarray, current: np.ndarray, fill_zeros: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Evidently's `get_binned_data` for a numerical column: the share of each sample in each bin."""
    merge = _Merge.of(reference, current)
    ref, cur = merge.shares(_count_distinct(merge.reference) <= _MAX_VALUE_BINS)
    return (_fill_zeros(ref), _fill_zeros(cur)) if fill_zeros else (ref, cur)


def js_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen–Shannon distance (natural log) of two histograms, as `scipy.spatial.distance.jensenshannon`."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    p = p / np.sum(p)
    q = q / np.sum(q)
    m = (p + q) / 2.0
    # Python's math functions are the C library's, as in scipy's rel_entr; numpy's SIMD log may differ.
    left = np.array([_rel_entr(a, b) for a, b in zip(p.tolist(), m.tolist(), strict=True)])
    right = np.array([_rel_entr(a, b) for a, b in zip(q.tolist(), m.tolist(), strict=True)])
    return float(np.sqrt((np.sum(left) + np.sum(right)) / 2.0))


class _Merge:
    """One feature's sorted reference and current samples, and (on demand) their merge.

    PSI and Jensen–Shannon need only the two sorted samples; KS and Wasserstein read the merge, which is
    made once per feature. The arrays are allocated once per report and reused feature after feature: a
    fresh array of 100,000s of values costs a page fault per 4 KiB, a large share of a report's time.
    """

    def __init__(self, n: int, m: int, features: int = 1) -> None:
        size = n + m
        self.n, self.m = n, m
        self.columns = np.empty((features, m))  # a report's current columns, sorted
        self.reference = np.empty(n)
        self.current = np.empty(m)
        # Each value paired with its sample (0: reference, 1: current) as one complex number: sorting the
        # pairs merges the two sorted runs in one linear pass and carries the labels along, reference
        # first among equal values (complex numbers sort by real part, then imaginary part).
        self.pairs = np.empty(size, dtype=np.complex128)
        self.merged = self.pairs.real
        self.from_current = self.pairs.imag
        self.current_counts = np.empty(size)
        self.gap = np.empty(size)
        self.scratch = np.empty(size)
        self.distinct = np.empty(size - 1, dtype=bool)
        self.ordinals = np.arange(1.0, size + 1.0)
        self.is_merged = False

    @classmethod
    def of(cls, reference: np.ndarray, current: np.ndarray) -> _Merge:
        ref = _as_table(reference, "reference")
        cur = _as_table(current, "current")
        if ref.shape[1] != 1 or cur.shape[1] != 1:
            raise ValueError("expected one feature: 1-D samples or single columns")
        merge = cls(ref.shape[0], cur.shape[0])
        merge.reference[:] = ref[:, 0]
        merge.reference.sort()
        _check_finite(merge.reference[:1], merge.reference[-1:], "reference")
        merge.current[:] = cur[:, 0]
        merge.current.sort()
        _check_finite(merge.current[:1], merge.current[-1:], "current")
        merge.load(merge.reference, merge.current)
        return merge

    def load(self, sorted_reference: np.ndarray, sorted_current: np.ndarray) -> None:
        """Take the next feature: its sorted reference and sorted current values."""
        self.reference = sorted_reference
        self.current = sorted_current
        self.is_merged = False

    def merge(self) -> None:
        if self.is_merged:
            return
        n, m = self.n, self.m
        self.merged[:n] = self.reference
        self.merged[n:] = self.current
        self.from_current[:n] = 0.0
        self.from_current[n:] = 1.0
        self.pairs.sort(kind="stable")  # two sorted runs: timsort finds them and merges once
        # How many of each sample lie at or before each merged position (whole numbers, exact in float64).
        np.cumsum(self.from_current, out=self.current_counts)
        # F_ref - F_cur just after each merged value, as scipy computes it (count / size, then subtract);
        # inside a run of ties only the run's last is exact.
        np.subtract(self.ordinals, self.current_counts, out=self.gap)
        np.divide(self.gap, n, out=self.gap)
        np.subtract(self.gap, np.divide(self.current_counts, m, out=self.scratch), out=self.gap)
        self.is_merged = True

    def n_distinct(self) -> int:
        """Distinct values in reference and current together."""
        return int(np.union1d(_distinct_values(self.reference), _distinct_values(self.current)).size)

    def statistic(self) -> float:
        """max |F_ref - F_cur| over the data, the KS statistic as ks_2samp computes it."""
        self.merge()
        distinct = np.not_equal(self.merged[1:], self.merged[:-1], out=self.distinct)
        if distinct.all():
            gap = self.gap
        else:  # ties: only the last of each run of equal values is exact
            gap = self.gap[np.flatnonzero(np.append(distinct, True))]
        return max(float(gap.max()), -float(gap.min()))

    def ks(self) -> KSResult:
        """KS statistic and the p-value ks_2samp's 'auto' method gives."""
        return _ks_pvalue(self.statistic(), self.n, self.m, self.reference, self.current)

    def wasserstein(self) -> float:
        # Between successive merged values both ECDFs are flat; terms inside tie runs have zero width.
        self.merge()
        size = self.merged.size - 1
        heights = np.abs(self.gap[:-1], out=self.scratch[:size])
        widths = np.subtract(self.merged[1:], self.merged[:-1], out=self.current_counts[:size])
        return float(np.vecdot(heights, widths))

    def shares(self, value_binned: bool) -> tuple[np.ndarray, np.ndarray]:
        """Share of each sample per bin: one bin per distinct value, or Sturges bins over both samples."""
        if value_binned:
            keys = np.union1d(_distinct_values(self.reference), _distinct_values(self.current))
            ref_counts = np.diff(np.searchsorted(self.reference, keys, side="right"), prepend=0)
            cur_counts = np.diff(np.searchsorted(self.current, keys, side="right"), prepend=0)
        else:
            low = min(self.reference[0], self.current[0])
            high = max(self.reference[-1], self.current[-1])
            edges = _sturges_edges(low, high, self.n + self.m)
            ref_counts = _histogram_sorted(self.reference, edges)
            cur_counts = _histogram_sorted(self.current, edges)
        return ref_counts / self.n, cur_counts / self.m


def _ks_pvalue(statistic: float, n: int, m: int, reference: np.ndarray, current: np.ndarray) -> KSResult:
    """The p-value `scipy.stats.ks_2samp` (two-sided, method 'auto') gives for this statistic.

    Exact while both samples have at most 10,000 values (scipy's own lattice-path count on the statistic,
    without ks_2samp's sorting and searching the data again); else `kstwo.sf(d, round(n*m/(n+m)))`,
    whose costly branch is `2 * smirnov(n, d)`: called directly, skipping the distribution machinery,
    and 0 where kstwo gives 0 (n·d² >= 370) without calling anything.
    """
    if max(n, m) <= _MAX_EXACT_KS:
        g = math.gcd(n, m)
        lcm = n // g * m
        exact = _exact_ks_pvalue(n, m, g, statistic)
        if exact is None:  # scipy's helper is unavailable or gave up: let ks_2samp decide, warnings and all
            from scipy.stats import ks_2samp as scipy_ks_2samp

            result = scipy_ks_2samp(reference, current)
            return KSResult(float(result.statistic), float(result.pvalue))
        # The exact path reports the statistic as a whole number of steps of 1/lcm(n, m).
        return KSResult(round(statistic * lcm) / lcm, exact)
    big, small = sorted((float(n), float(m)), reverse=True)
    return KSResult(statistic, _kstwo_sf(statistic, int(np.round(big * small / (big + small)))))


def _exact_ks_pvalue(n: int, m: int, g: int, statistic: float) -> float | None:
    try:
        from scipy.stats._stats_py import _attempt_exact_2kssamp
    except ImportError:
        return None
    success, _, pvalue = _attempt_exact_2kssamp(n, m, g, statistic, "two-sided")
    return float(np.clip(pvalue, 0, 1)) if success else None


def _kstwo_sf(d: float, n: int) -> float:
    """`np.clip(scipy.stats.kstwo.sf(d, n), 0, 1)`: scipy's `_kolmogn` dispatch for n > 140, whose branches
    with n·d² >= 2.2 are 0 (n·d² >= 370) or `2 * smirnov(n, d)` clipped; any other case asks kstwo."""
    from scipy import special
    from scipy.stats import kstwo

    t = n * d
    if n > 140 and 1.0 < t < n - 1 and d < 0.5:
        nx_squared = t * d
        if nx_squared >= 370.0:
            return 0.0
        if nx_squared >= 2.2:
            return float(np.clip(2 * special.smirnov(n, d), 0.0, 1.0))
    return float(np.clip(kstwo.sf(d, n), 0.0, 1.0))


def _as_table(x: np.ndarray, what: str) -> np.ndarray:
    """A (rows × features) float array; a 1-D sample is one feature."""
    array = np.asarray(x, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{what} must be a non-empty (rows × features) array, got shape {array.shape}")
    return array


def _workspace(n: int, m: int, features: int) -> _Merge:
    """This thread's arrays for comparing n reference rows with m current rows, kept from its last report
    of the same shape: a monitor compares window after window of one size, and fresh arrays of 100,000s
    of values cost a page fault per 4 KiB (a tenth of a 10-feature report's time at 100,000 rows)."""
    merge = getattr(_WORKSPACE, "merge", None)
    if merge is None or (merge.n, merge.m, merge.columns.shape[0]) != (n, m, features):
        merge = _Merge(n, m, features)
        _WORKSPACE.merge = merge
    return merge


def _columns(table: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The (rows × features) table as one contiguous row per feature, transposed block by block (a block
    of rows stays in cache while its columns are copied out, three times faster than a plain transpose)."""
    rows = table.shape[0]
    columns = np.empty((table.shape[1], rows)) if out is None else out
    step = 2048
    for start in range(0, rows, step):
        columns[:, start : start + step] = table[start : start + step].T
    return columns


def _count_distinct(sorted_values: np.ndarray) -> int:
    return 1 + int(np.count_nonzero(sorted_values[1:] != sorted_values[:-1]))


def _distinct_values(sorted_values: np.ndarray) -> np.ndarray:
    return sorted_values[np.flatnonzero(np.append(sorted_values[1:] != sorted_values[:-1], True))]


def _check_finite(smallest: np.ndarray, largest: np.ndarray, what: str) -> None:
    # NaN sorts last and ±inf sit at the ends, so the extremes of sorted data tell whether all is finite.
    if not (np.isfinite(smallest).all() and np.isfinite(largest).all()):
        raise ValueError(f"{what} holds NaN or infinite values; drop or impute them first")


def _sturges_edges(low: np.float64, high: np.float64, size: int) -> np.ndarray:
    """`np.histogram_bin_edges(data, bins="sturges")` from the data's extremes and size alone, step for step
    as numpy computes it (so the edges are the same floats)."""
    width = (high - low) / (np.log2(size) + 1.0)
    if low == high:
        low, high = low - 0.5, high + 0.5
    count = int(np.ceil((high - low) / width)) if width else 1
    edges = np.linspace(low, high, count + 1, endpoint=True)
    if np.any(edges[:-1] >= edges[1:]):
        raise ValueError(f"values span too narrow a range for {count} Sturges bins")
    return edges


def _histogram_sorted(sample: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """`np.histogram(sample, edges)[0]` for a sorted sample: half-open bins, the last one closed."""
    cumulative = np.concatenate(
        (np.searchsorted(sample, edges[:-1], side="left"), np.searchsorted(sample, edges[-1:], side="right"))
    )
    return np.diff(cumulative)


def _fill_zeros(shares: np.ndarray) -> np.ndarray:
    """Evidently's fill for empty bins: a millionth of the smallest share, or 1e-4 if that is larger."""
    smallest = float(np.min(shares[shares != 0]))
    filled = shares.copy()
    filled[filled == 0] = smallest / 10**6 if smallest <= 0.0001 else 0.0001
    return filled


def _psi(reference: np.ndarray, current: np.ndarray) -> float:
    return float(np.sum((reference - current) * np.log(reference / current)))


def _rel_entr(x: float, y: float) -> float:
    """`scipy.special.rel_entr`, branch for branch: log1p where x and y are within a factor of two."""
    if x > 0 and y > 0:
        ratio = x / y
        return x * math.log1p((x - y) / y) if 0.5 < ratio < 2 else x * math.log(ratio)
    return 0.0 if x == 0 and y >= 0 else math.inf
