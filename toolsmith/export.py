"""A spec as the tool definitions other ecosystems read: OpenAI functions, MCP, plain JSON.

Each platform publishes rules for what it accepts: OpenAI function names match
``^[a-zA-Z0-9_-]{1,64}$`` and descriptions stop at 1,024 characters; strict mode (Structured
Outputs) wants every object closed and every property required, and supports only part of JSON
Schema; Anthropic's API and other MCP clients refuse combinators at the root of an input schema.
New specs are held to these rules when they are validated (``spec.export_problems``); a stored spec
signed before a rule existed is rewritten here when that loses nothing a validator checks (a key
YAML invented, an annotation strict mode does not know), and refused with a ``SpecError`` naming
the rule otherwise, never exported silently broken.
"""

from __future__ import annotations

import copy
import json
import re
from enum import StrEnum
from typing import Any

from toolsmith.errors import SpecError, UsageError
from toolsmith.spec import (
    DATA_KEYWORDS,
    NAME_MAPS,
    ROOT_COMBINATORS,
    ToolSpec,
    export_problems,
    yaml_accidents,
)

OPENAI_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
# What OpenAI's strict mode supports (its Structured Outputs guide, "Supported schemas").
STRICT_KEYWORDS = frozenset(
    {
        "type", "description", "enum", "const", "anyOf", "$ref", "$defs", "properties",
        "required", "additionalProperties", "items", "pattern", "format", "multipleOf",
        "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minItems", "maxItems",
    }
)  # fmt: skip
# Keywords that describe and never constrain (JSON Schema 2020-12, meta-data vocabulary).
ANNOTATIONS = frozenset(
    {"title", "default", "examples", "$comment", "deprecated", "readOnly", "writeOnly"}
)


class ExportFormat(StrEnum):
    OPENAI = "openai"
    MCP = "mcp"
    JSON = "json"


def _portable(spec: ToolSpec, platform: str) -> dict[str, Any]:
    """The parameters schema every client accepts, or a SpecError naming what cannot be."""
    if OPENAI_NAME.fullmatch(spec.name) is None:  # ToolSpec names are a subset; a guard
        raise SpecError(f"{spec.name!r} is not a valid {platform} tool name")
    problems = [
        p
        for p in export_problems(spec.description, spec.parameters, {})
        if "with value null" not in p  # YAML's invented keys are dropped below, losing nothing
    ]
    if problems:
        raise SpecError(
            f"{spec.name} cannot be exported to {platform} faithfully: " + "; ".join(problems),
            hint="publish a new version with the spec fixed (`toolsmith spec validate` checks it)",
        )
    return (
        _without_nulls(spec.parameters) if yaml_accidents(spec.parameters, "") else spec.parameters
    )


