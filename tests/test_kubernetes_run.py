"""Whole runs on the embedded Kubernetes cluster: the shipped scenario headless, kubectl against the run's
kubeconfig while it runs, no secret in the results' logs, and nothing left after SIGTERM or SIGKILL."""
# ruff: noqa: F811  (pytest fixtures imported from tests/kube_fixtures.py are parameters here)

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlopslab.events import read_events
from tests.conftest import processes_mentioning
from tests.kube_fixtures import k8s_binaries, wait_for  # noqa: F401  (fixture)

pytestmark = [pytest.mark.kubernetes, pytest.mark.slow]


def _events(results: Path) -> list[dict]:
    path = results / "events.jsonl"
    return list(read_events(path)) if path.exists() else []


def _start(results: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mlopslab.cli", "run", "push-vs-pull-k8s", "--results",
                             str(results), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_push_vs_pull_k8s_runs_headless_and_kubectl_sees_the_lanes(tmp_path: Path, k8s_binaries) -> None:
    results = tmp_path / "run"
    proc = _start(results, "--duration", "45")
    try:
        wait_for(lambda: proc.poll() is not None or any(e["kind"] == "run_started" for e in _events(results)),
                 120, "the run to start")
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        shown = subprocess.run([k8s_binaries["kubectl"], "--kubeconfig", str(results / "kubeconfig"), "get",
                                "deploy,rs,pods", "-A"], capture_output=True, text=True, timeout=30)
        assert shown.returncode == 0, shown.stderr
        for lane in ("push", "pull"):
            assert f"{lane}        deployment.apps/model-server   3/3" in shown.stdout, shown.stdout
        assert shown.stdout.count("Running") == 6
        out, err = proc.communicate(timeout=150)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    assert "kubeconfig=" in out and "cluster_ready" in out          # the CLI tells where the kubeconfig is
    summary = json.loads((results / "summary.json").read_text())
    lanes = summary["lanes"]
    assert "ServiceAccount push/ci-runner" in lanes["push"]["credential"]
    assert "ServiceAccount pull/gitops-agent" in lanes["pull"]["credential"]
    for lane in ("push", "pull"):
        v2 = next(r for r in lanes[lane]["releases"] if r["version"] == "2")
        assert v2["failed"] is None and v2["lead"]["traffic_100"] > v2["lead"]["apply_started"]
        assert lanes[lane]["errors"] == 0
    change = lanes["pull"]["live_changes"][0]
    assert change["reverted_by"] == "agent self-heal" and change["reverted_after"] < 5
    assert lanes["push"]["live_changes"][0]["reverted_by"] != "agent self-heal"
    events = _events(results)
    ready = next(e for e in events if e["kind"] == "cluster_ready")
    assert ready["started_in"] < 60 and ready["version"].startswith("v1.")
    stopped = next(e for e in events if e["kind"] == "cluster_stopped")
    assert stopped["seconds"] < 30 and events.index(stopped) < len(events) - 1   # before run_finished
    # the deliveries' tokens are in their 0600 kubeconfigs only: not in events, logs or the env repo
    for lane in ("push", "pull"):
        token = (results / "k8s" / "credentials" / f"{lane}.kubeconfig").read_text().split("token: ")[1].split()[0]
        assert len(token) > 100
        for path in [*results.glob("*.jsonl"), *(results / "logs").rglob("*"), *(results / "k8s" / "logs").rglob("*"),
                     *(results / "envrepo").rglob("*")]:
            if path.is_file():
                assert token not in path.read_text(errors="replace"), path
    assert processes_mentioning(str(results)) == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_no_process_outlives_the_lab(tmp_path: Path, k8s_binaries, sig: signal.Signals) -> None:
    results = tmp_path / "run"
    proc = _start(results, "--duration", "60")
    try:
        wait_for(lambda: proc.poll() is not None or any(e["kind"] == "run_started" for e in _events(results)),
                 120, "the run to start")
        names = {Path(os.readlink(f"/proc/{pid}/exe")).name for pid in processes_mentioning(str(results))
                 if os.path.exists(f"/proc/{pid}/exe")}
        assert {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"} <= names, names
        began = time.monotonic()
        proc.send_signal(sig)
        proc.communicate(timeout=60)
        wait_for(lambda: processes_mentioning(str(results)) == [], 15, "every child to be gone")
        gone_in = time.monotonic() - began
    finally:
        if proc.poll() is None:
            proc.kill()
    assert gone_in < 15
    if sig == signal.SIGTERM:
        assert proc.returncode == 130
        assert json.loads((results / "summary.json").read_text())["status"] == "interrupted"
    else:   # a killed lab wrote no summary, but every event up to then is readable
        assert any(e["kind"] == "run_started" for e in _events(results))
