"""Recreate, as a Kubernetes Deployment's `strategy.type: Recreate`: every old replica stops, and only when
they are all gone do the new ones start. It needs no second group and no router: it is a plan of the
Deployment controller (`envs/rollout.plan(..., recreate=True)`); this module names it beside the others."""

from __future__ import annotations

from mlopslab.envs.rollout import plan

__all__ = ["plan"]
