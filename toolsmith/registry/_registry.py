"""The registry: a TUF repository of signed tool versions, read through the consumer's pinned root.

Reading: every call goes through a ``View``, the registry state this consumer's ngclient verified
from its pinned root (``_client``). Resolving reads the version's statement and parts, and hands
the bytes to the pure verifier (``_verify``), which is the only maker of ``VerifiedTool``.
Loading applies the consumer's own capability policy and approver trust and records the decision
in the consumer's audit log (``$TOOLSMITH_STATE/audit.jsonl``), never in the registry: a consumer
does not write what it reads.

Writing (local registries only): publish, yank, unyank, approve, reject, key and threshold
changes, refresh and gc share one path (``_edit``): take the registry lock, verify the registry
against this user's pinned state (so a rolled-back or frozen directory is refused before it is
edited), change the metadata, sign each changed role with the keys that hold it, and commit with
the registry's audit entry written before the commit point (``_repository``).

Roles: root (offline: keys and thresholds of every role), targets (publishers: the approvers and
tools delegations), tools and its hashed bins (publishers: versions and yanks, one bin per tool
name; ``_repository``), snapshot and timestamp (online: freshness and consistency), approvers
(delegated: signed decisions on pending versions). A flat registry, made before bins, keeps
versions and yanks in targets. Resolving reads only the tool's bin; listing reads every bin. A
registry created here holds every top-level role with the creator's key and is trusted by this
user from creation.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import getpass
import os
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from semantic_version import SimpleSpec, Version
from tuf.api.metadata import Key, Metadata, TargetFile, Targets

from toolsmith import signing
from toolsmith.audit import AUDIT_FILE, AuditEntry, AuditLog
from toolsmith.errors import (
    ApprovalRequiredError,
    AuditError,
    CorruptRegistryError,
    FreezeError,
    PublishRefusedError,
    SignatureError,
    ToolNotFoundError,
    ToolsmithError,
    TrustError,
    UsageError,
    VersionConflictError,
)
from toolsmith.keys import KeyStore, default_signing_key
from toolsmith.log import bound, get_logger
from toolsmith.policy import CapabilityPolicy, load_policy
from toolsmith.registry import _client, _verify
from toolsmith.registry._models import (
    GarbageReport,
    KeyRole,
    SearchHit,
    TrustedKey,
    VerifyResult,
    VersionRecord,
    VersionStatus,
)
from toolsmith.registry._repository import (
    APPROVERS,
    BIN_BITS,
    TOP_ROLES,
    Repository,
    RepoState,
    role_signers,
    target_file_path,
)
from toolsmith.registry._search import SearchIndex
from toolsmith.registry._storage import RegistryStorage, RepoDir
from toolsmith.report import Provenance, TestReport
from toolsmith.settings import Settings
from toolsmith.signing import Decision, SigningKey, TrustPolicy
from toolsmith.spec import NAME_RE, ToolSpec, canonical_json
from toolsmith.verified import VerifiedTool

if TYPE_CHECKING:
    from toolsmith.loader import RuntimeName, Tool

_log = get_logger(__name__)
Bump = Literal["patch", "minor", "major"]
NAME_FIELD = "x-toolsmith-name"


def parse_ref(ref: str) -> tuple[str, Version | SimpleSpec | None]:
    """``name``, ``name@1.2.3`` (exact pin) or ``name@<range>`` (``^1.2``, ``~1.2``, ``>=1,<2``)."""
    name, sep, constraint = ref.partition("@")
    if not NAME_RE.fullmatch(name) or len(name) > 64:
        raise UsageError(
            f"invalid tool reference {ref!r}: {name!r} is not a tool name",
            hint="tool names are snake_case identifiers, e.g. parse_date or parse_date@^1.2",
        )
    if not sep:
        return name, None
    try:
        return name, Version(constraint)
    except ValueError:
        pass
    try:
        return name, SimpleSpec(constraint)
    except ValueError:
        raise UsageError(
            f"invalid version constraint {constraint!r} in {ref!r}",
            hint="use an exact version (1.2.3) or a range (^1.2, ~1.2, >=1,<2)",
        ) from None


def report_bytes(report: TestReport) -> bytes:
    """Stored report: computed fields (``passed``) are left out, they are recomputed on load."""
    return canonical_json(
        report.model_dump(mode="json", exclude=set(type(report).model_computed_fields))
    )


def _tool_path(name: str, version: str, part: str) -> str:
    return f"tools/{name}/{version}/{part}"


def _approval_path(name: str, version: str) -> str:
    return f"approvals/{name}/{version}"


def consumer_audit() -> AuditLog:
    """This consumer's audit log (loads it allowed or refused): in its state dir, not in any
    registry. Damage is sealed with a break entry and recording goes on (``AuditLog``):
    refusing every later load, or loading unrecorded, would both be worse for an agent."""
    return AuditLog(_client.state_root() / "audit.jsonl", on_damage="seal")


def trust_registry(location: str | os.PathLike[str], root_fingerprint: str) -> str:
    """Pin the root of the registry at ``location`` (a directory or an http(s) URL) for this
    user, if the sha256 of its ``metadata/1.root.json`` is ``root_fingerprint``; then bring the
    pinned root up to date by TUF's rotation rules. Returns the fingerprint.

    Raises ``TrustError`` when the fingerprint differs (do not use that registry),
    ``RegistryUnavailableError`` when a served registry cannot be reached."""
    reg = Registry(location)
    want = root_fingerprint.strip().lower().removeprefix("sha256:")
    first = reg._first_root()
    got = _client.fingerprint(first)
    if got != want:
        raise TrustError(
            f"registry {reg.location} has root fingerprint {got}, not {want}",
            hint="this is not the registry you were given (or not its first root); check the "
            "fingerprint with its maintainer and do not use it until they match",
        )
    reg._consumer.pin(first)
    reg.refresh_view()
    return got


class Registry:
    """A registry of signed tool versions: a local directory or a served (http/https) one."""

    def __init__(
        self,
        location: str | os.PathLike[str] | None = None,
        *,
        storage: RegistryStorage | None = None,
        keys: KeyStore | None = None,
        policy: CapabilityPolicy | None = None,
        trusted_approvers: Sequence[str] | None = None,
    ) -> None:
        """``location``: a directory, an http(s) URL, else ``$TOOLSMITH_REGISTRY``, else
        ``default_path()``. ``storage``: instead of a location, the ``RegistryStorage`` a local
        registry keeps its bytes in (e.g. ``toolsmith.testing.MemoryStorage()`` in tests; a
        directory location gets the directory's own); passing both is a ``UsageError``.
        ``keys``: where signing keys are looked up for edits (default: the local key store).
        ``policy``: the consumer's capability policy applied at load (default:
        ``TOOLSMITH_POLICY`` or the shipped one). ``trusted_approvers``: key ids whose approvals
        this consumer accepts (default: what ``trust_approvers`` kept for this registry, else the
        registry's approvers role)."""
        if storage is not None:
            if location is not None:
                raise UsageError(
                    f"Registry got both a location ({location}) and a storage ({storage.location})",
                    hint="pass one: a directory or URL as location, or a RegistryStorage",
                )
            self._dir: RegistryStorage | None = storage
            self.location = storage.location
            self.path: Path | str = storage.root if isinstance(storage, RepoDir) else self.location
        else:
            loc = location or Settings.load().paths.registry or self.default_path()
            if _client.is_url(loc):
                self.location = str(loc).rstrip("/")
                self.path = self.location
                self._dir = None
            else:
                self.path = Path(loc).absolute()
                self.location = str(self.path)
                self._dir = RepoDir(self.path)
        self._repo = Repository(self._dir) if self._dir is not None else None
        self._consumer = _client.Consumer(self.location, self._dir)
        self._keys = keys
        self._policy = policy
        if trusted_approvers is None:
            trusted_approvers = self._consumer.approvers()
        self._trusted_approvers = set(trusted_approvers) if trusted_approvers is not None else None
        self._view_cache: tuple[bytes | None, _client.View] | None = None
        self._loaded_policy: tuple[str, CapabilityPolicy] | None = None
        # Keyed by the view object itself, held here: an id() of a freed view can be reused by
        # the next one, which then found the old index (a search missing a new version).
        self._search: tuple[_client.View, SearchIndex] | None = None
        self.consumer_audit = consumer_audit()

    @staticmethod
    def default_path() -> Path:
        """The registry directory used when neither a location nor ``$TOOLSMITH_REGISTRY`` is
        given: ``$TOOLSMITH_HOME/registry``, else the per-user data dir's."""
        return Settings.load().paths.default_registry

    @property
    def audit(self) -> AuditLog:
        """The maintainers' log of edits to this (local) registry, kept in its storage
        (``<registry>/audit.jsonl`` for a directory)."""
        return AuditLog(AUDIT_FILE, storage=self.storage)

    @property
    def storage(self) -> RegistryStorage:
        """Where this local registry keeps its bytes; a served registry has none here (a
        ``UsageError``: it is read-only)."""
        if self._dir is None:
            raise UsageError(
                f"{self.location} is a served registry: it is read-only here",
                hint="edit the registry directory it is served from, on the maintainer's machine",
            )
        return self._dir

    # -- the verified view -------------------------------------------------------------------

    def _local(self) -> RegistryStorage:
        return self.storage

    def _first_root(self) -> bytes:
        if self._repo is not None:
            data = self._repo.root_bytes(1)
            if data is None:
                raise ToolNotFoundError(
                    f"{self.location} is not a registry (no metadata/1.root.json)",
                    hint="check the path, or create one with `toolsmith registry init`",
                )
            return data
        return self._consumer.fetch_first_root()

    def _view(self) -> _client.View:
        """The registry as this consumer last verified it, refreshed when a local registry's
        timestamp changed (a served one refreshes once per ``Registry`` and on
        ``refresh_view``)."""
        marker: bytes | None = None
        if self._repo is not None:
            marker = self._dir.read("metadata/timestamp.json", 16_384) if self._dir else None
            if marker is None:
                if self._consumer.pinned():
                    raise CorruptRegistryError(
                        f"{self.location} has no metadata/timestamp.json, but this user trusts a "
                        "registry there",
                        hint="restore the registry directory from a copy",
                    )
                raise ToolNotFoundError(
                    f"no registry at {self.location} (the registry is empty)",
                    hint="publish a tool into it (`toolsmith build`), or `toolsmith registry init`",
                )
        cached = self._view_cache
        if cached is not None and (self._repo is None or cached[0] == marker):
            return cached[1]
        view = _client.View(self._consumer, self._consumer.updater())
        self._view_cache = (marker, view)
        return view

    def refresh_view(self) -> None:
        """Drop the cached view: the next read fetches and verifies the registry again."""
        self._view_cache = None

    def fingerprint(self) -> str:
        """sha256 of this registry's first root: what consumers pin (`registry trust`)."""
        return _client.fingerprint(self._first_root())

    def trusted(self) -> bool:
        """Whether this user has pinned a root of this registry."""
        return self._consumer.pinned()

    def accepted_approvers(self) -> builtins.list[str] | None:
        """The key ids whose approvals this consumer accepts here (None: the registry's
        approvers role)."""
        return sorted(self._trusted_approvers) if self._trusted_approvers is not None else None

    def trust_approvers(self, key_ids: Sequence[str] | None) -> None:
        """Accept approvals of this registry's versions only from ``key_ids`` (this consumer's
        own choice, kept in its state dir); ``None`` goes back to the registry's approvers role."""
        self._consumer.set_approvers(builtins.list(key_ids) if key_ids is not None else None)
        self._trusted_approvers = set(key_ids) if key_ids is not None else None

    # -- reading -----------------------------------------------------------------------------

    def _empty(self) -> bool:
        """A local directory that is not (yet) a registry and that this user trusts nothing
        at: it lists as empty."""
        return (
            self._dir is not None
            and not self._consumer.pinned()
            and self._dir.read("metadata/timestamp.json", 16_384) is None
        )

    def _all(self) -> dict[str, builtins.list[VersionRecord]]:
        if self._view_cache is None and self._empty():
            return {}
        return self._records(self._view())

    def _records(self, view: _client.View) -> dict[str, builtins.list[VersionRecord]]:
        """Every version of every tool, by name, lowest version first, from the verified
        metadata; computed once per verified state."""
        if view.records is None:
            view.records = {
                name: _by_version(records)
                for name, records in self._read_records(view, view.all_tool_targets()).items()
            }
        return view.records

    def _read_records(
        self, view: _client.View, targets: dict[str, TargetFile]
    ) -> dict[str, builtins.list[VersionRecord]]:
        decisions = view.delegated(APPROVERS)
        decided = decisions.targets if decisions is not None else {}
        out: dict[str, builtins.list[VersionRecord]] = {}
        for path, info in targets.items():
            if not path.startswith("tools/") or not path.endswith("/statement"):
                continue
            record = _record(info, decided)
            if record is not None:
                out.setdefault(record.name, []).append(record)
        return out

    def _tool_records(self, name: str) -> builtins.list[VersionRecord]:
        """``name``'s records, lowest version first: from its bin alone when the registry has
        hashed bins and no listing has read them all yet."""
        if self._view_cache is None and self._empty():
            return []
        view = self._view()
        if view.records is not None:
            return view.records.get(name, [])
        if name not in view.tool_records:
            found = self._read_records(view, view.tool_targets(name)).get(name, [])
            view.tool_records[name] = _by_version(found)
        return view.tool_records[name]

    def _select(self, ref: str, records: Sequence[VersionRecord] | None = None) -> VersionRecord:
        name, constraint = parse_ref(ref)
        if records is None:
            records = self._tool_records(name)
        if not records:
            raise ToolNotFoundError(
                f"no tool named {name!r} in {self.location}"
                + (" (the registry is empty)" if self._empty() else ""),
                hint="`toolsmith registry search WORDS` lists what there is",
            )
        if isinstance(constraint, Version):
            for r in records:
                if _version(r.version) == constraint:
                    return r
            raise ToolNotFoundError(
                f"{name} has no version {constraint}",
                hint=f"`toolsmith registry versions {name}` lists its versions",
            )
        live = {_version(r.version): r for r in _resolvable(records, ref)}
        chosen = (constraint or SimpleSpec(">=0.0.0")).select(live)
        if chosen is None:
            yanked = [r.version for r in records if r.yanked]
            pending = [r.version for r in records if r.status == VersionStatus.PENDING]
            notes = []
            if yanked:
                notes.append(f"yanked versions {', '.join(yanked)} are chosen only by exact pin")
            if pending:
                notes.append(f"versions {', '.join(pending)} await approval")
            raise ToolNotFoundError(
                f"no published version of {name} matches {ref!r}"
                + (f" ({'; '.join(notes)})" if notes else ""),
                hint=f"`toolsmith registry versions {name}` lists its versions"
                + (f"; a trusted approver runs `toolsmith approve {name}@VER`" if pending else ""),
            )
        return live[chosen]

    def find(self, ref: str) -> VersionRecord:
        """The record ``ref`` resolves to, from verified metadata, without reading its files."""
        return self._select(ref)

    def versions(self, name: str) -> builtins.list[VersionRecord]:
        """Every version of ``name``, yanked included, lowest first."""
        if parse_ref(name)[1] is not None:
            raise UsageError(f"versions takes a tool name, got {name!r}", hint="drop the @...")
        return self._tool_records(name)

    def list(self) -> builtins.list[VersionRecord]:
        """One record per tool: the version a bare name resolves to, else its newest (yanked,
        pending or rejected; see its ``status``). The metadata verifies as a whole, so a
        registry that does not verify raises (``TrustError``) rather than list part of itself."""
        out = []
        for name, records in sorted(self._all().items()):
            ordered = _by_version(records)
            out.append((_resolvable(ordered, name) or ordered)[-1])
        return out

    def pending(self) -> builtins.list[VersionRecord]:
        """The approval queue: every pending version of every tool, by name then version."""
        return [
            r
            for _, records in sorted(self._all().items())
            for r in _by_version(records)
            if r.status == VersionStatus.PENDING
        ]

    def search(self, query: str, limit: int = 10) -> builtins.list[SearchHit]:
        """bm25-ranked hits over published, unyanked versions; the index is rebuilt on change."""
        if self._empty():
            return []
        view = self._view()
        if self._search is None or self._search[0] is not view:
            live = [
                r
                for records in self._records(view).values()
                for r in records
                if not r.yanked and r.status == VersionStatus.PUBLISHED
            ]
            self._search = (view, SearchIndex(live))
        return self._search[1].search(query, limit)

    # -- verification ------------------------------------------------------------------------

    def _target(self, view: _client.View, info: TargetFile) -> bytes:
        if self._dir is None:
            return view.download(info)
        data = self._dir.read(
            target_file_path(info.path, info.hashes["sha256"]), max(info.length, 0)
        )
        if data is None:
            raise CorruptRegistryError(
                f"{info.path} is missing from {self.location}",
                hint="restore the registry directory from a copy, or re-publish the tool",
            )
        return data

    def _verified(self, record: VersionRecord, gate: _verify.Gate | None) -> VerifiedTool:
        view = self._view()
        targets = view.tool_targets(record.name)
        base = f"tools/{record.name}/{record.version}/"
        statement_info = targets[base + "statement"]
        part_infos = {p: targets[base + p] for p in signing.PARTS if base + p in targets}
        envelope = self._target(view, statement_info)
        parts = {p: self._target(view, info) for p, info in part_infos.items()}
        approval = None
        if record.approval is not None:
            info = view.targetinfo(_approval_path(record.name, record.version))
            if info is not None:
                approval = _verify.Approval(
                    self._target(view, info), info, self._approvers(view.targets)
                )
        return _verify.verify(
            record.name,
            record.version,
            statement_info,
            envelope,
            part_infos,
            parts,
            _role_policy(view.root.keys, view.root.get_delegated_role("targets")),
            approval,
            gate,
        )

    def _approvers(self, targets: Targets) -> TrustPolicy:
        delegations = targets.delegations
        if delegations is None or delegations.roles is None or APPROVERS not in delegations.roles:
            return TrustPolicy({})
        policy = _role_policy(delegations.keys, delegations.roles[APPROVERS])
        if self._trusted_approvers is None:
            return policy
        keys = {k: v for k, v in policy.keys.items() if k in self._trusted_approvers}
        return TrustPolicy(keys, 1)

    def _gate(self) -> _verify.Gate:
        if self._policy is not None:
            return _verify.Gate(self._policy)
        # The consumer's policy file is read once per Registry (and again if TOOLSMITH_POLICY
        # names another one): parsing it on every resolve was most of a warm resolve's time.
        source = str(Settings.load().paths.policy or "")
        if self._loaded_policy is None or self._loaded_policy[0] != source:
            self._loaded_policy = (source, load_policy())
        return _verify.Gate(self._loaded_policy[1])

    def resolve(self, ref: str) -> VerifiedTool:
        """One verified, published version for ``ref`` that this consumer's policy admits;
        raises ``TrustError`` (or ``PolicyError``) rather than return bad bytes or a version no
        trusted person approved."""
        record = self._select(ref)
        with bound(tool=record.name, version=record.version):
            tool = self._verified(record, self._gate())
            if tool.yanked:
                _log.warning("resolved a yanked version by exact pin", reason=tool.yank_reason)
        return tool

    def load(
        self,
        ref: str,
        *,
        runtime: RuntimeName = "auto",
        actor: str | None = None,
        **options: Any,
    ) -> Tool:
        """Resolve, verify and bind ``ref`` to a runtime: the audited load path for agents.

        Every call appends one "load" entry by ``actor`` (default: the OS user) to this
        consumer's audit log (never the registry's): allowed, with the digest and runtime; or
        refused, with the error's message as the reason, and the error is re-raised. A damaged
        log is sealed with a break entry and recording goes on (``AuditLog`` ``on_damage``); a
        log that cannot be written at all (a failing disk) is reported on the error log and does
        not stop the load.
        """
        from toolsmith.loader import load_tool  # the runtimes are heavy: only when loading

        who = actor if actor is not None else _whoami()
        subject = ref
        data: dict[str, Any] = {"ref": ref, "runtime": runtime, "registry": self.location}
        try:
            record = self._select(ref)
            subject = f"{record.name}@{record.version}"
            data["digest"] = record.digest
            verified = self.resolve(subject)
            tool = load_tool(verified, runtime, **options)
        except ToolsmithError as e:
            data |= {"allowed": False, "error": type(e).__name__}
            try:
                self._consumer_record(who, subject, e.message, data)
            except AuditError as audit_error:
                _log.error("refused load not recorded", tool=subject, error=audit_error.message)
                e.add_note(f"this refusal is not in the audit log: {audit_error}")
            raise
        reason = "verified" + (
            f"; yanked ({verified.yank_reason}), pinned exactly" if verified.yanked else ""
        )
        data |= {"allowed": True, "runtime": tool.runtime, "signers": list(tool.signers)}
        try:
            self._consumer_record(who, subject, reason, data)
        except AuditError as e:
            # The tool verified; a log that cannot be written must not stop the agent.
            _log.error(
                "load not recorded: your audit log refused it", tool=subject, error=e.message
            )
        return tool

    def _consumer_record(self, actor: str, subject: str, reason: str, data: dict[str, Any]) -> None:
        try:
            self.consumer_audit.append(
                "load", actor=actor, subject=subject, reason=reason, data=data
            )
        except OSError as e:
            raise AuditError(
                f"cannot append to audit log {self.consumer_audit.path}: {e.strerror or e}",
                hint="check the disk and the permissions of your toolsmith state dir",
            ) from e

    def verify(self, ref: str | None = None) -> builtins.list[VerifyResult]:
        """Check signatures and digests of every version ``ref`` covers (everything when None);
        pending and yanked versions are checked too."""
        records = self._all()
        if ref is not None:
            name, constraint = parse_ref(ref)
            chosen = _by_version(records.get(name, []))
            if constraint is not None:
                chosen = [
                    r
                    for r in chosen
                    if (
                        _version(r.version) == constraint
                        if isinstance(constraint, Version)
                        else constraint.match(_version(r.version))
                    )
                ]
            if not chosen:
                self._select(ref)
                raise ToolNotFoundError(f"no version matches {ref!r}")
        else:
            chosen = [r for n in sorted(records) for r in _by_version(records[n])]
        return [self._check(r) for r in chosen]

    def _check(self, record: VersionRecord) -> VerifyResult:
        result = VerifyResult(
            name=record.name,
            version=record.version,
            digest=record.digest,
            status=record.status,
            yanked=record.yanked,
            ok=False,
        )
        try:
            tool = self._verified(record, None)
        except ApprovalRequiredError as e:
            if record.status != VersionStatus.REJECTED:
                return result.model_copy(update={"error": _describe(e), "exit_code": e.exit_code})
            return result.model_copy(update={"ok": True})
        except ToolsmithError as e:
            return result.model_copy(update={"error": _describe(e), "exit_code": e.exit_code})
        return result.model_copy(update={"ok": True, "signers": list(tool.signers)})

    # -- keys --------------------------------------------------------------------------------

    def trusted_keys(self) -> builtins.list[TrustedKey]:
        """Every key the verified metadata lists, with its roles."""
        view = self._view()
        out: dict[str, TrustedKey] = {}

        def add(key: Key, role: str) -> None:
            k = out.setdefault(
                key.keyid,
                TrustedKey(key_id=key.keyid, name=str(key.unrecognized_fields.get(NAME_FIELD, ""))),
            )
            k.roles.append(role)

        for role in TOP_ROLES:
            for kid in view.root.roles[role].keyids:
                add(view.root.keys[kid], role)
        delegations = view.targets.delegations
        if delegations is not None and delegations.roles and APPROVERS in delegations.roles:
            for kid in delegations.roles[APPROVERS].keyids:
                add(delegations.keys[kid], APPROVERS)
        return builtins.list(out.values())

    def threshold(self) -> int:
        """How many publisher (targets role) signatures a version needs."""
        return self._view().root.roles["targets"].threshold

    # -- writing -----------------------------------------------------------------------------

    def _available(self, extra: Sequence[SigningKey] = ()) -> builtins.list[SigningKey]:
        """Keys this user can sign with: ``extra`` first, then the key store's."""
        store = self._keys if self._keys is not None else KeyStore()
        found = builtins.list(extra)
        for info in store.list():
            with contextlib.suppress(ToolsmithError):
                found.append(store.load(info.name))
        return found

    @contextlib.contextmanager
    def _edit(self, *, expired_ok: bool = False) -> Iterator[RepoState]:
        """Under the lock: the registry's metadata, after verifying it from the pinned root
        (``expired_ok``: a frozen registry may still be refreshed by its maintainer)."""
        repo = self._repo
        if repo is None:
            self._local()
            raise AssertionError  # _local raised
        with self._local().lock():
            self.refresh_view()
            verified: _client.View | None = None
            try:
                verified = self._view()
                verified.bins  # noqa: B018 (loads and verifies the tools role the writer reads)
            except FreezeError:
                if not expired_ok:
                    raise
            state = repo.load()
            read_bin = state.read_bin
            if verified is not None and read_bin is not None:
                view = verified

                def read_verified_bin(role: str) -> Metadata[Targets]:
                    # Verified from the pinned root before the writer acts on it, like the
                    # rest of what an edit reads (gc must not delete what a forged bin omits).
                    view.bin_targets(role)
                    return read_bin(role)

                state.read_bin = read_verified_bin
            else:
                state.read_bin = None  # a frozen registry may be refreshed, not edited
            yield state
            # The writer's own consumer state moves to what it just committed (the bins it
            # read or wrote included), so putting an older state back is a rollback for it too.
            self.refresh_view()
            view = self._view()
            for role in state.bins:
                view.bin_targets(role)

    def _commit(
        self,
        state: RepoState,
        signers: dict[str, Sequence[SigningKey]],
        event: str,
        *,
        subject: str,
        actor: str,
        reason: str | None,
        data: dict[str, Any],
    ) -> None:
        assert self._repo is not None
        available = self._available([k for ks in signers.values() for k in ks])
        for role in ("snapshot", "timestamp"):
            signers.setdefault(role, role_signers(state.root.signed, role, available))

        def audit(version: int) -> None:
            try:
                self.record(
                    event,
                    actor=actor,
                    subject=subject,
                    reason=reason,
                    data=data | {"meta": version},
                )
            except AuditError as e:
                # Before the commit point: the change is not in effect.
                raise AuditError(
                    f"{event} of {subject} was not done: {e.message}", hint=e.hint
                ) from None

        self._repo.commit(state, signers, before_commit=audit)

    def init(
        self,
        *,
        root: Sequence[SigningKey] | None = None,
        targets: Sequence[SigningKey] | None = None,
        snapshot: Sequence[SigningKey] | None = None,
        timestamp: Sequence[SigningKey] | None = None,
        expiry_days: dict[str, int] | None = None,
        bin_bits: int | None = BIN_BITS,
    ) -> str:
        """Create this registry (roles default to the local default key) and trust it as its
        creator; returns its fingerprint. ``expiry_days`` sets each role's validity window
        (a served registry may use a short timestamp window with ``refresh``). ``bin_bits``:
        the registry keeps its versions in ``2**bin_bits`` hashed bins (1-32, fixed for its
        life; ``_repository.BIN_BITS`` explains the default), or with None in the one targets
        metadata of registries made before bins (which holds about 3,300 versions)."""
        if bin_bits is not None and not 1 <= bin_bits <= 32:
            raise UsageError(
                f"bin_bits must be 1-32 (2 to 4,294,967,296 bins), got {bin_bits}",
                hint=f"leave it out for {2**BIN_BITS} bins",
            )
        dir_ = self._local()
        assert self._repo is not None
        default: builtins.list[SigningKey] = []

        def keys(given: Sequence[SigningKey] | None) -> Sequence[SigningKey]:
            if given:
                return given
            if not default:
                default.append(default_signing_key(self._keys))
            return default

        with dir_.lock():
            if self._repo.exists():
                raise UsageError(
                    f"{self.location} is already a registry",
                    hint="use it, or pick an empty directory",
                )
            role_keys = {
                "root": keys(root),
                "targets": keys(targets),
                "snapshot": keys(snapshot),
                "timestamp": keys(timestamp),
            }

            def audit(version: int) -> None:
                self.record(
                    "init",
                    actor=_whoami(),
                    subject=self.location,
                    reason=None,
                    data={role: [k.key_id for k in ks] for role, ks in role_keys.items()},
                )

            first = self._repo.create(
                role_keys, expiry_days=expiry_days, bin_bits=bin_bits, before_commit=audit
            )
            self._consumer.pin(first)
        self.refresh_view()
        _log.info("registry created", registry=self.location)
        return _client.fingerprint(first)

    def publish(
        self,
        spec: ToolSpec,
        code: str,
        report: TestReport,
        provenance: Provenance,
        *,
        version: str | None = None,
        bump: Bump = "patch",
        signer: SigningKey | Sequence[SigningKey] | None = None,
        status: VersionStatus = VersionStatus.PUBLISHED,
    ) -> VersionRecord:
        """Sign and store a new version as targets of a new version of its tool's bin (of the
        targets metadata in a flat registry); refuses failing reports and existing versions. An
        empty directory becomes a registry held by the signer (and trusted by this user).

        ``status=PENDING`` publishes it behind the approval gate: it is stored and verifiable but
        never resolved until a trusted approver approves it.
        """
        if status == VersionStatus.REJECTED:
            raise UsageError(
                "a version cannot be published as rejected",
                hint="publish as pending and let an approver reject it",
            )
        if not report.passed:
            raise PublishRefusedError(
                f"refusing to publish {spec.name}: its test report is not a pass "
                f"({report.summary()})",
                hint="fix the tool until the sandbox report passes, then publish",
            )
        explicit = _parse_version(version) if version is not None else None
        if signer is None:
            signers: builtins.list[SigningKey] = [default_signing_key(self._keys)]
        elif isinstance(signer, SigningKey):
            signers = [signer]
        else:
            signers = builtins.list(signer)
        if not signers:
            raise UsageError("publish needs at least one signing key")
        assert self._repo is not None or self._local()
        if self._repo is not None and not self._repo.exists():
            first = signers[:1]
            self.init(root=first, targets=signers, snapshot=first, timestamp=first)
        parts = {
            "code": code.encode(),
            "spec": spec.canonical_json(),
            "report": report_bytes(report),
            "provenance": canonical_json(provenance.model_dump(mode="json")),
        }
        with bound(tool=spec.name), self._edit() as state:
            assert self._repo is not None
            root = state.root.signed
            publishers = root.get_delegated_role("targets")
            untrusted = [k.key_id for k in signers if k.key_id not in publishers.keyids]
            if untrusted:
                raise PublishRefusedError(
                    f"signing key {', '.join(u[:16] for u in untrusted)} is not a publisher "
                    f"(targets role) of {self.location}",
                    hint="`toolsmith keys trust PUBKEY_FILE --registry DIR`, then publish again",
                )
            if len({k.key_id for k in signers}) < publishers.threshold:
                raise PublishRefusedError(
                    f"{len(signers)} signer(s) given, the registry's threshold is "
                    f"{publishers.threshold}",
                    hint="sign with more publisher keys, or lower the threshold",
                )
            existing = [
                _version(p.split("/")[2])
                for p in state.tool_targets(spec.name)
                if p.endswith("/statement")
            ]
            new = explicit if explicit is not None else _next_version(existing, bump)
            if new in existing:
                raise VersionConflictError(
                    f"{spec.name}@{new} is already published; published versions never change",
                    hint="publish under a new version, or let toolsmith pick the next one",
                )
            pending = status == VersionStatus.PENDING
            statement = signing.build_statement(spec.name, str(new), parts, needs_approval=pending)
            envelope = signing.sign_envelope(statement, signers)
            infos = {
                p: self._repo.put_target(_tool_path(spec.name, str(new), p), data)
                for p, data in parts.items()
            }
            custom = {
                "name": spec.name,
                "version": str(new),
                "digest": signing.sha256_hex(statement),
                "status": status.value,
                "approval_required": pending,
                "yanked": False,
                "yank_reason": None,
                "published_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "signers": [k.key_id for k in signers],
                "description": spec.description,
                "tags": spec.tags,
                "capabilities": spec.capabilities,
                "parts": {p: i.hashes["sha256"] for p, i in infos.items()},
            }
            infos["statement"] = self._repo.put_target(
                _tool_path(spec.name, str(new), "statement"), envelope, custom
            )
            for info in infos.values():
                state.add_target(info)
            record = _record(infos["statement"], {})
            assert record is not None
            self._commit(
                state,
                {"targets": signers},
                "publish",
                subject=f"{spec.name}@{new}",
                actor=_whoami(),
                reason=None,
                data={"digest": record.digest, "status": status.value},
            )
        _log.info(
            "published",
            tool=record.name,
            version=record.version,
            digest=record.digest,
            status=record.status.value,
        )
        return record

    def record(
        self,
        event: str,
        *,
        actor: str,
        subject: str,
        reason: str | None,
        data: dict[str, Any],
    ) -> AuditEntry:
        """Append to the registry's (maintainers') audit log; a failing disk is an
        ``AuditError`` like a damaged log."""
        log = self.audit
        try:
            return log.append(event, actor=actor, subject=subject, reason=reason, data=data)
        except OSError as e:
            raise AuditError(
                f"cannot append to audit log {log.path}: {e.strerror or e}",
                hint="check the disk and the permissions of the registry directory",
            ) from e

    def _exact(self, ref: str, verb: str) -> tuple[str, Version]:
        name, constraint = parse_ref(ref)
        if not isinstance(constraint, Version):
            raise UsageError(
                f"{verb} needs an exact version, got {ref!r}",
                hint=f"name one version, e.g. {name}@1.2.3",
            )
        return name, constraint

    def _set_yanked(
        self, ref: str, yanked: bool, reason: str | None, signer: SigningKey | None
    ) -> VersionRecord:
        verb = "yank" if yanked else "unyank"
        self._exact(ref, verb)
        with self._edit() as state:
            record = self._select(ref)
            available = self._available([signer] if signer is not None else [])
            keys = role_signers(state.root.signed, "targets", available)
            path = _tool_path(record.name, record.version, "statement")
            info = state.tool_targets(record.name)[path]
            custom = dict(info.custom) if isinstance(info.custom, dict) else {}
            custom |= {"yanked": yanked, "yank_reason": reason if yanked else None}
            info.unrecognized_fields["custom"] = custom
            state.touch(record.name)
            self._commit(
                state,
                {"targets": keys},
                verb,
                subject=f"{record.name}@{record.version}",
                actor=f"{_whoami()} (key {keys[0].key_id[:16]})",
                reason=reason,
                data={"digest": record.digest, "was_yanked": record.yanked},
            )
        return record.model_copy(
            update={"yanked": yanked, "yank_reason": reason if yanked else None}
        )

    def yank(self, ref: str, reason: str, signer: SigningKey | None = None) -> VersionRecord:
        """Hide a version from ranges and bare names; exact pins still resolve it (PEP 592).
        A new version of the tool's bin, signed by publisher keys (``signer`` or the store's)."""
        if not reason.strip():
            raise UsageError("yanking needs a reason", hint="pass --reason 'why it was pulled'")
        return self._set_yanked(ref, True, reason, signer)

    def unyank(
        self, ref: str, reason: str | None = None, signer: SigningKey | None = None
    ) -> VersionRecord:
        """Let ranges and bare names choose a yanked version again."""
        return self._set_yanked(ref, False, reason, signer)

    def approve(self, ref: str, approver: SigningKey, reason: str | None = None) -> VersionRecord:
        """A trusted approver's signed approval of a pending version: it becomes published."""
        return self._decide(ref, approver, Decision.APPROVED, reason)

    def reject(self, ref: str, approver: SigningKey, reason: str) -> VersionRecord:
        """A trusted approver's signed rejection of a pending version: it stays unloadable."""
        if not reason.strip():
            raise UsageError("rejecting needs a reason", hint="pass --reason 'why it is refused'")
        return self._decide(ref, approver, Decision.REJECTED, reason)

    def _decide(
        self, ref: str, approver: SigningKey, decision: Decision, reason: str | None
    ) -> VersionRecord:
        verb = "approve" if decision == Decision.APPROVED else "reject"
        note = reason.strip() if reason and reason.strip() else None
        name, constraint = self._exact(ref, verb)
        with bound(tool=name, version=str(constraint)), self._edit() as state:
            assert self._repo is not None
            record = self._select(ref)
            if record.status != VersionStatus.PENDING:
                raise UsageError(
                    f"cannot {verb} {name}@{record.version}: it is {record.status.value}, and only "
                    "pending versions wait for a decision",
                    hint="`toolsmith registry list --pending` lists the versions awaiting one",
                )
            delegations = state.targets.signed.delegations
            role = delegations.roles[APPROVERS] if delegations and delegations.roles else None
            if role is None or approver.key_id not in role.keyids:
                raise SignatureError(
                    f"key {approver.key_id[:16]} ({approver.name}) is not trusted as an approver "
                    f"by {self.location}",
                    hint="`toolsmith keys trust PUBKEY_FILE --role approver`, then decide again",
                )
            self._verified(record, None)
            statement = signing.build_decision(
                record.name,
                record.version,
                record.digest,
                decision,
                note,
                approver.key_id,
                datetime.now(UTC).isoformat(timespec="seconds"),
            )
            envelope = signing.sign_envelope(statement, [approver])
            info = self._repo.put_target(
                _approval_path(record.name, record.version),
                envelope,
                {"decision": decision.value, "digest": record.digest},
            )
            if state.approvers is None:
                state.approvers = Metadata(Targets())
            state.approvers.signed.targets[info.path] = info
            state.changed.add(APPROVERS)
            new_status = (
                VersionStatus.PUBLISHED if decision == Decision.APPROVED else VersionStatus.REJECTED
            )
            self._commit(
                state,
                {APPROVERS: [approver]},
                verb,
                subject=f"{record.name}@{record.version}",
                actor=f"{_key_name(delegations, approver)} (key {approver.key_id[:16]})",
                reason=note,
                data={
                    "digest": record.digest,
                    "status": new_status.value,
                    "approver_key": approver.key_id,
                    "approval": info.hashes["sha256"],
                },
            )
        _log.info(decision.value, tool=name, version=record.version, approver=approver.key_id)
        return record.model_copy(update={"status": new_status, "approval": info.hashes["sha256"]})

    def trust_key(
        self,
        pem: bytes,
        name: str = "",
        role: KeyRole = KeyRole.PUBLISHER,
        signer: SigningKey | None = None,
    ) -> str:
        """Add a public key as a publisher (a new root version, signed by the root keys; with
        hashed bins also new targets, tools and bin versions naming it, signed by publishers)
        or an approver (a new targets version, signed by the publishers); returns its id."""
        key = signing.tuf_key(signing.load_public_key(pem))
        if name:
            key.unrecognized_fields[NAME_FIELD] = name
        with self._edit() as state:
            available = self._available([signer] if signer is not None else [])
            if role == KeyRole.PUBLISHER:
                if key.keyid in state.root.signed.roles["targets"].keyids:
                    return key.keyid
                state.root.signed.add_key(key, "targets")
                state.changed.add("root")
                signers: dict[str, Sequence[SigningKey]] = {
                    "root": role_signers(state.root.signed, "root", available)
                }
                if state.tools is not None:
                    # The bins' delegations name the publishers: signed again by them.
                    state.sync_publishers()
                    signers["targets"] = role_signers(state.root.signed, "targets", available)
            else:
                delegations = state.targets.signed.delegations
                assert delegations is not None and delegations.roles is not None
                if key.keyid in delegations.roles[APPROVERS].keyids:
                    return key.keyid
                state.targets.signed.add_key(key, APPROVERS)
                state.changed.add("targets")
                signers = {"targets": role_signers(state.root.signed, "targets", available)}
            self._commit(
                state,
                signers,
                "trust",
                subject=key.keyid,
                actor=_whoami(),
                reason=None,
                data={"role": role.value, "name": name},
            )
        return key.keyid

    def untrust_key(self, key_ref: str, signer: SigningKey | None = None) -> str:
        """Remove a key (by id or a unique prefix of 8+ characters) from the publishers and
        approvers; the root's and online roles' keys change only by rotation (not here)."""
        with self._edit() as state:
            root = state.root.signed
            delegations = state.targets.signed.delegations
            approvers = (
                delegations.roles[APPROVERS].keyids if delegations and delegations.roles else []
            )
            known = set(root.roles["targets"].keyids) | set(approvers)
            matches = [k for k in known if len(key_ref) >= 8 and k.startswith(key_ref)]
            if len(matches) != 1:
                raise UsageError(
                    f"{len(matches)} publisher or approver keys match {key_ref!r}",
                    hint="pass a key id (or a unique prefix of 8+ characters) from "
                    "`toolsmith keys list`",
                )
            kid = matches[0]
            available = self._available([signer] if signer is not None else [])
            signers: dict[str, Sequence[SigningKey]] = {}
            if kid in approvers:
                state.targets.signed.revoke_key(kid, APPROVERS)
                state.changed.add("targets")
            if kid in root.roles["targets"].keyids:
                if len(root.roles["targets"].keyids) <= root.roles["targets"].threshold:
                    raise UsageError(
                        f"removing {kid[:16]} would leave fewer publishers than the threshold",
                        hint="trust another publisher key or lower the threshold first",
                    )
                root.revoke_key(kid, "targets")
                # Targets metadata signed by the removed key alone would no longer verify.
                state.changed |= {"root", "targets"}
                state.sync_publishers()
                signers["root"] = role_signers(root, "root", available)
            if "targets" in state.changed:
                signers["targets"] = role_signers(root, "targets", available)
            self._commit(
                state, signers, "untrust", subject=kid, actor=_whoami(), reason=None, data={}
            )
        return kid

    def set_threshold(self, threshold: int, signer: SigningKey | None = None) -> None:
        """How many distinct publisher signatures each version (and the targets metadata)
        needs: a new root version, signed by the root keys."""
        if threshold < 1:
            raise UsageError(f"threshold must be at least 1, got {threshold}")
        with self._edit() as state:
            root = state.root.signed
            if threshold > len(root.roles["targets"].keyids):
                raise UsageError(
                    f"threshold {threshold} is more than the {len(root.roles['targets'].keyids)} "
                    "publisher key(s)",
                    hint="trust more publisher keys first (`toolsmith keys trust`)",
                )
            root.roles["targets"].threshold = threshold
            # The current targets metadata must meet the new threshold too: re-signed here.
            state.changed |= {"root", "targets"}
            state.sync_publishers()
            available = self._available([signer] if signer is not None else [])
            self._commit(
                state,
                {
                    "root": role_signers(root, "root", available),
                    "targets": role_signers(root, "targets", available),
                },
                "threshold",
                subject=self.location,
                actor=_whoami(),
                reason=None,
                data={"threshold": threshold},
            )

    def refresh(self, expiry_days: int | None = None) -> int:
        """Re-sign the timestamp (same content, a fresh expiry of ``expiry_days`` or the
        registry's window) with the timestamp key; returns the new timestamp version."""
        with self._edit(expired_ok=True) as state:
            assert self._repo is not None
            keys = role_signers(state.root.signed, "timestamp", self._available())

            def audit(version: int) -> None:
                self.record(
                    "refresh",
                    actor=_whoami(),
                    subject=self.location,
                    reason=None,
                    data={"meta": version, "days": expiry_days},
                )

            self._repo.refresh_timestamp(state, keys, before_commit=audit, expiry_days=expiry_days)
            version = state.timestamp.signed.version
        return version

    def gc(self, *, dry_run: bool = False) -> GarbageReport:
        """Remove target files no verified metadata names (left by killed publishes) and the
        temporary files of killed writes. The metadata is verified from the pinned root first,
        so a rolled-back or frozen registry is refused before anything is deleted."""
        with self._edit() as state:
            dir_ = self._local()
            approvals = state.approvers.signed.targets.values() if state.approvers else []
            referenced = {
                target_file_path(info.path, info.hashes["sha256"])
                for info in [*state.all_tool_targets(), *approvals]
            }
            present: dict[str, int] = {}
            leftovers: builtins.list[str] = []
            for rel in _walk(dir_, "targets"):
                if dir_.is_leftover(rel.rsplit("/", 1)[-1]):
                    leftovers.append(rel)
                else:
                    present[rel] = dir_.size(rel)
            leftovers += [f"metadata/{n}" for n in dir_.files("metadata") if dir_.is_leftover(n)]
            unreferenced = sorted(set(present) - referenced)
            report = GarbageReport(
                dry_run=dry_run,
                unreferenced=unreferenced,
                freed_bytes=sum(present[p] for p in unreferenced),
                kept=len(present) - len(unreferenced),
                leftovers=0 if dry_run else len(leftovers),
            )
            if dry_run:
                return report
            for rel in [*unreferenced, *leftovers]:
                dir_.delete(rel)
            if unreferenced or leftovers:
                self.record(
                    "gc",
                    actor=_whoami(),
                    subject=self.location,
                    reason=None,
                    data=report.model_dump(exclude={"dry_run"}),
                )
        _log.info("garbage collected", files=len(unreferenced), freed_bytes=report.freed_bytes)
        return report


def _key_name(delegations: Any, key: SigningKey) -> str:
    """The name the registry's signed metadata gives ``key`` (its word), else the key's own."""
    listed = delegations.keys.get(key.key_id) if delegations is not None else None
    name = listed.unrecognized_fields.get(NAME_FIELD) if listed is not None else None
    return name if isinstance(name, str) and name else key.name


def _walk(dir_: RegistryStorage, rel: str) -> Iterator[str]:
    for name in dir_.files(rel):
        yield f"{rel}/{name}"
    for sub in dir_.dirs(rel):
        yield from _walk(dir_, f"{rel}/{sub}")


def _role_policy(keys: dict[str, Key], role: Any) -> TrustPolicy:
    return TrustPolicy({k: keys[k] for k in role.keyids if k in keys}, role.threshold)


def _record(info: TargetFile, decided: dict[str, TargetFile]) -> VersionRecord | None:
    """A version's record from its statement target's custom fields and any decision."""
    custom = info.custom if isinstance(info.custom, dict) else None
    _, name, version, _ = info.path.split("/")
    if custom is None or custom.get("name") != name or custom.get("version") != version:
        return None
    decision = decided.get(_approval_path(name, version))
    status = VersionStatus(custom.get("status", "published"))
    approval = None
    if decision is not None and isinstance(decision.custom, dict):
        approval = decision.hashes["sha256"]
        status = (
            VersionStatus.PUBLISHED
            if decision.custom.get("decision") == Decision.APPROVED.value
            else VersionStatus.REJECTED
        )
    try:
        return VersionRecord(
            name=name,
            version=version,
            digest=custom["digest"],
            envelope=info.hashes["sha256"],
            parts=custom.get("parts", {}),
            status=status,
            approval=approval,
            approval_required=bool(custom.get("approval_required")),
            yanked=bool(custom.get("yanked")),
            yank_reason=custom.get("yank_reason"),
            published_at=custom.get("published_at", ""),
            signers=custom.get("signers", []),
            description=custom.get("description", ""),
            tags=custom.get("tags", []),
            capabilities=custom.get("capabilities", []),
        )
    except (KeyError, ValueError) as e:
        raise CorruptRegistryError(
            f"signed metadata of {name}@{version} does not describe a version: {e}",
            hint="the metadata was signed with a bad record; publish a fixed version",
        ) from None


@functools.lru_cache(maxsize=65536)
def _version(text: str) -> Version:
    """Versions parse the same every time; parsing was a third of listing a large registry."""
    return Version(text)


def _resolvable(records: Sequence[VersionRecord], ref: str) -> builtins.list[VersionRecord]:
    """What a bare name or a range may pick: published, not yanked, and no prerelease unless
    the ref names one (a release candidate never becomes every agent's default)."""
    prereleases = "-" in ref.partition("@")[2]
    return [
        r
        for r in records
        if not r.yanked
        and r.status == VersionStatus.PUBLISHED
        and (prereleases or not _version(r.version).prerelease)
    ]


def _by_version(records: Sequence[VersionRecord]) -> builtins.list[VersionRecord]:
    return sorted(records, key=lambda r: _version(r.version))


def _whoami() -> str:
    """The OS user, for the audit log: self-reported (``$USER`` wins), so it names, not proves."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return f"uid {os.getuid()}"


def _describe(e: ToolsmithError) -> str:
    return f"{type(e).__name__}: {e.message}"


def _parse_version(version: str) -> Version:
    try:
        parsed = Version(version)
    except ValueError:
        raise UsageError(
            f"version {version!r} is not a semantic version",
            hint="use MAJOR.MINOR.PATCH, e.g. 1.2.3",
        ) from None
    if parsed.build:
        raise UsageError(
            f"version {version!r} carries build metadata, which semver ignores when ordering, "
            "so it could shadow the same version with other code",
            hint=f"publish as {parsed.truncate('prerelease')} or a new version",
        )
    return parsed


def _next_version(existing: Sequence[Version], bump: Bump) -> Version:
    """The next version after the highest existing one; a new tool starts at 0.1.0 (or 1.0.0)."""
    if not existing:
        return Version("1.0.0") if bump == "major" else Version("0.1.0")
    top = max(existing)
    if bump == "major":
        return top.next_major()
    if bump == "minor":
        return top.next_minor()
    return top.next_patch()
