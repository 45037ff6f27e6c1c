"""Reading a lane's `strategy:` out of a scenario, every problem with its file:line and field path.

    strategy: {type: canary, interval: 5, threshold: 2, stepWeight: 20, maxWeight: 60,
               gates: [{metric: success_rate, min: 99}, {metric: p99, max: 250}]}

A field that does not apply to the type is a problem (`stepWeight` on a blue-green lane), as are a
Flagger ladder and Argo steps together, or a gate without a bound.
"""

from __future__ import annotations

from typing import Any

from mlopslab.schema import _Check, _kind
from mlopslab.strategies.spec import JUDGES, METRICS, TYPES, GateSpec, Step, StrategySpec

ANALYSIS = ("interval", "threshold", "gates")
APPLIES: dict[str, tuple[str, ...]] = {
    "rolling": (),
    "recreate": (),
    "canary": ANALYSIS + ("stepWeight", "stepWeights", "maxWeight", "steps"),
    "blue-green": ANALYSIS + ("iterations", "autoPromotionEnabled", "autoPromotionSeconds", "scaleDownDelaySeconds",
                              "prePromotionAnalysis", "postPromotionAnalysis"),
    "shadow": ANALYSIS + ("iterations",),
    "ab": ANALYSIS + ("iterations", "share"),
}
FIELDS = ("type",) + tuple(dict.fromkeys(f for fields in APPLIES.values() for f in fields))
MIRRORED = ("shadow", "blue-green")   # where a candidate answers copies of the same requests


