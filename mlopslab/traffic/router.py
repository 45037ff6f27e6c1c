"""Where each lane's requests go: one route table per lane, sent to the load generator as one message.

A table holds the lane's backends (ready replicas, each with a weight) and its mirror targets (replicas
that get a copy of every request, whose answers are recorded but never reach the user: shadow traffic),
and its cohort rules (A/B: the requests whose sticky cohort key, a user id hashed to [0, 1), is below a
version's share go to that version, every time).
The environment says which replicas are ready (`endpoints`); a strategy says how traffic splits between
versions (`weigh`: version -> share, as a canary's step or an A/B split) and which versions are mirrored
(`mirror`). With no weights every ready replica is alike, as behind a Kubernetes Service.

`table()` is pure; `Router` keeps the inputs and publishes a lane's table only when it changed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Route:
    backends: tuple[tuple[str, str, float], ...]  # (url, version, weight); weights of a lane sum to 1
    mirror: tuple[tuple[str, str], ...] = ()       # (url, version): a copy of each request goes to one
    cohorts: tuple[tuple[str, float], ...] = ()    # (version, share): cohort keys below share go to version

    def message(self, lane: str) -> dict[str, Any]:
        out = {"op": "routes", "lane": lane, "backends": [list(b) for b in self.backends],
               "mirror": [list(m) for m in self.mirror]}
        return {**out, "cohorts": [list(c) for c in self.cohorts]} if self.cohorts else out


def table(endpoints: list[tuple[str, str]], weights: Mapping[str, float] | None = None,
          mirrored: frozenset[str] | set[str] = frozenset(), cohorts: Mapping[str, float] | None = None) -> Route:
    """The route of one lane from its ready endpoints (url, version), the share of traffic per version
    (None: every endpoint alike), the versions that only get copies and the cohort rules (version ->
    share of cohort keys); a cohort version's replicas are listed with weights among themselves."""
    if cohorts:
        ready = {v for _, v in endpoints}
        rules = tuple((v, round(share, 6)) for v, share in sorted(cohorts.items()) if v in ready and share > 0)
        rest = table([e for e in endpoints if e[1] not in cohorts], weights, mirrored)
        own = [e for e in sorted(endpoints) if e[1] in dict(rules)]
        count = {v: sum(1 for _, w in own if w == v) for v, _ in rules}
        return Route(rest.backends + tuple((url, v, round(1.0 / count[v], 6)) for url, v in own), rest.mirror, rules)
    live = sorted(e for e in endpoints if e[1] not in mirrored)
    copies = tuple(sorted(e for e in endpoints if e[1] in mirrored))
    if weights is None:
        share = {url: 1.0 / len(live) for url, _ in live} if live else {}
    else:
        per_version: dict[str, int] = {}
        for _, version in live:
            per_version[version] = per_version.get(version, 0) + 1
        total = sum(w for v, w in weights.items() if v in per_version and w > 0)
        share = {url: weights.get(version, 0.0) / total / per_version[version]
                 for url, version in live if total > 0 and weights.get(version, 0.0) > 0}
    backends = tuple((url, version, round(share[url], 6)) for url, version in live if share.get(url))
    return Route(backends, copies)


class Router:
    def __init__(self, send: Callable[[dict[str, Any]], None]) -> None:
        self.send = send
        self._endpoints: dict[str, list[tuple[str, str]]] = {}
        self._weights: dict[str, dict[str, float] | None] = {}
        self._mirrored: dict[str, frozenset[str]] = {}
        self._cohorts: dict[str, dict[str, float]] = {}
        self._sent: dict[str, Route] = {}
        self._lock = threading.Lock()

    def endpoints(self, lane: str, endpoints: list[tuple[str, str]]) -> None:
        """The lane's ready replicas (url, version), from the environment."""
        self._update(lane, lambda: self._endpoints.__setitem__(lane, list(endpoints)))

    def weigh(self, lane: str, weights: Mapping[str, float] | None) -> None:
        """Traffic shares per version (e.g. {"1": 0.9, "2": 0.1}); None: every ready replica alike."""
        self._update(lane, lambda: self._weights.__setitem__(lane, None if weights is None else dict(weights)))

    def mirror(self, lane: str, versions: set[str] | frozenset[str]) -> None:
        """Versions that get a copy of every request and answer no user (shadow)."""
        self._update(lane, lambda: self._mirrored.__setitem__(lane, frozenset(versions)))

    def cohort(self, lane: str, shares: Mapping[str, float]) -> None:
        """A/B: version -> share of cohort keys that always go to it ({}: no cohort rule)."""
        self._update(lane, lambda: self._cohorts.__setitem__(lane, dict(shares)))

    def _route(self, lane: str) -> Route:
        return table(self._endpoints.get(lane, []), self._weights.get(lane), self._mirrored.get(lane, frozenset()),
                     self._cohorts.get(lane))

    def _update(self, lane: str, change: Callable[[], None]) -> None:
        with self._lock:
            change()
            route = self._route(lane)
            if route == self._sent.get(lane):
                return
            self._sent[lane] = route
            self.send(route.message(lane))
