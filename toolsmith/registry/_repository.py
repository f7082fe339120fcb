"""Writing the registry as a TUF repository, with python-tuf's Metadata API.

Layout (a static TUF repository with consistent snapshots, servable by any web server)::

    metadata/1.root.json, 2.root.json, ... root.json   root: keys and thresholds of every role
    metadata/N.targets.json                             each version's statement and parts
    metadata/N.approvers.json                           delegated role: signed decisions
    metadata/N.snapshot.json                            versions of targets and approvers
    metadata/timestamp.json                             version of snapshot (the commit point)
    targets/tools/NAME/VERSION/SHA256.PART              statement (DSSE) and its four parts
    targets/approvals/NAME/VERSION/SHA256.decision      an approver's signed decision (DSSE)

A change writes its new versioned metadata first, then hands the new timestamp version to
``before_commit`` (the registry appends its audit entry there), then replaces ``timestamp.json``:
readers see the registry as it was until that last rename, and a change is never in effect
without its audit entry (a kill after the entry and before the rename leaves an entry for a
change that never took effect, which ``audit verify`` does not mind). A root change writes the
next ``N.root.json`` after the audit entry, since clients look for it directly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization import DeserializationError
from tuf.api.serialization.json import JSONSerializer

from toolsmith.errors import CorruptRegistryError, SignatureError
from toolsmith.registry._storage import RepoDir
from toolsmith.signing import SigningKey

TOP_ROLES = ("root", "targets", "snapshot", "timestamp")
APPROVERS = "approvers"
EXPIRY_FIELD = "x-toolsmith-expiry-days"
# A local registry left alone for a year still loads; a served one picks a short window.
DEFAULT_EXPIRY_DAYS = {"root": 3650, "targets": 3650, "snapshot": 730, "timestamp": 730}
MAX_METADATA = {"root": 512_000, "timestamp": 16_384, "snapshot": 2_000_000, "targets": 5_000_000}
_SERIALIZER = JSONSerializer(compact=True)


def metadata_cap(role: str) -> int:
    return MAX_METADATA.get(role, MAX_METADATA["targets"])


def target_file_path(path: str, sha256: str) -> str:
    """Where a target is stored: its hash prefixes its file name (TUF consistent snapshots)."""
    head, _, base = path.rpartition("/")
    return f"targets/{head}/{sha256}.{base}" if head else f"targets/{sha256}.{base}"


@dataclass
class RepoState:
    """The registry's current signed metadata, as the writer edits it."""

    root: Metadata[Root]
    targets: Metadata[Targets]
    snapshot: Metadata[Snapshot]
    timestamp: Metadata[Timestamp]
    approvers: Metadata[Targets] | None = None
    changed: set[str] = field(default_factory=set)

    def add_target(self, info: TargetFile) -> None:
        """List a tool version's target (a new one, or a changed description of one)."""
        self.targets.signed.targets[info.path] = info
        self.changed.add("targets")

    def expiry_days(self, role: str) -> int:
        days = self.root.signed.unrecognized_fields.get(EXPIRY_FIELD, {})
        value = days.get(role) if isinstance(days, dict) else None
        return value if isinstance(value, int) and value > 0 else DEFAULT_EXPIRY_DAYS[role]


def _expires(days: int) -> datetime:
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0)


def role_signers(
    root: Root | Targets, role: str, available: Iterable[SigningKey]
) -> list[SigningKey]:
    """Enough of ``available`` to meet ``role``'s threshold as ``root`` (or, for a delegated
    role, its delegating targets) defines it; else ``SignatureError`` naming the role."""
    r = root.get_delegated_role(role)
    chosen: dict[str, SigningKey] = {}
    for k in available:
        if k.key_id in r.keyids:
            chosen.setdefault(k.key_id, k)
    if len(chosen) < r.threshold:
        raise SignatureError(
            f"the {role} role needs {r.threshold} signature(s) from its keys "
            f"({', '.join(k[:16] for k in r.keyids) or 'none listed'}); "
            f"{len(chosen)} of them are available here",
            hint="sign with the role's keys (--key NAME, or keep them in the key store), or "
            "change the role's keys with `toolsmith keys trust`",
        )
    return list(chosen.values())


