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
from toolsmith.spec import ToolSpec, schema_errors


class RuntimeChoice(StrEnum):
    DOCKER = "docker"
    RESTRICTED = "restricted"


def parse_args(spec: ToolSpec, pairs: list[str], args_json: str | None) -> dict[str, Any]:
    """``key=value`` pairs typed by the parameter schema over --args-json.

    A value is JSON when that parses and fits the parameter's schema; otherwise the text as
    typed, when that fits (``--arg text=123`` for a string, ``--arg mode=fast`` for an enum or a
    nullable string). A plain string parameter always takes the text as typed.
    """
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
        args[key] = _typed(spec.parameters, key, raw)
    return args


def _typed(parameters: dict[str, Any], key: str, raw: str) -> Any:
    """One --arg value: JSON if it parses and fits, else the raw text if that fits."""
    sub = parameters["properties"][key]
    if not isinstance(sub, dict):  # a boolean subschema: any value (or none) is meant
        return _json_or(raw, raw)
    if sub.get("type") == "string":
        return raw
    # Keep the root's definitions in scope, so a "$ref": "#/$defs/..." still resolves.
    schema = {k: v for k, v in parameters.items() if k in ("$defs", "definitions")} | sub
    missing = object()
    value = _json_or(raw, missing)
    if value is not missing and not schema_errors(schema, value):
        return value
    if not schema_errors(schema, raw):
        return raw
    if value is not missing:
        return value  # the call's own schema check names what is wrong with it
    raise UsageError(
        f"--arg {key}={raw!r}: {key} is {sub.get('type', 'JSON')}, not a string",
        hint="write it as JSON, e.g. --arg n=3 or --arg tags='[\"a\"]'",
    )


def _json_or(raw: str, default: Any) -> Any:
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, RecursionError):
        return default


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
