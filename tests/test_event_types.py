"""Typed events: every recorded run decodes to its dataclasses and encodes back to the same bytes, lines of
unknown kinds or fields still decode, every emitter names a declared kind and fields, and the reducer takes
every kind — even with its fields missing, as an older run may have written it."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from mlopslab import eventtypes as ev
from mlopslab.events import Recorder
from mlopslab.monitor.timeline import RunState
from mlopslab.tui.view import take
from mlopslab.tui.widgets.log import line

ROOT = Path(__file__).resolve().parent.parent
RECORDED = sorted([*ROOT.glob("assets/*.jsonl"), *ROOT.glob("tests/data/*/events.jsonl")])


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_line_of_a_recorded_run_decodes_to_its_kind_and_encodes_back_byte_for_byte(path: Path) -> None:
    lines = [text for text in path.read_text().splitlines() if text.strip()]
    assert lines
    for text in lines:
        event = ev.decode(text)
        assert ev.encode(event) == text
        assert type(event) is ev.KINDS[json.loads(text)["kind"]], text[:120]
        assert not event.extra, f"{event.name} carries fields its dataclass does not declare: {event.extra}"


def test_a_line_of_an_unknown_kind_or_with_unknown_fields_decodes_and_encodes_back() -> None:
    newer = '{"t":3.5,"wall":1.0,"kind":"canary_step","lane":"a","weight":25,"gate":{"p99":0.2}}'
    event = ev.decode(newer)
    assert isinstance(event, ev.Unknown) and event.name == "canary_step" and event.get("weight") == 25
    assert ev.encode(event) == newer

    extra = '{"t":1,"wall":2,"kind":"commit","lane":null,"sha":"abc","flavour":"new","version":3}'
    commit = ev.decode(extra)
    assert isinstance(commit, ev.Commit) and commit.sha == "abc" and commit.version == 3
    assert commit.extra == {"flavour": "new"} and commit.message is None and commit.lanes is None
    assert ev.encode(commit) == extra


def test_an_event_built_in_code_encodes_as_the_recorder_writes_it(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path / "events.jsonl", t0=0.0)
    recorder.emit("traffic_100", "push", t=12.5, version="2", at=12.25)
    recorder.close()
    written = (tmp_path / "events.jsonl").read_text().strip()
    event = ev.decode(written)
    assert event == ev.Traffic100(t=12.5, lane="push", version="2", at=12.25, wall=event.wall)
    assert ev.encode(ev.Traffic100(t=12.5, wall=event.wall, lane="push", version="2", at=12.25)) == written


def test_the_recorder_refuses_an_unknown_kind_or_field_when_strict_and_writes_it_otherwise(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder(tmp_path / "events.jsonl", t0=0.0)
    monkeypatch.setenv("MLOPSLAB_STRICT_EVENTS", "1")
    with pytest.raises(ValueError, match="unknown event kind 'comit'"):
        recorder.emit("comit", None, sha="abc")
    with pytest.raises(ValueError, match="commit has no field 'shaa'"):
        recorder.emit("commit", None, shaa="abc")
    monkeypatch.setenv("MLOPSLAB_STRICT_EVENTS", "0")
    recorder.emit("commit", None, shaa="abc")
    recorder.close()
    written = [json.loads(text) for text in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [(e["kind"], e.get("shaa")) for e in written] == [("commit", "abc")]


def _emits() -> list[tuple[str, int, str, list[str]]]:
    """Every `emit("kind", lane, field=...)` in the package: file, line, kind, field names."""
    found = []
    for path in sorted((ROOT / "mlopslab").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "emit"
                    and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                names = [kw.arg for kw in node.keywords if kw.arg not in (None, "t")]
                found.append((str(path.relative_to(ROOT)), node.lineno, node.args[0].value, names))
    return found


def test_every_emitter_names_a_declared_kind_and_declared_fields() -> None:
    emits = _emits()
    assert len(emits) > 50
    wrong = [f"{path}:{lineno}: {'; '.join(ev.problems(kind, dict.fromkeys(names)))}"
             for path, lineno, kind, names in emits if ev.problems(kind, dict.fromkeys(names))]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("kind", sorted(ev.KINDS))
def test_the_reducer_and_the_log_take_every_kind_even_with_its_fields_missing(kind: str) -> None:
    state = RunState()
    state.apply({"t": 0.5, "kind": "run_started"})
    state.apply({"t": 1.0, "kind": kind, "lane": "a"})
    state.apply({"t": 1.5, "kind": kind, "lane": None})
    assert state.applied == 3
    view = take(state)
    for entry in view.log:
        assert line(entry, view).plain.strip()


def test_each_drift_alarm_line_tells_its_own_alarm_when_two_share_a_lane_and_a_time() -> None:
    state = RunState()
    state.apply({"t": 0.0, "kind": "run_started"})
    state.apply({"t": 40.0, "kind": "drift_alarm", "lane": "a", "detector": "cusum", "statistic": "s",
                 "value": 12.34, "h": 8.0, "delay_seconds": 3.0})
    state.apply({"t": 40.0, "kind": "drift_alarm", "lane": "a", "detector": "dataset_drift",
                 "statistic": "share_drifted", "value": 0.5, "delay_seconds": 3.0})
    view = take(state)
    texts = [line(entry, view).plain for entry in view.log if entry.kind == "drift_alarm"]
    assert "CUSUM alarm: statistic 12.3 over h=8, 3.00 s after the change" in texts[0]
    assert "dataset drift: 50% of the features drifted, 3.00 s after the change" in texts[1]