def _sign(md: Metadata[Any], signers: Sequence[SigningKey]) -> None:
    md.signatures.clear()
    for k in signers:
        md.sign(k.signer, append=True)


class Repository:
    """The registry directory's TUF metadata: create it, read it, commit a change."""

    def __init__(self, repo: RepoDir) -> None:
        self.dir = repo

    def exists(self) -> bool:
        return self.dir.read("metadata/1.root.json", metadata_cap("root")) is not None

    def root_bytes(self, version: int | None = None) -> bytes | None:
        name = "root.json" if version is None else f"{version}.root.json"
        return self.dir.read(f"metadata/{name}", metadata_cap("root"))

    def _read(self, role: str, version: int | None) -> Metadata[Any]:
        name = f"{role}.json" if version is None else f"{version}.{role}.json"
        data = self.dir.read(f"metadata/{name}", metadata_cap(role))
        if data is None:
            raise CorruptRegistryError(
                f"{self.dir.root}/metadata/{name} is missing",
                hint="restore the registry directory from a copy",
            )
        try:
            return Metadata.from_bytes(data)
        except DeserializationError as e:
            raise CorruptRegistryError(
                f"{self.dir.root}/metadata/{name} is not TUF metadata: {e}",
                hint="restore the registry directory from a copy",
            ) from None

    def load(self) -> RepoState:
        """The current metadata, unverified: callers verify the registry through their pinned
        root first (``Registry`` does, under the lock), then edit what this returns."""
        timestamp = self._read("timestamp", None)
        snapshot = self._read("snapshot", timestamp.signed.snapshot_meta.version)
        targets = self._read("targets", snapshot.signed.meta["targets.json"].version)
        approvers_meta = snapshot.signed.meta.get(f"{APPROVERS}.json")
        approvers = (
            self._read(APPROVERS, approvers_meta.version) if approvers_meta is not None else None
        )
        root = self._read("root", None)
        return RepoState(root, targets, snapshot, timestamp, approvers)

    def create(
        self,
        keys: Mapping[str, Sequence[SigningKey]],
        *,
        expiry_days: Mapping[str, int] | None = None,
        before_commit: Callable[[int], None],
    ) -> bytes:
        """A new repository whose roles are held by ``keys`` (role -> keys, threshold 1 each);
        returns the bytes of root version 1 (what a consumer pins)."""
        days = {**DEFAULT_EXPIRY_DAYS, **(expiry_days or {})}
        root = Root(
            expires=_expires(days["root"]),
            consistent_snapshot=True,
            unrecognized_fields={EXPIRY_FIELD: days},
        )
        for role in TOP_ROLES:
            for k in keys[role]:
                root.add_key(k.tuf_key, role)
        root_md = Metadata(root)
        _sign(root_md, keys["root"])
        targets = Metadata(Targets(expires=_expires(days["targets"])))
        targets.signed.delegations = Delegations(
            keys={},
            roles={
                APPROVERS: DelegatedRole(
                    APPROVERS, [], 1, terminating=True, paths=["approvals/*/*"]
                )
            },
        )
        state = RepoState(
            root_md,
            targets,
            Metadata(Snapshot(expires=_expires(days["snapshot"]))),
            Metadata(Timestamp(expires=_expires(days["timestamp"]))),
        )
        data = root_md.to_bytes(_SERIALIZER)
        before_commit(1)
        self.dir.write("metadata/1.root.json", data)
        self.dir.write("metadata/root.json", data)
        self._write_versioned(state, "targets", keys["targets"], version=1)
        self._write_snapshot_timestamp(state, keys["snapshot"], keys["timestamp"], first=True)
        return data

    def put_target(
        self, path: str, data: bytes, custom: dict[str, Any] | None = None
    ) -> TargetFile:
        """Store a target's bytes (content-addressed, so an existing file is left alone) and
        return its TUF description."""
        info = TargetFile.from_data(path, data, ["sha256"])
        if custom is not None:
            info.unrecognized_fields["custom"] = custom
        where = target_file_path(path, info.hashes["sha256"])
        existing = self.dir.read(where, len(data))
        if existing is None or hashlib.sha256(existing).hexdigest() != info.hashes["sha256"]:
            self.dir.write(where, data)
        return info

    def commit(
        self,
        state: RepoState,
        signers: Mapping[str, Sequence[SigningKey]],
        *,
        before_commit: Callable[[int], None],
    ) -> None:
        """Sign every role in ``state.changed`` (one version up) with ``signers[role]``, then a
        new snapshot and timestamp; write them in commit order (see the module docstring)."""
        if "root" in state.changed:
            root = state.root
            root.signed.version += 1
            root.signed.expires = _expires(state.expiry_days("root"))
            # Rotation rule (TUF 5.3.4): the new root is signed by the old root's threshold and
            # by its own; ``signers["root"]`` covers both.
            _sign(root, signers["root"])
            data = root.to_bytes(_SERIALIZER)
            before_commit(state.timestamp.signed.version + 1)
            self.dir.write(f"metadata/{root.signed.version}.root.json", data)
            self.dir.write("metadata/root.json", data)
        for role in ("targets", APPROVERS):
            if role in state.changed:
                self._write_versioned(state, role, signers[role])
        if "root" not in state.changed:
            self._write_snapshot_timestamp(
                state, signers["snapshot"], signers["timestamp"], before_commit=before_commit
            )
        else:
            self._write_snapshot_timestamp(state, signers["snapshot"], signers["timestamp"])
        state.changed.clear()

    def _write_versioned(
        self,
        state: RepoState,
        role: str,
        signers: Sequence[SigningKey],
        *,
        version: int | None = None,
    ) -> None:
        md = state.targets if role == "targets" else state.approvers
        assert md is not None
        if version is None:
            new_role = f"{role}.json" not in state.snapshot.signed.meta
            version = 1 if new_role else md.signed.version + 1
        md.signed.version = version
        md.signed.expires = _expires(state.expiry_days("targets"))
        _sign(md, signers)
        self.dir.write(f"metadata/{md.signed.version}.{role}.json", md.to_bytes(_SERIALIZER))
        state.snapshot.signed.meta[f"{role}.json"] = MetaFile(version=md.signed.version)

    def _write_snapshot_timestamp(
        self,
        state: RepoState,
        snapshot_signers: Sequence[SigningKey],
        timestamp_signers: Sequence[SigningKey],
        *,
        first: bool = False,
        before_commit: Callable[[int], None] | None = None,
    ) -> None:
        snap, ts = state.snapshot, state.timestamp
        if not first:
            snap.signed.version += 1
            ts.signed.version += 1
        snap.signed.expires = _expires(state.expiry_days("snapshot"))
        _sign(snap, snapshot_signers)
        self.dir.write(f"metadata/{snap.signed.version}.snapshot.json", snap.to_bytes(_SERIALIZER))
        self.refresh_timestamp(state, timestamp_signers, before_commit=before_commit, bump=False)

    def refresh_timestamp(
        self,
        state: RepoState,
        signers: Sequence[SigningKey],
        *,
        before_commit: Callable[[int], None] | None = None,
        bump: bool = True,
        expiry_days: int | None = None,
    ) -> None:
        """Sign a new timestamp (the same snapshot, a fresh expiry) and commit it."""
        ts = state.timestamp
        if bump:
            ts.signed.version += 1
        ts.signed.snapshot_meta = MetaFile(version=state.snapshot.signed.version)
        days = expiry_days if expiry_days is not None else state.expiry_days("timestamp")
        ts.signed.expires = _expires(days)
        _sign(ts, signers)
        data = ts.to_bytes(_SERIALIZER)
        if before_commit is not None:
            before_commit(ts.signed.version)
        self.dir.write("metadata/timestamp.json", data)
