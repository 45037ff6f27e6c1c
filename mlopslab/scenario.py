"""Scenario files: the YAML schema, its loader, and errors that point at file:line and field.

A scenario names the environment, the model, the traffic, the lanes under comparison, a timeline of
events and narration lines for teaching. `load(path)` returns a `Scenario` or raises `ScenarioError`
carrying every problem found (not just the first), each as `file:line: field.path: what was expected`.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlopslab.ml.data import DataSpec

ENVIRONMENTS = ("local", "docker", "kubernetes")
DELIVERIES = ("push", "pull")
TIMELINE_ACTIONS = ("release", "manual_change", "kill_replica", "pause_traffic", "resume_traffic", "drift",
                    "retrain", "pipeline_commit")
SLUG = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
PERCENT = re.compile(r"^\d{1,3}%$")


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.path or '(top)'}: {self.message}"


class ScenarioError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class EnvironmentSpec:
    kind: str = "local"
    base_image: str | None = None


@dataclass(frozen=True)
class LaneSpec:
    name: str
    delivery: str
    replicas: int = 3
    warmup: float = 0.5
    readiness_period: float = 0.2
    max_surge: int | str = "25%"
    max_unavailable: int | str = "25%"
    progress_deadline: float = 60.0
    poll_interval: float = 10.0
    poll_jitter: float = 0.0
    webhook: bool = False
    self_heal: bool = True
    level: int = 0


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


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    seed: int
    duration: float
    environment: EnvironmentSpec
    model_name: str
    data: dict[str, Any]
    train: dict[str, Any]
    rate: float
    label_delay: float
    lanes: tuple[LaneSpec, ...]
    timeline: tuple[TimelineEvent, ...]
    narration: tuple[Narration, ...]
    drift_detection: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


# --- YAML with line numbers ----------------------------------------------------------------------------
class _Located:
    """Plain Python values built from a YAML node tree, remembering each field path's line."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.lines: dict[str, int] = {}

    def build(self, node: yaml.Node, path: str) -> Any:
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = str(key_node.value)
                out[key] = self.build(value_node, f"{path}.{key}" if path else key)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, f"{path}[{i}]") for i, item in enumerate(node.value)]
        return _scalar(node)

    def line(self, path: str) -> int:
        while path and path not in self.lines:
            path = re.sub(r"(\.[^.\[]+|\[\d+\])$", "", path)
        return self.lines.get(path, 1)


def _scalar(node: yaml.ScalarNode) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


class _Check:
    """Collects problems while reading values out of the located tree."""

    def __init__(self, located: _Located) -> None:
        self.located = located
        self.problems: list[Problem] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(Problem(self.located.file, self.located.line(path), path, message))

    def mapping(self, value: Any, path: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(path, f"expected a mapping, got {_kind(value)}")
            return {}
        for key in value:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else f" (expected one of: {', '.join(allowed)})"
                self.fail(f"{path}.{key}" if path else key, f"unknown field{hint}")
        return value

    def number(self, m: dict[str, Any], key: str, path: str, default: Any = None, *, low: float | None = None,
               high: float | None = None, integer: bool = False, required: bool = False) -> Any:
        full = f"{path}.{key}" if path else key
        if key not in m:
            if required:
                self.fail(full, "is required")
            return default
        value = m[key]
        ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok_type:
            self.fail(full, f"expected {'an integer' if integer else 'a number'}, got {_kind(value)} {value!r}")
            return default
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"between {low} and {high}" if low is not None and high is not None else (
                f">= {low}" if low is not None else f"<= {high}")
            self.fail(full, f"expected a value {bounds}, got {value!r}")
            return default
        return value

    def string(self, m: dict[str, Any], key: str, path: str, default: Any = None, *, choices: tuple[str, ...] = (),
               pattern: re.Pattern[str] | None = None, required: bool = False) -> Any:
        full = f"{path}.{key}" if path else key
        if key not in m:
            if required:
                self.fail(full, "is required")
            return default
        value = m[key]
        if not isinstance(value, str):
            self.fail(full, f"expected a string, got {_kind(value)} {value!r}")
            return default
        if choices and value not in choices:
            self.fail(full, f"expected one of {', '.join(choices)}, got {value!r}")
            return default
        if pattern and not pattern.match(value):
            self.fail(full, f"expected lowercase letters, digits and '-', starting with a letter, got {value!r}")
            return default
        return value

    def boolean(self, m: dict[str, Any], key: str, path: str, default: bool) -> bool:
        if key not in m:
            return default
        if not isinstance(m[key], bool):
            self.fail(f"{path}.{key}", f"expected true or false, got {m[key]!r}")
            return default
        return m[key]

    def surge(self, m: dict[str, Any], key: str, path: str, default: int | str) -> int | str:
        if key not in m:
            return default
        value = m[key]
        if (isinstance(value, int) and not isinstance(value, bool) and value >= 0) or (
                isinstance(value, str) and PERCENT.match(value) and int(value[:-1]) <= 100):
            return value
        self.fail(f"{path}.{key}", f"expected a non-negative integer or a percentage like '25%', got {value!r}")
        return default


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", type(None): "nothing"}.get(
        type(value), type(value).__name__)


