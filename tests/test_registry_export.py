"""Exported tool definitions: what OpenAI and MCP clients read."""

from __future__ import annotations

import mcp.types
import pytest

from tests.test_registry_support import make_spec
from toolsmith.errors import UsageError
from toolsmith.export import export_spec, to_mcp, to_openai
from toolsmith.spec import ToolSpec


def object_spec(capabilities: list[str]) -> ToolSpec:
    return ToolSpec(
        name="fetch_title",
        description="Fetch a page title.",
        parameters={"type": "object", "properties": {"url": {"type": "string"}}},
        returns={"type": "object", "properties": {"title": {"type": "string"}}},
        capabilities=capabilities,
    )


def test_mcp_object_results_get_output_schema_and_hints() -> None:
    """Object results carry outputSchema; network capability marks the tool open-world."""
    tool = mcp.types.Tool.model_validate(to_mcp(object_spec(["network:example.com"])))
    assert tool.output_schema == {"type": "object", "properties": {"title": {"type": "string"}}}
    assert tool.annotations is not None
    assert tool.annotations.open_world_hint is True and tool.annotations.read_only_hint is False


def test_pure_tool_is_read_only_and_closed_world() -> None:
    """A pure tool is annotated read-only and closed-world for MCP clients."""
    tool = mcp.types.Tool.model_validate(to_mcp(make_spec()))
    assert tool.annotations is not None
    assert tool.annotations.read_only_hint is True and tool.annotations.open_world_hint is False


def test_openai_function_shape() -> None:
    """OpenAI definitions use the spec's parameters schema unchanged."""
    spec = make_spec()
    assert to_openai(spec)["function"]["parameters"] is spec.parameters


def test_unknown_format() -> None:
    """An unknown format is a usage error listing the choices."""
    with pytest.raises(UsageError, match="unknown export format 'yaml'") as exc:
        export_spec(make_spec(), "yaml")
    assert "openai, mcp, json" in (exc.value.hint or "")
