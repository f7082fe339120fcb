"""The audit log: an append-only, hash-chained JSONL record of every trust decision.

Each line is one ``AuditEntry``: a sequence number, a timestamp, who did what to which tool and
why, the previous entry's hash, and its own hash (sha256 over the canonical JSON of the entry
without ``hash``). Editing, deleting or reordering an entry breaks the chain at that entry.

A chain alone cannot show that its *last* entries were cut off, so ``<log>.head`` anchors it: a
small file holding the last entry's seq and hash, replaced atomically after every append. Appends
from several processes are serialised with the log's lock (``flock`` on the log file); the log
line is made durable before the head is written, so a crash between the two leaves the head
exactly one entry behind, which both ``append`` and ``verify`` accept (and ``append`` repairs).

Both files live in a registry storage (``toolsmith.registry._storage``): a log at a path is kept
as a registry directory keeps its files (``RepoDir``: never through a link, never a special file or
one with several links), and a registry's own log is kept in that registry's storage, so an
in-memory registry (``toolsmith.testing.MemoryStorage``) has an in-memory log.

A log whose tail does not verify (a damaged or edited last line, a write cut short, a head that
disagrees with the log) is handled as ``on_damage`` says:

- ``"refuse"`` (the registry's log, the metacognition log): every append is refused until an
  operator moves the damaged log aside, so the next honest entry cannot paper over a deleted
  one, and no edit is made unlogged.
- ``"seal"`` (the consumer's log of loads): the damage is sealed and recording goes on, as
  journald starts a new journal file rather than stop logging. ``append`` first writes a
  ``break`` entry whose ``prev`` is the sha256 of every byte of the log before it (the damaged
  bytes included, so they are kept as evidence and cannot be changed again unseen) and whose
  reason names the problem, then chains the entry after it. It says so on the error log.

A break never makes a log verify: ``verify`` reports the first problem, every break, and
whether the chain after the last break is intact, and fails until the operator moves the log and
its head aside (keeping them) to start a clean chain. A forged break (one whose ``prev`` is not
the digest of what precedes it) is reported like any other bad line.

Nothing here is signed: someone who can rewrite the whole log and its head can forge a consistent
history. The chain detects edits by anyone who does not recompute it, and by tools that do not.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from toolsmith.errors import AuditError, RegistryError, UnsafePathError
from toolsmith.log import get_logger
from toolsmith.models import describe
from toolsmith.spec import canonical_json

if TYPE_CHECKING:
    from toolsmith.registry._storage import RegistryStorage

_log = get_logger(__name__)

AuditEvent = Literal[
    "build",
    "publish",
    "approve",
    "reject",
    "yank",
    "unyank",
    "load",
    "gc",
    "init",
    "trust",
    "untrust",
    "threshold",
    "refresh",
    "lesson",
    "retire",
    "prompts",
    "predict",
    "break",
]
AUDIT_EVENTS: tuple[str, ...] = get_args(AuditEvent)
AUDIT_FILE = "audit.jsonl"
# What a log or head file may hold: ~1 million entries, and one small JSON object.
MAX_LOG_BYTES = 512 * 1024 * 1024
MAX_HEAD_BYTES = 4096
GENESIS = "0" * 64
_MOVE_ASIDE = (
    "run `toolsmith audit verify`; keep the damaged log as evidence and move it (and its .head "
    "file) aside to start a new chain"
)
OnDamage = Literal["refuse", "seal"]


class _DamagedTail(AuditError):
    """The log's tail does not verify: what ``on_damage`` decides about. ``problem`` says what
    is wrong, for the break entry that seals it."""

    def __init__(self, message: str, *, hint: str, problem: str) -> None:
        super().__init__(message, hint=hint)
        self.problem = problem


class AuditEntry(BaseModel):
    """One decision: ``actor`` did ``event`` to ``subject`` because ``reason``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seq: int = Field(ge=1)
    timestamp: str
    event: AuditEvent
    actor: str
    subject: str
    reason: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    prev: str
    hash: str

    def computed_hash(self) -> str:
        return entry_hash(self.model_dump(mode="json", exclude={"hash"}))


