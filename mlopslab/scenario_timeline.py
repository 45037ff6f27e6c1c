"""A scenario's timeline and narration: what happens at which second of a run (a release, a person's live
edit, a killed replica, paused traffic, drift, a retraining, a pipeline commit), the schema of each
action's arguments, and the teaching lines shown along the way. scenario.py validates the rest of the
file with the same `_Check`; mlopslab/play.py plays the timeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlopslab.schema import _Check, _kind

TIMELINE_ACTIONS = ("release", "manual_change", "kill_replica", "pause_traffic", "resume_traffic", "drift",
                    "retrain", "pipeline_commit")


@dataclass(frozen=True)
class TimelineEvent:
    at: float
    action: str
    args: dict[str, Any]
    line: int = 0


@dataclass(frozen=True)
class Narration:
    at: float
    text: str


def check_train(c: _Check, value: Any, path: str) -> dict[str, Any]:
    """model.train, and a release's training arguments: the same fields."""
    m = c.mapping(value, path, ("C", "max_iter", "n_samples"))
    return {k: v for k, v in {
        "C": c.number(m, "C", path, None, low=1e-6, high=1e6),
        "max_iter": c.number(m, "max_iter", path, None, low=1, high=100000, integer=True),
        "n_samples": c.number(m, "n_samples", path, None, low=100, high=1_000_000, integer=True),
    }.items() if v is not None}



ACTION_FIELDS: dict[str, tuple[str, ...]] = {
    "release": ("C", "max_iter", "n_samples", "note", "latency_ms", "corrupt_labels"),
    "manual_change": ("lane", "replicas", "version"),
    "kill_replica": ("lane",),
    "pause_traffic": (),
    "resume_traffic": (),
    "drift": ("kind", "size", "features", "ramp"),
    "retrain": ("lane",),
    "pipeline_commit": ("lane", "tests_pass", "note"),
}


def check_timeline(c: _Check, value: Any, lanes: set[str], duration: Any, n_features: int) -> list[TimelineEvent]:
    if value is None:
        return []
    if not isinstance(value, list):
        c.fail("timeline", f"expected a list of events, got {_kind(value)}")
        return []
    events: list[TimelineEvent] = []
    for i, raw in enumerate(value):
        path = f"timeline[{i}]"
        m = c.mapping(raw, path, ("at",) + TIMELINE_ACTIONS)
        at = c.number(m, "at", path, 0.0, low=0, required=True)
        if isinstance(duration, (int, float)) and isinstance(at, (int, float)) and at >= duration:
            c.fail(f"{path}.at", f"expected a time before the end of the run (duration {duration} s), got {at!r}; "
                   "it would never happen")
        actions = [a for a in TIMELINE_ACTIONS if a in m]
        if len(actions) != 1:
            c.fail(path, f"expected exactly one action of: {', '.join(TIMELINE_ACTIONS)}")
            continue
        action = actions[0]
        apath = f"{path}.{action}"
        args = c.mapping(m[action], apath, ACTION_FIELDS[action])
        if "lane" in args:
            lane = c.string(args, "lane", apath, "all")
            if lane != "all" and lane not in lanes:
                c.fail(f"{apath}.lane", f"expected 'all' or a lane name ({', '.join(sorted(lanes))}), got {lane!r}")
        elif action in ("manual_change", "kill_replica", "pipeline_commit"):
            c.fail(f"{apath}.lane", "is required")
        if action == "release":
            check_train(c, {k: v for k, v in args.items() if k not in ("note", "latency_ms", "corrupt_labels")}, apath)
            c.number(args, "latency_ms", apath, None, low=0, high=1500)   # the version's server answers this late
            c.number(args, "corrupt_labels", apath, None, low=0, high=1)  # share of positive labels trained as negative
        if action == "manual_change":
            c.number(args, "replicas", apath, None, low=0, high=20, integer=True)
            if "version" in args and not isinstance(args["version"], (int, str)):
                c.fail(f"{apath}.version", f"expected a model version, got {args['version']!r}")
            if "replicas" not in args and "version" not in args:
                c.fail(apath, "expected replicas and/or version to change")
        if action == "drift":
            kind = c.string(args, "kind", apath, None, choices=("covariate", "prior", "concept"), required=True)
            if kind == "prior":
                c.number(args, "size", apath, None, low=0, high=1, required=True)  # the new positive share
            else:
                c.number(args, "size", apath, None, low=-100, high=100, required=True)
            c.number(args, "ramp", apath, None, low=0)
            feats = args.get("features")
            if feats is not None and not (isinstance(feats, list) and all(
                    isinstance(f, int) and not isinstance(f, bool) and 0 <= f < n_features for f in feats)):
                c.fail(f"{apath}.features", f"expected a list of feature indexes 0..{n_features - 1}, got {feats!r}")
        events.append(TimelineEvent(float(at or 0), action, dict(args), c.line(path)))
    return sorted(events, key=lambda e: e.at)


def check_narration(c: _Check, value: Any) -> list[Narration]:
    if value is None:
        return []
    if not isinstance(value, list):
        c.fail("narration", f"expected a list of {{at, text}}, got {_kind(value)}")
        return []
    out = []
    for i, raw in enumerate(value):
        path = f"narration[{i}]"
        m = c.mapping(raw, path, ("at", "text"))
        at = c.number(m, "at", path, 0.0, low=0, required=True)
        text = c.string(m, "text", path, "", required=True)
        out.append(Narration(float(at or 0), text))
    return sorted(out, key=lambda n: n.at)
