"""Per-second windows keyed by intended send time, and the 100 %-traffic mark."""

from __future__ import annotations

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
