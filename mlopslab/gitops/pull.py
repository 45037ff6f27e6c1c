"""Pull delivery: an agent beside the environment that reconciles it with the env repo.

A level-based loop in the manner of Argo CD / Flux: fetch → render → diff desired vs live → apply.
It polls git every `interval` + a random jitter (Argo CD: 120 s + up to 60 s), or wakes on a signed
webhook, and watches live state every `live_interval` so a manual change is reverted (self-heal).

When origin cannot be read (gone, unreachable, corrupt) the agent reports `fetch_failed` with git's error
(the lab shows the lane Degraded), keeps self-healing towards the last revision it rendered in full, and
retries with capped exponential back-off (`retry_base` doubling up to `retry_cap`, by default the poll
interval); the first fetch that works again reports `fetch_recovered`. A revision is applied only once
every file of the lane was read from that one commit, so nothing partial or half-fetched goes live.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

from mlopslab.envs.base import DeploymentSpec, Emit, Environment
from mlopslab.gitops.manifests import ManifestError
from mlopslab.gitops.repo import Checkout, RepoError
from mlopslab.gitops.webhook import WebhookReceiver, new_secret


class PullAgent:
    def __init__(self, lane: str, origin: Path, workdir: Path, env: Environment, emit: Emit, *,
                 interval: float = 10.0, jitter: float = 0.0, webhook: bool = False, self_heal: bool = True,
                 live_interval: float = 1.0, seed: int = 0, retry_base: float = 0.5,
                 retry_cap: float | None = None) -> None:
        self.lane = lane
        self.env = env
        self.emit = emit
        self.interval, self.jitter = interval, jitter
        self.self_heal = self_heal
        self.live_interval = live_interval
        self.retry_base = retry_base
        self.retry_cap = max(retry_base, interval if retry_cap is None else retry_cap)
        self.failures = 0            # fetches failed in a row
        self._failing_since: float | None = None
        self.checkout = Checkout(origin, workdir)
        self._random = random.Random(seed)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.seen: str | None = None       # the newest commit read in full (rendered, or found wrong)
        self._detected: str | None = None
        self.desired: DeploymentSpec | None = None   # rendered from the newest commit
        self.applied: DeploymentSpec | None = None   # the content this agent last put live
        self.secret = new_secret() if webhook else None
        self.receiver = WebhookReceiver(self.secret, self._on_push) if self.secret else None
        self._woken_by_hook = False
        self._thread = threading.Thread(target=self._loop, name=f"agent-{lane}", daemon=True)

    @property
    def hook_url(self) -> str | None:
        return self.receiver.url if self.receiver else None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self.receiver:
            self.receiver.close()
        self._thread.join(timeout=5)

    def _on_push(self, payload: dict[str, Any]) -> None:
        self._woken_by_hook = True
        self._wake.set()

    def next_poll_delay(self) -> float:
        return self.interval + self._random.uniform(0.0, self.jitter)

    def _loop(self) -> None:
        next_poll = time.monotonic()  # the agent's first sync happens when it starts
        while not self._stop.is_set():
            now = time.monotonic()
            try:
                if now >= next_poll or self._woken_by_hook:
                    how = "webhook" if self._woken_by_hook else "poll"
                    self._woken_by_hook = False
                    self._wake.clear()
                    try:
                        self.fetch(how)
                    except RepoError as exc:
                        next_poll = time.monotonic() + self._failed(exc)
                    else:
                        self._recovered()
                        if how == "poll" or now >= next_poll:
                            next_poll = time.monotonic() + self.next_poll_delay()
                self.reconcile()
            except Exception as exc:
                self.emit("error", self.lane, message=f"agent: {exc!r}")
            wait = min(self.live_interval, max(0.0, next_poll - time.monotonic()))
            self._wake.wait(wait)

    def retry_delay(self) -> float:
        """Seconds before the next fetch after `failures` failed ones: doubling, capped."""
        return min(self.retry_cap, self.retry_base * 2.0 ** max(0, self.failures - 1))

    def _failed(self, exc: RepoError) -> float:
        self.failures += 1
        if self._failing_since is None:
            self._failing_since = time.monotonic()
        delay = self.retry_delay()
        self.emit("fetch_failed", self.lane, error=str(exc), attempt=self.failures, retry_in=round(delay, 3))
        return delay

    def _recovered(self) -> None:
        if self._failing_since is not None:
            self.emit("fetch_recovered", self.lane, attempts=self.failures, sha=self.seen,
                      down_for=round(time.monotonic() - self._failing_since, 3))
        self.failures, self._failing_since = 0, None

    def fetch(self, how: str) -> None:
        """Fetches the repo; on a new commit renders the lane's desired state. RepoError if origin or the
        commit's objects cannot be read: the commit then counts as not seen, and the next fetch tries again."""
        sha = self.checkout.fetch()
        if sha == self.seen:
            return
        if sha != self._detected:  # once per commit, however many reads it takes
            self._detected = sha
            self.emit("detected", self.lane, sha=sha, how=how)
        try:
            desired = self.checkout.render(sha, self.lane)
        except (ManifestError, KeyError) as exc:  # the commit itself is wrong: trying again changes nothing
            self.seen = sha
            self.emit("pipeline_done", self.lane, sha=sha, ok=False, error=f"render: {exc}", steps=["fetch"])
            return
        self.seen = sha
        self.emit("pipeline_done", self.lane, sha=sha, version=desired.version, ok=True, steps=["fetch", "render"])
        self.desired = desired

    def reconcile(self) -> None:
        """Diff desired vs live; apply new desired content, or revert a manual change (self-heal).

        Content decides, not commit ids: a commit that did not touch this lane changes nothing here.
        """
        desired = self.desired
        if desired is None:
            return
        diff = desired.diff(self.env.observe(self.lane).spec)
        if not diff:
            self.applied = desired
            return
        if self.applied is not None and not desired.diff(self.applied):  # live drifted from what we applied
            if self.self_heal:
                self.env.apply(desired)
                self.emit("live_reverted", self.lane, revision=desired.revision,
                          change={k: [str(v[1]), str(v[0])] for k, v in diff.items()})
            return
        self.emit("apply_started", self.lane, sha=desired.revision, version=desired.version,
                  revision=desired.revision)
        self.env.apply(desired)
        self.applied = desired
