"""Container images for the Docker environment: an offline base, one image per model version, the agent.

Three kinds of image, all built through the Docker SDK:

- **Base** (`build_base`): `python:3.11-slim` for users with a registry; where no registry is reachable,
  a Debian root filesystem made with `debootstrap --variant=minbase` and turned into an image with
  `docker import` (no registry, only a Debian mirror). Built once, then found by name and reused.
- **Model** (`ModelImages.ensure`): one image per model version, like `mlflow models build-docker` but
  small: FROM the base, COPY the model server's modules (numpy + stdlib) and the exported artifact
  (`model.npz`, `model.json`) to /model, USER 10001. The build context is a tar made in memory. Images
  are keyed by a digest of base + context, so a rebuilt version (same name, other weights) never reuses
  a stale image, and the same content is never built twice.
- **Agent** (`build_agent_image`): the pull agent's own image: the mlopslab package on a base that also
  has git, GitPython, PyYAML and the Docker SDK.

Labels (`mlopslab.*`) mark every image and container so `cleanup` can find what a run left behind.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LABEL_RUN = "mlopslab.run"
LABEL_LANE = "mlopslab.lane"
LABEL_ROLE = "mlopslab.role"          # replica | agent | reaper | model-image | agent-image | base
LABEL_MODEL = "mlopslab.model"
LABEL_VERSION = "mlopslab.version"
LABEL_REPLICA = "mlopslab.replica"
LABEL_TEMPLATE = "mlopslab.template"   # a replica's pod-template (model/version/warmup): what a rollout replaces
LABEL_DIGEST = "mlopslab.digest"
LABEL_PACKAGES = "mlopslab.packages"   # on offline bases: the Debian packages they hold

DEFAULT_BASE = "python:3.11-slim"
OFFLINE_BASE = "mlopslab/base:bookworm"
OFFLINE_AGENT_BASE = "mlopslab/agent-base:bookworm"
BASE_PACKAGES = ("python3", "python3-numpy")
AGENT_PACKAGES = BASE_PACKAGES + ("git", "python3-git", "python3-yaml", "python3-docker")
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
SERVER_USER = "10001:10001"
SERVER_PORT = 8080

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # the mlopslab package directory


def base_image_from_env() -> str:
    """The model images' base: $MLOPSLAB_BASE_IMAGE, else python:3.11-slim."""
    return os.environ.get("MLOPSLAB_BASE_IMAGE") or DEFAULT_BASE


def agent_base_from_env() -> str:
    """The agent image's base: $MLOPSLAB_AGENT_BASE_IMAGE, else the offline agent base beside the offline
    model base, else the model base (then git and the Python packages are installed at build)."""
    base = base_image_from_env()
    return os.environ.get("MLOPSLAB_AGENT_BASE_IMAGE") or (OFFLINE_AGENT_BASE if base == OFFLINE_BASE else base)


def connect(timeout: float = 10.0) -> Any:
    """A Docker client whose engine answered a ping; RuntimeError (pointing at the doctor) otherwise."""
    import docker

    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except Exception as exc:
        raise RuntimeError(f"no Docker engine reachable ({type(exc).__name__}); `mlopslab doctor` says how to "
                           "start one") from None
    return client


def image_present(client: Any, name: str) -> bool:
    import docker.errors

    try:
        client.images.get(name)
        return True
    except docker.errors.ImageNotFound:
        return False


# --- the offline base ------------------------------------------------------------------------------------
def build_base(client: Any, name: str = OFFLINE_BASE, packages: tuple[str, ...] = BASE_PACKAGES, *,
               mirror: str = MIRROR, cache_dir: Path | None = None, force: bool = False,
               log: Callable[[str], None] = print) -> str:
    """Builds `name` from a debootstrapped Debian (no registry needed) unless it exists; returns its id."""
    if not force and image_present(client, name):
        return client.images.get(name).id
    if shutil.which("debootstrap") is None:
        raise RuntimeError("debootstrap is not installed (apt-get install -y debootstrap)")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mlopslab-rootfs-") as tmp:
        root = Path(tmp) / "rootfs"
        command = ["debootstrap", "--variant=minbase", f"--include={','.join(packages)}"]
        if cache_dir is not None:
            cache_dir.mkdir(parents=True, exist_ok=True)
            command.append(f"--cache-dir={cache_dir}")
        command += [SUITE, str(root), mirror]
        log(f"debootstrap {SUITE} with {', '.join(packages)} ...")
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"debootstrap failed ({result.returncode}): {result.stdout[-2000:]}{result.stderr[-2000:]}")
        _trim_rootfs(root)
        changes = ["ENV LANG=C.UTF-8", "ENV PYTHONDONTWRITEBYTECODE=1", 'CMD ["python3"]',
                   f"LABEL {LABEL_ROLE}=base {LABEL_PACKAGES}={'+'.join(packages)}"]
        tar = subprocess.Popen(["tar", "--numeric-owner", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        try:
            repository, _, tag = name.rpartition(":") if ":" in name.split("/")[-1] else (name, "", "latest")
            client.api.import_image(src=tar.stdout, repository=repository, tag=tag, changes=changes,
                                    stream_src=True)
        finally:
            tar.stdout.close()
            tar.wait()
    image = client.images.get(name)
    log(f"{name}: {image.attrs['Size'] / 1e6:.0f} MB in {time.monotonic() - started:.0f} s")
    return image.id


def _trim_rootfs(root: Path) -> None:
    """Drops what a container never reads: docs, man pages, locales, apt caches and lists."""
    for relative in ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
                     "var/cache/apt", "var/lib/apt/lists", "var/log"):
        target = root / relative
        if target.is_dir():
            for child in target.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)


