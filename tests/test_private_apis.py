"""The two private APIs we call, pinned in pyproject.toml: these fail first if an upgrade changes them."""

from __future__ import annotations

import inspect

import numpy as np


def test_scipys_exact_two_sample_ks_helper_still_matches_ks_2samp() -> None:
    """monitor/drift.py computes exact KS p-values through scipy's private lattice-path helper (a fallback
    to ks_2samp exists, but it is the slow path the drift benchmark measures against)."""
    from scipy.stats import ks_2samp
    from scipy.stats._stats_py import _attempt_exact_2kssamp

    from mlopslab.monitor.drift import ks_2samp as ours

    rng = np.random.default_rng(3)
    a, b = rng.normal(size=300), rng.normal(0.2, size=200)
    success, _, pvalue = _attempt_exact_2kssamp(300, 200, 100, ks_2samp(a, b).statistic, "two-sided")
    assert success and abs(pvalue - ks_2samp(a, b).pvalue) < 1e-12
    assert abs(ours(a, b).pvalue - ks_2samp(a, b).pvalue) < 1e-12


def test_textuals_scroll_update_still_takes_the_virtual_size() -> None:
    """tui/widgets/log.py calls Widget._scroll_update(size) so the event log scrolls without a layout."""
    from textual.widget import Widget

    assert list(inspect.signature(Widget._scroll_update).parameters) == ["self", "virtual_size"]