def check(c: _Check, value: Any, path: str) -> StrategySpec | None:
    """The lane's strategy, or None when the lane has none (a rolling update)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = {"type": value}
    m = c.mapping(value, path, FIELDS)
    kind = c.string(m, "type", path, "rolling", choices=TYPES, required=True)
    for key in m:
        if key in FIELDS and key != "type" and key not in APPLIES.get(kind, FIELDS):
            c.fail(f"{path}.{key}", f"does not apply to type {kind}")
    d = StrategySpec()
    spec = StrategySpec(
        type=kind,
        interval=float(c.number(m, "interval", path, d.interval, low=0.1, high=3600)),
        threshold=int(c.number(m, "threshold", path, d.threshold, low=1, high=1000, integer=True)),
        step_weight=float(c.number(m, "stepWeight", path, d.step_weight, low=0.1, high=100)),
        step_weights=_weights(c, m, path),
        max_weight=float(c.number(m, "maxWeight", path, d.max_weight, low=0.1, high=100)),
        iterations=int(c.number(m, "iterations", path, d.iterations, low=1, high=1000, integer=True)),
        steps=_steps(c, m.get("steps"), f"{path}.steps"),
        auto_promotion_enabled=c.boolean(m, "autoPromotionEnabled", path, True),
        auto_promotion_seconds=c.number(m, "autoPromotionSeconds", path, None, low=0, high=86400),
        scale_down_delay_seconds=float(c.number(m, "scaleDownDelaySeconds", path, d.scale_down_delay_seconds,
                                                low=0, high=86400)),
        pre_promotion_analysis=_analysis(c, m, "prePromotionAnalysis", path),
        post_promotion_analysis=_analysis(c, m, "postPromotionAnalysis", path),
        share=float(c.number(m, "share", path, d.share, low=0.1, high=99.9)),
        gates=_gates(c, m.get("gates"), f"{path}.gates", kind),
    )
    if "steps" in m and any(k in m for k in ("stepWeight", "stepWeights", "maxWeight")):
        c.fail(f"{path}.steps", "Argo's steps replace Flagger's stepWeight/stepWeights/maxWeight: give one form")
    if "stepWeight" in m and "stepWeights" in m:
        c.fail(f"{path}.stepWeights", "give stepWeight or stepWeights, not both")
    if "stepWeight" in m and "maxWeight" in m and spec.step_weight > spec.max_weight:
        c.fail(f"{path}.stepWeight", f"expected at most maxWeight ({spec.max_weight:g}), got {spec.step_weight:g}")
    if kind in ("shadow", "ab") and not spec.gates:
        c.fail(f"{path}.gates", f"a {kind} lane decides by its gates: give at least one")
    return spec


def _weights(c: _Check, m: dict[str, Any], path: str) -> tuple[float, ...]:
    value = m.get("stepWeights")
    if value is None:
        return ()
    ok = isinstance(value, list) and value and all(
        isinstance(w, (int, float)) and not isinstance(w, bool) and 0 < w <= 100 for w in value)
    if not ok or any(b <= a for a, b in zip(value, value[1:])):
        c.fail(f"{path}.stepWeights", f"expected a rising list of percentages in (0, 100], got {value!r}")
        return ()
    return tuple(float(w) for w in value)


def _analysis(c: _Check, m: dict[str, Any], key: str, path: str) -> int:
    """prePromotionAnalysis / postPromotionAnalysis: true (the strategy's iterations), or {checks: N}."""
    value = m.get(key)
    if value is None or value is False:
        return 0
    if value is True:
        return int(m.get("iterations", StrategySpec.iterations)) if isinstance(m.get("iterations"), int) else \
            StrategySpec.iterations
    sub = c.mapping(value, f"{path}.{key}", ("checks",))
    return int(c.number(sub, "checks", f"{path}.{key}", 1, low=1, high=1000, integer=True, required=True))


def _steps(c: _Check, value: Any, path: str) -> tuple[Step, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not value:
        c.fail(path, f"expected a non-empty list of steps, got {_kind(value)}")
        return ()
    steps = []
    for i, raw in enumerate(value):
        here = f"{path}[{i}]"
        m = c.mapping(raw, here, ("setWeight", "pause", "analysis"))
        if len(m) != 1:
            c.fail(here, "expected exactly one of setWeight, pause, analysis")
            continue
        if "setWeight" in m:
            steps.append(Step("setWeight", float(c.number(m, "setWeight", here, 0, low=0, high=100))))
        elif "pause" in m:
            pause = c.mapping(m["pause"], f"{here}.pause", ("duration",))
            steps.append(Step("pause", c.number(pause, "duration", f"{here}.pause", None, low=0, high=86400)))
        else:
            analysis = c.mapping(m["analysis"], f"{here}.analysis", ("checks",))
            steps.append(Step("analysis", float(c.number(analysis, "checks", f"{here}.analysis", 1, low=1,
                                                         high=1000, integer=True))))
    return tuple(steps)


def _gates(c: _Check, value: Any, path: str, kind: str) -> tuple[GateSpec, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        c.fail(path, f"expected a list of gates, got {_kind(value)}")
        return ()
    gates = []
    for i, raw in enumerate(value):
        here = f"{path}[{i}]"
        m = c.mapping(raw, here, ("metric", "min", "max", "window", "judge", "min_samples", "name"))
        metric = c.string(m, "metric", here, "success_rate", choices=METRICS, required=True)
        low = c.number(m, "min", here, None)
        high = c.number(m, "max", here, None)
        if "min" not in m and "max" not in m:
            c.fail(here, "expected min and/or max: the bound the metric must keep")
        if metric == "disagreement" and kind not in MIRRORED:
            c.fail(f"{here}.metric", "disagreement compares answers to the same request: only shadow and "
                                     "blue-green lanes (their candidate gets copies) have it")
        gates.append(GateSpec(
            metric=metric, min=low, max=high,
            window=c.number(m, "window", here, None, low=0.1, high=3600),
            judge=c.string(m, "judge", here, "threshold", choices=JUDGES),
            min_samples=int(c.number(m, "min_samples", here, 10, low=1, high=1_000_000, integer=True)),
            name=c.string(m, "name", here, "")))
        if any(g.label == gates[-1].label for g in gates[:-1]):
            c.fail(here, f"two gates are called {gates[-1].label!r}: give one a name")
    return tuple(gates)
