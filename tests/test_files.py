"""The one atomic-write helper and the one lock helper every shared file goes through."""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from toolsmith.files import atomic_write, flocked, is_leftover, open_nofollow

ROOT = Path(__file__).resolve().parents[1]


def child(code: str) -> subprocess.Popen[str]:
    """A Python process running ``code`` (which prints "ready" when it reaches its point)."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def test_replaces_the_content_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    """The target holds the new bytes with the asked mode; nothing else is left in the dir."""
    target = tmp_path / "f.json"
    target.write_bytes(b"old")
    atomic_write(target, b"new", mode=0o600)
    assert target.read_bytes() == b"new"
    assert target.stat().st_mode & 0o777 == 0o600
    assert os.listdir(tmp_path) == ["f.json"]


def test_a_writer_killed_mid_write_leaves_the_old_content(tmp_path: Path) -> None:
    """SIGKILL after the new bytes are written but before the rename: readers see the old file,
    and the half-done write is a recognisable leftover."""
    target = tmp_path / "f.json"
    target.write_bytes(b"old content")
    with child(
        f"""
        import os, sys, time
        from toolsmith import files
        def stall(fd):  # the write is on disk but not yet renamed: the writer dies here
            print("ready", flush=True)
            time.sleep(600)
        files.os.fsync = stall
        files.atomic_write({str(target)!r}, b"new content that never lands")
        """
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGKILL)
    assert target.read_bytes() == b"old content"
    leftovers = [n for n in os.listdir(tmp_path) if n != "f.json"]
    assert len(leftovers) == 1 and is_leftover(leftovers[0])


def test_a_failed_write_removes_its_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error before the rename (a full disk, say) leaves the old file and nothing else."""
    target = tmp_path / "f.json"
    target.write_bytes(b"old")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("toolsmith.files.os.fsync", full)
    with pytest.raises(OSError, match="No space"):
        atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f.json"]


def test_concurrent_writers_never_tear_the_file(tmp_path: Path) -> None:
    """Four processes replace one file 200 times each while this one reads it: every read is
    one writer's whole payload."""
    target = tmp_path / "f.bin"
    payloads = [bytes([65 + i]) * 200_000 for i in range(4)]
    target.write_bytes(payloads[0])
    writers = [
        child(
            f"""
            from toolsmith.files import atomic_write
            print("ready", flush=True)
            for _ in range(200):
                atomic_write({str(target)!r}, {payload[:1]!r} * 200_000)
            """
        )
        for payload in payloads
    ]
    for w in writers:
        assert w.stdout is not None and w.stdout.readline().strip() == "ready"
    seen = set()
    while any(w.poll() is None for w in writers):
        seen.add(target.read_bytes())
    assert all(w.wait() == 0 for w in writers)
    for w in writers:
        assert w.stdout is not None
        w.stdout.close()
    assert seen <= set(payloads)
    assert [n for n in os.listdir(tmp_path) if n != "f.bin"] == []


def test_exclusive_create_has_exactly_one_winner(tmp_path: Path) -> None:
    """Eight threads create the same file exclusively: one wins, the rest get FileExistsError,
    and the winner's bytes are what is there."""
    target = tmp_path / "key"
    results: list[str] = []
    barrier = threading.Barrier(8)

    def create(i: int) -> None:
        barrier.wait()
        try:
            atomic_write(target, f"writer {i}".encode(), exclusive=True)
            results.append(f"writer {i}")
        except FileExistsError:
            results.append("exists")

    threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if r != "exists"]
    assert len(winners) == 1 and len(results) == 8
    assert target.read_text() == winners[0]
    assert os.listdir(tmp_path) == ["key"]


def test_a_link_at_the_target_is_replaced_not_followed(tmp_path: Path) -> None:
    """A symlink planted as the target is replaced, and one planted as a log is refused: the
    file they point at is untouched."""
    outside = tmp_path / "outside"
    outside.write_bytes(b"precious")
    target = tmp_path / "f.json"
    target.symlink_to(outside)
    atomic_write(target, b"new")
    assert not target.is_symlink() and target.read_bytes() == b"new"
    assert outside.read_bytes() == b"precious"
    link = tmp_path / "log"
    link.symlink_to(outside)
    with pytest.raises(OSError) as exc:
        open_nofollow(link, "ab")
    assert exc.value.errno == errno.ELOOP
    assert outside.read_bytes() == b"precious"


def test_the_lock_excludes_other_processes_and_dies_with_its_holder(tmp_path: Path) -> None:
    """While a process holds the exclusive lock no other can take it, nor a shared one; once the
    holder is killed the lock is free (the kernel drops it)."""
    lock = tmp_path / ".lock"
    lock.touch()
    with (
        child(
            f"""
        import time
        from toolsmith.files import flocked
        with open({str(lock)!r}, "rb") as f, flocked(f):
            print("ready", flush=True)
            time.sleep(600)
        """
        ) as holder,
        open(lock, "rb") as f,
    ):
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        for how in (fcntl.LOCK_EX, fcntl.LOCK_SH):
            with pytest.raises(BlockingIOError):
                fcntl.flock(f.fileno(), how | fcntl.LOCK_NB)
        holder.kill()
        holder.wait()
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_shared_locks_coexist_and_block_a_writer(tmp_path: Path) -> None:
    """Readers' shared locks do not exclude each other, but do exclude an exclusive one."""
    lock = tmp_path / "log"
    lock.touch()
    with open(lock, "rb") as a, open(lock, "rb") as b, flocked(a, shared=True):
        fcntl.flock(b.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(b.fileno(), fcntl.LOCK_UN)
        with pytest.raises(BlockingIOError):
            fcntl.flock(b.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
