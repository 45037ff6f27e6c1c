"""Scenario YAML read into plain values, each field path remembering its line; refuses what scenarios never need.

`read(path)` and `compose(text)` return a `Tree` (the value, a line per field path, and the problems found
on the way) or raise `YamlError` with a line. Every input ends quickly, whatever it holds:

- the events come from libyaml's (or PyYAML's) iterative parser and are built into values here without
  recursion, so no nesting can overflow the stack; nesting deeper than `MAX_DEPTH` is refused;
- anchors and aliases are refused, so no "billion laughs" can expand; so are custom tags (`!foo`),
  keys that are not scalars and more than one document;
- a file larger than `MAX_BYTES`, not UTF-8, or holding control characters is refused with the line;
- a key given twice in one mapping is a problem naming both lines (YAML says keys are unique; PyYAML
  silently keeps the last one).

A UTF-8 byte order mark is allowed (editors write one; YAML allows it) and skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 256 * 1024  # shipped scenarios are about 3 KiB
MAX_DEPTH = 16  # shipped scenarios nest 4 deep
STANDARD_SCALARS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null")}
STANDARD_COLLECTIONS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}
_PARSER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlError(Exception):
    """The text cannot be read as a scenario's YAML at all; `line` is 0 when no line applies."""

    def __init__(self, line: int, message: str) -> None:
        self.line = line
        self.message = message
        super().__init__(message)


@dataclass
class Tree:
    value: Any
    lines: dict[str, int] = field(default_factory=dict)
    duplicates: list[tuple[str, int, int]] = field(default_factory=list)  # (field path, first line, again)

    def line(self, path: str) -> int:
        """The line of `path`, or of its nearest ancestor that has one (1 when none has)."""
        while path not in self.lines:
            if not path:
                return 1
            path = _parent(path)
        return self.lines[path]


def _parent(path: str) -> str:
    if path.endswith("]"):
        return path[:path.rindex("[")]
    dot = path.rfind(".")
    return path[:dot] if dot > 0 else ""


