"""A run that failed, shown as a failure: what went wrong, how to fix it, where the logs are. `q` quits (exit 1)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Static


def failure(title: str, message: str, logs: str) -> Text:
    """The title, the reason, each `fix:` line highlighted, and the logs' path."""
    text = Text(f"{title}\n\n", style="bold #ff6b6b")
    for line in message.splitlines():
        if line.startswith("fix: "):
            text.append("fix  ", style="bold #6fd36f")
            text.append(f"{line.removeprefix('fix: ')}\n", style="bold")
        else:
            text.append(f"{line}\n")
    text.append(f"\nevents and logs: {logs}", style="#8a8a8a")
    return text


class FailureScreen(ModalScreen[None]):
    BINDINGS = [Binding("q", "app.quit", "quit"), Binding("escape", "dismiss", "look at the run")]

    def __init__(self, title: str, message: str, logs: str) -> None:
        super().__init__()
        self.title_text, self.message, self.logs = title, message, logs

    def compose(self) -> ComposeResult:
        with Vertical(id="failure"):
            yield Static(failure(self.title_text, self.message, self.logs))
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#failure").border_title = self.title_text
