"""The `toolsmith` command line: a thin layer over the library API.

This module is only the entry point. ``toolsmith --version`` is answered here, before typer, rich
and pydantic are imported (together they cost many times an empty interpreter's start; see
bench/cli.py); every other command line goes to the typer app in ``toolsmith.cli._app``. The
commands import the Docker, openai, MCP and hypothesis SDKs inside the functions that use them,
so ``--help`` and the registry browsing commands load none of them.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer

    app: typer.Typer


def main() -> None:
    """Entry point: user errors become one line and an exit code, never a traceback."""
    if sys.argv[1:] == ["--version"]:
        # The same line and exit status as the typer option (toolsmith.cli._app._version).
        from toolsmith import __version__

        sys.stdout.write(f"toolsmith {__version__}\n")
        return
    from toolsmith.cli._app import run

    run()


def __getattr__(name: str) -> Any:
    # ``from toolsmith.cli import app`` builds the typer app on first use.
    if name == "app":
        from toolsmith.cli._app import app

        return app
    raise AttributeError(f"module 'toolsmith.cli' has no attribute {name!r}")
