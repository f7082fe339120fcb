"""Inputs that reach the domain: seeds near the examples and on the schema's boundaries, the
accepted-input share in the report, and properties that call the tool again.

The Docker tests run the generated files in the real sandbox; one build each.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest

from toolsmith.errors import SpecError
from toolsmith.pipeline import AttemptVerdict, BuildOptions, Toolsmith
from toolsmith.registry import Registry
from toolsmith.report import TestCase, TestReport
from toolsmith.sandbox import Sandbox
from toolsmith.seeds import seed_arguments
from toolsmith.spec import ToolSpec
from toolsmith.testgen import drawing_schema, generate_tests

SOURCES = Path(__file__).resolve().parent.parent / "registry" / "sources"


def make_spec(parameters: dict[str, Any], examples: list[dict[str, Any]], **extra: Any) -> ToolSpec:
    return ToolSpec.parse(
        {
            "name": "probe",
            "description": "d",
            "parameters": parameters,
            "returns": {},
            "examples": examples,
            **extra,
        }
    )


def seeds_of(spec: ToolSpec, limit: int = 200) -> list[dict[str, Any]]:
    return seed_arguments(spec, drawing_schema(spec.parameters), limit=limit)


def test_seeds_reach_the_domain_of_a_semver_comparison() -> None:
    """Equal pairs (the reflexive case) and neighbouring versions come out of the examples."""
    spec = ToolSpec.from_file(SOURCES / "semver_compare" / "spec.yaml")
    seeds = seeds_of(spec, limit=100_000)
    assert {"a": "1.2.3", "b": "1.2.3"} in seeds
    assert {"a": "1.2.4", "b": "1.10.0"} in seeds
    assert {"a": "1.2.3", "b": "1.11.0"} in seeds
    examples = [ex.args for ex in spec.examples]
    assert not [s for s in seeds if s in examples]


def test_seeds_take_every_boundary_and_stay_valid() -> None:
    """minimum/maximum, exclusive bounds, enum members, maxLength and maxItems, each valid."""
    parameters = {
        "type": "object",
        "properties": {
            "n": {"type": "integer", "minimum": 1, "maximum": 10},
            "x": {"type": "number", "exclusiveMinimum": 0},
            "unit": {"type": "string", "enum": ["m", "km", "mi"]},
            "word": {"type": "string", "minLength": 2, "maxLength": 5},
            "items": {"type": "array", "items": {"type": "integer"}, "maxItems": 3},
        },
        "required": ["n", "unit", "word", "items"],
        "additionalProperties": False,
    }
    base = {"n": 5, "x": 2.5, "unit": "m", "word": "abc", "items": [1, 2]}
    spec = make_spec(parameters, [{"args": base, "returns": 0}])
    seeds = seeds_of(spec)
    validator = jsonschema.Draft202012Validator(drawing_schema(parameters))
    assert seeds and all(validator.is_valid(s) for s in seeds)
    values = {name: [s.get(name) for s in seeds] for name in base}
    assert {1, 2, 9, 10, 4, 6} <= set(values["n"])
    assert 11 not in values["n"] and 0 not in values["n"]
    assert {"km", "mi"} <= set(values["unit"])
    assert {"abcab", "ab"} <= set(values["word"]) and "abcabc" not in values["word"]
    assert [1, 2, 1] in values["items"] and [] in values["items"] and [2, 1] in values["items"]
    assert {k: v for k, v in base.items() if k != "x"} in seeds  # the optional one dropped


def test_seeds_are_deterministic_and_capped() -> None:
    spec = ToolSpec.from_file(SOURCES / "days_between" / "spec.yaml")
    first = seeds_of(spec, limit=20)
    assert len(first) == 20 and first == seeds_of(spec, limit=20)


def test_a_spec_without_examples_has_no_seeds() -> None:
    spec = make_spec({"type": "object", "properties": {"a": {"type": "integer"}}}, [])
    assert seeds_of(spec) == []


def test_seeds_are_embedded_in_the_generated_tests() -> None:
    spec = ToolSpec.from_file(SOURCES / "semver_compare" / "spec.yaml")
    source = generate_tests(spec).files["test_tool.py"]
    assert '{"a": "1.2.3", "b": "1.2.3"}' in source
    assert "@with_seeds" in source and "tally(inv.ok)" in source


def test_vague_string_parameters_are_flagged() -> None:
    """Open-ended strings are warned about; pattern, enum, format or maxLength settle it."""
    parameters = {
        "type": "object",
        "properties": {
            "free": {"type": "string"},
            "version": {"type": "string", "pattern": r"^\d+\.\d+\.\d+$"},
            "unit": {"type": "string", "enum": ["m"]},
            "day": {"type": "string", "format": "date"},
            "text": {"type": "string", "maxLength": 2000},
            "n": {"type": "integer"},
        },
    }
    warnings = make_spec(parameters, []).vague_parameters()
    assert len(warnings) == 1 and "'free' is any string" in warnings[0]


def test_properties_may_take_the_tool_handle() -> None:
    """check(args, result, tool) is accepted; four parameters are not."""
    three = "def check(args, result, tool):\n    assert tool(**args) == result\n"
    spec = make_spec({"type": "object"}, [], properties=[{"name": "again", "source": three}])
    assert spec.properties[0].source == three
    with pytest.raises(SpecError, match=r"check\(args, result, tool\)"):
        make_spec(
            {"type": "object"},
            [],
            properties=[{"name": "bad", "source": "def check(a, b, c, d):\n    pass\n"}],
        )


def test_report_warns_when_nearly_every_input_is_rejected() -> None:
    """Below a 10% accepted share the report says the test proved little; old reports (no
    counts) and healthy shares say nothing."""
    report = TestReport(
        tests=[
            TestCase(
                nodeid="t.py::test_generated_inputs", outcome="passed", inputs=100, accepted=3
            ),
            TestCase(nodeid="t.py::test_example_0", outcome="passed"),
        ],
        expected=2,
        collected=2,
    )
    (warning,) = report.warnings()
    assert "accepted only 3 of 100" in warning and "pattern, enum" in warning
    assert report.passed
    report.tests[0].accepted = 40
    assert report.warnings() == []
    stored = report.model_dump(mode="json", exclude={"executed", "passed"})
    assert TestReport.model_validate(stored).tests[0].accepted == 40


ROUND_TRIP = {
    "name": "caesar",
    "description": "Shift the letters a-z of a lowercase word by a number of places.",
    "parameters": {
        "type": "object",
        "properties": {
            "word": {"type": "string", "pattern": "^[a-z]{1,12}$"},
            "shift": {"type": "integer", "minimum": -25, "maximum": 25},
        },
        "required": ["word", "shift"],
        "additionalProperties": False,
    },
    "returns": {"type": "string"},
    "raises": [],
    "examples": [
        {"args": {"word": "abc", "shift": 1}, "returns": "bcd"},
        {"args": {"word": "xyz", "shift": 3}, "returns": "abc"},
    ],
    "properties": [
        {
            "name": "round_trip",
            "source": "def check(args, result, tool):\n"
            "    assert tool(word=result, shift=-args['shift']) == args['word']\n",
        },
        {
            "name": "stdlib_reference",
            "source": "import string\n\ndef check(args, result):\n"
            "    a, k = string.ascii_lowercase, args['shift'] % 26\n"
            "    assert result == args['word'].translate(str.maketrans(a, a[k:] + a[:k]))\n",
        },
    ],
}
CAESAR = """\
def caesar(word, shift):
    return "".join(chr((ord(c) - 97 + shift) % 26 + 97) for c in word)
