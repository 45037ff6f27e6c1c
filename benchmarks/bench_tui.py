"""TUI benchmarks, in one run: the run screen's frame build time, and whether an open TUI disturbs latency.

1. Frame: the run screen at 160×48 replaying a recorded run (with drift scores, so every plot draws) to
   its end; one frame = take a snapshot, update every widget, rebuild every plot (plotext, then its rows
   as strips) with its cache dropped — the worst case; in steady state a plot rebuilds only when its data
   changes — target ≤ 20 ms.
2. Disturbance: the same short scenario run by `mlopslab run` (headless) and by the real TUI in a real
   pseudo-terminal of 160×48 (Textual's terminal driver writing every frame, which this script reads and
   throws away, as a terminal would draw it), in ABBA order, each in a fresh process. Per lane, the 1 s
   windows' p99 of all rounds are pooled per mode; the ratio of their medians TUI / headless is reported
   with a 95 % bootstrap interval (runs resampled, then windows within them) — target within 10 %. (One run's p99 moves by ±10 % from run to run on
   this machine, so a median over a few runs is not enough to see a 10 % effect.)

    python benchmarks/bench_tui.py [--events tests/data/short-run/events.jsonl] [--duration 20] [--rounds 2] [--skip-live]
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import os
import resource
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path
from typing import Any

from mlopslab.events import read_events

ROOT = Path(__file__).resolve().parent.parent
CPU = "cpu_s"   # CPU seconds of the run's whole process tree (lab or TUI, servers, load generator)
EVENTS = ROOT / "tests" / "data" / "short-run" / "events.jsonl"
SCENARIO = """\
name: bench-tui
description: two lanes, steady traffic, one release
seed: 3
duration: {duration}
environment: local
model: {{name: bench, data: {{n_features: 6, n_samples: 1500}}}}
traffic: {{rate: 40}}
lanes:
  - {{name: push, delivery: push, replicas: 2, warmup: 0.2, rollout: {{maxSurge: 1, maxUnavailable: 0}}}}
  - {{name: pull, delivery: pull, replicas: 2, warmup: 0.2, rollout: {{maxSurge: 1, maxUnavailable: 0}},
      poll: {{interval: 3, jitter: 1}}}}
timeline:
  - at: {release}
    release: {{C: 0.5}}