def base_packages(client: Any, base: str) -> set[str]:
    """The Debian packages an offline base says it has (empty for other bases)."""
    labels = client.images.get(base).attrs.get("Config", {}).get("Labels") or {}
    return set(filter(None, labels.get(LABEL_PACKAGES, "").split("+")))


# --- build contexts -----------------------------------------------------------------------------------------
def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    tar.addfile(info, io.BytesIO(data))


def _context(files: dict[str, bytes]) -> tuple[io.BytesIO, str]:
    """An in-memory tar build context and a digest of its content."""
    digest = hashlib.sha256()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in sorted(files):
            digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
            _add(tar, name, files[name])
    buffer.seek(0)
    return buffer, digest.hexdigest()


def server_files(prefix: str = "app/mlopslab") -> dict[str, bytes]:
    """The model server's modules: numpy + stdlib only."""
    names = ("__init__.py", "serving/__init__.py", "serving/artifact.py", "serving/protocol.py", "serving/server.py")
    return {f"{prefix}/{name}": (PACKAGE_ROOT / name).read_bytes() for name in names}


def package_files(prefix: str = "app/mlopslab") -> dict[str, bytes]:
    """The mlopslab modules the agent needs (no UI, no ML training)."""
    files: dict[str, bytes] = {}
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        relative = path.relative_to(PACKAGE_ROOT)
        if relative.parts[0] in ("tui", "ml") or "__pycache__" in relative.parts:
            continue
        files[f"{prefix}/{relative.as_posix()}"] = path.read_bytes()
    return files


@dataclass(frozen=True)
class ImageInfo:
    id: str
    tag: str
    size: int            # bytes, the whole image
    added: int           # bytes over the base image
    seconds: float       # build time (0 when found in the cache)
    built: bool


def _build(client: Any, files: dict[str, bytes], dockerfile: str, tag: str, labels: dict[str, str],
           base: str, *, network: bool) -> tuple[str, float]:
    base_id = client.images.get(base).id
    context, digest = _context({**files, "Dockerfile": dockerfile.encode(), ".base": base_id.encode()})
    found = client.images.list(filters={"label": f"{LABEL_DIGEST}={digest}"})
    if found:
        found[0].tag(*tag.rsplit(":", 1))
        return found[0].id, 0.0
    started = time.monotonic()
    image, _ = client.images.build(fileobj=context, custom_context=True, tag=tag, rm=True, forcerm=True,
                                   pull=False, labels={**labels, LABEL_DIGEST: digest},
                                   network_mode=None if network else "none")
    return image.id, time.monotonic() - started


def _info(client: Any, image_id: str, tag: str, base: str, seconds: float) -> ImageInfo:
    size = client.images.get(image_id).attrs["Size"]
    base_size = client.images.get(base).attrs["Size"]
    return ImageInfo(image_id, tag, size, size - base_size, round(seconds, 3), seconds > 0)


def model_dockerfile(base: str, *, needs_numpy: bool) -> str:
    install = "RUN pip install --no-cache-dir numpy\n" if needs_numpy else ""
    return (f"FROM {base}\n{install}"
            "COPY app /app\nCOPY model /model\n"
            "ENV PYTHONPATH=/app PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1\n"
            f"USER {SERVER_USER}\nEXPOSE {SERVER_PORT}\n"
            'ENTRYPOINT ["python3", "-m", "mlopslab.serving.server"]\n'
            f'CMD ["--model-dir", "/model", "--host", "0.0.0.0", "--port", "{SERVER_PORT}"]\n')


def model_tag(model: str, version: str) -> str:
    return f"mlopslab/{model.lower()}:v{version}"


