"""Generated tests draw only valid inputs: specs are Draft 2020-12, hypothesis-jsonschema is not.

The drawing code under test is the very source embedded in the generated files; the end-to-end
tests run those files in the real Docker sandbox.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings

from toolsmith.errors import SpecError
from toolsmith.pipeline import AttemptVerdict, BuildOptions, BuildStatus, Toolsmith
from toolsmith.registry import Registry
from toolsmith.sandbox import Sandbox
from toolsmith.spec import ToolSpec
from toolsmith.testgen import args_strategy, drawing_schema, generate_tests
from toolsmith.testing import LocalBackend

PAIR = {
    "type": "object",
    "properties": {
        "pair": {
            "type": "array",
            "prefixItems": [{"type": "integer"}, {"type": "string"}],
            "items": False,
        },
        "a": {"type": "integer"},
        "b": {"type": "integer"},
    },
    "required": ["pair"],
    "additionalProperties": False,
    "dependentRequired": {"a": ["b"]},
}
PAIR_CODE = """\
def pair_sum(pair, a=None, b=None):
    head = pair[0] if pair else 0
    return head if a is None else head + a + b
"""
UNDRAWABLE = {
    "type": "object",
    "properties": {"a": {"type": "integer"}},
    "required": ["a"],
    "additionalProperties": False,
    "not": {"required": ["a"]},
}


def spec(name: str, parameters: dict[str, Any], **extra: Any) -> ToolSpec:
    return ToolSpec.parse(
        {
            "name": name,
            "description": "d",
            "parameters": parameters,
            "returns": {"type": "integer"},
            **extra,
        }
    )


@pytest.mark.parametrize(
    "parameters",
    [
        PAIR,
        {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["y"]},
        {
            "type": "object",
            "$defs": {"n": {"type": "integer"}},
            "properties": {"n": {"$ref": "#/$defs/n"}},
        },
    ],
    ids=["prefixItems+dependentRequired", "required-without-schema", "defs"],
)
def test_drawn_arguments_are_valid_under_draft_2020_12(parameters: dict[str, Any]) -> None:
    """Every drawn argument object validates against the spec's own (2020-12) schema."""
    schema = drawing_schema(parameters)
    validator = jsonschema.Draft202012Validator(schema)
    drawn: list[dict[str, Any]] = []

    @settings(max_examples=100, database=None, suppress_health_check=list(HealthCheck))
    @given(args_strategy(schema))
    def draw(args: dict[str, Any]) -> None:
        drawn.append(args)

    draw()
    assert drawn and all(validator.is_valid(a) for a in drawn)


def test_prefix_items_are_drawn_in_their_own_types() -> None:
    """prefixItems is translated for drawing, not just filtered: pairs of (int, str) come out."""
    drawn: list[dict[str, Any]] = []

    @settings(max_examples=50, database=None, suppress_health_check=list(HealthCheck))
    @given(args_strategy(drawing_schema(PAIR)))
    def draw(args: dict[str, Any]) -> None:
        drawn.append(args)

    draw()
    assert any(len(a["pair"]) == 2 for a in drawn)


def test_required_name_missing_from_closed_properties_is_a_spec_error() -> None:
    """required y with no schema and additionalProperties false admits no call at all."""
    closed = {
        "type": "object",
        "properties": {"x": {"type": "integer"}},
        "required": ["y"],
        "additionalProperties": False,
    }
    with pytest.raises(SpecError, match="'y' is required but missing from properties"):
        spec("foo", closed)


def test_undrawable_parameters_are_a_clear_spec_error() -> None:
    """A schema no drawn input satisfies fails test generation with a SpecError, not in Docker."""
    with pytest.raises(SpecError, match="cannot draw test arguments"):
        generate_tests(spec("foo", UNDRAWABLE))


def test_undrawable_spec_is_refused_before_the_sandbox_runs(tmp_path: Path) -> None:
    """build_from_spec refuses it up front: no sandbox job, no attempt."""

    backend = LocalBackend()
    ts = Toolsmith(Registry(tmp_path / "registry"), None, Sandbox(backend))
    code = "def foo(a):\n    return a\n"
    with pytest.raises(SpecError, match="cannot draw test arguments"):
        ts.build_from_spec(spec("foo", UNDRAWABLE), code)
    assert backend.jobs == []


@pytest.mark.docker
def test_correct_code_for_a_2020_12_spec_passes_in_the_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox
) -> None:
    """prefixItems and dependentRequired inputs reach the tool only when valid, so it passes."""
    monkeypatch.setenv("TOOLSMITH_HOME", str(tmp_path / "home"))
    pair = spec(
        "pair_sum", PAIR, examples=[{"args": {"pair": [1, "x"], "a": 2, "b": 3}, "returns": 6}]
    )
    ts = Toolsmith(Registry(tmp_path / "registry"), None, sandbox)
    result = ts.build_from_spec(pair, PAIR_CODE, BuildOptions(max_examples=50, dry_run=True))
    assert [a.verdict for a in result.attempts] == [AttemptVerdict.PASSED], result.attempts
    assert result.status == BuildStatus.DRY_RUN


@pytest.mark.parametrize("attack", ["FORGE", "ESCAPE", "SUBPROCESS"])
def test_property_code_reaching_past_its_arguments_is_a_spec_error(attack: str) -> None:
    """Property code that introspects the interpreter (gc, __builtins__), opens files or runs
    processes is refused before any sandbox runs; the kernel stands behind this anyway."""
    from tests.hostile import properties

    source = getattr(
        properties,
        attack,
        "import subprocess\ndef check(args, result):\n    subprocess.run(['id'])\n",
    )
    parameters = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    bad = spec("adds", parameters, properties=[{"name": "attack", "source": source}])
    with pytest.raises(SpecError, match="property attack uses what no property may"):
        generate_tests(bad)


def test_property_code_using_pure_stdlib_is_accepted() -> None:
    parameters = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    source = (
        "import json, zlib\n"
        "def check(args, result):\n"
        "    assert zlib.crc32(json.dumps(result).encode()) >= 0\n"
    )
    good = spec("adds", parameters, properties=[{"name": "pure", "source": source}])
    assert "check_properties(PROPERTIES" in generate_tests(good).files["test_tool.py"]
