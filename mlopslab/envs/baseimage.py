"""Which base image a Docker run builds FROM, decided before anything starts.

The configured base (the scenario's `environment.base_image`, else $MLOPSLAB_BASE_IMAGE, else
`python:3.11-slim`) is used when the engine has it. When it is missing, the lab tries, in order:

1. **offline**: the offline base `mlopslab/base:bookworm`, if `mlopslab images build-base` has built it;
2. **pull**: one pull of the configured image (fails in about a second where no registry is reachable);

and otherwise stops with `BaseImageError`, whose message names the command that builds the offline base.
$MLOPSLAB_BASE_FALLBACK lists the steps allowed (default `offline,pull`; empty: neither), so a test or a
machine that must never reach a registry can turn the pull off.

`resolve` only looks (and pulls); `plan` says what `resolve` would do, for `mlopslab doctor`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlopslab.envs import images

BUILD_COMMAND = "mlopslab images build-base"
FALLBACK_ENV = "MLOPSLAB_BASE_FALLBACK"
STEPS = ("offline", "pull")
PULL_TIMEOUT = 30.0  # seconds the engine may stay silent during the one pull


class BaseImageError(RuntimeError):
    """No usable base image: nothing was started. The message says how to get one."""


class NoEngine(BaseImageError):
    """No Docker engine answered, so no image could be looked for."""


@dataclass(frozen=True)
class Choice:
    """What a run will build FROM: `image`, and how it was found (`present` | `offline` | `pull`)."""

    configured: str
    image: str
    how: str
    agent: str       # the pull agent's base

    def describe(self) -> str:
        if self.how == "present":
            return f"{self.image} (configured, present)"
        if self.how == "offline":
            return f"{self.configured} is missing: the offline base {self.image} is used instead"
        return f"{self.configured} was missing: pulled it once from its registry"


def configured(base_image: str | None = None) -> str:
    """The base a run asks for: the scenario's, else $MLOPSLAB_BASE_IMAGE, else python:3.11-slim."""
    return base_image or images.base_image_from_env()


def fallback_steps(steps: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The fallback steps allowed: `steps`, else $MLOPSLAB_BASE_FALLBACK (comma-separated), else both."""
    if steps is not None:
        return steps
    raw = os.environ.get(FALLBACK_ENV)
    if raw is None:
        return STEPS
    return tuple(step.strip() for step in raw.split(",") if step.strip() in STEPS)


def agent_base(client: Any, base: str) -> str:
    """The pull agent's base: $MLOPSLAB_AGENT_BASE_IMAGE, else the offline agent base when built, else the
    model base (git and the Python packages are then installed at build, which needs a network)."""
    chosen = os.environ.get("MLOPSLAB_AGENT_BASE_IMAGE")
    if chosen:
        return chosen
    return images.OFFLINE_AGENT_BASE if images.image_present(client, images.OFFLINE_AGENT_BASE) else base


def plan(client: Any, base_image: str | None = None, *, steps: tuple[str, ...] | None = None) -> Choice | None:
    """What `resolve` would do, without pulling: a Choice (`how` = "pull" means it would try), or None
    when nothing would work."""
    want = configured(base_image)
    allowed = fallback_steps(steps)
    if images.image_present(client, want):
        return Choice(want, want, "present", agent_base(client, want))
    if "offline" in allowed and want != images.OFFLINE_BASE and images.image_present(client, images.OFFLINE_BASE):
        return Choice(want, images.OFFLINE_BASE, "offline", agent_base(client, images.OFFLINE_BASE))
    if "pull" in allowed and want not in (images.OFFLINE_BASE, images.OFFLINE_AGENT_BASE):  # ours: never in a registry
        return Choice(want, want, "pull", agent_base(client, want))
    return None


def resolve(client: Any = None, base_image: str | None = None, *, steps: tuple[str, ...] | None = None,
            log: Callable[[str], None] | None = None) -> Choice:
    """The base image to build FROM, present on the engine; pulls at most once. Raises BaseImageError."""
    client = client or _client()
    choice = plan(client, base_image, steps=steps)
    want = configured(base_image)
    if choice is None:
        raise BaseImageError(missing(client, want, steps=steps))
    if choice.how != "pull":
        return choice
    if log:
        log(f"base image {want} is missing and the offline base is not built: pulling it once")
    error = pull(want)
    if error is None and images.image_present(client, want):
        return choice
    raise BaseImageError(missing(client, want, steps=steps, tried=(f"pulling it failed: {error}",)))


def pull(name: str) -> str | None:
    """One pull of `name` through the engine; None when it worked, else the reason (short)."""
    import docker

    repository, tag = _split(name)
    try:
        client = docker.from_env(timeout=PULL_TIMEOUT)
        for _ in client.api.pull(repository, tag=tag, stream=True, decode=True):
            pass
    except Exception as exc:
        text = getattr(exc, "explanation", None) or str(exc)
        return f"{type(exc).__name__}: {str(text)[:200]}"
    return None


def _split(name: str) -> tuple[str, str]:
    last = name.split("/")[-1]
    if ":" in last:
        repository, _, tag = name.rpartition(":")
        return repository, tag
    return name, "latest"


def missing(client: Any, want: str, *, steps: tuple[str, ...] | None = None, tried: tuple[str, ...] = (),
            fix: bool = True) -> str:
    """Why no base is usable, and (with `fix`) the command that makes one."""
    allowed = fallback_steps(steps)
    parts = [f"the Docker base image {want} is not on this engine"]
    if want != images.OFFLINE_BASE:
        if not images.image_present(client, images.OFFLINE_BASE):
            parts.append(f"the offline base {images.OFFLINE_BASE} is not built either")
        elif "offline" not in allowed:
            parts.append(f"the offline base {images.OFFLINE_BASE} is built but turned off (fallback steps: "
                         f"{', '.join(allowed) or 'none'}; ${FALLBACK_ENV})")
    if "pull" not in allowed:
        parts.append("pulling is turned off")
    parts += list(tried)
    if not fix:
        return "; ".join(parts)
    return ("; ".join(parts) + f". Build the offline base (needs root, debootstrap and a Debian mirror, no "
            f"registry): `{BUILD_COMMAND}`, or pull {want} where a registry is reachable. "
            "`mlopslab doctor` says what this machine has.")


def _client() -> Any:
    try:
        return images.connect()
    except RuntimeError as exc:
        raise NoEngine(str(exc)) from None
