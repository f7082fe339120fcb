"""An MCP server over a registry: agents list and call its verified tools through the SDK.

Listing reads the registry on every request, so a publish or a yank shows on the next
``tools/list``; every listed version is resolved and verified first, and one that fails is left out
and logged rather than served. A call resolves the name again (a bare name: the newest published,
unyanked version), loads that version once per server lifetime (verification happens at load) and
runs it in a worker thread, because the docker runtime blocks. Tool failures the caller can act on
come back as ``isError`` results with the toolsmith error's text; an unknown tool is a protocol
error (``-32602``), as the MCP specification asks.

Logs go to stderr (``toolsmith.log``); under stdio the SDK also points fd 1 at stderr while it
serves, so stray output from a runtime cannot corrupt the MCP channel.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, NoReturn

import anyio
import anyio.to_thread
import mcp_types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

from toolsmith.errors import ToolsmithError, UsageError
from toolsmith.export import to_mcp
from toolsmith.loader import RuntimeName, Tool
from toolsmith.log import bound, get_logger
from toolsmith.registry import Registry, VerifiedTool, VersionRecord, VersionStatus
from toolsmith.runtimes.restricted import restricted_refusal
from toolsmith.spec import NAME_RE

log = get_logger(__name__)

__all__ = ["ToolServer", "build_server", "protocol_error", "serve_http", "serve_stdio"]


class ToolServer:
    """What one MCP server serves: the registry's verified tools, loaded lazily and cached.

    Blocking by design (verification reads files, the docker runtime waits on a container); the
    MCP handlers call it from worker threads. ``close`` releases every loaded tool.
    """

    def __init__(self, registry: Registry, *, runtime: RuntimeName = "docker") -> None:
        _check_runtime(runtime)
        self.registry = registry
        self.runtime: RuntimeName = runtime
        self._tools: dict[str, Tool] = {}  # by digest: one loaded Tool per name@version
        self._refusals: dict[str, str | None] = {}  # restricted eligibility, by digest
        self._lock = threading.Lock()
        self._closed = False

    def _live(self) -> list[VersionRecord]:
        """Published, unyanked records (a tool that then fails to verify is withheld and logged
        by ``definitions``)."""
        records = self.registry.list()
        return [r for r in records if not r.yanked and r.status == VersionStatus.PUBLISHED]

    def _refusal(self, tool: VerifiedTool) -> str | None:
        """Why this server's runtime cannot run ``tool``, or None if it can."""
        if self.runtime != "restricted":
            return None
        if tool.digest not in self._refusals:
            self._refusals[tool.digest] = restricted_refusal(tool.spec, tool.code)
        return self._refusals[tool.digest]

    def definitions(self) -> list[mcp_types.Tool]:
        """MCP definitions of every tool that verifies and that this runtime can run."""
        out = []
        for record in self._live():
            with bound(tool=record.name, version=record.version):
                try:
                    verified = self.registry.resolve(f"{record.name}@{record.version}")
                    definition = to_mcp(verified.spec)  # a spec MCP cannot carry is withheld
                except ToolsmithError as e:
                    log.warning("mcp.tool_withheld", error=f"{type(e).__name__}: {e}")
                    continue
                refusal = self._refusal(verified)
                if refusal is not None:
                    log.warning("mcp.tool_withheld", runtime=self.runtime, error=refusal)
                    continue
            out.append(mcp_types.Tool.model_validate(definition))
        return out

    def _load(self, name: str) -> Tool:
        """The loaded tool a call to ``name`` runs: its newest live version, verified at load."""
        if not NAME_RE.match(name):
            self._unknown(name, f"{name!r} is not a tool name")
        try:
            record = self.registry.find(name)
        except ToolsmithError as e:
            self._unknown(name, e.message)
        with self._lock:
            tool = self._tools.get(record.digest)
        if tool is not None:
            return tool
        # Loading (a docker worker start) happens outside the lock so one slow load does not
        # hold up calls to other tools; two racing first calls may both load, and one is closed.
        loaded = self.registry.load(
            f"{record.name}@{record.version}", runtime=self.runtime, actor="mcp server"
        )
        with self._lock:
            closed = self._closed
            tool = None if closed else self._tools.setdefault(record.digest, loaded)
        if tool is not loaded:
            loaded.close()
        if tool is None:
            raise UsageError("the MCP server is shutting down", hint="reconnect to a new server")
        return tool

    def _unknown(self, name: str, reason: str) -> NoReturn:
        names = ", ".join(t.name for t in self.definitions()) or "none"
        raise MCPError(
            code=mcp_types.INVALID_PARAMS,
            message=f"unknown tool {name!r} ({reason}); available tools: {names}",
        )

    def call(self, name: str, arguments: dict[str, Any] | None) -> mcp_types.CallToolResult:
        """Run one call; toolsmith errors become ``isError`` results naming the problem."""
        try:
            tool = self._load(name)
            with bound(tool=tool.name, version=tool.version):
                result = tool(**(arguments or {}))
        except ToolsmithError as e:
            log.info("mcp.call_failed", tool=name, error=type(e).__name__)
            return _error_result(e)
        return _call_result(result)

    def close(self) -> None:
        """Release every loaded tool (docker workers); later calls are refused."""
        with self._lock:
            self._closed = True
            tools, self._tools = list(self._tools.values()), {}
        for tool in tools:
            try:
                tool.close()
            except ToolsmithError as e:
                log.warning("mcp.close_failed", tool=tool.ref, error=str(e))


def _check_runtime(runtime: str) -> None:
    if runtime not in ("auto", "docker", "restricted"):
        raise UsageError(
            f"unknown runtime {runtime!r}", hint="use 'docker' (default) or 'restricted'"
        )