def _without_nulls(node: Any, names: bool = False) -> Any:
    """``node`` without the null-valued keys YAML invents (data keywords keep their nulls);
    ``names`` marks a map of names to schemas, such as ``properties``."""
    if isinstance(node, list):
        return [_without_nulls(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if not names and key in DATA_KEYWORDS:
            out[key] = value
        elif value is not None:
            out[key] = _without_nulls(value, names=not names and key in NAME_MAPS)
    return out


def to_openai(spec: ToolSpec, *, strict: bool = False) -> dict[str, Any]:
    """A Chat Completions ``tools`` entry; ``strict=True`` asks OpenAI to hold the model's
    arguments to the schema (Structured Outputs), which needs the schema in strict form:
    see ``strict_schema``."""
    parameters = _portable(spec, "OpenAI")
    function: dict[str, Any] = {
        "name": spec.name,
        "description": spec.description,
        "parameters": strict_schema(spec.name, parameters) if strict else parameters,
    }
    if strict:
        function["strict"] = True
    return {"type": "function", "function": function}


def strict_schema(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` in the form OpenAI's strict mode requires, or a SpecError naming each keyword
    it cannot take.

    Every object gets ``additionalProperties: false`` (the model may then send fewer shapes,
    never one the tool refuses); an optional property becomes required and also accepts null,
    and a null argument for a parameter whose own schema refuses null means "left out" at call
    time (``validation.Contract``); annotations move into the description or go. A validation
    keyword strict mode lacks (``minLength``, ``uniqueItems``...) would let the model send
    arguments the tool refuses, so it is reported instead.
    """
    unsupported: list[str] = []
    out = _strict(copy.deepcopy(schema), "parameters", unsupported)
    if unsupported:
        raise SpecError(
            f"{name} cannot be exported in OpenAI strict mode: strict mode does not support "
            + ", ".join(unsupported),
            hint="export without --strict (the tool still checks every argument), or publish "
            "a version whose parameters avoid those keywords",
        )
    return out


def _strict(node: Any, path: str, unsupported: list[str]) -> Any:
    if not isinstance(node, dict):
        return node
    notes = []
    if "default" in node:
        notes.append(f"Default: {json.dumps(node['default'])}.")
    for key in sorted(node.keys() - STRICT_KEYWORDS - ANNOTATIONS):
        unsupported.append(f"{key!r} at {path}")
    out = {k: v for k, v in node.items() if k not in ANNOTATIONS}
    if notes:
        out["description"] = " ".join([out.get("description", ""), *notes]).strip()
    for key in ("anyOf",):
        if key in out:
            out[key] = [
                _strict(s, f"{path}/{key}/{i}", unsupported) for i, s in enumerate(out[key])
            ]
    if "items" in out:
        out["items"] = _strict(out["items"], f"{path}/items", unsupported)
    if "$defs" in out:
        out["$defs"] = {
            k: _strict(v, f"{path}/$defs/{k}", unsupported) for k, v in out["$defs"].items()
        }
    if out.get("type") == "object" or "properties" in out:
        props = out.get("properties", {})
        required = set(out.get("required", []))
        if isinstance(out.get("additionalProperties"), dict):
            unsupported.append(f"'additionalProperties' with a schema at {path}")
        out["additionalProperties"] = False
        new_props = {}
        for key, sub in props.items():
            sub = _strict(sub, f"{path}/properties/{key}", unsupported)
            new_props[key] = sub if key in required else _nullable(sub)
        out["properties"] = new_props
        out["required"] = list(props)
    return out


def _nullable(schema: Any) -> Any:
    """``schema`` that also accepts null (strict mode's way to say "optional")."""
    if not isinstance(schema, dict):
        return schema
    kind = schema.get("type")
    if isinstance(kind, str) and "enum" not in schema and "const" not in schema:
        return {**schema, "type": [kind, "null"]}
    if isinstance(kind, list) and "enum" not in schema and "const" not in schema:
        return {**schema, "type": [*kind, *(["null"] if "null" not in kind else [])]}
    return {"anyOf": [schema, {"type": "null"}]}


def to_mcp(spec: ToolSpec) -> dict[str, Any]:
    """An MCP ``Tool``; ``outputSchema`` only when results are objects, as MCP requires."""
    tool: dict[str, Any] = {
        "name": spec.name,
        "description": spec.description,
        "inputSchema": _portable(spec, "MCP"),
    }
    if spec.returns.get("type") == "object" and not any(
        k in spec.returns for k in ROOT_COMBINATORS
    ):
        tool["outputSchema"] = _without_nulls(spec.returns)
    tool["annotations"] = {
        "readOnlyHint": all(c.startswith(("fs:read:", "env:")) for c in spec.capabilities),
        "openWorldHint": any(c.startswith("network:") for c in spec.capabilities),
    }
    return tool


def export_spec(spec: ToolSpec, fmt: ExportFormat | str, *, strict: bool = False) -> dict[str, Any]:
    """``spec`` as ``fmt`` reads it; ``strict`` only for OpenAI. Raises ``UsageError`` for an
    unknown format, ``SpecError`` for a spec the format cannot carry faithfully."""
    try:
        fmt = ExportFormat(fmt)
    except ValueError:
        raise UsageError(
            f"unknown export format {fmt!r}", hint=f"use one of {', '.join(ExportFormat)}"
        ) from None
    if strict and fmt is not ExportFormat.OPENAI:
        raise UsageError("--strict applies to the openai format only", hint="add --format openai")
    match fmt:
        case ExportFormat.OPENAI:
            return to_openai(spec, strict=strict)
        case ExportFormat.MCP:
            return to_mcp(spec)
        case ExportFormat.JSON:
            return spec.model_dump(mode="json")
