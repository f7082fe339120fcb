"""ToolSpec validation: every malformed field gets a message naming the field and the fix."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from toolsmith import SpecError, ToolSpec
from toolsmith.testgen import generate_tests

BASE: dict[str, Any] = {
    "name": "slugify",
    "description": "Turn text into a URL slug.",
    "parameters": {
        "type": "object",
        "properties": {"text": {"type": "string"}},
        "required": ["text"],
        "additionalProperties": False,
    },
    "returns": {"type": "string"},
    "raises": ["ValueError"],
    "examples": [
        {"args": {"text": "Hello World"}, "returns": "hello-world"},
        {"args": {"text": ""}, "raises": "ValueError"},
    ],
    "properties": [
        {
            "name": "lowercase",
            "source": "def check(args, result):\n    assert result == result.lower()\n",
        }
    ],
    "tags": ["text"],
}


def spec_with(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data.update(changes)
    return data


def test_valid_spec_round_trips_through_yaml_and_json() -> None:
    """A valid spec survives YAML and JSON round trips unchanged."""
    spec = ToolSpec.parse(BASE)
    assert ToolSpec.from_text(spec.to_yaml()) == spec
    assert ToolSpec.from_text(spec.model_dump_json()) == spec
    assert spec.is_pure


def test_canonical_json_is_stable() -> None:
    """Key order in the input does not change the canonical bytes."""
    reordered = dict(reversed(list(BASE.items())))
    assert ToolSpec.parse(reordered).canonical_json() == ToolSpec.parse(BASE).canonical_json()


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("../x", "snake_case"),
        ("a/b", "snake_case"),
        ("Slugify", "snake_case"),
        ("class", "keyword"),
        ("match", "keyword"),
        ("a" * 65, "limit is 64"),
        ("1abc", "snake_case"),
    ],
)
def test_bad_names_are_refused(name: str, fragment: str) -> None:
    """Names that could escape a path or shadow Python are refused with the reason."""
    with pytest.raises(SpecError, match=fragment):
        ToolSpec.parse(spec_with(name=name))


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"parameters": {"type": "array"}}, 'type": "object"'),
        ({"parameters": {"type": "object", "properties": {"x": {"type": "nope"}}}}, "JSON Schema"),
        ({"returns": {"minLength": "three"}}, "returns is not a valid JSON Schema"),
        ({"examples": [{"args": {"text": 3}, "returns": "x"}]}, r"examples\[0\].args"),
        ({"examples": [{"args": {"text": "a"}, "returns": 3}]}, r"examples\[0\].returns"),
        ({"examples": [{"args": {"text": "a"}}]}, "exactly one of"),
        ({"examples": [{"args": {"text": "a"}, "raises": "KeyError"}]}, "not declared"),
        ({"properties": [{"name": "p", "source": "def check(:"}]}, "does not parse"),
        ({"properties": [{"name": "p", "source": "def other(a, b): pass"}]}, "def check"),
        ({"capabilities": ["root"]}, "not recognised"),
        ({"dependencies": ["not a req!!"]}, "PEP 508"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_malformed_fields_name_the_problem(changes: dict[str, Any], fragment: str) -> None:
    """Each malformed field raises a SpecError whose message points at it."""
    with pytest.raises(SpecError, match=fragment):
        ToolSpec.parse(spec_with(**changes))


def test_example_may_expect_null() -> None:
    """``returns: null`` is an expected value, not a missing one."""
    spec = ToolSpec.parse(
        spec_with(
            returns={"type": ["string", "null"]},
            examples=[{"args": {"text": "a"}, "returns": None}],
        )
    )
    assert not spec.examples[0].expects_error


def test_unparseable_text_is_a_spec_error() -> None:
    """Broken YAML is reported as such, not as a crash."""
    with pytest.raises(SpecError, match="neither valid YAML nor JSON"):
        ToolSpec.from_text("name: [unclosed")
    with pytest.raises(SpecError, match="mapping"):
        ToolSpec.from_text("- a list")


@pytest.mark.parametrize(
    ("field", "schema"),
    [
        ("parameters", {"type": "object", "$ref": "#"}),
        ("returns", {"$ref": "#"}),
        (
            "returns",
            {
                "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"allOf": [{"$ref": "#/$defs/a"}]}},
                "$ref": "#/$defs/a",
            },
        ),
    ],
    ids=["self", "returns-self", "mutual-through-allOf"],
)
def test_self_referencing_schema_is_a_spec_error(field: str, schema: dict[str, Any]) -> None:
    """A $ref loop that never descends into the value is refused, with or without examples."""
    for examples in ([], BASE["examples"]):
        with pytest.raises(SpecError, match=r"\$ref cycle"):
            ToolSpec.parse(spec_with(**{field: schema, "examples": examples}))


def test_recursive_schema_that_descends_is_valid() -> None:
    """A tree type refers to itself through items: that terminates, and is allowed."""
    tree = {"$defs": {"tree": {"type": "array", "items": {"$ref": "#/$defs/tree"}}}}
    ToolSpec.parse(spec_with(returns={**tree, "$ref": "#/$defs/tree"}, examples=[]))


def test_deep_nesting_is_a_spec_error_not_a_recursion_error() -> None:
    """Text, schemas and example values nested past Python's stack are refused clearly."""
    deep_text = "[" * 100_000 + "]" * 100_000
    with pytest.raises(SpecError, match="nested too deeply"):
        ToolSpec.from_text('{"name": "x", "deep": ' + deep_text + "}")
    with pytest.raises(SpecError, match="nested too deeply"):
        ToolSpec.from_text("name: x\ndeep: " + deep_text)
    schema: dict[str, Any] = {}
    value: Any = "a"
    for _ in range(5000):
        schema, value = {"items": schema}, [value]
    with pytest.raises(SpecError, match="nested too deeply"):
        ToolSpec.parse(spec_with(returns=schema, examples=[]))
    with pytest.raises(SpecError, match="nested too deeply"):
        ToolSpec.parse(spec_with(examples=[{"args": {"text": "a"}, "returns": value}]))


