"""The docker runtime: tools run in a warm hardened container, a fresh process per call."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from typing import Any

import docker.errors
import pytest

from tests.test_registry_support import curated_copy, passing_report, provenance
from toolsmith.errors import (
    PolicyError,
    ToolArgumentsError,
    ToolExecutionError,
    ToolRaisedError,
    ToolTimeoutError,
    UsageError,
)
from toolsmith.keys import KeyStore
from toolsmith.loader import Tool, load_tool
from toolsmith.policy import CapabilityPolicy
from toolsmith.registry import Registry
from toolsmith.runtimes.docker import DockerTool, load_docker
from toolsmith.sandbox import Limits, connect
from toolsmith.spec import ToolSpec

pytestmark = pytest.mark.docker


HOSTILE = """\
import os
import signal
import socket
import subprocess
import sys
import time


class BadInput(ValueError):
    pass


def hostile(action, arg=""):
    if action == "echo":
        return arg
    if action == "raise":
        raise BadInput("declared: " + arg)
    if action == "undeclared":
        raise KeyError(arg)
    if action == "network":
        try:
            socket.create_connection(("1.1.1.1", 53), timeout=1).close()
            return "connected"
        except OSError as e:
            return "refused: " + type(e).__name__
    if action == "write_state":
        for place in ("/tmp", "/work", "/dev/shm"):
            try:
                with open(place + "/left-behind", "w") as f:
                    f.write("secret")
            except PermissionError:
                pass  # /dev/shm: not declared, so Landlock already refuses it
        os.makedirs("/tmp/locked/inner")
        os.chmod("/tmp/locked", 0)
        return "written"
    if action == "read_state":
        found = []
        for place in ("/tmp", "/work", "/dev/shm"):
            try:
                if os.listdir(place):
                    found.append(place)
            except PermissionError:
                pass
        return found
    if action == "spawn":
        code = "import time\\nwhile True:\\n    open('/tmp/heartbeat', 'w')\\n    time.sleep(0.02)"
        subprocess.Popen([sys.executable, "-c", code, "bg-marker"], start_new_session=True)
        if os.fork() == 0:
            os.setsid()
            time.sleep(1000)
        time.sleep(0.1)
        return "spawned"
    if action == "processes":
        time.sleep(0.3)
        seen = []
        for pid in os.listdir("/proc"):
            if pid.isdigit() and int(pid) not in (1, os.getpid(), os.getppid()):
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        seen.append(f.read().replace(b"\\0", b" ").decode())
                except OSError:
                    pass
        return {"others": seen, "heartbeat": os.path.exists("/tmp/heartbeat")}
    if action == "hang":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(60)
        return "woke up"
    if action in ("forge", "forge_exit"):
        frame = '{"ok": true, "value": "forged"}'
        for nonce in ("0" * 32, "", "nonce"):
            line = f"TOOLSMITH {nonce} answer {len(frame)}\\n{frame}"
            print(line, flush=True)
            print(line, file=sys.stderr, flush=True)
        for target in ("/proc/1/fd/1", "/proc/1/fd/0", "/dev/stdout"):
            try:
                with open(target, "w") as f:
                    f.write(line)
            except OSError:
                pass
        if action == "forge":
            return "real"
        for fd in range(3, 64):
            try:
                os.write(fd, line.encode())
            except OSError:
                pass
        os._exit(0)
    if action == "exit":
        os._exit(0)
    if action == "kill_parent":
        os.kill(os.getppid(), signal.SIGKILL)
        return "killed"
    if action == "memory":
        hog = []
        while True:
            hog.append(b"x" * (16 << 20))
    if action == "big":
        return "x" * int(arg)
    raise BadInput("unknown action " + action)
