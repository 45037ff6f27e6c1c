"""Environment kinds, each a `Platform`: what differs between local processes, a Docker engine and
(later) Kubernetes — the environment, how a pull agent runs beside it, what each delivery's credential
is, which processes are its own. The lab asks `platform_for(kind)` and never branches on the kind.

Adding an environment is adding a module here with a `Platform` subclass and one line in `KINDS`.
This package sits between the lab and the layers it wires: it may import envs and gitops; they never
import it (tests/test_layers.py).
"""

from __future__ import annotations

import importlib

from mlopslab.platforms.base import Platform, PlatformError, RunContext

KINDS = {"local": "mlopslab.platforms.local:LocalPlatform", "docker": "mlopslab.platforms.docker:DockerPlatform",
         "kubernetes": "mlopslab.platforms.kubernetes:KubernetesPlatform"}


def platform_for(kind: str, context: RunContext) -> Platform:
    if kind not in KINDS:
        raise PlatformError(f"environment {kind!r} is not available in this build (see `mlopslab doctor`)")
    module, name = KINDS[kind].split(":")
    return getattr(importlib.import_module(module), name)(context)


__all__ = ["KINDS", "Platform", "PlatformError", "RunContext", "platform_for"]
