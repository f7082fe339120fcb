"""Exported tool definitions: what OpenAI and MCP clients read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mcp.types
import pytest
import yaml
from typer.testing import CliRunner

from tests.test_registry_support import CURATED, curated_fingerprint, make_spec
from toolsmith.cli.registry import app as registry_app
from toolsmith.errors import SpecError, UsageError
from toolsmith.export import STRICT_KEYWORDS, export_spec, to_mcp, to_openai
from toolsmith.registry import Registry, trust_registry
from toolsmith.spec import STORED, ToolSpec
from toolsmith.validation import Contract


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


SLUGIFY_LIKE: dict[str, Any] = {
    "name": "slug",
    "description": "Make a slug.",
    "parameters": {
        "type": "object",
        "properties": {
            "text": {"type": "string", "description": "any text"},
            "max_length": {"type": "integer", "minimum": 1, "default": 80, "title": "Max"},
            "style": {"enum": ["kebab", "snake"]},
        },
        "required": ["text"],
    },
    "returns": {"type": "string"},
}


def nulls(node: Any) -> list[str]:
    """Keys holding null anywhere in ``node`` (outside data keywords)."""
    if isinstance(node, dict):
        return [k for k, v in node.items() if v is None and k not in ("const", "default")] + [
            n for v in node.values() for n in nulls(v)
        ]
    return [n for v in node for n in nulls(v)] if isinstance(node, list) else []


def assert_openai_strict(schema: Any) -> None:
    """OpenAI's published strict-mode rules: objects closed, every property required, only the
    supported keywords."""
    if not isinstance(schema, dict):
        return
    assert schema.keys() <= STRICT_KEYWORDS, schema.keys() - STRICT_KEYWORDS
    if schema.get("type") == "object":
        assert schema["additionalProperties"] is False
        assert sorted(schema["required"]) == sorted(schema.get("properties", {}))
    for sub in [*schema.get("properties", {}).values(), *schema.get("anyOf", [])]:
        assert_openai_strict(sub)
    assert_openai_strict(schema.get("items"))


def test_yaml_flow_mapping_accident_is_refused_at_validation() -> None:
    """`{description: any text, accents are folded}` makes a key holding null: a spec carrying
    one is refused with the key and the fix, instead of being exported to every client."""
    text = (Path(CURATED / "sources/slugify/spec.yaml")).read_text()
    broken = text.replace('"any text, accents are folded to ASCII"', "any text, accents folded")
    assert broken != text
    with pytest.raises(SpecError, match="'accents folded' with value null") as e:
        ToolSpec.from_text(broken)
    assert 'quote the text ({description: "a, b"})' in str(e.value)
    assert yaml.safe_load(text)["parameters"]["properties"]["text"]["description"].endswith("ASCII")
    ToolSpec.from_text(text)  # the curated source itself is fixed
    ToolSpec.model_validate({**SLUGIFY_LIKE, "returns": {"const": None}})  # data may be null


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"description": "x" * 1025}, "over 1024"),
        (
            {"parameters": {"type": "object", "anyOf": [{"required": ["a"]}, {"required": ["b"]}]}},
            "'anyOf' at its root",
        ),
    ],
    ids=["long-description", "root-anyOf"],
)
def test_specs_clients_refuse_are_refused_when_validated(
    change: dict[str, Any], fragment: str
) -> None:
    """What OpenAI or MCP clients would refuse is a validation error naming the rule."""
    with pytest.raises(SpecError, match=fragment):
        ToolSpec.parse({**SLUGIFY_LIKE, **change})


def test_stored_specs_are_exported_repaired_or_refused_never_broken() -> None:
    """Signed before the rules existed: a key YAML invented is dropped from every export (it
    constrains nothing), a root combinator is refused with the rule."""
    accident = {**SLUGIFY_LIKE, "parameters": {**SLUGIFY_LIKE["parameters"], "oops": None}}
    spec = ToolSpec.model_validate(accident, context=STORED)
    for definition in (to_openai(spec)["function"]["parameters"], to_mcp(spec)["inputSchema"]):
        assert nulls(definition) == [] and "oops" not in definition
    combined = {**SLUGIFY_LIKE["parameters"], "oneOf": [{"required": ["text"]}]}
    spec = ToolSpec.model_validate({**SLUGIFY_LIKE, "parameters": combined}, context=STORED)
    with pytest.raises(SpecError, match=r"cannot be exported to MCP faithfully.*'oneOf'"):
        to_mcp(spec)


def test_curated_slugify_exports_without_its_yaml_accident() -> None:
    """The signed curated slugify still carries the accident until it is republished; what the
    registry exports to clients does not."""
    trust_registry(CURATED, curated_fingerprint())
    tool = Registry(CURATED).resolve("slugify")
    definition = mcp.types.Tool.model_validate(to_mcp(tool.spec))
    assert nulls(definition.input_schema) == []
    assert nulls(to_openai(tool.spec)) == []


def test_openai_strict_mode_follows_the_published_rules() -> None:
    """Strict: objects closed, optional parameters required but nullable, annotations folded into
    the description; and a null for an optional parameter means "left out" at call time."""
    spec = ToolSpec.model_validate(SLUGIFY_LIKE)
    function = to_openai(spec, strict=True)["function"]
    assert function["strict"] is True and function["name"] == "slug"
    params = function["parameters"]
    assert_openai_strict(params)
    assert params["properties"]["max_length"]["type"] == ["integer", "null"]
    assert "Default: 80." in params["properties"]["max_length"]["description"]
    assert params["properties"]["style"] == {
        "anyOf": [{"enum": ["kebab", "snake"]}, {"type": "null"}]
    }
    assert params["properties"]["text"]["type"] == "string"  # required stays as it was
    assert "strict" not in to_openai(spec)["function"]
    sent = {"text": "Hi", "max_length": None, "style": None}  # as strict mode sends it
    assert Contract(spec).check_args(sent) == {"text": "Hi"}


def test_strict_mode_refuses_keywords_it_would_drop() -> None:
    """Dropping minLength would let the model send arguments the tool refuses: reported."""
    params = {"type": "object", "properties": {"t": {"type": "string", "minLength": 1}}}
    spec = ToolSpec.model_validate({**SLUGIFY_LIKE, "parameters": params})
    with pytest.raises(SpecError, match=r"'minLength' at parameters/properties/t") as e:
        to_openai(spec, strict=True)
    assert e.value.hint and "without --strict" in e.value.hint
    with pytest.raises(UsageError, match="openai format only"):
        export_spec(spec, "mcp", strict=True)


def test_cli_export_strict(tmp_path: Path) -> None:
    """`toolsmith registry export convert_units --format openai --strict` prints a strict
    definition (slugify's text now has a maxLength, which strict mode refuses)."""
    import json

    env = {"TOOLSMITH_HOME": str(tmp_path)}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TOOLSMITH_HOME", str(tmp_path))
        trust_registry(CURATED, curated_fingerprint())
    out = CliRunner().invoke(
        registry_app,
        ["export", "convert_units", "--format", "openai", "--strict", "--registry", str(CURATED)],
        env=env,
    )
    assert out.exit_code == 0, out.output
    function = json.loads(out.stdout)["function"]
    assert function["strict"] is True
    assert_openai_strict(function["parameters"])
