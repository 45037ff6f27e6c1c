"""Sequential change detectors on a stream of scalars: CUSUM, Page–Hinkley, and their calibration.

A stream is, for example, the score a model gives each request or one feature's value, standardised by the
reference mean and standard deviation. A detector takes one value at a time and raises an alarm when the
stream's mean has moved. Two numbers describe it: the average run length to a false alarm when nothing
changed (ARL0) and the delay to an alarm after a change. For a mean shift of `delta` standard deviations
no detector with false-alarm rate 1/ARL0 is, to first order, faster than 2·ln(ARL0)/delta² samples
(Lorden 1971); `detection_floor` gives that number to compare a measured delay with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_SIEGMUND_CORRECTION = 1.166  # overshoot correction of Siegmund's approximation for normal data: 2·0.583
_BLOCK_VALUES = 4_000_000  # normal draws per simulation block (32 MB)


class _TwoSums:
    """An upper and a lower cumulative sum and a latched alarm: what CUSUM and Page–Hinkley share."""

    two_sided: bool

    def reset(self) -> None:
        self.upper = 0.0
        self.lower = 0.0
        self.n = 0
        self.alarm = False

    @property
    def statistic(self) -> float:
        """The larger of the two sums (two-sided) or the upper sum, to compare with the threshold."""
        return max(self.upper, self.lower) if self.two_sided else self.upper


class Cusum(_TwoSums):
    """Tabular CUSUM (Page 1954; Montgomery, Introduction to Statistical Quality Control, §9.1).

    On standardised values z = (x - mu0) / sigma it keeps
        C+ = max(0, C+ + z - k)   and   C- = max(0, C- - z - k)
    and alarms when C+ exceeds h, or (two-sided, the default) when either does; k and h are in units of
    sigma. The two-sided scheme with k = 0.5, h = 4 is Montgomery's Table 9.3: ARL0 ≈ 168 in control and
    ≈ 8.4 samples after a 1σ shift. The upper one-sided scheme (two_sided=False) watches upward shifts only;
    with the same k, h it false-alarms half as often (ARL0 ≈ 336) and is as fast after an upward shift.

    Once raised, the alarm stays until `reset()`.
    """

    def __init__(
        self, k: float = 0.5, h: float = 4.0, mu0: float = 0.0, sigma: float = 1.0, two_sided: bool = True
    ) -> None:
        if sigma <= 0:
            raise ValueError("sigma must be positive")
        if k < 0 or h <= 0:
            raise ValueError("need k >= 0 and h > 0")
        self.k, self.h, self.mu0, self.sigma, self.two_sided = k, h, mu0, sigma, two_sided
        self.reset()

    def update(self, x: float) -> bool:
        """Take one value; True while in alarm."""
        z = (x - self.mu0) / self.sigma
        self.upper = max(0.0, self.upper + z - self.k)
        self.lower = max(0.0, self.lower - z - self.k)
        self.n += 1
        self.alarm = self.alarm or self.statistic > self.h
        return self.alarm


class PageHinkley(_TwoSums):
    """Page–Hinkley test as river and scikit-multiflow define it.

    With x̄ the mean of every value since the last reset,
        m+ = max(0, alpha·m+ + x - x̄ - delta)
    alarms when m+ >= lambda_ (an upward change); with two_sided=True the mirrored
        m- = max(0, alpha·m- + x̄ - x - delta)
    watches downward changes too. `delta` is the magnitude of change tolerated, `lambda_` the alarm
    threshold, `alpha` a forgetting factor (1: none). No alarm before `min_instances` values (river's own
    counter lets one value earlier through). Once raised, the alarm stays until `reset()`.
    """

    def __init__(
        self, delta: float, lambda_: float, alpha: float = 1.0, min_instances: int = 30, two_sided: bool = False
    ) -> None:
        if lambda_ <= 0 or delta < 0 or not 0 < alpha <= 1:
            raise ValueError("need lambda_ > 0, delta >= 0 and 0 < alpha <= 1")
        self.delta, self.lambda_, self.alpha = delta, lambda_, alpha
        self.min_instances, self.two_sided = min_instances, two_sided
        self.reset()

    def reset(self) -> None:
        super().reset()
        self.mean = 0.0

    def update(self, x: float) -> bool:
        """Take one value; True while in alarm."""
        self.n += 1
        self.mean += (x - self.mean) / self.n
        self.upper = max(0.0, self.alpha * self.upper + x - self.mean - self.delta)
        if self.two_sided:
            self.lower = max(0.0, self.alpha * self.lower + self.mean - x - self.delta)
        self.alarm = self.alarm or (self.n >= self.min_instances and self.statistic >= self.lambda_)
        return self.alarm


def siegmund_arl(h: float, k: float = 0.5, shift: float = 0.0, two_sided: bool = True) -> float:
    """Average run length of a CUSUM on N(shift, 1) values by Siegmund's approximation.

    One side: ARL = (exp(-2Δb) + 2Δb - 1) / (2Δ²) with Δ = shift - k and b = h + 1.166 (b² when Δ = 0);
    two sides combine as 1/ARL = 1/ARL+ + 1/ARL-. Within a few percent of the exact ARL for h ≥ 2.
    """
    upper = _siegmund_one_sided(h, shift - k)
    if not two_sided:
        return upper
    return 1.0 / (1.0 / upper + 1.0 / _siegmund_one_sided(h, -shift - k))


def cusum_threshold_for_arl0(
    arl0: float,
    k: float = 0.5,
    two_sided: bool = True,
    refine_runs: int = 0,
    rng: np.random.Generator | int | None = None,
) -> float:
    """The h whose in-control ARL is `arl0`.

    Siegmund's approximation solved by bisection; it overstates the ARL by a few percent at large h.
    With `refine_runs` > 0, two Newton steps on ln ARL correct h towards the ARL0 that many simulated runs
    measure, using Siegmund's slope d ln ARL / dh (accurate where its level is not).
    """
    if arl0 <= 1:
        raise ValueError("arl0 must exceed 1")
    low, high = 0.0, 1.0
    while siegmund_arl(high, k, 0.0, two_sided) < arl0:
        high *= 2
    while high - low > 1e-10:
        middle = (low + high) / 2
        if siegmund_arl(middle, k, 0.0, two_sided) < arl0:
            low = middle
        else:
            high = middle
    h = (low + high) / 2
    if refine_runs > 0:
        generator = np.random.default_rng(rng)
        for _ in range(2):
            measured = float(np.mean(cusum_run_lengths(h, k, 0.0, refine_runs, two_sided, generator)))
            slope = (_log_arl0(h + 1e-4, k, two_sided) - _log_arl0(h, k, two_sided)) / 1e-4
            h += (math.log(arl0) - math.log(measured)) / slope
    return h


def cusum_run_lengths(
    h: float,
    k: float = 0.5,
    shift: float = 0.0,
    n_runs: int = 10_000,
    two_sided: bool = True,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Run lengths (samples up to and including the alarm) of `n_runs` CUSUMs started from zero on
    N(shift, 1) values: the mean is ARL0 when shift = 0 and the detection delay of a change at the
    first sample otherwise.

    All runs advance together in blocks. Within a block the recursion S = max(0, S + y) has the closed
    form S_t = W_t - min(-S_0, min_{j<=t} W_j), W the running sum of y, so a block is a cumulative sum and
    a cumulative minimum per run.
    """
    generator = np.random.default_rng(rng)
    lengths = np.zeros(n_runs, dtype=np.int64)
    active = np.arange(n_runs)
    upper = np.zeros(n_runs)
    lower = np.zeros(n_runs)
    elapsed = 0
    while active.size:
        block = int(min(8192, max(64, _BLOCK_VALUES // active.size)))
        z = generator.standard_normal((active.size, block))
        z += shift
        up = _lindley(z - k, upper[active])
        alarm = up > h
        if two_sided:
            down = _lindley(-z - k, lower[active])
            alarm |= down > h
            lower[active] = down[:, -1]
        upper[active] = up[:, -1]
        hit = alarm.any(axis=1)
        lengths[active[hit]] = elapsed + np.argmax(alarm[hit], axis=1) + 1
        active = active[~hit]
        elapsed += block
    return lengths


def detection_floor(arl0: float, delta: float) -> float:
    """Lorden's first-order bound on the delay to detect a shift of `delta` σ at false-alarm ARL `arl0`:
    ln(ARL0) over the Kullback–Leibler information δ²/2 of one sample, i.e. 2·ln(ARL0)/δ² samples.

    It is the leading term as ARL0 grows. At a finite ARL0 the best detector (a CUSUM with k = δ/2,
    Moustakides 1986) differs from it by a term of order (1 + |ln δ|)/δ² samples: below it for small
    shifts, above it for large ones (the overshoot of the last sample). A ratio near 1 means close to
    optimal; a ratio below 1 is no contradiction.
    """
    if arl0 <= 1 or delta == 0:
        raise ValueError("need arl0 > 1 and a non-zero delta")
    return 2.0 * math.log(arl0) / delta**2


@dataclass(frozen=True)
class DetectionDelay:
    """How long an alarm took after a known change.

    `samples` counts the post-change values the detector consumed, the alarming one included (the
    convention of an out-of-control ARL); `seconds` is the time those samples take at the given rate.
    """

    samples: int
    seconds: float | None = None


def detection_delay(change_index: int, alarm_index: int, rate: float | None = None) -> DetectionDelay:
    """Delay of an alarm raised on sample `alarm_index` after a change whose first sample is
    `change_index` (both 0-based), in samples and, given `rate` samples per second, in seconds."""
    if alarm_index < change_index:
        raise ValueError(f"alarm at {alarm_index} precedes the change at {change_index}: a false alarm")
    if rate is not None and rate <= 0:
        raise ValueError("rate must be positive")
    samples = alarm_index - change_index + 1
    return DetectionDelay(samples, samples / rate if rate is not None else None)


def _log_arl0(h: float, k: float, two_sided: bool) -> float:
    return math.log(siegmund_arl(h, k, 0.0, two_sided))


def _siegmund_one_sided(h: float, drift: float) -> float:
    b = h + _SIEGMUND_CORRECTION
    if abs(drift) < 1e-12:
        return b * b
    return (math.exp(-2.0 * drift * b) + 2.0 * drift * b - 1.0) / (2.0 * drift * drift)


def _lindley(increments: np.ndarray, start: np.ndarray) -> np.ndarray:
    """S_t = max(0, S_{t-1} + y_t) along each row from S_0 = `start`, in closed form."""
    walk = np.cumsum(increments, axis=1)
    floor = np.minimum(np.minimum.accumulate(walk, axis=1), -start[:, None])
    return walk - floor
