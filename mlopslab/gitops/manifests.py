"""Kubernetes-style manifests for a lane: render a DeploymentSpec to YAML files and read them back.

Each lane is a kustomize directory (`kubectl kustomize lanes/<lane>` renders it), so the same env repo
could be handed to Argo CD or Flux. Values Kubernetes cannot express (sub-second readiness period, the
model server's warm-up) travel as `mlopslab.io/` annotations and container args. A lane with a progressive
strategy (canary, blue-green, shadow, A/B) carries it as `mlopslab.io/strategy` (its type) and
`mlopslab.io/strategy-spec` (every parameter and gate, JSON), the way Flagger's Canary object sits beside
the Deployment it drives; a release slowed on purpose shows `--latency-ms` in the container's args.

Such a lane's Deployment carries no `spec.replicas`: the rollout controller owns that field (Flagger's
canary is scaled by Flagger, as by an HPA), so a delivery that applies the file as it is (Flux) does not
scale the canary back up at every interval. How many replicas the lane runs is `mlopslab.io/replicas`,
which the controller gives the primary.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import yaml

from mlopslab.envs.base import DeploymentSpec, Strategy

APP = "model-server"
PORT = 8080
ANNOTATION = "mlopslab.io/"


class ManifestError(ValueError):
    pass


def image_for(model: str, version: str) -> str:
    return f"mlopslab/{model}:v{version}"


def render_lane(spec: DeploymentSpec) -> dict[str, str]:
    """{filename: YAML text} for one lane's directory."""
    labels = {"app.kubernetes.io/name": APP, "app.kubernetes.io/part-of": "mlopslab", "mlopslab.io/lane": spec.lane}
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": spec.lane}}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": APP, "namespace": spec.lane, "labels": labels,
                     "annotations": {ANNOTATION + "model-uri": spec.model_uri,
                                     ANNOTATION + "readiness-period": str(spec.readiness_period),
                                     **_strategy_annotations(spec)}},
        "spec": {
            **({} if spec.progressive else {"replicas": spec.replicas}),
            "progressDeadlineSeconds": int(spec.strategy.progress_deadline),
            "strategy": ({"type": "Recreate"} if spec.strategy.type == "Recreate" else
                         {"type": "RollingUpdate",
                          "rollingUpdate": {"maxSurge": spec.strategy.max_surge,
                                            "maxUnavailable": spec.strategy.max_unavailable}}),
            "selector": {"matchLabels": {"app.kubernetes.io/name": APP}},
            "template": {
                "metadata": {"labels": {**labels, "mlopslab.io/model-version": spec.version}},
                "spec": {
                    "automountServiceAccountToken": False,   # the model server never calls the API
                    "terminationGracePeriodSeconds": 2,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
                    "containers": [{
                        "name": "server",
                        "image": image_for(spec.model, spec.version),
                        "args": ["--model-dir", "/model", "--host", "0.0.0.0", "--port", str(PORT),
                                 "--warmup", str(spec.warmup),
                                 *(["--latency-ms", str(spec.latency_ms)] if spec.latency_ms else [])],
                        "ports": [{"name": "http", "containerPort": PORT}],
                        # Kubernetes probes at whole seconds (1 at least); the lab's controller at readiness-period
                        "readinessProbe": {"httpGet": {"path": "/ping", "port": "http"},
                                           "periodSeconds": max(1, math.ceil(spec.readiness_period))},
                        # out of the Service's endpoints before SIGTERM, so no request meets a closing server
                        "lifecycle": {"preStop": {"sleep": {"seconds": 1}}},
                        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}},
                    }],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": APP, "namespace": spec.lane, "labels": labels},
        "spec": {"selector": {"app.kubernetes.io/name": APP},
                 "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }
    kustomization = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                     "resources": ["namespace.yaml", "deployment.yaml", "service.yaml"]}
    dump = lambda doc: yaml.safe_dump(doc, sort_keys=False)  # noqa: E731
    return {"kustomization.yaml": dump(kustomization), "namespace.yaml": dump(namespace),
            "deployment.yaml": dump(deployment), "service.yaml": dump(service)}


def _strategy_annotations(spec: DeploymentSpec) -> dict[str, str]:
    if not spec.progressive:
        return {}
    import json

    return {ANNOTATION + "strategy": json.loads(spec.progressive)["type"], ANNOTATION + "strategy-spec": spec.progressive,
            ANNOTATION + "replicas": str(spec.replicas)}


def parse_lane(files: dict[str, str], *, revision: str = "") -> DeploymentSpec:
    """Reads a lane's Deployment back into a DeploymentSpec; raises ManifestError naming what is wrong."""
    if "deployment.yaml" not in files:
        raise ManifestError("deployment.yaml is missing")
    try:
        doc = yaml.safe_load(files["deployment.yaml"])
    except yaml.YAMLError as exc:
        raise ManifestError(f"deployment.yaml is not YAML: {exc}") from None
    return replace(parse_deployment(doc, revision=revision), source=tuple(sorted(files.items())))


def parse_deployment(doc: Any, *, revision: str = "", lane: str | None = None) -> DeploymentSpec:
    """A Deployment object (as the env repo or the API holds it) as a DeploymentSpec. `lane` names the
    lane when the object's namespace is not the lane's name (a run on a shared cluster)."""
    try:
        if doc.get("kind", "Deployment") != "Deployment" or doc.get("apiVersion", "apps/v1") != "apps/v1":
            raise ManifestError("deployment.yaml: expected apiVersion apps/v1, kind Deployment")
        meta, spec = doc["metadata"], doc["spec"]
        uri = meta["annotations"][ANNOTATION + "model-uri"]
        if not uri.startswith("models:/") or uri.count("/") != 2:
            raise ManifestError(f"deployment.yaml: model-uri {uri!r} is not models:/NAME/VERSION")
        model, version = uri[len("models:/"):].split("/")
        kind = spec["strategy"].get("type", "RollingUpdate")
        rolling = spec["strategy"]["rollingUpdate"] if kind != "Recreate" else {"maxSurge": 0, "maxUnavailable": "100%"}
        container = spec["template"]["spec"]["containers"][0]
        args = container.get("args", [])
        warmup = float(args[args.index("--warmup") + 1]) if "--warmup" in args else 0.0
        latency = float(args[args.index("--latency-ms") + 1]) if "--latency-ms" in args else 0.0
        # live, the controller's spec.replicas; in the repo, a progressive lane's mlopslab.io/replicas
        replicas = spec["replicas"] if "replicas" in spec else _replicas(meta["annotations"])
        if not isinstance(replicas, int) or replicas < 0:
            raise ManifestError(f"deployment.yaml: spec.replicas must be a non-negative integer, got {replicas!r}")
        if container["image"] != image_for(model, version):
            raise ManifestError(f"deployment.yaml: image {container['image']!r} does not match {uri}")
        return DeploymentSpec(
            lane=lane or meta["namespace"], model=model, version=version, replicas=replicas,
            strategy=Strategy(rolling["maxSurge"], rolling["maxUnavailable"],
                              float(spec.get("progressDeadlineSeconds", 600)), type=kind),
            readiness_period=float(meta["annotations"].get(ANNOTATION + "readiness-period", 1.0)),
            warmup=warmup, revision=revision or meta["annotations"].get(ANNOTATION + "revision", ""),
            latency_ms=latency, progressive=meta["annotations"].get(ANNOTATION + "strategy-spec", ""))
    except (KeyError, TypeError, IndexError, ValueError, AttributeError) as exc:
        if isinstance(exc, ManifestError):
            raise
        raise ManifestError(f"deployment.yaml: missing or malformed field ({exc!r})") from None


def _replicas(annotations: dict[str, str]) -> Any:
    if ANNOTATION + "replicas" not in annotations:
        raise ManifestError("deployment.yaml: spec.replicas is missing (a lane with a progressive strategy gives "
                            "it as the annotation mlopslab.io/replicas instead)")
    value = annotations[ANNOTATION + "replicas"]
    return int(value) if str(value).isdigit() else value
