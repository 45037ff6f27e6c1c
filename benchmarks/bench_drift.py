"""Benchmark: our drift report against Evidently's DataDriftPreset, and CUSUM delay against the floor.

In one run:
1. 10 features × 100,000 rows of reference and current data (five features shifted) go through
   `feature_drift_report` and through Evidently's `DataDriftPreset` with the same stattest for every column
   (wasserstein, psi, jensenshannon, ks); it reports both times, the speed-up and the largest difference
   of the values per statistic. Evidently runs in its own virtualenv (`benchmarks/.venv-evidently`, made
   on first use) because its dependencies clash with the project's; a subprocess reads the arrays from
   .npy files and answers in JSON.
2. A two-sided CUSUM calibrated to ARL0 = 10,000: its h, the ARL0 it really has, and its mean delay after
   shifts of 0.5σ, 1σ and 2σ against the floor 2·ln(ARL0)/δ².

Prints markdown tables and writes benchmarks/results/drift.json.
    python benchmarks/bench_drift.py [--repeats 7] [--skip-evidently]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy
from scipy.stats import kstwo

from mlopslab.monitor.drift import METHODS, DriftReference, DriftReport, Method, feature_drift_report
from mlopslab.monitor.sequential import (
    cusum_run_lengths,
    cusum_threshold_for_arl0,
    detection_floor,
    siegmund_arl,
)

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-evidently"
# Evidently 0.7.23 imports a pandas helper (infer_dtype_from_object) that pandas 3 removed.
EVIDENTLY_REQUIREMENTS = ("evidently==0.7.23", "pandas<3")
RESULTS = HERE / "results" / "drift.json"
ROWS = 100_000
SEED = 2024

ARL0 = 10_000
SHIFTS = (0.5, 1.0, 2.0)
DELAY_RUNS = 20_000
ARL0_RUNS = 4_000

# Runs inside the Evidently virtualenv: argv = folder with reference.npy, current.npy, names.json; repeats.
EVIDENTLY_SIDE = r"""
import json, sys, time
from pathlib import Path

import numpy as np
import pandas as pd
import evidently
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

folder, repeats = Path(sys.argv[1]), int(sys.argv[2])
names = json.loads((folder / "names.json").read_text())
definition = DataDefinition(numerical_columns=names)


def dataset(array):
    return Dataset.from_pandas(pd.DataFrame(array, columns=names), data_definition=definition)


def run(method, reference, current):
    start = time.perf_counter()
    snapshot = Report([DataDriftPreset(method=method)]).run(current, reference)
    seconds = time.perf_counter() - start
    values = {}
    for metric in snapshot.dict()["metrics"]:
        if metric["config"]["type"].endswith("ValueDrift"):
            values[metric["config"]["column"]] = float(metric["value"])
    return seconds, [values[name] for name in names]


reference_array, current_array = np.load(folder / "reference.npy"), np.load(folder / "current.npy")
reference, current = dataset(reference_array), dataset(current_array)
warm_reference, warm_current = dataset(reference_array[:2000]), dataset(current_array[:2000])
answer = {"version": evidently.__version__, "pandas": pd.__version__, "methods": {}}
for method in ("wasserstein", "psi", "jensenshannon", "ks"):
    run(method, warm_reference, warm_current)
    timings, values = [], None
    for _ in range(repeats):
        seconds, values = run(method, reference, current)
        timings.append(seconds)
    answer["methods"][method] = {"seconds": min(timings), "values": values}
