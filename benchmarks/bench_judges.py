"""Benchmark: how often each judge rolls back a good release, how fast it catches a bad one, and Flagger's clock.

Everything is simulated on a virtual clock (no processes, no sleeping), seeded, many runs:

1. A/A, threshold gate: a success-rate gate (min 98.5 %) over identical versions (0.5 % errors), 100 canary
   requests per 10 s interval; the share of runs whose failed checks reach Flagger's threshold (1 and 5)
   within K looks, against the fixed-horizon calculation: one look fails with a = P(Bin(100, 0.005) ≥ 2),
   K independent looks reach t failures with P(Bin(K, a) ≥ t) (t = 1: 1 − (1 − a)^K).
2. A/A, comparative judges on identical latencies (lognormal, median 20 ms) and errors: Kayenta's
   Mann–Whitney judge run every interval on that interval's per-second p99 series, a z-test on all data so
   far at every look (classic peeking, α = 0.05), and the mSPRT (α = 0.05) on latency and on errors.
3. Flagger's timing: FailedChecks driven by a pure model of Flagger's canary loop (first tick shifts
   stepWeight; each passing interval adds stepWeight; the passing interval at maxWeight promotes; a failed
   check halts; the interval after the threshold is reached rolls back).
4. Power: a bad release (accuracy 0.90 → 0.80 with labels 20 s late; or latency × 1.5) and a good one,
   under that loop at 100 req/s (Poisson), interval 10 s, stepWeight 10, maxWeight 50; each judge through
   the real `Gate.evaluate` on `Samples` built from the simulated requests. Exposure = requests the canary
   served to users before the decision; time = from the first weight shift.

Prints markdown tables and writes benchmarks/results/judges.json.
    python benchmarks/bench_judges.py [--runs 2000] [--power-runs 200]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from mlopslab.analysis import Arm, FailedChecks, Msprt, Samples, mann_whitney_check, parse_gate, threshold_check
from mlopslab.analysis.mannwhitney import classify

RESULTS = Path(__file__).resolve().parent / "results" / "judges.json"
LOOKS = (1, 2, 5, 10, 20, 50)
SEED = 2026
RATE, INTERVAL, CANARY_SHARE = 100.0, 10.0, 0.10          # A/A: 100 req/s, 10 s interval, 10 % canary
MEDIAN_MS, SIGMA = 20.0, 0.4                              # latency lognormal: median 20 ms, p99 ≈ 51 ms


def binomial_tail(n: int, p: float, k: int) -> float:
    """P(Bin(n, p) >= k)."""
    return float(sum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k, n + 1)))


# --- 1. A/A, threshold gate ------------------------------------------------------------------------------------


def aa_threshold(runs: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    n, p_error, minimum = int(RATE * INTERVAL * CANARY_SHARE), 0.005, 98.5
    a = binomial_tail(n, p_error, 2)           # 100·(1 − e/100) < 98.5  ⇔  e ≥ 2
    errors = rng.binomial(n, p_error, (runs, max(LOOKS)))
    rows = []
    for threshold in (1, 5):
        reached = np.full(runs, np.inf)
        for r in range(runs):
            state = FailedChecks(threshold=threshold)
            for k in range(max(LOOKS)):
                state, _ = state.tick([threshold_check(100.0 * (1 - errors[r, k] / n), minimum, "min")])
                if state.failed >= threshold:
                    reached[r] = k + 1
                    break
        for looks in LOOKS:
            rows.append({"threshold": threshold, "looks": looks, "measured": float(np.mean(reached <= looks)),
                         "analytic": binomial_tail(looks, a, threshold), "a": a, "runs": runs})
    return rows


# --- 2. A/A, comparative judges ----------------------------------------------------------------------------------


def aa_comparative(runs: int, mw_runs: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    per_second_canary, per_second_stable = int(RATE * CANARY_SHARE), int(RATE * (1 - CANARY_SHARE))
    seconds, looks = int(INTERVAL), max(LOOKS)
    first = {name: np.full(runs, np.inf) for name in ("mann-whitney", "unthinned", "peeking", "msprt-latency",
                                                       "msprt-errors")}
    thin = np.linspace(0, per_second_stable - 1, per_second_canary).round().astype(int)   # as the gate does
    z_crit = 1.959963984540054
    for r in range(runs):
        stable = np.exp(rng.normal(math.log(MEDIAN_MS), SIGMA, (looks, seconds, per_second_stable)))
        canary = np.exp(rng.normal(math.log(MEDIAN_MS), SIGMA, (looks, seconds, per_second_canary)))
        errors_s = (rng.random((looks, seconds * per_second_stable)) < 0.005).astype(float) * 100
        errors_c = (rng.random((looks, seconds * per_second_canary)) < 0.005).astype(float) * 100
        latency, errs = Msprt(tau=5.0, min_samples=30), Msprt(tau=1.0, min_samples=30)
        for k in range(looks):
            if r < mw_runs:
                canary_p99 = np.percentile(canary[k], 99, axis=1)
                if np.isinf(first["mann-whitney"][r]):
                    decision = mann_whitney_check(np.percentile(stable[k][:, thin], 99, axis=1), canary_p99, "increase")
                    if decision.verdict == "fail":
                        first["mann-whitney"][r] = k + 1
                if np.isinf(first["unthinned"][r]):   # p99 over 90 stable against 10 canary requests, either way
                    label = classify(np.percentile(stable[k], 99, axis=1), canary_p99).classification
                    if label in ("High", "Low"):
                        first["unthinned"][r] = k + 1
            latency = latency.update(stable[k].ravel(), canary[k].ravel())
            errs = errs.update(100 - errors_s[k], 100 - errors_c[k])   # success %, harmful: decrease
            if latency.rejected and latency.difference > 0 and np.isinf(first["msprt-latency"][r]):
                first["msprt-latency"][r] = k + 1
            if errs.rejected and errs.difference < 0 and np.isinf(first["msprt-errors"][r]):
                first["msprt-errors"][r] = k + 1
            z = latency.difference / math.sqrt(latency.variance)
            if z > z_crit and np.isinf(first["peeking"][r]):
                first["peeking"][r] = k + 1
    rows: list[dict[str, Any]] = []
    # the per-look false-fail probability: failures over looks judged (a geometric MLE; looks are independent)
    mw_first = first["mann-whitney"][:mw_runs]
    a_mw = float(np.sum(mw_first <= looks) / np.sum(np.minimum(mw_first, looks)))
    for looks_k in LOOKS:
        rows.append({"looks": looks_k,
                     "mann_whitney": float(np.mean(first["mann-whitney"][:mw_runs] <= looks_k)),
                     "mann_whitney_fixed_horizon": 1 - (1 - a_mw) ** looks_k,
                     "mann_whitney_unthinned_either": float(np.mean(first["unthinned"][:mw_runs] <= looks_k)),
                     "peeking": float(np.mean(first["peeking"] <= looks_k)),
                     "msprt_latency": float(np.mean(first["msprt-latency"] <= looks_k)),
                     "msprt_errors": float(np.mean(first["msprt-errors"] <= looks_k)),
                     "a_mann_whitney": a_mw, "runs": runs, "mw_runs": mw_runs})
    return rows


# --- 3. Flagger's clock -------------------------------------------------------------------------------------------


def flagger_clock(interval: float, step: int, max_weight: int, threshold: int, fail_from: int | None) -> tuple[str, float]:
    """The canary loop on a virtual clock: (outcome, seconds from the first weight shift to the decision).
    Checks fail from interval `fail_from` on (None: never)."""
    state, weight, tick = FailedChecks(threshold=threshold, steps=math.ceil(max_weight / step)), step, 0
    while True:
        tick += 1
        verdict = "fail" if fail_from is not None and tick >= fail_from else "pass"
        state, result = state.tick([threshold_check(0.0 if verdict == "fail" else 1.0, 0.5, "min")])
        if result.action in ("promote", "rollback"):
            return result.action, tick * interval
        if result.action == "advance":
            weight = min(weight + step, max_weight)


def timing() -> list[dict[str, Any]]:
    rows = []
    for interval, step, max_weight in ((60.0, 10, 50), (30.0, 5, 50), (10.0, 20, 100), (10.0, 30, 100), (15.0, 33, 50)):
        outcome, seconds = flagger_clock(interval, step, max_weight, 5, None)
        rows.append({"case": "promotion", "interval": interval, "step_weight": step, "max_weight": max_weight,
                     "outcome": outcome, "measured": seconds, "expected": interval * math.ceil(max_weight / step)})
    for interval, threshold, fail_from in ((60.0, 1, 1), (60.0, 5, 1), (30.0, 10, 3), (10.0, 3, 2)):
        outcome, seconds = flagger_clock(interval, 10, 100, threshold, fail_from)
        rows.append({"case": "rollback", "interval": interval, "threshold": threshold, "fail_from": fail_from,
                     "outcome": outcome, "measured": seconds - fail_from * interval,
                     "expected": threshold * interval})
    return rows


# --- 4. power: exposure and time to decision ----------------------------------------------------------------------

POWER_GATES = {
    "accuracy": {"threshold": {"metric": "accuracy", "min": 0.85, "window": 10, "min_labels": 20},
                 "mann-whitney": {"metric": "accuracy", "min": 0.85, "window": 30, "min_labels": 20,
                                  "judge": "mann-whitney"},
                 "msprt": {"metric": "accuracy", "min": 0.85, "judge": "msprt", "min_labels": 30, "tau": 0.05}},
    "latency": {"threshold": {"metric": "latency-p99", "max": 60, "window": 10},
                "mann-whitney": {"metric": "latency-p99", "max": 60, "window": 10, "judge": "mann-whitney"},
                "msprt": {"metric": "latency-p99", "max": 60, "judge": "msprt", "tau": 5.0}},
}
JUDGES = (("threshold", 1), ("threshold", 5), ("mann-whitney", 1), ("msprt", 1))   # (judge, Flagger threshold)
LABEL_DELAY, HORIZON, STEP, MAX_WEIGHT = 20.0, 600.0, 10, 50


def power_run(metric: str, judge: str, threshold: int, bad: bool, rng: np.random.Generator) -> dict[str, Any]:
    gate = parse_gate(POWER_GATES[metric][judge])
    state = FailedChecks(threshold=threshold, steps=math.ceil(MAX_WEIGHT / STEP))
    gate_state, weight, exposure = gate.start(), STEP, 0
    columns: dict[str, list[np.ndarray]] = {k: [] for k in ("t", "lat", "pred", "label", "canary")}
    second = 0
    while second < HORIZON:
        for _ in range(int(INTERVAL)):   # one interval of traffic at the current weight
            n = rng.poisson(RATE)
            t = second + np.sort(rng.random(n))
            canary = rng.random(n) < weight / 100.0
            scale = np.where(canary & bad & (metric == "latency"), 1.5, 1.0)
            accuracy = np.where(canary & bad & (metric == "accuracy"), 0.80, 0.90)
            label = rng.integers(0, 2, n).astype(float)
            correct = rng.random(n) < accuracy
            for key, value in (("t", t), ("lat", MEDIAN_MS * scale * np.exp(rng.normal(0, SIGMA, n))),
                               ("pred", np.where(correct, label, 1 - label)), ("label", label), ("canary", canary)):
                columns[key].append(value)
            exposure += int(canary.sum())
            second += 1
        t, lat, pred, label, canary = (np.concatenate(columns[k]) for k in ("t", "lat", "pred", "label", "canary"))
        label_t = t + LABEL_DELAY
        known = np.where(label_t <= second, label, np.nan)

        def arm(keep: np.ndarray, version: str) -> Arm:
            return Arm(version, t[keep], lat[keep], np.full(int(keep.sum()), 200), pred[keep], known[keep],
                       label_t[keep], np.flatnonzero(keep))

        result = gate.evaluate(Samples(float(second), arm(~canary, "1"), arm(canary, "2")), gate_state)
        gate_state = result.state
        state, tick = state.tick([result])
        if tick.action in ("promote", "rollback"):
            return {"outcome": tick.action, "seconds": float(second), "exposure": exposure}
        if tick.action == "advance":
            weight = min(weight + STEP, MAX_WEIGHT)
    return {"outcome": "undecided", "seconds": HORIZON, "exposure": exposure}


def power(runs: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    rows = []
    for metric in ("accuracy", "latency"):
        for judge, threshold in JUDGES:
            for bad in (True, False):
                outcomes = [power_run(metric, judge, threshold, bad, rng) for _ in range(runs)]
                rolled = [o for o in outcomes if o["outcome"] == "rollback"]
                decided = [o for o in outcomes if o["outcome"] != "undecided"]
                rows.append({"metric": metric, "judge": judge, "threshold": threshold,
                             "release": "bad" if bad else "good", "runs": runs,
                             "rollback": len(rolled) / runs,
                             "promote": sum(o["outcome"] == "promote" for o in outcomes) / runs,
                             "undecided": (runs - len(decided)) / runs,
                             "seconds_median": float(np.median([o["seconds"] for o in decided])) if decided else None,
                             "seconds_p90": float(np.percentile([o["seconds"] for o in decided], 90)) if decided else None,
                             "exposure_median": float(np.median([o["exposure"] for o in outcomes])),
                             "exposure_p90": float(np.percentile([o["exposure"] for o in outcomes], 90))})
    return rows


# --- report ----------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--mw-runs", type=int, default=1000)
    parser.add_argument("--power-runs", type=int, default=200)
    args = parser.parse_args()
    started = time.perf_counter()
    out: dict[str, Any] = {"seed": SEED}
    out["aa_threshold"] = aa_threshold(args.runs, np.random.default_rng([SEED, 1]))
    print(f"A/A threshold gate, {args.runs} runs, a = {out['aa_threshold'][0]['a']:.4f} per look\n")
    print("| looks K | t = 1 measured | 1 − (1 − a)^K | t = 5 measured | P(Bin(K, a) ≥ 5) |\n|---:|---:|---:|---:|---:|")
    by = {(r["threshold"], r["looks"]): r for r in out["aa_threshold"]}
    for k in LOOKS:
        print(f"| {k} | {by[1, k]['measured']:.3f} | {by[1, k]['analytic']:.3f} | {by[5, k]['measured']:.3f} | "
              f"{by[5, k]['analytic']:.3f} |")
    out["aa_comparative"] = aa_comparative(args.runs, args.mw_runs, np.random.default_rng([SEED, 2]))
    print(f"\nA/A comparative judges, {args.runs} runs ({args.mw_runs} for Mann–Whitney, "
          f"a₁ = {out['aa_comparative'][0]['a_mann_whitney']:.5f} per look)\n")
    print("| looks K | Mann–Whitney per interval | 1 − (1 − a₁)^K | MW unthinned, High or Low | z-test, peeking | "
          "mSPRT latency | mSPRT errors |\n|---:|---:|---:|---:|---:|---:|---:|")
    for r in out["aa_comparative"]:
        print(f"| {r['looks']} | {r['mann_whitney']:.4f} | {r['mann_whitney_fixed_horizon']:.4f} | "
              f"{r['mann_whitney_unthinned_either']:.4f} | {r['peeking']:.4f} | "
              f"{r['msprt_latency']:.4f} | {r['msprt_errors']:.4f} |")
    out["timing"] = timing()
    print("\nFlagger's clock\n\n| case | parameters | measured | expected |\n|---|---|---:|---:|")
    for r in out["timing"]:
        params = (f"interval {r['interval']:g} s, stepWeight {r['step_weight']}, maxWeight {r['max_weight']}"
                  if r["case"] == "promotion" else f"interval {r['interval']:g} s, threshold {r['threshold']}")
        print(f"| {r['case']} ({r['outcome']}) | {params} | {r['measured']:g} s | {r['expected']:g} s |")
    out["power"] = power(args.power_runs, np.random.default_rng([SEED, 4]))
    print(f"\nPower, {args.power_runs} runs each\n\n| metric | judge (Flagger threshold) | release | rollback | promote | undecided | "
          "time to decision (median / p90) | exposure (median / p90) |\n|---|---|---|---:|---:|---:|---:|---:|")
    for r in out["power"]:
        when = f"{r['seconds_median']:g} / {r['seconds_p90']:g} s" if r["seconds_median"] is not None else "—"
        print(f"| {r['metric']} | {r['judge']} ({r['threshold']}) | {r['release']} | {r['rollback']:.3f} | {r['promote']:.3f} | "
              f"{r['undecided']:.3f} | {when} | {r['exposure_median']:g} / {r['exposure_p90']:g} |")
    out["seconds"] = round(time.perf_counter() - started, 1)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=1))
    print(f"\n{out['seconds']} s; wrote {RESULTS}")


if __name__ == "__main__":
    main()
