"""The typed summary: summary.json of every recorded run keeps its bytes (tests/data/summaries/ holds what
the lab wrote before the summary was typed), and a summary read back from its JSON renders the same table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlopslab import report
from mlopslab.events import read_events
from mlopslab.monitor.timeline import RunState
from mlopslab.summary import Summary

ROOT = Path(__file__).resolve().parent.parent
RECORDED = sorted([*ROOT.glob("assets/*.jsonl"), *ROOT.glob("tests/data/*/events.jsonl")])


def _replayed(path: Path) -> RunState:
    state = RunState()
    for event in read_events(path):
        state.apply(event)
    return state


def _golden(path: Path) -> Path:
    name = path.parent.name if path.name == "events.jsonl" else path.name.split(".")[0]
    return ROOT / "tests" / "data" / "summaries" / f"{name}.json"


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: str(p.relative_to(ROOT)))
def test_summary_json_of_a_recorded_run_keeps_its_bytes(path: Path, tmp_path: Path) -> None:
    report.write(tmp_path, _replayed(path))
    assert (tmp_path / "summary.json").read_text() == _golden(path).read_text()


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_summary_read_back_from_its_json_renders_the_same_table(path: Path) -> None:
    summary = report.summarise(_replayed(path))
    again = Summary.from_json(json.loads(json.dumps(summary.to_json(), default=str)))
    assert again == summary
    assert report.table(again) == report.table(summary) and report.markdown(again) == report.markdown(summary)
    assert report.rows(summary.to_json()) == report.rows(summary)   # summary.json renders as it is
