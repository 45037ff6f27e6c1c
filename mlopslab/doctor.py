"""`mlopslab doctor`: which environments are usable on this machine, and how to fix what is missing."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""
    fix: str = ""
    environments: tuple[str, ...] = field(default_factory=tuple)  # environments that need this check


def _docker_checks(base_image: str | None = None) -> list[Check]:

    checks: list[Check] = []
    try:
        import docker
    except ImportError:
        return [Check("docker engine", False, "the Docker SDK for Python is not installed",
                      "pip install 'docker>=7'", ("docker",))]
    try:
        client = docker.from_env(timeout=5)
        version = client.version()
    except Exception as exc:
        host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        fix = ("apt-get install -y docker.io && dockerd >/tmp/dockerd.log 2>&1 &   (or: .ci/docker.sh); "
               "if the socket exists, check you may use it (group docker)")
        return [Check("docker engine", False, f"not reachable at {host}: {exc.__class__.__name__}", fix, ("docker",))]
    checks.append(Check("docker engine", True, f"Docker {version.get('Version')} (API {version.get('ApiVersion')}, "
                        f"{version.get('Os')}/{version.get('Arch')})", environments=("docker",)))
    checks += _base_checks(client, base_image)
    sock = "/var/run/docker.sock"
    if os.path.exists(sock):
        checks.append(Check("engine socket", True, f"{sock}: mounted into the pull agent's container "
                            "(root-equivalent on this host)", environments=("docker",)))
    return checks


def _base_checks(client: object, base_image: str | None = None) -> list[Check]:
    """Which base a Docker run would build FROM here: the configured one, the offline base instead, one
    pull, or none (then the run stops before training and names `mlopslab images build-base`)."""
    from mlopslab.envs import baseimage, images

    choice = baseimage.plan(client, base_image)
    want = baseimage.configured(base_image)
    build = f"{baseimage.BUILD_COMMAND}   (as root; debootstrap + a Debian mirror, no registry)"
    if choice is None:
        why = baseimage.missing(client, want, fix=False)
        return [Check("base image", False, f"{why} (a run stops before training)", build, ("docker",))]
    if choice.how == "pull":
        base = Check("base image", True, f"{want} is missing: a run pulls it once (needs a registry; offline it "
                     f"stops before training; {baseimage.BUILD_COMMAND} builds the offline base)",
                     environments=("docker",))
    else:
        size = client.images.get(choice.image).attrs["Size"] / 1e6
        base = Check("base image", True, f"{choice.describe()} ({size:.0f} MB)", environments=("docker",))
    agent = choice.agent
    if images.image_present(client, agent):
        offline = set(images.AGENT_PACKAGES) <= images.base_packages(client, agent)
        detail = agent + ("" if offline else " (git, GitPython, PyYAML, docker are installed at build: needs a network)")
        return [base, Check("agent base image", True, detail, environments=("docker",))]
    return [base, Check("agent base image", False, f"{agent} is not present (the pull agent's container)", build,
                        ("docker",))]


def _kube_checks(flux_needed: bool = False) -> list[Check]:
    """The embedded cluster's binaries (where, which release, or how to get them), kubectl and the contexts
    of the user's kubeconfig (`cluster: context` runs on one of those)."""
    from mlopslab.envs.kubernetes import binaries

    found = binaries.find()
    problem = found.problem()
    if problem is None:
        where = sorted(set(found.sources[n] for n in binaries.REQUIRED))
        checks = [Check("kubernetes binaries", True, f"{found.version()} from {', '.join(where)} "
                        f"({found.paths['kube-apiserver'].parent})", environments=("kubernetes",))]
    else:
        checks = [Check("kubernetes binaries", False, problem.split(". ")[0],
                        f"{binaries.BUILD}; or set MLOPSLAB_K8S_BIN (a directory with etcd, kube-apiserver, "
                        "kube-controller-manager, kube-scheduler) or KUBEBUILDER_ASSETS (setup-envtest)",
                        ("kubernetes",))]
    kubectl = found.paths.get("kubectl")
    detail = "not found (only needed to look at a run's cluster: kubectl --kubeconfig results/<run>/kubeconfig)"
    if kubectl:
        try:
            out = subprocess.run([str(kubectl), "version", "--client"], capture_output=True, text=True, timeout=10)
            detail = f"{kubectl}: {out.stdout.strip().splitlines()[0]}"
        except (OSError, subprocess.TimeoutExpired, IndexError):
            detail = str(kubectl)
    checks.append(Check("kubectl", True, detail))
    config = os.environ.get("KUBECONFIG", os.path.expanduser("~/.kube/config")).split(os.pathsep)[0]
    contexts = "none"
    if os.path.exists(config):
        try:
            import yaml

            doc = yaml.safe_load(open(config)) or {}
            contexts = ", ".join(c.get("name", "?") for c in doc.get("contexts") or []) or "none"
        except (OSError, yaml.YAMLError):
            contexts = "unreadable"
    checks.append(Check("kube contexts", True, f"{config}: {contexts} (for environment.cluster: context)"))
    from mlopslab.gitops import flux

    install = flux.find()
    missing = install.problem()
    if missing is None:
        checks.append(Check("flux controllers", True, f"source-controller {flux.SOURCE_VERSION}, kustomize-controller "
                            f"{flux.KUSTOMIZE_VERSION} ({install.root})"))
    else:   # only a `delivery: flux` lane needs them
        checks.append(Check("flux controllers", not flux_needed, (missing.split(". ")[0] if flux_needed else "not built")
                            + " (only delivery: flux lanes need them)",
                            f"{flux.BUILD}; or set MLOPSLAB_FLUX_DIR (a directory with bin/ and crds/)",
                            ("kubernetes",) if flux_needed else ()))
    return checks