def build_model_image(client: Any, base: str, model_dir: Path, model: str, version: str, *,
                      run_id: str = "") -> ImageInfo:
    """One model version's image: FROM base, the server modules and the exported artifact, USER 10001."""
    files = server_files()
    for name in ("model.npz", "model.json"):
        files[f"model/{name}"] = (model_dir / name).read_bytes()
    needs_numpy = "python3-numpy" not in base_packages(client, base)
    tag = model_tag(model, version)
    labels = {LABEL_ROLE: "model-image", LABEL_MODEL: model, LABEL_VERSION: str(version), LABEL_RUN: run_id}
    image_id, seconds = _build(client, files, model_dockerfile(base, needs_numpy=needs_numpy), tag, labels,
                               base, network=needs_numpy)
    return _info(client, image_id, tag, base, seconds)


class ModelImages:
    """Finds or builds each model version's image once per process, and reports builds as events."""

    def __init__(self, client: Any, base: str, resolve_model: Callable[[str, str], Path], emit: Callable[..., Any],
                 run_id: str) -> None:
        self.client = client
        self.base = base
        self.resolve_model = resolve_model
        self.emit = emit
        self.run_id = run_id
        self._known: dict[tuple[str, str], ImageInfo] = {}
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._lock = threading.Lock()

    def ensure(self, model: str, version: str, lane: str | None = None) -> ImageInfo:
        key = (model, str(version))
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key in self._known:
                return self._known[key]
            if not image_present(self.client, self.base):
                raise RuntimeError(f"base image {self.base!r} is missing: run `mlopslab doctor`")
            self.emit("image_build_started", lane, model=model, version=str(version), base=self.base)
            info = build_model_image(self.client, self.base, self.resolve_model(model, str(version)), model,
                                     str(version), run_id=self.run_id)
            self.emit("image_build", lane, model=model, version=str(version), image=info.tag,
                      id=info.id[:19], seconds=info.seconds, size=info.size, added=info.added,
                      cached=not info.built)
            self._known[key] = info
            return info


# --- the agent image ------------------------------------------------------------------------------------------
AGENT_TAG = "mlopslab/agent"


def agent_dockerfile(base: str, *, needs_packages: bool) -> str:
    install = ("RUN apt-get update && apt-get install -y --no-install-recommends git "
               "&& rm -rf /var/lib/apt/lists/* && pip install --no-cache-dir gitpython pyyaml docker\n"
               if needs_packages else "")
    return (f"FROM {base}\n{install}COPY app /app\nCOPY gitconfig /etc/gitconfig\n"
            "ENV PYTHONPATH=/app PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/tmp\n"
            f"USER {SERVER_USER}\n"
            'ENTRYPOINT ["python3", "-m", "mlopslab.gitops.agent"]\n')


def build_agent_image(client: Any, base: str | None = None) -> ImageInfo:
    """The pull agent's image: the mlopslab package on a base with git, GitPython, PyYAML, docker."""
    base = base or agent_base_from_env()
    needs = not set(AGENT_PACKAGES) <= base_packages(client, base)
    files = package_files()
    # the env repo is mounted from the host (owned by another uid): trust it, as a git host is trusted
    files["gitconfig"] = b"[safe]\n\tdirectory = *\n"
    digest = _context(files)[1][:12]
    tag = f"{AGENT_TAG}:{digest}"
    image_id, seconds = _build(client, files, agent_dockerfile(base, needs_packages=needs), tag,
                               {LABEL_ROLE: "agent-image"}, base, network=needs)
    return _info(client, image_id, tag, base, seconds)


class BuildError(RuntimeError):
    """The offline base could not be built; the message says what is missing."""


DEB_CACHE = Path("/var/cache/mlopslab/debs")


def build_bases(*, base: str = OFFLINE_BASE, agent_base: str = OFFLINE_AGENT_BASE, agent: bool = True,
                cache_dir: Path = DEB_CACHE, mirror: str = MIRROR, force: bool = False,
                log: Callable[[str], None] | None = None) -> list[str]:
    """`mlopslab images build-base`: the offline model base (and the pull agent's) unless present."""
    import sys

    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    try:
        client = connect(timeout=600)
    except RuntimeError as exc:
        raise BuildError(str(exc)) from None
    wanted = [(base, BASE_PACKAGES)] + ([(agent_base, AGENT_PACKAGES)] if agent else [])
    todo = [(name, packages) for name, packages in wanted if force or not image_present(client, name)]
    if todo and shutil.which("debootstrap") is None:
        raise BuildError("debootstrap is not installed (as root: apt-get install -y debootstrap)")
    if todo and os.geteuid() != 0:
        raise BuildError("debootstrap needs root: run it as root (sudo mlopslab images build-base)")
    for name, packages in wanted:
        if (name, packages) not in todo:
            log(f"{name}: present")
            continue
        try:
            build_base(client, name, packages, mirror=mirror, cache_dir=cache_dir, force=force, log=log)
        except RuntimeError as exc:
            raise BuildError(f"{name}: {exc}") from None
    return [name for name, _ in wanted]
