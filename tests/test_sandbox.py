"""The sandbox: image, job protocol, verdict judging, warm pool and cleanup."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from typing import Any

import docker
import pytest

from toolsmith.errors import EngineUnavailableError, UsageError
from toolsmith.report import Outcome, Verdict
from toolsmith.sandbox import Sandbox, SandboxJob, connect, ensure_image
from toolsmith.sandbox._protocol import judge
from toolsmith.sandbox.containers import OWNER_LABEL

NONCE = "a" * 32
ADD = "def add(a, b):\n    return a + b\n"
ADD_TESTS = textwrap.dedent(
    """
    from hypothesis import given, strategies as st
    from toolsmith_harness import call, invoke, ToolRaised

    def test_example():
        assert call(a=1, b=2) == 3

    def test_raises():
        inv = invoke({"a": 1, "b": "x"})
        assert not inv.ok and inv.error_type == "TypeError"
        assert inv.args_after == {"a": 1, "b": "x"}

    @given(st.integers(), st.integers())
    def test_property(a, b):
        assert call(a=a, b=b) == a + b
    """
)


def _rec(kind: str, doc: dict[str, Any], nonce: str = NONCE) -> bytes:
    return f"TOOLSMITH {nonce} {kind} {json.dumps(doc)}\n".encode()


def _passing_stream(nonce: str = NONCE) -> bytes:
    test = {"nodeid": "t.py::test_a", "outcome": "passed", "duration_s": 0.1}
    return (
        _rec("collected", {"nodeids": ["t.py::test_a"], "errors": []}, nonce)
        + _rec("test", test, nonce)
        + _rec("done", {"exit_code": 0, "collected": 1}, nonce)
    )


def test_judge_accepts_a_complete_framed_report() -> None:
    """A well-framed stream with the right nonce and counts is a pass."""
    assert judge(_passing_stream(), NONCE, expected=1).passed


def test_judge_ignores_records_with_the_wrong_nonce() -> None:
    """A report printed by someone who does not know the nonce is no report: crashed."""
    report = judge(_passing_stream("b" * 32), NONCE, expected=1)
    assert not report.passed
    assert Verdict.CRASHED in report.verdicts


def test_judge_fails_a_report_without_its_done_record() -> None:
    """Records cut off before the done record (runner killed) read as failure."""
    stream = _passing_stream().rsplit(b"TOOLSMITH", 1)[0]
    report = judge(stream, NONCE, expected=1)
    assert not report.passed
    assert report.error is not None and "without a report" in report.error


def test_judge_fails_when_a_collected_test_never_reported() -> None:
    """Every collected test must have an outcome, or the report fails."""
    stream = (
        _rec("collected", {"nodeids": ["t.py::a", "t.py::b"]})
        + _rec("test", {"nodeid": "t.py::a", "outcome": "passed"})
        + _rec("done", {"exit_code": 0, "collected": 2})
    )
    report = judge(stream, NONCE, expected=2)
    assert not report.passed
    assert report.error is not None and "never reported" in report.error


def test_judge_fails_when_fewer_tests_than_expected_were_collected() -> None:
    """Collecting fewer tests than the job was built with is a failure."""
    report = judge(_passing_stream(), NONCE, expected=3)
    assert not report.passed and report.collected == 1


def test_job_rejects_a_test_file_name_with_a_path() -> None:
    """Test file names are plain module names, never paths."""
    with pytest.raises(UsageError, match="plain module file name"):
        SandboxJob(tool_name="t", code="", test_files={"../x.py": ""}, expected_tests=1)


def test_unreachable_engine_is_engine_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    """A dead DOCKER_HOST surfaces as EngineUnavailableError naming the fix."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(EngineUnavailableError, match=r"unreachable|engine error") as info:
        connect()
    assert info.value.hint == "start Docker / set DOCKER_HOST"


@pytest.mark.docker
def test_ensure_image_is_a_no_op_when_inputs_are_unchanged(sandbox_image: Any) -> None:
    """Same inputs, same tag and image id, nothing built."""
    again = ensure_image()
    assert again.built is False
    assert (again.tag, again.image_id) == (sandbox_image.tag, sandbox_image.image_id)
    assert again.tag.startswith("toolsmith-sandbox:")


@pytest.mark.docker
def test_an_ordinary_job_passes_with_full_counts(sandbox: Sandbox) -> None:
    """Examples, raised errors and a hypothesis property all pass and are counted."""
    job = SandboxJob(
        tool_name="add", code=ADD, test_files={"test_add.py": ADD_TESTS}, expected_tests=3
    )
    report = sandbox.run(job)
    assert report.passed, report.failure_text()
    assert report.collected == 3 and report.count(Outcome.PASSED) == 3
    assert report.runtime == "runc" or report.runtime == "runsc"
    assert report.image_digest.startswith("sha256:")


