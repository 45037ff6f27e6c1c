"""A progressive lane on Kubernetes: Flagger's two Deployments in the lane's namespace.

The rollout controller (strategies/controller.py) keeps two replica groups per progressive lane: the
primary (named as the lane) and the candidate (`<lane>.canary`). Here they are, as Flagger names them:

- `model-server` is the Deployment the delivery declares (the env repo's manifest, applied with the
  delivery's own credential) and the **candidate** group, Flagger's canary: the rollout controller scales
  it (`spec.replicas` is the controller's field, as an HPA's would be: the delivery's apply leaves it out)
  and labels its pods `mlopslab.io/group: canary`; between releases it runs no pod.
- `model-server-primary` is the **primary** group, the controller's own Deployment: the stable version
  at full size, its selector and pods named `app.kubernetes.io/name: model-server-primary` (Flagger's
  `-primary`), so neither Deployment's selector reaches the other's pods.

The controller applies both as its own ServiceAccount (`rollout-controller`, bound to the lane's Role in
the lane's namespace, like Flagger's service account) with field manager `mlopslab-rollouts`. A lane
without a progressive strategy has the one Deployment, `model-server`, as before. The declared Service
`model-server` selects the canary's pods only; the lab routes to pods, not through Services (see
environment.py), so no `-primary` Service is made.
"""

from __future__ import annotations

import copy
from typing import Any

from mlopslab.envs.base import ReplicaView

VERSION_LABEL = "mlopslab.io/model-version"
GROUP_LABEL = "mlopslab.io/group"
NAME_LABEL = "app.kubernetes.io/name"
CANDIDATE = "canary"
PRIMARY = "primary"
PRIMARY_SUFFIX = "-primary"
CONTROLLER_ACCOUNT = "rollout-controller"
CONTROLLER_MANAGER = "mlopslab-rollouts"


def split(name: str) -> tuple[str, str]:
    """`lane` -> (lane, ""); `lane.canary` -> (lane, "canary")."""
    lane, _, group = name.partition(".")
    return lane, group


def pod_ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


def _port(pod: Any) -> int:
    for port in pod.spec.containers[0].ports or []:
        if port.name == "http":
            return int(port.container_port)
    return 8080


class Groups:
    """Which Deployment and which pods a replica group is, per lane."""

    def __init__(self, app: str) -> None:
        self.app = app
        self.progressive: set[str] = set()    # lanes whose declared Deployment is a canary beside a primary

    def deployment(self, name: str) -> str:
        lane, group = split(name)
        return self.app + PRIMARY_SUFFIX if lane in self.progressive and not group else self.app

    def of_labels(self, lane: str, labels: dict[str, str] | None) -> str:
        """The group (`lane` or `lane.canary`) a pod or ReplicaSet with these labels belongs to."""
        if lane not in self.progressive:
            return lane
        return lane if (labels or {}).get(NAME_LABEL) == self.app + PRIMARY_SUFFIX else f"{lane}.{CANDIDATE}"

    def views(self, pods: list[Any], namespace: str, name: str) -> tuple[ReplicaView, ...]:
        """The group's pods (a plain lane's: all of its namespace's), by name."""
        views = []
        for pod in pods:
            if pod.metadata.namespace != namespace or self.of_labels(split(name)[0], pod.metadata.labels) != name:
                continue
            state = "terminating" if pod.metadata.deletion_timestamp else "ready" if pod_ready(pod) else "starting"
            url = f"http://{pod.status.pod_ip}:{_port(pod)}" if pod.status.pod_ip else ""
            views.append(ReplicaView(pod.metadata.name, (pod.metadata.labels or {}).get(VERSION_LABEL, "?"),
                                     state, url))
        return tuple(sorted(views, key=lambda v: v.name))

    def documents(self, name: str, deployment: dict[str, Any], service: dict[str, Any],
                  declared: bool) -> list[dict[str, Any]]:
        """What to apply for group `name`, from the lane's rendered Deployment and Service. The delivery's
        declared apply: both, without `spec.replicas` for a progressive lane. The controller's: the group's
        Deployment only (the primary renamed and relabelled; the candidate with its group label)."""
        lane, group = split(name)
        if declared:
            if lane in self.progressive:
                deployment = copy.deepcopy(deployment)
                deployment["spec"].pop("replicas", None)
            return [deployment, service]
        if lane not in self.progressive:
            return [deployment, service]
        doc = copy.deepcopy(deployment)
        template = doc["spec"]["template"]["metadata"].setdefault("labels", {})
        if group:
            template[GROUP_LABEL] = CANDIDATE
            return [doc]
        primary = self.app + PRIMARY_SUFFIX
        doc["metadata"]["name"] = primary
        doc["metadata"].setdefault("labels", {}).update({NAME_LABEL: primary, GROUP_LABEL: PRIMARY})
        doc["spec"]["selector"] = {"matchLabels": {NAME_LABEL: primary}}
        template.update({NAME_LABEL: primary, GROUP_LABEL: PRIMARY})
        return [doc]

    @staticmethod
    def owns_replicas(obj: Any) -> bool:
        """Whether some field manager set the Deployment's spec.replicas (else the API defaulted it)."""
        return any("f:replicas" in ((entry.fields_v1 or {}).get("f:spec") or {})
                   for entry in obj.metadata.managed_fields or [])

    def scale_to_zero(self, namespace: str) -> dict[str, Any]:
        """The controller's first word on a declared Deployment it has not scaled yet (Flagger's
        initialisation): no canary pod until a release."""
        return {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": self.app, "namespace": namespace}, "spec": {"replicas": 0}}
