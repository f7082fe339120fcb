"""`toolsmith run`: call a registry tool from the shell, through the same trust gate as agents."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.pretty import Pretty

from toolsmith.cli._common import JsonOpt, RegistryOpt, console, emit
from toolsmith.errors import UsageError
from toolsmith.registry import Registry
from toolsmith.spec import ToolSpec


class RuntimeChoice(StrEnum):
    DOCKER = "docker"
    RESTRICTED = "restricted"


def parse_args(spec: ToolSpec, pairs: list[str], args_json: str | None) -> dict[str, Any]:
    """``key=value`` pairs typed by the parameter schema (strings stay strings) over --args-json."""
    args: dict[str, Any] = {}
    if args_json is not None:
        try:
            loaded = json.loads(args_json)
        except json.JSONDecodeError as e:
            raise UsageError(f"--args-json is not valid JSON: {e}") from None
        if not isinstance(loaded, dict):
            raise UsageError("--args-json must be a JSON object of argument names to values")
        args.update(loaded)
    props = spec.parameters.get("properties", {})
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--arg {pair!r} is not key=value", hint="e.g. --arg text='Hi there'")
        if key not in props:
            raise UsageError(
                f"{spec.name} has no parameter {key!r}",
                hint=f"its parameters are: {', '.join(props) or 'none'}",
            )
        if props[key].get("type") == "string":
            args[key] = raw
            continue
        try:
            args[key] = json.loads(raw)
        except json.JSONDecodeError:
            raise UsageError(
                f"--arg {key}={raw!r}: {key} is {props[key].get('type', 'JSON')}, not a string",
                hint="write it as JSON, e.g. --arg n=3 or --arg tags='[\"a\"]'",
            ) from None
    return args


def run(
    ref: Annotated[str, typer.Argument(help="NAME, NAME@1.2.3 or NAME@^1.2")],
    arg: Annotated[list[str] | None, typer.Option("--arg", help="key=value (repeatable).")] = None,
    args_json: Annotated[str | None, typer.Option(help="All arguments as a JSON object.")] = None,
    runtime: Annotated[
        RuntimeChoice, typer.Option(help="Where the call runs.")
    ] = RuntimeChoice.DOCKER,
    registry: RegistryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Resolve, verify and call a tool; print its result."""
    reg = Registry(registry)
    verified = reg.resolve(ref)  # the spec, to type the arguments before any worker starts
    call_args = parse_args(verified.spec, arg or [], args_json)
    pinned = f"{verified.name}@{verified.version}"
    with reg.load(pinned, runtime=runtime.value, actor="toolsmith run") as tool:
        result = tool(**call_args)
    emit(
        {"tool": tool.ref, "digest": tool.digest, "runtime": tool.runtime, "result": result},
        as_json,
        lambda: console.print(Pretty(result)),
    )