@pytest.mark.docker
def test_a_failing_property_reports_its_falsifying_example(sandbox: Sandbox) -> None:
    """A wrong implementation fails, with hypothesis's falsifying example in the report."""
    job = SandboxJob(
        tool_name="add",
        code="def add(a, b):\n    return a + b + (a > 10)\n",
        test_files={"test_add.py": ADD_TESTS},
        expected_tests=3,
    )
    report = sandbox.run(job)
    assert not report.passed
    prop = next(t for t in report.tests if t.nodeid.endswith("test_property"))
    assert prop.outcome == Outcome.FAILED
    assert prop.falsifying_example and "a=11" in prop.falsifying_example


@pytest.mark.docker
def test_collecting_fewer_tests_than_expected_fails(sandbox: Sandbox) -> None:
    """A job that expects more tests than its files hold does not pass."""
    job = SandboxJob(
        tool_name="add", code=ADD, test_files={"test_add.py": ADD_TESTS}, expected_tests=4
    )
    report = sandbox.run(job)
    assert not report.passed and report.collected == 3


POOL_SCRIPT = """
import sys, time
from toolsmith.sandbox import Sandbox, SandboxJob
sb = Sandbox(pool_size=2)
job = SandboxJob(tool_name="f", code="def f():\\n    return 1\\n",
                 test_files={"test_f.py": "from toolsmith_harness import call\\n"
                             "def test_f():\\n    assert call() == 1\\n"},
                 expected_tests=1)
assert sb.run(job).passed
sb.backend.pool_for(job).wait_ready(60)
print("ready", flush=True)
time.sleep(600)
"""


def _containers_of(pid: int) -> list[dict[str, Any]]:
    api = docker.from_env().api
    found = api.containers(all=True, filters={"label": "toolsmith.sandbox=1"})
    return [c for c in found if f":{pid}:" in c["Labels"].get(OWNER_LABEL, "")]


@pytest.mark.docker
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_no_containers_leak_after_the_owner_is_interrupted(sandbox_image: Any, sig: int) -> None:
    """A process holding a warm pool leaves no container behind when interrupted."""
    with subprocess.Popen(
        [sys.executable, "-c", POOL_SCRIPT],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        assert len(_containers_of(proc.pid)) >= 2
        proc.send_signal(sig)
        proc.wait(timeout=60)
    deadline = time.monotonic() + 10
    while _containers_of(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _containers_of(proc.pid) == []


@pytest.mark.docker
def test_cli_status_reports_engine_image_and_runtime(sandbox_image: Any) -> None:
    """`toolsmith sandbox status --json` names the built image and the runtime."""
    from typer.testing import CliRunner

    from toolsmith.cli import app

    result = CliRunner().invoke(app, ["sandbox", "status", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["engine"] is True
    assert data["image"]["tag"] == sandbox_image.tag
    assert data["runtime"] in ("runc", "runsc")


@pytest.mark.docker
def test_cli_check_passes_every_confinement_probe(sandbox_image: Any) -> None:
    """`toolsmith sandbox check` runs the probes in the sandbox and all of them hold here."""
    from typer.testing import CliRunner

    from toolsmith.cli import app

    result = CliRunner().invoke(app, ["sandbox", "check", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    probes = data["probes"]
    assert len(probes) >= 30
    assert [p["name"] for p in probes if not p["ok"]] == []
    names = {p["name"] for p in probes}
    assert {"barrier_subprocess", "runtime_barrier_subprocess", "runtime_barrier_always"} <= names
    assert {b["name"] for b in data["barriers"]} == {
        "subprocess", "network", "fs:write", "fs:read", "env", "always"
    }  # fmt: skip


def test_the_ready_deadline_stretches_with_the_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """A start on a saturated machine waits in proportion (load 15 on 2 cores: 7.5x), up to 10x;
    an idle machine keeps the plain timeout."""
    from toolsmith.sandbox import containers

    for load, factor in [(0.5, 1.0), (15.0, 7.5), (400.0, containers.MAX_LOAD_FACTOR)]:
        monkeypatch.setattr(containers, "busy", lambda load=load: (load, 2))
        assert containers.ready_allowance(60.0) == 60.0 * factor


@pytest.mark.docker
def test_a_runner_not_ready_in_time_names_the_load_and_the_fix(
    sandbox_image: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past its (stretched) deadline a start fails with a SandboxError giving the load and a fix
    line, and leaves no container behind."""
    from toolsmith.errors import SandboxError
    from toolsmith.sandbox import Limits, containers

    monkeypatch.setattr(containers, "busy", lambda: (0.0, 2))
    container = containers.RunnerContainer(connect(), sandbox_image, Limits(), pool_id="t")
    with pytest.raises(SandboxError, match=r"load average 0\.0 on 2 cores") as e:
        container.start(ready_timeout_s=0.001)
    assert "less busy" in (e.value.hint or "")
    assert container.id == ""
