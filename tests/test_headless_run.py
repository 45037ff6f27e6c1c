"""`mlopslab run`: a whole scenario headless — releases reach 100 % in both lanes, results are written,
Ctrl-C or SIGTERM mid-rollout leaves no child process and a readable record."""

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

SCENARIO = """\
name: quick
description: two lanes, one release, one manual change
seed: 5
duration: {duration}
model: {{name: churn, data: {{n_samples: 1500}}}}
traffic: {{rate: 30}}
lanes:
  - {{name: push, delivery: push, {lane}}}
  - {{name: pull, delivery: pull, {lane}, poll: {{interval: 2, jitter: 1}}}}
timeline:
  - at: 2
    release: {{C: 0.2, note: second}}
  - at: {change_at}
    manual_change: {{lane: all, replicas: 1}}
narration:
  - at: 1
    text: hello
"""
# both lanes alike but for how they deliver, so the comparison is fair
LANE = "replicas: 2, warmup: {warmup}, readiness: {{period: 0.05}}, rollout: {{maxSurge: 1, maxUnavailable: 0}}"


def _write(tmp_path: Path, duration: float = 16, warmup: float = 0.2, change_at: float = 9) -> Path:
    path = tmp_path / "quick.yaml"
    path.write_text(SCENARIO.format(duration=duration, change_at=change_at, lane=LANE.format(warmup=warmup)))
    return path


@pytest.mark.slow
def test_release_reaches_all_traffic_in_both_lanes_and_only_pull_self_heals(tmp_path: Path) -> None:
    results = tmp_path / "results"
    done = subprocess.run([sys.executable, "-m", "mlopslab.cli", "run", str(_write(tmp_path)), "--results",
                           str(results)], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    events = list(read_events(results / "events.jsonl"))
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "lab_prepared" and kinds[-1] == "run_finished"
    release = next(e for e in events if e["kind"] == "commit" and e["version"] == "2")
    for lane in ("push", "pull"):
        full = [e for e in events if e["kind"] == "traffic_100" and e["lane"] == lane and e["version"] == "2"]
        assert full, f"{lane} never reached 100 % on v2"
        detected = next(e for e in events if e["kind"] == "detected" and e["lane"] == lane
                        and e["sha"] == release["sha"])
        assert detected["t"] >= release["t"]
    push_detect = next(e for e in events if e["kind"] == "detected" and e["lane"] == "push" and e["sha"] == release["sha"])
    pull_detect = next(e for e in events if e["kind"] == "detected" and e["lane"] == "pull" and e["sha"] == release["sha"])
    assert push_detect["how"] == "webhook" and push_detect["t"] - release["t"] < 1.5
    assert 0 <= pull_detect["t"] - release["t"] <= 2 + 1 + 0.5
    reverted = {e["lane"] for e in events if e["kind"] == "live_reverted"}
    assert reverted == {"pull"}
    summary = json.loads((results / "summary.json").read_text())
    assert summary["status"] == "ok"
    push_v2 = next(r for r in summary["lanes"]["push"]["releases"] if r["version"] == "2")
    assert push_v2["lead"]["traffic_100"] is not None and push_v2["errors_during_rollout"] == 0
    pull_change = summary["lanes"]["pull"]["live_changes"][0]
    assert pull_change["reverted_after"] is not None and summary["lanes"]["push"]["live_changes"][0]["reverted_after"] is None
    assert "| push (push)" in (results / "summary.md").read_text()
    assert summary["lanes"]["push"]["errors"] == 0 and summary["lanes"]["pull"]["errors"] == 0
    metrics = [e for e in events if e["kind"] == "metrics" and e["lane"] == "push"]
    assert metrics and all(m["p99"] is None or m["p99"] > 0 for m in metrics)
    requests = (results / "requests.jsonl").read_text().splitlines()
    assert len(requests) > 100 and {"lane", "v", "lat", "st"} <= set(json.loads(requests[-1]))
    assert "commit → 100% traffic" in done.stdout
    assert processes_mentioning(str(results)) == []
    again = subprocess.run([sys.executable, "-m", "mlopslab.cli", "run", str(_write(tmp_path)), "--results",
                            str(results)], capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "already holds a run" in again.stderr  # results are never mixed


@pytest.mark.slow
@pytest.mark.parametrize("sig, twice", [(signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGINT, True)],
                         ids=["ctrl-c", "sigterm", "ctrl-c-twice"])
def test_interrupt_mid_rollout_leaves_no_child_process(tmp_path: Path, sig: signal.Signals, twice: bool) -> None:
    results = tmp_path / "results"
    proc = subprocess.Popen([sys.executable, "-m", "mlopslab.cli", "run", str(_write(tmp_path, warmup=2.0)),
                             "--results", str(results)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    started = False
    while time.monotonic() < deadline and not started:  # wait until the v2 rollout is under way
        if (results / "events.jsonl").exists():
            started = any(e["kind"] == "replica_started" and e.get("version") == "2"
                          for e in read_events(results / "events.jsonl"))
        time.sleep(0.1)
    assert started, proc.stderr.read() if proc.poll() is not None else "rollout never started"
    assert processes_mentioning(str(results))  # servers and traffic are running now
    proc.send_signal(sig)
    if twice:  # an impatient second Ctrl-C, during the clean-up or as the program exits, changes nothing
        time.sleep(0.3)
        if proc.poll() is None:
            proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    assert processes_mentioning(str(results)) == []
    events = list(read_events(results / "events.jsonl"))
    assert events[-1]["kind"] == "run_finished" and events[-1]["status"] == "interrupted"
    assert json.loads((results / "summary.json").read_text())["status"] == "interrupted"


@pytest.mark.slow
def test_a_crashed_load_generator_fails_the_run_cleanly(tmp_path: Path) -> None:
    results = tmp_path / "results"
    proc = subprocess.Popen([sys.executable, "-m", "mlopslab.cli", "run", str(_write(tmp_path, duration=30)),
                             "--results", str(results)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not (
            (results / "events.jsonl").exists()
            and any(e["kind"] == "run_started" for e in read_events(results / "events.jsonl"))):
        time.sleep(0.1)
    loadgen = [pid for pid in processes_mentioning("mlopslab.traffic.loadgen") if pid in
               processes_mentioning(str(results))]
    assert len(loadgen) == 1
    os.kill(loadgen[0], signal.SIGKILL)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "Traceback" not in err
    events = list(read_events(results / "events.jsonl"))
    assert any(e["kind"] == "error" and "load generator exited" in e["message"] for e in events)
    assert events[-1]["kind"] == "run_finished" and events[-1]["status"] == "failed"
    assert processes_mentioning(str(results)) == []
