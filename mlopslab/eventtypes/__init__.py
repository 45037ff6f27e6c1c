"""Typed events: one frozen dataclass per kind (`Commit`, `Metrics`, `DriftAlarm`, ...), `decode` from a
line of events.jsonl and `encode` back to it. Kinds nobody declared decode to `Unknown`."""

from mlopslab.eventtypes.base import (
    KINDS,
    Event,
    Unknown,
    declared,
    decode,
    encode,
    problems,
)
from mlopslab.eventtypes.delivery import *
from mlopslab.eventtypes.ml import *
from mlopslab.eventtypes.run import *

from mlopslab.eventtypes.ml import Retrain

__all__ = ["KINDS", "Event", "Retrain", "Unknown", "declared", "decode", "encode", "problems",
           *sorted(cls.__name__ for cls in KINDS.values())]
