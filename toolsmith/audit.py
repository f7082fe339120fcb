"""The audit log: an append-only, hash-chained JSONL record of every trust decision.

Each line is one ``AuditEntry``: a sequence number, a timestamp, who did what to which tool and
why, the previous entry's hash, and its own hash (sha256 over the canonical JSON of the entry
without ``hash``). Editing, deleting or reordering an entry breaks the chain at that entry.

A chain alone cannot show that its *last* entries were cut off, so ``<log>.head`` anchors it: a
small file holding the last entry's seq and hash, replaced atomically after every append. Appends
from several processes are serialised with ``flock`` on the log; the log line is written before
the head, so a crash between the two leaves the head exactly one entry behind, which both
``append`` and ``verify`` accept (and ``append`` repairs). Appending to a log that does not verify
at its tail is refused: the next honest entry must not paper over a deleted one.

Nothing here is signed: someone who can rewrite the whole log and its head can forge a consistent
history. The chain detects edits by anyone who does not recompute it, and by tools that do not.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from toolsmith.errors import AuditError, UnsafePathError
from toolsmith.files import NotRegularFileError, atomic_write, flocked, open_nofollow
from toolsmith.spec import canonical_json

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
    entries: int = Field(description="entries read before the first problem")
    first_bad_seq: int | None = None
    problem: str | None = None
    head_seq: int | None = Field(default=None, description="seq the head file anchors")


class _Head(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seq: int = Field(ge=0)
    hash: str


def entry_hash(fields: dict[str, Any]) -> str:
    """sha256 over the canonical JSON of an entry's fields other than ``hash``."""
    return hashlib.sha256(canonical_json(fields)).hexdigest()


