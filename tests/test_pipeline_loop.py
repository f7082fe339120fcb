"""The fix loop's bookkeeping: when it stops, what it tells the model, what provenance records.

A scripted model on loopback stands in for a paid one; the sandbox is the real Docker engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from toolsmith.llm import LLMConfig, OpenAILLM
from toolsmith.pipeline import AttemptVerdict, BuildOptions, BuildStatus, Toolsmith
from toolsmith.registry import Registry
from toolsmith.report import Outcome, TestCase, TestReport
from toolsmith.sandbox import Sandbox
from toolsmith.spec import ToolSpec
from toolsmith.testing import ScriptedLLMServer

SPEC = ToolSpec.parse(
    {
        "name": "add_ints",
        "description": "Add two integers.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
            "additionalProperties": False,
        },
        "returns": {"type": "integer"},
        "examples": [{"args": {"a": 1, "b": 2}, "returns": 3}],
    }
)
FAST = BuildOptions(max_attempts=4, max_examples=10)


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Registry:
    monkeypatch.setenv("TOOLSMITH_HOME", str(tmp_path / "home"))
    return Registry(tmp_path / "registry")


def code(body: str) -> dict[str, Any]:
    return {"reply": f"```python\ndef add_ints(a, b):\n    return {body}\n```"}


def engine(srv: ScriptedLLMServer, registry: Registry, sandbox: Sandbox) -> Toolsmith:
    llm = OpenAILLM(LLMConfig(base_url=srv.base_url, model="scripted", max_retries=0))
    return Toolsmith(registry, llm, sandbox)


def failed(failure: str) -> TestReport:
    case = TestCase(nodeid="test_tool.py::test_example_0", outcome=Outcome.FAILED, failure=failure)
    return TestReport(tests=[case], expected=1, collected=1)


def test_signature_tells_different_failures_of_the_same_test_apart() -> None:
    """Same test, different exception: different signatures; only addresses differ: the same."""
    name_error = "/work/job-ab12/test_tool.py:75: in t\nE   AssertionError: raised NameError: x"
    wrong_type = "/work/job-ab12/test_tool.py:76: in t\nE   AssertionError: expected 3, got '3'"
    assert failed(name_error).signature() != failed(wrong_type).signature()
    at_a = "/work/job-0123456789abcdef/t.py:9: in t\nE   ValueError: <Foo at 0x7f3a2b1c>"
    at_b = "/work/job-fedcba9876543210/t.py:9: in t\nE   ValueError: <Foo at 0x7f99ffee>"
    assert failed(at_a).signature() == failed(at_b).signature()


@pytest.mark.docker
def test_progress_through_different_failures_is_not_stopped_early(
    registry: Registry, sandbox: Sandbox
) -> None:
    """A NameError, then a wrong result type on the same tests, then a fix: all three attempts."""
    srv = ScriptedLLMServer(
        {"steps": [code("a + b + undefined_name"), code("str(a + b)"), code("a + b")]}
    ).start()
    try:
        result = engine(srv, registry, sandbox).build_from_spec(SPEC, None, FAST)
    finally:
        srv.close()
    assert [a.verdict for a in result.attempts] == [
        AttemptVerdict.FAILED,
        AttemptVerdict.FAILED,
        AttemptVerdict.PASSED,
    ]
    assert result.status == BuildStatus.PUBLISHED
