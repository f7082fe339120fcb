"""`toolsmith approve` and `toolsmith reject`: a person's signed decision on a pending version."""

from __future__ import annotations

from typing import Annotated

import typer

from toolsmith.cli._common import JsonOpt, RegistryOpt, console, emit, plain
from toolsmith.keys import DEFAULT_KEY, KeyStore
from toolsmith.registry import Registry, VersionRecord

PinArg = Annotated[str, typer.Argument(help="NAME@VERSION of a pending version.")]
KeyOpt = Annotated[
    str, typer.Option("--key", help="Local signing key to sign with; trusted as an approver.")
]


def _row(r: VersionRecord) -> dict[str, str | None]:
    return {
        "name": r.name,
        "version": r.version,
        "digest": r.digest,
        "status": r.status.value,
        "approval": r.approval,
    }


def approve(
    ref: PinArg,
    reason: Annotated[str | None, typer.Option("--reason", help="Why it is acceptable.")] = None,
    key: KeyOpt = DEFAULT_KEY,
    registry: RegistryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve a pending version: sign the decision, and agents can load it."""
    r = Registry(registry).approve(ref, KeyStore().load(key), reason)
    emit(
        _row(r),
        as_json,
        lambda: console.print(
            plain(f"approved {r.name}@{r.version} (signed with key {key!r})"), highlight=False
        ),
    )


def reject(
    ref: PinArg,
    reason: Annotated[str, typer.Option("--reason", help="Why it is refused.")],
    key: KeyOpt = DEFAULT_KEY,
    registry: RegistryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Reject a pending version: sign the decision; it can never be loaded."""
    r = Registry(registry).reject(ref, KeyStore().load(key), reason)
    emit(
        _row(r),
        as_json,
        lambda: console.print(plain(f"rejected {r.name}@{r.version}: {reason}"), highlight=False),
    )
