"""Per-second windows keyed by intended send time, and the 100 %-traffic mark."""

from __future__ import annotations

from pathlib import Path

from mlopslab.monitor.traffic import LATE, TrafficMonitor
from tests.events_helpers import Events


def _record(i: int, t: float, version: str = "1", status: int = 200, latency: float = 5.0) -> dict:
    return {"i": i, "lane": "a", "t": t, "lat": latency, "st": status, "v": version, "p": 1}


def test_a_timed_out_request_is_counted_in_the_window_it_was_sent_in() -> None:
    events = Events()
    monitor = TrafficMonitor(["a"], events.emit)
    monitor.add_result(_record(0, 10.2))
    monitor.tick(12.5)                            # window 10 must stay open: a record may still come
    assert events.of("metrics") == []
    monitor.add_result(_record(1, 10.95, status=0, latency=2000.0))  # its timeout, reported at ~12.95
    monitor.add_result(_record(2, 11.1))
    monitor.tick(11 + LATE + 0.01)
    (window10,) = events.of("metrics")
    assert window10["window"] == 10 and window10["rps"] == 2 and window10["errors"] == 1
    assert window10["p99"] > 1900 and window10["versions"] == {"1": 1}
    monitor.tick(12 + LATE + 0.01)
    assert [m["window"] for m in events.of("metrics")] == [10, 11]


def test_full_traffic_is_marked_at_the_first_request_after_the_last_old_one() -> None:
    events = Events()
    monitor = TrafficMonitor(["a"], events.emit)
    for i, (t, version) in enumerate([(1.0, "1"), (1.5, "2"), (2.0, "1"), (2.5, "2"), (3.0, "2")]):
        monitor.add_result(_record(i, t, version))
    monitor.add_result(_record(9, 2.7, "2", status=0))  # a failed request counts as not on the new version
    monitor.on_event({"kind": "rollout_done", "lane": "a", "version": "2", "t": 3.0})
    monitor.tick(3.0 + LATE - 0.1)
    assert events.of("traffic_100") == []
    monitor.tick(3.0 + LATE + 0.1)
    (mark,) = events.of("traffic_100")
    assert mark["version"] == "2" and mark["at"] == 3.0
    monitor.on_event({"kind": "rollout_done", "lane": "a", "version": "2", "t": 9.0})  # a scale, same version
    monitor.tick(20.0)
    assert len(events.of("traffic_100")) == 1


def test_windows_carry_the_generators_lag_and_late_ones_are_generator_bound_in_summary_and_tui() -> None:
    from mlopslab import report
    from mlopslab.events import read_events
    from mlopslab.monitor.timeline import RunState

    events = Events()
    monitor = TrafficMonitor(["a"], events.emit)
    for i in range(100):                       # window 0: on schedule; window 1: one request in ten 5 ms late
        monitor.add_result({**_record(i, i / 100), "lag": 0.05})
        monitor.add_result({**_record(100 + i, 1 + i / 100), "lag": 5.0 if i % 10 == 0 else 0.05})
    monitor.add_result(_record(200, 2.5))      # a record without lag (an older generator): no lag figure
    monitor.tick(3 + LATE + 0.01)
    windows = {m["window"]: m for m in events.of("metrics")}
    assert windows[0]["lag_p99"] < 1.0 and windows[1]["lag_p99"] > 1.0 and "lag_p99" not in windows[2]

    recorded = Path(__file__).parent / "data" / "short-run" / "events.jsonl"
    state = RunState()
    for event in read_events(recorded):
        state.apply(event)
    old_header, old_rows = report.rows(report.summarise(state))
    assert not any("generator-bound" in row[0] for row in old_rows)  # recorded before lag existed: no row
    lane = state.lanes["push"]
    for m in windows.values():
        state.apply({**m, "lane": "push", "t": state.now})
    summary = report.summarise(state)
    assert summary.lanes["push"].generator_bound_windows == 1 == lane.generator_bound
    row = next(row for row in report.rows(summary)[1] if "generator-bound" in row[0])
    assert row[1:] == ["1 of 2", "0 of 0"]

    from mlopslab.tui.view import take
    from mlopslab.tui.widgets.lane import header

    run = take(state)
    headers = {lane.name: header(lane, run).plain for lane in run.lanes}
    assert "generator-bound 1 s" in headers["push"] and "generator-bound" not in headers["pull"]
