"""A spec as the tool definitions other ecosystems read: OpenAI functions, MCP, plain JSON."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from toolsmith.errors import UsageError
from toolsmith.spec import ToolSpec


class ExportFormat(StrEnum):
    OPENAI = "openai"
    MCP = "mcp"
    JSON = "json"


def to_openai(spec: ToolSpec) -> dict[str, Any]:
    """A Chat Completions ``tools`` entry."""
    return {
        "type": "function",
        "function": {
            "name": spec.name,
            "description": spec.description,
            "parameters": spec.parameters,
        },
    }


def to_mcp(spec: ToolSpec) -> dict[str, Any]:
    """An MCP ``Tool``; ``outputSchema`` only when results are objects, as MCP requires."""
    tool: dict[str, Any] = {
        "name": spec.name,
        "description": spec.description,
        "inputSchema": spec.parameters,
    }
    if spec.returns.get("type") == "object":
        tool["outputSchema"] = spec.returns
    tool["annotations"] = {
        "readOnlyHint": all(c.startswith(("fs:read:", "env:")) for c in spec.capabilities),
        "openWorldHint": any(c.startswith("network:") for c in spec.capabilities),
    }
    return tool


def export_spec(spec: ToolSpec, fmt: ExportFormat | str) -> dict[str, Any]:
    try:
        fmt = ExportFormat(fmt)
    except ValueError:
        raise UsageError(
            f"unknown export format {fmt!r}", hint=f"use one of {', '.join(ExportFormat)}"
        ) from None
    match fmt:
        case ExportFormat.OPENAI:
            return to_openai(spec)
        case ExportFormat.MCP:
            return to_mcp(spec)
        case ExportFormat.JSON:
            return spec.model_dump(mode="json")
