"""The `?` screen: every key of the screen below, and what the colours and marks on it mean."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from mlopslab.tui.palette import MARK_STYLES, SYNC_COLORS, VERSION_COLORS

SYNC_MEANING = {
    "Synced": "the live deployment is what the lane's last commit asks for (version, replicas, template); "
              "`desired` and `live` name the lane's commit on each side",
    "OutOfSync": "the lane's last commit is not applied yet, or live was changed by hand",
    "Progressing": "a rollout is under way",
    "Degraded": "the rollout failed (progress deadline) or replicas are unhealthy",
}
MARK_MEANING = {"commit": "commit to the env repo", "detected": "the delivery noticed it",
                "applied": "rollout done (all replicas updated)", "100%": "every request hits the new version "
                "(on the accuracy plot: a retrained one)", "alarm": "drift alarm (the lane's drift monitor)",
                "retrain": "a retraining run starts (on an alarm, or by hand)",
                "retrain_validated": "the retrained challenger was validated against the champion",
                "retrain_failed": "a retraining run failed"}
LOOKS_WRONG = (  # what looks like a contradiction on screen, and why it is not one
    ("self-heal in < 1 s, polls every 8–12 s?",
     ("a pull agent fetches the repo on its poll (interval up to interval + jitter, or when a webhook wakes it) "
      "to learn of commits, but watches the live state all the time (every second, like Argo CD's watch on "
      "the cluster): a manual change is reverted at once, a new commit waits for the next poll")),
    ("100% traffic before rolled out?",
     ("100% is read from the requests: the first request after the last one an old replica answered. The "
      "balancer may send nothing more to an old replica in its last moments, so it can come a few tens of ms "
      "before the controller says rolled out (every replica updated, the old ones out of the endpoints). "
      "On a canary, blue-green, shadow or A/B lane it comes seconds before: 100% is the promotion, rolled "
      "out is the primary running the new version; a rolled-back version has neither")),
)
PLOTS = ("accuracy: each second of predictions scored once its labels arrived (they come late, so the "
         "plot lags the run); drift: share of features whose recent rows differ from the training rows; "
         "orange: drift injected; weight % (a canary, blue-green, shadow or A/B lane, in place of the share "
         "per version): % of user requests on the candidate (blue), copies of every request (purple), % of "
         "cohorts (yellow), a green or red line where it was promoted or rolled back, and the rollout's marks; "
         "the lane's header lists each gate's latest value against its "
         "threshold (✓ pass, ✗ fail, … waiting for samples or labels)")


def keys(screen: Screen) -> Table:
    """The lab's own keys for this screen, each once: Textual's defaults (tab, ctrl+q…) are not ours to list."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold #ffd75f", no_wrap=True)
    table.add_column()
    seen: set[str] = set()
    for node in [screen, screen.app]:
        own = [cls.__dict__.get("BINDINGS", []) for cls in type(node).__mro__ if cls.__module__.startswith("mlopslab")]
        for binding in (b for bindings in own for b in bindings):
            if not isinstance(binding, Binding):
                continue
            action = binding.action.removeprefix("app.")
            if not binding.description or action in seen or not _allowed(node, binding.action):
                continue
            seen.add(action)
            shown = " / ".join(binding.key_display if binding.key_display and i == 0 else
                               screen.app.get_key_display(Binding(key, "")) for i, key in enumerate(binding.key.split(",")))
            table.add_row(shown, binding.tooltip or binding.description)
    return table


def _allowed(node: Screen | object, action: str) -> bool:
    """False for the keys a screen turns off (a replay's release, a live run's seek)."""
    target, name = (node.app, action[4:]) if action.startswith("app.") else (node, action)  # type: ignore[attr-defined]
    return target.check_action(name.split("(")[0], ()) is not False


def legend() -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(no_wrap=True)
    table.add_column()
    for state, meaning in SYNC_MEANING.items():
        table.add_row(Text(f"● {state}", style=f"bold {SYNC_COLORS[state]}"), meaning)
    table.add_row("", "")
    for phase, meaning in MARK_MEANING.items():
        glyph, color = MARK_STYLES[phase]
        table.add_row(Text(f"│{glyph}", style=f"bold {color}"), meaning)
    table.add_row(Text("━ plots", style="bold #6fd3a0"), PLOTS)
    table.add_row("", "")
    versions = Text()
    for i, color in enumerate(VERSION_COLORS[:5], start=1):
        versions.append(f" v{i} ", style=f"bold #101010 on {color}")
        versions.append(" ")
    table.add_row(versions, "model versions: replicas and rollout lines share these colours")
    table.add_row(Text(" v2…", style=f"{VERSION_COLORS[1]} on #303030"), "a replica that is starting (not ready)")
    table.add_row("", "")
    for question, answer in LOOKS_WRONG:
        table.add_row(Text(question, style="bold #ffd75f"), answer)
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "close", show=True)]

    def __init__(self, under: Screen) -> None:
        super().__init__()
        self.under = under

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(Text("Keys", style="bold underline"))
            yield Static(keys(self.under))
            yield Static(Text("\nWhat you see", style="bold underline"))
            yield Static(legend())
            yield Static(Text("\nThe mouse works too: click a lane, a tab, a footer key. Esc closes this.",
                              style="italic #8a8a8a"))

    def on_mount(self) -> None:
        self.query_one("#help").border_title = "help"
