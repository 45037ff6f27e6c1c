"""Scenario text the tests run for real: the two lanes most of them compare (push and pull, one replica
each, surge 1 and none unavailable, so a release rolls in one step)."""

from __future__ import annotations


def push_and_pull(jitter: str) -> str:
    """The `lanes:` section; the pull lane polls every 2 s with this jitter."""
    return ("lanes:\n"
            "  - {name: push, delivery: push, replicas: 1, warmup: 0.2, rollout: {maxSurge: 1, maxUnavailable: 0}}\n"
            "  - {name: pull, delivery: pull, replicas: 1, warmup: 0.2, rollout: {maxSurge: 1, maxUnavailable: 0},\n"
            f"     poll: {{interval: 2, jitter: {jitter}}}}}\n")
