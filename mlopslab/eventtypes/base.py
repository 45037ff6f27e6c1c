"""The typed event: one frozen dataclass per kind, and the JSONL codec that reads and writes them.

A line of events.jsonl is `{"t", "wall", "kind", "lane", ...fields}`. `decode` turns any such dict into the
dataclass of its kind: a field the line lacks is None, a field the kind does not declare is kept in `extra`,
a kind nobody declared becomes an `Unknown` — so a run recorded by an older (or newer) lab still replays.
`encode` writes the event back as the same JSON object, its keys in the order they came.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

HEAD = ("t", "wall", "kind", "lane")
KINDS: dict[str, type[Event]] = {}   # kind -> its dataclass, filled by `kind`

E = TypeVar("E", bound="Event")


@dataclass(frozen=True, kw_only=True)
class Event:
    """What every event has: when (run clock `t`, unix `wall`) and which lane (None: the lab's own)."""

    kind: ClassVar[str] = ""
    t: float = 0.0
    wall: float | None = None
    lane: str | None = None
    via: str | None = None          # "agent-container": relayed from a pull agent in its own container
    group: str | None = None        # a strategy's second replica group ("canary"); None: the lane's primary
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)   # fields not declared
    order: tuple[str, ...] = field(default=(), compare=False, repr=False)    # the line's field order

    @property
    def name(self) -> str:
        """The event's kind as written in the line."""
        return self.kind

    def fields(self) -> dict[str, Any]:
        """The fields beyond t/wall/kind/lane, in the line's order (declared ones first if built in code)."""
        declared = {f.name for f in dataclasses.fields(self)} - {"t", "wall", "lane", "extra", "order"}
        keys = self.order or (*(f.name for f in dataclasses.fields(self) if f.name in declared
                                and (f.name not in ("via", "group") or getattr(self, f.name) is not None)),
                *self.extra)
        return {key: self.extra[key] if key in self.extra else getattr(self, key) for key in keys}

    def as_dict(self) -> dict[str, Any]:
        """The event as the dict a line holds."""
        return {"t": self.t, "wall": self.wall, "kind": self.name, "lane": self.lane, **self.fields()}

    def get(self, key: str, default: Any = None) -> Any:
        """A field by its name, declared or not (None-valued declared fields read as `default`)."""
        if key in self.extra:
            return self.extra[key]
        value = getattr(self, key, None) if key != "kind" else self.name
        return default if value is None else value


@dataclass(frozen=True, kw_only=True)
class Unknown(Event):
    """An event of a kind this lab does not know (a newer lab recorded it): kept, shown, not reduced."""

    unknown_kind: str = "?"

    @property
    def name(self) -> str:
        return self.unknown_kind

    def fields(self) -> dict[str, Any]:
        return {key: self.extra[key] for key in (self.order or tuple(self.extra))}


def kind(name: str) -> Callable[[type[E]], type[E]]:
    """Class decorator: a frozen, keyword-only event dataclass registered as the type of `name`."""
    def register(cls: type[E]) -> type[E]:
        if name in KINDS:
            raise ValueError(f"event kind {name!r} declared twice")
        cls.kind = name
        typed = dataclass(frozen=True, kw_only=True)(cls)
        KINDS[name] = typed
        return typed
    return register


@functools.cache
def declared(cls: type[Event]) -> frozenset[str]:
    """The fields a kind declares beyond what every event has."""
    return frozenset(f.name for f in dataclasses.fields(cls)) - {"t", "wall", "lane", "extra", "order"}


def decode(line: Event | dict[str, Any] | str) -> Event:
    """Any line (or its dict) -> the typed event; unknown kinds and unknown or missing fields tolerated.
    A typed event is returned as it is (a listener may be handed either)."""
    if isinstance(line, Event):
        return line
    data = json.loads(line) if isinstance(line, str) else line
    name = str(data.get("kind", "?"))
    cls = KINDS.get(name, Unknown)
    own = declared(cls) - {"unknown_kind"}
    rest = {key: value for key, value in data.items() if key not in HEAD}
    known = {key: value for key, value in rest.items() if key in own}
    extra = {key: value for key, value in rest.items() if key not in own}
    t = data.get("t", 0.0)
    head: dict[str, Any] = {"t": t if isinstance(t, (int, float)) else 0.0, "wall": data.get("wall"),
                            "lane": data.get("lane"), "extra": extra, "order": tuple(rest)}
    if cls is Unknown:
        return Unknown(**head, unknown_kind=name, **known)
    return cls(**head, **known)


def encode(event: Event) -> str:
    """The event as one JSON line (no newline), as the Recorder writes it."""
    return json.dumps(event.as_dict(), separators=(",", ":"), default=str)


def problems(name: str, fields: dict[str, Any]) -> list[str]:
    """What is wrong with an event about to be emitted: an unknown kind, or fields its kind does not declare."""
    cls = KINDS.get(name)
    if cls is None:
        return [f"unknown event kind {name!r}"]
    wrong = sorted(set(fields) - declared(cls))
    return [f"{name} has no field {key!r} (declared: {', '.join(sorted(declared(cls)))})" for key in wrong]
