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
    rbac.create_namespaced_role(namespace, {"metadata": {"name": "deployer", "labels": labels}, "rules": ROLE_RULES})
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": f"deployer-{account}", "labels": labels},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "deployer"},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]})
    token = core.create_namespaced_service_account_token(
        account, namespace, {"spec": {"expirationSeconds": TOKEN_SECONDS}}).status.token
    path.parent.mkdir(parents=True, exist_ok=True)
    return pki.kubeconfig(path, access.server, access.ca, user=f"{namespace}:{account}", token=token,
                          namespace=namespace)
