"""Writing the registry as a TUF repository, with python-tuf's Metadata API.

Layout (a static TUF repository with consistent snapshots, servable by any web server)::

    metadata/1.root.json, 2.root.json, ... root.json   root: keys and thresholds of every role
    metadata/N.targets.json                             delegations to approvers and tools
    metadata/N.approvers.json                           delegated role: signed decisions
    metadata/N.tools.json                               delegated role: the hashed bins
    metadata/N.tools-bin-XX.json                        one bin: its tools' versions and parts
    metadata/N.snapshot.json                            versions of every targets role
    metadata/timestamp.json                             version of snapshot (the commit point)
    targets/tools/NAME/VERSION/SHA256.PART              statement (DSSE) and its four parts
    targets/approvals/NAME/VERSION/SHA256.decision      an approver's signed decision (DSSE)

Hashed bins (TUF's hashed-bin delegation, PEP 458; python-tuf's succinct form, TAP 15): the
top-level targets delegates ``approvals/*/*`` to ``approvers`` and ``tools/*/*/*`` to ``tools``,
both terminating, and ``tools`` delegates to ``2**bits`` bins with ``succinct_roles``
(``bits = BIN_BITS``, fixed at creation, recorded in ``tools``' ``bit_length``). The two paths do
not overlap and both roles are terminating, so neither can speak for the other's targets: a bin
cannot list an approval, the approvers cannot list a version, and a path no role claims is
nobody's. The publishers (the root's targets keys and threshold) sign targets, ``tools`` and every
bin; the delegations name those same keys (kept equal when publishers change), so publishing
needs no other key than before. One tool's targets all live in one bin: the bin SuccinctRoles
gives the path ``tools/NAME`` (the tool's directory) rather than each file's own path, so a
publish rewrites one bin (plus snapshot and timestamp), and a consumer resolving ``NAME@RANGE``
fetches one bin. (A generic TUF client asking for a file path would look in that path's own bin;
toolsmith's client looks up the tool's bin and refuses any target found in a bin not its tool's.)
A bin exists once a tool lands in it: the snapshot lists the bins there are, and a bin once
listed can never leave a snapshot (the consumer refuses a snapshot missing a role it trusted).

Registries made before hashed bins (the "flat" layout: every version in the top-level targets,
no ``tools`` role) keep loading and keep being edited in their layout; only new registries get
bins. The flat targets metadata reaches its 5 MB cap at about 3,300 versions (bench/README.md).

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
    SuccinctRoles,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization import DeserializationError
from tuf.api.serialization.json import JSONSerializer

from toolsmith.errors import CorruptRegistryError, RegistryError, SignatureError
from toolsmith.registry._storage import RegistryStorage
from toolsmith.signing import SigningKey

TOP_ROLES = ("root", "targets", "snapshot", "timestamp")
APPROVERS = "approvers"
TOOLS = "tools"
BIN_PREFIX = "tools-bin"
# 256 bins: at 1.5 kB of metadata per version, 5,000 versions make bins of ~30 kB (a publish
# rewrites one, a consumer fetches one), the snapshot lists at most 256 bins (~8 kB), and a first
# `list` over HTTP makes at most 256 requests. One tool name can hold ~3,300 versions (its bin's
# cap), the registry about 256 times that.
BIN_BITS = 8
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


def tool_name(path: str) -> str | None:
    """The tool a ``tools/NAME/VERSION/PART`` target belongs to (None: not a tool target)."""
    parts = path.split("/")
    return parts[1] if len(parts) == 4 and parts[0] == "tools" and parts[1] else None


def bin_of(bins: SuccinctRoles, name: str) -> str:
    """The bin holding every target of tool ``name`` (see the module docstring)."""
    return bins.get_role_for_target(f"tools/{name}")


@dataclass
class RepoState:
    """The registry's current signed metadata, as the writer edits it. ``tools`` is None for a
    flat registry; bins are read on first use (``read_bin``) and kept in ``bins``."""

    root: Metadata[Root]
    targets: Metadata[Targets]
    snapshot: Metadata[Snapshot]
    timestamp: Metadata[Timestamp]
    approvers: Metadata[Targets] | None = None
    tools: Metadata[Targets] | None = None
    bins: dict[str, Metadata[Targets]] = field(default_factory=dict)
    read_bin: Callable[[str], Metadata[Targets]] | None = None
    changed: set[str] = field(default_factory=set)

    @property
    def succinct(self) -> SuccinctRoles | None:
        if self.tools is None:
            return None
        delegations = self.tools.signed.delegations
        return delegations.succinct_roles if delegations is not None else None

    def metadata(self, role: str) -> Metadata[Targets]:
        """A targets-type role's metadata (``targets``, approvers, tools or a bin)."""
        md = {"targets": self.targets, APPROVERS: self.approvers, TOOLS: self.tools}.get(role)
        if md is None:
            md = self.bins.get(role)
        assert md is not None, role
        return md

    def holder(self, name: str) -> tuple[str, Metadata[Targets]]:
        """The role whose metadata lists tool ``name``'s targets, and that metadata: the
        top-level targets of a flat registry, else the tool's bin (empty if not made yet)."""
        succinct = self.succinct
        if succinct is None:
            return "targets", self.targets
        role = bin_of(succinct, name)
        if role not in self.bins:
            if f"{role}.json" in self.snapshot.signed.meta:
                assert self.read_bin is not None
                self.bins[role] = self.read_bin(role)
            else:
                self.bins[role] = Metadata(Targets())
        return role, self.bins[role]

    def tool_targets(self, name: str) -> dict[str, TargetFile]:
        """Tool ``name``'s targets (by path), as the writer may edit them (mark the holder
        changed with ``touch``)."""
        _, md = self.holder(name)
        prefix = f"tools/{name}/"
        return {p: t for p, t in md.signed.targets.items() if p.startswith(prefix)}

    def touch(self, name: str) -> None:
        """Tool ``name``'s targets changed: its holder is signed again at commit."""
        self.changed.add(self.holder(name)[0])

    def add_target(self, info: TargetFile) -> None:
        """List a tool version's target (a new one, or a changed description of one)."""
        name = tool_name(info.path)
        assert name is not None, info.path
        role, md = self.holder(name)
        md.signed.targets[info.path] = info
        self.changed.add(role)

    def all_tool_targets(self) -> list[TargetFile]:
        """Every tool target of the registry (reads every bin)."""
        if self.succinct is None:
            return [t for p, t in self.targets.signed.targets.items() if tool_name(p)]
        for meta in self.snapshot.signed.meta:
            role = meta.removesuffix(".json")
            if self.succinct.is_delegated_role(role) and role not in self.bins:
                assert self.read_bin is not None
                self.bins[role] = self.read_bin(role)
        return [t for md in self.bins.values() for t in md.signed.targets.values()]

    def sync_publishers(self) -> None:
        """Make the tools and bins delegations name the root's publishers (targets keys and
        threshold) again after they changed; every bin is signed again, so none stays signed
        only by a removed key or below a raised threshold."""
        succinct = self.succinct
        if succinct is None:
            return
        assert self.tools is not None
        publishers = self.root.signed.roles["targets"]
        keys = {k: self.root.signed.keys[k] for k in publishers.keyids}
        top = self.targets.signed.delegations
        assert top is not None and top.roles is not None
        tools_role = top.roles[TOOLS]
        tools_role.keyids, tools_role.threshold = list(keys), publishers.threshold
        named = {k for role in top.roles.values() for k in role.keyids}
        top.keys = {k: v for k, v in {**top.keys, **keys}.items() if k in named}
        succinct.keyids, succinct.threshold = list(keys), publishers.threshold
        assert self.tools.signed.delegations is not None
        self.tools.signed.delegations.keys = dict(keys)
        self.all_tool_targets()
        listed = (r for r in self.bins if f"{r}.json" in self.snapshot.signed.meta)
        self.changed |= {"targets", TOOLS, *listed}

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


