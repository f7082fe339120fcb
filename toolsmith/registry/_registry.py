"""The registry: publish signed versions, resolve references to verified tools.

Resolution reads a tool's index once, picks one record, and then checks the envelope's signatures
against the registry's trust store and every part's sha256 against the signed statement before
anything is parsed or returned. ``VerifiedTool`` is the only way tool code leaves this module.

Approval gate: a version published as PENDING carries "approval required" in its signed statement.
Only a signed decision by a trusted approver (``approve``/``reject``) moves it on, and resolution
recomputes the status from the signed statements, so the index's ``status`` field alone cannot
release a version.

Audit: every yank, unyank, approval, rejection and ``load`` decision is appended to the registry's
audit log (``<registry>/audit.jsonl``), after the index change it records and while the index lock
is still held. If the append fails (an edited or truncated log refuses appends, or the disk fails),
the index is written back as it was and ``AuditError`` is raised: a decision either happens and is
recorded, or does not happen. Two gaps remain: a process killed between the index write and the
append leaves an unrecorded change, and an approval's signed envelope blob stays behind
(unreferenced) when its index change is undone. Approvers are named by their signing key, which the
registry has verified; yank and unyank name the OS user (self-reported) and the signing key, load
the OS user.

Index: each tool's index is a signed document (``signing.build_index``), re-signed by the trusted
key that makes each change and verified on every read, so a record edited, added or deleted
without a trusted key is a ``SignatureError``. Browsing passes such a tool to ``on_error`` (the
CLI names it and exits non-zero); search skips it with a warning.
"""

from __future__ import annotations

import builtins
import functools
import getpass
import os
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import platformdirs
from pydantic import ValidationError
from semantic_version import SimpleSpec, Version

from toolsmith import signing
from toolsmith.audit import AuditEntry, AuditLog
from toolsmith.errors import (
    ApprovalRequiredError,
    AuditError,
    CorruptRegistryError,
    DigestMismatchError,
    PublishRefusedError,
    RegistryError,
    SignatureError,
    ToolNotFoundError,
    ToolsmithError,
    TrustError,
    UsageError,
    VersionConflictError,
)
from toolsmith.keys import default_signing_key
from toolsmith.log import bound, get_logger
from toolsmith.registry._models import (
    GarbageReport,
    SearchHit,
    ToolIndex,
    VerifiedTool,
    VerifyResult,
    VersionRecord,
    VersionStatus,
)
from toolsmith.registry._search import SearchIndex
from toolsmith.registry._storage import FileStorage, Storage
from toolsmith.registry._trust import Policies, TrustStore
from toolsmith.report import Provenance, TestReport
from toolsmith.signing import Decision, SigningKey, public_pem
from toolsmith.spec import NAME_RE, STORED, ToolSpec, canonical_json

if TYPE_CHECKING:
    from toolsmith.loader import RuntimeName, Tool

_log = get_logger(__name__)
Bump = Literal["patch", "minor", "major"]
OnError = Callable[[str, ToolsmithError], None]


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


