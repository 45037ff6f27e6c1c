"""A Flux lane's delivery: Flux's objects for one lane, and the lab's events read from them (the
controllers they drive are gitops/flux.py's `FluxSystem`).

- `FluxDelivery` is one lane: a GitRepository (interval = the lane's poll.interval, url = the git server,
  ref = main) and a Kustomization (path = the lane's directory, prune on, the same interval). It acts on
  nothing itself; it reads Flux's objects from the API every 0.1 s and turns them into the lab's events:
  `detected` when GitRepository's status.artifact.revision becomes the commit; `pipeline_done` and
  `apply_started` when the Kustomization starts on it (a commit that does not change the lane's content is
  detected and built but applies nothing, as with the lab's agent); `flux_applied` when its
  status.lastAppliedRevision is the commit. Rollout and 100 % traffic come from the Deployment, as for
  every lane on this environment.
- Sync state: Flux's own conditions (Ready, Reconciling, Stalled) are reported as `flux_status`; an
  object that is Stalled or Ready=False (also while Flux retries it) makes the lane Degraded
  (`fetch_failed`, with Flux's reason and message) until it is Ready again (`fetch_recovered`).
- Self-heal is Flux's own drift correction: kustomize-controller re-applies the lane at every interval
  with server-side apply and forced ownership, so a field its manifests set (replicas, image, labels,
  annotations they declare) goes back to the repo's value. Before applying it takes over the fields of
  every field manager whose name starts with `kubectl` (kubectl apply, edit, scale, annotate, ...), so
  what a person added with kubectl goes too, an annotation included. It leaves alone fields its manifests
  do not set that another manager wrote (a tool with a field manager of its own, an HPA) and objects it
  did not create. It does not watch the live objects: a change lasts until its next interval. The
  delivery reports `live_reverted` when it sees the live Deployment come back to the applied content
  without a new revision.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlopslab.envs.base import DeploymentSpec, Emit
from mlopslab.gitops.flux import CONTROLLERS, KUSTOMIZE, NAMESPACE, SOURCE, FluxSystem
from mlopslab.gitops.manifests import ManifestError
from mlopslab.gitops.repo import BRANCH, Checkout, RepoError

OBSERVE_PERIOD = 0.1


def _duration(seconds: float) -> str:
    """A Go duration string the CRDs accept ("8s", "2500ms")."""
    return f"{int(seconds)}s" if float(seconds).is_integer() else f"{int(round(seconds * 1000))}ms"


def sha_of(revision: str | None) -> str | None:
    """`main@sha1:<sha>` (Flux's revision form) -> `<sha>`."""
    if not revision:
        return None
    return revision.rsplit(":", 1)[-1] if ":" in revision else revision.rsplit("@", 1)[-1]


def conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}


