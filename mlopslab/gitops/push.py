"""Push delivery: a CI runner that a commit's webhook triggers; it runs the pipeline, then applies.

The runner holds the environment's credentials (here: the Environment handle itself). It reacts to
commits only: a manual live change is invisible to it until the next commit overwrites it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlopslab.envs.base import Emit, Environment
from mlopslab.gitops.manifests import ManifestError
from mlopslab.gitops.repo import Checkout, RepoError
from mlopslab.gitops.webhook import WebhookReceiver, new_secret


class PushRunner:
    def __init__(self, lane: str, origin: Path, workdir: Path, env: Environment, emit: Emit,
                 model_exists: Callable[[str, str], bool]) -> None:
        self.lane = lane
        self.env = env
        self.emit = emit
        self.model_exists = model_exists
        self.checkout = Checkout(origin, workdir)
        self.secret = new_secret()
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.receiver = WebhookReceiver(self.secret, self._on_push)
        self._thread = threading.Thread(target=self._work, name=f"ci-{lane}", daemon=True)

    @property
    def hook_url(self) -> str:
        return self.receiver.url

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        self.receiver.close()
        self._thread.join(timeout=5)

    def _on_push(self, payload: dict[str, Any]) -> None:
        self.emit("detected", self.lane, sha=payload["after"], how="webhook")
        self._queue.put(payload["after"])

    def _work(self) -> None:
        while (sha := self._queue.get()) is not None:
            try:
                self.run_pipeline(sha)
            except Exception as exc:
                self.emit("pipeline_done", self.lane, sha=sha, ok=False, error=repr(exc), steps=[])

    def run_pipeline(self, sha: str) -> bool:
        """checkout → validate manifests → check the model version in the registry → apply."""
        steps: list[str] = []
        try:  # a CI job does not retry: origin unreachable or corrupt fails this pipeline, visibly
            self.checkout.fetch()
        except RepoError as exc:
            self.emit("pipeline_done", self.lane, sha=sha, ok=False, error=f"checkout: {exc}", steps=steps)
            return False
        steps.append("checkout")
        try:
            spec = self.checkout.render(sha, self.lane)
        except (ManifestError, KeyError, RepoError) as exc:
            self.emit("pipeline_done", self.lane, sha=sha, ok=False, error=f"validate: {exc}", steps=steps)
            return False
        steps.append("validate")
        if not self.model_exists(spec.model, spec.version):
            self.emit("pipeline_done", self.lane, sha=sha, version=spec.version, ok=False, steps=steps,
                      error=f"{spec.model_uri} is not in the registry")
            return False
        steps.append("model-exists")
        self.emit("pipeline_done", self.lane, sha=sha, version=spec.version, ok=True, steps=steps)
        self.emit("apply_started", self.lane, sha=sha, version=spec.version, revision=sha)
        self.env.apply(spec)
        return True