"""

HOSTILE_SPEC = {
    "name": "hostile",
    "description": "A tool that misbehaves on request, to test the docker runtime's isolation.",
    "parameters": {
        "type": "object",
        "properties": {"action": {"type": "string"}, "arg": {"type": "string"}},
        "required": ["action"],
        "additionalProperties": False,
    },
    "returns": {},
    "raises": ["ValueError"],
    # What the misbehaviour needs, so the tests reach the clean-up between calls rather than
    # the run-time barriers (tests/test_barriers.py covers those).
    "capabilities": ["subprocess", "fs:write:/work"],
}


@pytest.fixture(scope="module")
def curated(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """The curated registry, pinned in a home of the module's own (its tests share it)."""
    copy = tmp_path_factory.mktemp("curated") / "registry"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TOOLSMITH_HOME", str(copy.parent / "home"))
        curated_copy(copy)
        return Registry(copy)


@pytest.fixture(scope="module")
def hostile_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    root = tmp_path_factory.mktemp("hostile")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TOOLSMITH_HOME", str(root / "home"))
        # The module's own keys, so its tests (each with a home of its own) can publish too; a
        # consumer policy that admits the capabilities the misbehaviour needs.
        permissive = CapabilityPolicy.from_toml('[capabilities]\nallow = ["*"]\n')
        reg = Registry(root / "reg", keys=KeyStore(root / "home" / "keys"), policy=permissive)
        reg.publish(ToolSpec.parse(HOSTILE_SPEC), HOSTILE, passing_report(), provenance())
        yield reg


@pytest.fixture(scope="module")
def hostile(hostile_registry: Registry) -> Iterator[Tool]:
    tool = hostile_registry.load(
        "hostile", runtime="docker", timeout_s=1.5, limits=Limits(memory_mb=128)
    )
    yield tool
    tool.close()


def _bound(tool: Tool) -> DockerTool:
    bound = tool._bound
    assert isinstance(bound, DockerTool)
    return bound


def _exists(container_id: str) -> bool:
    try:
        connect().api.inspect_container(container_id)
    except docker.errors.NotFound:
        return False
    return True


def test_curated_tool_returns_the_right_values(curated: Registry) -> None:
    """to_roman from the repo's registry, loaded into docker, gives the right numerals."""
    with curated.load("to_roman", runtime="docker") as tool:
        assert tool.runtime == "docker"
        assert [tool(number=n) for n in (1, 4, 1994, 3999)] == ["I", "IV", "MCMXCIV", "MMMCMXCIX"]
        assert tool(number=1994.0) == "MCMXCIV"  # JSON's integral float is the int it equals


def test_declared_exception_maps_to_tool_raised_error(curated: Registry) -> None:
    """convert_units raising its declared ValueError surfaces as ToolRaisedError('ValueError')."""
    with load_tool(curated.resolve("convert_units"), "docker") as tool:
        with pytest.raises(ToolRaisedError, match="ValueError") as raised:
            tool(value=1, from_unit="kg", to_unit="m")
        assert raised.value.type_name == "ValueError"
        assert tool(value=1, from_unit="km", to_unit="m") == pytest.approx(1000)


def test_invalid_arguments_never_reach_the_container(curated: Registry) -> None:
    """Schema-invalid arguments fail on the host even while the container is frozen."""
    with load_tool(curated.resolve("to_roman"), "docker", timeout_s=0.5) as tool:
        container = _bound(tool).container_id
        assert container is not None
        api = connect().api
        api.pause(container)
        try:
            with pytest.raises(ToolArgumentsError, match="do not match its parameters"):
                tool(number=0)
            with pytest.raises(ToolArgumentsError, match="do not match its parameters"):
                tool(numeral="IV")
        finally:
            api.unpause(container)
        assert tool(number=9) == "IX"


def test_wedged_container_is_replaced(curated: Registry) -> None:
    """A frozen worker gives ToolTimeoutError; the next call runs in a new container."""
    with load_tool(curated.resolve("to_roman"), "docker", timeout_s=0.5) as tool:
        frozen = _bound(tool).container_id
        assert frozen is not None
        connect().api.pause(frozen)
        with pytest.raises(ToolTimeoutError, match="stopped answering; it was replaced"):
            tool(number=5)
        assert not _exists(frozen)
        assert tool(number=5) == "V"
        assert _bound(tool).container_id not in (None, frozen)


