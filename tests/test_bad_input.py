"""Bad input never hangs: every malformed scenario ends at once with exit 2 and file:line problems."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlopslab import scenario

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parent.parent
# Inputs that used to hang `validate` (or slip through it), and what each must now say: (line, path, words).
BAD = {
    "empty.yaml": (1, "", "holds no scenario"),
    "comment.yaml": (1, "", "holds no scenario"),
    "null.yaml": (1, "", "holds no scenario"),
    "list.yaml": (1, "", "expected a mapping, got a list"),
    "scalar.yaml": (1, "", "expected a mapping, got an integer"),
    "name-only.yaml": (1, "duration", "is required"),
    "nolanes.yaml": (1, "lanes", "non-empty list of lanes"),
    "dup.yaml": (7, "lanes[0].replicas", "duplicate key (first on line 6, again on line 7)"),
    "nan.yaml": (3, "traffic.rate", "expected a finite number, got nan"),
    "deep.yaml": (1, "", "nested deeper than"),
    "laughs.yaml": (1, "", "anchors (&a0) are not allowed"),
    "bin.yaml": (2, "", "not UTF-8 text"),
    "tab.yaml": (3, "", "indented with a tab"),
    "surge.yaml": (3, "lanes[0].rollout", "maxSurge and maxUnavailable cannot both be zero"),
    "flux-local.yaml": (5, "lanes[0].delivery", "delivery: flux needs environment kind kubernetes"),
    "runtime-local.yaml": (3, "environment.runtime", "only a kubernetes environment has runtime"),
    "kubeconfig-embedded.yaml": (3, "environment.cluster", "set cluster: context"),
    "cluster-kind.yaml": (3, "environment.cluster", "embedded"),
    # found by Hypothesis (test_validator_properties.py):
    "lane-list.yaml": (7, "timeline[0].manual_change.lane", "expected a string, got a list"),
    # deployment strategies (mlopslab/strategies/schema.py)
    "strategy-field.yaml": (6, "lanes[0].strategy.stepWeight", "does not apply to type blue-green"),
    "strategy-gate.yaml": (9, "lanes[0].strategy.gates[0]", "expected min and/or max"),
    "strategy-steps.yaml": (11, "lanes[0].strategy.steps[1].pause.seconds", "unknown field (expected one of: duration)"),
    "release-latency.yaml": (7, "timeline[0].release.latency_ms", "expected a number"),
}


def _problems(path: Path) -> list[scenario.Problem]:
    start = time.monotonic()
    with pytest.raises(scenario.ScenarioError) as info:
        scenario.load(path)
    assert time.monotonic() - start < 1.0, f"{path.name} took {time.monotonic() - start:.2f} s"
    return info.value.problems


@pytest.mark.parametrize("name", sorted(BAD))
def test_malformed_file_ends_at_once_with_its_line_and_field(name: str) -> None:
    line, path, words = BAD[name]
    problems = _problems(DATA / "bad-scenarios" / name)
    assert any(p.line == line and p.path == path and words in p.message for p in problems), problems


def test_every_file_of_the_bad_corpus_is_named_in_the_table() -> None:
    """Examples Hypothesis finds are kept in the corpus; each needs the answer it must get."""
    assert {p.name for p in (DATA / "bad-scenarios").iterdir()} == set(BAD)


def test_duplicates_name_both_lines_at_every_level(tmp_path: Path) -> None:
    path = tmp_path / "dups.yaml"
    path.write_text("name: a\nname: b\nduration: 20\nlanes:\n  - {name: x, delivery: push, name: y}\n")
    problems = {(p.line, p.path): p.message for p in _problems(path)}
    assert "first on line 1, again on line 2" in problems[(2, "name")]
    assert "first on line 5, again on line 5" in problems[(5, "lanes[0].name")]


def test_non_finite_numbers_are_refused_wherever_a_number_is_expected(tmp_path: Path) -> None:
    path = tmp_path / "inf.yaml"
    path.write_text("name: a\nduration: .inf\ntraffic: {label_delay: -.inf}\nlanes: [{name: x, delivery: pull, "
                    "poll: {interval: .NaN}}]\ntimeline:\n  - {at: .nan, pause_traffic: {}}\n")
    found = {(p.line, p.path) for p in _problems(path) if "finite" in p.message}
    assert found == {(2, "duration"), (3, "traffic.label_delay"), (4, "lanes[0].poll.interval"), (6, "timeline[0].at")}


def test_timeline_entries_at_or_after_the_end_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "late.yaml"
    path.write_text("name: a\nduration: 20\nlanes: [{name: x, delivery: push}]\ntimeline:\n"
                    "  - {at: 19.9, pause_traffic: {}}\n  - {at: 20, resume_traffic: {}}\n")
    assert [(p.line, p.path) for p in _problems(path)] == [(6, "timeline[1].at")]


def test_a_byte_order_mark_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + (ROOT / "scenarios" / "push-vs-pull.yaml").read_bytes())
    assert scenario.load(path).name == "push-vs-pull"


def test_custom_tags_and_second_documents_are_refused_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "tags.yaml"
    path.write_text("name: a\nduration: !!binary aGVsbG8=\n")
    assert "custom tags" in _problems(path)[0].message and _problems(path)[0].line == 2
    path.write_text("name: a\n---\nname: b\n")
    assert (_problems(path)[0].line, "second") == (2, "second") and "one YAML document" in _problems(path)[0].message


def test_a_missing_file_and_a_directory_say_what_they_are(tmp_path: Path) -> None:
    assert _problems(tmp_path / "nowhere.yaml")[0].message == "no such file"
    assert "is a directory" in _problems(tmp_path)[0].message
    assert str(_problems(tmp_path)[0]) == f"{tmp_path}: is a directory, not a scenario file"


def test_yaml_test_suite_documents_each_end_at_once_with_a_line() -> None:
    """The public YAML test suite's 402 documents: none is a scenario; each gets problems, never a crash."""
    files = sorted((DATA / "yaml-test-suite").glob("*.yaml"))
    assert len(files) == 402
    slowest = 0.0
    for path in files:
        start = time.monotonic()
        try:
            scenario.load(path)
        except scenario.ScenarioError as exc:
            assert exc.problems and all(p.line >= 1 for p in exc.problems), (path.name, exc.problems)
        else:
            raise AssertionError(f"{path.name} validated as a scenario")
        slowest = max(slowest, time.monotonic() - start)
    assert slowest < 1.0