def read(path: Path) -> Tree:
    """Reads and composes a file; a missing file, a directory or unreadable bytes raise `YamlError` (line 0)."""
    if path.is_dir():
        raise YamlError(0, "is a directory, not a scenario file")
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise YamlError(0, "no such file") from None
    except OSError as exc:
        raise YamlError(0, f"cannot read the file: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        raise YamlError(0, f"the file is larger than {MAX_BYTES // 1024} KiB; a scenario is a few KiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise YamlError(line, f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None
    return compose(text)


def compose(text: str) -> Tree:
    text = text.removeprefix("\ufeff")
    if len(text) > MAX_BYTES:
        raise YamlError(0, f"the text is larger than {MAX_BYTES // 1024} KiB; a scenario is a few KiB")
    try:
        return _Builder(text).build()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise YamlError(line, f"not valid YAML: {_explain(exc, text, line)}") from None
    except yaml.reader.ReaderError as exc:
        line = text[:exc.position].count("\n") + 1
        raise YamlError(line, f"not text YAML can hold: {exc.reason} (character #x{exc.character:04x})"
                        if isinstance(exc.character, int) else f"not text YAML can hold: {exc.reason}") from None
    except yaml.YAMLError as exc:
        raise YamlError(1, f"not valid YAML: {exc}") from None


def _explain(exc: yaml.MarkedYAMLError, text: str, line: int) -> str:
    problem = exc.problem or str(exc)
    lines = text.splitlines()
    here = lines[line - 1] if 0 < line <= len(lines) else ""
    if "\t" in here[:len(here) - len(here.lstrip())]:   # a tab in the indentation
        return f"{problem} (this line is indented with a tab; YAML indents with spaces only)"
    return problem


class _Builder:
    """Builds plain values from parser events with an explicit stack (no recursion, bounded depth)."""

    def __init__(self, text: str) -> None:
        self.events = yaml.parse(text, Loader=_PARSER)
        self.resolver = yaml.resolver.Resolver()
        self.constructor = yaml.constructor.SafeConstructor()
        self.tree = Tree(None)

    def build(self) -> Tree:
        documents = 0
        # Each frame: [container, path, pending key (mappings), key line, seen keys → line]
        stack: list[list[Any]] = []
        root: list[Any] = []
        for event in self.events:
            line = event.start_mark.line + 1 if event.start_mark else 1
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise YamlError(line, "expected one YAML document, found a second one here")
                continue
            if isinstance(event, (yaml.StreamStartEvent, yaml.StreamEndEvent, yaml.DocumentEndEvent)):
                continue
            if isinstance(event, yaml.AliasEvent):
                raise YamlError(line, f"aliases (*{event.anchor}) are not allowed in a scenario; write the value out")
            if getattr(event, "anchor", None):
                raise YamlError(line, f"anchors (&{event.anchor}) are not allowed in a scenario; write the value out")
            if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                frame = stack.pop()
                self._place(stack, root, frame[0], frame[1], frame[5])
                continue
            parent = stack[-1] if stack else None
            if parent is not None and isinstance(parent[0], dict) and parent[2] is None:
                parent[2], parent[3] = self._key(event, line, parent[1]), line
                continue
            path = self._child_path(parent)
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                if event.tag not in (None, "!") and event.tag not in STANDARD_COLLECTIONS:
                    raise YamlError(line, f"custom tags ({event.tag}) are not allowed in a scenario")
                if len(stack) >= MAX_DEPTH:
                    raise YamlError(line, f"nested deeper than {MAX_DEPTH} levels; a scenario needs about 4")
                container: Any = {} if isinstance(event, yaml.MappingStartEvent) else []
                stack.append([container, path, None, 0, {}, self._line_of(parent, line)])
                continue
            self._place(stack, root, self._scalar(event, line), path, self._line_of(parent, line))
        self.tree.value = root[0] if root else None
        return self.tree

    def _key(self, event: Any, line: int, path: str) -> str:
        if not isinstance(event, yaml.ScalarEvent):
            raise YamlError(line, f"{path or '(top)'}: keys must be plain names, not lists or mappings")
        if event.tag not in (None, "!") and event.tag not in STANDARD_SCALARS:
            raise YamlError(line, f"custom tags ({event.tag}) are not allowed in a scenario")
        return event.value

    @staticmethod
    def _child_path(parent: list[Any] | None) -> str:
        if parent is None:
            return ""
        container, path = parent[0], parent[1]
        if isinstance(container, dict):
            return f"{path}.{parent[2]}" if path else parent[2]
        return f"{path}[{len(container)}]"

    @staticmethod
    def _line_of(parent: list[Any] | None, line: int) -> int:
        """A mapping's field is on its key's line; a list item or the top on its own."""
        return parent[3] if parent is not None and isinstance(parent[0], dict) else line

    def _place(self, stack: list[list[Any]], root: list[Any], value: Any, path: str, line: int) -> None:
        self.tree.lines.setdefault(path, line)
        if not stack:
            root.append(value)
            return
        parent = stack[-1]
        container = parent[0]
        if isinstance(container, list):
            container.append(value)
            return
        key, seen = parent[2], parent[4]
        if key in seen:
            self.tree.duplicates.append((path, seen[key], parent[3]))
        else:
            seen[key] = parent[3]
        container[key] = value
        parent[2] = None

    def _scalar(self, event: Any, line: int) -> Any:
        tag = event.tag
        if tag in (None, "!"):
            tag = self.resolver.resolve(yaml.ScalarNode, event.value, event.implicit)
        if tag not in STANDARD_SCALARS:
            raise YamlError(line, f"custom tags ({event.tag}) are not allowed in a scenario"
                            if event.tag not in (None, "!") else f"{event.value!r} is not a plain value "
                            "(a string, number, true/false or null); quote it")
        try:
            return self.constructor.construct_object(yaml.ScalarNode(tag, event.value), deep=True)
        except (ValueError, yaml.YAMLError) as exc:
            raise YamlError(line, f"cannot read {event.value[:40]!r}: {exc}") from None
