"""The stand-ins toolsmith ships for its users' unit tests (``toolsmith.testing``).

``LocalBackend`` runs the generated tests with pytest in a subprocess: no Docker, and no barrier.
``MemoryStorage`` keeps a registry in memory (its contract is tests/test_registry_storage.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.specs import ADD_INTS
from toolsmith.constitution import Constitution, default_constitution
from toolsmith.pipeline import AttemptVerdict, BuildOptions, BuildStatus, Toolsmith
from toolsmith.registry import Registry
from toolsmith.sandbox import Limits, Sandbox, SandboxJob
from toolsmith.spec import ToolSpec
from toolsmith.testgen import generate_tests
from toolsmith.testing import LocalBackend, MemoryStorage

SPEC = ToolSpec.parse(
    {
        **ADD_INTS,
        "properties": [
            {"name": "commutes", "source": "def check(args, result):\n    return True\n"}
        ],
    }
)
GOOD = "def add_ints(a, b):\n    return a + b\n"
BAD = "def add_ints(a, b):\n    return a - b\n"


def job(code: str, **extra: object) -> SandboxJob:
    suite = generate_tests(SPEC, max_examples=10)
    return SandboxJob(
        tool_name="add_ints",
        code=code,
        test_files=suite.files,
        expected_tests=suite.expected,
        **extra,  # type: ignore[arg-type]
    )


def test_good_code_passes_and_bad_code_fails_with_the_failing_test() -> None:
    """The generated tests run for real: the right sum passes every test, a wrong one fails the
    example test with its message."""
    backend = LocalBackend()
    with Sandbox(backend) as sandbox:
        good = sandbox.run(job(GOOD))
        bad = sandbox.run(job(BAD))
    assert good.passed, good.failure_text()
    assert good.collected == good.expected and good.runtime == "local"
    assert not bad.passed
    failed = [t for t in bad.tests if t.outcome != "passed"]
    assert any("test_example_0" in t.nodeid for t in failed)
    assert len(backend.jobs) == 2


def test_variants_are_run_and_stopped_at_their_first_failure() -> None:
    """A mutant that breaks the sum is killed; an equivalent rewrite survives every test."""
    report = Sandbox(LocalBackend()).run(
        job(GOOD, variants={"minus": BAD, "same": "def add_ints(a, b):\n    return b + a\n"})
    )
    assert report.variants is not None
    by_id = {v.id: v for v in report.variants}
    assert by_id["minus"].failed is not None
    assert by_id["same"].passed(report.expected)


def test_a_job_over_its_timeout_is_a_failed_report() -> None:
    """The only limit kept is the wall clock: a tool that hangs ends the job as an error."""
    hang = "import time\n\ndef add_ints(a, b):\n    time.sleep(60)\n    return a + b\n"
    report = Sandbox(LocalBackend()).run(job(hang, limits=Limits(timeout_s=3)))
    assert not report.passed
    assert report.error is not None and "timeout" in report.error


def test_a_whole_build_runs_without_docker_or_a_registry_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Toolsmith proves and publishes hand-written code through the stand-ins (sandbox and
    registry storage), refuses wrong code with the same verdicts as the real sandbox, and the
    published tool loads and runs from memory; nothing is written but the user's own state."""
    monkeypatch.setenv("TOOLSMITH_HOME", str(tmp_path / "home"))
    storage = MemoryStorage()
    registry = Registry(storage=storage)
    options = BuildOptions(max_examples=10, mutants=0, lessons=False)
    # The constitution's state checks measure the sandbox container (files, processes): on a
    # shared host they see everyone's, so a build through the stand-in leaves them out.
    base = default_constitution()
    static = Constitution(sources=base.sources, rules=base.static_rules)
    with Toolsmith(registry, None, Sandbox(LocalBackend()), constitution=static) as ts:
        wrong = ts.build_from_spec(SPEC, BAD, options)
        right = ts.build_from_spec(SPEC, GOOD, options)
    assert wrong.attempts[-1].verdict == AttemptVerdict.FAILED
    assert right.status == BuildStatus.PUBLISHED
    assert [f"{t.name}@{t.version}" for t in registry.list()] == ["add_ints@0.1.0"]
    with registry.load("add_ints", runtime="restricted") as tool:
        assert tool(a=2, b=3) == 5
    assert [e.event for e in registry.audit.entries()] == ["build", "init", "publish", "build"]
    assert "metadata/timestamp.json" in storage.snapshot()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]
