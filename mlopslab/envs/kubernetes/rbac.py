"""A delivery's credential on Kubernetes: a ServiceAccount in the lane's namespace, a Role `deployer`
that allows what applying the lane's manifests needs there (and nothing elsewhere), a RoleBinding, and a
kubeconfig holding a bound token (TokenRequest API) for it, written 0600 outside the env repo."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROLE_RULES = [
    {"apiGroups": ["apps"], "resources": ["deployments"],
     "verbs": ["get", "list", "watch", "create", "update", "patch"]},
    {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list", "watch", "create", "update", "patch"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
]
TOKEN_SECONDS = 24 * 3600


def describe_rules() -> str:
    """`get/list/... deployments.apps; ...`: what the Role allows, for the credentials map."""
    parts = []
    for rule in ROLE_RULES:
        group = rule["apiGroups"][0]
        things = ",".join(r + (f".{group}" if group else "") for r in rule["resources"])
        parts.append(f"{'/'.join(rule['verbs'])} {things}")
    return "; ".join(parts)


def grant(admin: Any, access: Any, namespace: str, account: str, labels: dict[str, str], path: Path) -> Path:
    """Creates the namespace (if need be), the ServiceAccount, Role and RoleBinding; writes and returns
    the ServiceAccount's kubeconfig."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    from mlopslab.envs.kubernetes import pki

    core, rbac = client.CoreV1Api(admin), client.RbacAuthorizationV1Api(admin)
    try:
        core.create_namespace({"metadata": {"name": namespace, "labels": labels}})
    except ApiException as exc:
        if exc.status != 409:
            raise
    core.create_namespaced_service_account(namespace, {"metadata": {"name": account, "labels": labels}})
    try:   # a second account in the namespace (the rollout controller's) is bound to the same Role
        rbac.create_namespaced_role(namespace, {"metadata": {"name": "deployer", "labels": labels},
                                                "rules": ROLE_RULES})
    except ApiException as exc:
        if exc.status != 409:
            raise
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": f"deployer-{account}", "labels": labels},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "deployer"},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]})
    token = core.create_namespaced_service_account_token(
        account, namespace, {"spec": {"expirationSeconds": TOKEN_SECONDS}}).status.token
    path.parent.mkdir(parents=True, exist_ok=True)
    return pki.kubeconfig(path, access.server, access.ca, user=f"{namespace}:{account}", token=token,
                          namespace=namespace)


# --- Flux: one ServiceAccount for its controllers, in their own namespace ---------------------------------
FLUX_NAMESPACE = "flux-system"
FLUX_ACCOUNT = "flux"
FLUX_OWN_RULES = [   # in flux-system: its own objects, events, leases (what the controllers read and write)
    {"apiGroups": ["source.toolkit.fluxcd.io", "kustomize.toolkit.fluxcd.io"], "resources": ["*"], "verbs": ["*"]},
    {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch", "update"]},
    {"apiGroups": [""], "resources": ["secrets", "configmaps", "serviceaccounts"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["*"]},
]
FLUX_APPLY_RULES = [  # in each Flux lane's namespace: apply and prune the lane's manifests
    {"apiGroups": ["apps"], "resources": ["deployments"],
     "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
    {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
]


def describe_flux_rules() -> str:
    return "; ".join(f"{'/'.join(r['verbs'])} {','.join(r['resources'])}" for r in FLUX_APPLY_RULES)


def grant_flux(admin: Any, access: Any, namespaces: list[str], labels: dict[str, str], path: Path) -> Path:
    """The flux ServiceAccount in flux-system: its own objects there; in each lane namespace a Role to
    apply and prune the lane's Deployment and Service; `get/patch` on those lanes' Namespace objects only
    (the lane directory holds its namespace.yaml, which Flux applies too). Writes its kubeconfig."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    from mlopslab.envs.kubernetes import pki

    core, rbac = client.CoreV1Api(admin), client.RbacAuthorizationV1Api(admin)
    for namespace in (FLUX_NAMESPACE, *namespaces):
        try:
            core.create_namespace({"metadata": {"name": namespace, "labels": labels}})
        except ApiException as exc:
            if exc.status != 409:
                raise
    subject = [{"kind": "ServiceAccount", "name": FLUX_ACCOUNT, "namespace": FLUX_NAMESPACE}]
    core.create_namespaced_service_account(FLUX_NAMESPACE, {"metadata": {"name": FLUX_ACCOUNT, "labels": labels}})

    def bind(namespace: str, role: str, rules: list[dict[str, Any]]) -> None:
        rbac.create_namespaced_role(namespace, {"metadata": {"name": role, "labels": labels}, "rules": rules})
        rbac.create_namespaced_role_binding(namespace, {
            "metadata": {"name": role, "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
            "subjects": subject})

    bind(FLUX_NAMESPACE, "flux", FLUX_OWN_RULES)
    for namespace in namespaces:
        bind(namespace, "flux-applier", FLUX_APPLY_RULES)
    name = f"mlopslab-flux-namespaces-{labels.get('mlopslab.io/run', 'run')}"[:63].rstrip("-")
    rbac.create_cluster_role({"metadata": {"name": name, "labels": labels}, "rules": [
        {"apiGroups": [""], "resources": ["namespaces"], "resourceNames": list(namespaces), "verbs": ["get", "patch"]}]})
    rbac.create_cluster_role_binding({
        "metadata": {"name": name, "labels": labels},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": subject})
    token = core.create_namespaced_service_account_token(
        FLUX_ACCOUNT, FLUX_NAMESPACE, {"spec": {"expirationSeconds": TOKEN_SECONDS}}).status.token
    path.parent.mkdir(parents=True, exist_ok=True)
    return pki.kubeconfig(path, access.server, access.ca, user=f"{FLUX_NAMESPACE}:{FLUX_ACCOUNT}", token=token,
                          namespace=FLUX_NAMESPACE)