def _capped(role: str, md: Metadata[Any]) -> bytes:
    """``md``'s bytes, refused before anything is committed when over the role's cap: every
    reader would refuse them, and the registry could not be edited back."""
    data = md.to_bytes(_SERIALIZER)
    if len(data) > metadata_cap(role):
        raise RegistryError(
            f"the new {role} metadata would be {len(data):,} bytes, over its "
            f"{metadata_cap(role):,}-byte cap; nothing was changed",
            hint="a registry made before hashed bins keeps every version in one targets "
            "metadata: publish into a new registry (new registries get hashed bins)",
        )
    return data


class Repository:
    """The registry's TUF metadata, in its storage: create it, read it, commit a change."""

    def __init__(self, repo: RegistryStorage) -> None:
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
                f"{self.dir.location}/metadata/{name} is missing",
                hint="restore the registry directory from a copy",
            )
        try:
            return Metadata.from_bytes(data)
        except DeserializationError as e:
            raise CorruptRegistryError(
                f"{self.dir.location}/metadata/{name} is not TUF metadata: {e}",
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
        tools_meta = snapshot.signed.meta.get(f"{TOOLS}.json")
        tools = self._read(TOOLS, tools_meta.version) if tools_meta is not None else None
        root = self._read("root", None)

        def read_bin(role: str) -> Metadata[Targets]:
            return self._read(role, snapshot.signed.meta[f"{role}.json"].version)

        return RepoState(
            root, targets, snapshot, timestamp, approvers, tools=tools, read_bin=read_bin
        )

    def create(
        self,
        keys: Mapping[str, Sequence[SigningKey]],
        *,
        expiry_days: Mapping[str, int] | None = None,
        bin_bits: int | None = BIN_BITS,
        before_commit: Callable[[int], None],
    ) -> bytes:
        """A new repository whose roles are held by ``keys`` (role -> keys, threshold 1 each);
        returns the bytes of root version 1 (what a consumer pins). ``bin_bits``: ``2**bin_bits``
        hashed bins (1-32), or None for the flat layout of registries made before bins."""
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
        roles = {
            APPROVERS: DelegatedRole(APPROVERS, [], 1, terminating=True, paths=["approvals/*/*"])
        }
        tools = None
        if bin_bits is not None:
            publishers = {k.key_id: k.tuf_key for k in keys["targets"]}
            roles[TOOLS] = DelegatedRole(TOOLS, list(publishers), 1, True, paths=["tools/*/*/*"])
            tools = Metadata(Targets(expires=_expires(days["targets"])))
            tools.signed.delegations = Delegations(
                keys=dict(publishers),
                succinct_roles=SuccinctRoles(list(publishers), 1, bin_bits, BIN_PREFIX),
            )
        targets.signed.delegations = Delegations(
            keys=dict(publishers) if bin_bits is not None else {}, roles=roles
        )
        state = RepoState(
            root_md,
            targets,
            Metadata(Snapshot(expires=_expires(days["snapshot"]))),
            Metadata(Timestamp(expires=_expires(days["timestamp"]))),
            tools=tools,
        )
        data = root_md.to_bytes(_SERIALIZER)
        before_commit(1)
        self.dir.write("metadata/1.root.json", data)
        self.dir.write("metadata/root.json", data)
        self._write_versioned(state, "targets", keys["targets"], version=1)
        if tools is not None:
            self._write_versioned(state, TOOLS, keys["targets"], version=1)
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
        # Tools and the bins are the publishers' (see the module docstring).
        for role in ("targets", APPROVERS, TOOLS, *sorted(state.changed & set(state.bins))):
            if role in state.changed:
                self._write_versioned(
                    state, role, signers[role if role == APPROVERS else "targets"]
                )
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
        md = state.metadata(role)
        if version is None:
            new_role = f"{role}.json" not in state.snapshot.signed.meta
            version = 1 if new_role else md.signed.version + 1
        md.signed.version = version
        md.signed.expires = _expires(state.expiry_days("targets"))
        _sign(md, signers)
        self.dir.write(f"metadata/{md.signed.version}.{role}.json", _capped(role, md))
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
        self.dir.write(f"metadata/{snap.signed.version}.snapshot.json", _capped("snapshot", snap))
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