# --- the schema ------------------------------------------------------------------------------------------
def parse(text: str, file: str = "<scenario>") -> Scenario:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        raise ScenarioError([Problem(file, line, "", f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from None
    located = _Located(file)
    raw = located.build(node, "") if node is not None else None
    c = _Check(located)
    top = c.mapping(raw, "", ("name", "description", "seed", "duration", "environment", "model", "traffic",
                              "lanes", "timeline", "narration", "drift_detection"))
    if raw is None:
        c.fail("", "the file is empty")
    name = c.string(top, "name", "", "", pattern=SLUG, required=True)
    description = c.string(top, "description", "", "")
    seed = c.number(top, "seed", "", 0, low=0, integer=True)
    duration = c.number(top, "duration", "", 60.0, low=1, high=86400, required=True)
    environment = _environment(c, top.get("environment", "local"))
    model = c.mapping(top.get("model"), "model", ("name", "data", "train"))
    model_name = c.string(model, "name", "model", "model", pattern=SLUG)
    data_raw = c.mapping(model.get("data"), "model.data", ("n_features", "n_samples", "curvature", "label_noise"))
    data = {k: v for k, v in {
        "n_features": c.number(data_raw, "n_features", "model.data", None, low=2, high=64, integer=True),
        "n_samples": c.number(data_raw, "n_samples", "model.data", None, low=100, high=1_000_000, integer=True),
        "curvature": c.number(data_raw, "curvature", "model.data", None, low=0, high=5),
        "label_noise": c.number(data_raw, "label_noise", "model.data", None, low=0, high=0.5),
    }.items() if v is not None}
    train = _train(c, model.get("train"), "model.train")
    traffic = c.mapping(top.get("traffic"), "traffic", ("rate", "label_delay"))
    rate = c.number(traffic, "rate", "traffic", 20.0, low=0.1, high=100)
    label_delay = c.number(traffic, "label_delay", "traffic", 5.0, low=0, high=3600)
    lanes = _lanes(c, top.get("lanes"))
    lane_names = {lane.name for lane in lanes}
    timeline = _timeline(c, top.get("timeline"), lane_names, duration, data.get("n_features", DataSpec.n_features))
    narration = _narration(c, top.get("narration"))
    drift_detection = _drift_detection(c, top.get("drift_detection"))
    if environment.kind == "kubernetes":
        c.fail("environment.kind" if isinstance(top.get("environment"), dict) else "environment",
               "the kubernetes environment is not available in this version (use local or docker)")

    if c.problems:
        raise ScenarioError(c.problems)
    return Scenario(name, description, seed, float(duration), environment, model_name, data, train, float(rate),
                    float(label_delay), tuple(lanes), tuple(timeline), tuple(narration), dict(drift_detection))


def _drift_detection(c: _Check, value: Any) -> dict[str, Any]:
    path = "drift_detection"
    m = c.mapping(value, path, ("window", "reference", "psi_threshold", "share", "cusum_h", "cusum_k"))
    checked = {
        "window": c.number(m, "window", path, None, low=20, high=100_000, integer=True),
        "psi_threshold": c.number(m, "psi_threshold", path, None, low=0, high=10),
        "share": c.number(m, "share", path, None, low=0, high=1),
        "cusum_h": c.number(m, "cusum_h", path, None, low=0.1, high=1000),
        "cusum_k": c.number(m, "cusum_k", path, None, low=0, high=10),
    }
    if "reference" in m and m["reference"] != "training" and not (
            isinstance(m["reference"], int) and not isinstance(m["reference"], bool) and m["reference"] >= 20):
        c.fail(f"{path}.reference", f"expected 'training' or a number of rows >= 20, got {m['reference']!r}")
    elif "reference" in m:
        checked["reference"] = m["reference"]
    return {k: v for k, v in checked.items() if v is not None}


def _environment(c: _Check, value: Any) -> EnvironmentSpec:
    if isinstance(value, str):
        value = {"kind": value}
    m = c.mapping(value, "environment", ("kind", "base_image"))
    kind = c.string(m, "kind", "environment", "local", choices=ENVIRONMENTS)
    return EnvironmentSpec(kind, c.string(m, "base_image", "environment", None))


def _train(c: _Check, value: Any, path: str) -> dict[str, Any]:
    m = c.mapping(value, path, ("C", "max_iter", "n_samples"))
    return {k: v for k, v in {
        "C": c.number(m, "C", path, None, low=1e-6, high=1e6),
        "max_iter": c.number(m, "max_iter", path, None, low=1, high=100000, integer=True),
        "n_samples": c.number(m, "n_samples", path, None, low=100, high=1_000_000, integer=True),
    }.items() if v is not None}


LANE_FIELDS = ("name", "delivery", "replicas", "warmup", "readiness", "rollout", "poll", "webhook", "self_heal",
               "level")


def _lanes(c: _Check, value: Any) -> list[LaneSpec]:
    if not isinstance(value, list) or not value:
        c.fail("lanes", f"expected a non-empty list of lanes, got {_kind(value)}")
        return []
    lanes: list[LaneSpec] = []
    for i, raw in enumerate(value):
        path = f"lanes[{i}]"
        m = c.mapping(raw, path, LANE_FIELDS)
        name = c.string(m, "name", path, f"lane{i}", pattern=SLUG, required=True)
        if any(lane.name == name for lane in lanes):
            c.fail(f"{path}.name", f"lane name {name!r} is used twice")
        delivery = c.string(m, "delivery", path, "push", choices=DELIVERIES, required=True)
        readiness = c.mapping(m.get("readiness"), f"{path}.readiness", ("period",))
        rollout = c.mapping(m.get("rollout"), f"{path}.rollout",
                            ("maxSurge", "maxUnavailable", "progressDeadlineSeconds"))
        poll = c.mapping(m.get("poll"), f"{path}.poll", ("interval", "jitter"))
        if "poll" in m and delivery == "push":
            c.fail(f"{path}.poll", "only pull lanes poll; a push lane is triggered by the commit")
        lane = LaneSpec(
            name=name, delivery=delivery,
            replicas=c.number(m, "replicas", path, 3, low=0, high=20, integer=True),
            warmup=float(c.number(m, "warmup", path, 0.5, low=0, high=600)),
            readiness_period=float(c.number(readiness, "period", f"{path}.readiness", 0.2, low=0.01, high=60)),
            max_surge=c.surge(rollout, "maxSurge", f"{path}.rollout", "25%"),
            max_unavailable=c.surge(rollout, "maxUnavailable", f"{path}.rollout", "25%"),
            progress_deadline=float(c.number(rollout, "progressDeadlineSeconds", f"{path}.rollout", 60, low=1,
                                             high=3600, integer=True)),
            poll_interval=float(c.number(poll, "interval", f"{path}.poll", 10.0, low=0.1, high=3600)),
            poll_jitter=float(c.number(poll, "jitter", f"{path}.poll", 0.0, low=0, high=3600)),
            webhook=c.boolean(m, "webhook", path, False),
            self_heal=c.boolean(m, "self_heal", path, True),
            level=c.number(m, "level", path, 0, low=0, high=2, integer=True),
        )
        if lane.max_surge in (0, "0%") and lane.max_unavailable in (0, "0%"):
            c.fail(f"{path}.rollout", "maxSurge and maxUnavailable cannot both be zero")
        lanes.append(lane)
    return lanes


ACTION_FIELDS: dict[str, tuple[str, ...]] = {
    "release": ("C", "max_iter", "n_samples", "note"),
    "manual_change": ("lane", "replicas", "version"),
    "kill_replica": ("lane",),
    "pause_traffic": (),
    "resume_traffic": (),
    "drift": ("kind", "size", "features", "ramp"),
    "retrain": ("lane",),
    "pipeline_commit": ("lane", "tests_pass", "note"),
}


def _timeline(c: _Check, value: Any, lanes: set[str], duration: Any, n_features: int) -> list[TimelineEvent]:
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
        if isinstance(duration, (int, float)) and isinstance(at, (int, float)) and at > duration:
            c.fail(f"{path}.at", f"expected a time within the run's duration ({duration} s), got {at!r}")
        actions = [a for a in TIMELINE_ACTIONS if a in m]
        if len(actions) != 1:
            c.fail(path, f"expected exactly one action of: {', '.join(TIMELINE_ACTIONS)}")
            continue
        action = actions[0]
        apath = f"{path}.{action}"
        args = c.mapping(m[action], apath, ACTION_FIELDS[action])
        if "lane" in args:
            lane = args["lane"]
            if lane != "all" and lane not in lanes:
                c.fail(f"{apath}.lane", f"expected 'all' or a lane name ({', '.join(sorted(lanes))}), got {lane!r}")
        elif action in ("manual_change", "kill_replica", "pipeline_commit"):
            c.fail(f"{apath}.lane", "is required")
        if action == "release":
            _train(c, {k: v for k, v in args.items() if k != "note"}, apath)
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
        events.append(TimelineEvent(float(at or 0), action, dict(args), c.located.line(path)))
    return sorted(events, key=lambda e: e.at)


def _narration(c: _Check, value: Any) -> list[Narration]:
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


def load(path: Path | str) -> Scenario:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError([Problem(str(path), 0, "", f"cannot read the file: {exc.strerror}")]) from None
    scenario = parse(text, str(path))
    return Scenario(**{**scenario.__dict__, "path": path})


def find(name_or_path: str, search: Path | None = None) -> Path:
    """A scenario by path, or by name among the shipped ones (`push-vs-pull` → scenarios/push-vs-pull.yaml)."""
    candidate = Path(name_or_path)
    if candidate.exists():
        return candidate
    directory = search or shipped_dir()
    for suffix in (".yaml", ".yml", ""):
        path = directory / f"{name_or_path}{suffix}"
        if path.exists():
            return path
    return candidate


def shipped_dir() -> Path:
    """The shipped scenarios: ./scenarios when run from a checkout, else the package's copy."""
    here = Path.cwd() / "scenarios"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parent.parent / "scenarios"


def shipped() -> list[Path]:
    return sorted(shipped_dir().glob("*.yaml"))
