"""The layering holds: the domain imports no textual, envs never import gitops, the server no mlflow."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "mlopslab"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _modules(under: str = "") -> list[Path]:
    return sorted((PACKAGE / under).rglob("*.py"))


def test_domain_imports_no_textual() -> None:
    offenders = [str(p.relative_to(PACKAGE)) for p in _modules() if "tui" not in p.relative_to(PACKAGE).parts
                 and p.name != "cli.py" and any(n.split(".")[0] == "textual" for n in _imports(p))]
    assert offenders == []


def test_envs_do_not_import_gitops_and_lower_layers_do_not_import_the_lab() -> None:
    for path in _modules("envs"):
        assert not any(n.startswith("mlopslab.gitops") for n in _imports(path)), path
    for sub in ("envs", "gitops", "ml", "monitor", "serving", "traffic"):
        for path in _modules(sub):
            assert not any(n in ("mlopslab.lab", "mlopslab.cli") or n.startswith(("mlopslab.tui", "mlopslab.platforms"))
                           for n in _imports(path)), path


def test_event_types_and_the_summary_are_the_bottom_layer() -> None:
    """Every part emits or reads events, and every renderer reads the summary: they import no other part."""
    for path in [*_modules("eventtypes"), PACKAGE / "summary.py"]:
        outside = {n for n in _imports(path) if n.startswith("mlopslab") and not n.startswith("mlopslab.eventtypes")}
        assert outside == set(), path


def test_the_lab_never_branches_on_the_environment_kind() -> None:
    """What differs per environment is a Platform (mlopslab/platforms); the lab only wires lanes."""
    source = (PACKAGE / "lab.py").read_text()
    assert "environment.kind ==" not in source and "kind == \"docker\"" not in source
    assert "mlopslab.envs.local" not in source and "mlopslab.envs.docker" not in source


def test_model_server_and_cli_start_without_heavy_imports() -> None:
    probe = ("import sys, mlopslab.serving.server, mlopslab.cli, mlopslab.traffic.loadgen;"
             "heavy = [m for m in ('mlflow', 'sklearn', 'scipy', 'pandas', 'textual', 'git') if m in sys.modules];"
             "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
