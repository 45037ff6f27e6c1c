"""Before a run trains or starts anything: is its environment usable here, and the Platform that runs it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mlopslab.platforms import Platform, PlatformError, RunContext, platform_for
from mlopslab.scenario import Scenario


class LabError(RuntimeError):
    pass


class PrerequisiteError(LabError):
    """The scenario's environment is not usable here: nothing was started. The message says how to fix it."""


def check_prerequisites(scenario: Scenario, emit: Callable[..., Any]) -> None:
    """What `mlopslab doctor` checks for this scenario's environment; raises PrerequisiteError with the fix."""
    from mlopslab import doctor

    kind = scenario.environment.kind
    env = scenario.environment
    failed = doctor.problems(kind, env.base_image, env.cluster, env.runtime,
                             tuple(lane.delivery for lane in scenario.lanes))
    if failed:
        emit("preflight_failed", None, environment=kind,
             checks=[{"name": c.name, "detail": c.detail, "fix": c.fix} for c in failed])
        raise PrerequisiteError(doctor.explain(kind, failed))


def open_platform(context: RunContext) -> Platform:
    """The Platform for the scenario's environment kind, prepared (e.g. the Docker base image to build FROM)."""
    try:
        platform = platform_for(context.scenario.environment.kind, context)
        platform.prepare()
    except PlatformError as exc:  # the message says how to fix it
        raise LabError(str(exc)) from None
    return platform
