"""What a class sees is true: lane headers compare like with like, one clock for every time shown, manual
changes counted whoever undid them, and a time axis with every tick."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from mlopslab import report
from mlopslab.monitor.timeline import RunState
from mlopslab.tui.app import LabApp
from mlopslab.tui.view import take
from mlopslab.tui.widgets.chart import Chart
from mlopslab.tui.widgets.lane import header
from mlopslab.tui.widgets.log import line
from tests.docker_fixtures import docker_client  # noqa: F401  (a fixture: the engine, or a skip)

RECORDED = Path(__file__).parent / "data" / "short-run" / "events.jsonl"
V1, V2, V3 = "1" * 40, "2" * 40, "3" * 40


def _state(*events: dict[str, Any]) -> RunState:
    state = RunState()
    lanes = [{"name": "a", "delivery": "push", "replicas": 2}, {"name": "b", "delivery": "pull", "replicas": 2}]
    state.apply({"t": 0.0, "kind": "lab_prepared", "lane": None, "scenario": {"name": "s", "duration": 60},
                 "lanes": lanes})
    for event in events:
        state.apply({"lane": None, **event})
    return state


def _commit(t: float, sha: str, version: int, lanes: list[str]) -> dict[str, Any]:
    return {"t": t, "kind": "commit", "sha": sha, "version": version, "lanes": lanes}


def test_lane_header_names_the_lanes_own_commit_on_both_sides_when_a_later_commit_touched_only_other_lanes() -> None:
    state = _state(_commit(1.0, V1, 1, ["a", "b"]), {"t": 2.0, "kind": "run_started"},
                   _commit(3.0, V2, 2, ["a", "b"]), _commit(5.0, V3, 3, ["b"]),
                   # a's CI runs again on b's commit and applies the repo's HEAD: a's manifests are still V2's
                   {"t": 6.0, "kind": "apply_started", "lane": "a", "sha": V3, "revision": V3, "version": 2},
                   {"t": 6.5, "kind": "sync", "lane": "a", "state": "Synced", "head": V2, "live": V3,
                    "live_version": "2"})
    view = take(state)
    text = header(view.lane("a"), view).plain
    assert "desired 2222222 v2  live 2222222 v2" in text
    assert "3333333" not in text


def test_event_log_shows_times_on_the_scenario_clock_and_the_setup_as_setup() -> None:
    state = _state({"t": 1.0, "kind": "model_registered", "version": 1, "accuracy": 0.9},
                   {"t": 5.0, "kind": "run_started"},
                   {"t": 7.6, "kind": "traffic_100", "lane": "a", "version": 1, "at": 7.5022})
    view = take(state)
    setup = next(entry for entry in view.log if entry[1] == "model_registered")
    assert line(setup).plain.split()[0] == "setup"
    traffic = next(entry for entry in view.log if entry[1] == "traffic_100")
    assert line(traffic).plain.split()[0] == "2.6s"
    assert "at=2.50" in line(traffic).plain and "7.50" not in line(traffic).plain


def _changed_then(*undo: dict[str, Any]) -> tuple[RunState, list[str]]:
    state = _state(_commit(1.0, V1, 1, ["a", "b"]), {"t": 2.0, "kind": "run_started"},
                   {"t": 12.0, "kind": "live_change", "lane": "a", "change": {"replicas": 1}, "by": "human"},
                   {"t": 12.0, "kind": "live_change", "lane": "b", "change": {"replicas": 1}, "by": "human"},
                   *undo)
    _, rows = report.rows(report.summarise(state))
    row = next(r for r in rows if r[0].strip().startswith("changed → reverted"))
    return state, row[1:]


def test_a_manual_change_undone_by_the_next_apply_counts_as_reverted_and_says_who() -> None:
    state, cells = _changed_then(
        _commit(13.0, V2, 2, ["b"]),
        {"t": 14.5, "kind": "apply_started", "lane": "a", "sha": V2, "revision": V2, "version": 1},
        {"t": 14.7, "kind": "live_reverted", "lane": "b", "revision": V1})
    view = take(state)
    assert (view.lane("a").changes, view.lane("a").reverted) == (1, 1)
    assert cells == ["2.50s (next apply)", "2.70s (agent self-heal)"]


def test_a_manual_change_nobody_undid_reads_never() -> None:
    _, cells = _changed_then()
    assert cells == ["never", "never"]


def _axis_numbers(chart: Chart) -> list[str]:
    last = chart.render().plain.splitlines()[-1]
    return re.findall(r"\d+(?:\.\d+)?", last)


def test_the_time_axis_keeps_every_round_tick_once_the_run_has_ended() -> None:
    async def drive() -> list[str]:
        app = LabApp(replay=RECORDED, at=1000.0, playing=False)   # the end: the clock is past the duration
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.pause()
            assert app.source.view().now > float(app.source.view().duration)
            return _axis_numbers(app.screen.query_one("#lane-push .latency", Chart))

    assert asyncio.run(drive()) == ["0", "5", "10", "15", "20"]


def test_headless_progress_marks_the_setup_and_puts_raw_times_on_the_scenario_clock(capsys) -> None:  # type: ignore[no-untyped-def]
    from mlopslab.headless import progress as _progress

    start: list[float | None] = [None]
    for event in ({"t": 6.9, "kind": "model_registered", "lane": None, "version": 1},
                  {"t": 7.0, "kind": "run_started", "lane": None},
                  {"t": 9.6, "kind": "traffic_100", "lane": "a", "version": 2, "at": 9.5022}):
        _progress(event, start)
    setup, started, traffic = capsys.readouterr().out.splitlines()
    assert setup.startswith("[setup") and "6.9s]" in setup
    assert "setup" not in started and "0.00s]" in started
    assert "2.60s]" in traffic and "at=2.50" in traffic and "9.50" not in traffic


def test_a_rejected_pipeline_change_reads_as_the_failing_test_and_why_in_one_line(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    import time

    from mlopslab.headless import progress as _progress
    from mlopslab.ml.pipeline import LanePipeline, PipelineHost, PipelineRepo
    from tests.events_helpers import Events

    events = Events()
    host = PipelineHost(emit=events.emit, now=time.monotonic, labelled=None, drift_report=None,  # type: ignore[arg-type]
                        champion_version=None, deliver=None, add_training_rows=None,  # type: ignore[arg-type]
                        stopped=lambda: False, registry=None, model_name="m", feature_names=[],  # type: ignore[arg-type]
                        train_lock=None)
    pipeline = LanePipeline("level2", 2, host, PipelineRepo(tmp_path / "pipelines"), tmp_path / "work")
    assert pipeline.commit_code(False, "refactor prepare()") is False   # real git, CI in a real process
    rejected = events.of("pipeline_rejected")[0]
    assert rejected["failed"] == "test_prepare_keeps_rows_and_labels: AssertionError: prepare must not change labels"

    _progress({**rejected, "t": 3.0}, [1.0])
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "Traceback" not in out
    assert "test_prepare_keeps_rows_and_labels: AssertionError: prepare must not change labels" in out
    state = _state({"t": 2.0, "kind": "run_started"}, {**rejected, "t": 3.0})
    assert "a test fails: test_prepare_keeps_rows_and_labels" in line(take(state).log[-1], take(state)).plain


NO_ENGINE = "unix:///nonexistent/docker.sock"   # a Docker engine that is not there: no engine needed to test


def test_headless_run_whose_environment_is_not_usable_fails_before_training_and_says_how_to_fix_it(
        tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "DOCKER_HOST": NO_ENGINE}
    done = subprocess.run([sys.executable, "-m", "mlopslab", "run", "push-vs-pull-docker", "--results",
                           str(tmp_path / "run")], capture_output=True, text=True, env=env, timeout=60, check=False)
    assert done.returncode == 1
    assert "environment docker is not usable here" in done.stderr and "fix: " in done.stderr
    kinds = [line.split('"kind":"')[1].split('"')[0] for line in (tmp_path / "run" / "events.jsonl").open()]
    assert "preflight_failed" in kinds and "model_registered" not in kinds   # nothing was trained


def test_a_missing_base_image_stops_the_run_before_anything_is_trained(tmp_path: Path, docker_client,  # type: ignore[no-untyped-def]  # noqa: F811
                                                                       monkeypatch) -> None:
    from mlopslab import scenario
    from mlopslab.envs.baseimage import FALLBACK_ENV
    from mlopslab.lab import Lab, PrerequisiteError

    monkeypatch.setenv(FALLBACK_ENV, "")   # neither the offline base nor a pull may stand in for it
    sc = scenario.load(scenario.find("push-vs-pull-docker"))
    sc = replace(sc, environment=replace(sc.environment, base_image="mlopslab-test/no-such-base:0"))
    lab = Lab(sc, tmp_path / "run")
    with pytest.raises(PrerequisiteError, match="base image: the Docker base image mlopslab-test/no-such-base:0 is "
                       "not on this engine") as caught:
        lab.run()
    assert "fix: mlopslab images build-base" in str(caught.value)
    registered = [e for e in map(json.loads, (tmp_path / "run" / "events.jsonl").read_text().splitlines())
                  if e["kind"] == "model_registered"]
    assert lab.status == "failed" and registered == []   # no model was trained


def test_tui_run_whose_environment_is_not_usable_shows_a_failure_panel_and_exits_1(
        tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from mlopslab import scenario
    from mlopslab.tui.screens.failure import FailureScreen
    from mlopslab.tui.widgets.narration import Narration

    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE)
    docker = scenario.load(scenario.find("push-vs-pull-docker"))

    async def drive() -> LabApp:
        app = LabApp(scenario=docker, results=tmp_path / "run")
        async with app.run_test(size=(120, 40)) as pilot:
            for _ in range(200):   # the lab fails on its thread; the panel is pushed and composed on the UI's
                if isinstance(app.screen, FailureScreen) and app.screen.query("#failure Static"):
                    break
                await pilot.pause(0.05)
            assert isinstance(app.screen, FailureScreen)
            panel = app.screen.query_one("#failure Static").render().plain  # type: ignore[union-attr]
            assert "could not start" in panel and "docker engine" in panel and "fix" in panel
            narration = app.screen_stack[-2].query_one(Narration).render().plain  # type: ignore[union-attr]
            assert not narration.startswith("The scenario's narration appears here")   # nothing glued on it
            await pilot.press("escape")   # back to the run screen: an ended run offers no actions on it
            await pilot.pause(0.3)
            labels = " ".join(str(key.description) for key in app.screen.query("FooterKey"))  # type: ignore[attr-defined]
            assert "release" not in labels and "quit" in labels
            from mlopslab.tui.commands import LabCommands

            offered = [name for name, _, _ in LabCommands(app.screen).commands()]
            assert "release a new model version" not in offered and "show summary" in offered
            await pilot.press("q")
            await pilot.pause()
        return app

    assert asyncio.run(drive()).return_code == 1


def test_picker_marks_a_scenario_whose_environment_is_not_usable_with_the_doctors_reason(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from mlopslab.tui.screens.picker import PickerScreen

    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE)

    async def drive() -> None:
        app = LabApp()
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            picker = app.screen
            assert isinstance(picker, PickerScreen)
            await app.workers.wait_for_complete()
            await pilot.pause()
            docker = next(e for e in picker.entries if e.scenario and e.scenario.environment.kind == "docker")
            local = next(e for e in picker.entries if e.scenario and e.scenario.environment.kind == "local")
            assert docker.unusable and "docker engine: not reachable" in docker.unusable
            assert local.unusable is None

    asyncio.run(drive())


def _in_a_terminal(args: list[str], env: dict[str, str], keys_when: list[tuple[str, bytes]], timeout: float = 60.0
                   ) -> tuple[int, str]:
    """Runs the CLI in a real pseudo-terminal (120×40); each time `text` has appeared, types `keys`.
    Returns the exit status and everything written to the terminal, escape codes dropped."""
    import fcntl
    import os
    import pty
    import select
    import struct
    import subprocess
    import sys
    import termios
    import time

    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "mlopslab", *args], stdin=child, stdout=child, stderr=child,
                            env={**env, "TERM": "xterm-256color"}, start_new_session=True)
    os.close(child)
    seen, pending = b"", list(keys_when)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(main, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                seen += chunk
            plain = re.sub(rb"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]", b"", seen)
            if pending and pending[0][0].encode() in plain:
                os.write(main, pending.pop(0)[1])
            if proc.poll() is not None and not ready:
                break
        code = proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(main)
    return code, re.sub(r"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]", "", seen.decode(errors="replace"))


def test_quitting_the_tui_prints_the_results_path_and_the_exit_status(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "DOCKER_HOST": NO_ENGINE, "MLOPSLAB_RESULTS": str(tmp_path)}
    code, screen = _in_a_terminal(["tui", "push-vs-pull-docker"], env, [("could not start", b"q")])
    assert code == 1
    after = screen.rsplit("could not start", 1)[1]   # what follows the last frame of the failure panel
    assert re.search(rf"results: {tmp_path}/push-vs-pull-docker-\S+  \(status: failed, exit 1\)", after)


def _drift_levels_rows() -> tuple[dict[str, list[str]], list[dict[str, Any]]]:
    import json

    events = [json.loads(line) for line in (RECORDED.parent.parent / "drift-levels-short" / "events.jsonl").open()]
    state = RunState()
    for event in events:
        state.apply(event)
    _, rows = report.rows(report.summarise(state))
    return {row[0].strip(): row[1:] for row in rows}, events


def test_drift_levels_summary_shows_mean_accuracy_since_drift_and_accuracy_seconds_lost_from_the_events() -> None:
    rows, events = _drift_levels_rows()
    start = next(e["t"] for e in events if e["kind"] == "run_started")
    change = next(e["t"] for e in events if e["kind"] == "drift_injected") - start
    expected_mean: list[str] = []
    expected_lost: list[float] = []
    for lane in ("level0", "level1", "level2"):
        scored = [(e["window"] - start, e["value"]) for e in events if e["kind"] == "accuracy" and e["lane"] == lane
                  and e.get("value") is not None]
        before = [v for t, v in scored if t < change]
        after = [v for t, v in scored if t >= change]
        expected_mean.append(f"{sum(after) / len(after):.3f}")
        baseline = sum(before) / len(before)
        expected_lost.append(sum(max(0.0, baseline - v) for v in after))
    assert rows["mean accuracy since drift"] == expected_mean
    lost = [float(cell) for cell in rows["accuracy-seconds lost"]]
    assert lost == pytest.approx(expected_lost, abs=0.06)   # shown to 0.1
    assert lost[0] > max(lost[1:])   # level 0 waited for a person: it lost the most


def test_a_retrain_a_person_started_counts_the_wait_for_that_person() -> None:
    rows, events = _drift_levels_rows()
    start = next(e["t"] for e in events if e["kind"] == "run_started")
    alarm = min(e["t"] for e in events if e["kind"] == "drift_alarm" and e["lane"] == "level0") - start
    person = next(e["t"] for e in events if e["kind"] == "retrain_started" and e["lane"] == "level0") - start
    level0 = rows["wait for a person, then labels"][0]
    assert f"(person {person - alarm:.2f}s)" in level0 and float(level0.split("s")[0]) >= person - alarm
    state = RunState()
    for event in events:
        state.apply(event)
    view = take(state)
    done = [line(entry, view).plain for entry in view.log if entry[1] == "retrain_done" and entry[2] == "level0"]
    assert f"a person {person - alarm:.2f}s, labels" in done[0]   # the log says it too


THREE_LANES = Path(__file__).parent / "data" / "polling-vs-webhook" / "events.jsonl"


def test_at_120x40_every_lanes_rollout_plot_and_summary_column_is_visible_without_scrolling() -> None:
    from textual.widgets import DataTable

    from mlopslab.tui.widgets.lane import LanePanel

    async def drive() -> None:
        app = LabApp(replay=THREE_LANES, at=1000.0, playing=False)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            screen = app.screen
            panels = list(screen.query(LanePanel))
            assert len(panels) == 3
            for panel in panels:
                rollout = panel.query_one(".rollout", Chart)
                assert panel.max_scroll_y == 0, f"{panel.lane} scrolls"
                assert panel.region.contains_region(rollout.region) and rollout.region.height >= 5
                assert "┤" in rollout.render().plain           # a plot, not "too small to plot here"
            table = screen.query_one(DataTable)
            assert table.virtual_size.width <= table.scrollable_content_region.width, "the summary is cut"
            header = [str(column.label) for column in table.columns.values()]
            assert header[1:] == ["slow-poll (pull)", "fast-poll (pull)", "webhook (pull)"]

    asyncio.run(drive())


def test_at_80x24_the_summary_keeps_a_column_for_every_lane() -> None:
    from textual.widgets import DataTable

    async def drive() -> None:
        app = LabApp(replay=THREE_LANES, at=1000.0, playing=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            table = app.screen.query_one(DataTable)
            assert table.virtual_size.width <= table.scrollable_content_region.width, "the summary is cut"
            header = [str(column.label) for column in table.columns.values()]
            assert header[1:] == ["slow-poll", "fast-poll", "webhook"]

    asyncio.run(drive())


def test_at_80x24_a_live_runs_footer_keeps_help_and_quit(tmp_path: Path) -> None:
    from textual.widgets import Footer

    from mlopslab import scenario

    live = scenario.load(scenario.find("push-vs-pull"))   # a live run shows the most keys

    async def drive() -> str:
        app = LabApp(scenario=live, results=tmp_path / "run")
        async with app.run_test(size=(80, 24)) as pilot:
            labels = ""
            for _ in range(100):   # a busy machine may take a while to lay the run screen out
                await pilot.pause(0.05)
                footers = app.screen.query(Footer)
                shown = [key for footer in footers for key in footer.query("FooterKey")
                         if key.region.width and key.region.right <= 80]
                labels = " ".join(f"{key.key_display} {key.description}" for key in shown)  # type: ignore[attr-defined]
                if "q quit" in labels:
                    break
            app.source.close()
        return labels

    labels = asyncio.run(drive())
    assert "? help" in labels and "q quit" in labels and "c release" in labels


def test_event_log_shows_whole_lane_names_and_keeps_its_columns_for_long_event_kinds() -> None:
    state = _state({"t": 2.0, "kind": "run_started"})
    state.apply({"t": 0.0, "kind": "lab_prepared", "lane": None, "scenario": {"name": "s"},
                 "lanes": [{"name": "fast-poll", "delivery": "pull"}, {"name": "webhook", "delivery": "pull"}]})
    for kind in ("retrain_registered", "human_action"):
        state.apply({"t": 3.0, "kind": kind, "lane": "fast-poll", "retrain": "r", "version": 2, "action": "retrain"})
    view = take(state)
    texts = [line(entry, view).plain for entry in view.log if entry[1] in ("retrain_registered", "human_action")]
    assert all("fast-poll " in text for text in texts)
    starts = {text.index(word) for text, word in zip(texts, ("r registered", "a person"))}
    assert len(starts) == 1, texts   # the details start in one column whatever the kind


def test_one_highlight_marks_the_active_lane_and_toasts_leave_the_newest_log_lines_visible() -> None:
    from textual.widgets._toast import Toast, ToastRack

    from mlopslab.tui.widgets.lane import LanePanel

    async def drive() -> None:
        app = LabApp(replay=THREE_LANES, at=45.0, playing=False)
        async with app.run_test(size=(160, 48), notifications=True) as pilot:
            await pilot.pause()
            await pilot.press("l")                  # the next lane becomes active; focus was on the first
            await pilot.pause()
            borders = {panel.lane: panel.styles.border_top for panel in app.screen.query(LanePanel)}
            active = borders.pop(app.screen.active_lane)   # type: ignore[attr-defined]
            assert app.screen.active_lane == "fast-poll"   # type: ignore[attr-defined]
            assert len(set(borders.values())) == 1 and active not in borders.values()
            app.notify("a toast")
            await pilot.pause()
            await pilot.pause(0.2)
            rack = app.screen.get_child_by_type(ToastRack)
            toast = rack.query_one(Toast)
            log = app.screen.query_one("#log")
            assert toast.region.height and not toast.region.overlaps(log.region), (toast.region, log.region)

    asyncio.run(drive())


def test_help_explains_fast_self_heal_beside_a_slow_poll_and_100_percent_before_rolled_out() -> None:
    from rich.console import Console

    from mlopslab.tui.screens.help import legend

    console = Console(width=200, record=True)
    console.print(legend())
    text = " ".join(console.export_text().split())
    assert "watches the live state all the time" in text and "100% is read from the requests" in text


def test_a_pull_lanes_header_gives_its_poll_as_the_range_it_really_waits() -> None:
    state = _state()
    state.lanes["b"].settings.update(poll_interval=8.0, poll_jitter=4.0, self_heal=True)
    view = take(state)
    assert "polls repo 8–12s, heals live" in header(view.lane("b"), view).plain   # interval + up to the jitter


def _keys_text(screen: Any) -> str:
    from rich.console import Console

    from mlopslab.tui.screens.help import keys

    console = Console(width=200, record=True)
    console.print(keys(screen))
    return console.export_text()


def test_help_lists_each_of_the_labs_keys_once_and_none_of_textuals_defaults() -> None:
    async def drive() -> str:
        app = LabApp(replay=THREE_LANES, at=45.0, playing=False)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            return _keys_text(app.screen)

    text = asyncio.run(drive())
    rows = [line.split()[0] for line in text.splitlines() if line.strip()]
    assert sum(1 for row in rows if row.startswith(":")) == 1, text
    assert "Focus Next" not in text and "^q" not in text and "tab" not in rows
    assert rows.count("?") == 1 and rows.count("q") == 1
    assert "show the event log" in text and "show the summary table" in text   # e and t


def test_the_pickers_palette_offers_quit_as_leaving_when_nothing_runs() -> None:
    from mlopslab.tui.commands import LabCommands

    async def drive() -> str:
        app = LabApp()
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            provider = LabCommands(app.screen)
            return next(help for name, _, help in provider.commands() if name == "quit")

    assert asyncio.run(drive()) == "leave the lab (q)"


def test_scenarios_cuts_a_description_at_a_word_with_an_ellipsis(capsys) -> None:  # type: ignore[no-untyped-def]
    from mlopslab.cli import main

    assert main(["scenarios"]) == 0
    for row in capsys.readouterr().out.splitlines():
        description = row[23:]
        assert len(description) <= 100
        assert description.endswith((" …", ".")) or len(description) < 98, row


def test_version_and_a_did_you_mean_for_a_mistyped_scenario_name(capsys) -> None:  # type: ignore[no-untyped-def]
    from mlopslab.cli import main

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and re.match(r"mlopslab \S+", capsys.readouterr().out)
    with pytest.raises(SystemExit) as done:
        main(["run", "push-vs-pul"])
    assert done.value.code == 2 and "did you mean push-vs-pull" in capsys.readouterr().err
    assert main(["tui", "polling-vs-webhok"]) == 2
    assert "did you mean polling-vs-webhook?" in capsys.readouterr().err


def test_a_draining_replica_is_struck_out_and_not_counted_so_the_strip_agrees_with_synced() -> None:
    from mlopslab.tui.widgets.replicas import strip

    events = [{"t": 3.0 + i / 10, "kind": "replica_started", "lane": "a", "replica": name, "version": version}
              for i, (name, version) in enumerate((("a-v1-1", "1"), ("a-v1-2", "1"), ("a-v2-3", "2"), ("a-v2-4", "2")))]
    events += [{"t": 4.0, "kind": "replica_ready", "lane": "a", "replica": name, "version": version}
               for name, version in (("a-v1-1", "1"), ("a-v1-2", "1"), ("a-v2-3", "2"), ("a-v2-4", "2"))]
    events += [{"t": 5.0, "kind": "replica_stopped", "lane": "a", "replica": "a-v1-1", "version": "1",
                "reason": "rollout"},
               {"t": 5.1, "kind": "replica_terminating", "lane": "a", "replica": "a-v1-2", "version": "1",
                "reason": "rollout"}]
    state = _state({"t": 2.0, "kind": "run_started"}, *events)
    text = strip(take(state).lane("a")).plain
    assert text.startswith("replicas 2/2 ready") and "desired" not in text and "v1×" in text
