"""Tools with third-party dependencies: locked on the host from the real package index (PyPI, or
the mirror PIP_INDEX_URL names), installed offline into the sandbox's dependency layer, signed
with the report, rebuilt and verified at load. The wheels are cached once per test session."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from toolsmith.analysis import analyze
from toolsmith.dependencies import (
    Lock,
    LockedPackage,
    cached_wheel,
    fetch,
    resolve,
    sandbox_platforms,
)
from toolsmith.designer import design_messages
from toolsmith.errors import DigestMismatchError, IndexUnavailableError, NoWheelError, PolicyError
from toolsmith.pipeline import AttemptVerdict, BuildOptions, BuildStatus, Toolsmith
from toolsmith.policy import CapabilityPolicy, dependency_guidance, evaluate_policy
from toolsmith.registry import Registry
from toolsmith.report import Outcome, TestCase, TestReport
from toolsmith.runtimes.restricted import restricted_refusal
from toolsmith.sandbox import Sandbox, SandboxJob
from toolsmith.sandbox.engine import shared_engine
from toolsmith.sandbox.layer import layer_tag
from toolsmith.spec import ToolSpec

PLATFORMS = sandbox_platforms(platform.machine())

# One tool, two dependencies: python-dateutil (pure Python, with its own dependencies) and PyYAML
# (a compiled extension: CSafeLoader exists only when its libyaml binding loaded).
SPEC = ToolSpec.parse(
    {
        "name": "yaml_dates",
        "description": "Parse a YAML mapping of names to date strings into ISO 8601 dates.",
        "parameters": {
            "type": "object",
            "properties": {"text": {"type": "string", "maxLength": 200}},
            "required": ["text"],
            "additionalProperties": False,
        },
        "returns": {"type": "object", "additionalProperties": {"type": "string"}},
        "raises": ["ValueError"],
        "examples": [
            {"args": {"text": "start: 5 March 2024"}, "returns": {"start": "2024-03-05"}},
            {
                "args": {"text": "a: 2024-01-02\nb: Jan 3 2020"},
                "returns": {"a": "2024-01-02", "b": "2020-01-03"},
            },
            {"args": {"text": "- 1"}, "raises": "ValueError"},
        ],
        "dependencies": ["python-dateutil>=2.8", "pyyaml>=6"],
    }
)
CODE = """\
import datetime

import yaml
from dateutil import parser


def yaml_dates(text: str) -> dict:
    try:
        loader = yaml.CSafeLoader(text)  # the compiled libyaml binding
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
        if not isinstance(data, dict):
            raise ValueError("expected a mapping")
        out = {}
        for key, value in data.items():
            if isinstance(value, datetime.date):
                out[str(key)] = value.isoformat()
            else:
                out[str(key)] = parser.parse(str(value)).date().isoformat()
        return out
    except (yaml.YAMLError, OverflowError, parser.ParserError) as e:
        raise ValueError(str(e)) from None
"""
CLI = [sys.executable, "-c", "from toolsmith.cli import main; main()"]
FAST = BuildOptions(max_examples=10, max_attempts=1, mutants=0)
# The shipped policy sends every dependency to a person; this installation trusts them all.
TRUSTING = CapabilityPolicy.from_toml('[dependencies]\ndefault = "allow"\n')


@pytest.fixture(scope="session")
def wheel_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One wheel cache for the whole session: each wheel is downloaded once."""
    return tmp_path_factory.mktemp("wheels")


