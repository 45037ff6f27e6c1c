"""A non-editable install from a wheel carries the shipped scenarios and finds them from any directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_wheel_installed_in_a_fresh_venv_validates_every_shipped_scenario_by_name(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)],
                   check=True, timeout=300)
    (wheel,) = wheels.glob("mlopslab-*.whl")
    venv = tmp_path / "venv"
    # The dependencies (mlflow, textual, ...) come from this interpreter; mlopslab itself only from the wheel.
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120)
    subprocess.run([venv / "bin" / "python", "-m", "pip", "install", "--no-deps", "-q", str(wheel)],
                   check=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}   # nothing but the wheel provides mlopslab

    def mlopslab(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([venv / "bin" / "mlopslab", *args], capture_output=True, text=True, timeout=120,
                              cwd=elsewhere, env=env)

    where = subprocess.run([venv / "bin" / "python", "-c", "import mlopslab, sys; print(mlopslab.__file__)"],
                           capture_output=True, text=True, cwd=elsewhere, env=env, check=True).stdout
    assert where.startswith(str(venv)), f"mlopslab imported from {where}, not from the wheel"
    names = sorted(p.stem for p in (ROOT / "scenarios").glob("*.yaml"))
    listed = mlopslab("scenarios")
    assert listed.returncode == 0 and all(name in listed.stdout for name in names), listed.stdout + listed.stderr
    checked = mlopslab("validate", *names)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.count(": ok (") == len(names)
    version = mlopslab("--version")
    assert version.returncode == 0 and version.stdout.strip().endswith("0.1.0"), version.stdout + version.stderr
