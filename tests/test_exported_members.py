"""The public API is exactly what ``toolsmith.__all__`` names, and every name resolves."""

from __future__ import annotations

import subprocess
import sys

import toolsmith


def test_all_names_resolve() -> None:
    """Each exported name, lazy or not, is importable from the top-level package."""
    for name in toolsmith.__all__:
        assert getattr(toolsmith, name) is not None, name


def test_unknown_name_is_an_attribute_error() -> None:
    """Lazy loading does not turn typos into something else."""
    try:
        toolsmith.Toolsmiht  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as e:
        assert "Toolsmiht" in str(e)
    else:
        raise AssertionError("expected AttributeError")


def test_errors_are_one_hierarchy() -> None:
    """Every exported *Error is a ToolsmithError, so callers can catch one base."""
    errors = [getattr(toolsmith, n) for n in toolsmith.__all__ if n.endswith("Error")]
    assert len(errors) > 20
    assert all(issubclass(e, toolsmith.ToolsmithError) for e in errors)


def test_import_stays_light() -> None:
    """``import toolsmith`` loads neither the Docker, openai nor MCP SDK."""
    code = (
        "import sys, toolsmith; "
        "print(sorted(m for m in ('docker', 'openai', 'mcp') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
