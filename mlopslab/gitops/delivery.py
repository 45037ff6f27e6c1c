"""What every way of delivering is to the lab: the push runner, the pull agents (a thread beside a local
environment, a container beside a Docker engine) and later Flux all look like this.

The lab starts and stops a delivery, registers its webhook with the env repo when it has one, and shows
its credential; everything else (when it notices a commit, how it applies, self-heal) is its own and is
reported as events (detected, pipeline_done, apply_started, live_reverted, fetch_failed ...).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Delivery(Protocol):
    lane: str

    def start(self) -> None: ...

    def stop(self) -> None: ...


def hook(delivery: Delivery) -> tuple[str, str] | None:
    """(url, secret) of the delivery's HMAC-signed webhook, or None when it does not take one (a polling
    agent without webhook, an agent in a container with no network)."""
    url, secret = getattr(delivery, "hook_url", None), getattr(delivery, "secret", None)
    return (url, secret) if url and secret else None
