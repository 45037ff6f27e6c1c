"""Property-based: any mutation of a shipped scenario, and any YAML at all, validates or gets problems with
lines within 1 s, and never raises anything else.

A failing example Hypothesis finds goes into tests/data/bad-scenarios/ (with its expected answer in
tests/test_bad_input.py) so that it is checked on every run, not only when Hypothesis happens upon it.
"""

from __future__ import annotations

import os
import signal
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlopslab import scenario

SHIPPED = {p.stem: p.read_text() for p in sorted((Path(__file__).parent.parent / "scenarios").glob("*.yaml"))}
# A fixed, seeded exploration in CI; MLOPSLAB_HYPOTHESIS_EXAMPLES=5000 explores further (and randomly) by hand.
_MORE = int(os.environ.get("MLOPSLAB_HYPOTHESIS_EXAMPLES", "0"))
EXAMPLES = settings(max_examples=_MORE or 200, deadline=None, derandomize=not _MORE, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class Hung(Exception):
    pass


@contextmanager
def _within(seconds: float) -> Iterator[None]:
    """Interrupts a hang (a loop in Python code) with SIGALRM so the example fails instead of the session."""

    def alarm(signum: int, frame: Any) -> None:
        raise Hung(f"did not end within {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _check(text: str) -> None:
    start = time.monotonic()
    with _within(5.0):  # the hard stop for a hang; the promise (1 s) is asserted below
        try:
            result = scenario.parse(text, "mutant.yaml")
        except scenario.ScenarioError as exc:
            assert exc.problems, "an error without problems"
            for problem in exc.problems:
                assert problem.line >= 1 and problem.file == "mutant.yaml", problem
                assert str(problem).startswith(f"mutant.yaml:{problem.line}: "), problem
        else:
            assert isinstance(result, scenario.Scenario) and result.lanes
    assert time.monotonic() - start < 1.0


# --- mutations of the shipped scenarios ------------------------------------------------------------------
def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, prefix + (i,))
    return out


def _replace(value: Any, path: tuple, new: Any, delete: bool = False) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        copy = dict(value)
        if delete and not rest:
            copy.pop(head, None)
        else:
            copy[head] = _replace(copy[head], rest, new, delete)
        return copy
    copy = list(value)
    if delete and not rest:
        del copy[head]
    else:
        copy[head] = _replace(copy[head], rest, new, delete)
    return copy


ODD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-10**30, max_value=10**30), st.floats(allow_nan=True),
    st.text(max_size=20), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(),
                                                                               max_size=3))


@st.composite
def structural_mutant(draw: st.DrawFn) -> str:
    doc = yaml.safe_load(SHIPPED[draw(st.sampled_from(sorted(SHIPPED)))])
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths[1:] or paths))
        how = draw(st.sampled_from(["delete", "retype", "nest"]))
        if how == "delete":
            doc = _replace(doc, path, None, delete=True)
        elif how == "retype":
            doc = _replace(doc, path, draw(ODD_VALUES))
        else:
            inner: Any = draw(ODD_VALUES)
            for _ in range(draw(st.integers(1, 40))):
                inner = [inner] if draw(st.booleans()) else {"k": inner}
            doc = _replace(doc, path, inner)
    return yaml.safe_dump(doc, sort_keys=False)


@st.composite
def textual_mutant(draw: st.DrawFn) -> str:
    lines = SHIPPED[draw(st.sampled_from(sorted(SHIPPED)))].splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        how = draw(st.sampled_from(["duplicate", "alias", "anchor", "tab", "garbage", "nan", "truncate"]))
        if how == "duplicate":
            lines.insert(i, lines[i])
        elif how == "alias":
            lines.insert(i, lines[i].replace(": ", ": *a ", 1))
        elif how == "anchor":
            lines[i] = lines[i].replace(": ", ": &a ", 1)
        elif how == "tab":
            lines[i] = "\t" + lines[i].lstrip(" ")
        elif how == "garbage":
            lines.insert(i, draw(st.text(max_size=30)) + "\n")
        elif how == "nan":
            lines[i] = lines[i].rstrip("\n").rsplit(" ", 1)[0] + " .nan\n"
        else:
            data = "".join(lines).encode()
            cut = draw(st.integers(0, len(data)))
            lines = [data[:cut].decode("utf-8", "ignore")]
            break
    return "".join(lines)


@EXAMPLES
@given(structural_mutant())
def test_structural_mutants_of_shipped_scenarios_end_with_a_scenario_or_lines(text: str) -> None:
    _check(text)


@EXAMPLES
@given(textual_mutant())
def test_textual_mutants_of_shipped_scenarios_end_with_a_scenario_or_lines(text: str) -> None:
    _check(text)


# --- random YAML -----------------------------------------------------------------------------------------
YAML_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30)


@EXAMPLES
@given(YAML_VALUES, st.sampled_from([True, False]))
def test_random_yaml_documents_end_with_problems_with_lines(value: Any, flow: bool) -> None:
    _check(yaml.safe_dump(value, default_flow_style=flow))


@EXAMPLES
@given(st.text(alphabet=st.sampled_from(list("ab:-[]{}&*!|>'\"#%@`?,.\n\t 0123456789~")), max_size=200))
def test_random_yaml_like_text_ends_with_problems_with_lines(text: str) -> None:
    _check(text)
