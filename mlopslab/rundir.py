"""A run's results directory: where a new one goes, and the summary written into it at the end."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlopslab.scenario import Scenario


def new_results_dir(scenario: Scenario, root: Path | None = None) -> Path:
    root = root or Path(os.environ.get("MLOPSLAB_RESULTS", "results"))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = root / f"{scenario.name}-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = root / f"{scenario.name}-{stamp}-{n}"
    return path


def write_summary(directory: Path, snapshot: Callable[[Callable[[Any], Any]], Any]) -> str | None:
    """summary.json and summary.md from the run state (read through `snapshot`); on a storage error both are
    removed (a torn summary is worse than none) and the error is returned."""
    from mlopslab import report

    try:
        snapshot(lambda state: report.write(directory, state))
    except OSError as exc:
        for name in ("summary.json", "summary.md"):
            with contextlib.suppress(OSError):
                (directory / name).unlink(missing_ok=True)
        return str(exc)
    return None
