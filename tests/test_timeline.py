"""RunState, the reducer every consumer shares: phases land on the right release."""

from __future__ import annotations

from pathlib import Path

from mlopslab.events import read_events
from mlopslab.monitor.timeline import RunState

RECORDED = Path(__file__).parent / "data" / "drift-levels-short" / "events.jsonl"


def _state() -> RunState:
    state = RunState()
    for event in read_events(RECORDED):
        state.apply(event)
    return state


def test_a_pull_agent_that_skips_to_a_later_commit_still_times_its_own_release() -> None:
    state = _state()
    events = list(read_events(RECORDED))
    # level2's retrained version was committed for level2 only; its agent polled after a later commit
    # (for another lane) had landed, and applied that one: the phases belong to level2's own release.
    own = [e for e in events if e["kind"] == "commit" and e["lanes"] == ["level2"]]
    assert own, "the recording has a commit for level2 alone"
    applied = [e for e in events if e["kind"] == "apply_started" and e["lane"] == "level2"]
    assert own[0]["sha"] not in {e["sha"] for e in applied}  # the agent never applied the commit itself
    release = state.lanes["level2"].releases[own[0]["sha"]]
    first_after = min(e["t"] for e in applied if e["t"] > own[0]["t"])
    assert release.lead("apply_started") == round(first_after - own[0]["t"], 3)
    assert release.lead("traffic_100") is not None and release.lead("detected") >= 0


def test_lead_times_follow_the_phase_order() -> None:
    for lane in _state().lanes.values():
        for release in lane.releases.values():
            leads = [release.lead(p) for p in ("detected", "pipeline_done", "apply_started", "first_ready")]
            known = [v for v in leads if v is not None]
            assert known == sorted(known), (lane.name, release.version, leads)