def test_validate_cli_exits_2_with_lines_and_no_traceback_for_every_bad_file() -> None:
    files = sorted((DATA / "bad-scenarios").iterdir())
    result = subprocess.run([sys.executable, "-m", "mlopslab", "validate", *map(str, files)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    for path in files:
        line = BAD[path.name][0]
        assert f"{path}:{line}: " in result.stderr, path.name


@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf", "100000"])
def test_run_refuses_a_duration_that_is_not_a_run_length(value: str) -> None:
    result = subprocess.run([sys.executable, "-m", "mlopslab", "run", "push-vs-pull", f"--duration={value}"],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 2, result.stderr
    assert "--duration: expected seconds between 1 and 86400" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_shorter_duration_names_the_timeline_entries_it_leaves_out() -> None:
    sc = scenario.load(ROOT / "scenarios" / "push-vs-pull.yaml")
    cut, dropped = scenario.with_duration(sc, 20)
    assert cut.duration == 20 and all(e.at < 20 for e in cut.timeline)
    assert dropped and {e.at for e in dropped} == {e.at for e in sc.timeline if e.at >= 20}
    assert all(e.line > 1 for e in dropped)


def test_tui_with_a_file_that_used_to_hang_exits_2_with_its_problems() -> None:
    result = subprocess.run([sys.executable, "-m", "mlopslab", "tui", str(DATA / "bad-scenarios" / "name-only.yaml")],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "name-only.yaml:1: duration: is required" in result.stderr


def test_picker_lists_files_that_used_to_hang_as_invalid_and_stays_responsive() -> None:
    from mlopslab.tui.app import LabApp
    from mlopslab.tui.screens.picker import PickerScreen

    names = ["empty.yaml", "name-only.yaml", "laughs.yaml", "deep.yaml"]

    async def scenario_run() -> None:
        app = LabApp(files=[DATA / "bad-scenarios" / n for n in names])
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, PickerScreen)
            invalid = [e for e in screen.entries if e.scenario is None]
            assert [e.path.name for e in invalid] == names
            assert all(re.search(r":\d+: ", e.problems[0]) for e in invalid)
            await pilot.press("down")  # still answers keys: the description follows the highlight
            await pilot.pause()
            assert "has problems" in str(screen.query_one("#description").render())

    import asyncio

    asyncio.run(scenario_run())


def test_every_yaml_block_in_the_readme_is_a_valid_scenario(tmp_path: Path) -> None:
    """Whole scenarios validate as they are; a fragment (no top-level name) validates inside the shipped
    poll-interval-sweep scenario, in place of its own fields of the same name."""
    from mlopslab import sweep

    blocks = re.findall(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert blocks
    host = (ROOT / "scenarios" / "poll-interval-sweep.yaml").read_text().split("\nsweep:")[0]
    for i, block in enumerate(blocks):
        path = tmp_path / f"readme-{i}.yaml"
        path.write_text(block if re.match(r"^name:", block, re.M) else host.rstrip("\n") + "\n" + block)
        scenario.load(path)  # raises with file:line if the README shows a scenario that does not validate
        sweep.grid(path)