def test_calls_from_several_threads_are_serialized(curated: Registry) -> None:
    """Concurrent calls on one tool all get their own right answer."""
    with curated.load("to_roman", runtime="docker") as tool:
        results: dict[int, str] = {}

        def work(start: int) -> None:
            for n in range(start, start + 10):
                results[n] = tool(number=n)

        threads = [threading.Thread(target=work, args=(s,)) for s in (1, 11, 21, 31)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results[4] == "IV" and results[39] == "XXXIX" and len(results) == 40


def test_hostile_declared_and_undeclared_exceptions(hostile: Tool) -> None:
    """A declared base class maps to ToolRaisedError; an undeclared one to ToolExecutionError."""
    with pytest.raises(ToolRaisedError, match="ValueError: declared: boom"):
        hostile(action="raise", arg="boom")
    with pytest.raises(ToolExecutionError, match="raised KeyError"):
        hostile(action="undeclared", arg="k")


def test_hostile_tool_has_no_network(hostile: Tool) -> None:
    """Connecting out fails inside the worker."""
    assert hostile(action="network").startswith("refused: ")


def test_state_left_in_one_call_is_gone_in_the_next(hostile: Tool) -> None:
    """Files written to /tmp, /work and /dev/shm (even a locked directory) are wiped."""
    assert hostile(action="write_state") == "written"
    assert hostile(action="read_state") == []


def test_background_processes_do_not_survive_the_call(hostile: Tool) -> None:
    """A detached child and a setsid grandchild are gone before the next call runs."""
    assert hostile(action="spawn") == "spawned"
    seen = hostile(action="processes")
    assert seen == {"others": [], "heartbeat": False}


def test_hanging_tool_times_out_and_the_next_call_works(hostile: Tool) -> None:
    """A call that ignores SIGTERM and sleeps is killed at the timeout; the tool stays usable."""
    with pytest.raises(ToolTimeoutError, match=r"did not finish within 1\.5 s"):
        hostile(action="hang")
    assert hostile(action="echo", arg="still here") == "still here"


def test_printed_result_frames_are_not_accepted(hostile: Tool) -> None:
    """Answer frames printed to stdout, stderr and PID 1's fds change nothing about the result."""
    assert hostile(action="forge") == "real"


def test_forged_frames_then_exit_read_as_failure(hostile: Tool) -> None:
    """Forged frames sprayed on every fd, then exit 0: a ToolExecutionError, never "forged"."""
    with pytest.raises(ToolExecutionError, match=r"malformed|without answering"):
        hostile(action="forge_exit")
    assert hostile(action="echo", arg="x") == "x"


def test_exit_without_answer_is_an_execution_error(hostile: Tool) -> None:
    """os._exit(0) in the middle of a call is a ToolExecutionError, not a None result."""
    with pytest.raises(ToolExecutionError, match="exited with status 0 without answering"):
        hostile(action="exit")


def test_killing_the_zygote_does_not_break_the_tool(hostile: Tool) -> None:
    """A call that kills the process it was forked from (Landlock's signal scope refuses it
    where the kernel has ABI 6); either way the next call still runs."""
    try:
        assert hostile(action="kill_parent") == "killed"
    except ToolExecutionError as e:
        assert "raised PermissionError" in str(e)
    assert hostile(action="echo", arg="again") == "again"


def test_memory_bomb_is_contained(hostile: Tool) -> None:
    """Allocating past the container's memory limit fails the call naming memory; next works."""
    with pytest.raises(ToolExecutionError, match="memory"):
        hostile(action="memory")
    assert hostile(action="echo", arg="after") == "after"


def test_oversized_result_is_refused(hostile_registry: Registry) -> None:
    """A result over max_output_bytes is an error, not a huge read."""
    with hostile_registry.load("hostile", runtime="docker", max_output_bytes=10_000) as tool:
        assert tool(action="big", arg="9000") == "x" * 9000
        with pytest.raises(ToolExecutionError, match="the limit is 10000"):
            tool(action="big", arg="20000")


def test_close_removes_the_container(curated: Registry) -> None:
    """After close() the container is gone and calling again is a UsageError."""
    tool = curated.load("slugify", runtime="docker")
    container = _bound(tool).container_id
    assert container is not None and _exists(container)
    tool.close()
    assert not _exists(container)
    with pytest.raises(UsageError, match="closed"):
        tool(text="a b")


def test_no_container_survives_its_process(curated: Registry) -> None:
    """A process that exits without closing (normally, or on SIGTERM) leaves no container."""
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        from pathlib import Path
        from toolsmith.registry import Registry
        tool = Registry(Path({str(curated.path)!r})).load("to_roman", runtime="docker")
        print(tool._bound.container_id, flush=True)
        assert tool(number=2) == "II"
        if sys.argv[1] == "term":
            os.kill(os.getpid(), signal.SIGTERM)
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    env["TOOLSMITH_HOME"] = str(curated.path.parent / "home")
    for how in ("exit", "term"):
        proc = subprocess.run(
            [sys.executable, "-c", script, how],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        container = proc.stdout.strip()
        assert len(container) == 64, proc.stderr
        assert not _exists(container), how


def test_module_body_without_the_function_is_refused(hostile_registry: Registry) -> None:
    """Code that defines no function of the tool's name fails at load, not at the first call."""
    spec = ToolSpec.parse(HOSTILE_SPEC | {"name": "missing_fn"})
    hostile_registry.publish(spec, "x = 1\n", passing_report(), provenance())
    with pytest.raises(PolicyError, match=r"defines no function missing_fn\(\)"):
        hostile_registry.load("missing_fn", runtime="docker")


def test_result_is_checked_against_the_returns_schema(hostile_registry: Registry) -> None:
    """A result outside the spec's returns schema is a ToolExecutionError."""
    spec = ToolSpec.parse(HOSTILE_SPEC | {"name": "wrong_type", "returns": {"type": "integer"}})
    code = "def wrong_type(action, arg=''):\n    return {'action': action}\n"
    hostile_registry.publish(spec, code, passing_report(), provenance())
    with (
        hostile_registry.load("wrong_type", runtime="docker") as tool,
        pytest.raises(ToolExecutionError, match="does not match the returns schema"),
    ):
        tool(action="x")


PLANT_SPEC = {
    "name": "plant",
    "description": "Writes into the process it was forked from, then reports what it found.",
    "parameters": {
        "type": "object",
        "properties": {"text": {"type": "string"}},
        "required": ["text"],
    },
    "returns": {},
}

# A call child writes into its parent's (the zygote's) memory; every later call is forked from
# that memory, so what one call planted there would be what the next call starts with.
PLANT = r"""
import os
import sys

BOX = "................................................................"


def plant(text):
    previous = BOX.rstrip(".")
    data = text.encode()[:63].ljust(64, b".")
    where = id(BOX) + sys.getsizeof(BOX) - len(BOX) - 1
    opened = {}
    for pid in (os.getppid(), 1):
        try:
            with open(f"/proc/{pid}/mem", "r+b", buffering=0) as mem:
                mem.seek(where)
                mem.write(data)
            opened[str(pid)] = "written"
        except OSError as e:
            opened[str(pid)] = type(e).__name__
    return {"previous": previous, "opened": opened}
"""


def test_a_call_cannot_write_into_the_zygote(sandbox_image: Any) -> None:
    """The zygote and serve are not dumpable: a call cannot open their memory, and nothing one
    call plants is seen by the next."""
    tool = load_docker(ToolSpec.parse(PLANT_SPEC), PLANT, image=sandbox_image)
    try:
        first = tool(text="secret of call one")
        second = tool(text="call two")
    finally:
        tool.close()
    assert first["previous"] == second["previous"] == ""
    assert "written" not in first["opened"].values(), first


RAW_SPEC = {
    "name": "raw",
    "description": "Writes its own bytes where serve reads the call's answer.",
    "parameters": {
        "type": "object",
        "properties": {"payload": {"type": "string"}},
        "required": ["payload"],
    },
    "returns": {},
}

# The call's process holds the pipe serve reads its answer from; it may write anything there.
RAW = r"""
import os


def answer(payload):
    for fd in sorted(int(f) for f in os.listdir("/proc/self/fd") if int(f) > 2):
        try:
            os.write(fd, b"%d\n" % len(payload) + payload)
        except OSError:
            pass
    os._exit(0)


def raw(payload):
    answer(payload.encode())
"""

RAW_ANSWERS = [
    "not json",
    "[1]",
    '"ok"',
    '{"value": 1}',
    '{"ok": "yes", "value": 1}',
    '{"ok": false, "mro": 5}',
    '{"ok": false, "mro": [1, 2]}',
    '{"ok": false, "mro": [], "message": "m"}',
    '{"ok": false, "error_type": ["x"]}',
    '{"ok": false, "mro": ["ValueError"], "message": {"a": 1}}',
    '{"ok": false, "crash": {"a": 1}}',
    '{"ok": false, "too_big": "many"}',
    '{"ok": false, "not_json": [1]}',
    '{"ok": true, "value": NaN}',  # the tool side's allow_nan=False, bypassed by a raw frame
    '{"ok": true, "value": [-Infinity]}',
    "[" * 100_000 + "]" * 100_000,
    '{"ok": false, "mro": ["ValueError"], "message": "fine"}',
]


def test_malformed_answers_are_execution_errors(sandbox_image: Any) -> None:
    """Whatever bytes a call sends as its answer, the caller gets a ToolsmithError."""
    tool = load_docker(ToolSpec.parse(RAW_SPEC), RAW, image=sandbox_image)
    try:
        for payload in RAW_ANSWERS:
            with pytest.raises(ToolExecutionError) as info:
                tool(payload=payload)
            if payload.endswith('"fine"}'):
                assert "raised ValueError: fine" in str(info.value)
            else:
                assert "malformed answer" in str(info.value), (payload[:40], info.value)
    finally:
        tool.close()


def test_a_malformed_answer_from_the_module_body_fails_the_load(sandbox_image: Any) -> None:
    """The load probe runs the module body; raw bytes from it fail the load cleanly."""
    code = RAW + "\nanswer(b'[1]')\n"
    with pytest.raises(ToolExecutionError, match="malformed answer"):
        load_docker(ToolSpec.parse(RAW_SPEC), code, image=sandbox_image)


def test_a_tool_that_does_not_load_in_time_raises_a_toolsmith_error(
    sandbox_image: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A module body that outlasts the load deadline is a ToolTimeoutError naming the tool and
    the fix (was a bare TimeoutError with no message, which Registry.load could not audit)."""
    import toolsmith.runtimes.docker as runtime
    import toolsmith.sandbox.containers as containers

    monkeypatch.setattr(runtime, "LOAD_TIMEOUT_S", 3.0)
    monkeypatch.setattr(containers, "busy", lambda: (0.0, 2))  # an idle machine: no stretch
    spec = ToolSpec.parse(
        {
            "name": "slow",
            "description": "Loads slowly.",
            "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}},
            "returns": {},
        }
    )
    code = "import time\ntime.sleep(600)\n\ndef slow(x):\n    return x\n"
    with pytest.raises(ToolTimeoutError, match="slow: the tool did not load within 3 s") as e:
        load_docker(spec, code, image=sandbox_image)
    assert "module body" in (e.value.hint or "")
