"""The hostile corpus: every attack is contained, the host is unaffected, the verdict is clear."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.hostile.corpus import CORPUS, ENV_CANARY, ENV_CANARY_NAME, FILE_CANARY, Hostile
from toolsmith.report import Outcome
from toolsmith.sandbox import DockerBackend, Sandbox, SandboxJob
from toolsmith.sandbox.containers import POOL_LABEL

pytestmark = pytest.mark.docker


def _pool_containers(pool_ids: list[str]) -> list[dict[str, Any]]:
    api = docker.from_env().api
    return [
        c
        for pool in pool_ids
        for c in api.containers(all=True, filters={"label": f"{POOL_LABEL}={pool}"})
    ]


@pytest.fixture(scope="module")
def hostile_sandbox(sandbox_image: Any) -> Iterator[Sandbox]:
    with Sandbox(pool_size=1, image=sandbox_image) as sb:
        yield sb


@pytest.fixture(scope="module")
def host_canary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("canary") / "secret.txt"
    path.write_text(FILE_CANARY)
    return path


@pytest.mark.parametrize("item", CORPUS, ids=[h.name for h in CORPUS])
def test_hostile_item_is_contained(
    item: Hostile,
    hostile_sandbox: Sandbox,
    host_canary: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The attack's own test fails, with the expected verdict, and the host is untouched."""
    monkeypatch.setenv(ENV_CANARY_NAME, ENV_CANARY)
    prelude = f"HOST_PATH = {str(host_canary)!r}\nHOST_SECRET = {FILE_CANARY!r}\n"
    job = SandboxJob(
        tool_name="attack",
        code=item.code,
        test_files={"test_hostile.py": prelude + item.test},
        expected_tests=item.tests,
        limits=item.limits,
    )
    report = hostile_sandbox.run(job)
    assert not report.passed, report.failure_text()
    if item.verdict is not None:
        assert item.verdict in report.verdicts, report.failure_text()
    if item.runner_reports:
        assert report.error is None, report.error
        assert report.collected == item.tests
        if item.verdict is None:
            failed = all(t.outcome == Outcome.FAILED for t in report.tests)
            assert failed, report.failure_text()
    if item.mention:
        assert item.mention in report.failure_text(20000), report.failure_text()
    assert host_canary.read_text() == FILE_CANARY
    assert not Path("/usr/lib/pwned").exists()


def test_state_does_not_leak_between_jobs(hostile_sandbox: Sandbox) -> None:
    """Files in /tmp and background processes left by one job are invisible to the next."""
    leave = SandboxJob(
        tool_name="leave",
        code=(
            "import subprocess\n\ndef leave():\n"
            "    open('/tmp/leftover', 'w').write('x')\n"
            "    subprocess.Popen(['sleep', '600'], start_new_session=True)\n    return True\n"
        ),
        test_files={
            "test_leave.py": "from toolsmith_harness import call\n\n"
            "def test_leave():\n    assert call() is True\n"
        },
        expected_tests=1,
        capabilities=["subprocess"],
    )
    look = SandboxJob(
        tool_name="look",
        code=(
            "import os\n\ndef look():\n"
            "    procs = [p for p in os.listdir('/proc') if p.isdigit()]\n"
            "    cmds = [open(f'/proc/{p}/cmdline', 'rb').read() for p in procs]\n"
            "    return {'leftover': os.path.exists('/tmp/leftover'),\n"
            "            'sleepers': sum(c.startswith(b'sleep') for c in cmds)}\n"
        ),
        test_files={
            "test_look.py": "from toolsmith_harness import call\n\n"
            "def test_clean():\n"
            "    assert call() == {'leftover': False, 'sleepers': 0}\n"
        },
        expected_tests=1,
    )
    first = hostile_sandbox.run(leave)
    assert first.passed, first.failure_text()
    second = hostile_sandbox.run(look)
    assert second.passed, second.failure_text()


def test_after_the_corpus_an_ordinary_job_passes_and_nothing_leaks(
    hostile_sandbox: Sandbox,
) -> None:
    """The sandbox still works after the corpus, and closing it leaves no container behind."""
    job = SandboxJob(
        tool_name="double",
        code="def double(x):\n    return 2 * x\n",
        test_files={
            "test_double.py": "from toolsmith_harness import call\n\n"
            "def test_double():\n    assert call(x=21) == 42\n"
        },
        expected_tests=1,
    )
    report = hostile_sandbox.run(job)
    assert report.passed, report.failure_text()
    backend = hostile_sandbox.backend
    assert isinstance(backend, DockerBackend)
    pools = backend.pool_ids
    assert pools and _pool_containers(pools)
    hostile_sandbox.close()
    assert _pool_containers(pools) == []
    assert os.environ.get(ENV_CANARY_NAME) is None


