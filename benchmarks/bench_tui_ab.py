"""bench_tui.py's disturbance measurement for two checkouts at once: the code before a change and after it,
interleaved round by round (before-headless, before-TUI, after-TUI, after-headless, then the reverse), so
both see the same background load on a shared machine. Each checkout runs its own bench_tui.py functions
with PYTHONPATH pointing at it. With --probe, benchmarks/probe/sitecustomize.py runs in every process that
holds a Lab (headless `mlopslab run`, the TUI benchmark's child, and since issue 13 the TUI's run process):
a thread that sleeps 10 ms at a time records how late it wakes, i.e. how long that interpreter's threads
wait for a CPU and the GIL.

    git archive REV | tar -x -C /tmp/before
    python benchmarks/bench_tui_ab.py --before /tmp/before [--rounds 4] [--duration 30] [--probe]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent


def _bench(tree: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_tui_{abs(hash(tree))}", tree / "benchmarks" / "bench_tui.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _quantiles(values: list[float]) -> str:
    return f"median {statistics.median(values):.1f} (runs: {', '.join(f'{v:.1f}' for v in values)})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True, help="a checkout of the code before the change")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--probe", action="store_true", help="measure how late the lab's interpreter wakes")
    args = parser.parse_args()
    trees = {"before": args.before.resolve(), "after": HERE.parent}
    benches = {name: _bench(tree) for name, tree in trees.items()}
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {name: {"headless": [], "tui": []} for name in trees}
    order = [("before", "headless"), ("before", "tui"), ("after", "tui"), ("after", "headless")]
    with tempfile.TemporaryDirectory() as tmp:
        probes = Path(tmp) / "probes"
        probes.mkdir()
        path = Path(tmp) / "bench.yaml"
        path.write_text(benches["after"].SCENARIO.format(duration=args.duration, release=round(args.duration / 3)))
        for i in range(args.rounds):
            for name, mode in order if i % 2 == 0 else order[::-1]:
                os.environ["PYTHONPATH"] = f"{trees[name]}" + (f":{HERE / 'probe'}" if args.probe else "")
                os.environ.update(LAB_PROBE_DIR=str(probes), LAB_PROBE_TAG=f"{name}-{mode}-{i}")
                out = Path(tmp) / f"{name}-{mode}-{i}"
                bench = benches[name]
                result = bench.run_headless(path, out) if mode == "headless" else bench.run_with_tui(path, out)
                runs[name][mode].append(result)
                print(f"round {i} {name:6} {mode:8} p99 {result['p99']} CPU {result['cpu_s']:.1f} s "
                      f"(load {os.getloadavg()[0]:.1f})", flush=True)
        late: dict[str, list[dict[str, Any]]] = {}
        for file in probes.glob("*.json"):
            probe = json.loads(file.read_text())
            name, mode, _ = probe["tag"].split("-")
            if "-m mlopslab run " in probe["cmd"] or name == "before":   # the process that holds the Lab
                late.setdefault(f"{name} {mode}", []).append(probe)
    for name in trees:
        for lane in ("push", "pull"):
            per = {mode: [r["windows"].get(lane, []) for r in rs] for mode, rs in runs[name].items()}
            ratio, low, high = benches["after"].pooled_ratio(per["tui"], per["headless"])
            paired = [t["p99"][lane] / h["p99"][lane] for t, h in zip(runs[name]["tui"], runs[name]["headless"], strict=True)]
            med = {mode: statistics.median([w for run in ws for w in run]) for mode, ws in per.items()}
            print(f"{name:6} {lane}: headless {med['headless']:.2f} ms, TUI {med['tui']:.2f} ms, pooled ratio "
                  f"{ratio:.3f} (95 % {low:.3f}–{high:.3f}); per round {[round(p, 2) for p in paired]}")
        cpu = {mode: statistics.median(r["cpu_s"] for r in rs) for mode, rs in runs[name].items()}
        print(f"{name:6} CPU of the whole run (median): headless {cpu['headless']:.1f} s, TUI {cpu['tui']:.1f} s")
    for key, probes_of in sorted(late.items()):
        print(f"lab interpreter wakes late, {key:15}: p99 {_quantiles([p['p99_ms'] for p in probes_of])} ms; "
              f"p99.9 {_quantiles([p['p999_ms'] for p in probes_of])} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
