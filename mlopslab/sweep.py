"""Parameter sweeps: a grid over scenario fields, each point a valid scenario, errors at the sweep's line.

A sweep names fields by path, the way errors print them, with a lane picked by name or index:

    sweep:
      lanes[pull].poll.interval: [5, 10, 30]
      traffic.rate: [10, 40]

or on the command line, `--set 'lanes[pull].poll.interval=5,10,30'`. `grid(...)` checks every point by
setting the values in the scenario's YAML tree and validating the result, so a bad path or value is
reported as `file:line: sweep.<path>: ...` (or `--set: ...`) before anything runs.
"""

from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlopslab import scenario as scenarios
from mlopslab import yamltree

MAX_POINTS = 64
_TOKEN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)|\[([^\]]+)\]|(\.)")


@dataclass(frozen=True)
class Axis:
    path: str
    values: tuple[Any, ...]
    line: int  # 0 for --set
    origin: str  # "sweep" or "--set"


@dataclass(frozen=True)
class Point:
    params: dict[str, Any]
    scenario: scenarios.Scenario
    document: dict[str, Any]  # the scenario's YAML values with the params set (what each run is given)


def parse_set(text: str) -> Axis:
    """`path=v1,v2,...` from the command line; each value read as a YAML scalar (5 → int, 0.5 → float)."""
    path, sep, values = text.partition("=")
    if not sep or not path.strip() or not values.strip():
        raise scenarios.ScenarioError([scenarios.Problem("--set", 0, "", f"expected PATH=V1,V2,..., got {text!r}")])
    read = []
    for value in values.split(","):
        try:
            read.append(yamltree.compose(value.strip()).value)
        except yamltree.YamlError as exc:
            raise scenarios.ScenarioError([scenarios.Problem("--set", 0, path, exc.message)]) from None
    return Axis(path.strip(), tuple(read), 0, "--set")


def axes(tree: yamltree.Tree, file: str) -> list[Axis]:
    """The `sweep:` mapping of a scenario file's tree."""
    raw = tree.value.get("sweep") if isinstance(tree.value, dict) else None
    if raw is None:
        return []
    if not isinstance(raw, dict):
        raise _error(file, tree.line("sweep"), "sweep", "expected a mapping of field path → list of values")
    out = []
    for path, values in raw.items():
        line = tree.line(f"sweep.{path}")
        if not isinstance(values, list) or not values or any(isinstance(v, (dict, list)) for v in values):
            raise _error(file, line, f"sweep.{path}", f"expected a non-empty list of values, got {values!r}")
        out.append(Axis(path, tuple(values), line, "sweep"))
    return out


def grid(path: Path, extra: list[Axis] | None = None) -> list[Point]:
    """Every point of the scenario's sweep (and `extra` axes from --set, which replace a same-path sweep),
    each validated; one point with no params when there is nothing to sweep."""
    file = str(path)
    try:
        tree = yamltree.read(path)
    except yamltree.YamlError as exc:
        raise scenarios.ScenarioError([scenarios.Problem(file, exc.line, "", exc.message)]) from None
    base = scenarios.load(path)  # the file itself is valid before any point is tried
    chosen = {axis.path: axis for axis in axes(tree, file)}
    for axis in extra or []:
        chosen[axis.path] = axis
    count = 1
    for axis in chosen.values():
        count *= len(axis.values)
    if count > MAX_POINTS:
        raise _error(file, tree.lines.get("sweep", 0), "sweep",
                     f"{count} points; at most {MAX_POINTS} (times --repeat) are run")
    document = {k: v for k, v in tree.value.items() if k != "sweep"}
    points = []
    for values in itertools.product(*(axis.values for axis in chosen.values())):
        params = dict(zip(chosen, values))
        doc = copy.deepcopy(document)
        for axis, value in zip(chosen.values(), values):
            _set(doc, axis, value, file)
        points.append(Point(params, _validated(doc, tree, file, chosen, params, base), doc))
    return points