# Planted wherever a lazy import in the runner (PID 1) could look: the working directory and the
# test directory pytest put on sys.path during collection (recreated, since it was deleted then).
# hypothesis's pytest plugin imports libcst after every failing @given test; if the runner ever
# imports this, it forges an all-passed report and leaks the tests' source.
_FORGER = r"""
import gc, linecache, os, sys
from toolsmith_runner.plugin import Recorder
rec = next(o for o in gc.get_objects() if isinstance(o, Recorder))
src = "".join("".join(v[2]) for k, v in linecache.cache.items() if "/job-" in k)
for nodeid in rec.collected:
    rec._emit("test", {"nodeid": nodeid, "outcome": "passed", "duration_s": 0.0,
                       "failure": "FORGED " + src[:200], "falsifying_example": None})
rec._emit("done", {"exit_code": 0, "collected": len(rec.collected), "output_bytes": 0,
                   "output_truncated": False, "oom_kills": 0, "duration_s": 0.0})
os._exit(0)
"""

_PLANTER = (
    f"FORGER = {_FORGER!r}\n"
    + """
import os, sys

def plant(directory):
    os.makedirs(directory, exist_ok=True)
    for name in ("libcst.py", "black.py", "traceback.py", "linecache.py"):
        with open(os.path.join(directory, name), "w") as f:
            f.write(FORGER)

def add(a, b):
    places = ["/work", "/tmp", os.getcwd()] + [p for p in sys.path if p.startswith("/work")]
    places += [os.path.join("/work", d) for d in os.listdir("/work")]
    for place in places:
        try:
            plant(place)
        except OSError:
            pass
    return "definitely wrong"
"""
)

_FORGER_TESTS = """
from hypothesis import given, strategies as st
from toolsmith_harness import call

@given(st.integers(), st.integers())
def test_property(a, b):
    assert call(a=a, b=b) == a + b

def test_example():
    assert call(a=1, b=2) == 3

def test_zero():
    assert call(a=0, b=0) == 0
"""


def test_modules_a_tool_writes_are_never_imported_by_the_runner(
    hostile_sandbox: Sandbox,
) -> None:
    """A wrong tool that plants modules where the runner might import from still fails 3/3."""
    job = SandboxJob(
        tool_name="add",
        code=_PLANTER,
        test_files={"test_add.py": _FORGER_TESTS},
        expected_tests=3,
    )
    report = hostile_sandbox.run(job)
    assert not report.passed
    assert report.error is None, report.error
    assert [t.outcome for t in report.tests] == [Outcome.FAILED] * 3, report.failure_text()
    assert "FORGED" not in report.failure_text(20000)


_GUARD_PROBE = """
import os, sys
from toolsmith_runner.imports import lock
guard = lock()
assert "" not in sys.path and not any(p.startswith("/tmp") for p in sys.path), sys.path
os.makedirs("/tmp/nspkg", exist_ok=True)
open("/tmp/planted.py", "w").write("raise SystemExit('planted module ran')")
open("/tmp/nspkg/inner.py", "w").write("raise SystemExit('planted module ran')")
sys.path.insert(0, "/tmp")
for name in ("planted", "nspkg.inner"):
    try:
        __import__(name)
    except ModuleNotFoundError as e:
        assert "refused" in str(e), e
    else:
        raise SystemExit(name + " was imported")
import email.mime.text  # stdlib still imports
print("GUARDED")
"""


def test_the_import_guard_refuses_modules_from_writable_places(sandbox_image: Any) -> None:
    """In the image, a module or namespace package on a writable path is refused, stdlib is not."""
    out = docker.from_env().containers.run(
        sandbox_image.tag,
        command=["python3", "-P", "-s", "-c", _GUARD_PROBE],
        read_only=True,
        tmpfs={"/tmp": "rw,noexec,nosuid,size=8m,mode=1777"},
        network_disabled=True,
        remove=True,
        stderr=True,
    )
    assert out.strip() == b"GUARDED"


# hypothesis reads its per-codec character tables from its storage directory the first time a
# job draws from that codec; a tool that plants a table there decides what the next tests draw.
_TABLE_PLANTER = """
import gzip, json, os, unicodedata

def echo(s):
    for root in ("/tmp/.hypothesis", "/work/.hypothesis", "/opt/toolsmith/hypothesis"):
        folder = os.path.join(root, "unicode_data", unicodedata.unidata_version)
        try:
            os.makedirs(folder, exist_ok=True)
            with gzip.open(os.path.join(folder, "codec-v2-iso8859-1.json.gz"), "wt") as f:
                json.dump([[[97, 97]], []], f)
        except OSError:
            pass
    return s if set(s) <= {"a"} else "wrong"
"""

_TABLE_TESTS = """
from hypothesis import given, strategies as st
from toolsmith_harness import call

def test_a_first_call():
    assert call(s="a") == "a"

@given(st.text(alphabet=st.characters(codec="latin-1"), min_size=3))
def test_b_latin1(s):
    assert call(s=s) == s
"""


def test_tools_cannot_plant_the_character_tables_tests_draw_from(
    hostile_sandbox: Sandbox,
) -> None:
    """The runner's hypothesis storage is read-only: a planted table changes nothing drawn."""
    job = SandboxJob(
        tool_name="echo",
        code=_TABLE_PLANTER,
        test_files={"test_echo.py": _TABLE_TESTS},
        expected_tests=2,
    )
    report = hostile_sandbox.run(job)
    outcomes = {t.nodeid.rpartition("::")[2]: t.outcome for t in report.tests}
    assert outcomes == {"test_a_first_call": Outcome.PASSED, "test_b_latin1": Outcome.FAILED}
