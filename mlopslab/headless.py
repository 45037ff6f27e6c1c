"""`mlopslab run`: a scenario headless — the checks before anything starts (base image, cluster binaries),
one progress line per event, the side-by-side summary at the end — or, with --repeat / --set / a
scenario's sweep, repeated trials, each a child `mlopslab run`. cli.py parses the command line and
hands the loaded scenario here; heavy modules are imported only when a run needs them.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

QUIET_KINDS = {"metrics", "sync", "replica_started", "replica_terminating", "lab_prepared", "drift_score",
               "accuracy"}


def _cut(sc: Any, seconds: float) -> Any:
    """`--duration`: refused unless it is a real run length; says which timeline entries it leaves out."""
    from mlopslab import scenario

    try:
        sc, dropped = scenario.with_duration(sc, seconds)
    except scenario.ScenarioError as exc:
        print(f"mlopslab: --duration: {exc.problems[0].message}", file=sys.stderr)
        raise SystemExit(2) from None
    for event in dropped:
        print(f"mlopslab: --duration {seconds:g} leaves out the timeline entry at {event.at:g} s "
              f"({event.action}, line {event.line})", file=sys.stderr)
    return sc


def _terminate_as_interrupt() -> None:
    from mlopslab import signals

    signals.terminate_as_interrupt()


def progress(event: Any, start: list[float | None]) -> None:
    """One line per event (typed, or a line's dict): `[setup   6.9s]` before the scenario clock starts, then
    `[      2.50s]` on it, fields as the TUI's event log has them (raw times on the scenario clock, no CI output)."""
    from mlopslab.eventtypes import decode
    from mlopslab.monitor.timeline import describe

    e = decode(event)
    if e.name == "run_started":
        start[0] = e.t
    if e.name in QUIET_KINDS:
        return
    origin = start[0]
    stamp = f"[setup {e.t:6.1f}s]" if origin is None else f"[{e.t - origin:11.2f}s]"
    detail = describe(e.as_dict(), None if origin is None else (lambda t: t - origin))
    print(f"{stamp} {e.lane or 'lab':10} {e.name:16} {detail}"[:150], flush=True)
    if e.name == "cluster_ready":
        print(f"mlopslab: during the run: kubectl --kubeconfig {e.get('kubeconfig')} get deploy,rs,pods -A",
              flush=True)


def run(args: argparse.Namespace, sc: Any) -> int:
    """`mlopslab run`: one run of `sc` (exit 0 ok, 1 failed, 2 bad input, 130 interrupted), or trials."""
    if args.repeat > 1 or args.set or sc.sweep or args.repeat < 1:
        return _trials(args, sc)
    if args.duration is not None:
        sc = _cut(sc, args.duration)
    from mlopslab import report
    from mlopslab.lab import Lab, LabError, new_results_dir

    results = args.results or new_results_dir(sc)
    if sc.environment.kind == "docker":
        _check_base_image(sc, args.quiet)
    if sc.environment.kind == "kubernetes" and sc.environment.cluster == "embedded" \
            and (problem := _kubernetes_problem(sc)) is not None:
        print(f"mlopslab: {problem}", file=sys.stderr)   # before anything is made or started
        return 2
    try:
        lab = Lab(sc, results)
    except LabError as exc:
        print(f"mlopslab: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the results directory cannot be made or written
        print(f"mlopslab: cannot write the results to {results}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if not args.quiet:
        start: list[float | None] = [None]
        lab.recorder.subscribe(lambda e: progress(e, start))
        print(f"mlopslab: {sc.name} on {sc.environment.kind}, {len(sc.lanes)} lanes, {sc.duration:.0f} s "
              f"→ {results}", flush=True)
    if args.control_fd is not None:  # started by the TUI: its actions arrive here; its end closing stops the run
        from mlopslab.control import serve_fd

        serve_fd(lab, args.control_fd)
    _terminate_as_interrupt()
    code = 0
    try:
        if lab.run() == "failed":  # e.g. the load generator died under the run
            code = 1
    except KeyboardInterrupt:
        code = 130
    except LabError as exc:   # e.g. the environment's prerequisites: the message says how to fix it
        print(f"mlopslab: {exc}", file=sys.stderr)
        code = 1
    except Exception as exc:
        print(f"mlopslab: the run failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        code = 1
    finally:
        lab.shutdown()  # already done by run(); here for a failure before it started
        # Everything is stopped and written: a late Ctrl-C must not kill the interpreter while it exits
        # (Python resets its own handlers to the default at finalization; an ignored signal stays ignored).
        from mlopslab import signals

        signals.ignore_stops()
    if lab.storage_error:
        print(f"mlopslab: the run stopped: {lab.storage_error}; the results keep every line written before",
              file=sys.stderr)
        code = 1
    summary = report.summarise(lab.state)
    if args.svg and code == 0:
        from mlopslab.tui.export import export_svg

        svg = export_svg(results)
        print(f"run screen: {svg}")
    if summary.lanes:   # a run that could not start has no lanes to compare
        print()
        print(report.table(summary))
    print(f"\nresults: {results}  (status: {summary.status})")
    return code


def _kubernetes_problem(sc: Any) -> str | None:
    """Why this machine cannot give the scenario its Kubernetes cluster, with the fix (None: it can)."""
    from mlopslab import doctor

    env = sc.environment
    failed = doctor.problems("kubernetes", env.base_image, "embedded", env.runtime,
                             tuple(lane.delivery for lane in sc.lanes))
    return doctor.explain("kubernetes", failed) if failed else None


def _check_base_image(sc: Any, quiet: bool) -> None:
    """No usable Docker base image: exit 2 before anything starts, naming the command that builds one (an
    engine that does not answer is left to the run's prerequisites check). Says when it falls back or pulls."""
    from mlopslab.envs import baseimage

    say = None if quiet else (lambda line: print(f"mlopslab: {line}", flush=True))
    try:
        choice = baseimage.resolve(None, sc.environment.base_image, log=say)
    except baseimage.NoEngine:
        return
    except baseimage.BaseImageError as exc:
        print(f"mlopslab: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if say and choice.how != "present":
        say(choice.describe())


def _trials(args: argparse.Namespace, sc: Any) -> int:
    """`run --repeat N` and sweeps: every grid point N times, each run a child `mlopslab run`."""
    from mlopslab import scenario, sweep, trials
    from mlopslab.lab import new_results_dir

    if not 1 <= args.repeat <= 1000:
        print(f"mlopslab: --repeat: expected a number of runs between 1 and 1000, got {args.repeat}", file=sys.stderr)
        return 2
    try:
        points = sweep.grid(sc.path, [sweep.parse_set(text) for text in args.set])
        if args.duration is not None:
            points = [sweep.Point(p.params, _cut(p.scenario, args.duration), {**p.document, "duration": args.duration,
                      "timeline": [e for e in p.document.get("timeline") or [] if e.get("at", 0) < args.duration],
                      "narration": [n for n in p.document.get("narration") or [] if n.get("at", 0) < args.duration]})
                      for p in points]
    except scenario.ScenarioError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    parent = args.results or new_results_dir(sc)
    if parent.exists() and any(parent.iterdir()):
        print(f"mlopslab: {parent} is not empty; trials need a directory of their own", file=sys.stderr)
        return 2
    print(f"mlopslab: {sc.name}: {len(points)} point(s) × {args.repeat} run(s) → {parent}", flush=True)
    _terminate_as_interrupt()
    try:
        summary, code = trials.run_all(points, args.repeat, parent, progress=lambda line: print(line, flush=True),
                                       quiet=True)
    except KeyboardInterrupt:
        return 130
    print()
    print(trials.markdown(summary))
    print(f"results: {parent}")
    return code
