"""A real single-node Kubernetes control plane, started by the lab for one run and torn down after it.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler run as child processes from one
upstream release (see binaries.py). Everything listens on 127.0.0.1 on free ports, speaks TLS with the
run's own certificates (pki.py), authorizes with Node and RBAC, and keeps its data under
`<run>/k8s/`. `<run>/kubeconfig` is an admin kubeconfig a person may use with kubectl during the run.

No process outlives the lab: every child is started by one keeper thread with PR_SET_PDEATHSIG, so the
kernel kills it when that thread ends, even when the lab is SIGKILLed; `stop()` ends them in order
(SIGTERM, then SIGKILL after a short grace) and then lets the keeper go. Other programs that live and
die with the cluster (Flux's controllers, gitops/flux.py) are started by the same keeper through
`spawn()`, and stopped first, as the API's clients they are.

The controller-manager runs only the controllers a Deployment needs (deployment, replicaset, namespace,
garbage collector, serviceaccount and its tokens). The EndpointSlice controller is left out on purpose:
the lab's pods have loopback addresses, which the API refuses in EndpointSlices and Endpoints, so the
environment selects traffic targets from the pods' Ready condition instead (see environment.py).
"""

from __future__ import annotations

import ctypes
import os
import queue
import random
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from mlopslab.envs.kubernetes import pki
from mlopslab.envs.kubernetes.binaries import Binaries

NODE = "mlopslab-node"
CONTROLLERS = ("deployment-controller,replicaset-controller,namespace-controller,garbage-collector-controller,"
               "serviceaccount-controller,serviceaccount-token-controller,node-lifecycle-controller")


class ControlPlaneError(RuntimeError):
    pass


def free_port() -> int:
    """A port free on 127.0.0.1 now, for a process started later: taken below the kernel's ephemeral range,
    which any outgoing connection (the load generator's pool, a probe) may take meanwhile otherwise."""
    try:
        ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral = 32768
    for _ in range(64):
        port = random.randrange(max(1024, ephemeral - 12000), ephemeral)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:  # runs in the child between fork and exec
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass(frozen=True)
class Access:
    """How to reach the API: its URL, the CA that signed it, and a kubeconfig per identity."""

    server: str
    ca: Path
    admin: Path       # system:masters: the lab itself and a person with kubectl
    node: Path        # system:node:<NODE>: the lab's virtual kubelet
    admin_cert: pki.Pair


