"""`toolsmith registry`."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from toolsmith.cli._common import JsonOpt, RegistryOpt, console, emit, escape, plain
from toolsmith.errors import CorruptRegistryError, TrustError
from toolsmith.export import ExportFormat, export_spec
from toolsmith.keys import DEFAULT_KEY, KeyStore
from toolsmith.registry import Registry, VersionRecord, VersionStatus, trust_registry
from toolsmith.report import MutationReport

app = typer.Typer(help="Browse, verify, yank and export registry tools.", no_args_is_help=True)

RefArg = Annotated[str, typer.Argument(help="NAME, NAME@1.2.3 or NAME@<range> (^1.2, >=1,<2).")]
PinArg = Annotated[str, typer.Argument(help="NAME@VERSION (an exact version).")]
KeyOpt = Annotated[
    str, typer.Option("--key", help="Local signing key that signs the change (a publisher).")
]


def _row(r: VersionRecord) -> dict[str, Any]:
    return {
        "name": r.name,
        "version": r.version,
        "digest": r.digest,
        "status": r.status.value,
        "yanked": r.yanked,
        "yank_reason": r.yank_reason,
        "description": r.description,
        "tags": r.tags,
        "capabilities": r.capabilities,
        "published_at": r.published_at,
        "signers": r.signers,
    }


def _table(records: list[VersionRecord], title: str) -> Table:
    table = Table(title=escape(title))
    for col in ("name", "version", "status", "digest", "description"):
        table.add_column(col)
    for r in records:
        status = f"yanked: {r.yank_reason}" if r.yanked else r.status.value
        table.add_row(*map(plain, (r.name, r.version, status, r.digest[:12], r.description)))
    return table


@app.command("list")
def list_(
    pending: Annotated[
        bool, typer.Option("--pending", help="Show the approval queue: every pending version.")
    ] = False,
    registry: RegistryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List tools with the version a bare name resolves to (or, with --pending, the queue)."""
    reg = Registry(registry)
    if not pending:
        records = reg.list()
        emit(
            [_row(r) for r in records],
            as_json,
            lambda: console.print(_table(records, f"{len(records)} tools in {reg.location}")),
        )
        return
    queue = reg.pending()

    def render() -> None:
        table = Table(title=escape(f"{len(queue)} version(s) awaiting approval in {reg.location}"))
        for col in ("name", "version", "capabilities", "published", "digest"):
            table.add_column(col)
        for r in queue:
            caps = ", ".join(r.capabilities) or "(pure)"
            table.add_row(*map(plain, (r.name, r.version, caps, r.published_at, r.digest[:12])))
        console.print(table)
        if queue:
            console.print("decide with `toolsmith approve NAME@VER` or `toolsmith reject ...`")

    emit([_row(r) for r in queue], as_json, render)


@app.command("versions")
def versions(name: str, registry: RegistryOpt = None, as_json: JsonOpt = False) -> None:
    """Every version of a tool, yanked ones included."""
    records = Registry(registry).versions(name)
    emit(
        [_row(r) for r in records],
        as_json,
        lambda: console.print(_table(records, f"versions of {name}")),
    )


