"""Deployment strategies' events: each step of a lane's strategy (weights, phase), each gate's verdict,
the decision and what the change cost (mlopslab/strategies)."""

from __future__ import annotations

from mlopslab.eventtypes.base import Event, kind


@kind("strategy_step")
class StrategyStep(Event):
    """The lane's strategy moved: its phase, the candidate's share of user requests, copies, cohorts."""

    strategy: str | None = None                    # canary | blue-green | shadow | ab
    phase: str | None = None                       # Initialized | Progressing | Paused | Promoting | Finalising | Succeeded | Failed
    stage: str | None = None                       # blue-green: preview | pre | ready | switched
    version: int | str | None = None               # the candidate
    stable: int | str | None = None
    weight: float | None = None                    # percent of user requests to the candidate
    mirror: bool | None = None                     # the candidate gets a copy of every request
    cohort: float | None = None                    # percent of cohorts (A/B) that get the candidate
    canary_replicas: int | None = None
    step: int | None = None
    failed_checks: int | None = None


@kind("gate")
class Gate(Event):
    """One gate's verdict at one analysis check."""

    version: int | str | None = None
    gate: str | None = None
    metric: str | None = None
    judge: str | None = None
    value: float | None = None                     # what was measured (None: not enough samples yet)
    threshold: float | None = None
    bound: str | None = None                       # min | max
    verdict: str | None = None                     # pass | fail | wait (| marginal, from a statistical judge)
    n_stable: int | None = None
    n_canary: int | None = None
    window: float | None = None                    # seconds of requests looked at
    detail: str | None = None


@kind("strategy_decision")
class StrategyDecision(Event):
    """A candidate was promoted or rolled back, by what and after how long."""

    strategy: str | None = None
    version: int | str | None = None
    stable: int | str | None = None
    decision: str | None = None                    # promoted | rolled_back | failed (a rolling update stuck)
    by: str | None = None                          # a gate's name, analysis, steps, autoPromotion, human, progressDeadline, revert, rollout
    after: float | None = None                     # seconds since the change began
    value: float | None = None                     # the deciding gate's measured value and threshold
    threshold: float | None = None


@kind("strategy_done")
class StrategyDone(Event):
    """A change is over (or the run ended during it): its decision and what it cost."""

    strategy: str | None = None
    version: int | str | None = None
    stable: int | str | None = None
    decision: str | None = None                    # promoted | rolled_back | failed | undecided
    by: str | None = None
    began: float | None = None                     # run clock
    time_to_decision: float | None = None
    duration: float | None = None                  # until the candidate's replicas were gone (or it took over)
    exposure: int | None = None                    # user requests the candidate served before the decision
    requests: int | None = None                    # user requests of the lane during the change
    errors: int | None = None                      # ... of which failed
    peak_replicas: int | None = None
    replica_seconds: float | None = None


@kind("target_declared")
class TargetDeclared(Event):
    """The rollout controller found a new declared target for a lane whose delivery applies by itself: on Docker,
    what a progressive pull lane's agent (or a person's manual edit) recorded in the engine
    (envs/docker_declared.py); on Kubernetes, the `model-server` Deployment a Flux lane's kustomize-controller
    (or a person's `kubectl edit`) wrote (envs/kubernetes/declared.py)."""

    version: int | str | None = None
    replicas: int | None = None
    generation: int | None = None                  # the declared object's generation
    by: str | None = None                          # agent | lab:manual | kustomize-controller | kubectl-edit
    revision: str | None = None                    # the env-repo commit it was rendered from