(folder / "evidently.json").write_text(json.dumps(answer))
"""


def make_data(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[str], dict[str, str]]:
    """Reference and current windows; the drift planted in each current feature, by name."""
    plan = {
        "x0": ("normal", "mean +0.5σ"),
        "x1": ("normal", "mean +0.2σ"),
        "x2": ("normal(5, 2)", "scale ×1.3"),
        "x3": ("lognormal", "none"),
        "x4": ("uniform", "+0.05 (0.17σ)"),
        "x5": ("normal", "none"),
        "x6": ("normal", "none"),
        "x7": ("normal", "none"),
        "x8": ("normal", "none"),
        "x9": ("poisson(3), 14 values", "rate 3.3"),
    }

    def window(drifted: bool) -> np.ndarray:
        columns = [
            rng.normal(0.5 if drifted else 0.0, 1.0, ROWS),
            rng.normal(0.2 if drifted else 0.0, 1.0, ROWS),
            rng.normal(5.0, 2.6 if drifted else 2.0, ROWS),
            rng.lognormal(0.0, 0.5, ROWS),
            rng.uniform(0.05 if drifted else 0.0, 1.05 if drifted else 1.0, ROWS),
            *(rng.normal(0.0, 1.0, ROWS) for _ in range(4)),
            rng.poisson(3.3 if drifted else 3.0, ROWS).astype(np.float64),
        ]
        return np.column_stack(columns)

    names = list(plan)
    return window(False), window(True), names, {name: f"{kind}; drift: {d}" for name, (kind, d) in plan.items()}


def best_of(repeats: int, call: Callable[[], object]) -> float:
    """Smallest wall time of `repeats` calls, after one warm-up call (the machine is shared)."""
    call()
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        timings.append(time.perf_counter() - start)
    return min(timings)


def evidently_python() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    probe = subprocess.run([str(python), "-c", "import evidently.presets"], capture_output=True)
    if probe.returncode != 0:
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *EVIDENTLY_REQUIREMENTS], check=True)
    return python


def run_evidently(reference: np.ndarray, current: np.ndarray, names: list[str], repeats: int) -> dict:
    python = evidently_python()
    environment = {**os.environ, "DO_NOT_TRACK": "1", "EVIDENTLY_DISABLE_TELEMETRY": "1"}
    with tempfile.TemporaryDirectory() as folder:
        np.save(Path(folder) / "reference.npy", reference)
        np.save(Path(folder) / "current.npy", current)
        (Path(folder) / "names.json").write_text(json.dumps(names))
        (Path(folder) / "side.py").write_text(EVIDENTLY_SIDE)
        subprocess.run(
            [str(python), str(Path(folder) / "side.py"), folder, str(repeats)],
            check=True,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return json.loads((Path(folder) / "evidently.json").read_text())


def time_ours(reference: np.ndarray, current: np.ndarray, names: list[str], repeats: int) -> dict[str, float]:
    prepared = DriftReference(reference, names)
    ours = {
        "all": best_of(repeats, lambda: feature_drift_report(reference, current, names)),
        "all_prepared": best_of(repeats, lambda: prepared.compare(current)),
    }
    for method in METHODS:
        ours[method] = best_of(repeats, lambda m=method: feature_drift_report(reference, current, names, (m,), m))
        ours[f"{method}_prepared"] = best_of(repeats, lambda m=method: prepared.compare(current, (m,), m))
    # The KS p-value of a large sample is scipy's kstwo.sf, the call ks_2samp makes on Evidently's side too.
    effective = round(ROWS * ROWS / (2 * ROWS))
    statistics = [feature.ks_statistic for feature in prepared.compare(current, ("ks",)).features]
    ours["ks_scipy_pvalue"] = best_of(repeats, lambda: [kstwo.sf(d, effective) for d in statistics])
    return ours


def compare_drift(repeats: int, skip_evidently: bool) -> dict:
    reference, current, names, plan = make_data(np.random.default_rng(SEED))
    report = feature_drift_report(reference, current, names)
    ours = time_ours(reference, current, names, repeats)
    result: dict = {"rows": ROWS, "features": plan, "report": report.to_dict()}
    if not skip_evidently:
        theirs = run_evidently(reference, current, names, max(2, repeats // 3))
        result["evidently"] = theirs
        result["comparison"] = {m: _differences(report, m, theirs["methods"][m]) for m in METHODS}
        # Time our side again after Evidently's, keeping the better of the two: the machine is shared.
        again = time_ours(reference, current, names, repeats)
        ours = {key: min(seconds, again[key]) for key, seconds in ours.items()}
    result["ours_seconds"] = ours
    return result


def _differences(report: DriftReport, method: Method, theirs: dict) -> dict:
    ours = np.array([feature.value(method) for feature in report.features])
    evidently = np.array(theirs["values"])
    absolute = np.abs(ours - evidently)
    relative = absolute / np.maximum(np.abs(evidently), np.finfo(float).tiny)
    return {
        "max_abs_diff": float(absolute.max()),
        "max_rel_diff": float(relative.max()),
        "ours": ours.tolist(),
        "evidently": evidently.tolist(),
    }


def cusum_delays() -> dict:
    """Calibrate h for ARL0 = 10,000 (k = 0.5, and k = δ/2 tuned to each shift) and measure delays."""
    rng = np.random.default_rng(SEED)
    rows = []
    calibrated: dict[float, dict] = {}
    for k in sorted({0.5, *(shift / 2 for shift in SHIFTS)}):
        h_siegmund = cusum_threshold_for_arl0(ARL0, k)
        h = cusum_threshold_for_arl0(ARL0, k, refine_runs=2000, rng=rng)
        lengths = cusum_run_lengths(h, k, 0.0, ARL0_RUNS, rng=rng)
        calibrated[k] = {
            "k": k,
            "h_siegmund": h_siegmund,
            "arl0_siegmund_h_by_siegmund": siegmund_arl(h_siegmund, k),
            "h": h,
            "arl0_measured": float(lengths.mean()),
            "arl0_standard_error": float(lengths.std() / np.sqrt(lengths.size)),
        }
    for shift in SHIFTS:
        for k in sorted({0.5, shift / 2}):
            delays = cusum_run_lengths(calibrated[k]["h"], k, shift, DELAY_RUNS, rng=rng)
            floor = detection_floor(ARL0, shift)
            rows.append(
                {
                    "shift": shift,
                    "k": k,
                    "h": calibrated[k]["h"],
                    "mean_delay": float(delays.mean()),
                    "delay_standard_error": float(delays.std() / np.sqrt(delays.size)),
                    "floor": floor,
                    "ratio": float(delays.mean() / floor),
                }
            )
    return {"arl0": ARL0, "calibration": list(calibrated.values()), "delays": rows}


def print_tables(drift: dict, sequential: dict) -> None:
    ours = drift["ours_seconds"]
    print(f"\n### Drift report, 10 features × {drift['rows']:,} rows (reference and current)\n")
    if "evidently" in drift:
        version = drift["evidently"]["version"]
        header = (
            f"| statistic | Evidently {version} DataDriftPreset | mlopslab | speed-up "
            "| mlopslab, reference prepared | speed-up | max abs diff | max rel diff |"
        )
        print(header)
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        total = 0.0
        rows = [(m, "ks (p-value)" if m == "ks" else m, m, f"{m}_prepared") for m in METHODS]
        rows.append((None, "all four (one report)", "all", "all_prepared"))
        for method, name, key, prepared in rows:
            theirs = drift["evidently"]["methods"][method]["seconds"] if method else total
            total += theirs if method else 0.0
            diff = drift["comparison"][method] if method else None
            differences = f"{diff['max_abs_diff']:.1e} | {diff['max_rel_diff']:.1e}" if diff else " | "
            print(
                f"| {name} | {theirs * 1e3:,.0f} ms | {ours[key] * 1e3:.1f} ms | {theirs / ours[key]:,.0f}× "
                f"| {ours[prepared] * 1e3:.1f} ms | {theirs / ours[prepared]:,.0f}× | {differences} |"
            )
        shared = ours["ks_scipy_pvalue"]
        ks_theirs = drift["evidently"]["methods"]["ks"]["seconds"]
        print(
            f"\nscipy's kstwo.sf, which computes the KS p-values on both sides, takes {shared * 1e3:.1f} ms of them; "
            f"without it ks runs {(ks_theirs - shared) / (ours['ks'] - shared):,.0f}× faster "
            f"and all four {(total - shared) / (ours['all'] - shared):,.0f}× "
            f"({(total - shared) / (ours['all_prepared'] - shared):,.0f}× prepared)."
        )
    else:
        for key, seconds in ours.items():
            print(f"- {key}: {seconds * 1e3:.1f} ms")
    report = drift["report"]
    print(f"\nDrifted features: {', '.join(report['drifted_features'])}; dataset drift: {report['dataset_drift']}")

    print(f"\n### Two-sided CUSUM at ARL0 = {sequential['arl0']:,}\n")
    print("| k | h (Siegmund) | h (refined by simulation) | measured ARL0 |")
    print("|---:|---:|---:|---:|")
    for row in sequential["calibration"]:
        print(
            f"| {row['k']:g} | {row['h_siegmund']:.3f} | {row['h']:.3f} "
            f"| {row['arl0_measured']:,.0f} ± {row['arl0_standard_error']:,.0f} |"
        )
    print("\n| shift δ | k | h | mean delay (samples) | floor 2·ln(ARL0)/δ² | delay / floor |")
    print("|---:|---:|---:|---:|---:|---:|")
    for row in sequential["delays"]:
        print(
            f"| {row['shift']:g}σ | {row['k']:g} | {row['h']:.3f} | {row['mean_delay']:.2f} ± "
            f"{row['delay_standard_error']:.2f} | {row['floor']:.2f} | {row['ratio']:.2f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs of our side (best counts)")
    parser.add_argument("--skip-evidently", action="store_true", help="time our side only")
    args = parser.parse_args()

    drift = compare_drift(args.repeats, args.skip_evidently)
    sequential = cusum_delays()
    print_tables(drift, sequential)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "machine": {
                    "python": platform.python_version(),
                    "numpy": np.__version__,
                    "scipy": scipy.__version__,
                    "cpus": os.cpu_count(),
                    "processor": platform.processor() or platform.machine(),
                },
                "drift": drift,
                "sequential": sequential,
            },
            indent=2,
        )
    )
    print(f"\nwrote {RESULTS.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