def diagnose() -> list[Check]:
    """Every check, in the order `format` prints them."""
    return [Check("local processes", True, "always available (model servers as child processes)",
                  environments=("local",))] + _docker_checks() + _kube_checks()


def problems(environment: str, base_image: str | None = None, cluster: str = "embedded",
             runtime: str = "process", deliveries: tuple[str, ...] = ()) -> list[Check]:
    """The failed checks that keep `environment` from working here (none: it is usable). A run checks these
    before it trains anything; the picker marks scenarios with them."""
    if environment == "docker":
        checks = _docker_checks(base_image)
    elif environment == "kubernetes" and cluster == "context":   # the lab builds the model images there
        checks = _docker_checks(base_image)
    elif environment == "kubernetes":   # its pods as containers need the engine and a base image too
        checks = _kube_checks(flux_needed="flux" in deliveries) + (
            _docker_checks(base_image) if runtime == "docker" else [])
    else:
        checks = []
    return [check for check in checks if not check.ok]


def explain(environment: str, failed: list[Check]) -> str:
    """`environment docker is not usable here: base image: python:3.11-slim is not present` and a fix per line."""
    lines = [f"environment {environment} is not usable here: "
             + "; ".join(f"{check.name}: {check.detail}" for check in failed)]
    lines += [f"fix: {check.fix}" for check in failed if check.fix]
    return "\n".join(lines)


def usable(checks: list[Check]) -> dict[str, bool]:
    """{environment: usable here}."""
    result: dict[str, bool] = {}
    for check in checks:
        for environment in check.environments:
            result[environment] = result.get(environment, True) and check.ok
    return result


def format(checks: list[Check]) -> str:  # the CLI calls it `doctor.format`
    """The doctor's report as plain text: one line per check, fixes indented, a verdict per environment."""
    lines = []
    for check in checks:
        lines.append(f"{'ok ' if check.ok else 'NO '} {check.name:<18} {check.detail}")
        if not check.ok and check.fix:
            lines.append(f"    fix: {check.fix}")
    lines.append("")
    for environment, ok in usable(checks).items():
        lines.append(f"environment {environment:<11} {'usable' if ok else 'not usable here'}")
    return "\n".join(lines)


def exit_code(checks: list[Check]) -> int:
    """0 when every environment is usable, 1 otherwise (for scripts)."""
    return 0 if all(usable(checks).values()) else 1
