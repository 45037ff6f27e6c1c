"""Mixture sequential probability ratio test (mSPRT) for a difference in means, with always-valid p-values.

Johari, Koomen, Pekelis and Walsh, "Always Valid Inference: Continuous Monitoring of A/B Tests" (Operations
Research 70(3), 2022; arXiv 1512.04922), §4: the two-sample normal mSPRT with a N(θ0, τ²) mixture over the
difference θ = mean(canary) − mean(stable).

With θ̂ = ȳ_canary − ȳ_stable and V = σ²_canary/n_canary + σ²_stable/n_stable its variance, the mixture
likelihood ratio against H0: θ = θ0 is

    Λ = sqrt(V / (V + τ²)) · exp(τ² (θ̂ − θ0)² / (2 V (V + τ²)))

which for equal arms (n each, common σ²) is the paper's
sqrt(2σ²/(2σ² + nτ²)) · exp(n²τ²(θ̂ − θ0)² / (4σ²(2σ² + nτ²))). θ̂/V is a Brownian motion in the
information 1/V whatever share of traffic each arm gets, so Λ is a martingale under H0 and by Ville's
inequality P(Λ ever reaches 1/α) ≤ α: the always-valid p-value p_n = min(p_{n−1}, 1/Λ_n) may be looked at
after every request and H0 rejected the first time p_n ≤ α, with a false-rejection rate ≤ α however many
looks. The variances are estimated from the data (pooled over both arms, as the paper does for its
implementation); that makes the guarantee approximate for small samples, hence `min_samples` per arm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

ALPHA = 0.05


def mixture_likelihood_ratio(difference: float, variance: float, tau: float, theta0: float = 0.0) -> float:
    """Λ for an observed difference of means with variance `variance`, mixing θ over N(θ0, τ²)."""
    if variance <= 0 or tau <= 0:
        raise ValueError("variance and tau must be positive")
    tau2 = tau * tau
    exponent = tau2 * (difference - theta0) ** 2 / (2.0 * variance * (variance + tau2))
    return math.sqrt(variance / (variance + tau2)) * math.exp(min(exponent, 700.0))


@dataclass(frozen=True)
class Msprt:
    """The running state of one two-sample mSPRT: sufficient statistics per arm and the always-valid p-value.

    Immutable: `update` returns the next state. Feed it the new observations of each arm since the last
    call (per-request values: 1/0 for a success or a correct prediction, a latency in ms, ...).
    """

    tau: float
    alpha: float = ALPHA
    theta0: float = 0.0
    min_samples: int = 30
    n_stable: int = 0
    sum_stable: float = 0.0
    squares_stable: float = 0.0
    n_canary: int = 0
    sum_canary: float = 0.0
    squares_canary: float = 0.0
    p_value: float = 1.0
    likelihood_ratio: float = 1.0
    looks: int = 0
    since: float = -math.inf     # the newest observation time consumed (for callers feeding by time)
    decided: float | None = None  # θ̂ at the look where p first reached α: the direction of the finding

    def update(self, stable: np.ndarray | list[float], canary: np.ndarray | list[float]) -> Msprt:
        s = np.asarray(stable, dtype=np.float64).ravel()
        c = np.asarray(canary, dtype=np.float64).ravel()
        state = replace(self, n_stable=self.n_stable + s.size, sum_stable=self.sum_stable + float(s.sum()),
                        squares_stable=self.squares_stable + float(np.dot(s, s)),
                        n_canary=self.n_canary + c.size, sum_canary=self.sum_canary + float(c.sum()),
                        squares_canary=self.squares_canary + float(np.dot(c, c)))
        if min(state.n_stable, state.n_canary) < self.min_samples:
            return state
        variance = state.variance
        if variance <= 0:   # every observation equal so far: no evidence either way
            return replace(state, looks=state.looks + 1)
        ratio = mixture_likelihood_ratio(state.difference, variance, self.tau, self.theta0)
        p_value = min(state.p_value, 1.0 / ratio)
        decided = state.decided if state.decided is not None or p_value > self.alpha else state.difference
        return replace(state, likelihood_ratio=ratio, p_value=p_value, looks=state.looks + 1, decided=decided)

    @property
    def difference(self) -> float:
        """θ̂ = mean(canary) − mean(stable)."""
        if not self.n_stable or not self.n_canary:
            return math.nan
        return self.sum_canary / self.n_canary - self.sum_stable / self.n_stable

    @property
    def variance(self) -> float:
        """V = σ̂²(1/n_canary + 1/n_stable), σ̂² the variance pooled over both arms around their own means."""
        n, m = self.n_stable, self.n_canary
        if n < 1 or m < 1 or n + m < 3:
            return math.nan
        within = (self.squares_stable - self.sum_stable ** 2 / n) + (self.squares_canary - self.sum_canary ** 2 / m)
        pooled = max(within, 0.0) / (n + m - 2)
        return pooled * (1.0 / n + 1.0 / m)

    @property
    def rejected(self) -> bool:
        return self.p_value <= self.alpha

    def confidence_interval(self) -> tuple[float, float]:
        """The always-valid (1 − α) confidence sequence for θ at this look (the θ0 not rejected):
        θ̂ ± sqrt(V(V + τ²)/τ² · (ln((V + τ²)/V) + 2 ln(1/α)))."""
        v = self.variance
        if not v or math.isnan(v) or v <= 0:
            return (-math.inf, math.inf)
        tau2 = self.tau * self.tau
        half = math.sqrt(v * (v + tau2) / tau2 * (math.log((v + tau2) / v) + 2.0 * math.log(1.0 / self.alpha)))
        return (self.difference - half, self.difference + half)
