"""Imported by generated tests: ``from toolsmith_harness import call, invoke, ToolRaised, ...``.

The tool runs in a worker process of its own. Arguments go there and results come back as JSON, so
a result must be JSON-serialisable (otherwise the call fails with ``ResultNotJSON``), and the tool
can touch neither the test, its frames, nor the verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from toolsmith_runner.client import WorkerClient, WorkerFailure

__all__ = [
    "Invocation",
    "ToolCrashed",
    "ToolRaised",
    "call",
    "check_properties",
    "invoke",
    "take_tally",
    "tally",
    "worker_pid",
]

_client: WorkerClient | None = None
# Inputs the running test drew: [accepted, all]. Lives in the runner's process, which the tool
# cannot reach, and is read by the runner's plugin after each test.
_tally = [0, 0]


class ToolRaised(Exception):
    """The tool raised an exception; ``type_name`` and ``message`` describe it."""

    def __init__(self, type_name: str, message: str, traceback: str = "") -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message
        self.traceback = traceback


class ToolCrashed(Exception):
    """The worker died, exceeded the per-call timeout, or broke the protocol."""


@dataclass(frozen=True)
class Invocation:
    ok: bool
    value: Any
    error_type: str | None
    error_message: str | None
    args_after: dict[str, Any]
    traceback: str = ""


def install(client: WorkerClient) -> None:
    """Called once by the runner; tests never need it."""
    global _client
    _client = client


def invoke(args: dict[str, Any]) -> Invocation:
    """Call the tool with ``args``; a raised exception is part of the Invocation, a crash raises."""
    if _client is None:
        raise ToolCrashed("toolsmith_harness is not connected to a worker (not in the sandbox?)")
    try:
        answer = _client.call(args)
    except WorkerFailure as e:
        raise ToolCrashed(str(e)) from None
    return Invocation(
        ok=answer["ok"] is True,
        value=answer.get("value"),
        error_type=answer.get("error_type"),
        error_message=answer.get("error_message"),
        args_after=answer.get("args_after") or {},
        traceback=answer.get("traceback", ""),
    )


def tally(accepted: bool) -> None:
    """Count one drawn input: accepted by the tool, or rejected with a declared exception."""
    _tally[0] += bool(accepted)
    _tally[1] += 1


def take_tally() -> tuple[int, int]:
    """(accepted, inputs) counted since the last call, and start counting afresh."""
    counted = (_tally[0], _tally[1])
    _tally[:] = [0, 0]
    return counted


def worker_pid() -> int | None:
    """The pid of the process the tool runs in now, if any (constitution checks leave it out)."""
    return None if _client is None else _client.worker_pid


def check_properties(
    properties: list[dict[str, str]], args: Any, result: Any
) -> tuple[str, str] | None:
    """None when all of ``properties`` (``{"name", "source"}``) hold on ``args`` and the tool's
    ``result``, else (which failed, why). They run in a confined checker process of their own
    (``toolsmith_runner.checker``), never in this one, which holds the job's nonce."""
    if _client is None:
        raise ToolCrashed("toolsmith_harness is not connected to a worker (not in the sandbox?)")
    try:
        verdict = _client.check(properties, args, result)
    except WorkerFailure as e:
        return "the property checks failed", str(e)
    if verdict["failed"] is None:
        return None
    return f"property {verdict['failed']} fails", str(verdict.get("error"))


def call(**kwargs: Any) -> Any:
    """Call the tool and return its result, or raise ToolRaised / ToolCrashed."""
    inv = invoke(kwargs)
    if inv.ok:
        return inv.value
    error = ToolRaised(inv.error_type or "Exception", inv.error_message or "", inv.traceback)
    if inv.traceback:
        error.add_note(f"raised in the tool:\n{inv.traceback.rstrip()}")
    raise error