"""


async def frame_times(events: Path, frames: int) -> dict[str, float]:
    from mlopslab.tui.app import LabApp
    from mlopslab.tui.replay import Playback
    from mlopslab.tui.widgets.chart import Chart

    app = LabApp(replay=events, at=Playback.load(events).last, playing=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        screen = app.screen
        charts = list(screen.query(Chart))
        plotted = [c for c in charts if c.has_data]
        samples, plots = [], []
        for _ in range(frames):
            for chart in charts:
                chart.drop_cache()
            t0 = time.perf_counter()
            view = screen.source.view()
            with app.batch_update():
                screen.draw(view)
            t1 = time.perf_counter()
            for chart in plotted:
                chart.lines()   # what Textual draws: plotext's build, then its rows as strips
            t2 = time.perf_counter()
            samples.append((t2 - t0) * 1000)
            plots.append((t2 - t1) * 1000)
            await pilot.pause()
        return {"plots": len(plotted), "charts": len(charts), "frame_ms_median": statistics.median(samples),
                "frame_ms_p95": sorted(samples)[int(0.95 * (len(samples) - 1))],
                "plots_ms_median": statistics.median(plots)}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_headless(path: Path, results: Path) -> dict[str, float]:
    """`mlopslab run`, as a person runs it."""
    cpu = _children_cpu()
    subprocess.run([sys.executable, "-m", "mlopslab", "run", str(path), "--results", str(results), "--quiet"],
                   check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    return _result(results, _children_cpu() - cpu)


def run_with_tui(path: Path, results: Path, size: tuple[int, int] = (160, 48)) -> dict[str, float]:
    """The TUI in a pseudo-terminal of `size`; this process drains the terminal's output like a terminal."""
    cpu = _children_cpu()
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLORTERM": "truecolor"}
    child = subprocess.Popen([sys.executable, __file__, "--child-tui", str(path), str(results)], stdin=slave,
                             stdout=slave, stderr=slave, env=env, cwd=ROOT, start_new_session=True)
    os.close(slave)
    drawn = [0]

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                return
            if not chunk:
                return
            drawn[0] += len(chunk)
            if os.environ.get("BENCH_TUI_DUMP"):
                with open(os.environ["BENCH_TUI_DUMP"], "ab") as dump:
                    dump.write(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        if child.wait(timeout=600) != 0:
            raise RuntimeError(f"the TUI exited with {child.returncode}")
    finally:
        if child.poll() is None:
            child.kill()
        reader.join(5)
        os.close(master)
    if drawn[0] < 10_000:
        raise RuntimeError(f"the TUI drew only {drawn[0]} bytes")
    return _result(results, _children_cpu() - cpu)


def child_tui(path: Path, results: Path) -> int:
    """In the pseudo-terminal: the real app on the scenario, quitting once the run has finished."""
    from mlopslab import scenario
    from mlopslab.tui.app import LabApp

    class BenchApp(LabApp):
        def on_mount(self) -> None:  # Textual calls LabApp's on_mount too (handlers run along the MRO)
            self.set_interval(0.5, self._quit_when_done)

        def _quit_when_done(self) -> None:
            if self.source is not None and getattr(self.source, "done", None) and self.source.done.is_set():
                self.exit()

    app = BenchApp(scenario=scenario.load(path), results=results)
    app.run()
    return app.return_code or 0


def _result(results: Path, cpu: float) -> dict[str, Any]:
    """A run's p99 per lane (median of its 1 s windows), every window's p99, and the CPU it took."""
    summary = json.loads((results / "summary.json").read_text())
    windows: dict[str, list[float]] = {}
    for event in read_events(results / "events.jsonl"):
        if event["kind"] == "metrics" and event.get("p99") is not None:
            windows.setdefault(event["lane"], []).append(float(event["p99"]))
    return {"p99": {name: lane["p99_ms_median_of_windows"] for name, lane in summary["lanes"].items()},
            "windows": windows, CPU: cpu}


def pooled_ratio(tui: list[list[float]], headless: list[list[float]], resamples: int = 4000) -> tuple[float, float, float]:
    """Median window p99 with the TUI over the same without, each mode's runs pooled, and a 95 % bootstrap
    interval that resamples runs, then windows within each run (windows of one run are not independent:
    a run's level moves by about ±10 % from run to run)."""
    import numpy as np

    rng = np.random.default_rng(0)

    def medians(runs: list[list[float]]) -> np.ndarray:
        arrays = [np.asarray(run) for run in runs if run]
        out = np.empty(resamples)
        for i in range(resamples):
            picked = [arrays[k] for k in rng.integers(0, len(arrays), len(arrays))]
            out[i] = np.median(np.concatenate([rng.choice(a, a.size) for a in picked]))
        return out

    point = float(np.median(np.concatenate(tui)) / np.median(np.concatenate(headless)))
    low, high = np.percentile(medians(tui) / medians(headless), [2.5, 97.5])
    return point, float(low), float(high)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=Path, default=EVENTS)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2, help="live runs per mode, in ABBA order (default 2)")
    parser.add_argument("--skip-live", action="store_true", help="only the frame time")
    parser.add_argument("--child-tui", nargs=2, type=Path, metavar=("SCENARIO", "RESULTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_tui:
        return child_tui(*args.child_tui)

    frame = asyncio.run(frame_times(args.events, args.frames))
    print(f"frame build at 160×48, {frame['plots']} plots of {frame['charts']} charts: "
          f"median {frame['frame_ms_median']:.1f} ms, p95 {frame['frame_ms_p95']:.1f} ms "
          f"(plots alone {frame['plots_ms_median']:.1f} ms; target ≤ 20 ms)")
    result = {"frame": frame}
    if not args.skip_live:
        runs: dict[str, list[dict[str, Any]]] = {"headless": [], "tui": []}
        order = [("headless", "tui"), ("tui", "headless")]
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bench.yaml"
            path.write_text(SCENARIO.format(duration=args.duration, release=round(args.duration / 3)))
            for i in range(args.rounds):  # ABBA: neither mode always runs first (warm caches, page cache)
                for mode in order[i % 2]:
                    out = Path(tmp) / f"{mode}-{i}"
                    runs[mode].append(run_headless(path, out) if mode == "headless" else run_with_tui(path, out))
        lanes = list(runs["headless"][0]["p99"])
        print("p99 per round (ms, median of the run's windows): " + "; ".join(
            f"{mode} {[round(r['p99'][lane], 2) for r in rs for lane in lanes]}" for mode, rs in runs.items()))
        ratios = {}
        for lane in lanes:
            per_run = {mode: [r["windows"].get(lane, []) for r in rs] for mode, rs in runs.items()}
            pooled = {mode: [w for run in windows for w in run] for mode, windows in per_run.items()}
            ratio, low, high = pooled_ratio(per_run["tui"], per_run["headless"])
            ratios[lane] = ratio
            print(f"p99 {lane}: headless {statistics.median(pooled['headless']):.2f} ms, TUI open "
                  f"{statistics.median(pooled['tui']):.2f} ms ({len(pooled['headless'])} and {len(pooled['tui'])} "
                  f"windows), ratio {ratio:.3f} (95 % interval {low:.3f}–{high:.3f})")
            result[f"ratio_{lane}"] = {"ratio": ratio, "low": low, "high": high}
        cpu = {mode: statistics.median(r[CPU] for r in rs) for mode, rs in runs.items()}
        extra = (cpu["tui"] - cpu["headless"]) / args.duration * 1000
        print(f"CPU of the whole run: headless {cpu['headless']:.1f} s, TUI open {cpu['tui']:.1f} s "
              f"(the TUI adds about {extra:.0f} ms of CPU per second of run, its start-up included)")
        worst = max(ratios.values()) if ratios else float("nan")
        print(f"worst ratio TUI/headless {worst:.3f} (target ≤ 1.10)")
        result.update({"worst_ratio": worst, "cpu_s": cpu, "tui_cpu_ms_per_s": extra})
    print(json.dumps(result, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
