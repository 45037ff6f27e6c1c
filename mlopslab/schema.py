"""Reading typed values out of a scenario's YAML tree, every problem kept with its file:line and field.

`_Check` is what the scenario schema (scenario.py) is written with: `number`, `string`, `boolean`,
`mapping`, `surge` each return the value or a default, and record a `Problem` when the value is not what
the field takes, so one pass reports every problem in a file, not just the first.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from typing import Any

from mlopslab import yamltree

PERCENT = re.compile(r"^\d{1,3}%$")
_MISSING = object()


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        if not self.line:  # the file as a whole (missing, a directory ...) or the command line (--set)
            return f"{self.file}: {self.path + ': ' if self.path else ''}{self.message}"
        return f"{self.file}:{self.line}: {self.path or '(top)'}: {self.message}"


class ScenarioError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))



class _Check:
    """Collects problems while reading values out of the located tree."""

    def __init__(self, tree: yamltree.Tree, file: str) -> None:
        self.tree = tree
        self.file = file
        self.problems: list[Problem] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(Problem(self.file, self.tree.line(path), path, message))

    def line(self, path: str) -> int:
        return self.tree.line(path)

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

    def _field(self, m: dict[str, Any], key: str, path: str, required: bool) -> tuple[str, Any]:
        """The field's full path and its value, or _MISSING (a problem when it is required)."""
        full = f"{path}.{key}" if path else key
        if key not in m:
            if required:
                self.fail(full, "is required")
            return full, _MISSING
        return full, m[key]

    def number(self, m: dict[str, Any], key: str, path: str, default: Any = None, *, low: float | None = None,
               high: float | None = None, integer: bool = False, required: bool = False) -> Any:
        full, value = self._field(m, key, path, required)
        if value is _MISSING:
            return default
        ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok_type:
            self.fail(full, f"expected {'an integer' if integer else 'a number'}, got {_kind(value)} {value!r}")
            return default
        if not math.isfinite(value):
            self.fail(full, f"expected a finite number, got {value!r}")
            return default
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"between {low} and {high}" if low is not None and high is not None else (
                f">= {low}" if low is not None else f"<= {high}")
            self.fail(full, f"expected a value {bounds}, got {value!r}")
            return default
        return value

    def string(self, m: dict[str, Any], key: str, path: str, default: Any = None, *, choices: tuple[str, ...] = (),
               pattern: re.Pattern[str] | None = None, required: bool = False) -> Any:
        full, value = self._field(m, key, path, required)
        if value is _MISSING:
            return default
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
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", type(None): "nothing",
            int: "an integer", float: "a number"}.get(type(value), type(value).__name__)
