"""Registry storage: the one side effect of a local registry, behind one narrow interface.

``RegistryStorage`` is every operation the registry (``_registry``, ``_repository``, the local
fetcher in ``_client``) and the logs kept beside it (the maintainers' audit log, the lessons) do
on their bytes: capped reads, atomic writes, deletes, listings, the registry lock and append-only
logs. Like python-tuf's ``FetcherInterface``, backends implement the ``_``-methods and the public
wrappers guarantee which errors escape: ``RegistryError`` (``UnsafePathError`` for anything that
is not a plain file where one belongs) and ``MetadataTooLargeError`` for a file over its cap;
anything else a backend raises is re-raised as a ``RegistryError`` naming the storage and the
operation. Nothing here verifies: the registry checks every byte it reads against signed
metadata, so a storage is trusted to keep bytes, never to vouch for them.

``RepoDir`` is the storage of a registry directory, and cannot be turned against its owner.
Every path inside the registry is walked one component at a time from a directory file descriptor
with ``O_NOFOLLOW`` (``openat``-style, through ``dir_fd=``), so no symlink inside the registry is
ever followed, for reads, writes, deletes, logs or the lock; a file with more than one hard link,
or anything but a regular file, is refused (``UnsafePathError``). Reads are capped (a file over its
cap is a ``MetadataTooLargeError``: TUF's endless-data attack). Writes go through
``toolsmith.files``: a temporary file created with ``O_EXCL`` in the target's own directory,
fsynced and renamed over the target, so readers see the old bytes or the new, never a torn file,
and nothing is created or deleted outside the root.
The root itself is the path the user chose and may be a symlink; everything below it is not.

``toolsmith.testing.MemoryStorage`` is the in-memory stand-in for tests, held to the same
contract by ``tests/test_registry_storage.py``.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, TypeVar

from toolsmith.errors import MetadataTooLargeError, RegistryError, UnsafePathError
from toolsmith.files import atomic_write, flocked, is_leftover

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_T = TypeVar("_T")


def too_large(where: str, limit: int) -> MetadataTooLargeError:
    """The error for a file over its cap (the same words from every storage)."""
    return MetadataTooLargeError(
        f"{where} is over its size cap of {limit} bytes",
        hint="an endless-data attack or a damaged file: restore the registry from a copy",
    )


def check_rel(rel: str) -> list[str]:
    """The components of a storage path: ``/``-separated, relative, none empty, ``.``, ``..``
    or holding NUL; else a ``RegistryError``."""
    parts = rel.split("/")
    if any(p in ("", ".", "..") or "\0" in p for p in parts):
        raise RegistryError(f"refusing registry path {rel!r}")
    return parts


class RegistryStorage(ABC):
    """Where a local registry keeps its bytes; ``rel`` paths are ``/``-separated and relative.

    Backends implement the ``_``-methods; callers use the public ones, which let only
    ``RegistryError`` (and ``MetadataTooLargeError`` for a file over its cap) escape."""

    location: str
    """Names the storage in messages, and keys this user's trust in the registry it holds
    (the consumer state under ``$TOOLSMITH_STATE``): unique per storage."""

    # -- what a backend implements -------------------------------------------------------------

    @abstractmethod
    def _read(self, rel: str, limit: int) -> bytes | None: ...

    @abstractmethod
    def _write(self, rel: str, data: bytes) -> None: ...

    @abstractmethod
    def _delete(self, rel: str) -> None: ...

    @abstractmethod
    def _exists(self, rel: str) -> bool: ...

    @abstractmethod
    def _files(self, rel_dir: str) -> list[str]: ...

    @abstractmethod
    def _dirs(self, rel_dir: str) -> list[str]: ...

    @abstractmethod
    def _size(self, rel: str) -> int: ...

    @abstractmethod
    def _lock(self) -> AbstractContextManager[None]: ...

    @abstractmethod
    def _open_log(
        self, rel: str, *, append: bool, cap: int
    ) -> AbstractContextManager[IO[bytes]]: ...

    def is_leftover(self, name: str) -> bool:
        """Whether ``name`` is the temporary file of a write that was killed (``gc`` removes
        them); a storage whose writes leave none keeps the default, False."""
        return False

    # -- what callers use ------------------------------------------------------------------------

    def read(self, rel: str, limit: int) -> bytes | None:
        """The bytes of ``rel`` (None when it does not exist); over ``limit`` bytes is a
        ``MetadataTooLargeError``, never a longer read."""
        return self._call("read", rel, lambda: self._read(rel, limit))

    def write(self, rel: str, data: bytes) -> None:
        """Replace ``rel`` with ``data`` atomically and durably (readers see the old bytes or
        the new, never a part), creating its directories."""
        self._call("write", rel, lambda: self._write(rel, data))

    def delete(self, rel: str) -> None:
        """Remove ``rel`` itself (a link is removed, never its target); a missing one is fine."""
        self._call("delete", rel, lambda: self._delete(rel))

    def exists(self, rel: str) -> bool:
        """Whether anything is at ``rel`` (a link or a special file counts: reading it is then
        refused, not taken for a missing file)."""
        return self._call("check", rel, lambda: self._exists(rel))

    def files(self, rel_dir: str) -> list[str]:
        """Sorted names of the regular files directly in ``rel_dir`` (links and directories
        skipped; a missing directory has none)."""
        return self._call("list", rel_dir, lambda: self._files(rel_dir))

    def dirs(self, rel_dir: str) -> list[str]:
        """Sorted names of the real directories directly in ``rel_dir`` (links skipped)."""
        return self._call("list", rel_dir, lambda: self._dirs(rel_dir))

    def size(self, rel: str) -> int:
        """The size of ``rel`` in bytes."""
        return self._call("size", rel, lambda: self._size(rel))

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """The registry lock: exclusive across every process using this storage, for the
        block; not reentrant (taking it twice in one process waits forever)."""
        with self._entered("lock", ".lock", self._lock()):
            yield

    @contextlib.contextmanager
    def open_log(self, rel: str, *, append: bool, cap: int) -> Iterator[IO[bytes]]:
        """The append-only log ``rel`` for the block: readable (a missing log reads as empty)
        and, when ``append``, created if missing and appendable (every write lands at its end),
        under a lock shared with other readers, or exclusive when ``append``. Appended bytes
        are durable once the handle's ``flush()`` returns, and at the end of the block. A log
        over ``cap`` bytes is refused (``MetadataTooLargeError``) when opened."""
        with self._entered("open", rel, self._open_log(rel, append=append, cap=cap)) as f:
            yield f

    # -- one error type out ------------------------------------------------------------------

    def _mapped(self, what: str, rel: str, e: Exception) -> RegistryError:
        return RegistryError(
            f"registry storage {self.location} cannot {what} {rel}: {type(e).__name__}: {e}",
            hint="check the registry storage (its disk, its permissions)",
        )

    def _call(self, what: str, rel: str, op: Callable[[], _T]) -> _T:
        try:
            return op()
        except (RegistryError, MetadataTooLargeError):
            raise
        except Exception as e:
            raise self._mapped(what, rel, e) from e

    @contextlib.contextmanager
    def _entered(self, what: str, rel: str, cm: AbstractContextManager[_T]) -> Iterator[_T]:
        """``cm``'s value for the block, its entering and leaving mapped to ``RegistryError``;
        errors raised by the block itself pass through untouched."""
        value = self._call(what, rel, cm.__enter__)
        try:
            yield value
        except BaseException as e:
            if not cm.__exit__(type(e), e, e.__traceback__):
                raise
        else:
            self._call(what, rel, lambda: cm.__exit__(None, None, None))


class _SyncedFile(io.FileIO):
    """An appendable log on disk whose ``flush()`` returns once the bytes are on the disk."""

    def flush(self) -> None:
        super().flush()
        if not self.closed:
            os.fsync(self.fileno())


class RepoDir(RegistryStorage):
    """The storage of one registry directory (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)

    def _unsafe(self, rel: str, why: str) -> UnsafePathError:
        return UnsafePathError(
            f"refusing {self.root / rel}: {why}",
            hint="something replaced a registry file with a link or special file; remove it and "
            "restore the registry from a copy (links inside a registry are never followed)",
        )

    @contextlib.contextmanager
    def _dir(self, parts: list[str], *, create: bool) -> Iterator[int]:
        """The directory ``parts`` as an fd, no component followed if it is a link."""
        try:
            if create:
                self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise
        except OSError as e:
            raise RegistryError(
                f"cannot open registry {self.root}: {e.strerror}",
                hint="check the path and its permissions",
            ) from None
        try:
            walked: list[str] = []
            for part in parts:
                walked.append(part)
                try:
                    nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, 0o755, dir_fd=fd)
                    nxt = self._open_dir_at(fd, walked)
                except OSError as e:
                    raise self._dir_error(walked, e) from None
                os.close(fd)
                fd = nxt
            yield fd
        finally:
            os.close(fd)

    def _open_dir_at(self, fd: int, walked: list[str]) -> int:
        try:
            return os.open(walked[-1], _DIR_FLAGS, dir_fd=fd)
        except OSError as e:
            raise self._dir_error(walked, e) from None

    def _dir_error(self, walked: list[str], e: OSError) -> RegistryError:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            return self._unsafe("/".join(walked), "not a directory (a symlink or a file)")
        return RegistryError(f"cannot open {self.root / '/'.join(walked)}: {e.strerror}")

    def _read(self, rel: str, limit: int) -> bytes | None:
        fd = self._open_at(rel, os.O_RDONLY)
        if fd is None:
            return None
        with os.fdopen(fd, "rb") as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise too_large(str(self.root / rel), limit)
        return data

    def _check_file(self, st: os.stat_result, rel: str) -> None:
        if not stat.S_ISREG(st.st_mode):
            raise self._unsafe(rel, "not a regular file")
        if st.st_nlink != 1:
            raise self._unsafe(rel, f"it has {st.st_nlink} hard links")

    def _write(self, rel: str, data: bytes) -> None:
        """A link in ``rel``'s place is replaced, not followed."""
        *dirs, name = check_rel(rel)
        try:
            with self._dir(dirs, create=True) as d:
                atomic_write(name, data, dir_fd=d)
        except OSError as e:
            raise RegistryError(
                f"cannot write {self.root / rel}: {e.strerror}",
                hint="check the registry directory and its permissions",
            ) from None

    def _files(self, rel_dir: str) -> list[str]:
        return self._entries(rel_dir, stat.S_ISREG)

    def _dirs(self, rel_dir: str) -> list[str]:
        return self._entries(rel_dir, stat.S_ISDIR)

    def _entries(self, rel_dir: str, is_kind: Callable[[int], bool]) -> list[str]:
        try:
            with self._dir(check_rel(rel_dir), create=False) as d:
                out = []
                for name in os.listdir(d):
                    with contextlib.suppress(OSError):
                        st = os.stat(name, dir_fd=d, follow_symlinks=False)
                        if is_kind(st.st_mode):
                            out.append(name)
                return sorted(out)
        except FileNotFoundError:
            return []

    def _exists(self, rel: str) -> bool:
        *dirs, name = check_rel(rel)
        try:
            with self._dir(dirs, create=False) as d:
                os.stat(name, dir_fd=d, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return True

    def _size(self, rel: str) -> int:
        *dirs, name = check_rel(rel)
        with self._dir(dirs, create=False) as d:
            return os.stat(name, dir_fd=d, follow_symlinks=False).st_size

    def _delete(self, rel: str) -> None:
        *dirs, name = check_rel(rel)
        try:
            with self._dir(dirs, create=False) as d:
                os.unlink(name, dir_fd=d)
        except FileNotFoundError:
            return
        except OSError as e:
            raise RegistryError(f"cannot delete {self.root / rel}: {e.strerror}") from None

    def is_leftover(self, name: str) -> bool:
        return is_leftover(name)

    def _open_at(self, rel: str, flags: int) -> int | None:
        """``rel`` opened with ``flags`` (never through a link, never blocking on a FIFO) and
        checked to be a plain file; None when it or its directory is missing."""
        *dirs, name = check_rel(rel)
        try:
            with self._dir(dirs, create=bool(flags & os.O_CREAT)) as d:
                fd = os.open(
                    name, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644, dir_fd=d
                )
        except FileNotFoundError:
            return None
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise self._unsafe(rel, "it is a symlink") from None
            if e.errno in (errno.EISDIR, errno.ENXIO):
                raise self._unsafe(rel, "not a regular file") from None
            raise RegistryError(f"cannot open {self.root / rel}: {e.strerror}") from None
        try:
            self._check_file(os.fstat(fd), rel)
            os.set_blocking(fd, True)
        except BaseException:
            os.close(fd)
            raise
        return fd

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """``flock`` on ``.lock``, never through a link; the kernel drops it if the holder dies."""
        fd = self._open_at(".lock", os.O_RDWR | os.O_CREAT)
        assert fd is not None  # created
        try:
            with flocked(fd):
                yield
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _open_log(self, rel: str, *, append: bool, cap: int) -> Iterator[IO[bytes]]:
        """``flock`` on the log file itself (shared by readers), held until the block ends."""
        fd = self._open_at(rel, os.O_RDWR | os.O_APPEND | os.O_CREAT if append else os.O_RDONLY)
        if fd is None:
            yield io.BytesIO()
            return
        f: IO[bytes] = _SyncedFile(fd, "ab+") if append else os.fdopen(fd, "rb")
        with f:
            if os.fstat(fd).st_size > cap:
                raise too_large(str(self.root / rel), cap)
            with flocked(fd, shared=not append):
                yield f
                f.flush()
