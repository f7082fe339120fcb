"""`toolsmith audit`: read and verify a registry's audit log, or your own (`--consumer`)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from toolsmith.audit import AuditLog, AuditVerification
from toolsmith.cli._common import JsonOpt, RegistryOpt, console, emit, escape, plain
from toolsmith.errors import AuditError
from toolsmith.registry import Registry, consumer_audit

app = typer.Typer(help="Show and verify the registry's audit log.", no_args_is_help=True)

LimitOpt = Annotated[
    int | None,
    typer.Option("--limit", min=1, help="Show only the last N entries.", show_default=False),
]


ConsumerOpt = Annotated[
    bool,
    typer.Option(
        "--consumer", help="Your own log of loads (allowed and refused), not the registry's."
    ),
]


def _log(registry: str | None, consumer: bool) -> AuditLog:
    if consumer:
        return consumer_audit()
    return Registry(registry).audit


@app.command("show")
def show(
    registry: RegistryOpt = None,
    consumer: ConsumerOpt = False,
    as_json: JsonOpt = False,
    limit: LimitOpt = None,
) -> None:
    """List audit entries, oldest first: who did what to which tool, and why."""
    log = _log(registry, consumer)
    entries = list(log.entries()) if log.exists() else []
    if limit is not None:
        entries = entries[-limit:]

    def render() -> None:
        table = Table(title=escape(f"{len(entries)} audit entries in {log.path}"))
        for col in ("seq", "time", "event", "actor", "subject", "reason"):
            table.add_column(col)
        for e in entries:
            cells = (e.seq, e.timestamp[:19], e.event, e.actor, e.subject, e.reason or "")
            table.add_row(*map(plain, cells))
        console.print(table)

    emit(entries, as_json, render)


@app.command("verify")
def verify(
    registry: RegistryOpt = None, consumer: ConsumerOpt = False, as_json: JsonOpt = False
) -> None:
    """Check the hash chain and its head anchor; exit non-zero naming the first bad entry."""
    log = _log(registry, consumer)
    result = log.verify()
    if not result.ok:
        if as_json:
            emit(result, True, lambda: None)
        raise _failure(log, result)
    emit(
        result,
        as_json,
        lambda: console.print(
            plain(f"audit log {log.path}: {result.entries} entries, chain intact"), soft_wrap=True
        ),
    )


def _failure(log: AuditLog, result: AuditVerification) -> AuditError:
    """The error for a log that fails verification: the first bad line, the breaks sealing
    damage, whether recording goes on, and what the operator does next."""
    n = result.first_bad_seq
    message = f"audit log {log.path} fails verification at seq {n} (line {n}): {result.problem}"
    aside = (
        f"to start a clean chain, move {log.path.name} and {log.head_path.name} aside "
        "(keep both as evidence)"
    )
    if result.breaks:
        seqs = ", ".join(str(b) for b in result.breaks)
        message += f"; break entries sealing damage at seq {seqs}"
    if result.breaks and result.tail_intact:
        message += f"; the chain after seq {result.breaks[-1]} is intact, so recording went on"
        hint = (
            "the damaged lines are kept in the log as evidence: find out what changed them (a "
            f"crash mid-write, a full disk, an edit); then, {aside}"
        )
    elif log.on_damage == "seal":
        hint = (
            f"entries before seq {n} are intact; the next append seals the damage with a break "
            f"entry and recording goes on; keep the log as evidence, find out who changed it, "
            f"and {aside}"
        )
    else:
        hint = (
            f"entries before seq {n} are intact; keep the log as evidence and find out who "
            f"changed it; {aside}"
        )
    return AuditError(message, hint=hint)