DATE_SPEC = """
name: days_until
description: Days from today until a date.
parameters:
  type: object
  properties:
    when: {description: an ISO date}
  required: [when]
returns: {type: integer}
examples:
  - {args: {when: 2030-01-01}, returns: 1}
"""


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"examples": [{"args": {"text": "\ud800"}, "returns": "x"}]}, "lone surrogate"),
        ({"examples": [{"args": {"text": "a"}, "returns": "\udfff"}]}, "lone surrogate"),
        ({"returns": {}, "examples": [{"args": {"text": "a"}, "returns": float("nan")}]}, "NaN"),
        ({"returns": {"description": "\ud800"}}, "returns holds a lone surrogate"),
    ],
)
def test_examples_and_schemas_must_be_json_data(changes: dict[str, Any], fragment: str) -> None:
    """Values JSON cannot carry are refused when the spec is validated, not at test time."""
    with pytest.raises(SpecError, match=fragment):
        ToolSpec.parse(spec_with(**changes))


def test_unquoted_yaml_date_is_a_spec_error_naming_the_fix() -> None:
    """YAML reads 2030-01-01 as a date, which no JSON test can carry: quote it."""
    with pytest.raises(SpecError, match="quote dates"):
        ToolSpec.from_text(DATE_SPEC)
    quoted = ToolSpec.from_text(DATE_SPEC.replace("2030-01-01", "'2030-01-01'"))
    assert generate_tests(quoted).expected == 2


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"name": "slugify\n"}, "snake_case"),
        ({"raises": ["ValueError\n"]}, "not an exception class name"),
        ({"capabilities": ["env:FOO\n"]}, "not recognised"),
        ({"capabilities": ["subprocess\n"]}, "not recognised"),
        ({"capabilities": ["fs:read:/data/[abc]"]}, "not recognised"),
        ({"capabilities": ["fs:read:/data/a\tb"]}, "not recognised"),
        ({"capabilities": ["fs:write:/tmp/x\x7f"]}, "not recognised"),
        ({"capabilities": ["network:[fd00::1]x"]}, "not recognised"),
        ({"capabilities": ["network:fd00::1"]}, "not recognised"),
        (
            {"parameters": {"type": "object", "properties": {"text\n": {"type": "string"}}}},
            "not usable as a Python keyword argument",
        ),
        (
            {"properties": [{"name": "p\n", "source": "def check(args, result):\n    pass\n"}]},
            "identifier",
        ),
    ],
)
def test_trailing_newlines_and_odd_path_characters_are_refused(
    changes: dict[str, Any], fragment: str
) -> None:
    """A trailing newline is not part of a name or a grant; paths hold no [ ] or controls."""
    with pytest.raises(SpecError, match=fragment):
        ToolSpec.parse(spec_with(**changes))


def test_ordinary_capabilities_still_validate() -> None:
    """The anchors refuse only what they should."""
    caps = [
        "network:api.example.com:443",
        "network:10.0.0.5:8080",
        "network:[fd00::1]:443",
        "network:[fd00::2]",
        "fs:read:/data/in put.txt",
        "env:API_KEY",
        "subprocess",
    ]
    assert ToolSpec.parse(spec_with(capabilities=caps)).capabilities == caps
