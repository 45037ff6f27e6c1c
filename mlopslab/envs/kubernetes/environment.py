"""The Environment port over a Kubernetes API: the real Deployment controller rolls out, the lab watches.

- `apply` is server-side apply of the lane's rendered manifests (Deployment and Service, as the env repo
  holds them) into the lane's namespace, with the caller's own credentials and field manager: a delivery
  gets an `Acting` view holding its ServiceAccount's client (see platforms/kubernetes.py). A progressive
  lane has two Deployments, Flagger's primary and canary, made so by the rollout controller (groups.py).
- `observe` and `endpoints` read informer caches of the lab's Deployments and pods (one list+watch each),
  so the lab's 20 Hz watch loop costs the API server nothing.
- Traffic targets are the lane's pods that are Ready and not terminating, at their pod address: this
  is what a Service's EndpointSlices would list, but EndpointSlices (and Endpoints) refuse loopback
  addresses, and every pod here has one (127.N.x.y, see node.py), so the lab selects from the pods
  themselves, exactly as the EndpointSlice controller would (selector, Ready, not terminating).
- Lab events (replica started/ready/terminating/stopped, rollout done/failed) are derived from the API's
  objects as they change, so phase timings are measured as in every other environment.
- A person's live change is an API patch by the admin (`kubectl edit`); killing a replica deletes a pod
  at once (grace 0), as a node failure would lose it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

import yaml

from mlopslab.envs.base import DeploymentSpec, Emit, Endpoint, Environment, LiveState
from mlopslab.envs.kubernetes.groups import CONTROLLER_MANAGER, NAME_LABEL, VERSION_LABEL, Groups, pod_ready, split

SELECTOR = "app.kubernetes.io/part-of=mlopslab"
LANE_LABEL = "mlopslab.io/lane"


@dataclass
class _Seen:
    """What the lab last saw of a pod, to turn its changes into events."""

    lane: str
    version: str
    first: float
    ready: bool = False
    was_ready: bool = False
    terminating: bool = False
    restarts: int = 0


@dataclass
class _Rollout:
    since: float
    generation: int | None = None
    done: bool = False
    failed: bool = False
    cause: str | None = None     # "manual_change" while a person's edit is what rolls
    expect: DeploymentSpec | None = None   # done only once the live Deployment holds this content


class Manifests(Protocol):
    """What the environment needs of the env repo's manifests (gitops/manifests.py, handed in by the
    platform: environments do not import gitops)."""

    APP: str
    ANNOTATION: str

    def render_lane(self, spec: DeploymentSpec) -> dict[str, str]: ...

    def parse_deployment(self, doc: Any, *, revision: str = "", lane: str | None = None) -> DeploymentSpec: ...

    def image_for(self, model: str, version: str) -> str: ...


class KubernetesEnvironment(Environment):
    kind = "kubernetes"

    def __init__(self, api: Any, emit: Emit, namespaces: dict[str, str], manifests: Manifests, *,
                 on_teardown: list[Callable[[], None]] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        from kubernetes import client

        self.api = api
        self.manifests = manifests
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self.emit = emit
        self.clock = clock
        self.namespaces = dict(namespaces)               # lane -> namespace
        self.lanes = {ns: lane for lane, ns in namespaces.items()}
        self.groups = Groups(manifests.APP)            # a progressive lane's primary and canary Deployments
        self.controllers: dict[str, Any] = {}          # lane -> the rollout controller's API client there
        self.on_teardown = list(on_teardown or [])
        self.before_apply: Callable[[DeploymentSpec], None] | None = None   # e.g. make the model's image there
        self.declared: Any = None   # declared.DeclaredTargets, when a Flux lane has a progressive strategy
        self._lock = threading.RLock()
        self._seen: dict[str, _Seen] = {}
        self._rollouts: dict[str, _Rollout] = {}
        self._killed: set[str] = set()
        self._scales: dict[str, int] = {}       # ReplicaSet uid -> the spec.replicas last seen
        self._revisions: dict[str, list[DeploymentSpec]] = {}   # lane -> specs a delivery said it applies (Flux)
        self._torn_down = False
        self._informers: list[Any] = []

    def start(self) -> None:
        from mlopslab.envs.kubernetes.informer import Informer

        report = lambda message: self.emit("error", None, message=f"kubernetes: {message}")  # noqa: E731
        self.pods = Informer(self.core.list_pod_for_all_namespaces, self._on_pod, name="pods",
                             on_error=report, label_selector=SELECTOR).start()
        self.deployments = Informer(self.apps.list_deployment_for_all_namespaces, self._on_deployment,
                                    name="deployments", on_error=report, label_selector=SELECTOR).start()
        self.replicasets = Informer(self.apps.list_replica_set_for_all_namespaces, self._on_replicaset,
                                    name="replicasets", on_error=report, label_selector=SELECTOR).start()
        self._informers = [self.pods, self.deployments, self.replicasets]
        for informer in self._informers:
            informer.synced.wait(30)

    # --- the port ---------------------------------------------------------------------------------
    def apply(self, spec: DeploymentSpec) -> None:
        """The lab's own apply: a progressive lane's groups as the rollout controller (groups.py), else as admin."""
        lane = split(spec.lane)[0]
        if lane in self.groups.progressive:
            self._apply(self.controllers.get(lane, self.api), CONTROLLER_MANAGER, spec, declared=False)
        else:
            self._apply(self.api, "mlopslab-admin", spec, declared=False)

    def apply_as(self, api: Any, manager: str, spec: DeploymentSpec) -> None:
        """A delivery's apply of the lane's declared Deployment and Service, with its own credentials."""
        if spec.progressive:
            self.groups.progressive.add(spec.lane)
        self._apply(api, manager, spec, declared=True)

    def _apply(self, api: Any, manager: str, spec: DeploymentSpec, declared: bool) -> None:
        """Server-side apply as `manager`, with `api`'s credentials (force: the applier owns the fields it
        sets, as `kubectl apply --server-side --force-conflicts`)."""
        from kubernetes import client

        lane = split(spec.lane)[0]
        namespace = self.namespaces[lane]
        if self.before_apply is not None:
            self.before_apply(spec)
        deployment, service = self._documents(spec)
        for doc in (deployment, service):
            doc["metadata"]["namespace"] = namespace
        deployment["metadata"]["annotations"][self.manifests.ANNOTATION + "revision"] = spec.revision
        canary = declared and lane in self.groups.progressive   # the controller sizes it and times it
        if not canary:
            with self._lock:
                # done only once the informer holds what was applied (until then it shows the old object)
                self._rollouts[spec.lane] = _Rollout(since=self.clock(), expect=spec)
        options = {"field_manager": manager, "force": True, "_content_type": "application/apply-patch+yaml"}
        for doc in self.groups.documents(spec.lane, deployment, service, declared):
            if doc["kind"] == "Service":
                client.CoreV1Api(api).patch_namespaced_service(doc["metadata"]["name"], namespace, doc, **options)
                continue
            applied = client.AppsV1Api(api).patch_namespaced_deployment(doc["metadata"]["name"], namespace, doc,
                                                                         **options)
            if canary and not self.groups.owns_replicas(applied):
                client.AppsV1Api(self.controllers.get(lane, self.api)).patch_namespaced_deployment(
                    self.manifests.APP, namespace, self.groups.scale_to_zero(namespace),
                    **{**options, "field_manager": CONTROLLER_MANAGER})

    def _documents(self, spec: DeploymentSpec) -> tuple[dict[str, Any], dict[str, Any]]:
        """The lane's Deployment and Service: as the env repo holds them when the spec was read from there
        (applied as they are, edits by hand included), else rendered from the spec. The Namespace is the
        lab's to make: a delivery's Role does not reach beyond its namespace."""
        files = dict(spec.source) or self.manifests.render_lane(replace(spec, lane=split(spec.lane)[0]))
        docs = [d for text in files.values() for d in yaml.safe_load_all(text) if isinstance(d, dict)]
        found = {d.get("kind"): d for d in docs}
        if "Deployment" not in found or "Service" not in found:
            raise ValueError(f"lane {spec.lane}: its manifests hold no Deployment and Service")
        return found["Deployment"], found["Service"]

    def live_spec(self, lane: str, api: Any | None = None) -> DeploymentSpec | None:
        """The group's live Deployment as a spec: from the cache, or the declared one read through `api` (a
        delivery's own credentials, so its diff is what it may see)."""
        namespace = self.namespaces[split(lane)[0]]
        if api is not None:
            from kubernetes import client
            from kubernetes.client.exceptions import ApiException

            try:
                obj = client.AppsV1Api(api).read_namespaced_deployment(self.manifests.APP, namespace)
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise
        else:
            obj = self.deployments.cache.get((namespace, self.groups.deployment(lane)))
            if obj is None:
                return None
        doc = self.api.sanitize_for_serialization(obj)
        spec = self.manifests.parse_deployment(doc, lane=lane)
        return spec if spec.revision else self.named(lane, spec)

    def named(self, lane: str, spec: DeploymentSpec) -> DeploymentSpec:
        """Applied by a delivery that stamps no commit (Flux): named by the newest commit it said holds this content."""
        named = next((d for d in reversed(self._revisions.get(lane, [])) if not d.diff(spec)), None)
        return replace(spec, revision=named.revision) if named else spec

    def expect_rollout(self, desired: DeploymentSpec) -> None:
        """A delivery that applies by itself (Flux) says a rollout of `desired` begins: the lab times it
        from now, and names the live Deployment by its commit once it holds that content (Flux's manifests
        carry no commit)."""
        with self._lock:
            self._revisions.setdefault(desired.lane, []).append(desired)
            del self._revisions[desired.lane][:-8]
            if desired.lane in self.groups.progressive:   # the rollout controller times its groups' rollouts
                return
            self._rollouts[desired.lane] = _Rollout(since=self.clock(), expect=desired)
        self._check_rollout(desired.lane)

    def observe(self, lane: str, spec: DeploymentSpec | None = None) -> LiveState:
        spec = spec or self.live_spec(lane)
        namespace = self.namespaces[split(lane)[0]]
        views = self.groups.views(self.pods.items(), namespace, lane)
        updated = sum(1 for v in views if spec and v.version == spec.version and v.state != "terminating")
        ready = sum(1 for v in views if v.state == "ready")
        live = LiveState(lane, spec, views, updated, ready)
        with self._lock:
            rollout = self._rollouts.get(lane)
        failed = rollout is not None and rollout.failed
        return replace(live, condition="Failed" if failed else ("Available" if live.complete else "Progressing"))

    def endpoints(self, lane: str) -> list[Endpoint]:
        return [Endpoint(lane, v.name, v.version, v.url) for v in self.observe(lane).replicas
                if v.state == "ready" and v.url]

    def change_live(self, lane: str, *, replicas: int | None = None, version: str | None = None) -> DeploymentSpec:
        live = self.live_spec(lane)
        if live is None:
            raise KeyError(f"lane {lane!r} has no live deployment")
        patch: dict[str, Any] = {"spec": {}}
        if replicas is not None:
            patch["spec"]["replicas"] = replicas
        if version is not None:
            image = self.manifests.image_for(live.model, version)
            uri = f"models:/{live.model}/{version}"
            patch["metadata"] = {"annotations": {self.manifests.ANNOTATION + "model-uri": uri}}
            patch["spec"]["template"] = {"metadata": {"labels": {VERSION_LABEL: str(version)}},
                                         "spec": {"containers": [{"name": "server", "image": image}]}}
        edited = replace(live, replicas=live.replicas if replicas is None else replicas,
                         version=live.version if version is None else str(version))
        with self._lock:
            self._rollouts[lane] = _Rollout(since=self.clock(), cause="manual_change", expect=edited)
        self.apps.patch_namespaced_deployment(self.groups.deployment(lane), self.namespaces[split(lane)[0]], patch,
                                              field_manager="kubectl-edit")
        return edited

    def kill_replica(self, lane: str, name: str | None = None) -> str | None:
        from kubernetes.client.exceptions import ApiException

        candidates = [v for v in self.observe(lane).replicas if v.state in ("ready", "starting")
                      and (name is None or v.name == name)]
        if not candidates:
            return None
        victim = candidates[0].name
        with self._lock:
            self._killed.add(victim)
        try:
            self.core.delete_namespaced_pod(victim, self.namespaces[split(lane)[0]], grace_period_seconds=0)
        except ApiException as exc:
            if exc.status != 404:
                raise
        return victim

    def teardown(self) -> None:
        if self._torn_down:
            return
        self._torn_down = True
        for informer in self._informers:
            informer.stop()
        for step in self.on_teardown:
            step()

    def credential(self) -> str:
        return "a kubeconfig for a ServiceAccount whose Role allows deployments and services in its lane's namespace"

    # --- events from the API --------------------------------------------------------------------------
    def _on_pod(self, kind: str, pod: Any) -> None:
        lane = self.lanes.get(pod.metadata.namespace)
        if lane is None:
            return
        lane = self.groups.of_labels(lane, pod.metadata.labels)   # a progressive lane's group
        name, uid = pod.metadata.name, pod.metadata.uid
        version = (pod.metadata.labels or {}).get(VERSION_LABEL, "?")
        now = self.clock()
        statuses = pod.status.container_statuses or []
        restarts = statuses[0].restart_count if statuses else 0
        events: list[tuple[str, dict[str, Any]]] = []
        with self._lock:
            seen = self._seen.get(uid)
            if seen is None:
                if kind == "DELETED":
                    return
                seen = self._seen[uid] = _Seen(lane, version, now)
                events.append(("replica_started", {"replica": name, "version": version}))
            if kind == "DELETED":
                self._seen.pop(uid, None)
                reason = "died" if name in self._killed else self._why_stopped(lane, version)
                self._killed.discard(name)
                events.append(("replica_stopped", {"replica": name, "version": version, "reason": reason}))
            else:
                if restarts > seen.restarts:
                    seen.restarts = restarts
                    last = statuses[0].last_state.terminated if statuses[0].last_state else None
                    crashed = not seen.was_ready
                    events.append(("replica_stopped", {
                        "replica": name, "version": version, "reason": "crashed" if crashed else "died",
                        **({"crashes": restarts} if crashed else {}),
                        **({"last_words": last.message} if last is not None and last.message else {})}))
                    events.append(("replica_started", {"replica": name, "version": version}))
                    seen.first, seen.ready = now, False
                ready = pod_ready(pod) and pod.metadata.deletion_timestamp is None
                if ready and not seen.ready:
                    events.append(("replica_ready", {"replica": name, "version": version,
                                                     "startup": round(now - seen.first, 3)}))
                    seen.was_ready = True
                seen.ready = ready
                if pod.metadata.deletion_timestamp is not None and not seen.terminating:
                    seen.terminating = True
                    events.append(("replica_terminating", {"replica": name, "version": version,
                                                           "reason": self._why_stopped(lane, version)}))
        for kind_, fields in events:
            self.emit(kind_, lane, **fields)
        self._check_rollout(lane)

    def _on_replicaset(self, kind: str, rs: Any) -> None:
        """The Deployment controller's steps: each change of a ReplicaSet's spec.replicas."""
        lane = self.lanes.get(rs.metadata.namespace)
        if lane is None or kind == "DELETED":
            return
        labels = (rs.spec.template.metadata.labels or {}) if rs.spec.template.metadata else {}
        lane = self.groups.of_labels(lane, labels)
        replicas = rs.spec.replicas or 0
        with self._lock:
            previous = self._scales.get(rs.metadata.uid)
            self._scales[rs.metadata.uid] = replicas
        if previous != replicas and not (previous is None and replicas == 0):
            self.emit("replicaset_scaled", lane, replicaset=rs.metadata.name, version=labels.get(VERSION_LABEL),
                      previous=previous, replicas=replicas)

    def _why_stopped(self, lane: str, version: str) -> str:
        rollout = self._rollouts.get(lane)
        if rollout is not None and rollout.cause:
            return rollout.cause
        live = self.live_spec(lane)
        return "rollout" if live is not None and live.version != version else "scale_down"

    def _on_deployment(self, kind: str, obj: Any) -> None:
        lane = self.lanes.get(obj.metadata.namespace)
        if lane is None or kind == "DELETED":
            return
        if self.declared is not None:   # a lane whose target is what its delivery applied by itself (Flux)
            self.declared.notice(lane, obj.metadata.name)
        lane = self.groups.of_labels(lane, {NAME_LABEL: obj.metadata.name})
        status = obj.status
        current = status is not None and (status.observed_generation or 0) >= (obj.metadata.generation or 0)
        for condition in (status.conditions or []) if current else []:   # not a verdict on an older spec
            if condition.type == "Progressing" and condition.status == "False" \
                    and condition.reason == "ProgressDeadlineExceeded":
                self._fail(lane, condition.message or "")
        self._check_rollout(lane)

    def _fail(self, lane: str, message: str) -> None:
        with self._lock:
            rollout = self._rollouts.get(lane)
            if rollout is None or rollout.failed or rollout.done:
                return
            rollout.failed = True
        spec = self.live_spec(lane)
        live = self.observe(lane, spec)
        crashing = [v for v in live.replicas if spec and v.version == spec.version and v.state == "starting"]
        self.emit("rollout_failed", lane, version=spec.version if spec else None,
                  revision=spec.revision if spec else None, reason="ProgressDeadlineExceeded",
                  detail="CrashLoopBackOff" if self._crashing(lane) else "NotReady",
                  message=f"{message} ({len(crashing)} of v{spec.version if spec else '?'} not ready)")

    def _crashing(self, lane: str) -> bool:
        with self._lock:
            return any(s.lane == lane and s.restarts and not s.was_ready for s in self._seen.values())

    def _check_rollout(self, lane: str) -> None:
        spec = self.live_spec(lane)
        if spec is None:
            return
        live = self.observe(lane, spec)
        with self._lock:
            rollout = self._rollouts.get(lane)
            if rollout is None or rollout.done or rollout.failed or not live.complete:
                return
            if rollout.expect is not None and rollout.expect.diff(spec):
                return
            rollout.done = True
            duration = self.clock() - rollout.since
        self.emit("rollout_done", lane, version=spec.version, revision=spec.revision, duration=round(duration, 3))

