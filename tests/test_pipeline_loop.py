"""The fix loop's bookkeeping: when it stops, what it tells the model, what provenance records.

A scripted model on loopback stands in for a paid one; the sandbox is the real Docker engine.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.specs import ADD_INTS
from toolsmith.errors import BuildError
from toolsmith.llm import LLMConfig, OpenAILLM
from toolsmith.pipeline import (
    AttemptVerdict,
    BuildOptions,
    BuildStatus,
    Toolsmith,
    require_success,
)
from toolsmith.registry import Registry
from toolsmith.report import Outcome, TestCase, TestReport
from toolsmith.sandbox import Sandbox
from toolsmith.spec import ToolSpec
from toolsmith.testing import LocalBackend, ScriptedLLMServer

SPEC = ToolSpec.parse(ADD_INTS)
FAST = BuildOptions(max_attempts=4, max_examples=10)
DESIGN = {"json": {"spec": SPEC.model_dump(mode="json")}}
CONFLICT = {"reply": "SPEC_CONFLICT: example 0 says 1 + 2 is 3 but property p says 4"}


@pytest.fixture
def untouched() -> Iterator[Sandbox]:
    """A sandbox for builds that must end before any code is tested: the shipped stand-in,
    checked afterwards to have run no job."""
    backend = LocalBackend()
    yield Sandbox(backend)
    assert backend.jobs == [], "no code should reach the sandbox"


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


def user_prompt(srv: ScriptedLLMServer, i: int) -> str:
    return str(srv.requests[i]["messages"][-1]["content"])


def test_conflict_in_a_given_spec_fails_at_once(registry: Registry, untouched: Sandbox) -> None:
    """With --spec nobody can revise the spec: the first conflict ends the build, saying so."""
    srv = ScriptedLLMServer({"steps": [{**CONFLICT, "times": 4}]}).start()
    llm = OpenAILLM(LLMConfig(base_url=srv.base_url, model="scripted", max_retries=0))
    no_lessons = FAST.model_copy(update={"lessons": False})  # no reflection: count the loop's
    try:
        result = Toolsmith(registry, llm, untouched).build_from_spec(SPEC, None, no_lessons)
    finally:
        srv.close()
    assert [a.verdict for a in result.attempts] == [AttemptVerdict.SPEC_CONFLICT]
    assert result.status == BuildStatus.FAILED and len(srv.requests) == 1
    with pytest.raises(BuildError, match="spec conflict: example 0 says") as exc:
        require_success(result)
    assert exc.value.hint and "fix the parts it names" in exc.value.hint


def test_repeated_conflict_is_fed_back_once_then_stops(
    registry: Registry, untouched: Sandbox
) -> None:
    """Revisions used up: the model hears its conflict and the spec stands; a repeat ends it."""
    srv = ScriptedLLMServer({"steps": [DESIGN, {**CONFLICT, "times": 4}]}).start()
    llm = OpenAILLM(LLMConfig(base_url=srv.base_url, model="scripted", max_retries=0))
    # No lessons, so no reflection request: the requests counted are the loop's own.
    options = BuildOptions(max_attempts=4, max_spec_revisions=0, force=True, lessons=False)
    try:
        result = Toolsmith(registry, llm, untouched).build("add two ints", options)
    finally:
        srv.close()
    assert [a.verdict for a in result.attempts] == [AttemptVerdict.SPEC_CONFLICT] * 2
    assert result.status == BuildStatus.FAILED and len(srv.requests) == 3
    assert "property p says 4" in user_prompt(srv, 2)
    assert "cannot be revised any further" in user_prompt(srv, 2)


@pytest.mark.docker
def test_conflict_feedback_without_earlier_code_reaches_the_model(
    registry: Registry, sandbox: Sandbox
) -> None:
    """A conflict on the first attempt (no code yet) is still told to the model, which then
    implements the spec as written."""
    steps = [DESIGN, CONFLICT, code("a + b")]
    srv = ScriptedLLMServer({"steps": steps}).start()
    options = BuildOptions(max_attempts=4, max_examples=10, max_spec_revisions=0, force=True)
    try:
        result = engine(srv, registry, sandbox).build("add two ints", options)
    finally:
        srv.close()
    assert [a.verdict for a in result.attempts] == [
        AttemptVerdict.SPEC_CONFLICT,
        AttemptVerdict.PASSED,
    ]
    assert "property p says 4" in user_prompt(srv, 2)


@pytest.mark.docker
def test_provenance_digests_every_prompt_of_every_stage(
    registry: Registry, sandbox: Sandbox
) -> None:
    """Design, code, revision and code again: four prompts, each digested as sent (lessons off:
    the reflection a revised build asks for comes after publishing, outside the provenance)."""
    steps = [DESIGN, CONFLICT, DESIGN, code("a + b")]
    srv = ScriptedLLMServer({"steps": steps}).start()
    no_lessons = FAST.model_copy(update={"lessons": False})
    try:
        result = engine(srv, registry, sandbox).build("add two ints", no_lessons)
    finally:
        srv.close()
    assert result.status == BuildStatus.PUBLISHED and result.spec_revisions == 1
    sent = [json.dumps(r["messages"], sort_keys=True, separators=(",", ":")) for r in srv.requests]
    expected = ["sha256:" + hashlib.sha256(m.encode()).hexdigest() for m in sent]
    assert registry.resolve("add_ints").provenance.prompt_digests == expected
    assert len(expected) == 4


def test_answer_without_a_code_block_is_told_how_to_answer(
    registry: Registry, untouched: Sandbox
) -> None:
    """Prose read as code fails to parse; the feedback asks for one ```python block."""
    prose = {"reply": "I would add a and b and return the sum.", "times": 2}
    srv = ScriptedLLMServer({"steps": [prose]}).start()
    llm = OpenAILLM(LLMConfig(base_url=srv.base_url, model="scripted", max_retries=0))
    try:
        result = Toolsmith(registry, llm, untouched).build_from_spec(SPEC, None, FAST)
    finally:
        srv.close()
    assert result.attempts[0].verdict == AttemptVerdict.UNTESTABLE
    assert "one ```python fenced block" in user_prompt(srv, 1)


def test_ambiguous_answer_tests_the_module_and_tells_the_model(
    registry: Registry, sandbox: Sandbox
) -> None:
    """The scripted model sends an outline, the (buggy) module and a usage block: the module is
    what the sandbox tests, and the fix request says the answer was ambiguous."""
    outline = "```python\ndef add_ints(a, b):\n    ...\n```"
    module = "```python\ndef add_ints(a, b):\n    return a - b\n```"
    usage = "```python\nprint(add_ints(1, 2))\n```"
    three = {"reply": f"Plan:\n{outline}\nModule:\n{module}\nUse it:\n{usage}\n"}
    with ScriptedLLMServer({"steps": [three, code("a + b")]}) as srv:
        result = engine(srv, registry, sandbox).build_from_spec(SPEC, None, FAST)
    assert [a.verdict for a in result.attempts] == [AttemptVerdict.FAILED, AttemptVerdict.PASSED]
    fix_request = user_prompt(srv, 1)
    assert "return a - b" in fix_request and "ambiguous" in fix_request
    assert "3 python code blocks" in fix_request
