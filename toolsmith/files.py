"""Files that several processes share: replaced whole, appended under a lock, never via a link.

Every file toolsmith replaces (registry metadata and blobs, keys, the audit head, the consumer's
approvers, pool status files) goes through :func:`atomic_write`: the bytes go to a temporary
file created with ``O_EXCL | O_NOFOLLOW`` in the target's own directory, are fsynced, then renamed
over the target (or, ``exclusive``, hard-linked to it, which fails if the target exists), and the
directory is fsynced. A reader sees the old bytes or the new, never a torn file; a crash at any
point leaves the old content and at most a leftover ``.NAME.<hex>.tmp`` (:func:`is_leftover`).

Every lock is :func:`flocked`: ``flock`` on an open file, which the kernel drops if the holder
dies, so a killed process never leaves a lock behind. :func:`open_nofollow` opens the shared
append-only logs (audit, lessons) without following a link planted in their place.

These raise ``OSError``; each caller maps it to its own error family, with its own fix.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Literal

TMP_SUFFIX = ".tmp"

_OPEN_FLAGS = {
    "rb": os.O_RDONLY,
    "ab": os.O_WRONLY | os.O_APPEND | os.O_CREAT,
    "ab+": os.O_RDWR | os.O_APPEND | os.O_CREAT,
}


def is_leftover(name: str) -> bool:
    """Whether ``name`` is the temporary file of an :func:`atomic_write` that was killed."""
    return name.startswith(".") and name.endswith(TMP_SUFFIX)


def atomic_write(
    target: str | os.PathLike[str],
    data: bytes,
    *,
    mode: int = 0o644,
    exclusive: bool = False,
    dir_fd: int | None = None,
) -> None:
    """Replace ``target`` with ``data`` atomically and durably (see the module docstring).

    ``mode``: the new file's permissions (before the umask). ``exclusive``: create only, raising
    ``FileExistsError`` if ``target`` exists (of two concurrent writers exactly one wins).
    ``dir_fd``: ``target`` is a name in this open directory (a caller that walked to it without
    following links); else the directory is ``target``'s parent. A link at ``target`` is replaced,
    never followed.
    """
    if dir_fd is not None:
        _write_in(dir_fd, os.fspath(target), data, mode, exclusive)
        return
    path = Path(target)
    d = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _write_in(d, path.name, data, mode, exclusive)
    finally:
        os.close(d)


def _write_in(d: int, name: str, data: bytes, mode: int, exclusive: bool) -> None:
    tmp = f".{name}.{uuid.uuid4().hex}{TMP_SUFFIX}"
    fd = os.open(
        tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=d
    )
    done = False
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if exclusive:
            os.link(tmp, name, src_dir_fd=d, dst_dir_fd=d)
        else:
            os.rename(tmp, name, src_dir_fd=d, dst_dir_fd=d)
            done = True
    finally:
        if not done:  # the temporary file of a failed write, or the extra name of a linked one
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=d)
    os.fsync(d)


class NotRegularFileError(OSError):
    """What :func:`open_nofollow` found is no plain file: ``strerror`` says what it is."""


def open_nofollow(
    path: str | os.PathLike[str], mode: Literal["rb", "ab", "ab+"], *, max_bytes: int | None = None
) -> IO[bytes]:
    """Open ``path`` for reading (``rb``) or appending (``ab``, ``ab+`` also reads), creating it
    for appends; a symlink at ``path`` raises ``OSError`` (ELOOP) instead of being followed.

    It never blocks opening (a FIFO planted there would hang the caller, and every process
    queued behind its lock): anything but a regular file with one link, or one over
    ``max_bytes``, raises ``NotRegularFileError``."""
    fd = os.open(path, _OPEN_FLAGS[mode] | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFileError(errno.EINVAL, "not a regular file", os.fspath(path))
        if st.st_nlink != 1:
            why = f"it has {st.st_nlink} hard links"
            raise NotRegularFileError(errno.EINVAL, why, os.fspath(path))
        if max_bytes is not None and st.st_size > max_bytes:
            why = f"it is over its size cap of {max_bytes} bytes"
            raise NotRegularFileError(errno.EFBIG, why, os.fspath(path))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, mode)


@contextlib.contextmanager
def flocked(file: int | IO[bytes], *, shared: bool = False) -> Iterator[None]:
    """Hold ``flock`` on an open file (shared for readers, else exclusive) for the block."""
    fd = file if isinstance(file, int) else file.fileno()
    fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
