"""`toolsmith mcp serve` in a real subprocess, driven by the MCP SDK's own client.

The registry is real (signed, content-addressed files under tmp); the server is spawned as a
client such as Claude Desktop would spawn it, and speaks stdio or streamable HTTP.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import anyio
import mcp_types
import pytest
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError
from typer.testing import CliRunner

from tests.test_registry_support import (
    code_for,
    flip_byte,
    make_spec,
    passing_report,
    provenance,
    target_file,
)
from toolsmith.cli.mcp import app
from toolsmith.errors import UsageError
from toolsmith.mcp import ToolServer, build_server
from toolsmith.registry import Registry

T = TypeVar("T")

SERVE = [sys.executable, "-c", "from toolsmith.cli.mcp import app; app()", "serve"]

SPLIT_NAME = """
def split_name(full: str) -> dict:
    if " " not in full.strip():
        raise ValueError(f"no space in {full!r}: give a first and a last name")
    first, last = full.strip().split(" ", 1)
    return {"first": first, "last": last}
"""

SPIN = """
def spin(n: int) -> int:
    while True:
        n += 1
    return n
"""


def spec_for(name: str, params: dict[str, Any], returns: dict[str, Any], **extra: Any) -> Any:
    return make_spec(name, f"The {name} tool.").model_copy(
        update={
            "parameters": {
                "type": "object",
                "properties": params,
                "required": list(params),
                "additionalProperties": False,
            },
            "returns": returns,
            "examples": [],
            **extra,
        }
    )


@pytest.fixture(scope="module")
def reg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """add_ints, split_name, spin, net_fetch live; old_tool yanked; tampered_tool altered."""
    root = tmp_path_factory.mktemp("mcp")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TOOLSMITH_HOME", str(root / "home"))
        r = Registry(root / "reg")

        def publish(spec: Any, code: str) -> None:
            r.publish(spec, code, passing_report(), provenance())

        publish(make_spec(), code_for("add_ints"))
        publish(
            spec_for(
                "split_name",
                {"full": {"type": "string"}},
                {
                    "type": "object",
                    "properties": {"first": {"type": "string"}, "last": {"type": "string"}},
                    "required": ["first", "last"],
                },
                raises=["ValueError"],
            ),
            SPLIT_NAME,
        )
        publish(spec_for("spin", {"n": {"type": "integer"}}, {"type": "integer"}), SPIN)
        publish(
            spec_for(
                "net_fetch",
                {"a": {"type": "integer"}, "b": {"type": "integer"}},
                {"type": "integer"},
                capabilities=["network:example.com"],
            ),
            code_for("net_fetch"),
        )
        publish(make_spec("old_tool"), code_for("old_tool"))
        r.yank("old_tool@0.1.0", "superseded")
        publish(make_spec("tampered_tool"), code_for("tampered_tool"))
        flip_byte(target_file(r, r.find("tampered_tool").parts["code"]))
        yield r


def home_of(reg: Registry) -> str:
    """The home that created ``reg`` (its consumer state pins the registry's root)."""
    assert isinstance(reg.path, Path)
    home = reg.path.parent / "home"
    return str(home) if home.is_dir() else os.environ["TOOLSMITH_HOME"]


def with_client(
    reg: Registry,
    body: Callable[[Client], Awaitable[T]],
    *,
    runtime: str = "restricted",
    errlog: Path | None = None,
) -> T:
    """Spawn `serve` over stdio, run ``body`` against it with the SDK client, shut it down."""
    params = StdioServerParameters(
        command=SERVE[0],
        args=[*SERVE[1:], "--registry", str(reg.path), "--runtime", runtime],
        env={"TOOLSMITH_HOME": home_of(reg)},
    )

    async def main() -> T:
        with open(errlog or os.devnull, "w") as err:
            async with Client(stdio_client(params, errlog=err), read_timeout_seconds=60) as client:
                return await body(client)

    return anyio.run(main)


def text(result: mcp_types.CallToolResult) -> str:
    assert len(result.content) == 1
    block = result.content[0]
    assert isinstance(block, mcp_types.TextContent)
    return block.text


def test_lists_live_verified_tools_only(reg: Registry, tmp_path: Path) -> None:
    """Live tools are listed with their schemas; yanked, tampered and ineligible ones are not."""
    errlog = tmp_path / "stderr.log"

    async def body(client: Client) -> list[mcp_types.Tool]:
        return (await client.list_tools()).tools

    tools = {t.name: t for t in with_client(reg, body, errlog=errlog)}
    assert sorted(tools) == ["add_ints", "spin", "split_name"]
    assert tools["add_ints"].input_schema == make_spec().parameters
    assert tools["add_ints"].output_schema is None
    assert tools["split_name"].output_schema is not None
    assert tools["split_name"].output_schema["required"] == ["first", "last"]
    assert tools["add_ints"].annotations is not None
    assert tools["add_ints"].annotations.read_only_hint is True
    logged = [json.loads(line) for line in errlog.read_text().splitlines()]
    withheld = {e["tool"]: e["error"] for e in logged if e["event"] == "mcp.tool_withheld"}
    assert withheld.keys() == {"tampered_tool", "net_fetch"}
    assert withheld["tampered_tool"].startswith("DigestMismatchError")
    assert "network:example.com" in withheld["net_fetch"]


def test_call_returns_json_text_and_structured_content(reg: Registry) -> None:
    """A call returns the result as JSON text, and as structuredContent when it is an object."""

    async def body(client: Client) -> tuple[mcp_types.CallToolResult, ...]:
        return (
            await client.call_tool("add_ints", {"a": 2, "b": 40}),
            await client.call_tool("split_name", {"full": "Ada Lovelace"}),
            await client.call_tool("add_ints", {"a": 2.0, "b": 40}),
        )

    number, obj, from_float = with_client(reg, body)
    assert not number.is_error and text(number) == "42"
    assert text(from_float) == "42"  # 2.0 is the integer 2 (JSON Schema), so the result is 42
    assert number.structured_content is None
    assert not obj.is_error
    assert obj.structured_content == {"first": "Ada", "last": "Lovelace"}
    assert json.loads(text(obj)) == obj.structured_content


def test_bad_arguments_are_a_tool_error_naming_the_schema_problem(reg: Registry) -> None:
    """Arguments failing the parameters schema give isError with the schema error and a fix."""

    async def body(client: Client) -> tuple[mcp_types.CallToolResult, ...]:
        return (
            await client.call_tool("add_ints", {"a": "two", "b": 1}),
            await client.call_tool("add_ints", {"a": 1}),
        )

    wrong_type, missing = with_client(reg, body)
    assert wrong_type.is_error and missing.is_error
    assert text(wrong_type).startswith("ToolArgumentsError: arguments for add_ints do not match")
    assert "'two' is not of type 'integer'" in text(wrong_type)
    assert "fix: pass keyword arguments that match" in text(wrong_type)
    assert "'b' is a required property" in text(missing)


def test_declared_exception_and_timeout_are_tool_errors(reg: Registry) -> None:
    """A declared exception and a tool killed at its deadline come back as isError results."""

    async def body(client: Client) -> tuple[mcp_types.CallToolResult, ...]:
        return (
            await client.call_tool("split_name", {"full": "Plato"}),
            await client.call_tool("spin", {"n": 0}),
        )

    raised, timed_out = with_client(reg, body)
    assert raised.is_error
    assert text(raised).splitlines() == [
        "ToolRaisedError: ValueError: no space in 'Plato': give a first and a last name",
        "fix: the tool refused these arguments, as its spec allows it to: change them (the "
        "spec's parameters, examples and raises say what it accepts)",
    ]
    assert timed_out.is_error
    assert text(timed_out).startswith("ToolTimeoutError: spin: the call did not finish within 2 s")


def test_unknown_yanked_and_tampered_tools_are_not_called(reg: Registry) -> None:
    """Unknown and yanked names are protocol errors listing the tools; tampered code is refused."""

    async def body(client: Client) -> tuple[Any, ...]:
        outcomes: list[Any] = []
        for name in ("no_such_tool", "old_tool", "add_ints@0.1.0"):
            try:
                await client.call_tool(name, {"a": 1, "b": 2})
            except MCPError as e:
                outcomes.append(e)
        outcomes.append(await client.call_tool("tampered_tool", {"a": 1, "b": 2}))
        return tuple(outcomes)

    unknown, yanked, pinned, tampered = with_client(reg, body)
    for error in (unknown, yanked, pinned):
        assert error.code == mcp_types.INVALID_PARAMS
        assert str(error).endswith("available tools: add_ints, spin, split_name")
    assert "unknown tool 'no_such_tool' (no tool named 'no_such_tool'" in str(unknown)
    assert "yanked versions 0.1.0 are chosen only by exact pin" in str(yanked)
    assert "'add_ints@0.1.0' is not a tool name" in str(pinned)
    assert tampered.is_error
    assert text(tampered).startswith("DigestMismatchError:")


@pytest.mark.docker
def test_server_stays_responsive_during_a_blocking_call(reg: Registry) -> None:
    """Calls run off the event loop: other requests complete while one call is still running.

    The spinning call runs in the docker runtime, where it holds no interpreter lock: in the
    restricted runtime it shares the server's GIL, so on a loaded machine the other requests
    can take most of its 2 s timeout (measured 0.06 s alone, 1.0-1.35 s beside a spin).
    """

    async def body(client: Client) -> list[str]:
        finished: list[str] = []

        async def hang() -> None:
            await client.call_tool("spin", {"n": 0})
            finished.append("spin")

        async with anyio.create_task_group() as tg:
            tg.start_soon(hang)
            await anyio.sleep(0.2)
            await client.list_tools()
            finished.append("list")
            await client.call_tool("add_ints", {"a": 1, "b": 2})
            finished.append("add_ints")
        return finished

    assert with_client(reg, body, runtime="docker") == ["list", "add_ints", "spin"]


def test_publish_and_yank_show_without_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The listing reads the registry per request; a newer version is called once published."""
    monkeypatch.setenv("TOOLSMITH_HOME", str(tmp_path / "home"))
    r = Registry(tmp_path / "reg")
    r.publish(make_spec(), code_for("add_ints"), passing_report(), provenance(), version="1.0.0")

    async def body(client: Client) -> tuple[Any, ...]:
        before = await client.call_tool("add_ints", {"a": 5, "b": 1})
        r.publish(
            make_spec(),
            code_for("add_ints", "a - b"),
            passing_report(),
            provenance(),
            version="1.1.0",
        )
        after = await client.call_tool("add_ints", {"a": 5, "b": 1})
        r.yank("add_ints@1.1.0", "wrong sign")
        r.yank("add_ints@1.0.0", "retired")
        listed = await client.list_tools(cache_mode="refresh")
        return text(before), text(after), [t.name for t in listed.tools]

    assert with_client(r, body) == ("6", "4", [])


def test_streamable_http_transport(reg: Registry) -> None:
    """`--transport http` serves the same tools at http://HOST:PORT/mcp."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ["--registry", str(reg.path), "--runtime", "restricted", "--transport", "http"]
    proc = subprocess.Popen(
        [*SERVE, *args, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "TOOLSMITH_HOME": home_of(reg)},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, proc.communicate()[1].decode()
                assert time.monotonic() < deadline, "the HTTP server did not start in 30 s"
                time.sleep(0.1)

        async def main() -> tuple[list[str], mcp_types.CallToolResult]:
            async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                tools = [t.name for t in (await client.list_tools()).tools]
                return tools, await client.call_tool("add_ints", {"a": 3, "b": 4})

        tools, result = anyio.run(main)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert sorted(tools) == ["add_ints", "spin", "split_name"]
    assert text(result) == "7"
    assert out == b""


def test_unknown_runtime_is_refused_before_serving(reg: Registry) -> None:
    """A runtime name the loader does not know is a usage error naming the choices."""
    with pytest.raises(UsageError, match="unknown runtime 'wasm'"):
        build_server(reg, runtime="wasm")  # type: ignore[arg-type]


def test_close_releases_tools_and_refuses_later_calls(reg: Registry) -> None:
    """After close, the server holds no loaded tools and a call is an error, not a reload."""
    served = ToolServer(reg, runtime="restricted")
    assert text(served.call("add_ints", {"a": 1, "b": 1})) == "2"
    served.close()
    result = served.call("add_ints", {"a": 1, "b": 1})
    assert result.is_error and "the MCP server is shutting down" in text(result)


def test_missing_registry_directory_is_refused(tmp_path: Path) -> None:
    """Serving a directory that does not exist is a usage error, not an empty server."""
    result = CliRunner().invoke(app, ["serve", "--registry", str(tmp_path / "nope")])
    assert isinstance(result.exception, UsageError)
    assert str(result.exception).startswith(f"no registry at {tmp_path / 'nope'} (fix: pass")


@pytest.mark.docker
def test_docker_runtime_serves_calls_and_leaves_no_worker(reg: Registry) -> None:
    """The default runtime: the call runs in a worker container, gone once the client leaves."""
    import docker

    async def body(client: Client) -> tuple[mcp_types.CallToolResult, mcp_types.CallToolResult]:
        return (
            await client.call_tool("split_name", {"full": "Grace Hopper"}),
            await client.call_tool("split_name", {"full": "Grace"}),
        )

    ok, raised = with_client(reg, body, runtime="docker")
    assert ok.structured_content == {"first": "Grace", "last": "Hopper"}
    assert raised.is_error and "ValueError" in text(raised)
    engine = docker.from_env()
    try:
        workers = engine.containers.list(all=True, filters={"label": "toolsmith.runtime.tool"})
        assert [c for c in workers if c.labels.get("toolsmith.runtime.tool") == "split_name"] == []
    finally:
        engine.close()


def test_malformed_lines_get_json_rpc_errors_and_serving_goes_on(reg: Registry) -> None:
    """Raw stdio, as a buggy client would write it: a line that is not JSON gets -32700, JSON
    that is not JSON-RPC gets -32600 with its id, a blank line nothing; then the handshake and
    tools/list still work on the same connection."""
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "raw-stdio", "version": "0"},
        },
    }
    lines = [
        "{not json",
        json.dumps({"jsonrpc": "2.0", "id": 7, "method": 5}),
        "",
        json.dumps(init),
        json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    ]
    with subprocess.Popen(
        [*SERVE, "--registry", str(reg.path), "--runtime", "restricted"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "TOOLSMITH_HOME": str(reg.path.parent / "home")},
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write("\n".join(lines) + "\n")
            proc.stdin.flush()
            answers = [json.loads(proc.stdout.readline()) for _ in range(4)]
        finally:
            proc.stdin.close()
            proc.wait(timeout=30)
    parse, invalid, initialized, listed = answers
    assert parse["id"] is None and parse["error"]["code"] == -32700
    assert invalid["id"] == 7 and invalid["error"]["code"] == -32600
    assert initialized["id"] == 1 and initialized["result"]["serverInfo"]["name"] == "toolsmith"
    assert listed["id"] == 2 and "add_ints" in {t["name"] for t in listed["result"]["tools"]}
    assert proc.returncode == 0
