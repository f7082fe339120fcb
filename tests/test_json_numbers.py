"""One contract for JSON numbers: an integral float is the int it equals on the way in, and a
result typed integer must be an int on the way out, in both runtimes, the MCP server (which calls
through the same runtimes) and the generated tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from toolsmith.errors import ToolArgumentsError, ToolExecutionError
from toolsmith.pipeline import AttemptVerdict, BuildOptions, Toolsmith
from toolsmith.registry import Registry
from toolsmith.runtimes.restricted import load_restricted
from toolsmith.sandbox import Sandbox
from toolsmith.spec import ToolSpec
from toolsmith.validation import Contract

SPEC = ToolSpec.parse(
    {
        "name": "count_up",
        "description": "The numbers 0..n-1, and their sum scaled by a factor.",
        "parameters": {
            "type": "object",
            "properties": {
                "n": {"type": "integer", "minimum": 0, "maximum": 100},
                "steps": {"type": "array", "items": {"type": "integer"}},
                "factor": {"type": "number"},
            },
            "required": ["n"],
            "additionalProperties": False,
        },
        "returns": {
            "type": "object",
            "properties": {"items": {"type": "array", "items": {"type": "integer"}}},
            "required": ["items"],
        },
        "examples": [{"args": {"n": 2}, "returns": {"items": [0, 1]}}],
    }
)
CODE = """
def count_up(n, steps=None, factor=1.0):
    return {"items": list(range(n)), "steps": [s * 2 for s in (steps or [])], "total": factor}
"""


def test_integral_floats_become_ints_where_only_integers_are_allowed() -> None:
    """1994.0 where the schema says integer arrives as 1994; a number stays a float."""
    args = Contract(SPEC).check_args({"n": 3.0, "steps": [1.0, 2], "factor": 2.0})
    assert args == {"n": 3, "steps": [1, 2], "factor": 2.0}
    assert [type(v) for v in (args["n"], *args["steps"], args["factor"])] == [int, int, int, float]
    with pytest.raises(ToolArgumentsError, match="is not of type 'integer'"):
        Contract(SPEC).check_args({"n": 2.5})


def test_restricted_runtime_calls_with_an_integral_float() -> None:
    """`range(3.0)` would raise TypeError and blame the tool; the tool receives 3."""
    tool = load_restricted(SPEC, CODE)
    assert tool(n=3.0, steps=[4.0])["items"] == [0, 1, 2]


@pytest.mark.parametrize("result", [{"items": [0, 5400.0]}, {"items": [1.0]}])
def test_a_result_typed_integer_must_hold_ints(result: dict[str, Any]) -> None:
    """JSON Schema accepts 5400.0 as an integer; a Python caller would hold a float."""
    with pytest.raises(ToolExecutionError, match=r"floats where returns allows only integers"):
        Contract(SPEC).check_result(result)
    Contract(SPEC).check_result({"items": [0, 5400]})


def test_generated_tests_hold_results_to_ints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox
) -> None:
    """In the sandbox, a tool that returns floats for integers fails the generic checks."""
    monkeypatch.setenv("TOOLSMITH_HOME", str(tmp_path / "home"))
    floats = CODE.replace("list(range(n))", "[float(i) for i in range(n)]")
    ts = Toolsmith(Registry(tmp_path / "reg"), None, sandbox)
    result = ts.build_from_spec(SPEC, floats, BuildOptions(max_examples=10, dry_run=True))
    assert result.attempts[0].verdict == AttemptVerdict.FAILED
    assert "is a float where returns allows only integers" in result.attempts[0].failure
