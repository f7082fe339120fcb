"""`toolsmith mcp`: serve the registry's tools to MCP clients (Claude Desktop, IDEs, agents)."""

from __future__ import annotations

import functools
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import anyio
import typer

from toolsmith.cli._common import RegistryOpt
from toolsmith.errors import UsageError
from toolsmith.registry import Registry

app = typer.Typer(
    help="Serve registry tools over the Model Context Protocol.", no_args_is_help=True
)


class Runtime(StrEnum):
    DOCKER = "docker"
    RESTRICTED = "restricted"


class Transport(StrEnum):
    STDIO = "stdio"
    HTTP = "http"


@app.callback()
def _group() -> None:
    """Serve registry tools over the Model Context Protocol."""


@app.command("serve")
def serve(
    registry: RegistryOpt = None,
    runtime: Annotated[
        Runtime,
        typer.Option(
            "--runtime",
            help="Where calls run: docker (the sandbox) or restricted (in-process, pure tools "
            "only; ineligible tools are not listed).",
        ),
    ] = Runtime.DOCKER,
    transport: Annotated[
        Transport,
        typer.Option("--transport", help="stdio (for a client that spawns us) or http."),
    ] = Transport.STDIO,
    host: Annotated[str, typer.Option("--host", help="HTTP bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="HTTP port.", min=1, max=65535)] = 8000,
) -> None:
    """Serve the registry's published, verified tools; stdout carries only MCP messages."""
    from toolsmith.mcp import serve_http, serve_stdio

    reg = Registry(registry)
    if isinstance(reg.path, Path) and not reg.path.is_dir():
        raise UsageError(
            f"no registry at {reg.path}",
            hint="pass --registry DIR|URL or set TOOLSMITH_REGISTRY to a registry",
        )
    if transport is Transport.HTTP:
        serve_http(reg, runtime=runtime.value, host=host, port=port)
    else:
        anyio.run(functools.partial(serve_stdio, reg, runtime=runtime.value))