def _validated(doc: dict[str, Any], tree: yamltree.Tree, file: str, chosen: dict[str, Axis],
               params: dict[str, Any], base: scenarios.Scenario) -> scenarios.Scenario:
    if not params:
        return base
    try:
        sc = scenarios.validate_values(doc, tree, file)
    except scenarios.ScenarioError as exc:
        problems = []
        for problem in exc.problems:
            axis = next((a for a in chosen.values() if _same_field(a.path, problem.path, doc)), None)
            if axis is None:
                problems.append(problem)
            else:
                problems.append(scenarios.Problem(file if axis.origin == "sweep" else "--set", axis.line, _where(axis),
                                                  f"value {params[axis.path]!r}: {problem.message}"))
        raise scenarios.ScenarioError(problems) from None
    return scenarios.Scenario(**{**sc.__dict__, "path": base.path})


def _where(axis: Axis) -> str:
    return f"sweep.{axis.path}" if axis.origin == "sweep" else axis.path


def _same_field(axis_path: str, problem_path: str, doc: dict[str, Any]) -> bool:
    """Whether a validation problem is about the swept field (lanes[pull] is lanes[1] in problems)."""
    return problem_path.startswith(_indexed(axis_path, doc))


def _indexed(path: str, doc: dict[str, Any]) -> str:
    lanes = doc.get("lanes") if isinstance(doc.get("lanes"), list) else []
    names = [lane.get("name") if isinstance(lane, dict) else None for lane in lanes]

    def index(match: re.Match[str]) -> str:
        key = match.group(1)
        return f"lanes[{names.index(key)}]" if key in names else match.group(0)

    return re.sub(r"lanes\[([^\]]+)\]", index, path)


def _set(doc: dict[str, Any], axis: Axis, value: Any, file: str) -> None:
    tokens = _tokens(axis, file)
    node: Any = doc
    for i, (key, selector) in enumerate(tokens):
        last = i == len(tokens) - 1
        if selector is None:
            if not isinstance(node, dict):
                raise _axis_error(axis, file, f"{key!r} is not a field of a mapping here")
            if last:
                node[key] = value
                return
            node = node.setdefault(key, {})
            if node is None:
                node = {}
        else:
            if not isinstance(node, list):
                raise _axis_error(axis, file, f"[{selector}] picks from a list, and this is not one")
            node = _pick(node, selector, axis, file)
            if last:
                raise _axis_error(axis, file, "a sweep sets a field, not a whole list item")


def _pick(items: list[Any], selector: str, axis: Axis, file: str) -> Any:
    if selector.isdigit() and int(selector) < len(items):
        return items[int(selector)]
    for item in items:
        if isinstance(item, dict) and item.get("name") == selector:
            return item
    names = ", ".join(str(item.get("name")) for item in items if isinstance(item, dict))
    raise _axis_error(axis, file, f"no item named {selector!r} (there are: {names})")


def _tokens(axis: Axis, file: str) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    pos, text = 0, axis.path
    expect_name = True
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or (match.group(3) and expect_name):
            raise _axis_error(axis, file, f"not a field path (at {text[pos:]!r}); "
                         "write it like lanes[pull].poll.interval")
        if match.group(1):
            out.append((match.group(1), None))
            expect_name = False
        elif match.group(2):
            if not out:
                raise _axis_error(axis, file, "a path starts with a field name")
            out.append(("", match.group(2).strip()))
        else:
            expect_name = True
        pos = match.end()
    if not out or expect_name:
        raise _axis_error(axis, file, "not a field path; write it like lanes[pull].poll.interval")
    return out


def _axis_error(axis: Axis, file: str, message: str) -> scenarios.ScenarioError:
    return _error(file if axis.origin == "sweep" else "--set", axis.line, _where(axis), message)


def _error(file: str, line: int, path: str, message: str) -> scenarios.ScenarioError:
    return scenarios.ScenarioError([scenarios.Problem(file, line, path, message)])
