"""Pull delivery: an agent beside the environment that reconciles it with the env repo.

A level-based loop in the manner of Argo CD / Flux: fetch → render → diff desired vs live → apply.
It polls git every `interval` + a random jitter (Argo CD: 120 s + up to 60 s), or wakes on a signed
webhook, and watches live state every `live_interval` so a manual change is reverted (self-heal).
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

from mlopslab.envs.base import DeploymentSpec, Emit, Environment
from mlopslab.gitops.manifests import ManifestError
from mlopslab.gitops.repo import Checkout
from mlopslab.gitops.webhook import WebhookReceiver, new_secret


class PullAgent:
    def __init__(self, lane: str, origin: Path, workdir: Path, env: Environment, emit: Emit, *,
                 interval: float = 10.0, jitter: float = 0.0, webhook: bool = False, self_heal: bool = True,
                 live_interval: float = 1.0, seed: int = 0) -> None:
        self.lane = lane
        self.env = env
        self.emit = emit
        self.interval, self.jitter = interval, jitter
        self.self_heal = self_heal
        self.live_interval = live_interval
        self.checkout = Checkout(origin, workdir)
        self._random = random.Random(seed)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.seen: str | None = None
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
                    self.fetch(how)
                    if how == "poll" or now >= next_poll:
                        next_poll = time.monotonic() + self.next_poll_delay()
                self.reconcile()
            except Exception as exc:
                self.emit("error", self.lane, message=f"agent: {exc!r}")
            wait = min(self.live_interval, max(0.0, next_poll - time.monotonic()))
            self._wake.wait(wait)

    def fetch(self, how: str) -> None:
        """Fetches the repo; on a new commit renders the lane's desired state."""
        sha = self.checkout.fetch()
        if sha == self.seen:
            return
        self.seen = sha
        self.emit("detected", self.lane, sha=sha, how=how)
        try:
            desired = self.checkout.render(sha, self.lane)
        except (ManifestError, KeyError) as exc:
            self.emit("pipeline_done", self.lane, sha=sha, ok=False, error=f"render: {exc}", steps=["fetch"])
            return
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
