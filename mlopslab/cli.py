"""The `mlopslab` command: tui (default), run, replay, validate, doctor, clean, images.

Only argparse is imported up front so `mlopslab --help` is instant; each verb imports what it needs
(`run`'s own module: headless.py).
Exit codes: 0 ok, 1 the run failed, 2 bad input (a scenario with problems), 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

DEFAULT_SCENARIO = "push-vs-pull"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlopslab", description="A terminal lab that runs ML deployment "
                                     "strategies side by side: push vs pull GitOps, rollouts, MLOps levels.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")

    tui = verbs.add_parser("tui", help="open the lab (the default verb)")
    tui.add_argument("files", nargs="*", metavar="SCENARIO", help="scenario files or shipped names: one runs at "
                     "once, several are listed first in the picker; omit to pick a shipped one")

    run = verbs.add_parser("run", help="run a scenario headless and print the side-by-side summary")
    run.add_argument("scenario", nargs="?", default=DEFAULT_SCENARIO, help=f"file or shipped name "
                     f"(default: {DEFAULT_SCENARIO})")
    run.add_argument("--results", type=Path, help="results directory (default: results/NAME-TIMESTAMP)")
    run.add_argument("--duration", type=float, help="override the scenario's duration (seconds)")
    run.add_argument("--quiet", action="store_true", help="print only the summary")
    run.add_argument("--svg", action="store_true", help="also save the final run screen as SVG in the results")
    run.add_argument("--repeat", type=int, default=1, metavar="N", help="run N seeds one after the other, each in "
                     "its own directory under RESULTS, then summarise median, IQR and 95 %% interval per phase")
    run.add_argument("--set", action="append", default=[], metavar="PATH=V1,V2,...", help="sweep a scenario field, "
                     "e.g. 'lanes[pull].poll.interval=5,10,30' (repeatable; with a scenario's sweep: a grid)")
    run.add_argument("--control-fd", type=int, metavar="FD", help=argparse.SUPPRESS)  # the TUI's socket: control.py

    replay = verbs.add_parser("replay", help="replay a recorded run in the TUI")
    replay.add_argument("results", type=Path, help="a results directory (or its events.jsonl)")
    replay.add_argument("--speed", type=float, default=10.0, help="playback speed, 1–100 (default 10)")
    replay.add_argument("--run", metavar="NAME", help="for a directory of repeated trials: replay this run "
                        "(default: show the trials' distributions and pick a run there)")
    replay.add_argument("--at", type=float, metavar="SECONDS", help="start at this scenario time (0 = the run's "
                        "start; negative: during the setup)")

    validate = verbs.add_parser("validate", help="check scenario files; problems as file:line: field: message")
    validate.add_argument("files", nargs="+")

    verbs.add_parser("doctor", help="which environments are usable here, and how to fix what is missing")
    clean = verbs.add_parser("clean", help="remove containers and networks left by earlier runs")
    clean.add_argument("--run", help="only this run id")
    clean.add_argument("--images", action="store_true", help="also remove the run's model and agent images")

    verbs.add_parser("scenarios", help="list the shipped scenarios")

    report = verbs.add_parser("report", help="write a self-contained HTML page (and a Markdown twin) of runs")
    report.add_argument("results", nargs="+", type=Path, metavar="RESULTS", help="results directories (or their "
                        "events.jsonl), or a repeat/sweep parent directory")
    report.add_argument("--out", type=Path, help="the HTML file (default: report.html in the first RESULTS "
                        "directory); the Markdown twin is written beside it (.md)")

    images = verbs.add_parser("images", help="Docker base images")
    image_verbs = images.add_subparsers(dest="images_verb", metavar="ACTION", required=True)
    build_base = image_verbs.add_parser("build-base", help="build the offline base images (debootstrap + docker "
                                        "import: needs root and a Debian mirror, no registry)")
    build_base.add_argument("--base", help="model base image name (default: mlopslab/base:bookworm)")
    build_base.add_argument("--agent-base", help="pull agent base image name (default: mlopslab/agent-base:bookworm)")
    build_base.add_argument("--no-agent", action="store_true", help="only the model base")
    build_base.add_argument("--cache-dir", type=Path, help="debootstrap's package cache "
                            "(default: /var/cache/mlopslab/debs)")
    build_base.add_argument("--mirror", help="Debian mirror (default: http://deb.debian.org/debian)")
    build_base.add_argument("--force", action="store_true", help="rebuild even when present")

    args = parser.parse_args(argv)
    verb = args.verb or "tui"
    handler = {"tui": _tui, "run": _run, "replay": _replay, "validate": _validate, "doctor": _doctor,
               "clean": _clean, "scenarios": _scenarios, "report": _report, "images": _images}[verb]
    return handler(args)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mlopslab")
    except PackageNotFoundError:  # run from a checkout that is not installed
        return "unknown (not installed)"


def _load(name: str) -> Any:
    from mlopslab import scenario

    path = scenario.find(name)
    if not path.exists():
        print(_no_such_scenario(name), file=sys.stderr)
        raise SystemExit(2)
    try:
        return scenario.load(path)
    except scenario.ScenarioError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        raise SystemExit(2) from None


def _no_such_scenario(name: str) -> str:
    """`no scenario 'push-vs-pul': … did you mean push-vs-pull?` — like a mistyped field gets."""
    import difflib

    from mlopslab import scenario

    names = [p.stem for p in scenario.shipped()]
    close = difflib.get_close_matches(Path(name).stem, names, n=2, cutoff=0.6)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    return f"mlopslab: no scenario {name!r}: not a file, and not a shipped name ({', '.join(names)}){hint}"


def _run(args: argparse.Namespace) -> int:
    from mlopslab import headless

    return headless.run(args, _load(args.scenario))


def _validate(args: argparse.Namespace) -> int:
    from mlopslab import scenario

    failed = False
    for name in args.files:
        try:
            sc = scenario.load(scenario.find(name))
            if sc.sweep:
                from mlopslab import sweep

                sweep.grid(sc.path)  # every point of the grid is a valid scenario
            print(f"{name}: ok ({sc.name}: {len(sc.lanes)} lanes, {len(sc.timeline)} timeline events)")
        except scenario.ScenarioError as exc:
            failed = True
            for problem in exc.problems:
                print(problem, file=sys.stderr)
    return 2 if failed else 0


def _scenarios(args: argparse.Namespace) -> int:
    import textwrap

    from mlopslab import scenario

    for path in scenario.shipped():
        try:
            sc = scenario.load(path)
            print(f"{sc.name:22} {textwrap.shorten(sc.description, 100, placeholder=' …')}")
        except scenario.ScenarioError as exc:
            print(f"{path.stem:22} INVALID: {exc.problems[0]}")
    return 0


def _tui(args: argparse.Namespace) -> int:
    from mlopslab import scenario
    from mlopslab.tui.app import run_app

    files = getattr(args, "files", None) or []
    missing = [name for name in files if not scenario.find(name).exists()]
    if missing:
        print(_no_such_scenario(missing[0]), file=sys.stderr)
        return 2
    if len(files) == 1:
        return run_app(scenario=files[0])
    return run_app(files=[scenario.find(name) for name in files])


def _replay(args: argparse.Namespace) -> int:
    from mlopslab import trials
    from mlopslab.tui.app import run_replay

    path = args.results
    if trials.is_parent(path):  # repeated trials: their distributions, then the runs one by one
        runs = [run for point in trials.load(path)["points"] for run in point["runs"]]
        if args.run is None:
            from mlopslab.tui.app import run_trials

            return run_trials(path, speed=args.speed)
        if args.run not in runs:
            print((path / "summary.md").read_text())
            print(f"mlopslab: no run {args.run!r} in {path} (there are: {', '.join(runs)})", file=sys.stderr)
            return 2
        path = path / args.run
    events = path / "events.jsonl" if path.is_dir() else path
    if not events.exists():
        print(f"mlopslab: no events.jsonl at {path}", file=sys.stderr)
        return 2
    return run_replay(events, speed=args.speed, at=args.at)


def _doctor(args: argparse.Namespace) -> int:
    from mlopslab import doctor

    checks = doctor.diagnose()
    print(doctor.format(checks))
    return doctor.exit_code(checks)


def _clean(args: argparse.Namespace) -> int:
    from mlopslab.envs import cleanup

    print(cleanup.clean(run_id=args.run, images=args.images).summary())
    return 0


def _images(args: argparse.Namespace) -> int:
    from mlopslab.envs import images

    options = {"base": args.base, "agent_base": args.agent_base, "cache_dir": args.cache_dir,
               "mirror": args.mirror}
    try:
        built = images.build_bases(agent=not args.no_agent, force=args.force,
                                   **{k: v for k, v in options.items() if v is not None})
    except images.BuildError as exc:
        print(f"mlopslab: images build-base: {exc}", file=sys.stderr)
        return 1
    for name in built:
        print(name)
    return 0


def _report(args: argparse.Namespace) -> int:
    from mlopslab.reporting import page

    try:
        html, md = page.write(args.results, args.out)
    except page.ReportError as exc:
        print(f"mlopslab: report: {exc}", file=sys.stderr)
        return 2
    print(f"report: {html}\nmarkdown: {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