def _call_result(result: Any) -> mcp_types.CallToolResult:
    """A successful result: JSON text for every client, ``structuredContent`` for objects."""
    text = json.dumps(result, ensure_ascii=False)
    return mcp_types.CallToolResult(
        content=[mcp_types.TextContent(type="text", text=text)],
        structured_content=result if isinstance(result, dict) else None,
        is_error=False,
    )


def _error_result(error: ToolsmithError) -> mcp_types.CallToolResult:
    """A failed call as the model sees it: the error type, message and fix."""
    return mcp_types.CallToolResult(
        content=[mcp_types.TextContent(type="text", text=_describe(error))], is_error=True
    )


def _describe(error: ToolsmithError) -> str:
    text = f"{type(error).__name__}: {error.message}"
    return f"{text}\nfix: {error.hint}" if error.hint else text


def build_server(registry: Registry, *, runtime: RuntimeName = "docker") -> Server[ToolServer]:
    """A low-level MCP ``Server`` over ``registry``; each lifespan owns its loaded tools."""
    import toolsmith

    _check_runtime(runtime)

    @asynccontextmanager
    async def lifespan(_: Server[ToolServer]) -> AsyncIterator[ToolServer]:
        served = ToolServer(registry, runtime=runtime)
        try:
            yield served
        finally:
            await anyio.to_thread.run_sync(served.close)

    async def on_list_tools(
        ctx: ServerRequestContext[ToolServer], params: mcp_types.PaginatedRequestParams | None
    ) -> mcp_types.ListToolsResult:
        try:
            tools = await anyio.to_thread.run_sync(ctx.lifespan_context.definitions)
        except ToolsmithError as e:  # e.g. a corrupt index: say so rather than "Internal error"
            raise MCPError(code=mcp_types.INTERNAL_ERROR, message=_describe(e)) from e
        return mcp_types.ListToolsResult(tools=tools)

    async def on_call_tool(
        ctx: ServerRequestContext[ToolServer], params: mcp_types.CallToolRequestParams
    ) -> mcp_types.CallToolResult:
        call = ctx.lifespan_context.call
        return await anyio.to_thread.run_sync(call, params.name, params.arguments)

    return Server(
        "toolsmith",
        version=toolsmith.__version__,
        instructions=(
            f"Tools from the toolsmith registry at {registry.location}. Each was tested in a "
            "sandbox, signed, and is verified before it is listed; calls run in the "
            f"{runtime} runtime."
        ),
        lifespan=lifespan,
        on_list_tools=on_list_tools,
        on_call_tool=on_call_tool,
    )


async def serve_stdio(registry: Registry, *, runtime: RuntimeName = "docker") -> None:
    """Serve over stdin/stdout until the client closes the connection.

    A line that is not JSON is answered with the JSON-RPC parse error (-32700), and JSON that is
    not a JSON-RPC message with invalid request (-32600, echoing its id when it has a usable
    one), as JSON-RPC 2.0 section 5.1 asks; the server keeps serving. (The SDK only logs them, so
    the client would wait for an answer that never comes.)
    """
    server = build_server(registry, runtime=runtime)
    log.info("mcp.serving", transport="stdio", registry=registry.location, runtime=runtime)
    async with stdio_server() as (read_stream, write_stream):
        send, receive = anyio.create_memory_object_stream[SessionMessage | Exception](0)

        async def answer_protocol_errors() -> None:
            async with send:
                async for item in read_stream:
                    if not isinstance(item, Exception):
                        await send.send(item)
                        continue
                    error = protocol_error(item)
                    if error is not None:
                        await write_stream.send(SessionMessage(error))

        async with anyio.create_task_group() as tg:
            tg.start_soon(answer_protocol_errors)
            await server.run(receive, write_stream, server.create_initialization_options())
            tg.cancel_scope.cancel()


def protocol_error(error: Exception) -> mcp_types.JSONRPCError | None:
    """The JSON-RPC error answering a line the transport could not read as a message (``error``
    is what reading it raised), or None for a blank line."""
    details = error.errors() if isinstance(error, ValidationError) else []
    raw = [d.get("input") for d in details]
    if any(d["type"] == "json_invalid" for d in details) or not details:
        if all(isinstance(r, str) and not r.strip() for r in raw) and raw:
            return None
        code, message = mcp_types.PARSE_ERROR, "Parse error: the line is not JSON"
        request_id = None
    else:
        code = mcp_types.INVALID_REQUEST
        message = (
            "Invalid Request: the JSON is not a JSON-RPC 2.0 request, notification or response"
        )
        ids = [r.get("id") for r in raw if isinstance(r, dict)]
        request_id = next(
            (i for i in ids if isinstance(i, str | int) and not isinstance(i, bool)), None
        )
    log.info("mcp.protocol_error", code=code)
    return mcp_types.JSONRPCError(
        jsonrpc="2.0", id=request_id, error=mcp_types.ErrorData(code=code, message=message)
    )


def serve_http(
    registry: Registry,
    *,
    runtime: RuntimeName = "docker",
    host: str = "127.0.0.1",
    port: int = 8000,
) -> None:
    """Serve streamable HTTP at ``http://HOST:PORT/mcp`` until interrupted."""
    import uvicorn

    server = build_server(registry, runtime=runtime)
    app = server.streamable_http_app(host=host)
    log.info("mcp.serving", transport="http", url=f"http://{host}:{port}/mcp", runtime=runtime)
    uvicorn.run(app, host=host, port=port, log_level="warning")
