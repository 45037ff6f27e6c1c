"""Parameter sweeps: a grid over scenario fields, each point a valid scenario, errors at the sweep's line.

A sweep names fields by path, the way errors print them, with a lane picked by name, index or `*` (all):

    sweep:
      lanes[pull].poll.interval: [5, 10, 30]
      traffic.rate: [10, 40]
      size:                                   # an axis of cases, each setting several fields together
        small: {model.retrain.min_rows: 200, "lanes[*].replicas": 1}
        large: {model.retrain.min_rows: 1000, "lanes[*].replicas": 6}

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
    path: str  # a field path, or the name of an axis of cases
    values: tuple[Any, ...]  # the values, or the case names
    line: int  # 0 for --set
    origin: str  # "sweep" or "--set"
    cases: dict[str, dict[str, Any]] | None = None  # case name -> {field path: value}, set together
    label: str = ""  # where errors point, when not the path (a case's field: size.large.traffic.rate)

    def settings(self, value: Any) -> list[tuple[str, Any]]:
        """The (field path, value) pairs one value of this axis sets."""
        return list(self.cases[value].items()) if self.cases is not None else [(self.path, value)]


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
    """The `sweep:` mapping of a scenario file's tree: `path: [values]`, or `name: {case: {path: value}}`
    for an axis whose points set several fields together (e.g. an application's size)."""
    raw = tree.value.get("sweep") if isinstance(tree.value, dict) else None
    if raw is None:
        return []
    if not isinstance(raw, dict):
        raise _error(file, tree.line("sweep"), "sweep", "expected a mapping of field path → list of values")
    out = []
    for path, values in raw.items():
        line = tree.line(f"sweep.{path}")
        if isinstance(values, dict) and values and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", path):
            bad = [case for case, fields in values.items() if not isinstance(fields, dict) or not fields
                   or any(isinstance(v, (dict, list)) for v in fields.values())]
            if bad:
                raise _error(file, tree.line(f"sweep.{path}.{bad[0]}"), f"sweep.{path}.{bad[0]}",
                             "expected a mapping of field path → value (one case of the axis)")
            out.append(Axis(path, tuple(values), line, "sweep", cases=values))
            continue
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
            for path_, setting in axis.settings(value):
                _set(doc, _field_axis(axis, path_, tree, value), setting, file)
        points.append(Point(params, _validated(doc, tree, file, chosen, params, base), doc))
    return points


def _field_axis(axis: Axis, path: str, tree: yamltree.Tree, case: Any = None) -> Axis:
    """One field that an axis sets, located where the sweep names it (a case's field on its own line)."""
    if axis.cases is None:
        return axis
    return Axis(path, (), tree.line(f"sweep.{axis.path}.{case}.{path}"), axis.origin,
                label=f"{axis.path}.{case}.{path}")


def _validated(doc: dict[str, Any], tree: yamltree.Tree, file: str, chosen: dict[str, Axis],
               params: dict[str, Any], base: scenarios.Scenario) -> scenarios.Scenario:
    if not params:
        return base
    try:
        sc = scenarios.validate_values(doc, tree, file)
    except scenarios.ScenarioError as exc:
        problems = []
        for problem in exc.problems:
            found = next(((a, path, value) for a in chosen.values() for path, value in a.settings(params[a.path])
                          if _same_field(path, problem.path, doc)), None)
            if found is None:
                problems.append(problem)
                continue
            axis, path, value = found
            where = _field_axis(axis, path, tree, params[axis.path])
            problem = scenarios.Problem(file if axis.origin == "sweep" else "--set", where.line, _where(where),
                                        f"value {value!r}: {problem.message}")
            if problem not in problems:
                problems.append(problem)
        raise scenarios.ScenarioError(problems) from None
    return scenarios.Scenario(**{**sc.__dict__, "path": base.path, "sweep": ()})


def _where(axis: Axis) -> str:
    name = axis.label or axis.path
    return f"sweep.{name}" if axis.origin == "sweep" else name


def _same_field(axis_path: str, problem_path: str, doc: dict[str, Any]) -> bool:
    """Whether a validation problem is about the swept field (lanes[pull] is lanes[1] in problems)."""
    pattern = re.escape(_indexed(axis_path, doc)).replace(r"\[\*\]", r"\[\d+\]")
    return re.match(pattern, problem_path) is not None


def _indexed(path: str, doc: dict[str, Any]) -> str:
    lanes = doc.get("lanes") if isinstance(doc.get("lanes"), list) else []
    names = [lane.get("name") if isinstance(lane, dict) else None for lane in lanes]

    def index(match: re.Match[str]) -> str:
        key = match.group(1)
        return f"lanes[{names.index(key)}]" if key in names else match.group(0)

    return re.sub(r"lanes\[([^\]]+)\]", index, path)


def _set(doc: dict[str, Any], axis: Axis, value: Any, file: str) -> None:
    _set_at(doc, _tokens(axis, file), value, axis, file)


def _set_at(node: Any, tokens: list[tuple[str, str | None]], value: Any, axis: Axis, file: str) -> None:
    (key, selector), rest = tokens[0], tokens[1:]
    if selector is None:
        if not isinstance(node, dict):
            raise _axis_error(axis, file, f"{key!r} is not a field of a mapping here")
        if not rest:
            node[key] = value
            return
        if node.get(key) is None:
            node[key] = {} if rest[0][1] is None else []
        _set_at(node[key], rest, value, axis, file)
        return
    if not isinstance(node, list):
        raise _axis_error(axis, file, f"[{selector}] picks from a list, and this is not one")
    if not rest:
        raise _axis_error(axis, file, "a sweep sets a field, not a whole list item")
    for item in (node if selector == "*" else [_pick(node, selector, axis, file)]):
        _set_at(item, rest, value, axis, file)


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
