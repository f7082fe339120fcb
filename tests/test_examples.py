"""The example specs in examples/ validate, are the ones README names, and build as shipped, so
the file a newcomer copies cannot drift from the ToolSpec contract."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from toolsmith.cli import app

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def test_readme_names_exactly_the_examples_and_they_exist() -> None:
    """Every examples/ path README names exists, and README names every example spec."""
    named = set(re.findall(r"examples/[\w.]+", (ROOT / "README.md").read_text()))
    assert named, "README names no example"
    assert {p for p in named if not (ROOT / p).is_file()} == set()
    assert {f"examples/{p.name}" for p in EXAMPLES} <= named


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_specs_validate_without_warnings(path: Path) -> None:
    """`toolsmith spec validate` accepts each example and finds nothing left vague."""
    result = CliRunner().invoke(app, ["spec", "validate", str(path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["valid"] and data["warnings"] == []
    assert (path.parent / f"{data['name']}.py").is_file(), "each spec has its implementation"


@pytest.mark.docker
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_specs_build_with_their_implementation(
    path: Path, sandbox_image: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README's `build --spec EXAMPLE --impl EXAMPLE.py --dry-run` proves the shipped code."""
    monkeypatch.setenv("TOOLSMITH_MUTANTS", "0")  # the mutation gate has tests of its own
    impl = path.with_suffix(".py")
    args = ["build", "--spec", str(path), "--impl", str(impl), "--dry-run", "--json"]
    result = CliRunner().invoke(app, [*args, "--registry", str(tmp_path / "registry")])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "dry_run"