class Registry:
    """A local, file-based registry of signed tool versions."""

    def __init__(self, path: Path | None = None, *, storage: Storage | None = None) -> None:
        self.path = path if path is not None else self.default_path()
        self._storage = storage if storage is not None else FileStorage(self.path)
        self.trust = TrustStore(self._storage)
        self.audit = AuditLog.for_registry(self.path)
        self._search: tuple[str, SearchIndex] | None = None

    @staticmethod
    def default_path() -> Path:
        env = os.environ.get("TOOLSMITH_REGISTRY")
        if env:
            return Path(env)
        return Path(platformdirs.user_data_dir("toolsmith")) / "registry"

    # -- reading the index -------------------------------------------------------------------

    def _index(self, name: str, maintainers: signing.TrustPolicy | None = None) -> ToolIndex:
        data = self._storage.read_index(name)
        if data is None:
            return ToolIndex(name=name)
        where = f"index of {name!r} in {self.path}"
        restore = (
            f"restore index/{name}.json from a copy, or review it with `toolsmith registry "
            f"resign {name} --dry-run` and re-sign it with a trusted key (`toolsmith registry "
            f"resign {name}`)"
        )
        if maintainers is None:
            maintainers = self.trust.policies().maintainers
        try:
            signed = signing.verify_index(data, maintainers)
        except SignatureError as e:
            if not signing.is_envelope(data):
                raise CorruptRegistryError(
                    f"{where} is unreadable: not a signed index", hint=restore
                ) from None
            raise SignatureError(
                f"{where} does not verify: {e.message}",
                hint=f"it was edited without a trusted key, or its signer is no longer trusted; "
                f"{restore}",
            ) from None
        return _index_document(name, signed.document, where, restore)

    def _select(self, ref: str, index: ToolIndex | None = None) -> VersionRecord:
        """The record ``ref`` picks, from ``index`` when the caller already read it."""
        name, constraint = parse_ref(ref)
        records = (index if index is not None else self._index(name)).records
        if not records:
            known = self._storage.index_names()
            raise ToolNotFoundError(
                f"no tool named {name!r} in {self.path}"
                + ("" if known else " (the registry is empty)"),
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
        """The index record ``ref`` resolves to, without verifying it (for browsing)."""
        return self._select(ref)

    def versions(self, name: str) -> builtins.list[VersionRecord]:
        """Every version of ``name``, yanked included, lowest first."""
        if parse_ref(name)[1] is not None:
            raise UsageError(f"versions takes a tool name, got {name!r}", hint="drop the @...")
        return _by_version(self._index(name).records)

    def list(self, *, on_error: OnError | None = None) -> builtins.list[VersionRecord]:
        """One record per tool: the version a bare name resolves to, else its newest (yanked,
        pending or rejected; see its ``status``). A tool whose index does not read or verify is
        passed to ``on_error`` and left out; without ``on_error`` it raises."""
        out = []
        for index in self._each_index(on_error):
            records = _by_version(index.records)
            if not records:
                continue
            out.append((_resolvable(records, index.name) or records)[-1])
        return out

    def pending(self, *, on_error: OnError | None = None) -> builtins.list[VersionRecord]:
        """The approval queue: every pending version of every tool, by name then version."""
        return [
            r
            for index in self._each_index(on_error)
            for r in _by_version(index.records)
            if r.status == VersionStatus.PENDING
        ]

    def _each_index(self, on_error: OnError | None) -> Iterator[ToolIndex]:
        maintainers = self.trust.policies().maintainers
        for name in self._storage.index_names():
            try:
                yield self._index(name, maintainers)
            except (TrustError, CorruptRegistryError) as e:
                if on_error is None:
                    raise
                on_error(name, e)

    def _all_records(self) -> builtins.list[VersionRecord]:
        def skip(name: str, e: ToolsmithError) -> None:
            _log.warning("search skips a tool whose index does not verify", tool=name, error=str(e))

        return [r for index in self._each_index(skip) for r in index.records]

    def search(self, query: str, limit: int = 10) -> builtins.list[SearchHit]:
        """bm25-ranked hits over published, unyanked versions; the index is rebuilt on change."""
        generation = self._storage.generation()
        if self._search is None or self._search[0] != generation:
            live = [
                r
                for r in self._all_records()
                if not r.yanked and r.status == VersionStatus.PUBLISHED
            ]
            self._search = (generation, SearchIndex(live))
        return self._search[1].search(query, limit)

    # -- verification ------------------------------------------------------------------------

    def _verify(self, record: VersionRecord, trust: Policies) -> VerifiedTool:
        envelope = self._envelope(record, record.envelope, "envelope")
        statement = signing.verify_envelope(envelope, trust.publishers)
        signing.check_identity(statement, record.name, record.version, record.digest)
        approvers = self._check_status(record, statement, trust.approvers)
        if dict(statement.subjects) != record.parts:
            raise DigestMismatchError(
                f"index parts of {record.name}@{record.version} differ from its signed statement",
                hint="the index was edited; restore it from a copy",
            )
        parts = {}
        for part in signing.PARTS:
            data = self._storage.get_blob(statement.subjects[part])
            signing.check_part(statement, part, data)
            parts[part] = data
        try:
            spec = _load_spec(parts["spec"]).model_copy(deep=True)
            report = TestReport.model_validate_json(parts["report"])
            provenance = Provenance.model_validate_json(parts["provenance"])
            code = parts["code"].decode()
        except (ValidationError, UnicodeDecodeError) as e:
            raise CorruptRegistryError(
                f"signed parts of {record.name}@{record.version} do not load: {e}"
            ) from None
        if spec.name != record.name or not report.passed:
            raise TrustError(
                f"signed content of {record.name}@{record.version} is not a passing build of "
                f"{record.name} (spec names {spec.name!r}, report: {report.summary()})"
            )
        return VerifiedTool(
            name=record.name,
            version=record.version,
            digest=record.digest,
            spec=spec,
            code=code,
            report=report,
            provenance=provenance,
            signers=statement.signers,
            approvers=approvers,
            yanked=record.yanked,
            yank_reason=record.yank_reason,
        )

    def _envelope(self, record: VersionRecord, digest: str, what: str) -> bytes:
        envelope = self._storage.get_blob(digest)
        if signing.sha256_hex(envelope) != digest:
            raise DigestMismatchError(
                f"{what} of {record.name}@{record.version} does not match its digest",
                hint="the blob was altered after publishing; do not use this version",
            )
        return envelope

    def _check_status(
        self,
        record: VersionRecord,
        statement: signing.VerifiedStatement,
        approvers: signing.TrustPolicy,
    ) -> tuple[str, ...]:
        """The status the signed statements prove must be the one the index records; returns the
        approvers' key ids (empty when no decision is recorded)."""
        ref = f"{record.name}@{record.version}"
        signers: tuple[str, ...] = ()
        if record.approval is None:
            proved = VersionStatus.PENDING if statement.needs_approval else VersionStatus.PUBLISHED
        else:
            decision = signing.verify_decision(
                self._envelope(record, record.approval, "approval envelope"), approvers
            )
            if (decision.name, decision.version, decision.subject) != (
                record.name,
                record.version,
                record.digest,
            ):
                raise SignatureError(
                    f"the approval recorded for {ref} is about "
                    f"{decision.name}@{decision.version} ({decision.subject[:16]}...)",
                    hint="the index was edited; restore it from a copy",
                )
            signers = decision.signers
            approved = decision.decision == Decision.APPROVED
            proved = VersionStatus.PUBLISHED if approved else VersionStatus.REJECTED
        if proved == record.status:
            return signers
        if record.status == VersionStatus.PUBLISHED:
            raise ApprovalRequiredError(
                f"the index marks {ref} published, but no trusted approver approved it "
                f"(its signed statements make it {proved.value})",
                hint="the index was edited; restore it from a copy, or approve the version with "
                f"`toolsmith approve {ref}`",
            )
        raise SignatureError(
            f"the index marks {ref} {record.status.value}, its signed statements make it "
            f"{proved.value}",
            hint="the index was edited; restore it from a copy",
        )

    def resolve(self, ref: str) -> VerifiedTool:
        """One verified, published version for ``ref``; raises ``TrustError`` rather than return
        bad bytes or a version no person approved."""
        return self._resolve_record(self._select(ref))

    def _resolve_record(self, record: VersionRecord) -> VerifiedTool:
        with bound(tool=record.name, version=record.version):
            _refuse_unapproved(record)
            tool = self._verify(record, self.trust.policies())
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

        Every call appends one "load" entry by ``actor`` (default: the OS user): allowed, with the
        digest and runtime; or refused, with the error's message as the reason, and the error is
        re-raised. A load that cannot be recorded is not handed out (``AuditError``); a refusal
        that cannot be recorded is still raised, with a note saying so.
        """
        from toolsmith.loader import load_tool  # the loader imports the registry

        who = actor if actor is not None else _whoami()
        subject = ref
        data: dict[str, Any] = {"ref": ref, "runtime": runtime}
        try:
            record = self._select(ref)
            subject = f"{record.name}@{record.version}"
            data["digest"] = record.digest
            verified = self._resolve_record(record)
            tool = load_tool(verified, runtime, **options)
        except ToolsmithError as e:
            data |= {"allowed": False, "error": type(e).__name__}
            try:
                self.record("load", actor=who, subject=subject, reason=e.message, data=data)
            except AuditError as audit_error:
                _log.error("refused load not recorded", tool=subject, error=audit_error.message)
                e.add_note(f"this refusal is not in the audit log: {audit_error}")
            raise
        reason = "verified" + (
            f"; yanked ({verified.yank_reason}), pinned exactly" if verified.yanked else ""
        )
        data |= {"allowed": True, "runtime": tool.runtime, "signers": list(tool.signers)}
        try:
            self.record("load", actor=who, subject=subject, reason=reason, data=data)
        except AuditError:
            tool.close()
            raise
        return tool

    def verify(self, ref: str | None = None) -> builtins.list[VerifyResult]:
        """Check every version ``ref`` covers (every version of everything when it is None).

        A bare name covers all of a tool's versions; yanked ones are checked too.
        """
        policy = self.trust.policies()
        if ref is not None:
            try:
                records = self._matching(ref)
            except (TrustError, CorruptRegistryError) as e:
                name = parse_ref(ref)[0]
                return [VerifyResult(name=name, version="", ok=False, error=_describe(e))]
            if not records:
                self._select(ref)
                raise ToolNotFoundError(f"no version matches {ref!r}")
            return [self._check(r, policy) for r in records]
        results = []
        for name in self._storage.index_names():
            try:
                records = self.versions(name)
            except ToolsmithError as e:
                results.append(VerifyResult(name=name, version="", ok=False, error=_describe(e)))
                continue
            results.extend(self._check(r, policy) for r in records)
        return results

    def _check(self, record: VersionRecord, policy: Policies) -> VerifyResult:
        result = VerifyResult(
            name=record.name,
            version=record.version,
            digest=record.digest,
            status=record.status,
            yanked=record.yanked,
            ok=False,
        )
        try:
            tool = self._verify(record, policy)
        except ToolsmithError as e:
            return result.model_copy(update={"error": _describe(e)})
        return result.model_copy(update={"ok": True, "signers": list(tool.signers)})

    def _matching(self, ref: str) -> builtins.list[VersionRecord]:
        """Every version a pinned or ranged ``ref`` covers, yanked included."""
        name, constraint = parse_ref(ref)
        records = self.versions(name)
        if constraint is None:
            return records
        if isinstance(constraint, Version):
            return [r for r in records if _version(r.version) == constraint]
        return [r for r in records if constraint.match(_version(r.version))]

    # -- writing -----------------------------------------------------------------------------

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
        """Sign and store a new version; refuses failing reports and existing versions.

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
            signers: list[SigningKey] = [default_signing_key()]
        elif isinstance(signer, SigningKey):
            signers = [signer]
        else:
            signers = list(signer)
        parts = {
            "code": code.encode(),
            "spec": spec.canonical_json(),
            "report": report_bytes(report),
            "provenance": canonical_json(provenance.model_dump(mode="json")),
        }
        with bound(tool=spec.name), self._storage.lock():
            index = self._index(spec.name)
            existing = [_version(r.version) for r in index.records]
            new = explicit if explicit is not None else _next_version(existing, bump)
            if new in existing:
                raise VersionConflictError(
                    f"{spec.name}@{new} is already published; published versions never change",
                    hint="publish under a new version, or let toolsmith pick the next one",
                )
            self._check_signers(signers)
            statement = signing.build_statement(
                spec.name, str(new), parts, needs_approval=status == VersionStatus.PENDING
            )
            envelope = signing.sign_envelope(statement, signers)
            blob_digests = {p: self._storage.put_blob(data) for p, data in parts.items()}
            record = VersionRecord(
                name=spec.name,
                version=str(new),
                digest=signing.sha256_hex(statement),
                envelope=self._storage.put_blob(envelope),
                parts=blob_digests,
                status=status,
                published_at=datetime.now(UTC).isoformat(timespec="seconds"),
                signers=[k.key_id for k in signers],
                description=spec.description,
                tags=spec.tags,
                capabilities=spec.capabilities,
            )
            index.records.append(record)
            self._write_index(index, signers)
        _log.info(
            "published",
            tool=record.name,
            version=record.version,
            digest=record.digest,
            status=record.status.value,
        )
        return record

    def _check_signers(self, signers: Sequence[SigningKey]) -> None:
        """Refuse to publish what would not verify; an empty trust store trusts its first signer."""
        if not signers:
            raise UsageError("publish needs at least one signing key")
        if not self.trust.trusted_keys():
            for k in signers:
                self.trust.trust_while_locked(public_pem(k.public_key), k.name)
                _log.warning("trust store was empty: trusting the publishing key", key_id=k.key_id)
        policy = self.trust.policy()
        untrusted = [k.key_id for k in signers if k.key_id not in policy.keys]
        if untrusted:
            raise PublishRefusedError(
                f"signing key {', '.join(u[:16] for u in untrusted)} is not trusted by {self.path}",
                hint="`toolsmith keys trust PUBKEY_FILE --registry DIR`, then publish again",
            )
        if len({k.key_id for k in signers}) < policy.threshold:
            raise PublishRefusedError(
                f"{len(signers)} signer(s) given, the registry's threshold is {policy.threshold}",
                hint="sign with more trusted keys, or lower the threshold",
            )

    def _write_index(self, index: ToolIndex, signers: Sequence[SigningKey]) -> None:
        """Sign and store the index whole, one revision up."""
        index.serial += 1
        statement = signing.build_index(index.name, index.model_dump(mode="json"))
        self._storage.write_index(index.name, signing.sign_envelope(statement, signers))

    def record(
        self,
        event: str,
        *,
        actor: str,
        subject: str,
        reason: str | None,
        data: dict[str, Any],
    ) -> AuditEntry:
        """Append to the audit log; a failing disk is an ``AuditError`` like a damaged log."""
        try:
            return self.audit.append(event, actor=actor, subject=subject, reason=reason, data=data)
        except OSError as e:
            raise AuditError(
                f"cannot append to audit log {self.audit.path}: {e.strerror or e}",
                hint="check the disk and the permissions of the registry directory",
            ) from e

    def _replace_recorded(
        self,
        index: ToolIndex,
        updated: VersionRecord,
        event: str,
        *,
        signer: SigningKey,
        actor: str,
        reason: str | None,
        data: dict[str, Any],
    ) -> None:
        """Swap ``updated`` into ``index``, sign it and record why (see ``_write_recorded``)."""
        index.records = [updated if r.version == updated.version else r for r in index.records]
        subject = f"{updated.name}@{updated.version}"
        self._write_recorded(
            index, signer, event, subject=subject, actor=actor, reason=reason, data=data
        )

    def _write_recorded(
        self,
        index: ToolIndex,
        signer: SigningKey,
        event: str,
        *,
        subject: str,
        actor: str,
        reason: str | None,
        data: dict[str, Any],
    ) -> None:
        """Sign and write ``index``, then record why; undo the write if it cannot be recorded.

        Callers hold the storage lock, so nobody else writes the index between write and undo.
        """
        before = self._storage.read_index(index.name)
        self._write_index(index, [signer])
        try:
            self.record(event, actor=actor, subject=subject, reason=reason, data=data)
        except AuditError as e:
            if before is not None:
                try:
                    self._storage.write_index(index.name, before)
                except RegistryError as undo:
                    _log.error("registry change NOT undone", change=event, tool=subject)
                    raise AuditError(
                        f"{event} of {subject} is in effect but not in the audit log: "
                        f"{e.message}; undoing it failed too: {undo.message}",
                        hint="free the disk, then check `toolsmith registry versions "
                        f"{index.name}` and record the change by hand",
                    ) from e
            _log.error("registry change undone: audit log refused it", change=event, tool=subject)
            raise AuditError(
                f"{event} of {subject} was not done: {e.message}",
                hint=e.hint,
            ) from e

    def _set_yanked(
        self, ref: str, yanked: bool, reason: str | None, signer: SigningKey | None
    ) -> VersionRecord:
        verb = "yank" if yanked else "unyank"
        name, constraint = parse_ref(ref)
        if not isinstance(constraint, Version):
            raise UsageError(
                f"{verb} needs an exact version, got {ref!r}",
                hint=f"name one version, e.g. {name}@1.2.3",
            )
        key = signer if signer is not None else default_signing_key()
        with self._storage.lock():
            self._require_maintainer(key, f"{verb} {ref}", self.trust.policies())
            index = self._index(name)
            record = self._select(ref, index)
            updated = record.model_copy(
                update={"yanked": yanked, "yank_reason": reason if yanked else None}
            )
            self._replace_recorded(
                index,
                updated,
                verb,
                signer=key,
                actor=f"{_whoami()} (key {key.key_id[:16]})",
                reason=reason,
                data={
                    "digest": record.digest,
                    "status": record.status.value,
                    "was_yanked": record.yanked,
                },
            )
        return updated

    def yank(self, ref: str, reason: str, signer: SigningKey | None = None) -> VersionRecord:
        """Hide a version from ranges and bare names; exact pins still resolve it (PEP 592).
        The index change is signed by ``signer`` (default: the local default key)."""
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
        name, constraint = parse_ref(ref)
        if not isinstance(constraint, Version):
            raise UsageError(
                f"{verb} needs an exact version, got {ref!r}",
                hint=f"name one version, e.g. {name}@1.2.3; "
                "`toolsmith registry list --pending` lists the queue",
            )
        with bound(tool=name, version=str(constraint)), self._storage.lock():
            index = self._index(name)
            record = self._select(ref, index)
            if record.status != VersionStatus.PENDING:
                raise UsageError(
                    f"cannot {verb} {name}@{record.version}: it is {record.status.value}, and only "
                    "pending versions wait for a decision",
                    hint="`toolsmith registry list --pending` lists the versions awaiting one",
                )
            trust = self.trust.policies()
            if approver.key_id not in trust.approvers.keys:
                raise SignatureError(
                    f"key {approver.key_id[:16]} ({approver.name}) is not trusted as an approver "
                    f"by {self.path}",
                    hint="`toolsmith keys trust PUBKEY_FILE --role approver`, then decide again",
                )
            self._verify(record, trust)
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
            updated = record.model_copy(
                update={
                    "status": VersionStatus.PUBLISHED
                    if decision == Decision.APPROVED
                    else VersionStatus.REJECTED,
                    "approval": self._storage.put_blob(envelope),
                }
            )
            self._replace_recorded(
                index,
                updated,
                verb,
                signer=approver,
                actor=f"{self._approver_name(approver)} (key {approver.key_id[:16]})",
                reason=note,
                data={
                    "digest": record.digest,
                    "status": updated.status.value,
                    "approver_key": approver.key_id,
                    "approval": updated.approval,
                },
            )
        _log.info(decision.value, tool=name, version=updated.version, approver=approver.key_id)
        return updated

    def resign(
        self, name: str, signer: SigningKey | None = None, *, dry_run: bool = False
    ) -> builtins.list[VersionRecord]:
        """Vouch for an index that no longer verifies (its signer was untrusted, or it predates
        signed indexes) by signing it with a trusted key; returns its records for review.

        Every version's own signed statement, parts and approval must still verify, so this
        cannot bless a forged version; what it cannot check is the index's own say (which
        versions are listed, which are yanked), which is why a person reviews it first.
        """
        key = signer if signer is not None else default_signing_key()
        if parse_ref(name)[1] is not None:
            raise UsageError(f"resign takes a tool name, got {name!r}", hint="drop the @...")
        with bound(tool=name), self._storage.lock():
            trust = self.trust.policies()
            self._require_maintainer(key, f"re-sign {name}", trust)
            data = self._storage.read_index(name)
            if data is None:
                raise ToolNotFoundError(f"no tool named {name!r} in {self.path}")
            where = f"index of {name!r} in {self.path}"
            restore = f"restore index/{name}.json from a copy"
            try:
                document = signing.unverified_index(data)
            except SignatureError as e:
                raise CorruptRegistryError(f"{where} is unreadable: {e}", hint=restore) from None
            index = _index_document(name, document, where, restore)
            for record in index.records:
                try:
                    self._verify(record, trust)
                except ToolsmithError as e:
                    raise type(e)(
                        f"will not re-sign the index of {name}: {record.version} does not verify: "
                        f"{e.message}",
                        hint=f"restore index/{name}.json (or the version's blobs) from a copy",
                    ) from None
            records = _by_version(index.records)
            if dry_run:
                return records
            self._write_recorded(
                index,
                key,
                "resign",
                subject=name,
                actor=f"{_whoami()} (key {key.key_id[:16]})",
                reason=None,
                data={
                    "versions": [r.version for r in records],
                    "yanked": [r.version for r in records if r.yanked],
                    "serial": index.serial + 1,
                },
            )
        _log.info("index re-signed", tool=name, key=key.key_id)
        return records

    def gc(self, *, dry_run: bool = False) -> GarbageReport:
        """Remove blobs no version names (left by killed publishes and undone approvals) and the
        temporary files of killed writes. Refuses to run while any index fails to read or verify,
        since the blobs such an index names cannot be known."""
        with self._storage.lock():
            referenced: set[str] = set()
            for index in self._each_index(None):
                for r in index.records:
                    referenced |= {r.envelope, *r.parts.values()}
                    if r.approval is not None:
                        referenced.add(r.approval)
            sizes = self._storage.blob_sizes()
            unreferenced = sorted(set(sizes) - referenced)
            report = GarbageReport(
                dry_run=dry_run,
                unreferenced=unreferenced,
                freed_bytes=sum(sizes[d] for d in unreferenced),
                kept=len(sizes) - len(unreferenced),
                leftovers=0,
            )
            if dry_run:
                return report
            for digest in unreferenced:
                self._storage.delete_blob(digest)
            report.leftovers = self._storage.clear_leftovers()
            if unreferenced or report.leftovers:
                self.record(
                    "gc",
                    actor=_whoami(),
                    subject=str(self.path),
                    reason=None,
                    data=report.model_dump(exclude={"dry_run"}),
                )
        _log.info("garbage collected", blobs=len(unreferenced), freed_bytes=report.freed_bytes)
        return report

    def _require_maintainer(self, key: SigningKey, action: str, trust: Policies) -> None:
        """Only a trusted key may sign an index change."""
        if key.key_id not in trust.maintainers.keys:
            raise SignatureError(
                f"cannot {action}: key {key.key_id[:16]} ({key.name}) is not trusted by "
                f"{self.path}, and the index must be signed by a trusted key",
                hint="sign with a trusted key (--key NAME), or trust this one with "
                "`toolsmith keys trust PUBKEY_FILE`",
            )

    def _approver_name(self, approver: SigningKey) -> str:
        """The name the trust store gives the key (the registry's word), else the key's own."""
        trusted = next(
            (k for k in self.trust.trusted_keys() if k.key_id == approver.key_id and k.name), None
        )
        return trusted.name if trusted is not None else approver.name


@functools.lru_cache(maxsize=65536)
def _version(text: str) -> Version:
    """Index versions parse the same every time; parsing was a third of listing a large
    registry."""
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


def _index_document(name: str, document: Any, where: str, restore: str) -> ToolIndex:
    """An index document as a ``ToolIndex`` of ``name``, or ``CorruptRegistryError``."""
    try:
        index = ToolIndex.model_validate(document)
    except ValidationError as e:
        raise CorruptRegistryError(
            f"{where} is unreadable: {e.errors()[0]['msg']}", hint=restore
        ) from None
    if index.name != name or any(r.name != name for r in index.records):
        raise CorruptRegistryError(f"{where} holds records of another tool", hint=restore)
    return index


def _by_version(records: Sequence[VersionRecord]) -> builtins.list[VersionRecord]:
    return sorted(records, key=lambda r: _version(r.version))


@functools.lru_cache(maxsize=1024)
def _load_spec(data: bytes) -> ToolSpec:
    """Validating a spec runs jsonschema meta-validation (~3 ms); verified bytes parse the same
    every time, so the result is memoised on the bytes (callers get a deep copy)."""
    return ToolSpec.model_validate_json(data, context=STORED)


def _refuse_unapproved(record: VersionRecord) -> None:
    ref = f"{record.name}@{record.version}"
    if record.status == VersionStatus.PENDING:
        raise ApprovalRequiredError(
            f"{ref} is pending approval: it cannot be loaded until a person approves it",
            hint=f"a trusted approver runs `toolsmith approve {ref}` "
            f"(or `toolsmith reject {ref} --reason ...`)",
        )
    if record.status == VersionStatus.REJECTED:
        raise ApprovalRequiredError(
            f"{ref} was rejected by an approver and can never be loaded",
            hint=f"`toolsmith registry verify {ref}` shows it; publish a fixed version for review",
        )


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
