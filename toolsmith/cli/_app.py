"""The typer app of the `toolsmith` command line: every command group, the root options and the
error handling around them (``toolsmith.cli.main`` hands every command line but ``--version``
here)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from toolsmith import __version__, log
from toolsmith.cli import approval as approval_cli
from toolsmith.cli import audit as audit_cli
from toolsmith.cli import build as build_cli
from toolsmith.cli import eval as eval_cli
from toolsmith.cli import keys as keys_cli
from toolsmith.cli import lessons as lessons_cli
from toolsmith.cli import mcp as mcp_cli
from toolsmith.cli import policy as policy_cli
from toolsmith.cli import prompts as prompts_cli
from toolsmith.cli import registry as registry_cli
from toolsmith.cli import run as run_cli
from toolsmith.cli import sandbox as sandbox_cli
from toolsmith.cli import spec as spec_cli
from toolsmith.cli._common import err_console, print_error
from toolsmith.errors import ToolsmithError
from toolsmith.settings import Settings

app = typer.Typer(
    name="toolsmith",
    help="Design, generate, prove in a sandbox, sign and publish tools for agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("build")(build_cli.build)
app.command("demo")(build_cli.demo)
app.command("eval")(eval_cli.eval_suite)
app.command("run")(run_cli.run)
app.command("approve")(approval_cli.approve)
app.command("reject")(approval_cli.reject)
app.add_typer(spec_cli.app, name="spec")
app.add_typer(keys_cli.app, name="keys")
app.add_typer(registry_cli.app, name="registry")
app.add_typer(sandbox_cli.app, name="sandbox")
app.add_typer(policy_cli.app, name="policy")
app.add_typer(audit_cli.app, name="audit")
app.add_typer(lessons_cli.app, name="lessons")
app.add_typer(prompts_cli.app, name="prompts")
app.add_typer(prompts_cli.improve_app, name="improve")
app.add_typer(mcp_cli.app, name="mcp")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"toolsmith {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
    log_format: Annotated[
        str | None,
        typer.Option(
            "--log-format",
            help="Log lines on stderr: human, json, or auto (JSON when stderr is not a terminal "
            "or the command prints --json); else $TOOLSMITH_LOG_FORMAT, [log] format.",
            show_default=False,
        ),
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option(
            "--log-level",
            help="debug, info, warning or error (else $TOOLSMITH_LOG_LEVEL, [log] level; warning).",
            show_default=False,
        ),
    ] = None,
) -> None:
    # Only [log] is read here: a bad value in another section is for the command that uses it.
    chosen = Settings.load({"log.format": log_format, "log.level": log_level}, only={"log"}).log
    log.configure(log_format=chosen.format, level=chosen.level)


def run() -> None:
    """Run the app on ``sys.argv``: user errors become one line and an exit code, never a
    traceback."""
    try:
        app()
    except ToolsmithError as e:
        print_error(e)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
