"""The lab's own node: a virtual kubelet in Python. There is no kubelet here (no container runtime for
it), so the lab registers a Node of its own and runs the pods the scheduler binds to it.

What it does, as a kubelet does it:
- creates its Node (capacity, Ready condition, address 127.0.0.1) and renews its Lease in
  kube-node-lease every 10 s;
- watches the pods bound to it (spec.nodeName) and runs each pod's container through an existing
  `ReplicaDriver` (a model-server process, or a container on the Docker engine), listening on the pod's
  own loopback address (127.x.y.z) and its containerPort;
- decides the pod's Ready condition by its readinessProbe (httpGet path/port, initialDelaySeconds,
  periodSeconds) and writes pod status through the status subresource, with the node's credentials
  (system:node:<name>, which the Node authorizer and NodeRestriction admission confine to its own pods);
- restarts a container that exits, after a back-off that doubles (restartCount, CrashLoopBackOff and the
  last termination show in `kubectl get pods`);
- on deletion: not ready at once, the preStop sleep if the pod has one, SIGTERM, up to
  terminationGracePeriodSeconds, SIGKILL; then removes the pod object (delete with grace 0).

The restart back-off starts at 0.5 s and doubles up to 8 s, the lab controller's values, rather than the
kubelet's 10 s to 5 min, so a crash-looping version behaves alike in every environment of a minutes-long run.
"""

from __future__ import annotations

import datetime
import ipaddress
import random
import re
import socket
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlopslab.envs.base import DeploymentSpec, ReplicaDriver

LEASE_SECONDS = 40
RENEW = 10.0
IMAGE = re.compile(r"^mlopslab/(?P<model>[A-Za-z0-9._-]+):v(?P<version>[A-Za-z0-9._-]+)$")


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class AddressPool:
    """Pod addresses: one loopback /16 per node (127.N.0.0/16, N chosen at random and checked free), so
    every pod listens on its own address and its declared containerPort, and all traffic stays on lo."""

    def __init__(self, rng: random.Random | None = None) -> None:
        rng = rng or random.Random()
        self.network = ipaddress.ip_network(f"127.{rng.randrange(64, 250)}.0.0/16")
        self._free = iter(self.network.hosts())
        self._lock = threading.Lock()

    def take(self, port: int) -> str:
        with self._lock:
            for address in self._free:
                if str(address).endswith(".0.1"):
                    continue
                with socket.socket() as probe:
                    try:
                        probe.bind((str(address), port))
                    except OSError:
                        continue
                return str(address)
        raise RuntimeError(f"no free pod address left in {self.network}")


@dataclass
class Probe:
    path: str = "/ping"
    port: int = 8080
    initial_delay: float = 0.0
    period: float = 10.0


@dataclass
class PodRun:
    """What the node knows of one pod it runs."""

    namespace: str
    name: str
    uid: str
    spec: DeploymentSpec
    container: str
    image: str
    ip: str
    port: int
    probe: Probe | None
    grace: float
    pre_stop: float
    handle: Any = None
    started: float = 0.0
    started_at: str = ""
    ready: bool = False
    next_probe: float = 0.0
    restarts: int = 0
    crashes_in_row: int = 0
    restart_at: float | None = None
    last_exit: dict[str, Any] = field(default_factory=dict)
    terminating: bool = False
    dirty: bool = True


def replica_spec(pod: Any) -> tuple[DeploymentSpec, Any]:
    """The model and version a pod's (first) container serves, read from its image and args."""
    container = pod.spec.containers[0]
    match = IMAGE.match(container.image or "")
    if not match:
        raise ValueError(f"image {container.image!r} is not mlopslab/<model>:v<version>")
    args = list(container.args or [])
    warmup = float(args[args.index("--warmup") + 1]) if "--warmup" in args else 0.0
    latency = float(args[args.index("--latency-ms") + 1]) if "--latency-ms" in args else 0.0   # a slowed release
    return DeploymentSpec(lane=pod.metadata.namespace, model=match["model"], version=match["version"],
                          warmup=warmup, latency_ms=latency), container


def _port(container: Any, ref: Any, default: int) -> int:
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
        return int(ref)
    for port in container.ports or []:
        if port.name == ref:
            return int(port.container_port)
    return default


