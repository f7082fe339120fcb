"""The CLI starts light: --version, --help and the registry browsing commands, run in a real
subprocess over a copy of the curated registry, import neither the Docker SDK, openai, hypothesis
nor mcp (the modules left in ``sys.modules`` after the command are what it imported; no timing
is asserted, bench/cli.py measures it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import toolsmith
from tests.test_registry_support import curated_copy

HEAVY = ("docker", "openai", "hypothesis", "hypothesis_jsonschema", "mcp")
# The fast path answers --version before any of these is imported.
FRAMEWORK = ("typer", "click", "rich", "pydantic", "structlog")

# Runs the console script's entry point, then reports which watched modules it left imported
# (``finally`` runs on the SystemExit every typer command ends with, too).
PROBE = """
import json, sys
from toolsmith.cli import main
try:
    main()
finally:
    watched = {watched!r}
    sys.stderr.write("\\nMODULES " + json.dumps(sorted(m for m in watched if m in sys.modules)))
"""


def run_cli(
    env: dict[str, str], *args: str, watched: tuple[str, ...] = HEAVY
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run ``toolsmith ARGS`` in a fresh interpreter; return it and the watched modules loaded."""
    r = subprocess.run(
        [sys.executable, "-c", PROBE.format(watched=watched), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    head, marker, modules = r.stderr.rpartition("\nMODULES ")
    assert marker, r.stderr
    return subprocess.CompletedProcess(r.args, r.returncode, r.stdout, head), json.loads(modules)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A home that pins a copy of the curated registry, named as the default registry."""
    home = tmp_path_factory.mktemp("home")
    registry = tmp_path_factory.mktemp("curated") / "registry"
    old = os.environ.get("TOOLSMITH_HOME")
    os.environ["TOOLSMITH_HOME"] = str(home)
    try:
        curated_copy(registry)
    finally:
        if old is not None:
            os.environ["TOOLSMITH_HOME"] = old
    return {
        **os.environ,
        "TOOLSMITH_HOME": str(home),
        "TOOLSMITH_REGISTRY": str(registry),
        "COLUMNS": "200",
    }


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["registry", "--help"],
        ["build", "--help"],
        ["sandbox", "--help"],
        ["registry", "list"],
        ["registry", "list", "--json"],
        ["registry", "search", "slug"],
        ["registry", "show", "slugify"],
        ["registry", "versions", "slugify"],
        ["registry", "verify"],
        ["registry", "export", "slugify", "--format", "openai"],
        ["registry", "export", "slugify", "--format", "mcp"],
        ["registry", "list", "--pending"],
        ["registry", "fingerprint"],
    ],
    ids=" ".join,
)
def test_browsing_commands_import_no_heavy_sdk(env: dict[str, str], args: list[str]) -> None:
    """Each command succeeds and leaves none of the Docker, openai, hypothesis or MCP SDKs
    imported."""
    r, loaded = run_cli(env, *args)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip()
    assert loaded == []


def test_a_sandbox_command_does_import_docker(env: dict[str, str]) -> None:
    """The probe sees a heavy import when one happens: `sandbox status` loads the Docker SDK
    (whether or not an engine answers)."""
    _, loaded = run_cli(env, "sandbox", "status")
    assert "docker" in loaded


def test_version_is_answered_before_the_frameworks_load(env: dict[str, str]) -> None:
    """`toolsmith --version` loads neither typer, rich nor pydantic, and prints exactly what the
    typer option prints when another root option comes first."""
    fast, loaded = run_cli(env, "--version", watched=FRAMEWORK + HEAVY)
    assert loaded == []
    slow, loaded_slow = run_cli(env, "--log-level", "warning", "--version", watched=FRAMEWORK)
    assert "typer" in loaded_slow
    assert fast.returncode == slow.returncode == 0
    assert fast.stdout == slow.stdout == f"toolsmith {toolsmith.__version__}\n"
    assert fast.stderr == slow.stderr == ""