@pytest.fixture(autouse=True)
def _cache(wheel_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLSMITH_CACHE", str(wheel_cache))


@pytest.fixture(scope="session")
def lock(wheel_cache: Path) -> Lock:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TOOLSMITH_CACHE", str(wheel_cache))
        return resolve(SPEC.dependencies, python="3.11", platforms=PLATFORMS)


def test_lock_names_every_distribution_with_its_wheel_and_hash(lock: Lock) -> None:
    """The lock holds the declared packages and what they need, each an exact wheel and sha256."""
    names = lock.names()
    assert {"python-dateutil", "pyyaml"} <= set(names)
    assert len(names) > 2, "python-dateutil's own dependencies are locked too"
    for pkg in lock.packages:
        assert pkg.filename.endswith(".whl") and len(pkg.sha256) == 64
    yaml_wheel = next(p for p in lock.packages if p.name == "pyyaml").filename
    assert "cp311" in yaml_wheel and "manylinux" in yaml_wheel, "resolved for the sandbox"
    assert Lock.model_validate_json(lock.model_dump_json()).digest == lock.digest


def test_source_only_dependency_is_refused_by_name() -> None:
    """docopt publishes only a source distribution: refused, naming it and the fix."""
    with pytest.raises(NoWheelError, match="docopt") as info:
        resolve(["docopt==0.6.2"], python="3.11", platforms=PLATFORMS)
    assert "wheel" in (info.value.hint or "")


def test_unreachable_index_is_a_typed_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """The user's index (PIP_INDEX_URL) is used; when it cannot be reached the error says so."""
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    with pytest.raises(IndexUnavailableError, match="unreachable") as info:
        resolve(["python-dateutil"], python="3.11", platforms=PLATFORMS)
    assert "PIP_INDEX_URL" in (info.value.hint or "")


def test_tampered_cached_wheel_is_refused(lock: Lock) -> None:
    """A cached wheel whose bytes are not the locked ones is never installed."""
    fetch(lock)
    path = cached_wheel(lock.packages[0])
    original = path.read_bytes()
    try:
        path.write_bytes(original + b"\0")
        with pytest.raises(DigestMismatchError, match=lock.packages[0].name):
            fetch(lock)
    finally:
        path.write_bytes(original)


def test_policy_applies_to_transitive_dependencies() -> None:
    """A denied package deep in the lock denies the tool, though the spec never names it."""
    pkg = {"filename": "x-1-py3-none-any.whl", "url": "https://x", "sha256": "0" * 64}
    lock = Lock(
        requirements=["python-dateutil"],
        python="3.11",
        platforms=PLATFORMS,
        packages=[
            LockedPackage(name="python-dateutil", version="2.9.0", **pkg),
            LockedPackage(name="six", version="1.16.0", **pkg),
        ],
    )
    spec = SPEC.model_copy(update={"dependencies": ["python-dateutil"]})
    policy = CapabilityPolicy.from_toml('[dependencies]\ndefault = "allow"\ndeny = ["six"]\n')
    decision = evaluate_policy(spec, analyze(CODE, spec), policy, lock)
    assert decision.decision == "deny"
    assert "six==1.16.0" in decision.text()
    assert evaluate_policy(spec, analyze(CODE, spec), policy).decision == "allow"


def test_restricted_runtime_refuses_tools_with_dependencies() -> None:
    """The restricted runtime is stdlib-only, and says so."""
    refusal = restricted_refusal(SPEC, CODE)
    assert refusal is not None and "third-party" in refusal


# -- in Docker --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, wheel_cache: Path) -> Iterator[Registry]:
    """yaml_dates built through the whole gate (hand-written code, no model) and published."""
    root = tmp_path_factory.mktemp("deps")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TOOLSMITH_HOME", str(root / "home"))
        mp.setenv("TOOLSMITH_CACHE", str(wheel_cache))
        mp.setenv("TOOLSMITH_MUTANTS", "0")
        registry = Registry(root / "registry")
        with Sandbox(pool_size=0) as sandbox:
            ts = Toolsmith(registry, None, sandbox, policy=TRUSTING)
            result = ts.build_from_spec(SPEC, CODE, FAST)
        assert result.status == BuildStatus.PUBLISHED, result.attempts
        yield registry


@pytest.mark.docker
def test_build_publish_load_call_with_dependencies(built: Registry) -> None:
    """A pure-Python and a compiled dependency work in test jobs and in the docker runtime."""
    tool = built.resolve("yaml_dates")
    assert tool.report.lock is not None
    assert {"python-dateutil", "pyyaml"} <= set(tool.report.lock.names())
    with built.load("yaml_dates") as loaded:
        assert loaded(text="when: 5 March 2024") == {"when": "2024-03-05"}


@pytest.mark.docker
def test_registry_show_lists_the_signed_lock(built: Registry) -> None:
    """`registry show --json` lists every locked distribution with its hash."""
    proc = subprocess.run(
        [*CLI, "registry", "show", "yaml_dates", "--json", "--registry", str(built.path)],
        env={**os.environ, "TOOLSMITH_HOME": str(built.path.parent / "home")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lock = json.loads(proc.stdout)["lock"]
    assert {p["name"] for p in lock["packages"]} >= {"python-dateutil", "pyyaml"}


@pytest.mark.docker
def test_tampered_lock_is_refused_at_load(built: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    """A lock edited in the registry breaks the signed report's digest: nothing loads."""
    monkeypatch.setenv("TOOLSMITH_HOME", str(built.path.parent / "home"))
    [report] = (built.path / "targets" / "tools" / "yaml_dates").rglob("*.report")
    lock = built.resolve("yaml_dates").report.lock
    assert lock is not None
    original = report.read_bytes()
    sha = lock.packages[0].sha256
    try:
        report.write_bytes(original.replace(sha.encode(), b"f" * 64))
        with pytest.raises(DigestMismatchError, match="report"):
            Registry(built.path).load("yaml_dates")
    finally:
        report.write_bytes(original)


@pytest.mark.docker
def test_sandbox_with_dependencies_stays_offline(lock: Lock) -> None:
    """The dependency layer adds packages, not a network: the index is unreachable inside."""
    probe = (
        "import socket\n\ndef probe() -> str:\n    try:\n"
        "        socket.create_connection(('pypi.org', 443), timeout=5)\n"
        "        return 'connected'\n    except OSError as e:\n        return type(e).__name__\n"
    )
    test = (
        "import socket\nimport pytest\nfrom toolsmith_harness import call\n\n"
        "def test_offline():\n    assert call() != 'connected'\n"
        "    with pytest.raises(OSError):\n"
        "        socket.create_connection(('pypi.org', 443), timeout=5)\n"
        "    import yaml, dateutil  # the layer is there\n"
    )
    with Sandbox(pool_size=0) as sandbox:
        job_lock = sandbox.lock(SPEC.dependencies)
        report = sandbox.run(
            SandboxJob(
                tool_name="probe",
                code=probe,
                test_files={"test_offline.py": test},
                expected_tests=1,
                lock=job_lock,
            )
        )
    assert report.passed, report.failure_text()
    assert report.lock == job_lock


@pytest.mark.docker
def test_tampered_cached_wheel_is_refused_when_the_layer_is_rebuilt(built: Registry) -> None:
    """On a machine without the layer, a cached wheel that is not the signed one stops the load
    before any container runs tool code."""
    tool = built.resolve("yaml_dates")
    lock = tool.report.lock
    assert lock is not None
    engine = shared_engine()
    sandbox = Sandbox(pool_size=0)
    try:
        tag = layer_tag(sandbox.backend.image, lock)  # type: ignore[attr-defined]
    finally:
        sandbox.close()
    engine.api.remove_image(tag, force=True)
    target = next(p for p in lock.packages if p.name == "pyyaml")
    path = cached_wheel(target)
    original = path.read_bytes()
    try:
        path.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        with pytest.raises(DigestMismatchError, match="pyyaml"):
            built.load("yaml_dates")
        assert not engine.api.images(name=tag, quiet=True)
    finally:
        path.write_bytes(original)


@pytest.mark.docker
def test_restricted_load_of_a_tool_with_dependencies_says_why(built: Registry) -> None:
    """Asking for the restricted runtime names the dependencies as the reason."""
    with pytest.raises(PolicyError, match="third-party"):
        built.load("yaml_dates", runtime="restricted")


@pytest.mark.docker
def test_import_no_declared_dependency_provides_goes_back_to_the_model(
    lock: Lock, tmp_path: Path
) -> None:
    """Code importing a third-party module the lock does not install is told so, by name,
    before any sandbox job (the same words reach the model as feedback)."""
    code = "import markdown\n\n" + CODE
    with Sandbox(pool_size=0) as sandbox:
        ts = Toolsmith(Registry(tmp_path / "registry"), None, sandbox)
        result = ts.build_from_spec(SPEC, code, FAST.model_copy(update={"dry_run": True}))
    attempt = result.attempts[-1]
    assert attempt.verdict == AttemptVerdict.POLICY
    assert "markdown" in attempt.failure and "declared dependencies" in attempt.failure
    assert "yaml" not in attempt.failure.split("declared dependencies")[0]


def test_designer_is_told_which_dependencies_the_policy_allows() -> None:
    """The design prompt names the allowed and denied distributions and the default."""
    policy = CapabilityPolicy.from_toml(
        '[dependencies]\nallow = ["pyyaml"]\ndeny = ["requests"]\ndefault = "needs_approval"\n'
    )
    messages = design_messages("parse YAML", [], None, dependencies=dependency_guidance(policy))
    prompt = messages[-1]["content"]
    assert "Allowed without review: pyyaml" in prompt
    assert "Denied (never declare these): requests" in prompt
    assert "held for approval" in prompt


def test_summary_names_the_one_exception_every_failing_test_reports() -> None:
    """Three tests failing with EOFError from input() read as that one fault, not three."""
    eof = (
        "E   AssertionError: with args {'text': %r} the tool raised EOFError: EOF when reading "
        "a line\nE   assert False"
    )
    tests = [
        TestCase(nodeid=f"test_tool.py::test_{i}", outcome=Outcome.FAILED, failure=eof % t)
        for i, t in enumerate(["ab", "", "x"])
    ]
    report = TestReport(tests=tests, expected=3, collected=3)
    assert report.root_cause() == "EOFError: EOF when reading a line"
    assert report.summary().endswith("every failure is EOFError: EOF when reading a line")
    tests[2] = tests[2].model_copy(update={"failure": "E   AssertionError: assert 1 == 2"})
    assert TestReport(tests=tests, expected=3, collected=3).root_cause() is None


@pytest.mark.docker
def test_build_summary_names_the_root_cause(tmp_path: Path) -> None:
    """A tool that reads stdin fails every test with EOFError; the attempt's summary says so
    rather than listing the constitution rules that failed because of it."""
    echo = ToolSpec.parse(
        {
            "name": "echo_twice",
            "description": "Repeat a string twice.",
            "parameters": {
                "type": "object",
                "properties": {"text": {"type": "string", "maxLength": 20}},
                "required": ["text"],
                "additionalProperties": False,
            },
            "returns": {"type": "string"},
            "examples": [
                {"args": {"text": "ab"}, "returns": "abab"},
                {"args": {"text": ""}, "returns": ""},
            ],
        }
    )
    code = "def echo_twice(text: str) -> str:\n    return input() * 2\n"
    with Sandbox(pool_size=0) as sandbox:
        ts = Toolsmith(Registry(tmp_path / "registry"), None, sandbox)
        result = ts.build_from_spec(echo, code, FAST.model_copy(update={"dry_run": True}))
    summary = result.attempts[-1].summary
    assert "every failure is EOFError: EOF when reading a line" in summary, summary
    assert "constitution" not in summary
