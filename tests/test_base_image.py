"""Docker base images without surprises: a missing configured base falls back to the offline base, and with
no usable base a run stops before training with exit 2 and the command that builds one (the Lab's own stop,
the TUI's path, is tested in test_what_a_class_sees.py). No test pulls from a registry:
$MLOPSLAB_BASE_FALLBACK keeps the one pull attempt off (the machine has no registry anyway)."""
# ruff: noqa: F811  (pytest fixtures imported from tests/docker_fixtures.py are parameters here)

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mlopslab.envs import baseimage, images
from tests.docker_fixtures import base_image, docker_client  # noqa: F401

pytestmark = [pytest.mark.docker]

REPO = Path(__file__).resolve().parents[1]
MISSING = "mlopslab-test/no-such-base:never"


def _scenario(tmp_path: Path, base: str, duration: float = 4) -> Path:
    path = tmp_path / "docker-base.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: docker-base
        description: one push lane in Docker whose configured base image is missing
        seed: 3
        duration: {duration}
        environment: {{kind: docker, base_image: "{base}"}}
        model:
          name: churn
          data: {{n_features: 4, n_samples: 600}}
        traffic: {{rate: 5}}
        lanes:
          - {{name: push, delivery: push, replicas: 1, warmup: 0.2}}
        """))
    return path


def _env(**extra: str) -> dict[str, str]:
    """The user's environment with none of the base-image variables exported, plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLOPSLAB_BASE_IMAGE", "MLOPSLAB_AGENT_BASE_IMAGE", baseimage.FALLBACK_ENV)}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return {**env, **extra}


def _run(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 200) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlopslab", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=timeout)


def test_missing_configured_base_resolves_to_the_offline_base(docker_client, base_image, monkeypatch):
    monkeypatch.delenv("MLOPSLAB_BASE_IMAGE", raising=False)
    monkeypatch.delenv("MLOPSLAB_AGENT_BASE_IMAGE", raising=False)
    assert base_image == images.OFFLINE_BASE or images.image_present(docker_client, images.OFFLINE_BASE)
    choice = baseimage.resolve(docker_client, MISSING, steps=("offline",))
    assert (choice.image, choice.how, choice.configured) == (images.OFFLINE_BASE, "offline", MISSING)
    present = baseimage.resolve(docker_client, images.OFFLINE_BASE, steps=())
    assert (present.image, present.how) == (images.OFFLINE_BASE, "present")


def test_no_usable_base_raises_naming_the_build_command(docker_client, base_image):
    with pytest.raises(baseimage.BaseImageError) as caught:
        baseimage.resolve(docker_client, MISSING, steps=())
    assert baseimage.BUILD_COMMAND in str(caught.value)
    assert MISSING in str(caught.value)


def test_a_failed_pull_is_tried_once_and_named_in_the_error(docker_client):
    """The pull step against a registry address on 127.0.0.1 where nothing listens: refused at once."""
    name = "127.0.0.1:9/mlopslab-test/none:never"
    assert baseimage.plan(docker_client, name, steps=("pull",)).how == "pull"
    with pytest.raises(baseimage.BaseImageError) as caught:
        baseimage.resolve(docker_client, name, steps=("pull",))
    assert "pulling it failed" in str(caught.value) and "127.0.0.1:9" in str(caught.value)
    assert baseimage.BUILD_COMMAND in str(caught.value)


def test_doctor_says_which_base_a_run_would_use(docker_client, base_image, monkeypatch):
    from mlopslab import doctor

    monkeypatch.delenv(baseimage.FALLBACK_ENV, raising=False)
    present = doctor._base_checks(docker_client, images.OFFLINE_BASE)[0]
    assert present.ok and "present" in present.detail
    offline = doctor._base_checks(docker_client, MISSING)[0]
    assert offline.ok and f"the offline base {images.OFFLINE_BASE} is used instead" in offline.detail
    monkeypatch.setenv(baseimage.FALLBACK_ENV, "pull")
    pull = doctor._base_checks(docker_client, MISSING)[0]
    assert pull.ok and "pulls it once" in pull.detail
    monkeypatch.setenv(baseimage.FALLBACK_ENV, "")
    none = doctor._base_checks(docker_client, MISSING)[0]
    assert not none.ok and none.fix.startswith(baseimage.BUILD_COMMAND)
    assert "stops before training" in none.detail


def test_run_without_usable_base_exits_2_before_training(docker_client, base_image, tmp_path):
    results = tmp_path / "results"
    done = _run(["run", str(_scenario(tmp_path, MISSING)), "--results", str(results)],
                _env(**{baseimage.FALLBACK_ENV: ""}), tmp_path, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "mlopslab images build-base" in done.stderr
    assert MISSING in done.stderr
    assert "Traceback" not in done.stderr
    assert not (results / "events.jsonl").exists()  # nothing started: no run, no training, no MLflow store
    assert not (results / "mlflow").exists()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_docker_run_with_missing_base_and_no_exported_variable_uses_the_offline_base(docker_client, base_image,
                                                                                   tmp_path):
    results = tmp_path / "results"
    done = _run(["run", str(_scenario(tmp_path, MISSING)), "--results", str(results)],
                _env(**{baseimage.FALLBACK_ENV: "offline"}), tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"{MISSING} is missing: the offline base {images.OFFLINE_BASE} is used instead" in done.stdout
    events = [json.loads(line) for line in (results / "events.jsonl").read_text().splitlines()]
    chosen = next(e for e in events if e["kind"] == "base_image")
    assert (chosen["configured"], chosen["image"], chosen["how"]) == (MISSING, images.OFFLINE_BASE, "offline")
    builds = [e for e in events if e["kind"] == "image_build_started"]
    assert builds and all(e["base"] == images.OFFLINE_BASE for e in builds)
    assert any(e["kind"] == "traffic_100" and e["lane"] == "push" for e in events)
    assert events[-1]["kind"] == "run_finished" and events[-1]["status"] == "ok"


def test_build_base_without_debootstrap_says_how_to_get_it(docker_client, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    env = _env(PATH=str(bin_dir))  # no debootstrap on PATH
    done = _run(["images", "build-base", "--no-agent", "--base", MISSING], env, tmp_path, timeout=60)
    assert done.returncode == 1
    assert "debootstrap is not installed" in done.stderr and "apt-get install -y debootstrap" in done.stderr
    assert "Traceback" not in done.stderr


def test_build_base_with_the_images_present_builds_nothing(docker_client, base_image, tmp_path):
    done = _run(["images", "build-base", "--no-agent"], _env(), tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"{images.OFFLINE_BASE}: present" in done.stderr
    assert "debootstrap" not in done.stderr
