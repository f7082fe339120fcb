"""The registry storage contract, run against both storages: the directory (``RepoDir``) and the
in-memory fake users get in ``toolsmith.testing`` (``MemoryStorage``), so the fake cannot drift.

The first half checks the interface itself (caps, atomic replace, listings, locks, logs, the one
error family out); the second half runs a registry on each storage through publish, list, load,
yank, approve and refresh, with tampering and oversized metadata refused and nothing changed.
"""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import pytest

from tests.test_registry_support import code_for, make_spec, passing_report, provenance
from toolsmith.errors import (
    AuditError,
    DigestMismatchError,
    MetadataTooLargeError,
    RegistryError,
    UnsafePathError,
    UsageError,
)
from toolsmith.keys import default_signing_key
from toolsmith.lessons import Lesson, LessonMemory, Reflection
from toolsmith.registry import KeyRole, Registry, RegistryStorage, VersionStatus
from toolsmith.registry._storage import RepoDir
from toolsmith.signing import SigningKey, public_pem
from toolsmith.testing import MemoryStorage


@pytest.fixture(params=["directory", "memory"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> RegistryStorage:
    if request.param == "directory":
        return RepoDir(tmp_path / "reg")
    return MemoryStorage()


ROOT_FILES = ("audit.jsonl", "audit.jsonl.head", "lessons.jsonl")


def contents(storage: RegistryStorage, rel: str | None = None) -> dict[str, bytes]:
    """Every file of a registry (path -> bytes), walked through the interface itself: the
    metadata and targets trees and the logs at the root (paths are never empty, so the root
    itself is not listed)."""
    if rel is None:
        out = {n: storage.read(n, 1 << 30) or b"" for n in ROOT_FILES if storage.exists(n)}
        for top in ("metadata", "targets"):
            out |= contents(storage, top)
        return out
    out = {f"{rel}/{n}": storage.read(f"{rel}/{n}", 1 << 30) or b"" for n in storage.files(rel)}
    for sub in storage.dirs(rel):
        out |= contents(storage, f"{rel}/{sub}")
    return out


# -- the interface -----------------------------------------------------------------------------


def test_a_write_replaces_the_whole_file_and_reads_give_it_back(storage: RegistryStorage) -> None:
    """Writes create parent directories and replace a file whole (a shorter write leaves no tail);
    listings are sorted names of files and directories directly inside."""
    storage.write("metadata/b.json", b"long content")
    storage.write("metadata/b.json", b"short")
    storage.write("metadata/a.json", b"a")
    storage.write("metadata/sub/c.json", b"c")
    assert storage.read("metadata/b.json", 100) == b"short"
    assert storage.size("metadata/b.json") == 5
    assert storage.files("metadata") == ["a.json", "b.json"]
    assert storage.dirs("metadata") == ["sub"]
    assert storage.exists("metadata/sub") and storage.exists("metadata/a.json")


def test_missing_files_read_as_none_and_list_as_empty(storage: RegistryStorage) -> None:
    """Nothing there is no error for read, exists, listings or delete; sizing it is."""
    assert storage.read("metadata/timestamp.json", 100) is None
    assert not storage.exists("metadata/timestamp.json")
    assert storage.files("targets") == [] and storage.dirs("targets") == []
    storage.delete("metadata/timestamp.json")
    with pytest.raises(RegistryError):
        storage.size("metadata/timestamp.json")


def test_a_read_over_its_cap_is_metadata_too_large(storage: RegistryStorage) -> None:
    """TUF's endless-data attack: a file one byte over the reader's cap is refused, not cut."""
    storage.write("metadata/timestamp.json", b"x" * 10)
    assert storage.read("metadata/timestamp.json", 10) == b"x" * 10
    with pytest.raises(MetadataTooLargeError, match="over its size cap of 9 bytes"):
        storage.read("metadata/timestamp.json", 9)


def test_delete_removes_that_file_only(storage: RegistryStorage) -> None:
    """Deleting one file leaves its neighbours."""
    storage.write("targets/x/1.code", b"1")
    storage.write("targets/x/2.code", b"2")
    storage.delete("targets/x/1.code")
    assert storage.files("targets/x") == ["2.code"]
    assert storage.read("targets/x/1.code", 10) is None


@pytest.mark.parametrize("rel", ["../escape", "/etc/passwd", "a//b", "a/./b", "", "a/\0b"])
def test_paths_leaving_the_storage_are_refused(storage: RegistryStorage, rel: str) -> None:
    """Absolute, empty, dot and NUL components are a RegistryError for every operation."""
    for op in (
        lambda: storage.read(rel, 10),
        lambda: storage.write(rel, b"x"),
        lambda: storage.delete(rel),
        lambda: storage.exists(rel),
    ):
        with pytest.raises(RegistryError, match="refusing registry path"):
            op()
    assert contents(storage) == {}


def test_a_directory_where_a_file_belongs_is_refused(storage: RegistryStorage) -> None:
    """Reading a directory as a file, or a path through a file, is an UnsafePathError; writing
    over a directory is a RegistryError and keeps what was there."""
    storage.write("targets/tools/code", b"c")
    with pytest.raises(UnsafePathError, match="not a regular file"):
        storage.read("targets/tools", 10)
    with pytest.raises(UnsafePathError, match="not a directory"):
        storage.read("targets/tools/code/deeper", 10)
    with pytest.raises(RegistryError):
        storage.write("targets/tools", b"x")
    assert contents(storage) == {"targets/tools/code": b"c"}


def test_the_lock_is_exclusive(storage: RegistryStorage) -> None:
    """A second holder waits until the first leaves the block."""
    order: list[str] = []

    def second() -> None:
        with storage.lock():
            order.append("second")

    with storage.lock():
        waiter = threading.Thread(target=second)
        waiter.start()
        waiter.join(0.5)
        assert waiter.is_alive(), "the second holder got the lock while the first held it"
        order.append("first done")
    waiter.join()
    assert order == ["first done", "second"]


def test_a_log_appends_at_its_end_and_reads_back(storage: RegistryStorage) -> None:
    """Writes to an appendable log land at its end wherever the handle points; a missing log
    reads as empty and is not created by reading; a read handle cannot write."""
    with storage.open_log("audit.jsonl", append=False, cap=100) as f:
        assert f.read() == b""
    assert not storage.exists("audit.jsonl")
    with storage.open_log("audit.jsonl", append=True, cap=100) as f:
        f.write(b"one\n")
        f.seek(0)
        assert f.read() == b"one\n"
        f.seek(0)
        f.write(b"two\n")
        f.flush()
    with storage.open_log("audit.jsonl", append=False, cap=100) as f:
        assert f.read() == b"one\ntwo\n"
        with pytest.raises(io.UnsupportedOperation):
            f.write(b"three\n")
    assert storage.read("audit.jsonl", 100) == b"one\ntwo\n"


def test_a_log_over_its_cap_is_refused_when_opened(storage: RegistryStorage) -> None:
    """A log already over its cap is refused before anything is read or appended."""
    storage.write("lessons.jsonl", b"x" * 20)
    for append in (False, True):
        too_large = pytest.raises(MetadataTooLargeError, match="over its size cap of 10 bytes")
        with too_large, storage.open_log("lessons.jsonl", append=append, cap=10):
            pass
    assert storage.read("lessons.jsonl", 100) == b"x" * 20


def test_errors_in_the_block_pass_through_untouched(storage: RegistryStorage) -> None:
    """The caller's own exception inside a lock or log block is not turned into a storage
    error, and the lock is released after it."""
    with pytest.raises(KeyError), storage.lock():
        raise KeyError("mine")
    with pytest.raises(KeyError), storage.open_log("audit.jsonl", append=True, cap=100):
        raise KeyError("mine")
    with storage.lock():
        pass


class _Failing(MemoryStorage):
    """A backend whose disk fails in its own way (an OSError, a ValueError)."""

    def _read(self, rel: str, limit: int) -> bytes | None:
        raise OSError(5, "Input/output error")

    def _files(self, rel_dir: str) -> list[str]:
        raise ValueError("backend bug")


def test_a_backend_failure_comes_out_as_a_registry_error() -> None:
    """Whatever a backend raises leaves the public methods as a RegistryError naming the storage
    and the operation (python-tuf's FetcherInterface rule), with the cause kept."""
    failing = _Failing("broken")
    with pytest.raises(RegistryError, match="memory:broken cannot read metadata/x") as raised:
        failing.read("metadata/x", 10)
    assert isinstance(raised.value.__cause__, OSError)
    with pytest.raises(RegistryError, match="cannot list targets: ValueError: backend bug"):
        failing.files("targets")


# -- a registry on each storage ----------------------------------------------------------------


@pytest.fixture
def publisher() -> SigningKey:
    return SigningKey.generate("publisher")


@pytest.fixture
def approver() -> SigningKey:
    return SigningKey.generate("alice")


@pytest.fixture
def reg(storage: RegistryStorage, publisher: SigningKey, approver: SigningKey) -> Registry:
    """A registry on ``storage``: ``publisher`` holds root and targets, ``approver`` approves,
    the key store's default key holds the online roles."""
    online = [default_signing_key()]
    reg = Registry(storage=storage)
    reg.init(root=[publisher], targets=[publisher], snapshot=online, timestamp=online)
    reg.trust_key(public_pem(approver.public_key), "alice", KeyRole.APPROVER, signer=publisher)
    return reg


def publish(
    reg: Registry,
    signer: SigningKey,
    version: str,
    status: VersionStatus = VersionStatus.PUBLISHED,
) -> str:
    """Publish add_ints@``version``; returns the sha256 of its code part."""
    record = reg.publish(
        make_spec(),
        code_for("add_ints"),
        passing_report(),
        provenance(),
        version=version,
        signer=signer,
        status=status,
    )
    return record.parts["code"]


def test_publish_list_load_yank_on_either_storage(reg: Registry, publisher: SigningKey) -> None:
    """The whole maintainer path works the same on both storages: versions publish, list,
    verify, load and run; a yank hides a version from ranges; every edit is audited."""
    publish(reg, publisher, "1.0.0")
    publish(reg, publisher, "1.1.0")
    assert [r.version for r in reg.list()] == ["1.1.0"]
    assert [r.version for r in reg.versions("add_ints")] == ["1.0.0", "1.1.0"]
    assert all(r.ok for r in reg.verify())
    with reg.load("add_ints@^1", runtime="restricted") as tool:
        assert tool(a=2, b=3) == 5
    reg.yank("add_ints@1.1.0", "wrong sign", publisher)
    assert reg.resolve("add_ints").version == "1.0.0"
    assert reg.resolve("add_ints@1.1.0").yanked
    events = [e.event for e in reg.audit.entries()]
    assert events == ["init", "trust", "publish", "publish", "yank"]
    assert reg.audit.verify().ok


def test_approve_and_refresh_on_either_storage(
    reg: Registry, publisher: SigningKey, approver: SigningKey
) -> None:
    """A pending version resolves only once approved; refresh re-signs the timestamp as a new
    version that readers pick up."""
    publish(reg, publisher, "1.0.0", status=VersionStatus.PENDING)
    assert [r.version for r in reg.pending()] == ["1.0.0"]
    reg.approve("add_ints@1.0.0", approver, "looks right")
    assert reg.find("add_ints").status == VersionStatus.PUBLISHED
    assert reg.resolve("add_ints").version == "1.0.0"
    before = reg.storage.read("metadata/timestamp.json", 16_384)
    version = reg.refresh()
    assert reg.storage.read("metadata/timestamp.json", 16_384) != before
    reader = Registry(storage=reg.storage)
    assert reader.resolve("add_ints").version == "1.0.0"
    assert reader._view().timestamp_version == version


def test_tampered_bytes_in_storage_are_refused_and_nothing_changes(
    reg: Registry, publisher: SigningKey
) -> None:
    """A code blob edited in the storage after publishing: resolve and load refuse it, and the
    storage is exactly as the attacker left it (the refusal wrote nothing there)."""
    code = publish(reg, publisher, "1.0.0")
    [path] = [
        f"targets/tools/add_ints/1.0.0/{n}"
        for n in reg.storage.files("targets/tools/add_ints/1.0.0")
        if n.startswith(code)
    ]
    reg.storage.write(path, code_for("add_ints", "a - b").encode())
    tampered = contents(reg.storage)
    with pytest.raises(DigestMismatchError, match="code"):
        reg.resolve("add_ints")
    with pytest.raises(DigestMismatchError):
        Registry(storage=reg.storage).load("add_ints", runtime="restricted")
    assert contents(reg.storage) == tampered


def test_oversized_metadata_in_storage_is_refused(reg: Registry, publisher: SigningKey) -> None:
    """Endless data: a timestamp over its 16 kB cap is refused before it is parsed."""
    publish(reg, publisher, "1.0.0")
    reg.storage.write("metadata/timestamp.json", b" " * 20_000)
    with pytest.raises(MetadataTooLargeError):
        Registry(storage=reg.storage).resolve("add_ints")


def test_an_edited_audit_entry_in_storage_breaks_the_chain(
    reg: Registry, publisher: SigningKey
) -> None:
    """The registry's audit log lives in its storage: an entry edited there fails verification
    at its seq, and the next edit is refused rather than chained onto it."""
    publish(reg, publisher, "1.0.0")
    log = reg.storage.read("audit.jsonl", 1 << 20)
    assert log is not None and log.count(b"\n") == 3
    lines = log.splitlines(keepends=True)
    reg.storage.write("audit.jsonl", b"".join([*lines[:2], lines[2].replace(b"1.0.0", b"6.6.6")]))
    result = reg.audit.verify()
    assert (result.ok, result.first_bad_seq) == (False, 3)
    with pytest.raises(AuditError, match=r"yank of add_ints@1\.0\.0 was not done"):
        reg.yank("add_ints@1.0.0", "test", publisher)
    assert not reg.find("add_ints@1.0.0").yanked


def test_a_registry_takes_a_location_or_a_storage_not_both(tmp_path: Path) -> None:
    """Both at once is a usage error naming each; a storage's location names the registry."""
    memory = MemoryStorage("named")
    with pytest.raises(UsageError, match=r"both a location .* and a storage \(memory:named\)"):
        Registry(tmp_path, storage=memory)
    reg = Registry(storage=memory)
    assert reg.location == reg.path == "memory:named"
    assert Registry(storage=RepoDir(tmp_path)).path == tmp_path


def test_two_memory_storages_are_two_registries(publisher: SigningKey) -> None:
    """Each MemoryStorage is its own registry with its own trust: publishing into one leaves
    the other empty (their locations differ, so no pinned root is shared)."""
    first, second = Registry(storage=MemoryStorage()), Registry(storage=MemoryStorage())
    publish(first, default_signing_key(), "1.0.0")
    assert [r.version for r in first.list()] == ["1.0.0"]
    assert second.list() == [] and second.storage.exists("metadata") is False


def test_lessons_are_kept_in_the_registrys_storage(reg: Registry) -> None:
    """Lessons live beside the registry in its storage: one added is audited, listed, and found
    in the storage's lessons.jsonl; a line planted there without an audit entry stays
    unaudited."""
    memory = LessonMemory(reg)
    fields = {
        "created_at": "2026-01-01T00:00:00+00:00",
        "build_id": "b1",
        "task": "add two integers",
        "tool": "add_ints",
        "description": "Add two integers.",
        "outcome": "failed",
        "model": "scripted",
        "reflection": Reflection(assumed="the name", went_wrong="the module defined no add_ints"),
    }
    lesson = Lesson(id="lesson-000000000001", **fields)
    memory.add(lesson)
    planted = lesson.model_copy(update={"id": "lesson-000000000002", "build_id": "b2"})
    with reg.storage.open_log("lessons.jsonl", append=True, cap=1 << 20) as f:
        f.write(json.dumps({"kind": "lesson", "lesson": planted.model_dump(mode="json")}).encode())
        f.write(b"\n")
    assert {x.id: x.audited for x in memory.all()} == {lesson.id: True, planted.id: False}
    assert [e.subject for e in reg.audit.entries() if e.event == "lesson"] == ["add_ints"]
    assert str(memory.path) == f"{reg.location}/lessons.jsonl"
