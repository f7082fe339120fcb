"""Where registry bytes live: a small interface and the local file backend.

The registry logic only needs write-once blobs by sha256, one small index document per tool, a few
metadata documents (the trust store), an exclusive lock for writers and a generation token that
changes whenever an index does; garbage collection adds listing and deleting blobs and clearing
the leftovers of killed writes. An OCI or S3 backend implements the same operations.

Crash safety of the file backend: every write goes to a temporary file that is fsynced and then
renamed over its target, so a reader sees the old bytes or the new ones, never a torn file. A
publish writes its blobs before its index, so a process killed half-way leaves only unreferenced
blobs (and perhaps a stray temporary file) behind.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import tempfile
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from toolsmith.errors import CorruptRegistryError, RegistryError
from toolsmith.log import get_logger
from toolsmith.spec import NAME_RE

_log = get_logger(__name__)


class Storage(ABC):
    """Byte storage for one registry; every method raises only ``RegistryError`` subclasses."""

    @abstractmethod
    def get_blob(self, digest: str) -> bytes: ...

    @abstractmethod
    def put_blob(self, data: bytes) -> str:
        """Store ``data`` under its sha256 (once) and return the hex digest."""

    @abstractmethod
    def read_index(self, name: str) -> bytes | None: ...

    @abstractmethod
    def write_index(self, name: str, data: bytes) -> None: ...

    @abstractmethod
    def index_names(self) -> list[str]: ...

    @abstractmethod
    def read_meta(self, key: str) -> bytes | None: ...

    @abstractmethod
    def write_meta(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def lock(self) -> AbstractContextManager[None]:
        """Held by writers, so concurrent publishes never lose each other's records."""

    @abstractmethod
    def generation(self) -> str:
        """A token that differs after every index write, for caches built from the indexes."""

    @abstractmethod
    def blob_sizes(self) -> dict[str, int]:
        """Every stored blob's digest and size in bytes."""

    @abstractmethod
    def delete_blob(self, digest: str) -> None:
        """Remove a blob; only garbage collection, holding the lock, calls this."""

    @abstractmethod
    def clear_leftovers(self) -> int:
        """Remove the temporary files of writes that were killed; the caller holds the lock, so
        no write is in flight. Returns how many were removed."""


_HEX64 = re.compile(r"[0-9a-f]{64}")


def _is_hex_digest(digest: str) -> bool:
    return _HEX64.fullmatch(digest) is not None


class FileStorage(Storage):
    """The embedded default: a directory of blobs, index files and metadata."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._blobs = root / "blobs" / "sha256"
        self._index = root / "index"
        self._tmp = root / "tmp"

    def _ensure(self) -> None:
        for d in (self._blobs, self._index, self._tmp):
            d.mkdir(parents=True, exist_ok=True)

    def _atomic_write(self, target: Path, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=self._tmp, prefix=target.name + ".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _read(self, path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise CorruptRegistryError(f"cannot read {path}: {e.strerror}") from None

    def _index_path(self, name: str) -> Path:
        if not NAME_RE.fullmatch(name):
            raise RegistryError(f"refusing index path for tool name {name!r}")
        return self._index / f"{name}.json"

    def get_blob(self, digest: str) -> bytes:
        if not _is_hex_digest(digest):
            raise CorruptRegistryError(f"index names a malformed blob digest {digest!r}")
        data = self._read(self._blobs / digest)
        if data is None:
            raise CorruptRegistryError(
                f"blob sha256:{digest} is missing from {self._blobs}",
                hint="restore the registry directory from a copy, or re-publish the tool",
            )
        return data

    def put_blob(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        target = self._blobs / digest
        existing = self._read(target)
        if existing is not None and hashlib.sha256(existing).hexdigest() == digest:
            return digest
        self._ensure()
        self._write(target, data)
        return digest

    def read_index(self, name: str) -> bytes | None:
        return self._read(self._index_path(name))

    def write_index(self, name: str, data: bytes) -> None:
        self._ensure()
        self._write(self._index_path(name), data)
        self._write(self.root / "generation", uuid.uuid4().hex.encode())

    def index_names(self) -> list[str]:
        """Tool names with an index file; a stray file (not ``<tool name>.json``) is skipped, so
        it cannot hide every tool from listings."""
        if not self._index.is_dir():
            return []
        names = []
        for p in self._index.glob("*.json"):
            if NAME_RE.fullmatch(p.stem) and len(p.stem) <= 64:
                names.append(p.stem)
            else:
                _log.warning("not a tool index, skipped", file=str(p))
        return sorted(names)

    def read_meta(self, key: str) -> bytes | None:
        return self._read(self.root / f"{key}.json")

    def write_meta(self, key: str, data: bytes) -> None:
        self._ensure()
        self._write(self.root / f"{key}.json", data)

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive across processes; the kernel drops it if the holder dies."""
        self._ensure()
        with open(self.root / ".lock", "a+b") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def generation(self) -> str:
        data = self._read(self.root / "generation")
        return data.decode(errors="replace") if data is not None else ""

    def blob_sizes(self) -> dict[str, int]:
        if not self._blobs.is_dir():
            return {}
        return {p.name: p.stat().st_size for p in self._blobs.iterdir() if _is_hex_digest(p.name)}

    def delete_blob(self, digest: str) -> None:
        if not _is_hex_digest(digest):
            raise RegistryError(f"refusing to delete malformed blob digest {digest!r}")
        try:
            (self._blobs / digest).unlink(missing_ok=True)
        except OSError as e:
            raise RegistryError(
                f"cannot delete blob {digest}: {e.strerror}", hint="check the registry directory"
            ) from None

    def clear_leftovers(self) -> int:
        if not self._tmp.is_dir():
            return 0
        leftovers = [p for p in self._tmp.iterdir() if p.is_file()]
        for p in leftovers:
            p.unlink(missing_ok=True)
        return len(leftovers)

    def _write(self, target: Path, data: bytes) -> None:
        try:
            self._atomic_write(target, data)
        except OSError as e:
            raise RegistryError(
                f"cannot write {target}: {e.strerror}", hint="check the registry directory"
            ) from None
