"""The router: per-lane route tables (weights per version, mirrors), sent as one message; the load generator
follows the weights exactly and copies requests to mirrors; windows compare versions within a lane."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlopslab.ml.registry import Registry
from mlopslab.monitor.traffic import TrafficMonitor
from mlopslab.traffic.loadgen import Picker
from mlopslab.traffic.router import Route, Router, table
from tests.conftest import start_server

ENDPOINTS = [("http://127.0.0.1:1", "1"), ("http://127.0.0.1:2", "1"), ("http://127.0.0.1:3", "1"),
             ("http://127.0.0.1:4", "2")]


def _shares(route: Route) -> dict[str, float]:
    out: Counter = Counter()
    for _, version, weight in route.backends:
        out[version] += weight
    return {v: round(w, 4) for v, w in out.items()}


def test_without_weights_every_ready_replica_is_alike_as_behind_a_service() -> None:
    route = table(ENDPOINTS)
    assert [w for _, _, w in route.backends] == [0.25] * 4 and route.mirror == ()


def test_weights_split_traffic_by_version_whatever_the_replica_counts() -> None:
    route = table(ENDPOINTS, {"1": 0.9, "2": 0.1})
    assert _shares(route) == {"1": 0.9, "2": 0.1}
    assert {url: w for url, _, w in route.backends}["http://127.0.0.1:1"] == pytest.approx(0.3)


def test_a_version_without_ready_replicas_leaves_its_share_to_the_others() -> None:
    """A canary whose replicas are not ready yet gets nothing (Flagger waits for them), and the stable
    version takes all of it rather than users getting errors."""
    assert _shares(table(ENDPOINTS[:3], {"1": 0.8, "2": 0.2})) == {"1": 1.0}
    assert table(ENDPOINTS, {"3": 1.0}).backends == ()


def test_mirrored_versions_get_copies_and_no_user_traffic() -> None:
    route = table(ENDPOINTS, None, {"2"})
    assert _shares(route) == {"1": 1.0} and route.mirror == (("http://127.0.0.1:4", "2"),)


def test_the_router_sends_a_lanes_table_as_one_message_only_when_it_changes() -> None:
    sent: list[dict] = []
    router = Router(sent.append)
    router.endpoints("a", ENDPOINTS)
    router.endpoints("a", list(reversed(ENDPOINTS)))   # the same table
    router.weigh("a", {"1": 0.5, "2": 0.5})
    router.mirror("a", set())                          # the same table again
    assert [m["op"] for m in sent] == ["routes", "routes"] and all(m["lane"] == "a" for m in sent)
    assert sorted(w for *_, w in sent[-1]["backends"]) == pytest.approx([0.5 / 3] * 3 + [0.5], abs=1e-5)


def test_smooth_weighted_round_robin_follows_the_weights_in_every_window() -> None:
    picker = Picker([("u1", "1", 0.9), ("u2", "2", 0.1)])
    picks = [picker.pick()[1] for _ in range(100)]
    assert all(picks[k:k + 10].count("2") == 1 for k in range(0, 100, 10))   # every tenth, not about 10 %
    even = Picker([("a", "1", 1.0), ("b", "1", 1.0), ("c", "1", 1.0)])
    assert [even.pick()[0] for _ in range(6)] == ["a", "b", "c", "a", "b", "c"]
    assert Picker([]).pick() is None


def test_windows_compare_versions_within_a_lane_and_keep_mirrored_copies_apart() -> None:
    events: list[tuple[str, dict]] = []
    monitor = TrafficMonitor(["a"], lambda kind, lane=None, **f: events.append((kind, f)))
    for i in range(90):
        monitor.add_result({"lane": "a", "t": 0.5, "lat": 2.0, "st": 200, "v": "1"})
    for i in range(10):
        monitor.add_result({"lane": "a", "t": 0.5, "lat": 50.0, "st": 500 if i < 3 else 200, "v": "2"})
        monitor.add_result({"lane": "a", "t": 0.5, "lat": 9.0, "st": 200, "v": "3", "m": 1})
    monitor.tick(10.0)
    (metrics,) = [f for kind, f in events if kind == "metrics"]
    assert metrics["rps"] == 100 and metrics["errors"] == 3   # the mirrored copies are no user's traffic
    assert metrics["by_version"] == {"1": {"n": 90, "errors": 0, "p99": 2.0}, "2": {"n": 10, "errors": 3, "p99": 50.0}}
    assert metrics["mirrored"] == {"3": {"n": 10, "errors": 0, "p99": 9.0}}


@pytest.fixture
def two_versions(registry: Registry) -> Iterator[list[str]]:
    started = [start_server(registry, version) for version in ("1", "2")]
    yield [url for _, url in started]
    for proc, _ in started:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_generator_sends_a_canary_its_weight_and_copies_to_a_mirror(two_versions: list[str], tmp_path: Path) -> None:
    v1, v2 = two_versions
    config = {"rate": 100, "t0": time.monotonic() + 1.0, "duration": 2.0, "seed": 3, "lanes": ["canary", "shadow"],
              "pacing": "constant"}
    proc = subprocess.Popen([sys.executable, "-m", "mlopslab.traffic.loadgen", json.dumps(config)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps(table([(v1, "1"), (v2, "2")], {"1": 0.8, "2": 0.2}).message("canary")) + "\n")
    proc.stdin.write(json.dumps(table([(v1, "1"), (v2, "2")], None, {"2"}).message("shadow")) + "\n")
    proc.stdin.flush()
    records = [json.loads(line) for line in proc.stdout if '"lane"' in line]
    proc.stdin.close()
    proc.wait(timeout=30)
    canary = [r for r in records if r["lane"] == "canary"]
    assert canary and all(r["st"] == 200 for r in canary)
    served = Counter(r["v"] for r in canary)
    assert abs(served["2"] / len(canary) - 0.2) <= 0.02, served   # every fifth request, give or take the ends
    assert all(r["b"] == (v2 if r["v"] == "2" else v1) for r in canary)
    shadow = [r for r in records if r["lane"] == "shadow"]
    users, copies = [r for r in shadow if not r.get("m")], [r for r in shadow if r.get("m")]
    assert {r["v"] for r in users} == {"1"} and {r["v"] for r in copies} == {"2"}
    assert sorted(r["i"] for r in users) == sorted(r["i"] for r in copies)   # one copy per request



def test_cohort_rules_send_a_versions_share_of_users_to_it_and_the_rest_by_weights() -> None:
    from mlopslab.traffic.loadgen import LoadGenerator, _cohort

    route = table(ENDPOINTS, {"1": 1.0}, cohorts={"2": 0.3})
    assert route.cohorts == (("2", 0.3),) and ("http://127.0.0.1:4", "2", 1.0) in route.backends
    generator = LoadGenerator({"rate": 1, "t0": 0, "lanes": ["ab"]})
    generator.control(route.message("ab"))
    users = range(5000)
    picked = {u: generator._picker("ab", False, _cohort(u)).pick()[1] for u in users}
    share = sum(v == "2" for v in picked.values()) / len(users)
    assert abs(share - 0.3) < 0.03
    assert all(generator._picker("ab", False, _cohort(u)).pick()[1] == picked[u] for u in users[:500])   # sticky
