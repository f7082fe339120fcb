"""Loading verified tools for agents: one trust gate, then a runtime chosen by policy.

``load_tool`` only accepts a ``VerifiedTool`` the registry's verifier issued (``toolsmith.verified``
makes any other one impossible to build, and ``is_issued`` catches one assembled by hand), after
every digest, signature and the consumer's policy checked out. So no path leads to executing tool
code without verification. The runtime is ``docker`` unless the caller asks for ``restricted``
and the tool is eligible (pure, policy-clean, allowlisted stdlib only); an ineligible request is
refused with the reason rather than quietly run somewhere else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Literal, Protocol

from toolsmith.errors import PolicyError, TrustError, UsageError
from toolsmith.export import to_mcp, to_openai
from toolsmith.log import get_logger
from toolsmith.runtimes.restricted import load_restricted, restricted_refusal
from toolsmith.spec import ToolSpec
from toolsmith.verified import VerifiedTool, is_issued

log = get_logger(__name__)

RuntimeName = Literal["auto", "docker", "restricted"]


class BoundTool(Protocol):
    """A tool loaded into one runtime: validated keyword calls in, JSON results out."""

    spec: ToolSpec
    runtime: str

    def __call__(self, /, **kwargs: Any) -> Any: ...


class Tool:
    """A verified registry tool, callable with keyword arguments."""

    def __init__(self, verified: VerifiedTool, bound: BoundTool) -> None:
        self._verified = verified
        self._bound = bound

    @property
    def spec(self) -> ToolSpec:
        return self._verified.spec

    @property
    def name(self) -> str:
        return self._verified.name

    @property
    def version(self) -> str:
        return self._verified.version

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def digest(self) -> str:
        return self._verified.digest

    @property
    def signers(self) -> Sequence[str]:
        return self._verified.signers

    @property
    def runtime(self) -> str:
        return self._bound.runtime

    def __call__(self, /, **kwargs: Any) -> Any:
        """Call the tool; ToolArgumentsError, ToolRaisedError, ToolExecutionError on failure."""
        return self._bound(**kwargs)

    async def acall(self, /, **kwargs: Any) -> Any:
        """The async variant, for agent frameworks that are async: runs in a worker thread."""
        return await asyncio.to_thread(self._bound, **kwargs)

    def openai_schema(self, *, strict: bool = False) -> dict[str, Any]:
        """A Chat Completions ``tools`` entry (``strict``: OpenAI's strict mode); SpecError if
        the spec cannot be carried faithfully (``toolsmith.export``)."""
        return to_openai(self.spec, strict=strict)

    def mcp_definition(self) -> dict[str, Any]:
        """An MCP ``Tool`` definition; SpecError if the spec cannot be carried faithfully."""
        return to_mcp(self.spec)

    def close(self) -> None:
        close = getattr(self._bound, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> Tool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Tool {self.ref} runtime={self.runtime} digest={self.digest[:19]}>"


def load_tool(verified: VerifiedTool, runtime: RuntimeName = "auto", **options: Any) -> Tool:
    """Bind a verified tool to a runtime. ``docker`` is the default for every tool.

    Raises ``TrustError`` for anything the registry's verifier did not issue."""
    if not is_issued(verified):
        raise TrustError(
            f"refusing to load {verified!r}: it did not come out of the registry's verifier",
            hint="load tools with Registry.load(ref), or pass what Registry.resolve(ref) returned",
        )
    if runtime == "restricted":
        refusal = restricted_refusal(verified.spec, verified.code)
        if refusal is not None:
            raise PolicyError(
                f"{verified.name}@{verified.version} cannot use the restricted runtime: {refusal}",
                hint="use the docker runtime (the default)",
            )
        bound: BoundTool = load_restricted(verified.spec, verified.code, **options)
    elif runtime in ("auto", "docker"):
        from toolsmith.runtimes.docker import load_docker

        bound = load_docker(verified.spec, verified.code, lock=verified.report.lock, **options)
    else:
        raise UsageError(
            f"unknown runtime {runtime!r}", hint="use 'docker' (default) or 'restricted'"
        )
    log.info("tool.loaded", tool=verified.name, version=verified.version, runtime=bound.runtime)
    return Tool(verified, bound)
