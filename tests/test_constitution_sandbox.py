"""Constitution state rules in the real sandbox: leftover files, processes and big results."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from toolsmith.constitution import Constitution, constitution_tests, state_violations
from toolsmith.report import Outcome, TestReport
from toolsmith.sandbox import Sandbox
from toolsmith.sandbox.job import SandboxJob
from toolsmith.spec import ToolSpec

pytestmark = pytest.mark.docker

CONSTITUTION = Constitution.from_toml(
    """
[[rule]]
id = "small-results"
reason = "results stay small"
kind = "result-bytes"
limit = 1000

[[rule]]
id = "no-leftover-files"
reason = "leave the sandbox as you found it"
kind = "leftover-files"

[[rule]]
id = "no-leftover-processes"
reason = "nothing outlives its call"
kind = "leftover-processes"
"""
)
SPEC = ToolSpec.parse(
    {
        "name": "tool",
        "description": "Repeats x n times.",
        "parameters": {
            "type": "object",
            "properties": {"n": {"type": "integer", "minimum": 0, "maximum": 3}},
            "required": ["n"],
        },
        "returns": {"type": "string"},
        "examples": [{"args": {"n": 0}, "returns": ""}],
    }
)
CLEAN = """
import os
import tempfile

def tool(n):
    fd, path = tempfile.mkstemp()
    os.close(fd)
    os.unlink(path)
    return "x" * n
"""
# Each misdeed only for n >= 2, so the example (n=0) passes and hypothesis has to find it.
LEAKY = """
import subprocess
import tempfile

def tool(n):
    if n >= 2:
        tempfile.mkstemp(prefix="leak-", dir="/work")
        subprocess.Popen(["sleep", "30"], start_new_session=True)
    return "x" * (n * 600)
"""


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        yield sb


# What the leaky tools need to leave things behind; undeclared, the run-time barriers stop them
# before any state rule could (tests/test_barriers.py).
LEAVES = ["subprocess", "fs:write:/work"]


def run(sandbox: Sandbox, code: str, capabilities: list[str] | None = None) -> TestReport:
    suite = constitution_tests(CONSTITUTION, SPEC, max_examples=10)
    assert suite is not None
    job = SandboxJob(
        tool_name="tool",
        code=code,
        test_files=suite.files,
        expected_tests=suite.expected,
        capabilities=capabilities or [],
    )
    return sandbox.run(job)


def test_tidy_tool_passes_every_state_rule(sandbox: Sandbox) -> None:
    """A tool that cleans up its temp file and returns little passes all three state tests."""
    report = run(sandbox, CLEAN)
    assert [t.outcome for t in report.tests] == [Outcome.PASSED] * 3, report
    assert state_violations(CONSTITUTION, report) == []


def test_leaky_tool_breaks_each_state_rule_by_id(sandbox: Sandbox) -> None:
    """Leftover files (in /work too), a detached process and a big result are found by rule id."""
    report = run(sandbox, LEAKY, LEAVES)
    violations = {v.rule: v.failure for v in state_violations(CONSTITUTION, report)}
    assert sorted(violations) == ["no-leftover-files", "no-leftover-processes", "small-results"]
    assert "[constitution no-leftover-files]" in violations["no-leftover-files"]
    assert "/work/leak-" in violations["no-leftover-files"]
    assert "sleep 30" in violations["no-leftover-processes"]
    assert "the limit is 1000" in violations["small-results"]


# Leftovers hidden where the checks used to look away: directories named like the ones pytest
# and hypothesis make, and an orphan (re-parented to the runner) that names itself the worker.
HIDING = """
import os
import sys

def tool(n):
    if n >= 2:
        for place in ("/tmp/__pycache__", "/work/.hypothesis", "/tmp/a/__pycache__"):
            os.makedirs(place, exist_ok=True)
            with open(place + "/left-" + os.urandom(4).hex(), "w") as f:
                f.write("left behind")
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(30)",
                                          "toolsmith_runner/worker.py"])
            os._exit(0)
        os.wait()
    return "x" * n
"""


def test_leftovers_cannot_hide_behind_familiar_names(sandbox: Sandbox) -> None:
    """Files under any __pycache__ or .hypothesis directory, and an orphan whose command line
    names the worker, are still leftovers."""
    report = run(sandbox, HIDING, LEAVES)
    violations = {v.rule: v.failure for v in state_violations(CONSTITUTION, report)}
    assert sorted(violations) == ["no-leftover-files", "no-leftover-processes"], report
    assert "__pycache__/left-" in violations["no-leftover-files"]
    assert "toolsmith_runner/worker.py" in violations["no-leftover-processes"]


# Leaves a file and a detached process on its first call only, which the job's first test makes
# (the result-size check): a baseline taken per call would adopt both as the state before.
FIRST_CALL_ONLY = """
import subprocess
import tempfile

LEFT = []

def tool(n):
    if not LEFT:
        LEFT.append(tempfile.mkstemp(prefix="first-", dir="/work")[1])
        subprocess.Popen(["sleep", "30"], start_new_session=True)
    return "x" * n
"""


def test_what_the_first_call_leaves_is_measured_against_the_job_start(sandbox: Sandbox) -> None:
    """The state rules compare with the state before the job's first call, not each call's."""
    report = run(sandbox, FIRST_CALL_ONLY, LEAVES)
    violations = {v.rule: v.failure for v in state_violations(CONSTITUTION, report)}
    assert sorted(violations) == ["no-leftover-files", "no-leftover-processes"], report
    assert "/work/first-" in violations["no-leftover-files"]
    assert "sleep 30" in violations["no-leftover-processes"]
