"""Schema patterns are matched on the host in time linear in the value (RE2), never by a
backtracking engine a tool's result or an agent's argument could drive into ReDoS."""

from __future__ import annotations

from typing import Any

import pytest

from toolsmith.errors import SpecError, ToolArgumentsError, ToolExecutionError
from toolsmith.spec import STORED, ToolSpec, schema_errors
from toolsmith.validation import Contract

# Exponential for Python's re on "a" * 64 + "!" (hours); linear for RE2.
EVIL = "^(a|aa)*$"
ATTACK = "a" * 64 + "!"


def spec(parameters: dict[str, Any] | None = None, returns: Any = None, **extra: Any) -> dict:
    return {
        "name": "tag_echo",
        "description": "Return the tag text unchanged when it is a run of the letter a.",
        "parameters": parameters
        or {"type": "object", "properties": {"tag": {"type": "string"}}, "required": ["tag"]},
        "returns": returns if returns is not None else {"type": "string", "pattern": EVIL},
        **extra,
    }


def test_a_result_built_to_backtrack_is_refused_at_once() -> None:
    """The finding's tool: returns pattern ^(a|aa)*$ and a result of 64 a's and a '!' -- the
    check answers (a clean ToolExecutionError) instead of spinning the host."""
    contract = Contract(ToolSpec.parse(spec()))
    contract.check_result("aaaa")
    with pytest.raises(ToolExecutionError, match="does not match"):
        contract.check_result(ATTACK)


def test_an_argument_built_to_backtrack_is_refused_at_once() -> None:
    """The same pattern on a parameter, against an agent-supplied argument."""
    params = {
        "type": "object",
        "properties": {"tag": {"type": "string", "pattern": EVIL}},
        "required": ["tag"],
    }
    contract = Contract(ToolSpec.parse(spec(parameters=params, returns={})))
    assert contract.check_args({"tag": "aa"}) == {"tag": "aa"}
    with pytest.raises(ToolArgumentsError, match="does not match"):
        contract.check_args({"tag": ATTACK})


def test_pattern_properties_and_additional_properties_use_the_same_engine() -> None:
    """Property names are matched by patternProperties and, to find the extras, by
    additionalProperties: both in linear time, with jsonschema's wording."""
    returns = {"type": "object", "patternProperties": {EVIL: {}}, "additionalProperties": False}
    contract = Contract(ToolSpec.parse(spec(returns=returns)))
    contract.check_result({"aaa": 1})
    with pytest.raises(ToolExecutionError, match="does not match any of the regexes"):
        contract.check_result({ATTACK: 1})


@pytest.mark.parametrize(
    "pattern", [r"^(?=a)", r"^(a)\1$", r"(?<!x)y", r"^a\Z"], ids=["ahead", "backref", "behind", "Z"]
)
def test_a_spec_whose_pattern_needs_backtracking_is_refused_with_the_fix(pattern: str) -> None:
    """Lookaround and backreferences have no linear-time match: the spec is refused, naming the
    pattern, where it is and how to rewrite it."""
    with pytest.raises(SpecError, match="linear time") as e:
        ToolSpec.parse(spec(returns={"type": "string", "pattern": pattern}))
    assert repr(pattern) in str(e.value) and "/pattern" in str(e.value)
    assert "RE2" in str(e.value)


def test_a_stored_spec_with_such_a_pattern_loads_and_fails_closed() -> None:
    """A spec signed before the rule still loads, and every value fails its pattern check
    (never a backtracking match)."""
    stored = ToolSpec.model_validate(
        spec(returns={"type": "string", "pattern": r"^(a)\1$"}), context=STORED
    )
    [problem] = schema_errors(stored.returns, "aa")
    assert "linear time" in problem
    with pytest.raises(ToolExecutionError, match="linear time"):
        Contract(stored).check_result("aa")
