"""The build pipeline end to end: scripted model on loopback, real Docker sandbox, real registry.

The scripted OpenAI-compatible server stands in for a paid model (the one thing outside); every
test and verdict comes from the real sandbox.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from toolsmith.audit import AuditLog
from toolsmith.constitution import Constitution, load_constitution
from toolsmith.errors import ApprovalRequiredError
from toolsmith.llm import LLMConfig, OpenAILLM
from toolsmith.pipeline import AttemptVerdict, BuildOptions, BuildStatus, Toolsmith
from toolsmith.registry import Registry
from toolsmith.sandbox import Sandbox
from toolsmith.spec import ToolSpec
from toolsmith.testing import ScriptedLLMServer

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parent.parent
DEMO = yaml.safe_load((ROOT / "toolsmith/data/demo_script.yaml").read_text())
DESIGN = DEMO["steps"][0]
BUGGY = DEMO["steps"][1]["reply"]
FIXED = DEMO["steps"][2]["reply"]
SPEC = ToolSpec.parse(DESIGN["json"]["spec"])
FIXED_CODE = FIXED.split("```python\n", 1)[1].split("```", 1)[0]
FAST = BuildOptions(max_examples=25)


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Registry:
    monkeypatch.setenv("TOOLSMITH_HOME", str(tmp_path / "home"))
    return Registry(tmp_path / "registry")


def scripted(*steps: dict[str, Any]) -> ScriptedLLMServer:
    return ScriptedLLMServer({"steps": list(steps)}).start()


def engine(srv: ScriptedLLMServer, registry: Registry, sandbox: Sandbox) -> Toolsmith:
    llm = OpenAILLM(LLMConfig(base_url=srv.base_url, model="scripted", max_retries=0))
    return Toolsmith(registry, llm, sandbox)


def code_reply(code: str) -> dict[str, Any]:
    return {"reply": f"```python\n{code}```"}


def test_buggy_first_attempt_is_fixed_and_published(registry: Registry, sandbox: Sandbox) -> None:
    """Attempt 1 fails a real test; the failure reaches the model; attempt 2 passes, is signed."""
    srv = scripted(DESIGN, {"reply": BUGGY}, {"reply": FIXED})
    try:
        result = engine(srv, registry, sandbox).build("parse durations", FAST)
    finally:
        srv.close()
    assert result.status == BuildStatus.PUBLISHED
    assert [a.verdict for a in result.attempts] == [AttemptVerdict.FAILED, AttemptVerdict.PASSED]
    assert "2d 4h" in srv.requests[2]["messages"][1]["content"]
    assert "[hms]" in result.attempts[0].code and result.attempts[1].code == FIXED_CODE
    tool = registry.resolve("parse_duration")
    assert tool.code == FIXED_CODE and tool.report.passed
    assert [a.verdict for a in tool.provenance.attempts] == ["failed", "passed"]
    assert tool.provenance.model == "scripted" and tool.provenance.tokens["calls"] == 3


def test_untestable_code_goes_back_to_the_model(registry: Registry, sandbox: Sandbox) -> None:
    """A syntax error and a wrong function name are attempts the model is told about."""
    srv = scripted(
        DESIGN,
        {"reply": "```python\ndef parse_duration(text:\n```"},
        code_reply("def parse(text):\n    return 0\n"),
        {"reply": FIXED},
    )
    try:
        result = engine(srv, registry, sandbox).build("parse durations", FAST)
    finally:
        srv.close()
    verdicts = [a.verdict for a in result.attempts]
    assert verdicts == [AttemptVerdict.UNTESTABLE, AttemptVerdict.UNTESTABLE, AttemptVerdict.PASSED]
    assert "SyntaxError" in srv.requests[2]["messages"][1]["content"]
    assert "found: parse" in srv.requests[3]["messages"][1]["content"]


def test_policy_violation_is_an_attempt_with_the_line(registry: Registry, sandbox: Sandbox) -> None:
    """Undeclared network use blocks the attempt before the sandbox; the message names the line."""
    sneaky = "import socket\n\n" + FIXED_CODE
    srv = scripted(DESIGN, code_reply(sneaky), {"reply": FIXED})
    try:
        result = engine(srv, registry, sandbox).build("parse durations", FAST)
    finally:
        srv.close()
    assert result.attempts[0].verdict == AttemptVerdict.POLICY
    assert "line 1" in result.attempts[0].failure and "socket" in result.attempts[0].failure
    assert result.status == BuildStatus.PUBLISHED


def test_never_fixed_publishes_nothing(registry: Registry, sandbox: Sandbox) -> None:
    """The same failure twice stops the loop early; nothing reaches the registry."""
    reflection = {"assumed": "units are h, m, s", "went_wrong": "days were left out"}
    srv = scripted(DESIGN, {"reply": BUGGY, "times": 2}, {"json": reflection}, {"reply": BUGGY})
    try:
        result = engine(srv, registry, sandbox).build("parse durations", FAST)
    finally:
        srv.close()
    assert result.status == BuildStatus.FAILED
    assert len(result.attempts) == 2, "identical repeated failure must stop the loop"
    assert srv.remaining == 1 and result.lesson is not None, "then the build reflects on it"
    assert registry.list() == []


def test_attempts_are_bounded(registry: Registry, sandbox: Sandbox) -> None:
    """Different failures each time: the loop stops at max_attempts."""
    wrong = [code_reply(f"def parse_duration(text):\n    return {i}\n") for i in range(3)]
    srv = scripted(DESIGN, *wrong)
    try:
        opts = BuildOptions(max_attempts=3, max_examples=10)
        result = engine(srv, registry, sandbox).build("parse durations", opts)
    finally:
        srv.close()
    assert result.status == BuildStatus.FAILED and len(result.attempts) == 3
    assert registry.list() == []


def test_spec_conflict_revises_the_spec(registry: Registry, sandbox: Sandbox) -> None:
    """A contradiction reported by the code generator sends the spec back to the designer."""
    broken = copy.deepcopy(DESIGN["json"]["spec"])
    broken["examples"][0]["returns"] = 46
    srv = scripted(
        {"json": {"spec": broken}},
        {"reply": "SPEC_CONFLICT: example 0 says 45s is 46 seconds"},
        DESIGN,
        {"reply": FIXED},
    )
    try:
        result = engine(srv, registry, sandbox).build("parse durations", FAST)
    finally:
        srv.close()
    assert result.status == BuildStatus.PUBLISHED and result.spec_revisions == 1
    assert result.spec is not None and result.spec.examples[0].returns == 45
    assert "45s is 46 seconds" in srv.requests[2]["messages"][1]["content"]


def test_reuse_then_force(registry: Registry, sandbox: Sandbox) -> None:
    """A fitting registry tool is reused without building; --force builds anyway."""
    first = Toolsmith(registry, None, sandbox).build_from_spec(SPEC, FIXED_CODE, FAST)
    assert first.status == BuildStatus.PUBLISHED
    srv = scripted({"json": {"reuse": "parse_duration@0.1.0"}}, DESIGN, {"reply": FIXED})
    try:
        ts = engine(srv, registry, sandbox)
        reused = ts.build("parse a duration like 1h30m", FAST)
        forced = ts.build("parse a duration like 1h30m", FAST.model_copy(update={"force": True}))
    finally:
        srv.close()
    assert reused.status == BuildStatus.REUSED and reused.reused == "parse_duration@0.1.0"
    assert "parse_duration@0.1.0" in srv.requests[0]["messages"][1]["content"]
    assert forced.status == BuildStatus.PUBLISHED and forced.ref == "parse_duration@0.1.1"
    assert "Existing tools" not in srv.requests[1]["messages"][1]["content"]


def test_dry_run_publishes_nothing(registry: Registry, sandbox: Sandbox) -> None:
    """--dry-run proves the tool and stops short of the registry."""
    opts = FAST.model_copy(update={"dry_run": True})
    result = Toolsmith(registry, None, sandbox).build_from_spec(SPEC, FIXED_CODE, opts)
    assert result.status == BuildStatus.DRY_RUN and result.report is not None
    assert result.report.passed and registry.list() == []


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from toolsmith.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


def test_cli_build_from_spec_and_impl(tmp_path: Path) -> None:
    """`toolsmith build --spec --impl` publishes with no LLM; a failing impl exits 7."""
    env = {**os.environ, "TOOLSMITH_HOME": str(tmp_path / "home")}
    for var in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "TOOLSMITH_MODEL"):
        env.pop(var, None)
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.to_yaml())
    good, bad = tmp_path / "good.py", tmp_path / "bad.py"
    good.write_text(FIXED_CODE)
    bad.write_text(BUGGY.split("```python\n", 1)[1].split("```", 1)[0])
    reg = str(tmp_path / "reg")
    common = ["--spec", str(spec), "--registry", reg, "--max-examples", "20", "--json"]
    ok = cli("build", *common, "--impl", str(good), env=env)
    assert ok.returncode == 0, ok.stderr
    data = json.loads(ok.stdout)
    assert data["status"] == "published" and data["record"]["version"] == "0.1.0"
    failed = cli("build", *common, "--impl", str(bad), env=env)
    assert failed.returncode == 7
    assert json.loads(failed.stdout)["status"] == "failed"
    assert "BuildError" in failed.stderr and "2d 4h" in failed.stdout
    no_llm = cli("build", "parse durations", "--registry", reg, env=env)
    assert no_llm.returncode == 6
    assert "OPENAI_BASE_URL" in no_llm.stderr and "Traceback" not in no_llm.stderr


def test_regression_guard_keeps_old_examples(registry: Registry, sandbox: Sandbox) -> None:
    """A minor version that drops an old example and breaks it is refused; a major may break it."""
    ts = Toolsmith(registry, None, sandbox)
    assert ts.build_from_spec(SPEC, FIXED_CODE, FAST).status == BuildStatus.PUBLISHED
    data = SPEC.model_dump(mode="json")
    data["examples"] = [e for e in data["examples"] if "d" not in e["args"]["text"]]
    no_days = ToolSpec.parse(data)
    buggy = BUGGY.split("```python\n", 1)[1].split("```", 1)[0]
    regressed = ts.build_from_spec(no_days, buggy, FAST)
    assert regressed.status == BuildStatus.FAILED
    assert "test_regression_0_1_0" in regressed.attempts[-1].failure
    assert [r.version for r in registry.versions("parse_duration")] == ["0.1.0"]
    breaking = ts.build_from_spec(no_days, buggy, FAST.model_copy(update={"bump": "major"}))
    assert breaking.status == BuildStatus.PUBLISHED and breaking.ref == "parse_duration@1.0.0"


def test_capability_needing_approval_is_published_pending(
    registry: Registry, sandbox: Sandbox
) -> None:
    """A declared network capability is proven, then held as pending: agents cannot resolve it."""
    networked = ToolSpec.parse({**SPEC.model_dump(mode="json"), "capabilities": ["network:x.io"]})
    result = Toolsmith(registry, None, sandbox).build_from_spec(networked, FIXED_CODE, FAST)
    assert result.status == BuildStatus.PENDING
    assert result.policy is not None and "network:x.io" in result.policy
    with pytest.raises(ApprovalRequiredError, match="toolsmith approve"):
        registry.resolve("parse_duration@0.1.0")


def test_denied_capability_stops_the_build_at_once(registry: Registry, sandbox: Sandbox) -> None:
    """subprocess is denied by the default policy: no code change can fix that, so one attempt."""
    spawning = ToolSpec.parse({**SPEC.model_dump(mode="json"), "capabilities": ["subprocess"]})
    srv = scripted({"reply": FIXED}, {"reply": FIXED})
    try:
        result = engine(srv, registry, sandbox).build_from_spec(spawning, None, FAST)
    finally:
        srv.close()
    assert result.status == BuildStatus.FAILED and len(result.attempts) == 1
    assert result.attempts[0].verdict == AttemptVerdict.POLICY
    assert "subprocess" in result.attempts[0].failure


def test_ungrantable_capability_is_a_final_policy_verdict(
    registry: Registry, sandbox: Sandbox
) -> None:
    """A host path the sandbox never mounts writable ends the build with the reason, no crash."""
    writer = ToolSpec.parse({**SPEC.model_dump(mode="json"), "capabilities": ["fs:write:/etc/x"]})
    result = Toolsmith(registry, None, sandbox).build_from_spec(writer, FIXED_CODE, FAST)
    assert result.status == BuildStatus.FAILED and len(result.attempts) == 1
    assert result.attempts[0].verdict == AttemptVerdict.POLICY
    assert "fs:write:/etc/x" in result.attempts[0].failure


def test_constitution_state_rule_fails_by_id(registry: Registry, sandbox: Sandbox) -> None:
    """A project rule capping results at 3 bytes fails the build, named by its id."""
    project = Constitution.from_toml(
        '[[rule]]\nid = "tiny-results"\nreason = "test"\nkind = "result-bytes"\nlimit = 3\n'
    )
    ts = Toolsmith(registry, None, sandbox, constitution=load_constitution().merged(project))
    result = ts.build_from_spec(SPEC, FIXED_CODE, FAST)
    assert result.status == BuildStatus.FAILED
    assert "constitution: tiny-results" in result.attempts[-1].summary
    assert "[constitution tiny-results]" in result.attempts[-1].failure


def test_builds_are_audited(registry: Registry, sandbox: Sandbox) -> None:
    """Every build and publish lands in the registry's hash-chained audit log (the publish
    entry is written by the registry, before the new metadata takes effect)."""
    ts = Toolsmith(registry, None, sandbox)
    ts.build_from_spec(SPEC, FIXED_CODE, FAST)
    ts.build_from_spec(SPEC, "def parse_duration(text):\n    return 1\n", FAST)
    entries = [e for e in AuditLog.for_registry(registry.path).entries() if e.event != "init"]
    assert [(e.event, e.subject) for e in entries] == [
        ("publish", "parse_duration@0.1.0"),
        ("build", "parse_duration"),
        ("build", "parse_duration"),
    ]
    assert entries[2].reason is not None and entries[2].reason.startswith("failed")
    assert AuditLog.for_registry(registry.path).verify().ok


def test_get_or_build_returns_a_loaded_tool(registry: Registry, sandbox: Sandbox) -> None:
    """An agent's one call: the registry tool is reused, loaded, and answers (also async)."""
    Toolsmith(registry, None, sandbox).build_from_spec(SPEC, FIXED_CODE, FAST)
    srv = scripted(
        {"json": {"reuse": "parse_duration@0.1.0"}}, {"json": {"reuse": "parse_duration@0.1.0"}}
    )
    try:
        ts = engine(srv, registry, sandbox)
        with ts.get_or_build("parse a duration") as tool:
            assert tool.ref == "parse_duration@0.1.0" and tool(text="1h30m") == 5400
        loaded = asyncio.run(ts.aget_or_build("parse a duration"))
        with loaded:
            assert loaded.runtime == "docker"
            assert asyncio.run(loaded.acall(text="2d 4h")) == 187200
    finally:
        srv.close()
    loads = [e for e in registry.consumer_audit.entries() if e.event == "load"]
    assert len(loads) == 2 and loads[0].actor.startswith("build ")
    assert "load" not in {e.event for e in AuditLog.for_registry(registry.path).entries()}