@app.command("search")
def search(
    query: str,
    limit: Annotated[int, typer.Option(help="Most hits to show.")] = 10,
    registry: RegistryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ranked search over tool names, descriptions and tags."""
    hits = Registry(registry).search(query, limit)

    def render() -> None:
        table = Table(title=escape(f"{len(hits)} hits for {query!r}"))
        for col in ("name", "version", "score", "digest", "description"):
            table.add_column(col)
        for h in hits:
            cells = (h.name, h.version, f"{h.score:.2f}", h.digest[:12], h.description)
            table.add_row(*map(plain, cells))
        console.print(table)

    rows = [h.model_dump() | {"status": "published", "yanked": False} for h in hits]
    emit(rows, as_json, render)


@app.command("show")
def show(ref: RefArg, registry: RegistryOpt = None, as_json: JsonOpt = False) -> None:
    """A version's spec, signature status, signers, test summary and provenance."""
    reg = Registry(registry)
    record = reg.find(ref)
    if record.status != VersionStatus.PUBLISHED:
        _show_unpublished(reg, record, as_json)
        return
    try:
        tool = reg.resolve(f"{record.name}@{record.version}")
    except (TrustError, CorruptRegistryError) as e:
        problem = f"{type(e).__name__}: {e.message}"
        emit(
            _row(record) | {"verified": False, "error": problem},
            as_json,
            lambda: console.print(
                f"[bold]{escape(record.name)}@{escape(record.version)}[/bold]  "
                f"digest {record.digest}\nsignature: [bold red]FAILED[/bold red] {escape(problem)}",
                highlight=False,
            ),
        )
        raise typer.Exit(e.exit_code) from None
    data = _row(record) | {
        "verified": True,
        "signers": list(tool.signers),
        "spec": tool.spec.model_dump(mode="json"),
        "report_summary": tool.report.summary(),
        "report_warnings": tool.report.warnings(),
        "accepted_inputs": {
            t.nodeid: {"inputs": t.inputs, "accepted": t.accepted}
            for t in tool.report.tests
            if t.inputs
        },
        "mutation": _mutation(tool.report.mutation),
        "lock": tool.report.lock.model_dump(mode="json") if tool.report.lock else None,
        "provenance": tool.provenance.model_dump(mode="json"),
    }

    def render() -> None:
        reason = escape(record.yank_reason or "")
        yanked = f"  [yellow]yanked: {reason}[/yellow]" if record.yanked else ""
        p = tool.provenance
        console.print(
            f"[bold]{escape(tool.name)}@{escape(tool.version)}[/bold]{yanked}\n"
            f"digest     {tool.digest}\n"
            f"signature  [green]verified[/green] by {', '.join(tool.signers)}\n"
            f"tests      {escape(tool.report.summary())}\n"
            + escape(
                f"provenance {p.source} via {p.builder} {p.builder_version}, "
                f"model {p.model or '-'}, {len(p.attempts)} attempt(s), created {p.created_at}\n"
            ),
            highlight=False,
        )
        for t in tool.report.tests:
            if t.inputs and t.accepted_share is not None:
                console.print(
                    escape(
                        f"inputs     {t.nodeid.rpartition('::')[2]}: {t.inputs} drawn, "
                        f"{t.accepted_share:.0%} accepted"
                    ),
                    highlight=False,
                )
        mutation = tool.report.mutation
        if mutation is not None:
            lines = [f"mutation   {mutation.summary()}"]
            lines += [
                f"  survived   {m.id} ({m.operator}, line {m.line})" for m in mutation.survivors
            ]
            lines += [f"  equivalent {m.id}: {m.reason}" for m in mutation.equivalent]
            console.print(escape("\n".join(lines)), highlight=False)
        lock = tool.report.lock
        if lock is not None:
            lines = [f"lock       {lock.digest[:16]} (CPython {lock.python}, signed)"]
            lines += [f"  {p.name}=={p.version}  sha256:{p.sha256}" for p in lock.packages]
            console.print(escape("\n".join(lines)), highlight=False)
        for warning in tool.report.warnings():
            console.print(f"[yellow]warning[/yellow] {escape(warning)}", highlight=False)
        console.print(tool.spec.to_yaml(), highlight=False, markup=False)

    emit(data, as_json, render)


def _mutation(report: MutationReport | None) -> dict[str, Any] | None:
    """The mutation gate's account with its score, for --json."""
    if report is None:
        return None
    return {
        "score": report.score,
        "killed": report.killed,
        "survived": len(report.survivors),
        "equivalent": len(report.equivalent),
        **report.model_dump(mode="json"),
    }


def _show_unpublished(reg: Registry, record: VersionRecord, as_json: bool) -> None:
    """Pending and rejected versions are never resolved, so show what the index and verify say."""
    pin = f"{record.name}@{record.version}"
    [result] = reg.verify(pin)
    next_step = (
        f"not loadable until a trusted approver runs `toolsmith approve {pin}`"
        if record.status == VersionStatus.PENDING
        else "rejected: never loadable"
    )

    def render() -> None:
        error = escape(result.error or "")
        verdict = "[green]verified[/green]" if result.ok else f"[red]FAILED[/red] {error}"
        capabilities = escape(", ".join(record.capabilities) or "(pure)")
        console.print(
            f"[bold]{escape(pin)}[/bold]  [yellow]{record.status.value}[/yellow]\n"
            f"digest       {record.digest}\n"
            f"signature    {verdict}\n"
            f"capabilities {capabilities}\n"
            f"{escape(next_step)}",
            highlight=False,
        )

    emit(_row(record) | {"verified": result.ok, "error": result.error}, as_json, render)
    if not result.ok:  # the fault's family code, as loading it would exit (README's table)
        raise typer.Exit(result.exit_code)


@app.command("verify")
def verify(
    ref: Annotated[str | None, typer.Argument(help="NAME[@VER]; everything if omitted.")] = None,
    registry: RegistryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check digests and signatures; exits non-zero if anything fails."""
    results = Registry(registry).verify(ref)

    def render() -> None:
        table = Table(title="verification")
        for col in ("name", "version", "status", "result", "digest"):
            table.add_column(col)
        for r in results:
            verdict = "[green]ok[/green]" if r.ok else f"[red]FAILED[/red] {escape(r.error or '')}"
            table.add_row(plain(r.name), plain(r.version), r.status.value, verdict, r.digest[:12])
        console.print(table)

    rows = [r.model_dump(mode="json") for r in results]
    emit(rows, as_json, render)
    failed = [r for r in results if not r.ok]
    if failed:  # the first fault's family code, as `toolsmith run` of that version exits
        raise typer.Exit(failed[0].exit_code)


@app.command("yank")
def yank(
    ref: PinArg,
    reason: Annotated[str, typer.Option("--reason", help="Why it was pulled.")],
    key: KeyOpt = DEFAULT_KEY,
    registry: RegistryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Hide a version from ranges and bare names; exact pins still resolve it."""
    r = Registry(registry).yank(ref, reason, KeyStore().load(key))
    emit(_row(r), as_json, lambda: console.print(plain(f"yanked {r.name}@{r.version}: {reason}")))


@app.command("unyank")
def unyank(
    ref: PinArg,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why it is back (kept in the audit log).")
    ] = None,
    key: KeyOpt = DEFAULT_KEY,
    registry: RegistryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Make a yanked version resolvable by ranges again."""
    r = Registry(registry).unyank(ref, reason, KeyStore().load(key))
    emit(_row(r), as_json, lambda: console.print(plain(f"unyanked {r.name}@{r.version}")))


@app.command("init")
def init(
    timestamp_days: Annotated[
        int | None,
        typer.Option(
            "--timestamp-days",
            min=1,
            help="How long a timestamp stays valid (a served registry: short, with `refresh`).",
        ),
    ] = None,
    registry: RegistryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a registry held by your default key, trusted by you from creation."""
    reg = Registry(registry)
    days = {"timestamp": timestamp_days} if timestamp_days else None
    fp = reg.init(expiry_days=days)
    emit(
        {"registry": reg.location, "fingerprint": fp},
        as_json,
        lambda: console.print(plain(f"created {reg.location}\nroot fingerprint {fp}")),
    )


@app.command("fingerprint")
def fingerprint(registry: RegistryOpt = None, as_json: JsonOpt = False) -> None:
    """The registry's root fingerprint (sha256 of its first root), to give to its consumers."""
    reg = Registry(registry)
    fp = reg.fingerprint()
    emit({"registry": reg.location, "fingerprint": fp}, as_json, lambda: console.print(fp))


@app.command("trust")
def trust(
    location: Annotated[str, typer.Argument(help="Registry directory or http(s) URL.")],
    root: Annotated[
        str, typer.Option("--root", help="The root fingerprint (sha256) its maintainer gave you.")
    ],
    as_json: JsonOpt = False,
) -> None:
    """Pin a registry's root for your user, if its fingerprint is the one you were given."""
    fp = trust_registry(location, root)
    emit(
        {"registry": location, "fingerprint": fp},
        as_json,
        lambda: console.print(plain(f"trusting {location} (root {fp})")),
    )


@app.command("approvers")
def approvers(
    key_ids: Annotated[
        list[str] | None, typer.Argument(help="Key ids whose approvals you accept.")
    ] = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="Accept the registry's approvers role again.")
    ] = False,
    registry: RegistryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Choose whose approvals you accept for this registry (kept in your state, not the
    registry); with no key ids, show the current choice."""
    reg = Registry(registry)
    if clear:
        reg.trust_approvers(None)
    elif key_ids:
        reg.trust_approvers(key_ids)
    chosen = reg.accepted_approvers()
    emit(
        {"registry": reg.location, "approvers": chosen},
        as_json,
        lambda: console.print(
            plain(
                f"approvals accepted from: {', '.join(chosen)}"
                if chosen is not None
                else "approvals accepted from the registry's approvers role"
            )
        ),
    )


@app.command("refresh")
def refresh(
    days: Annotated[
        int | None, typer.Option("--days", min=1, help="Validity of the new timestamp.")
    ] = None,
    registry: RegistryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-sign the timestamp so consumers see the registry as fresh (needs the timestamp key)."""
    version = Registry(registry).refresh(days)
    emit(
        {"timestamp_version": version},
        as_json,
        lambda: console.print(f"timestamp version {version} signed"),
    )


@app.command("gc")
def gc(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only report what would be removed.")
    ] = False,
    registry: RegistryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove target files no metadata names and leftovers of killed writes."""
    report = Registry(registry).gc(dry_run=dry_run)

    def render() -> None:
        verb = "would remove" if dry_run else "removed"
        console.print(
            f"{verb} {len(report.unreferenced)} unreferenced file(s), "
            f"{report.freed_bytes:,} bytes; {report.kept} file(s) in use"
            + (f"; {report.leftovers} leftover temporary file(s)" if report.leftovers else "")
        )

    emit(report, as_json, render)


@app.command("export")
def export(
    ref: RefArg,
    fmt: Annotated[ExportFormat, typer.Option("--format", help="Definition format.")] = (
        ExportFormat.JSON
    ),
    strict: Annotated[
        bool, typer.Option("--strict", help="OpenAI strict mode (Structured Outputs).")
    ] = False,
    registry: RegistryOpt = None,
) -> None:
    """Print a verified tool's definition as OpenAI, MCP or ToolSpec JSON."""
    tool = Registry(registry).resolve(ref)
    definition = export_spec(tool.spec, fmt, strict=strict)
    typer.echo(json.dumps(definition, indent=2, sort_keys=True))
