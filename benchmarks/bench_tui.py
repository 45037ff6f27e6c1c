"""TUI benchmarks, in one run: the run screen's frame build time, and whether an open TUI disturbs latency.

1. Frame: the run screen at 160×48 replaying a recorded run (with drift scores, so all six plots draw) to
   its end; one frame = take a snapshot, update every widget, rebuild every plot with its
   cache dropped — the worst case; in steady state a plot rebuilds only when its data changes — target ≤ 20 ms.
2. Disturbance: the same short scenario run headless and with the TUI open (the real app, in Textual's
   headless driver, pulling snapshots at 8 Hz and drawing every frame), in ABBA order; p99 (median of 1 s
   windows, then median over rounds) per lane, reported as the ratio TUI / headless — target within 10 %.

    python benchmarks/bench_tui.py [--events tests/data/short-run/events.jsonl] [--duration 20] [--rounds 2] [--skip-live]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
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
                chart._cache = None
            t0 = time.perf_counter()
            view = screen.source.view()
            with app.batch_update():
                screen.draw(view)
            t1 = time.perf_counter()
            for chart in plotted:
                chart.render()
            t2 = time.perf_counter()
            samples.append((t2 - t0) * 1000)
            plots.append((t2 - t1) * 1000)
            await pilot.pause()
        return {"plots": len(plotted), "charts": len(charts), "frame_ms_median": statistics.median(samples),
                "frame_ms_p95": sorted(samples)[int(0.95 * (len(samples) - 1))],
                "plots_ms_median": statistics.median(plots)}


def run_headless(path: Path, results: Path) -> dict[str, float]:
    from mlopslab import report, scenario
    from mlopslab.lab import Lab

    lab = Lab(scenario.load(path), results)
    lab.run()
    return _p99(report.summarise(lab.state))


async def run_with_tui(path: Path, results: Path) -> dict[str, float]:
    from mlopslab import report, scenario
    from mlopslab.tui.app import LabApp

    app = LabApp(scenario=scenario.load(path), results=results)
    async with app.run_test(size=(160, 48)) as pilot:
        source = app.source
        while not source.done.is_set():
            await pilot.pause(0.1)
        await pilot.pause(0.3)
        summary = source.lab.snapshot(report.summarise)
    return _p99(summary)


def _p99(summary: dict) -> dict[str, float]:
    return {name: lane["p99_ms_median_of_windows"] for name, lane in summary["lanes"].items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=Path, default=EVENTS)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2, help="live runs per mode, in ABBA order (default 2)")
    parser.add_argument("--skip-live", action="store_true", help="only the frame time")
    args = parser.parse_args()

    frame = asyncio.run(frame_times(args.events, args.frames))
    print(f"frame build at 160×48, {frame['plots']} plots of {frame['charts']} charts: "
          f"median {frame['frame_ms_median']:.1f} ms, p95 {frame['frame_ms_p95']:.1f} ms "
          f"(plots alone {frame['plots_ms_median']:.1f} ms; target ≤ 20 ms)")
    result = {"frame": frame}
    if not args.skip_live:
        runs: dict[str, list[dict[str, float]]] = {"headless": [], "tui": []}
        order = [("headless", "tui"), ("tui", "headless")]
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bench.yaml"
            path.write_text(SCENARIO.format(duration=args.duration, release=round(args.duration / 3)))
            for i in range(args.rounds):  # ABBA: neither mode always runs first (warm caches, page cache)
                for mode in order[i % 2]:
                    out = Path(tmp) / f"{mode}-{i}"
                    runs[mode].append(run_headless(path, out) if mode == "headless"
                                      else asyncio.run(run_with_tui(path, out)))
        headless = {lane: statistics.median(r[lane] for r in runs["headless"]) for lane in runs["headless"][0]}
        tui = {lane: statistics.median(r[lane] for r in runs["tui"]) for lane in runs["tui"][0]}
        ratios = {lane: tui[lane] / headless[lane] for lane in headless if headless[lane] and tui.get(lane)}
        print("p99 per round (ms): " + "; ".join(f"{mode} {[round(r[lane], 2) for r in rs for lane in r]}"
                                               for mode, rs in runs.items()))
        for lane in headless:
            print(f"p99 {lane}: headless {headless[lane]:.2f} ms, TUI open {tui.get(lane) or 0:.2f} ms, "
                  f"ratio {ratios.get(lane, float('nan')):.3f}")
        worst = max(ratios.values()) if ratios else float("nan")
        print(f"worst ratio TUI/headless {worst:.3f} (target ≤ 1.10)")
        result.update({"p99_headless_ms": headless, "p99_tui_ms": tui, "ratio": ratios, "worst_ratio": worst})
    print(json.dumps(result, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
