"""Run-time barriers: what a tool did not declare, the kernel denies, whatever the analysis saw.

Each route in ``tests/hostile/bypass.py`` reaches a capability in a way the static analysis is not
relied on to catch; it runs in the sandbox (one job, one test per route) and in the docker runtime
(one loaded tool, one call per route), and must fail naming the capability. The same kinds of
tool declaring what they use keep working. Four containers in all, plus one per fail-closed case.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.hostile.bypass import (
    DECLARED,
    DECLARED_CAPABILITIES,
    DECLARED_RESULTS,
    ROUTES,
    SECRET,
    SECRET_NAME,
    TOOL,
)
from toolsmith.errors import CapabilityDeniedError, ConfinementError
from toolsmith.report import Outcome, TestReport
from toolsmith.runtimes.docker import DockerTool, load_docker
from toolsmith.sandbox import BARRIERS, Sandbox, SandboxJob, plan
from toolsmith.sandbox.barriers import (
    AF_INET,
    AF_UNIX,
    ALWAYS_ERRNO,
    NETWORK_ERRNO,
    SUBPROCESS_ERRNO,
)
from toolsmith.sandbox.grants import Grants
from toolsmith.spec import ToolSpec

ROUTE_IDS = sorted(ROUTES)


def _spec(name: str, parameter: str, capabilities: list[str] | None = None) -> ToolSpec:
    return ToolSpec.parse(
        {
            "name": name,
            "description": "Reaches a capability on request, to test the run-time barriers.",
            "parameters": {
                "type": "object",
                "properties": {parameter: {"type": "string"}},
                "required": [parameter],
            },
            "returns": {},
            "capabilities": capabilities or [],
        }
    )


def _denial(capability: str) -> str:
    if capability == "":
        return "PermissionError: a system call the sandbox never allows"
    return f"PermissionError: capability `{capability}` not declared"


# --- the table and the plan (pure) ---


def test_an_undeclared_capability_is_denied_by_its_own_errno() -> None:
    """With nothing declared: process creation, sockets but AF_UNIX, and the always-list denied,
    each with the errno that names it; only /tmp and /dev/null writable; no program runs."""
    p = plan(Grants())
    by_call: dict[str, set[int]] = {}
    for rule in p.rules:
        by_call.setdefault(rule.syscall, set()).add(rule.errno)
    for call in ("fork", "vfork", "execve", "execveat", "clone"):
        assert by_call[call] == {SUBPROCESS_ERRNO}, call
    for call in ("ptrace", "mount", "unshare", "setns", "keyctl", "bpf", "clock_settime"):
        assert by_call[call] == {ALWAYS_ERRNO}, call
    families = {r.value for r in p.rules if r.syscall == "socket"}
    assert AF_INET in families and AF_UNIX not in families
    assert {r.errno for r in p.rules if r.syscall == "socket"} == {NETWORK_ERRNO}
    assert p.write == ["/dev/null", "/tmp"]
    assert "/work" not in p.read and not p.execute
    assert p.capabilities[SUBPROCESS_ERRNO] == "subprocess"


def test_declared_capabilities_lift_exactly_their_barrier() -> None:
    """subprocess lifts the process rules (and allows exec); network lifts inet sockets only;
    fs and env grants extend the Landlock trees and the kept variables."""
    p = plan(
        Grants.from_capabilities(
            ["subprocess", "network:api.example.com", "fs:write:/work/out", "env:MY_TOKEN"]
        )
    )
    calls = {r.syscall for r in p.rules}
    assert not calls & {"fork", "vfork", "execve", "clone", "clone3"}
    assert "ptrace" in calls
    denied_families = {r.value for r in p.rules if r.syscall == "socket"}
    assert AF_INET not in denied_families and 17 in denied_families  # AF_PACKET stays denied
    assert "/work/out" in p.write and p.execute
    assert "MY_TOKEN" in p.env and "HTTPS_PROXY" in p.env


def test_the_table_names_every_barrier_and_how_to_lift_it() -> None:
    """One row per capability kind plus the always-denied calls, each with its mechanism."""
    rows = {b.name: b for b in BARRIERS}
    assert set(rows) == {"subprocess", "network", "fs:write", "fs:read", "env", "always"}
    assert rows["subprocess"].errno == SUBPROCESS_ERRNO and rows["always"].capability == ""
    assert rows["fs:read"].mechanism == "Landlock"


def test_capability_denied_error_names_the_capability_and_the_fix() -> None:
    """The typed error says what was missing and where to declare it."""
    e = CapabilityDeniedError("tool", "fs:write:/work/x")
    assert e.capability == "fs:write:/work/x"
    assert "capability `fs:write:/work/x` not declared" in str(e)
    assert "declare `fs:write:/work/x`" in (e.hint or "")
    assert "never allows" in str(CapabilityDeniedError("tool", ""))


# --- the sandbox: one job for every route, one for what is declared ---


@pytest.fixture(scope="module")
def barrier_sandbox(sandbox_image: Any) -> Iterator[Sandbox]:
    with Sandbox(pool_size=0, image=sandbox_image) as sb:
        yield sb


@pytest.fixture(scope="module")
def routes_report(barrier_sandbox: Sandbox) -> TestReport:
    test = (
        "import pytest\nfrom toolsmith_harness import call\n\n"
        f"@pytest.mark.parametrize('route', {ROUTE_IDS!r})\n"
        "def test_route(route):\n"
        "    call(route=route)\n\n"
        "def test_leaks():\n"
        "    seen = call(route='leaks')\n"
        "    assert seen['getenv'] == [False, False, False], seen\n"
        "    assert set(seen['environ']) <= {'PATH', 'HOME', 'LANG', 'TMPDIR'}, seen\n"
    )
    job = SandboxJob(
        tool_name="bypass",
        code=TOOL,
        test_files={"test_bypass.py": test},
        expected_tests=len(ROUTES) + 1,
    )
    return barrier_sandbox.run(job)


@pytest.mark.docker
@pytest.mark.parametrize("route", ROUTE_IDS)
def test_sandbox_denies_the_route(routes_report: TestReport, route: str) -> None:
    """In a sandbox job the route fails at call time with the capability it lacked."""
    case = {t.nodeid: t for t in routes_report.tests}[f"test_bypass.py::test_route[{route}]"]
    assert case.outcome == Outcome.FAILED, case
    assert _denial(ROUTES[route]) in (case.failure or ""), case.failure


@pytest.mark.docker
def test_sandbox_tool_sees_no_runner_variable(routes_report: TestReport) -> None:
    """Neither os.environ nor the C library's environment holds the runner's own variables."""
    case = {t.nodeid: t for t in routes_report.tests}["test_bypass.py::test_leaks"]
    assert case.outcome == Outcome.PASSED, case.failure


@pytest.mark.docker
def test_sandbox_declared_capabilities_keep_working(
    barrier_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tool declaring subprocess, fs:write and env runs a program, writes and reads them."""
    monkeypatch.setenv(SECRET_NAME, SECRET)
    test = (
        "import pytest\nfrom toolsmith_harness import call\n\n"
        f"RESULTS = {DECLARED_RESULTS!r}\n\n"
        "@pytest.mark.parametrize('use', sorted(RESULTS))\n"
        "def test_use(use):\n"
        "    assert call(use=use) == RESULTS[use]\n"
    )
    job = SandboxJob(
        tool_name="declared",
        code=DECLARED,
        test_files={"test_declared.py": test},
        expected_tests=len(DECLARED_RESULTS),
        capabilities=DECLARED_CAPABILITIES,
    )
    report = barrier_sandbox.run(job)
    assert report.passed, report.failure_text()