class VirtualKubelet:
    backoff = 0.5
    backoff_cap = 8.0
    tick = 0.05

    def __init__(self, api: Any, driver: ReplicaDriver, *, name: str, report: Callable[[str], None],
                 pool: AddressPool | None = None) -> None:
        from kubernetes import client

        self.api = api
        self.core = client.CoreV1Api(api)
        self.coordination = client.CoordinationV1Api(api)
        self.driver = driver
        self.name = name
        self.report = report
        self.pool = pool or AddressPool()
        self.pods: dict[str, PodRun] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._informer: Any = None

    # --- node ---------------------------------------------------------------------------------------
    def register(self) -> None:
        from kubernetes.client.exceptions import ApiException

        body = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": self.name, "labels": {"kubernetes.io/hostname": self.name,
                                                           "kubernetes.io/os": "linux",
                                                           "type": "mlopslab-virtual-kubelet"}},
                "spec": {}}
        try:
            self.core.create_node(body)
        except ApiException as exc:
            if exc.status != 409:
                raise
        self._node_status()
        self._renew()

    def _node_status(self) -> None:
        stamp = now_rfc3339()
        capacity = {"cpu": "8", "memory": "16Gi", "pods": "110", "ephemeral-storage": "50Gi"}
        conditions = [{"type": t, "status": "False", "reason": r, "lastHeartbeatTime": stamp,
                       "lastTransitionTime": stamp} for t, r in
                      (("MemoryPressure", "KubeletHasSufficientMemory"), ("DiskPressure", "KubeletHasNoDiskPressure"),
                       ("PIDPressure", "KubeletHasSufficientPID"))]
        conditions.append({"type": "Ready", "status": "True", "reason": "KubeletReady", "lastHeartbeatTime": stamp,
                           "lastTransitionTime": stamp, "message": "mlopslab virtual kubelet is posting ready status"})
        self.core.patch_node_status(self.name, {"status": {
            "capacity": capacity, "allocatable": capacity, "conditions": conditions,
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": self.name}],
            "nodeInfo": {"kubeletVersion": "mlopslab-virtual", "kubeProxyVersion": "", "operatingSystem": "linux",
                         "architecture": "amd64", "containerRuntimeVersion": "mlopslab://replica-driver",
                         "osImage": "", "kernelVersion": "", "machineID": "", "systemUUID": "", "bootID": ""}}})

    def _renew(self) -> None:
        from kubernetes.client.exceptions import ApiException

        spec = {"holderIdentity": self.name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": now_micro()}
        try:
            self.coordination.patch_namespaced_lease(self.name, "kube-node-lease", {"spec": spec})
        except ApiException as exc:
            if exc.status != 404:
                raise
            self.coordination.create_namespaced_lease("kube-node-lease", {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": "kube-node-lease"}, "spec": spec})

    def start(self) -> None:
        from mlopslab.envs.kubernetes.informer import Informer

        self.register()
        self._informer = Informer(self.core.list_pod_for_all_namespaces, self._on_pod, name="node-pods",
                                  on_error=self.report, field_selector=f"spec.nodeName={self.name}").start()
        for target, label in ((self._lease_loop, "lease"), (self._work_loop, "pods")):
            thread = threading.Thread(target=target, name=f"kubelet-{label}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _lease_loop(self) -> None:
        while not self._stop.wait(RENEW):
            try:
                self._renew()
            except Exception as exc:
                self.report(f"lease renewal failed: {exc.__class__.__name__}")

    # --- pods ---------------------------------------------------------------------------------------
    def _on_pod(self, kind: str, pod: Any) -> None:
        uid = pod.metadata.uid
        with self._lock:
            run = self.pods.get(uid)
        if kind == "DELETED":
            if run is not None:   # removed without us (force delete): the container goes now
                self._terminate(run, grace=0.0, remove=False)
            return
        if pod.metadata.deletion_timestamp is not None:
            if run is not None and not run.terminating:
                self._terminate(run, grace=float(pod.metadata.deletion_grace_period_seconds or run.grace),
                                remove=True)
            elif run is None:
                self._remove(pod.metadata.namespace, pod.metadata.name, uid)
            return
        if run is None and pod.status.phase in (None, "Pending"):
            self._admit(pod)

    def _admit(self, pod: Any) -> None:
        spec, container = replica_spec(pod)
        probe = None
        if container.readiness_probe is not None and container.readiness_probe.http_get is not None:
            rp, get = container.readiness_probe, container.readiness_probe.http_get
            probe = Probe(get.path or "/", _port(container, get.port, 8080), float(rp.initial_delay_seconds or 0),
                          float(rp.period_seconds or 10))
        port = _port(container, "http", int(container.ports[0].container_port) if container.ports else 8080)
        lifecycle = container.lifecycle
        pre_stop = 0.0
        if lifecycle is not None and lifecycle.pre_stop is not None and getattr(lifecycle.pre_stop, "sleep", None):
            pre_stop = float(lifecycle.pre_stop.sleep.seconds or 0)
        grace = pod.spec.termination_grace_period_seconds
        run = PodRun(pod.metadata.namespace, pod.metadata.name, pod.metadata.uid, spec, container.name,
                     container.image, self.pool.take(port), port, probe, 30.0 if grace is None else float(grace),
                     pre_stop)
        self._run_container(run)
        with self._lock:   # only now: the work loop checks runs that have a container
            self.pods[run.uid] = run

    def _run_container(self, run: PodRun) -> None:
        run.handle, _ = self.driver.start(run.spec, f"{run.namespace}-{run.name}", bind=(run.ip, run.port))
        run.started = time.monotonic()
        run.started_at = now_rfc3339()
        run.ready, run.restart_at, run.dirty = False, None, True
        run.next_probe = run.started + (run.probe.initial_delay if run.probe else 0.0)
        if run.probe is None:   # no readinessProbe: ready once running, as a kubelet decides
            run.ready = True

    def _work_loop(self) -> None:
        while not self._stop.wait(self.tick):
            with self._lock:
                runs = [r for r in self.pods.values() if not r.terminating]
            for run in runs:
                try:
                    self._check(run)
                except Exception as exc:
                    self.report(f"pod {run.namespace}/{run.name}: {exc.__class__.__name__}: {exc}")

    def _check(self, run: PodRun) -> None:
        now = time.monotonic()
        if run.restart_at is not None:
            if now >= run.restart_at:
                run.restarts += 1
                self._run_container(run)
        elif not self.driver.alive(run.handle):
            words = self.driver.last_words(run.handle)
            code = getattr(run.handle, "returncode", None)
            run.last_exit = {"terminated": {"exitCode": 1 if code is None else abs(int(code)),
                                            "reason": "Error", "message": words[:300],
                                            "startedAt": run.started_at, "finishedAt": now_rfc3339()}}
            run.crashes_in_row = run.crashes_in_row + 1 if not run.ready else 1
            delay = min(self.backoff_cap, self.backoff * 2.0 ** (run.crashes_in_row - 1))
            run.restart_at, run.ready, run.dirty = now + delay, False, True
            self.driver.stop(run.handle, 0.0)
        elif run.probe is not None and now >= run.next_probe:
            run.next_probe = now + run.probe.period
            ready = self._probe(run)
            if ready != run.ready:
                run.ready, run.dirty = ready, True
                if ready:
                    run.crashes_in_row = 0
        if run.dirty:
            run.dirty = False
            self._write_status(run)

    def _probe(self, run: PodRun) -> bool:
        url = f"http://{run.ip}:{run.probe.port}{run.probe.path}"
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:
                return 200 <= response.status < 400
        except Exception:
            return False

    def _write_status(self, run: PodRun, *, terminated: bool = False) -> None:
        stamp = now_rfc3339()
        ready = "True" if run.ready and not terminated else "False"
        if run.restart_at is not None:
            state = {"waiting": {"reason": "CrashLoopBackOff",
                                 "message": f"back-off restarting failed container {run.container}"}}
        elif terminated:
            state = {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": run.started_at,
                                    "finishedAt": stamp}}
        else:
            state = {"running": {"startedAt": run.started_at}}
        status = {
            "phase": "Running", "hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": run.ip, "podIPs": [{"ip": run.ip}], "startTime": run.started_at,
            "conditions": [{"type": "PodScheduled", "status": "True"},
                           {"type": "Initialized", "status": "True"},
                           {"type": "ContainersReady", "status": ready, "lastTransitionTime": stamp},
                           {"type": "Ready", "status": ready, "lastTransitionTime": stamp}],
            "containerStatuses": [{"name": run.container, "image": run.image, "imageID": run.image,
                                   "containerID": (f"docker://{run.handle}" if isinstance(run.handle, str) else
                                                   f"mlopslab://{getattr(run.handle, 'pid', run.uid)}"),
                                   "ready": ready == "True", "started": run.restart_at is None,
                                   "restartCount": run.restarts, "state": state,
                                   **({"lastState": run.last_exit} if run.last_exit else {})}],
        }
        self.core.patch_namespaced_pod_status(run.name, run.namespace, {"status": status})

    def _terminate(self, run: PodRun, *, grace: float, remove: bool) -> None:
        with self._lock:
            if run.terminating:
                return
            run.terminating = True

        def stop() -> None:
            try:
                if remove:
                    run.ready = False
                    self._write_status(run)
                    if run.pre_stop and grace > 0:
                        self._stop.wait(min(run.pre_stop, grace))
                self.driver.stop(run.handle, max(0.0, grace - run.pre_stop) if grace > 0 else 0.0)
                if remove:
                    self._remove(run.namespace, run.name, run.uid)
            except Exception as exc:
                self.report(f"pod {run.namespace}/{run.name}: termination: {exc.__class__.__name__}: {exc}")
            finally:
                with self._lock:
                    self.pods.pop(run.uid, None)

        threading.Thread(target=stop, name=f"kill-{run.name}", daemon=True).start()

    def _remove(self, namespace: str, name: str, uid: str) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            # in the body: the API server ignores query parameters when a delete has a body
            self.core.delete_namespaced_pod(name, namespace, body={"gracePeriodSeconds": 0,
                                                                   "preconditions": {"uid": uid}})
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise

    def stop(self) -> None:
        """Stops watching and kills every container at once (the cluster is going away with the run)."""
        self._stop.set()
        if self._informer is not None:
            self._informer.stop()
        with self._lock:
            runs = list(self.pods.values())
        threads = [threading.Thread(target=self.driver.stop, args=(r.handle, 1.0), daemon=True)
                   for r in runs if r.handle is not None]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        self.driver.close()