class AuditVerification(BaseModel):
    """What ``verify`` found: ``ok``, or the first bad seq and what is wrong with it."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    entries: int = Field(
        description="intact entries: before the first problem, and in the chain after each break"
    )
    first_bad_seq: int | None = None
    problem: str | None = None
    head_seq: int | None = Field(default=None, description="seq the head file anchors")
    breaks: list[int] = Field(
        default_factory=list, description="seqs (line numbers) of break entries sealing damage"
    )
    tail_intact: bool = Field(
        default=True,
        description="the chain after the last break (or from the start) is intact up to the "
        "head, so appends go on",
    )


class _Head(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seq: int = Field(ge=0)
    hash: str


def entry_hash(fields: dict[str, Any]) -> str:
    """sha256 over the canonical JSON of an entry's fields other than ``hash``."""
    return hashlib.sha256(canonical_json(fields)).hexdigest()


class AuditLog:
    """The audit log at ``path`` (conventionally ``<registry>/audit.jsonl``) and its head file.

    With ``storage``, ``path`` is the log's name inside that registry storage (``Registry.audit``
    is ``AuditLog(AUDIT_FILE, storage=registry.storage)``); ``path`` and ``head_path`` then name
    the files for messages (a file on disk only when the storage is a directory)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        storage: RegistryStorage | None = None,
        on_damage: OnDamage = "refuse",
    ) -> None:
        # (toolsmith.registry imports this module: the storage is imported when first needed)
        from toolsmith.registry._storage import RepoDir

        if storage is None:
            full = Path(path)
            self._storage: RegistryStorage = RepoDir(full.parent)
            self._rel = full.name
            self.path = full
        else:
            self._storage = storage
            self._rel = os.fspath(path)
            self.path = Path(storage.location, self._rel)
        self._head_rel = self._rel + ".head"
        self.head_path = self.path.with_name(self.path.name + ".head")
        self.on_damage = on_damage

    @classmethod
    def for_registry(cls, registry_path: str | os.PathLike[str]) -> AuditLog:
        return cls(Path(registry_path) / AUDIT_FILE)

    def exists(self) -> bool:
        """Whether the log has been started (anything is where its file belongs)."""
        with self._errors():
            return self._storage.exists(self._rel)

    def append(
        self,
        event: str,
        *,
        actor: str,
        subject: str,
        reason: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> AuditEntry:
        """Record one decision; safe against concurrent appends from other processes. A damaged
        tail raises AuditError, or is sealed with a break entry first (``on_damage``)."""
        if event not in AUDIT_EVENTS:
            raise AuditError(
                f"unknown audit event {event!r}",
                hint=f"use one of {', '.join(AUDIT_EVENTS)}",
            )
        try:
            payload = json.loads(json.dumps(data or {}, allow_nan=False))
        except (TypeError, ValueError) as e:
            raise AuditError(
                f"audit data for {event} {subject} is not JSON: {e}",
                hint="pass plain strings, numbers, lists and dicts",
            ) from None
        with self._errors(), self._locked(append=True) as f:
            try:
                last: AuditEntry | None = self._checked_tail(f)
            except _DamagedTail as e:
                if self.on_damage == "refuse":
                    raise
                last = self._seal(f, e.problem, actor)
            fields: dict[str, Any] = {
                "seq": (last.seq if last else 0) + 1,
                "timestamp": _now(),
                "event": event,
                "actor": actor,
                "subject": subject,
                "reason": reason,
                "data": payload,
                "prev": last.hash if last else GENESIS,
            }
            return self._write(f, fields)

    def _write(self, f: IO[bytes], fields: dict[str, Any]) -> AuditEntry:
        entry = AuditEntry(**fields, hash=entry_hash(fields))
        f.seek(0, os.SEEK_END)
        f.write(canonical_json(entry.model_dump(mode="json")) + b"\n")
        f.flush()  # durable before the head names it
        self._write_head(_Head(seq=entry.seq, hash=entry.hash))
        return entry

    def _seal(self, f: IO[bytes], problem: str, actor: str) -> AuditEntry:
        """Append a break entry sealing everything before it (damage included): its seq is its
        line number, its ``prev`` the sha256 of the bytes before it."""
        f.seek(0)
        before = f.read()
        if before and not before.endswith(b"\n"):  # a write cut short stays, as its own line
            f.write(b"\n")
            before += b"\n"
        seq = before.count(b"\n") + 1
        digest = hashlib.sha256(before).hexdigest()
        _log.error(
            "audit log damaged: sealed it with a break entry and went on recording",
            log=str(self.path),
            problem=problem,
            break_seq=seq,
            fix="run `toolsmith audit verify --consumer` to see what was damaged; the damaged "
            "lines stay in the log as evidence",
        )
        fields: dict[str, Any] = {
            "seq": seq,
            "timestamp": _now(),
            "event": "break",
            "actor": actor,
            "subject": self.path.name,
            "reason": problem,
            "data": {"sealed_bytes": len(before)},
            "prev": digest,
        }
        return self._write(f, fields)

    def entries(self) -> Iterator[AuditEntry]:
        """Every entry in order; an unreadable line is an AuditError naming its line number,
        unless a break entry after it has sealed it (then it is left out: ``verify`` names it)."""
        with self._errors(), self._locked(append=False) as f:
            lines = f.read().splitlines()
        parsed = [_parse(line) for line in lines]
        breaks = [
            n for n, e in enumerate(parsed, 1) if isinstance(e, AuditEntry) and e.event == "break"
        ]
        sealed = max(breaks, default=0)
        for number, entry in enumerate(parsed, 1):
            if isinstance(entry, str) and number < sealed:
                continue
            if isinstance(entry, str):
                raise AuditError(
                    f"line {number} of {self.path} is not an audit entry: {entry}",
                    hint=f"run `toolsmith audit verify` to see where {self.path} went wrong",
                )
            yield entry

    def verify(self) -> AuditVerification:
        """Walk the chain from the start and compare its end with the head file."""
        with self._errors():
            if not self._storage.exists(self._rel):
                head = self._read_head()
                if head is not None:
                    return AuditVerification(
                        ok=False,
                        entries=0,
                        first_bad_seq=1,
                        problem=f"the log is missing but its head anchors seq {head.seq}",
                        head_seq=head.seq,
                    )
                return AuditVerification(ok=True, entries=0)
            with self._locked(append=False) as f:
                data = f.read()
                head = self._read_head()
        head_seq = head.seq if head else None
        prev, count, last = GENESIS, 0, 0
        first: tuple[int, str] | None = None
        breaks: list[int] = []
        damaged = False  # a problem not (yet) sealed by a break
        hashes: dict[int, str] = {}
        lines = data.split(b"\n")
        complete = lines.pop() == b""
        if not complete:
            lines.append(b"")  # the incomplete last line, reported below
        offset = 0
        for number, line in enumerate(lines, 1):
            entry = _parse(line)
            if _is_break(entry, number, data, offset):
                assert isinstance(entry, AuditEntry)
                breaks.append(number)
                first = first or (number, f"seq {number} is a break entry: {entry.reason}")
                damaged, problem = False, None
            elif damaged:
                problem = "after damage"  # in the stretch a later break may seal; not reported
            elif not complete and number == len(lines):
                problem = f"line {number} is incomplete (a write that did not finish)"
            else:
                problem = _line_problem(number, entry, prev)
            offset += len(line) + 1
            if problem is not None:
                if not damaged:
                    first = first or (number, problem)
                damaged = True
                continue
            assert isinstance(entry, AuditEntry)
            prev, last = entry.hash, number
            count += 1
            hashes[number] = prev
        if not damaged:
            bad = _head_problem(head, last, hashes)
            if bad is not None:
                first, damaged = first or bad, True
        if first is None:
            return AuditVerification(ok=True, entries=count, head_seq=head_seq)
        return AuditVerification(
            ok=False,
            entries=count,
            first_bad_seq=first[0],
            problem=first[1],
            head_seq=head_seq,
            breaks=breaks,
            tail_intact=not damaged,
        )

    # -- storage ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """The storage's failures as this log's: a link or special file stays an
        ``UnsafePathError`` and an over-cap file a ``MetadataTooLargeError``; any other
        ``RegistryError`` (a failing disk) is an ``AuditError`` naming the log."""
        try:
            yield
        except UnsafePathError:
            raise
        except RegistryError as e:
            raise AuditError(
                f"cannot use audit log {self.path}: {e.message}",
                hint="check the registry path and its permissions",
            ) from e

    def _locked(self, *, append: bool) -> contextlib.AbstractContextManager[IO[bytes]]:
        return self._storage.open_log(self._rel, append=append, cap=MAX_LOG_BYTES)

    def _checked_tail(self, f: IO[bytes]) -> AuditEntry | None:
        """The last entry, if the head agrees it is the last (or lags it by one, after a crash)."""
        last = _last_entry(f, self.path)
        head = self._read_head()
        if last is None and head is None:
            return None
        refused = None
        if last is None:
            assert head is not None
            refused = f"the log is empty but its head anchors seq {head.seq}"
        elif head is None:
            refused = f"the log has entries up to seq {last.seq} but its head file is missing"
        elif head.seq == last.seq and head.hash != last.hash:
            refused = f"seq {last.seq} does not match the hash its head file anchors"
        elif head.seq > last.seq:
            refused = f"the head anchors seq {head.seq} but the log ends at seq {last.seq}"
        elif head.seq < last.seq - 1 or (head.seq == last.seq - 1 and head.hash != last.prev):
            refused = f"the head anchors seq {head.seq}, which does not precede seq {last.seq}"
        if refused is not None:
            raise _DamagedTail(
                f"refusing to append to audit log {self.path}: {refused}",
                hint=_MOVE_ASIDE,
                problem=refused,
            )
        return last

    def _read_head(self) -> _Head | None:
        data = self._storage.read(self._head_rel, MAX_HEAD_BYTES)
        if data is None:
            return None
        try:
            return _Head.model_validate_json(data)
        except ValidationError as e:
            raise _DamagedTail(
                f"audit head file {self.head_path} is unreadable: {e}",
                hint="run `toolsmith audit verify`; restore the head file or move the log aside",
                problem=f"the head file is damaged ({describe(e)})",
            ) from None

    def _write_head(self, head: _Head) -> None:
        self._storage.write(self._head_rel, head.model_dump_json().encode())


def _parse(line: bytes) -> AuditEntry | str:
    try:
        return AuditEntry.model_validate_json(line)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        return f"{where}: {err['msg']}" if where else err["msg"]


def _last_entry(f: IO[bytes], path: Path) -> AuditEntry | None:
    """The last line of the log, read backwards from the end so appends stay O(1)."""
    end = f.seek(0, os.SEEK_END)
    if end == 0:
        return None
    block = min(end, 4096)
    while True:
        f.seek(end - block)
        tail = f.read(block)
        if not tail.endswith(b"\n"):
            raise _DamagedTail(
                f"audit log {path} ends in an incomplete entry",
                hint=_MOVE_ASIDE,
                problem="the last line is incomplete (a write that did not finish)",
            )
        start = tail.rfind(b"\n", 0, len(tail) - 1)
        if start >= 0 or block == end:
            line = tail[start + 1 : -1]
            break
        block = min(end, block * 4)
    entry = _parse(line)
    if isinstance(entry, str) or entry.computed_hash() != entry.hash:
        why = entry if isinstance(entry, str) else "its content does not match its hash"
        raise _DamagedTail(
            f"the last entry of audit log {path} is damaged or edited",
            hint=_MOVE_ASIDE,
            problem=f"the last line is damaged or edited ({why})",
        )
    return entry


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _is_break(entry: AuditEntry | str, number: int, data: bytes, offset: int) -> bool:
    """Whether ``entry``, on line ``number`` starting at byte ``offset`` of the log ``data``, is
    a genuine break: intact, at its line, sealing exactly the bytes before it."""
    return (
        isinstance(entry, AuditEntry)
        and entry.event == "break"
        and entry.seq == number
        and entry.computed_hash() == entry.hash
        and entry.prev == hashlib.sha256(data[:offset]).hexdigest()
    )


def _line_problem(number: int, entry: AuditEntry | str, prev: str) -> str | None:
    """What is wrong with the entry on line ``number`` of a chain whose last hash is ``prev``."""
    if isinstance(entry, str):
        return f"line {number} is not an audit entry: {entry}"
    if entry.seq > number:
        missing = entry.seq - number
        return f"expected seq {number}, found seq {entry.seq}: {missing} entry(ies) deleted"
    if entry.seq < number:
        return f"expected seq {number}, found seq {entry.seq}: entries reordered or duplicated"
    if entry.prev != prev:
        return f"seq {number} does not chain to seq {number - 1} (its prev hash differs)"
    if entry.computed_hash() != entry.hash:
        return f"seq {number} was edited (its content does not match its hash)"
    return None


def _head_problem(head: _Head | None, count: int, hashes: dict[int, str]) -> tuple[int, str] | None:
    """The first bad seq and the problem, comparing the end of an intact chain with the head."""
    if head is None:
        return (count, f"the head file is missing for a log of {count} entries") if count else None
    if head.seq > count:
        deleted = f"seq {count + 1}" if head.seq == count + 1 else f"seq {count + 1}-{head.seq}"
        return (
            count + 1,
            f"the head anchors seq {head.seq} but the log ends at seq {count}: {deleted} deleted",
        )
    if hashes.get(head.seq, GENESIS) != head.hash:
        return head.seq, f"seq {head.seq} does not match the hash its head file anchors"
    if head.seq < count - 1:
        return head.seq + 2, f"entries after seq {head.seq + 1} are not anchored by the head file"
    return None
