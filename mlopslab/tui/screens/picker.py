"""The scenario picker: shipped scenarios and files the user names, each with its description."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Input, OptionList, Static
from textual.widgets.option_list import Option

from mlopslab import scenario as scenarios
from mlopslab.tui.widgets.lane import poll_range


@dataclass
class Entry:
    path: Path
    scenario: scenarios.Scenario | None
    problems: list[str]
    unusable: str | None = None   # why its environment does not work here (`mlopslab doctor`'s words)


def load(path: Path) -> Entry:
    try:
        return Entry(path, scenarios.load(path), [])
    except scenarios.ScenarioError as exc:
        return Entry(path, None, [str(p) for p in exc.problems])
    except OSError as exc:
        return Entry(path, None, [f"{path}: {exc.strerror or exc}"])


def describe(entry: Entry) -> Text:
    sc = entry.scenario
    if sc is None:
        text = Text(f"{entry.path}\n\n", style="bold")
        text.append("This file has problems:\n", style="bold #ff6b6b")
        for problem in entry.problems:
            text.append(f"  {problem}\n", style="#ff6b6b")
        return text
    text = Text(sc.name, style="bold")
    text.append(f"   {entry.path}\n\n", style="#8a8a8a")
    if entry.unusable:
        text.append("✗ cannot run here\n", style="bold #ff6b6b")
        text.append(f"{entry.unusable}\n\n", style="#ff6b6b")
    text.append(f"{sc.description}\n\n")
    text.append(f"{sc.environment.kind} environment · {sc.duration:.0f} s · {sc.rate:g} req/s · seed {sc.seed}\n",
                style="#b0b0b0")
    for lane in sc.lanes:
        extra = (f"polls the repo every {poll_range({'poll_interval': lane.poll_interval, 'poll_jitter': lane.poll_jitter})}" + (", webhook" if lane.webhook else "")
                 + (", self-heal" if lane.self_heal else "")) if lane.delivery == "pull" else (
                     f"Flux's controllers poll the repo every {lane.poll_interval:g} s and correct drift as often"
                     if lane.delivery == "flux" else "runs on each commit")
        text.append(f"  lane {lane.name}: ", style="bold")
        level = f", MLOps level {lane.level}" if any(other.level for other in sc.lanes) else ""
        text.append(f"{lane.delivery}, {lane.replicas} replicas, {extra}{level}\n")
    if sc.timeline:
        text.append("\ntimeline\n", style="bold")
        for event in sc.timeline:
            args = ", ".join(f"{k}={v}" for k, v in event.args.items())
            text.append(f"  {event.at:5.0f}s  {event.action}  ", style="#ffd75f")
            text.append(f"{args}\n", style="#b0b0b0")
    return text


class PickerScreen(Screen):
    BINDINGS = [
        Binding("enter", "run", "run", tooltip="run the highlighted scenario", priority=False),
        Binding("o", "open", "open file", tooltip="type the path of another scenario file"),
        Binding("escape", "back", "back", show=False),
    ]

    def __init__(self, files: list[Path] | None = None) -> None:
        super().__init__()
        self.entries = [load(p) for p in (files or [])] + [load(p) for p in scenarios.shipped()]

    def compose(self) -> ComposeResult:
        yield Static(Text.assemble((" mlopslab ", "bold #101010 on #5aa9ff"),
                                   "  pick a scenario — enter runs it, o opens another file, ? help"), id="title")
        with Horizontal(id="picker"):
            yield OptionList(*[self._option(i, e) for i, e in enumerate(self.entries)], id="scenarios")
            with VerticalScroll(id="about"):
                yield Static(id="description")
        yield Input(placeholder="path to a scenario file (enter to add it)", id="path")
        yield Footer(compact=True)

    @staticmethod
    def _option(index: int, entry: Entry) -> Option:
        if entry.scenario is None:
            return Option(Text.assemble((entry.path.stem, "#ff6b6b"), ("\nhas problems", "#8a8a8a")), id=str(index))
        if entry.unusable:
            return Option(Text.assemble((f"✗ {entry.scenario.name}", "bold #ff6b6b"),
                                        (f"\n{entry.scenario.environment.kind} not usable here", "#8a8a8a")),
                          id=str(index))
        return Option(Text.assemble((entry.scenario.name, "bold"), (f"\n{entry.path.name}", "#8a8a8a")), id=str(index))

    def on_mount(self) -> None:
        self.query_one("#scenarios").border_title = "scenarios"
        self.query_one("#about").border_title = "about"
        options = self.query_one(OptionList)
        options.focus()
        if self.entries:
            options.highlighted = 0
            self._describe(0)
        else:
            self.query_one("#description", Static).update("No scenarios found: press o and type a file's path.")
        self.check_environments()

    @work(thread=True, exclusive=True, group="doctor")
    def check_environments(self) -> None:
        """`mlopslab doctor` for each environment the listed scenarios need (off the UI thread: an engine
        may take seconds to answer), then the unusable ones are marked with its reason and fix."""
        from mlopslab import doctor

        needs = {(e.scenario.environment.kind, e.scenario.environment.base_image) for e in self.entries
                 if e.scenario is not None and e.scenario.environment.kind != "local"}
        verdicts = {need: doctor.problems(*need) for need in needs}
        reasons = {need: doctor.explain(need[0], failed) for need, failed in verdicts.items() if failed}
        self.app.call_from_thread(self._mark, reasons)

    def _mark(self, reasons: dict[tuple[str, str | None], str]) -> None:
        if not self.is_attached:
            return
        for entry in self.entries:
            if entry.scenario is not None:
                entry.unusable = reasons.get((entry.scenario.environment.kind, entry.scenario.environment.base_image))
        self._relist(self.query_one(OptionList).highlighted or 0)

    def _relist(self, highlighted: int) -> None:
        options = self.query_one(OptionList)
        options.clear_options()
        options.add_options([self._option(i, e) for i, e in enumerate(self.entries)])
        if self.entries:
            options.highlighted = highlighted
            self._describe(highlighted)

    def _describe(self, index: int | None) -> None:
        if index is not None and 0 <= index < len(self.entries):
            self.query_one("#description", Static).update(describe(self.entries[index]))

    @on(OptionList.OptionHighlighted)
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self._describe(event.option_index)

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        self.run_entry(event.option_index)

    def action_run(self) -> None:
        self.run_entry(self.query_one(OptionList).highlighted)

    def run_entry(self, index: int | None) -> None:
        if index is None or not 0 <= index < len(self.entries):
            return
        entry = self.entries[index]
        if entry.scenario is None:
            self.notify("this scenario has problems: fix them first (see the right panel)", severity="error")
            return
        self.app.start_run(entry.scenario)   # an unusable environment fails the run's own check, with the fix

    def action_open(self) -> None:
        self.query_one("#path", Input).focus()

    def action_back(self) -> None:
        self.query_one(OptionList).focus()

    @on(Input.Submitted, "#path")
    def _path_submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        if not value:
            return
        path = scenarios.find(value)
        if not path.exists():
            self.notify(f"no such file: {value}", severity="error")
            return
        self.add(path)
        event.input.value = ""

    def add(self, path: Path) -> None:
        self.entries.insert(0, load(path))
        self._relist(0)
        self.query_one(OptionList).focus()
        self.check_environments()
