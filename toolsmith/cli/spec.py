"""`toolsmith spec`: the ToolSpec contract, for people and for LLM prompts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from toolsmith.cli._common import JsonOpt, console, emit, escape
from toolsmith.spec import ToolSpec, spec_json_schema

app = typer.Typer(help="Inspect and validate ToolSpecs.", no_args_is_help=True)


@app.command("schema")
def schema(as_json: JsonOpt = False) -> None:
    """Print the ToolSpec JSON Schema: JSON either way, --json accepted like everywhere else."""
    data = spec_json_schema()
    emit(data, as_json, lambda: typer.echo(json.dumps(data, indent=2)))


@app.command("validate")
def validate(
    path: Annotated[Path, typer.Argument(help="Spec file, YAML or JSON.")],
    as_json: JsonOpt = False,
) -> None:
    """Validate a spec file and say what is wrong with it, and what it leaves vague."""
    spec = ToolSpec.from_file(path)
    warnings = spec.vague_parameters()

    def human() -> None:
        console.print(f"[green]valid[/green] {escape(spec.name)}: {escape(spec.description)}")
        for warning in warnings:
            console.print(f"[yellow]warning[/yellow] {escape(warning)}")

    emit({"valid": True, "name": spec.name, "warnings": warnings}, as_json, human)
