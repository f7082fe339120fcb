"""A registry directory that cannot be turned against its owner.

Every path inside the registry is walked one component at a time from a directory file descriptor
with ``O_NOFOLLOW`` (``openat``-style, through ``dir_fd=``), so no symlink inside the registry is
ever followed, for reads, writes, deletes or the lock; a file with more than one hard link, or
anything but a regular file, is refused (``UnsafePathError``). Reads are capped (a file over its cap
is a ``MetadataTooLargeError``: TUF's endless-data attack). Writes go through ``toolsmith.files``: a
temporary file created with ``O_EXCL`` in the target's own directory, fsynced and renamed over the
target, so readers see the old bytes or the new, never a torn file, and nothing is created or
deleted outside the root.
The root itself is the path the user chose and may be a symlink; everything below it is not.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from toolsmith.errors import MetadataTooLargeError, RegistryError, UnsafePathError
from toolsmith.files import atomic_write, flocked, is_leftover

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class RepoDir:
    """One registry directory; ``rel`` paths are ``/``-separated and relative to the root."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _unsafe(self, rel: str, why: str) -> UnsafePathError:
        return UnsafePathError(
            f"refusing {self.root / rel}: {why}",
            hint="something replaced a registry file with a link or special file; remove it and "
            "restore the registry from a copy (links inside a registry are never followed)",
        )

    def _parts(self, rel: str) -> list[str]:
        parts = rel.split("/")
        if any(p in ("", ".", "..") or "\0" in p for p in parts):
            raise RegistryError(f"refusing registry path {rel!r}")
        return parts

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

    def read(self, rel: str, limit: int) -> bytes | None:
        """The bytes of ``rel`` (None when it does not exist), at most ``limit`` bytes."""
        *dirs, name = self._parts(rel)
        try:
            with self._dir(dirs, create=False) as d:
                try:
                    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=d)
                except FileNotFoundError:
                    return None
                except OSError as e:
                    if e.errno == errno.ELOOP:
                        raise self._unsafe(rel, "it is a symlink") from None
                    raise RegistryError(f"cannot read {self.root / rel}: {e.strerror}") from None
                with os.fdopen(fd, "rb") as f:
                    self._check_file(os.fstat(fd), rel)
                    data = f.read(limit + 1)
        except FileNotFoundError:
            return None
        if len(data) > limit:
            raise MetadataTooLargeError(
                f"{self.root / rel} is over its size cap of {limit} bytes",
                hint="an endless-data attack or a damaged file: restore the registry from a copy",
            )
        return data

    def _check_file(self, st: os.stat_result, rel: str) -> None:
        if not stat.S_ISREG(st.st_mode):
            raise self._unsafe(rel, "not a regular file")
        if st.st_nlink != 1:
            raise self._unsafe(rel, f"it has {st.st_nlink} hard links")

    def write(self, rel: str, data: bytes) -> None:
        """Replace ``rel`` atomically (fsynced); a link in its place is replaced, not followed."""
        *dirs, name = self._parts(rel)
        try:
            with self._dir(dirs, create=True) as d:
                atomic_write(name, data, dir_fd=d)
        except OSError as e:
            raise RegistryError(
                f"cannot write {self.root / rel}: {e.strerror}",
                hint="check the registry directory and its permissions",
            ) from None

    def files(self, rel_dir: str) -> list[str]:
        """Names of the regular files directly in ``rel_dir`` (links and directories skipped)."""
        return self._entries(rel_dir, stat.S_ISREG)

    def dirs(self, rel_dir: str) -> list[str]:
        """Names of the real directories directly in ``rel_dir`` (links skipped)."""
        return self._entries(rel_dir, stat.S_ISDIR)

    def _entries(self, rel_dir: str, is_kind: Callable[[int], bool]) -> list[str]:
        try:
            with self._dir(self._parts(rel_dir), create=False) as d:
                out = []
                for name in os.listdir(d):
                    with contextlib.suppress(OSError):
                        st = os.stat(name, dir_fd=d, follow_symlinks=False)
                        if is_kind(st.st_mode):
                            out.append(name)
                return sorted(out)
        except FileNotFoundError:
            return []

    def size(self, rel: str) -> int:
        *dirs, name = self._parts(rel)
        with self._dir(dirs, create=False) as d:
            return os.stat(name, dir_fd=d, follow_symlinks=False).st_size

    def delete(self, rel: str) -> None:
        """Remove ``rel`` itself (a link is removed, never its target)."""
        *dirs, name = self._parts(rel)
        try:
            with self._dir(dirs, create=False) as d:
                os.unlink(name, dir_fd=d)
        except FileNotFoundError:
            return
        except OSError as e:
            raise RegistryError(f"cannot delete {self.root / rel}: {e.strerror}") from None

    def is_leftover(self, name: str) -> bool:
        """Whether ``name`` is the temporary file of a write that was killed."""
        return is_leftover(name)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive across processes (``flock`` on ``.lock``, never through a link); the kernel
        drops it if the holder dies."""
        try:
            with self._dir([], create=True) as d:
                fd = os.open(
                    ".lock",
                    os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                    0o644,
                    dir_fd=d,
                )
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise self._unsafe(".lock", "it is a symlink") from None
            raise RegistryError(f"cannot lock {self.root}: {e.strerror}") from None
        try:
            self._check_file(os.fstat(fd), ".lock")
            with flocked(fd):
                yield
        finally:
            os.close(fd)