class ControlPlane:
    def __init__(self, binaries: Binaries, directory: Path, kubeconfig: Path) -> None:
        self.bin = binaries
        self.dir = directory
        self.kubeconfig = kubeconfig
        self.procs: dict[str, subprocess.Popen] = {}
        self.access: Access | None = None
        self.started_in: float | None = None
        self._keeper: threading.Thread | None = None
        self._requests: queue.Queue = queue.Queue()
        self._error: BaseException | None = None

    # --- set-up -----------------------------------------------------------------------------------
    def _files(self) -> dict[str, list[str]]:
        pkidir = self.dir / "pki"
        ca = pki.Authority(pkidir)
        local = ("127.0.0.1", "localhost")
        etcd_server = ca.issue("etcd-server", "etcd", server=True, client=True, hosts=local)
        etcd_client = ca.issue("apiserver-etcd-client", "kube-apiserver-etcd-client", client=True)
        api = ca.issue("apiserver", "kube-apiserver", server=True,
                       hosts=local + ("10.96.0.1", "kubernetes", "kubernetes.default", "kubernetes.default.svc"))
        admin = ca.issue("admin", "mlopslab-admin", org="system:masters", client=True)
        kcm = ca.issue("controller-manager", "system:kube-controller-manager", client=True)
        sched = ca.issue("scheduler", "system:kube-scheduler", client=True)
        node = ca.issue("node", f"system:node:{NODE}", org="system:nodes", client=True)
        sa = pki.service_account_keys(pkidir)
        ports = {name: free_port() for name in ("etcd", "peer", "api", "kcm", "sched")}
        server = f"https://127.0.0.1:{ports['api']}"
        configs = self.dir / "kubeconfigs"
        configs.mkdir(parents=True, exist_ok=True)
        kcm_cfg = pki.kubeconfig(configs / "controller-manager", server, ca.cert, user="kcm", cert=kcm)
        sched_cfg = pki.kubeconfig(configs / "scheduler", server, ca.cert, user="scheduler", cert=sched)
        node_cfg = pki.kubeconfig(configs / "node", server, ca.cert, user="node", cert=node)
        pki.kubeconfig(self.kubeconfig, server, ca.cert, user="admin", cert=admin)
        self.access = Access(server, ca.cert, self.kubeconfig, node_cfg, admin)
        self._ports = ports
        etcd_url = f"https://127.0.0.1:{ports['etcd']}"
        peer_url = f"http://127.0.0.1:{ports['peer']}"
        return {
            "etcd": [self.bin["etcd"], "--name", "mlopslab", "--data-dir", str(self.dir / "etcd"),
                     "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
                     "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
                     "--initial-cluster", f"mlopslab={peer_url}", "--listen-metrics-urls", "",
                     "--cert-file", str(etcd_server.cert), "--key-file", str(etcd_server.key),
                     "--client-cert-auth", "--trusted-ca-file", str(ca.cert),
                     "--unsafe-no-fsync", "--log-level", "warn"],
            "kube-apiserver": [
                self.bin["kube-apiserver"], "--etcd-servers", etcd_url, "--etcd-cafile", str(ca.cert),
                "--etcd-certfile", str(etcd_client.cert), "--etcd-keyfile", str(etcd_client.key),
                "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
                "--secure-port", str(ports["api"]), "--cert-dir", str(self.dir / "apiserver"),
                "--tls-cert-file", str(api.cert), "--tls-private-key-file", str(api.key),
                "--client-ca-file", str(ca.cert), "--authorization-mode", "Node,RBAC",
                "--enable-admission-plugins", "NodeRestriction", "--allow-privileged=false",
                "--service-account-issuer", "https://kubernetes.default.svc",
                "--service-account-key-file", str(sa.cert), "--service-account-signing-key-file", str(sa.key),
                "--service-cluster-ip-range", "10.96.0.0/24", "--endpoint-reconciler-type", "none",
                "--enable-priority-and-fairness=false", "--profiling=false", "--v", "1"],
            "kube-controller-manager": [
                self.bin["kube-controller-manager"], "--kubeconfig", str(kcm_cfg),
                "--authentication-kubeconfig", str(kcm_cfg), "--authorization-kubeconfig", str(kcm_cfg),
                "--bind-address", "127.0.0.1", "--secure-port", str(ports["kcm"]),
                "--cert-dir", str(self.dir / "controller-manager"), "--leader-elect=false",
                "--controllers", CONTROLLERS, "--use-service-account-credentials=true",
                "--service-account-private-key-file", str(sa.key), "--root-ca-file", str(ca.cert),
                "--profiling=false", "--v", "1"],
            "kube-scheduler": [
                self.bin["kube-scheduler"], "--kubeconfig", str(sched_cfg),
                "--authentication-kubeconfig", str(sched_cfg), "--authorization-kubeconfig", str(sched_cfg),
                "--bind-address", "127.0.0.1", "--secure-port", str(ports["sched"]),
                "--cert-dir", str(self.dir / "scheduler"), "--leader-elect=false", "--profiling=false",
                "--v", "1"],
        }

    # --- processes --------------------------------------------------------------------------------
    def _keep(self) -> None:
        """The keeper thread: spawns each process it is asked for, then holds on until `stop` releases
        it (its end is what PR_SET_PDEATHSIG watches)."""
        logs = self.dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        while (request := self._requests.get()) is not None:
            name, argv, env, done = request
            try:
                with open(logs / f"{name}.log", "ab") as log:
                    self.procs[name] = subprocess.Popen(
                        argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                        preexec_fn=_die_with_parent, cwd=self.dir, env=env)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                self._error = exc
            done.set()

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        done = threading.Event()
        self._requests.put((name, argv, env, done))
        done.wait(30)
        if self._error is not None or name not in self.procs:
            raise ControlPlaneError(f"could not start {name}: {self._error}")

    def start(self, timeout: float = 60.0) -> Access:
        """etcd, then the API server; its clients once it is ready (they read its configuration at start)."""
        began = time.monotonic()
        deadline = began + timeout
        self.dir.mkdir(parents=True, exist_ok=True)
        argv = self._files()
        self._keeper = threading.Thread(target=self._keep, name="k8s-keeper", daemon=True)
        self._keeper.start()
        try:
            self._spawn("etcd", argv["etcd"])
            self._wait_port(self._ports["etcd"], "etcd", 15)
            self._spawn("kube-apiserver", argv["kube-apiserver"])
            self.wait_healthy("kube-apiserver", f"{self.access.server}/readyz", deadline)
            self._spawn("kube-controller-manager", argv["kube-controller-manager"])
            self._spawn("kube-scheduler", argv["kube-scheduler"])
            # they serve /healthz with a self-signed certificate of their own
            self.wait_healthy("kube-controller-manager", f"https://127.0.0.1:{self._ports['kcm']}/healthz", deadline,
                              tls="self-signed")
            self.wait_healthy("kube-scheduler", f"https://127.0.0.1:{self._ports['sched']}/healthz", deadline,
                              tls="self-signed")
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - began
        return self.access

    def _wait_port(self, port: int, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive(name)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise ControlPlaneError(f"{name} did not listen on 127.0.0.1:{port} within {timeout:g} s")

    def _check_alive(self, name: str) -> None:
        proc = self.procs.get(name)
        if proc is not None and proc.poll() is not None:
            log = self.dir / "logs" / f"{name}.log"
            tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
            raise ControlPlaneError(f"{name} exited with {proc.returncode}: {' | '.join(tail)[:600]}")

    def wait_healthy(self, name: str, url: str, deadline: float, *, tls: str = "verify") -> None:
        """Waits until GET `url` answers 200; raises ControlPlaneError, with the tail of its log, as soon as
        a process of the cluster (its own or one `spawn`ed) has exited, or once `deadline` (monotonic) is
        past. `tls`: "verify" (the API server: the run's CA, as the admin), "self-signed" (a component's
        own certificate, not verified) or "none" (plain HTTP, like Flux's controllers' /readyz)."""
        context = None
        if tls != "none":
            context = ssl.create_default_context(cafile=str(self.access.ca))
            context.load_cert_chain(str(self.access.admin_cert.cert), str(self.access.admin_cert.key))
            if tls == "self-signed":
                context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        while True:
            for proc_name in self.procs:
                self._check_alive(proc_name)
            try:
                with urllib.request.urlopen(url, context=context, timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"{name} not healthy at {url} in time (see {self.dir / 'logs'})")
            time.sleep(0.1)

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        """Starts a program that lives and dies with the cluster (killed with the lab, stopped before the
        API server); its output goes to `<dir>/logs/<name>.log`."""
        if self._keeper is None or not self._keeper.is_alive():
            raise ControlPlaneError(f"cannot start {name}: the control plane is not running")
        self._spawn(name, argv, env)
        return self.procs[name]

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs.values() if p.poll() is None]

    def stop(self, grace: float = 3.0) -> None:
        """API clients first (scheduler, controller-manager), then the API server, then etcd."""
        own = ("kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd")
        others = tuple(name for name in self.procs if name not in own)   # spawn()'s: clients of the API too
        for group in (others, ("kube-scheduler", "kube-controller-manager"), ("kube-apiserver",), ("etcd",)):
            procs = [self.procs[n] for n in group if n in self.procs and self.procs[n].poll() is None]
            for proc in procs:
                os.kill(proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            for proc in procs:
                try:
                    proc.wait(timeout=max(0.05, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        self._requests.put(None)
        if self._keeper is not None:
            self._keeper.join(timeout=5)
