"""A progressive lane whose delivery applies by itself (Flux): the rollout controller learns the lane's
target from the cluster, as Flagger watches its target Deployment.

Push and pull deliveries hand the declared spec to the rollout controller as they apply it (acting.py).
Flux's kustomize-controller applies the env repo's files on its own, so for such a lane the lab follows
the declared Deployment `model-server` instead: the environment's Deployment informer wakes
`DeclaredTargets`, which reads the object from the informer's cache (level-based: what the cache holds
now, not the event that woke it), parses it as the repo holds it (without `spec.replicas`, the
controller's field: the lane's size is `mlopslab.io/replicas`, see gitops/manifests.py) and, when that
content changed, emits `target_declared` (with the field manager that wrote the template: Flux's
`kustomize-controller`, or a person's `kubectl-edit`) and hands the spec to `Rollouts.apply` as the
lane's target. The controller's own writes to the object (its replicas, the canary's group label) do not
change that content, so they never read back as a new target.

Flagger's initialisation too: the repo's Deployment has no replicas, so the API gives it 1; the first time
the lab sees it, the controller scales it to zero (groups.py, `scale_to_zero`) with its own credential.

A person's manual change of such a lane is an edit of the declared object by the admin, with field manager
`kubectl-edit`, as `kubectl edit deployment model-server` would be; the controller takes it as the target,
and Flux, which takes over every `kubectl*` manager's fields at its next interval, puts the repo's back.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import Any

from mlopslab.envs.base import DeploymentSpec, Emit
from mlopslab.envs.kubernetes.groups import CONTROLLER_MANAGER, VERSION_LABEL

EDITOR = "kubectl-edit"


def declared_by(obj: Any) -> str:
    """The field manager that wrote the declared Deployment last: not the rollout controller, not a status
    writer (`kustomize-controller`, or `kubectl-edit` for a person's change until Flux takes it back)."""
    writers = [e for e in obj.metadata.managed_fields or [] if e.manager != CONTROLLER_MANAGER and not e.subresource]
    newest = max(writers, key=lambda e: e.time.timestamp() if e.time else 0.0, default=None)
    return newest.manager if newest is not None else ""


def follow(rollouts: Any, lane: str, emit: Emit) -> DeclaredTargets:
    """Lane's declared Deployment as its target for `rollouts` (the lab's Rollouts over a KubernetesEnvironment),
    and the lab's manual changes of the lane as edits of it."""
    kube = rollouts.inner
    if kube.declared is None:
        kube.declared = DeclaredTargets(kube, emit)
        kube.on_teardown.insert(0, kube.declared.stop)
    kube.declared.follow(lane, rollouts.apply)
    rollouts.editors[lane] = kube.declared.edit
    return kube.declared


class DeclaredTargets:
    """Lab side: each followed lane's declared Deployment, handed to the rollout controller (`adopt`)."""

    def __init__(self, env: Any, emit: Emit) -> None:
        self.env = env                       # the KubernetesEnvironment (its informer's cache, its groups)
        self.emit = emit
        self.adopters: dict[str, Callable[[DeploymentSpec], None]] = {}
        self.adopted: dict[str, DeploymentSpec] = {}
        self.failed: dict[str, str] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="declared-targets", daemon=True)

    def follow(self, lane: str, adopt: Callable[[DeploymentSpec], None]) -> None:
        """From now on, lane's declared Deployment is its target (`adopt`: `Rollouts.apply`)."""
        self.env.groups.progressive.add(lane)   # its declared Deployment is a canary beside a primary
        self.adopters[lane] = adopt
        if not self._thread.is_alive():
            self._thread.start()
        self._wake.set()

    def notice(self, lane: str, name: str) -> None:
        """The informer's callback (its thread: nothing slow here) for a Deployment of `lane`."""
        if lane in self.adopters and name == self.env.manifests.APP:
            self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def edit(self, spec: DeploymentSpec) -> None:
        """A person's change of the lane: `kubectl edit` of the declared object (its size, its version)."""
        live = self.env.live_spec(spec.lane)
        model = live.model if live is not None else spec.model
        annotations = {self.env.manifests.ANNOTATION + "replicas": str(spec.replicas),
                       self.env.manifests.ANNOTATION + "model-uri": f"models:/{model}/{spec.version}"}
        patch = {"metadata": {"annotations": annotations},
                 "spec": {"template": {"metadata": {"labels": {VERSION_LABEL: str(spec.version)}},
                                       "spec": {"containers": [{"name": "server", "image":
                                                                self.env.manifests.image_for(model, spec.version)}]}}}}
        self.env.apps.patch_namespaced_deployment(self.env.manifests.APP, self.env.namespaces[spec.lane], patch,
                                                  field_manager=EDITOR)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            for lane in list(self.adopters):
                if self._stop.is_set():
                    return
                try:
                    self._check(lane)
                    self.failed.pop(lane, None)
                except Exception as exc:   # keep watching; report each new problem once
                    message = f"declared target: {exc!r}"
                    if self.failed.get(lane) != message:
                        self.emit("error", lane, message=message)
                    self.failed[lane] = message

    def _check(self, lane: str) -> None:
        namespace = self.env.namespaces[lane]
        obj = self.env.deployments.cache.get((namespace, self.env.manifests.APP))
        if obj is None:
            return
        doc = copy.deepcopy(self.env.api.sanitize_for_serialization(obj))
        doc["spec"].pop("replicas", None)   # the controller's field; the lane's size is in the annotation
        spec = self.env.manifests.parse_deployment(doc, lane=lane)
        spec = self.env.named(lane, spec)   # Flux's manifests name no commit: the one its delivery saw
        if lane in self.adopted and not self.adopted[lane].diff(spec):
            return
        self.adopted[lane] = spec
        self.emit("target_declared", lane, version=spec.version, replicas=spec.replicas,
                  generation=obj.metadata.generation, by=declared_by(obj), revision=spec.revision or None)
        self.adopters[lane](spec)
        if not self.env.groups.owns_replicas(obj):   # Flagger's initialisation: no canary pod until a release
            from kubernetes import client

            client.AppsV1Api(self.env.controllers.get(lane, self.env.api)).patch_namespaced_deployment(
                self.env.manifests.APP, namespace, self.env.groups.scale_to_zero(namespace),
                field_manager=CONTROLLER_MANAGER, force=True, _content_type="application/apply-patch+yaml")
