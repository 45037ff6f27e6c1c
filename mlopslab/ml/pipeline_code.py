"""A lane's training pipeline as code: the built-in version, and a git repository of versions with its CI.

At MLOps level 2 a change of `pipelines/<lane>/{train.py,test_train.py}` is committed to `PipelineRepo`,
its test file runs in a fresh Python process (`run_tests`), and only a passing commit becomes the code
the lane retrains with (ml/pipeline.py decides when; this module only holds and checks the code).
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CI_TIMEOUT = 60.0

TRAIN_CODE = '''"""Training pipeline of lane {lane}: how recent labelled rows become a model."""
import numpy as np

PARAMS = {{"C": {C}, "max_iter": 200, "min_rows": {min_rows}, "max_rows": {max_rows}, "holdout": 0.25}}


def prepare(X, y):
    """Cleans a batch of labelled rows before training: {prepare_doc}."""
{prepare_body}
'''

PREPARE_OK = "    X = np.clip(np.asarray(X, dtype=float), -8.0, 8.0)\n    return X, np.asarray(y)"
PREPARE_BROKEN = "    X = np.asarray(X, dtype=float)\n    return X, 1 - np.asarray(y)   # bug: labels inverted"

TEST_CODE = '''"""CI for the training pipeline of lane {lane}: run by the lab in a fresh process."""
import numpy as np

from train import PARAMS, prepare


def test_prepare_keeps_rows_and_labels():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 4))
    y = (rng.random(50) > 0.5).astype(int)
    X2, y2 = prepare(X, y)
    assert len(X2) == len(y2) == 50
    assert (np.asarray(y2) == y).all(), "prepare must not change labels"


def test_params_are_sane():
    assert PARAMS["C"] > 0 and 0 < PARAMS["holdout"] < 0.5 and PARAMS["min_rows"] >= 50


if __name__ == "__main__":
    for name, test in sorted(dict(globals()).items()):
        if name.startswith("test_") and callable(test):
            test()
            print("ok", name)
'''


@dataclass
class PipelineCode:
    """One version of a lane's pipeline code."""

    version: str                  # "builtin" or the short sha of the pipelines repo commit
    params: dict[str, Any]
    prepare: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
    sha: str | None = None
    note: str = ""


def default_code(lane: str, C: float = 1.0, min_rows: int = 300, max_rows: int = 2000) -> PipelineCode:
    """The pipeline every lane starts with; `min_rows` labelled rows after a change before it trains (the
    scenario's model.retrain), at most `max_rows` of them."""
    namespace = exec_source(TRAIN_CODE.format(lane=lane, C=C, min_rows=min_rows, max_rows=max(max_rows, min_rows),
                                               prepare_doc="clip outliers", prepare_body=PREPARE_OK))
    return PipelineCode("builtin", dict(namespace["PARAMS"]), namespace["prepare"], note="built in")


class PipelineRepo:
    """A git repository of pipeline code, `pipelines/<lane>/`, with CI that runs the committed tests."""

    def __init__(self, path: Path) -> None:
        import git

        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.git = git.Repo.init(path, initial_branch="main")
        with self.git.config_writer() as config:
            config.set_value("user", "name", "mlopslab")
            config.set_value("user", "email", "lab@mlopslab.invalid")
        self._lock = threading.Lock()

    def commit(self, lane: str, files: dict[str, str], message: str) -> str:
        with self._lock:
            lane_dir = self.path / "pipelines" / lane
            lane_dir.mkdir(parents=True, exist_ok=True)
            for name, text in files.items():
                (lane_dir / name).write_text(text)
            self.git.index.add([str((lane_dir / name).relative_to(self.path)) for name in files])
            return self.git.index.commit(message).hexsha

    def export(self, sha: str, lane: str, target: Path) -> Path:
        """The lane's pipeline files at `sha`, read from git objects, written to `target`."""
        with self._lock:  # one Repo object, one `git cat-file` process: not shared across threads at once
            tree = self.git.commit(sha).tree / "pipelines" / lane
            target.mkdir(parents=True, exist_ok=True)
            for blob in tree.blobs:
                (target / blob.name).write_bytes(blob.data_stream.read())
        return target

    def run_tests(self, sha: str, lane: str, work: Path) -> tuple[bool, str, float]:
        """CI: the committed test file, run in a fresh Python process in an export of the commit."""
        directory = self.export(sha, lane, work / sha[:12])
        started = time.monotonic()
        try:
            done = subprocess.run([sys.executable, "test_train.py"], cwd=directory, capture_output=True, text=True,
                                  timeout=CI_TIMEOUT)
            ok, output = done.returncode == 0, (done.stdout + done.stderr)
        except subprocess.TimeoutExpired:
            ok, output = False, f"tests timed out after {CI_TIMEOUT:.0f} s"
        return ok, output[-1500:], time.monotonic() - started


def failed_test(output: str) -> str:
    """CI's output in one line: the test that failed and why (`test_x: AssertionError: message`)."""
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    tests = re.findall(r'File ".*", line \d+, in (test_\w+)', output)
    why = lines[-1] if lines else "no output"
    return f"{tests[-1]}: {why}" if tests else why


def exec_source(source: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "mlopslab_pipeline"}
    exec(compile(source, "<pipeline train.py>", "exec"), namespace)
    return namespace