class AuditLog:
    """The audit log at ``path`` (conventionally ``<registry>/audit.jsonl``) and its head file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.head_path = self.path.with_name(self.path.name + ".head")

    @classmethod
    def for_registry(cls, registry_path: str | os.PathLike[str]) -> AuditLog:
        return cls(Path(registry_path) / AUDIT_FILE)

    def append(
        self,
        event: str,
        *,
        actor: str,
        subject: str,
        reason: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> AuditEntry:
        """Record one decision; safe against concurrent appends from other processes."""
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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked("ab+", shared=False) as f:
            last = self._checked_tail(f)
            fields: dict[str, Any] = {
                "seq": (last.seq if last else 0) + 1,
                "timestamp": datetime.now(UTC).isoformat(timespec="microseconds"),
                "event": event,
                "actor": actor,
                "subject": subject,
                "reason": reason,
                "data": payload,
                "prev": last.hash if last else GENESIS,
            }
            entry = AuditEntry(**fields, hash=entry_hash(fields))
            f.seek(0, os.SEEK_END)
            f.write(canonical_json(entry.model_dump(mode="json")) + b"\n")
            f.flush()
            os.fsync(f.fileno())
            self._write_head(_Head(seq=entry.seq, hash=entry.hash))
        return entry

    def entries(self) -> Iterator[AuditEntry]:
        """Every entry in order; an unreadable line is an AuditError naming its line number."""
        with self._locked("rb", shared=True) as f:
            lines = f.read().splitlines()
        for number, line in enumerate(lines, 1):
            entry = _parse(line)
            if isinstance(entry, str):
                raise AuditError(
                    f"line {number} of {self.path} is not an audit entry: {entry}",
                    hint=f"run `toolsmith audit verify` to see where {self.path} went wrong",
                )
            yield entry

    def verify(self) -> AuditVerification:
        """Walk the chain from the start and compare its end with the head file."""
        if not self.path.exists():
            if self.head_path.exists():
                anchored = self._read_head().seq
                return AuditVerification(
                    ok=False,
                    entries=0,
                    first_bad_seq=1,
                    problem=f"the log is missing but its head anchors seq {anchored}",
                    head_seq=anchored,
                )
            return AuditVerification(ok=True, entries=0)
        with self._locked("rb", shared=True) as f:
            data = f.read()
            head = self._read_head() if self.head_path.exists() else None
        head_seq = head.seq if head else None
        prev, count = GENESIS, 0
        hashes: dict[int, str] = {}
        lines = data.split(b"\n")
        complete = lines.pop() == b""
        if not complete:
            lines.append(b"")  # the incomplete last line, reported below
        for number, line in enumerate(lines, 1):
            if not complete and number == len(lines):
                problem: str | None = f"line {number} is incomplete (a write that did not finish)"
            else:
                problem = _line_problem(number, _parse(line), prev)
            if problem is not None:
                return AuditVerification(
                    ok=False,
                    entries=count,
                    first_bad_seq=number,
                    problem=problem,
                    head_seq=head_seq,
                )
            prev = json.loads(line)["hash"]
            count += 1
            hashes[count] = prev
        bad = _head_problem(head, count, hashes)
        if bad is not None:
            seq, problem = bad
            return AuditVerification(
                ok=False, entries=count, first_bad_seq=seq, problem=problem, head_seq=head_seq
            )
        return AuditVerification(ok=True, entries=count, head_seq=head_seq)

    # -- files ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, mode: Literal["rb", "ab+"], *, shared: bool) -> Iterator[IO[bytes]]:
        f = _open(self.path, mode, MAX_LOG_BYTES)  # (closed below, after the lock)
        with f, flocked(f, shared=shared):
            yield f

    def _checked_tail(self, f: IO[bytes]) -> AuditEntry | None:
        """The last entry, if the head agrees it is the last (or lags it by one, after a crash)."""
        last = _last_entry(f, self.path)
        head = self._read_head() if self.head_path.exists() else None
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
            raise AuditError(
                f"refusing to append to audit log {self.path}: {refused}",
                hint=_MOVE_ASIDE,
            )
        return last

    def _read_head(self) -> _Head:
        f = _open(self.head_path, "rb", MAX_HEAD_BYTES)
        try:
            with f:
                return _Head.model_validate_json(f.read(MAX_HEAD_BYTES))
        except (OSError, ValidationError) as e:
            raise AuditError(
                f"audit head file {self.head_path} is unreadable: {e}",
                hint="run `toolsmith audit verify`; restore the head file or move the log aside",
            ) from None

    def _write_head(self, head: _Head) -> None:
        atomic_write(self.head_path, head.model_dump_json().encode())


def _open(path: Path, mode: Literal["rb", "ab+"], cap: int) -> IO[bytes]:
    """``path`` opened as the registry's storage opens its files (``RepoDir``): a link, a special
    file (a FIFO would block every audit command and edit), a file with several links or over
    ``cap`` bytes is an UnsafePathError (``toolsmith.files.open_nofollow``)."""
    try:
        return open_nofollow(path, mode, max_bytes=cap)
    except NotRegularFileError as e:
        why = e.strerror
    except OSError as e:
        if e.errno != errno.ELOOP:
            raise AuditError(
                f"cannot open audit file {path}: {e.strerror}",
                hint="check the registry path and its permissions",
            ) from None
        why = "it is a symlink"
    raise UnsafePathError(
        f"refusing audit file {path}: {why}",
        hint="something replaced the audit log or its head with a link or special file; remove "
        "it and restore both from a copy (links and special files are never opened)",
    )


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
            raise AuditError(
                f"audit log {path} ends in an incomplete entry",
                hint=_MOVE_ASIDE,
            )
        start = tail.rfind(b"\n", 0, len(tail) - 1)
        if start >= 0 or block == end:
            line = tail[start + 1 : -1]
            break
        block = min(end, block * 4)
    entry = _parse(line)
    if isinstance(entry, str) or entry.computed_hash() != entry.hash:
        raise AuditError(
            f"the last entry of audit log {path} is damaged or edited",
            hint=_MOVE_ASIDE,
        )
    return entry


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
