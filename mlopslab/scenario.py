"""Scenario files: the YAML schema, its loader, and errors that point at file:line and field.

A scenario names the environment, the model, the traffic, the lanes under comparison, a timeline of
events and narration lines for teaching. `load(path)` returns a `Scenario` or raises `ScenarioError`
carrying every problem found (not just the first), each as `file:line: field.path: what was expected`.
The timeline and narration have a module of their own (scenario_timeline.py).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mlopslab import yamltree
from mlopslab.ml.data import DataSpec
from mlopslab.scenario_timeline import (  # noqa: F401  (TIMELINE_ACTIONS, ACTION_FIELDS: API)
    ACTION_FIELDS,
    TIMELINE_ACTIONS,
    Narration,
    TimelineEvent,
    check_narration,
    check_timeline,
    check_train,
)
from mlopslab.schema import Problem, ScenarioError, _Check, _kind  # noqa: F401  (Problem, ScenarioError: API)
from mlopslab.strategies import schema as strategy_schema
from mlopslab.strategies.spec import StrategySpec

ENVIRONMENTS = ("local", "docker", "kubernetes")
DELIVERIES = ("push", "pull", "flux")
SLUG = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
MAX_DURATION = 86400


@dataclass(frozen=True)
class EnvironmentSpec:
    kind: str = "local"
    base_image: str | None = None
    cluster: str = "embedded"        # kubernetes: "embedded" (the lab starts one) | "context" (an existing one)
    kubeconfig: str | None = None    # kubernetes, cluster: context
    context: str | None = None       # kubernetes, cluster: context (None: the kubeconfig's current context)
    runtime: str = "process"         # kubernetes, embedded: pods run as processes, or as containers ("docker")


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
    live_check: float = 1.0           # pull: seconds between the agent's looks at live state (Flux: its interval)
    level: int = 0
    strategy: StrategySpec | None = None   # None: the Deployment's rolling update (mlopslab/strategies)


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
    sweep: tuple[str, ...] = ()  # swept field paths (mlopslab.sweep checks and expands them)
    retrain: dict[str, Any] = field(default_factory=dict)  # the pipelines' min_rows / max_rows


# --- the schema ------------------------------------------------------------------------------------------
def parse(text: str, file: str = "<scenario>") -> Scenario:
    try:
        tree = yamltree.compose(text)
    except yamltree.YamlError as exc:
        raise ScenarioError([Problem(file, exc.line, "", exc.message)]) from None
    return _validate(tree, file)


def validate_values(values: Any, tree: yamltree.Tree, file: str) -> Scenario:
    """Validates plain values (e.g. a sweep's point) with `tree`'s lines for the fields it shares."""
    return _validate(yamltree.Tree(values, tree.lines), file)


def _validate(tree: yamltree.Tree, file: str) -> Scenario:
    raw = tree.value
    c = _Check(tree, file)
    for path, first, again in tree.duplicates:
        c.problems.append(Problem(file, again, path, f"duplicate key (first on line {first}, again on line {again}); "
                                  "YAML keys are unique"))
    top = c.mapping(raw, "", ("name", "description", "seed", "duration", "environment", "model", "traffic",
                              "lanes", "timeline", "narration", "drift_detection", "sweep"))
    if raw is None:
        c.fail("", "the file holds no scenario (it is empty, only comments, or null)")
        raise ScenarioError(c.problems)
    if not isinstance(raw, dict):
        raise ScenarioError(c.problems)
    name = c.string(top, "name", "", "", pattern=SLUG, required=True)
    description = c.string(top, "description", "", "")
    seed = c.number(top, "seed", "", 0, low=0, integer=True)
    duration = c.number(top, "duration", "", 60.0, low=1, high=MAX_DURATION, required=True)
    environment = _environment(c, top.get("environment", "local"))
    model = c.mapping(top.get("model"), "model", ("name", "data", "train", "retrain"))
    model_name = c.string(model, "name", "model", "model", pattern=SLUG)
    data_raw = c.mapping(model.get("data"), "model.data", ("n_features", "n_samples", "curvature", "label_noise"))
    data = {k: v for k, v in {
        "n_features": c.number(data_raw, "n_features", "model.data", None, low=2, high=64, integer=True),
        "n_samples": c.number(data_raw, "n_samples", "model.data", None, low=100, high=1_000_000, integer=True),
        "curvature": c.number(data_raw, "curvature", "model.data", None, low=0, high=5),
        "label_noise": c.number(data_raw, "label_noise", "model.data", None, low=0, high=0.5),
    }.items() if v is not None}
    train = check_train(c, model.get("train"), "model.train")
    retrain_raw = c.mapping(model.get("retrain"), "model.retrain", ("min_rows", "max_rows"))
    retrain = {k: v for k, v in {
        "min_rows": c.number(retrain_raw, "min_rows", "model.retrain", None, low=50, high=100_000, integer=True),
        "max_rows": c.number(retrain_raw, "max_rows", "model.retrain", None, low=50, high=1_000_000, integer=True),
    }.items() if v is not None}
    traffic = c.mapping(top.get("traffic"), "traffic", ("rate", "label_delay"))
    rate = c.number(traffic, "rate", "traffic", 20.0, low=0.1, high=100)
    label_delay = c.number(traffic, "label_delay", "traffic", 5.0, low=0, high=3600)
    lanes = _lanes(c, top.get("lanes"))
    _flux_lanes(c, lanes, environment)
    lane_names = {lane.name for lane in lanes}
    timeline = check_timeline(c, top.get("timeline"), lane_names, duration, data.get("n_features", DataSpec.n_features))
    narration = check_narration(c, top.get("narration"))
    drift_detection = _drift_detection(c, top.get("drift_detection"))

    sweep = top.get("sweep")
    if sweep is not None and not (isinstance(sweep, dict) and sweep):
        c.fail("sweep", f"expected a mapping of field path → list of values, got {_kind(sweep)}")

    if c.problems:
        raise ScenarioError(c.problems)
    return Scenario(name, description, seed, float(duration), environment, model_name, data, train, float(rate),
                    float(label_delay), tuple(lanes), tuple(timeline), tuple(narration), dict(drift_detection),
                    sweep=tuple(sweep or ()), retrain=retrain)


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
    m = c.mapping(value, "environment", ("kind", "base_image", "cluster", "kubeconfig", "context", "runtime"))
    kind = c.string(m, "kind", "environment", "local", choices=ENVIRONMENTS)
    cluster = c.string(m, "cluster", "environment", "embedded", choices=("embedded", "context"))
    kubeconfig = c.string(m, "kubeconfig", "environment", None)
    context = c.string(m, "context", "environment", None)
    runtime = c.string(m, "runtime", "environment", "process", choices=("process", "docker"))
    for key in ("cluster", "kubeconfig", "context", "runtime"):
        if key in m and kind != "kubernetes":
            c.fail(f"environment.{key}", f"only a kubernetes environment has {key} (this one is {kind})")
    if kind == "kubernetes" and cluster == "embedded" and (kubeconfig or context):
        c.fail("environment.cluster", "kubeconfig and context choose an existing cluster: set cluster: context")
    if cluster == "context" and "runtime" in m:
        c.fail("environment.runtime", "an existing cluster's nodes run its pods: runtime is for cluster: embedded")
    return EnvironmentSpec(kind, c.string(m, "base_image", "environment", None), cluster, kubeconfig, context,
                           runtime)


LANE_FIELDS = ("name", "delivery", "replicas", "warmup", "readiness", "rollout", "poll", "webhook", "self_heal",
               "live_check", "level", "strategy")


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
            live_check=float(c.number(m, "live_check", path, 1.0, low=0.05, high=3600)),
            level=c.number(m, "level", path, 0, low=0, high=2, integer=True),
            strategy=strategy_schema.check(c, m.get("strategy"), f"{path}.strategy"),
        )
        if "live_check" in m and delivery != "pull":
            c.fail(f"{path}.live_check", "only the lab's pull agent has live_check (Flux looks at live state at its "
                                         "interval, a push lane never)")
        if lane.max_surge in (0, "0%") and lane.max_unavailable in (0, "0%"):
            c.fail(f"{path}.rollout", "maxSurge and maxUnavailable cannot both be zero")
        lanes.append(lane)
    return lanes


def _flux_lanes(c: _Check, lanes: list[LaneSpec], environment: EnvironmentSpec) -> None:
    """Flux runs only beside a Kubernetes API, polls (its webhook receiver, notification-controller, is not
    to be had: see README), and always corrects drift. A progressive strategy is fine: the rollout controller
    follows the Deployment Flux applies, as Flagger does (envs/kubernetes/declared.py)."""
    for i, lane in enumerate(lanes):
        if lane.delivery != "flux":
            continue
        path = f"lanes[{i}]"
        if environment.kind != "kubernetes":
            c.fail(f"{path}.delivery", f"delivery: flux needs environment kind kubernetes (this one is "
                                       f"{environment.kind}): Flux's controllers reconcile through a Kubernetes API")
        elif environment.cluster != "embedded":
            c.fail(f"{path}.delivery", "delivery: flux runs on the embedded cluster only (cluster: embedded)")
        elif environment.runtime != "process":   # a pod's image is made before an apply; Flux applies unseen
            c.fail(f"{path}.delivery", "delivery: flux runs its pods as processes only (runtime: process): the "
                                       "lab makes a container pod's image before it applies, and Flux applies by itself")
        if lane.webhook:
            c.fail(f"{path}.webhook", "a Flux lane polls: its webhook receiver (notification-controller) cannot be "
                                      "built here, its Go module is not served")
        if not lane.self_heal:
            c.fail(f"{path}.self_heal", "Flux always corrects drift at its interval; use delivery: pull to "
                                        "compare without self-heal")


def load(path: Path | str) -> Scenario:
    path = Path(path)
    try:
        tree = yamltree.read(path)
    except yamltree.YamlError as exc:
        raise ScenarioError([Problem(str(path), exc.line, "", exc.message)]) from None
    scenario = _validate(tree, str(path))
    return Scenario(**{**scenario.__dict__, "path": path})


def with_duration(scenario: Scenario, seconds: float) -> tuple[Scenario, list[TimelineEvent]]:
    """The scenario cut (or stretched) to `seconds`, and the timeline entries that no longer happen."""
    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and 1 <= seconds <= MAX_DURATION):
        raise ScenarioError([Problem("--duration", 0, "duration",
                                     f"expected seconds between 1 and {MAX_DURATION}, got {seconds!r}")])
    dropped = [event for event in scenario.timeline if event.at >= seconds]
    kept = tuple(event for event in scenario.timeline if event.at < seconds)
    narration = tuple(n for n in scenario.narration if n.at < seconds)
    return replace(scenario, duration=float(seconds), timeline=kept, narration=narration), dropped


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
    """The shipped scenarios: package data (`mlopslab/scenarios`, a link to the checkout's `scenarios/`),
    so an installed wheel finds them from any directory."""
    return Path(__file__).resolve().parent / "scenarios"


def shipped() -> list[Path]:
    return sorted(shipped_dir().glob("*.yaml"))
