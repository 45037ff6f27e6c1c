"""The Textual app: which screen to open first, quitting with clean-up, and the entry points the CLI calls."""

from __future__ import annotations

import sys

from pathlib import Path

from textual.app import App
from textual.binding import Binding

from mlopslab.scenario import Scenario
from mlopslab.tui.commands import LabCommands
from mlopslab.tui.screens.confirm import ConfirmScreen
from mlopslab.tui.screens.help import HelpScreen
from mlopslab.tui.screens.picker import PickerScreen
from mlopslab.tui.screens.run import HELP_TIP, QUIT_TIP, RunScreen
from mlopslab.tui.replay import ReplayRun
from mlopslab.tui.sources import LiveRun, Source


class LabApp(App[int]):
    CSS_PATH = Path(__file__).with_name("app.tcss")  # absolute: a subclass elsewhere finds it too
    TITLE = "mlopslab"
    COMMANDS = App.COMMANDS | {LabCommands}
    BINDINGS = [
        Binding("question_mark", "help", "help", key_display="?", tooltip=HELP_TIP),
        Binding("colon,ctrl+p", "command_palette", "commands", key_display=":", show=False, priority=True,
                tooltip="command palette: every action, by name (try `scale push 2`)"),
        Binding("q", "quit", "quit", tooltip=QUIT_TIP),
    ]

    def __init__(self, *, scenario: Scenario | None = None, files: list[Path] | None = None,
                 replay: Path | None = None, speed: float = 10.0, at: float | None = None, playing: bool = True,
                 results: Path | None = None, trials: Path | None = None) -> None:
        super().__init__()
        self.trials = trials
        self.scenario, self.files, self.results = scenario, files or [], results
        self.replay, self.speed, self.at, self.playing = replay, speed, at, playing
        self.source: Source | None = None
        self._quitting = False

    def on_mount(self) -> None:
        self.theme = "textual-dark"
        if self.trials is not None:
            from mlopslab import trials
            from mlopslab.tui.screens.trials import TrialsScreen

            self.push_screen(TrialsScreen(self.trials, trials.load(self.trials)))
        elif self.replay is not None:
            self.open_replay(self.replay)
        elif self.scenario is not None:
            self.start_run(self.scenario)
        else:
            self.push_screen(PickerScreen(self.files))

    def open_replay(self, events: Path) -> None:
        if self.source is not None:
            self.source.close()
        self.source = ReplayRun(events, speed=self.speed, at=self.at, playing=self.playing)
        self.push_screen(RunScreen(self.source))

    def start_run(self, scenario: Scenario) -> None:
        self.source = LiveRun(scenario, self.results)
        self.push_screen(RunScreen(self.source))

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    async def action_quit(self) -> None:
        source = self.source
        if self._quitting:
            return
        if source is None or not source.active:
            self._quitting = True
            self.finish(source.exit_code if source is not None else 0)
            return

        def answered(stop: bool | None) -> None:
            if stop:
                self._quitting = True
                self.notify("stopping the run and cleaning up (replicas, load generator)…", timeout=30)
                self._close(source)

        self.push_screen(ConfirmScreen("Stop the run and quit?", "Replicas and the load generator are stopped, "
                                       "the summary is written to the results directory.", yes="Stop and quit"),
                         answered)

    def finish(self, code: int) -> None:
        """Exit with `code` as both the app's result (what `run_app` returns) and its return code."""
        self.exit(code, return_code=code)

    def _close(self, source: Source) -> None:
        def close() -> None:
            source.close()
            self.call_from_thread(self.finish, source.exit_code)

        self.run_worker(close, thread=True, name="close", group="close")


def run_app(scenario: str | None = None, files: list[Path] | None = None) -> int:
    """`mlopslab` / `mlopslab tui [SCENARIO...]`: one scenario goes straight to the run screen; otherwise the
    picker, the named `files` listed first."""
    from mlopslab import scenario as scenarios

    loaded = None
    if scenario is not None:
        try:
            loaded = scenarios.load(scenarios.find(scenario))
        except scenarios.ScenarioError as exc:
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            return 2
    app = LabApp(scenario=loaded, files=files)
    interrupted = _stop_on_signals(app)
    try:
        code = app.run()
    finally:
        if app.source is not None:   # the run process stops every replica and writes its summary
            if app.source.active:
                print("mlopslab: stopping the run (replicas, load generator) and writing its summary…", flush=True)
            app.source.close()
    if interrupted:
        code = 130
    if app.source is not None:   # once the terminal is back: where the run went and how it ended, as headless
        code = app.source.exit_code if code is None else code
        print(f"results: {app.source.results_dir}  (status: {app.source.status}, exit {code})")
    return code or 0


def _stop_on_signals(app: LabApp) -> list[int]:
    """SIGTERM (or a Ctrl-C sent as a signal: in the terminal it is a key) quits the app; the run process is
    then stopped in order by `run_app`. Returns the list the signals caught are added to."""
    import contextlib
    import signal

    caught: list[int] = []

    def handler(signum: int, frame: object) -> None:
        caught.append(signum)
        with contextlib.suppress(Exception):   # the app may not run yet, or no longer
            app.call_later(app.exit, 130, return_code=130)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)
    return caught


def run_trials(parent: Path, speed: float = 10.0) -> int:
    """`mlopslab replay PARENT`: the distributions of repeated trials; enter replays one run."""
    return LabApp(trials=parent, speed=speed).run() or 0


def run_replay(events_path: Path, speed: float = 10.0, at: float | None = None) -> int:
    """`mlopslab replay RESULTS_DIR [--at SECONDS]`: the same screens over a recorded run."""
    return LabApp(replay=events_path, speed=speed, at=at).run() or 0
