"""`toolsmith keys`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from toolsmith.cli._common import JsonOpt, RegistryOpt, console, emit, escape, plain
from toolsmith.errors import UsageError
from toolsmith.keys import DEFAULT_KEY, KeyStore
from toolsmith.registry import KeyRole, Registry

app = typer.Typer(help="Manage signing keys and the registry's trust store.", no_args_is_help=True)


@app.command("generate")
def generate(
    name: Annotated[str, typer.Option("--name", help="Key name.")] = DEFAULT_KEY,
    as_json: JsonOpt = False,
) -> None:
    """Create an Ed25519 signing key (private part mode 0600)."""
    info = KeyStore().generate(name)
    emit(
        {"name": info.name, "key_id": info.key_id, "public_key": str(info.public_path)},
        as_json,
        lambda: console.print(
            f"generated key [bold]{escape(info.name)}[/bold] {info.key_id}\n"
            + escape(f"private {info.private_path}\npublic  {info.public_path}"),
            highlight=False,
        ),
    )


@app.command("list")
def list_(registry: RegistryOpt = None, as_json: JsonOpt = False) -> None:
    """Local signing keys and the keys the registry's signed metadata lists, by role."""
    local = KeyStore().list()
    reg = Registry(registry)
    trusted = reg.trusted_keys() if reg.trusted() else []
    roles = {k.key_id: k.roles for k in trusted}
    data = {
        "local": [
            {"name": k.name, "key_id": k.key_id, "roles": roles.get(k.key_id, [])} for k in local
        ],
        "trusted": [k.model_dump() for k in trusted],
        "threshold": reg.threshold() if trusted else None,
    }

    def render() -> None:
        mine = Table(title="local signing keys")
        for col in ("name", "key id", "roles in the registry"):
            mine.add_column(col)
        for k in local:
            mine.add_row(plain(k.name), k.key_id, ", ".join(roles.get(k.key_id, [])) or "-")
        theirs = Table(title=f"registry keys (publisher threshold {data['threshold']})")
        for col in ("name", "key id", "roles"):
            theirs.add_column(col)
        for t in trusted:
            theirs.add_row(plain(t.name), t.key_id, ", ".join(t.roles))
        console.print(mine, theirs)

    emit(data, as_json, render)


@app.command("trust")
def trust(
    pubkey_file: Annotated[Path, typer.Argument(help="A .pub file written by `keys generate`.")],
    name: Annotated[str, typer.Option("--name", help="Label for the key.")] = "",
    role: Annotated[
        KeyRole,
        typer.Option("--role", help="publisher signs versions; approver signs approvals."),
    ] = KeyRole.PUBLISHER,
    registry: RegistryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a public key to the registry in a role: a publisher by a new root version (signed
    with the root key), an approver by a new targets version (signed with a publisher key)."""
    try:
        pem = pubkey_file.read_bytes()
    except OSError as e:
        raise UsageError(
            f"cannot read {pubkey_file}: {e.strerror}", hint="check the path"
        ) from None
    kid = Registry(registry).trust_key(pem, name or pubkey_file.stem, role)
    emit(
        {"key_id": kid, "role": role.value},
        as_json,
        lambda: console.print(f"trusted {kid} as {role.value}", highlight=False),
    )


@app.command("untrust")
def untrust(
    key_id: Annotated[str, typer.Argument(help="Key id, or a unique prefix of 8+ characters.")],
    registry: RegistryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove a publisher or approver key from the registry."""
    kid = Registry(registry).untrust_key(key_id)
    emit({"key_id": kid}, as_json, lambda: console.print(f"untrusted {kid}", highlight=False))


@app.command("threshold")
def threshold(
    count: Annotated[int, typer.Argument(help="Distinct publisher signatures a version needs.")],
    registry: RegistryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Set how many publisher keys must sign each version (a new root version)."""
    Registry(registry).set_threshold(count)
    emit({"threshold": count}, as_json, lambda: console.print(f"threshold set to {count}"))
