"""`toolsmith spec`: the ToolSpec contract, for people and for LLM prompts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from toolsmith.cli._common import JsonOpt, console, emit
from toolsmith.spec import ToolSpec, spec_json_schema

app = typer.Typer(help="Inspect and validate ToolSpecs.", no_args_is_help=True)


@app.command("schema")
def schema() -> None:
    """Print the ToolSpec JSON Schema."""
    typer.echo(json.dumps(spec_json_schema(), indent=2))


@app.command("validate")
def validate(
    path: Annotated[Path, typer.Argument(help="Spec file, YAML or JSON.")],
    as_json: JsonOpt = False,
) -> None:
    """Validate a spec file and say what is wrong with it."""
    spec = ToolSpec.from_file(path)
    emit(
        {"valid": True, "name": spec.name},
        as_json,
        lambda: console.print(f"[green]valid[/green] {spec.name}: {spec.description}"),
    )
