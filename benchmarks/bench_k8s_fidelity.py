"""The lab's own rolling-update controller (local) against the real Deployment controller (kubernetes with
the lab's node running local pods): same scenario, same machine, one run.

    python benchmarks/bench_k8s_fidelity.py [--scenario scenarios/push-vs-pull.yaml] [--rounds 2]
                                            [--readiness 1.0] [--json benchmarks/results/k8s-fidelity.json]

For every lane and release after the first it compares:
- the sequence of replica starts (+) and stops (-) between apply and rollout done, in order;
- the rollout duration, apply -> 100 % of traffic on the new version, as a ratio kubernetes / local;
and reports the control plane's start time and memory (RSS of etcd, kube-apiserver,
kube-controller-manager and kube-scheduler, sampled through the run), and the lead-time table
(commit -> detected, commit -> 100 %) in the form used for Docker.

Both runs probe readiness every `--readiness` seconds: a pod's readinessProbe has whole seconds only
(periodSeconds >= 1), so the local run is given the same period instead of its 0.2 s default.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlopslab.events import read_events  # noqa: E402

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")


def scenario_file(source: Path, kind: str, readiness: float, directory: Path) -> Path:
    doc = yaml.safe_load(source.read_text())
    doc["name"] = f"{doc['name']}-{kind}"
    doc["environment"] = {"kind": kind}
    for lane in doc["lanes"]:
        lane["readiness"] = {"period": readiness}
    path = directory / f"{kind}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def rss_sampler(results: Path, stop: threading.Event, samples: list[dict[str, float]]) -> None:
    """Every 0.5 s: RSS (MiB) of each control-plane process of this run."""
    from tests.conftest import processes_mentioning

    while not stop.wait(0.5):
        sample: dict[str, float] = {}
        for pid in processes_mentioning(str(results)):
            try:
                name = Path(f"/proc/{pid}/exe").resolve().name
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            if name in COMPONENTS:
                kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
                sample[name] = sample.get(name, 0.0) + kb / 1024
        if sample:
            samples.append(sample)


def run(path: Path, results: Path, sample_rss: bool) -> tuple[list[dict], dict, list[dict[str, float]]]:
    stop, samples = threading.Event(), []
    sampler = threading.Thread(target=rss_sampler, args=(results, stop, samples), daemon=True)
    if sample_rss:
        sampler.start()
    done = subprocess.run([sys.executable, "-m", "mlopslab.cli", "run", str(path), "--results", str(results)],
                          capture_output=True, text=True, timeout=900)
    stop.set()
    if done.returncode != 0:
        raise SystemExit(f"{path.name}: exit {done.returncode}\n{done.stderr[-3000:]}")
    return list(read_events(results / "events.jsonl")), json.loads((results / "summary.json").read_text()), samples


def sequences(events: list[dict]) -> dict[tuple[str, str], str]:
    """{(lane, version): '+-+-+-'}: starts of the new version (+) and of old ones (o), and stops of old ones (-),
    from apply to rollout done."""
    out: dict[tuple[str, str], str] = {}
    open_: dict[str, str] = {}
    for e in events:
        lane, kind = e.get("lane"), e["kind"]
        if kind == "apply_started":
            open_[lane] = str(e["version"])
            out.setdefault((lane, str(e["version"])), "")
        elif lane in open_:
            version = open_[lane]
            if kind == "replica_started":   # o: an old version's replica (a scaling event scales old first)
                out[(lane, version)] += "+" if str(e.get("version")) == version else "o"
            elif kind == "replica_terminating" and str(e.get("version")) != version:
                out[(lane, version)] += "-"
            elif kind == "rollout_done" and str(e.get("version")) == version:
                del open_[lane]
    return {k: v for k, v in out.items() if k[1] != "1"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=Path, default=ROOT / "scenarios" / "push-vs-pull.yaml")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--readiness", type=float, default=1.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows: dict[str, list] = {"local": [], "kubernetes": []}
    starts, stops, rss = [], [], []
    with tempfile.TemporaryDirectory(prefix="k8s-fidelity-") as tmp:
        base = Path(tmp)
        for round_ in range(args.rounds):
            for kind in ("local", "kubernetes"):   # back to back, alternating
                results = base / f"{kind}-{round_}"
                events, summary, samples = run(scenario_file(args.scenario, kind, args.readiness, base), results,
                                               kind == "kubernetes")
                rows[kind].append((sequences(events), summary))
                if kind == "kubernetes":
                    starts.append(next(e["started_in"] for e in events if e["kind"] == "cluster_ready"))
                    stops.append(next(e["seconds"] for e in events if e["kind"] == "cluster_stopped"))
                    rss += samples
    report: dict = {"rollouts": [], "lead": [], "control_plane": {}}
    print(f"\nrollout fidelity, {args.rounds} rounds, readiness probe every {args.readiness:g} s")
    print(f"{'lane':<6} {'version':<8} {'local sequence':<26} {'k8s sequence':<26} {'same':<5} "
          f"{'local apply→100%':>17} {'k8s apply→100%':>15} {'ratio':>6}")
    keys = sorted({k for seqs, _ in rows["local"] for k in seqs})
    for lane, version in keys:
        seq = {kind: [seqs.get((lane, version), "?") for seqs, _ in rows[kind]] for kind in rows}
        dur = {kind: [next((r["rollout_duration"] for r in s["lanes"][lane]["releases"]
                            if r["version"] == version and r["rollout_duration"] is not None), float("nan"))
                      for _, s in rows[kind]] for kind in rows}
        local, k8s = statistics.median(dur["local"]), statistics.median(dur["kubernetes"])
        # the same steps: the +/- sequence, and as many old replicas started (a scaling event's old pods are
        # created by the ReplicaSet controller while the new ReplicaSet scales: their order may interleave)
        same = all(a.replace("o", "") == b.replace("o", "") and a.count("o") == b.count("o")
                   for a, b in zip(seq["local"], seq["kubernetes"]))
        print(f"{lane:<6} v{version:<7} {'/'.join(seq['local']):<26} {'/'.join(seq['kubernetes']):<26} "
              f"{'yes' if same else 'NO':<5} {local:>16.2f}s {k8s:>14.2f}s {k8s / local:>6.2f}")
        report["rollouts"].append({"lane": lane, "version": version, "local": seq["local"],
                                   "kubernetes": seq["kubernetes"], "same": same, "local_s": dur["local"],
                                   "kubernetes_s": dur["kubernetes"], "ratio": k8s / local})
    print("\nlead time (median of rounds)")
    print(f"{'lane':<6} {'version':<8} {'phase':<22} {'local':>8} {'k8s':>8} {'ratio':>6}")
    for lane, version in keys:
        for phase in ("detected", "apply_started", "first_ready", "traffic_100"):
            val = {kind: statistics.median([next(r["lead"].get(phase) for r in s["lanes"][lane]["releases"]
                                                 if r["version"] == version) or float("nan")
                                            for _, s in rows[kind]]) for kind in rows}
            print(f"{lane:<6} v{version:<7} commit → {phase:<13} {val['local']:>7.2f}s {val['kubernetes']:>7.2f}s "
                  f"{(val['kubernetes'] / val['local']) if val['local'] else float('nan'):>6.2f}")
            report["lead"].append({"lane": lane, "version": version, "phase": phase, **val})
    peak = {c: max((s.get(c, 0.0) for s in rss), default=0.0) for c in COMPONENTS}
    total = max((sum(s.values()) for s in rss), default=0.0)
    print(f"\ncontrol plane: ready in {statistics.median(starts):.2f} s (median of {len(starts)}; "
          f"{min(starts):.2f}-{max(starts):.2f}); peak RSS " + ", ".join(f"{c} {v:.0f} MiB" for c, v in peak.items())
          + f"; together {total:.0f} MiB; torn down in {statistics.median(stops):.2f} s (max {max(stops):.2f})")
    report["control_plane"] = {"ready_s": starts, "stopped_s": stops, "peak_rss_mib": peak,
                               "total_peak_rss_mib": total}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