# --- the docker runtime: one tool for every route, one for what is declared ---


@pytest.fixture(scope="module")
def bypass_tool(sandbox_image: Any) -> Iterator[DockerTool]:
    tool = load_docker(_spec("bypass", "route"), TOOL, image=sandbox_image)
    yield tool
    tool.close()


@pytest.mark.docker
@pytest.mark.parametrize("route", ROUTE_IDS)
def test_runtime_denies_the_route(bypass_tool: DockerTool, route: str) -> None:
    """Called in the docker runtime, the route raises CapabilityDeniedError naming it."""
    with pytest.raises(CapabilityDeniedError) as caught:
        bypass_tool(route=route)
    assert caught.value.capability == ROUTES[route]


@pytest.mark.docker
def test_runtime_tool_sees_no_runner_variable(bypass_tool: DockerTool) -> None:
    """The call's process holds only the fixed variables, in os.environ and in C's environ."""
    seen = bypass_tool(route="leaks")
    assert seen["getenv"] == [False, False, False]
    assert set(seen["environ"]) <= {"PATH", "HOME", "LANG", "TMPDIR"}


@pytest.mark.docker
def test_runtime_declared_capabilities_keep_working(
    sandbox_image: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In the docker runtime too: a program runs, declared paths are written, the variable read;
    and a declared write survives only its own call (the clean-up still runs)."""
    monkeypatch.setenv(SECRET_NAME, SECRET)
    tool = load_docker(
        _spec("declared", "use", DECLARED_CAPABILITIES), DECLARED, image=sandbox_image
    )
    try:
        assert {use: tool(use=use) for use in DECLARED_RESULTS} == DECLARED_RESULTS
        assert tool(use="list_work") == []  # emptied after the call that wrote it, still there
        assert tool(use="write_work") == "kept"
    finally:
        tool.close()


# --- fail closed ---


@pytest.mark.docker
def test_a_job_without_a_barrier_plan_never_runs_tool_code(sandbox_image: Any) -> None:
    """The runner refuses to load a tool whose barriers it cannot install (here: no plan)."""
    from toolsmith.sandbox._protocol import judge, marker
    from toolsmith.sandbox.containers import RunnerContainer, new_nonce
    from toolsmith.sandbox.engine import shared_engine
    from toolsmith.sandbox.job import Limits

    container = RunnerContainer(shared_engine(), sandbox_image, Limits()).start()
    nonce = new_nonce()
    payload = {
        "nonce": nonce,
        "tool_name": "t",
        "code": "import os\nopen('/tmp/ran', 'w')\ndef t():\n    return 1\n",
        "test_files": {"test_t.py": "from toolsmith_harness import call\n\ndef test_t():\n"
                       "    assert call() == 1\n"},
        "expected_tests": 1,
        "call_timeout_s": 10,
        "output_bytes": 1 << 20,
    }  # fmt: skip
    try:
        out = container.run(json.dumps(payload).encode(), marker(nonce, "done"), 60)
    finally:
        container.discard()
    report = judge(out.stdout, nonce, expected=1)
    assert not report.passed
    assert "run-time barriers could not be installed" in report.failure_text(), report


@pytest.mark.docker
def test_a_runtime_tool_without_a_barrier_plan_never_loads(
    bypass_tool: DockerTool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The docker runtime's zygote refuses too; the caller gets a ConfinementError."""
    import toolsmith.runtimes.docker as runtime

    monkeypatch.setattr(runtime, "plan", lambda grants: _NoPlan())
    with pytest.raises(ConfinementError, match="barriers could not be installed"):
        load_docker(_spec("bypass", "route"), TOOL, image=bypass_tool.image)


class _NoPlan:
    def model_dump(self, mode: str = "json") -> None:
        return None


@pytest.mark.docker
def test_a_kernel_without_landlock_fails_closed(
    sandbox_image: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where Landlock is missing (here hidden by the container's seccomp profile: ENOSYS, as an
    older kernel answers), the runner refuses to run tool code and says why."""
    import toolsmith.sandbox.containers as containers
    from toolsmith.sandbox.engine import shared_engine
    from toolsmith.sandbox.job import Limits
    from toolsmith.sandbox.sandbox import DockerBackend

    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {
                "names": ["landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": 38,
            }
        ],
    }
    hardened = containers.host_config

    def without_landlock(*args: Any, **kwargs: Any) -> dict[str, Any]:
        config = hardened(*args, **kwargs)
        config["SecurityOpt"] = [*config["SecurityOpt"], "seccomp=" + json.dumps(profile)]
        return config

    monkeypatch.setattr(containers, "host_config", without_landlock)
    backend = DockerBackend(pool_size=0, image=sandbox_image, engine=shared_engine())
    try:
        report = backend.run(
            SandboxJob(
                tool_name="t",
                code="def t():\n    return 1\n",
                test_files={"test_t.py": "from toolsmith_harness import call\n\ndef test_t():\n"
                            "    assert call() == 1\n"},
                expected_tests=1,
                limits=Limits(timeout_s=60),
            )
        )  # fmt: skip
    finally:
        backend.close()
    assert not report.passed
    assert "the kernel offers no Landlock" in report.failure_text(), report.failure_text()


# --- a spec's property code runs confined too (tests/hostile/properties.py) ---


def _add_spec(source: str) -> ToolSpec:
    return ToolSpec.parse(
        {
            "name": "add",
            "description": "Add two integers.",
            "parameters": {
                "type": "object",
                "properties": {
                    "a": {"type": "integer", "minimum": -9, "maximum": 9},
                    "b": {"type": "integer", "minimum": -9, "maximum": 9},
                },
                "required": ["a", "b"],
            },
            "returns": {"type": "integer"},
            "examples": [{"args": {"a": 1, "b": 2}, "returns": 3}],
            "properties": [{"name": "attack", "source": source}],
        }
    )


def _property_job(source: str, code: str) -> SandboxJob:
    """The generated suite, static checks skipped (generic=False): only the kernel stands."""
    from toolsmith.testgen import generate_tests

    suite = generate_tests(_add_spec(source), max_examples=5, generic=False)
    return SandboxJob(
        tool_name="add", code=code, test_files=suite.files, expected_tests=suite.expected
    )


@pytest.mark.docker
def test_property_code_cannot_rewrite_the_report(sandbox: Sandbox) -> None:
    """A property patching the runner's Recorder to say "passed" finds no Recorder: it runs in a
    checker process that never held one, so a tool returning 42 for 1+2 fails its example."""
    from tests.hostile.properties import ADD_WRONG, FORGE

    report = sandbox.run(_property_job(FORGE, ADD_WRONG))
    assert not report.passed, report.failure_text()
    outcomes = {t.nodeid.split("::")[-1]: t.outcome for t in report.tests}
    assert outcomes["test_example_0"] == Outcome.FAILED, outcomes
    assert outcomes["test_generated_inputs"] == Outcome.FAILED, outcomes
    assert "property attack fails" in report.failure_text()


@pytest.mark.docker
def test_property_code_is_denied_what_no_tool_declared(sandbox: Sandbox) -> None:
    """Property code no static analysis follows still cannot fork, open an internet socket,
    write anywhere (not even /tmp) or read the job's directory: the kernel denies each."""
    from tests.hostile.properties import ESCAPE

    report = sandbox.run(_property_job(ESCAPE, "def add(a, b):\n    return a + b\n"))
    assert report.passed, report.failure_text()