class FluxDelivery:
    """One lane delivered by Flux: its GitRepository and Kustomization, and the events read from them."""

    def __init__(self, lane: str, system: FluxSystem, origin: Path, workdir: Path, env: Any, emit: Emit, *,
                 interval: float, namespace: str, clock: Callable[[], float] = time.monotonic) -> None:
        from kubernetes import client

        self.lane = lane
        self.system = system
        self.origin = origin
        self.env = env                      # the KubernetesEnvironment: observe, expect_rollout
        self.emit = emit
        self.interval = interval
        self.namespace = namespace          # the lane's namespace (where its manifests go)
        self.clock = clock
        self.custom = client.CustomObjectsApi(system.admin)
        self.checkout = Checkout(origin, workdir)   # the lab's own read of a revision, to know what it holds
        self.detected: str | None = None            # the newest artifact revision's commit
        self.detected_at: float | None = None
        self.working: str | None = None              # the commit the Kustomization took up last
        self.applied_sha: str | None = None
        self.applied: DeploymentSpec | None = None   # the lane's content at the last applied revision
        self.drift: tuple[float, dict[str, list[str]]] | None = None
        self._status: dict[str, tuple[Any, ...]] = {}
        self._failing: dict[str, str] = {}
        self._failing_since: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"flux-{lane}", daemon=True)

    # --- objects ----------------------------------------------------------------------------------------
    def objects(self) -> tuple[dict[str, Any], dict[str, Any]]:
        url = self.system.repo_url(self.origin)
        every = _duration(self.interval)
        labels = self.system.labels
        source = {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
                  "metadata": {"name": self.lane, "namespace": NAMESPACE, "labels": labels},
                  "spec": {"url": url, "interval": every, "ref": {"branch": BRANCH}, "timeout": "20s"}}
        kustomization = {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                         "metadata": {"name": self.lane, "namespace": NAMESPACE, "labels": labels},
                         "spec": {"interval": every, "retryInterval": every, "path": f"./lanes/{self.lane}",
                                  "prune": True, "wait": False, "timeout": "60s",
                                  "sourceRef": {"kind": "GitRepository", "name": self.lane}}}
        return source, kustomization

    def start(self) -> None:
        source, kustomization = self.objects()
        group, version, plural = SOURCE
        self.custom.create_namespaced_custom_object(group, version, NAMESPACE, plural, source)
        group, version, plural = KUSTOMIZE
        self.custom.create_namespaced_custom_object(group, version, NAMESPACE, plural, kustomization)
        self.emit("agent_started", self.lane, interval=self.interval, jitter=0.0, self_heal=True)
        self.emit("flux_ready", self.lane, url=source["spec"]["url"], interval=self.interval,
                  controllers=list(CONTROLLERS), started_in=round(self.system.started_in or 0.0, 3))
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _get(self, which: tuple[str, str, str]) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        group, version, plural = which
        try:
            return self.custom.get_namespaced_custom_object(group, version, NAMESPACE, plural, self.lane)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    # --- the loop: read, then turn what changed into events --------------------------------------------
    def _loop(self) -> None:
        while not self._stop.wait(OBSERVE_PERIOD):
            try:
                self.observe_once()
            except Exception as exc:  # noqa: BLE001 - reported; the next read tries again
                if not self._stop.is_set():
                    self.emit("error", self.lane, message=f"flux: {exc!r}")
                    self._stop.wait(1.0)

    def observe_once(self) -> None:
        source, kustomization = self._get(SOURCE), self._get(KUSTOMIZE)
        if source is not None:
            self._conditions("GitRepository", source)
            self._source(source)
        if kustomization is not None:
            self._conditions("Kustomization", kustomization)
            self._kustomization(kustomization)
        self._health()
        self._watch_drift()

    def _source(self, obj: dict[str, Any]) -> None:
        artifact = (obj.get("status") or {}).get("artifact") or {}
        sha = sha_of(artifact.get("revision"))
        if sha and sha != self.detected:
            self.detected, self.detected_at = sha, self.clock()
            self.emit("detected", self.lane, sha=sha, how="poll")

    def _kustomization(self, obj: dict[str, Any]) -> None:
        status = obj.get("status") or {}
        reconciling = conditions(obj).get("Reconciling", {})
        mentioned = re.search(r"sha1:([0-9a-f]{40})", reconciling.get("message", "")) \
            if reconciling.get("status") == "True" else None
        attempted = sha_of(status.get("lastAttemptedRevision"))
        applied = sha_of(status.get("lastAppliedRevision"))
        for sha in (mentioned.group(1) if mentioned else None, attempted, applied):
            if sha and sha != self.working and sha == self.detected:
                self._take_up(sha)
        if applied and applied != self.applied_sha and applied == self.working:
            self.applied_sha = applied
            after = self.clock() - self.detected_at if self.detected_at is not None else None
            self.emit("flux_applied", self.lane, sha=applied, revision=status.get("lastAppliedRevision"),
                      after_detected=round(after, 3) if after is not None else None)

    def _take_up(self, sha: str) -> None:
        """The Kustomization started on commit `sha`: what does the lane hold there?"""
        self.working = sha
        try:
            self.checkout.fetch()
            desired = self.checkout.render(sha, self.lane)
        except (ManifestError, KeyError, RepoError) as exc:
            self.emit("pipeline_done", self.lane, sha=sha, ok=False, error=f"render: {exc}", steps=["artifact"])
            return
        self.emit("pipeline_done", self.lane, sha=sha, version=desired.version, ok=True, steps=["artifact", "build"])
        if self.applied is not None and not desired.diff(self.applied):
            return   # the commit does not change this lane: Flux applies it, and nothing changes
        self.drift = None
        self.applied = desired
        self.env.expect_rollout(desired)
        self.emit("apply_started", self.lane, sha=sha, version=desired.version, revision=sha)

    def _conditions(self, kind: str, obj: dict[str, Any]) -> None:
        found = conditions(obj)
        ready = found.get("Ready", {})
        reconciling = found.get("Reconciling", {}).get("status") == "True"
        stalled = found.get("Stalled", {}).get("status") == "True"
        state = (ready.get("status", "Unknown"), reconciling, stalled, ready.get("reason"))
        name = f"{kind}/{NAMESPACE}/{self.lane}"
        if self._status.get(name) != state:
            self._status[name] = state
            status = obj.get("status") or {}
            self.emit("flux_status", self.lane, object=name, ready=state[0], reconciling=reconciling, stalled=stalled,
                      reason=ready.get("reason"), message=(ready.get("message") or "")[:300],
                      revision=(status.get("artifact") or {}).get("revision") or status.get("lastAppliedRevision"))
        # Ready=False is a failure even while Flux retries (Reconciling, reason ProgressingWithRetry); a
        # reconcile in progress (Ready=Unknown) changes nothing until it ends; only Ready=True clears it.
        # Before the first artifact, a Kustomization waiting for it (ArtifactFailed) is not a failure.
        waiting = kind == "Kustomization" and ready.get("reason") == "ArtifactFailed" and self.detected is None
        if stalled or (ready.get("status") == "False" and not waiting):
            self._failing[name] = f"{name}: {ready.get('reason', 'Stalled')}: {(ready.get('message') or '')[:200]}"
        elif ready.get("status") == "True" or waiting:
            self._failing.pop(name, None)

    def _health(self) -> None:
        """Degraded (fetch_failed) while a Flux object is failed; recovered when none is."""
        error = "; ".join(self._failing.values()) or None
        if error and self._failing_since is None:
            self._failing_since = self.clock()
            self.emit("fetch_failed", self.lane, error=error, attempt=1, retry_in=self.interval)
        elif error is None and self._failing_since is not None:
            self.emit("fetch_recovered", self.lane, attempts=1, sha=self.detected,
                      down_for=round(self.clock() - self._failing_since, 3))
            self._failing_since = None

    def _watch_drift(self) -> None:
        """A live change to what Flux applied, and Flux putting it back at its next interval."""
        if self.applied is None or self.detected != self.applied_sha:
            self.drift = None          # a revision is on its way: not drift
            return
        live = self.env.observe(self.lane).spec
        diff = self.applied.diff(live)
        if diff and self.drift is None:
            self.drift = (self.clock(), {k: [str(v[1]), str(v[0])] for k, v in diff.items()})
        elif not diff and self.drift is not None:
            since, change = self.drift
            self.drift = None
            self.emit("live_reverted", self.lane, revision=self.applied_sha, change=change)
