"""Soak: two lanes, headless, a release every minute, for 10 minutes; does anything grow or get lost?

    python benchmarks/bench_soak.py [--duration 600] [--rate 25] [--json benchmarks/results/soak.json]

Runs `mlopslab run` on a generated scenario (push and pull lanes, 3 replicas each, a release at 30 s and
then every 60 s) and, from outside the lab, samples /proc for the lab and every process under it: resident
memory (RSS) and open file descriptors, once the lanes are up and again shortly before the end. Replicas are
replaced by every rollout, so they are compared as a group (mean RSS per replica); the lab, the load
generator and the other long-lived children are compared process by process. Afterwards it counts events
against what the timeline implies and reads the errors outside rollouts from summary.json.

Targets (issue 9): RSS growth < 10 % for the lab and each long-lived child, fds flat, every release rolled
out on every lane, one metrics window per lane-second, 0 errors outside rollouts.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def scenario(duration: int, rate: float) -> str:
    releases = list(range(30, duration - 20, 60))
    timeline = "\n".join(f"  - at: {at}\n    release: {{C: {0.3 if i % 2 else 3.0}, note: \"soak {i + 2}\"}}"
                         for i, at in enumerate(releases))
    lane = "replicas: 3\n    warmup: 0.5\n    rollout: {maxSurge: 1, maxUnavailable: 0, progressDeadlineSeconds: 60}"
    return f"""\
name: soak
description: Two lanes, a release every minute, for a long time.
seed: 11
duration: {duration}
environment: local
model: {{name: soak, data: {{n_features: 8, n_samples: 2000}}, train: {{C: 1.0}}}}
traffic: {{rate: {rate}}}
lanes:
  - name: push
    delivery: push
    {lane}
  - name: pull
    delivery: pull
    {lane}
    poll: {{interval: 5, jitter: 2}}
timeline:
{timeline}
"""


def descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
                parents[int(entry)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        found.append(pid)
        frontier += [child for child, parent in parents.items() if parent == pid]
    return found


def role(pid: int, lab: int) -> str:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "gone"
    if pid == lab:
        return "lab"
    for marker, name in (("serving.server", "replica"), ("loadgen", "loadgen"), ("agent", "agent"),
                         ("git", "git")):
        if marker in cmdline:
            return name
    return cmdline.split(" ")[0].rsplit("/", 1)[-1] or "other"


def sample(lab: int) -> list[dict]:
    out = []
    for pid in descendants(lab):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
            fds = len(os.listdir(f"/proc/{pid}/fd"))
        except (OSError, StopIteration):
            continue
        out.append({"pid": pid, "role": role(pid, lab), "rss_kib": rss, "fds": fds})
    return out


def scenario_clock(events: Path) -> float | None:
    """Seconds on the scenario clock now, once run_started is in the log."""
    if not events.exists():
        return None
    for line in events.read_text().splitlines():
        event = json.loads(line)
        if event["kind"] == "run_started":
            return time.time() - event["wall"]
    return None


def compare(start: list[dict], end: list[dict]) -> dict:
    out: dict = {}
    by_pid = {p["pid"]: p for p in end}
    for proc in start:
        if proc["role"] not in ("replica", "git") and proc["pid"] in by_pid:
            later = by_pid[proc["pid"]]
            out[f"{proc['role']} {proc['pid']}"] = {
                "rss_start_kib": proc["rss_kib"], "rss_end_kib": later["rss_kib"],
                "growth": round(later["rss_kib"] / proc["rss_kib"] - 1, 4),
                "fds_start": proc["fds"], "fds_end": later["fds"]}
    for group in ("replica", "git"):   # replaced by rollouts / GitPython's short-lived helpers: as a group
        members = [[p for p in s if p["role"] == group] for s in (start, end)]
        if all(members):
            means = [sum(p["rss_kib"] for p in m) / len(m) for m in members]
            out[f"{group} (mean of each)"] = {
                "count_start": len(members[0]), "count_end": len(members[1]),
                "rss_start_kib": round(means[0]), "rss_end_kib": round(means[1]),
                "growth": round(means[1] / means[0] - 1, 4),
                "fds_start": sum(p["fds"] for p in members[0]), "fds_end": sum(p["fds"] for p in members[1])}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=600)
    parser.add_argument("--rate", type=float, default=25.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mlopslab-soak-"))
    path = work / "soak.yaml"
    path.write_text(scenario(args.duration, args.rate))
    results = work / "results"
    lab = subprocess.Popen([sys.executable, "-m", "mlopslab", "run", str(path), "--results", str(results),
                            "--quiet"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    events = results / "events.jsonl"
    first = last = None
    try:
        while lab.poll() is None:
            now = scenario_clock(events)
            if now is not None and first is None and now >= 10:
                first = sample(lab.pid)
            if now is not None and now >= args.duration - 5:
                last = sample(lab.pid)
                break
            time.sleep(1.0)
        output = lab.communicate(timeout=args.duration + 120)[0]
    except BaseException:
        lab.send_signal(signal.SIGINT)
        lab.wait(60)
        raise
    if first is None or last is None:
        print(output)
        print("the run ended before it could be sampled", file=sys.stderr)
        return 1

    kinds: Counter = Counter()
    per_lane: Counter = Counter()
    for line in events.read_text().splitlines():
        event = json.loads(line)
        kinds[event["kind"]] += 1
        if event.get("lane"):
            per_lane[(event["kind"], event["lane"])] += 1
    releases = len(range(30, args.duration - 20, 60))
    summary = json.loads((results / "summary.json").read_text())
    lanes = {}
    for name, lane in summary["lanes"].items():
        during = sum(r["errors_during_rollout"] or 0 for r in lane["releases"])
        lanes[name] = {
            "rollouts_done": per_lane[("rollout_done", name)], "expected_rollouts": releases + 1,
            "traffic_100": per_lane[("traffic_100", name)], "metrics_windows": per_lane[("metrics", name)],
            "expected_windows": args.duration, "requests": lane["requests"], "errors": lane["errors"],
            "errors_outside_rollouts": lane["errors"] - during}
    report = {"duration": args.duration, "rate": args.rate, "status": summary["status"],
              "exit_code": lab.returncode, "model_registered": kinds["model_registered"],
              "expected_models": releases + 1, "commits": kinds["commit"], "lanes": lanes,
              "processes": compare(first, last), "processes_at_start": len(first), "processes_at_end": len(last),
              "results": str(results)}
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