"""
# Right on both examples (shifts 1 and 3 do not wrap below 'a'); wrong for negative shifts that
# wrap, which only the round-trip property reaches.
CAESAR_NO_NEGATIVE_WRAP = """\
def caesar(word, shift):
    out = []
    for c in word:
        n = ord(c) - 97 + shift
        out.append(chr(n % 26 + 97) if n >= 0 else chr(97))
    return "".join(out)
"""


@pytest.mark.docker
def test_round_trip_property_calls_the_tool_and_reports_the_share(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """The property calls the tool again through the harness: a right Caesar shift passes with
    every input accepted, a wrong one is caught by the round trip alone."""
    spec = ToolSpec.parse(ROUND_TRIP)
    ts = Toolsmith(Registry(tmp_path / "registry"), None, sandbox)
    options = BuildOptions(max_examples=30, dry_run=True)
    right = ts.build_from_spec(spec, CAESAR, options)
    assert [a.verdict for a in right.attempts] == [AttemptVerdict.PASSED], right.attempts
    assert right.report is not None
    (generated,) = [t for t in right.report.tests if t.nodeid.endswith("test_generated_inputs")]
    assert generated.inputs is not None and generated.inputs >= 30
    assert generated.accepted == generated.inputs
    round_trip_only = spec.model_copy(update={"properties": spec.properties[:1]})
    wrong = ts.build_from_spec(round_trip_only, CAESAR_NO_NEGATIVE_WRAP, options)
    assert wrong.attempts[-1].verdict == AttemptVerdict.FAILED
    assert "property round_trip fails" in wrong.attempts[-1].failure


PICKY = {
    "name": "picky",
    "description": "Accept only the word 'yes'.",
    "parameters": {
        "type": "object",
        "properties": {"word": {"type": "string", "maxLength": 20}},
        "required": ["word"],
        "additionalProperties": False,
    },
    "returns": {"type": "boolean"},
    "raises": ["ValueError"],
    "examples": [{"args": {"word": "no"}, "raises": "ValueError"}],
}
PICKY_CODE = """\
def picky(word):
    if word != "yes":
        raise ValueError("only 'yes'")
    return True
"""


@pytest.mark.docker
def test_a_tool_rejecting_nearly_everything_passes_with_a_warning(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    ts = Toolsmith(Registry(tmp_path / "registry"), None, sandbox)
    result = ts.build_from_spec(
        ToolSpec.parse(PICKY), PICKY_CODE, BuildOptions(max_examples=30, dry_run=True)
    )
    assert result.report is not None and result.report.passed
    (warning,) = result.report.warnings()
    assert "test_generated_inputs: the tool accepted only 0 of" in warning


def test_a_revision_prompt_asks_to_tighten_vague_parameters() -> None:
    from toolsmith.designer import design_messages

    vague = make_spec(
        {"type": "object", "properties": {"free": {"type": "string"}}}, [{"args": {}, "returns": 1}]
    )
    user = design_messages("t", [], (vague, "an example breaks a property"))[-1]["content"]
    assert "Also tighten these parameters:\n- parameter 'free' is any string" in user
    precise = make_spec(
        {"type": "object", "properties": {"day": {"type": "string", "format": "date"}}}, []
    )
    assert "tighten" not in design_messages("t", [], (precise, "x"))[-1]["content"]
