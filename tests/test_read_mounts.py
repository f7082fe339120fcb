"""fs:read mounts: what is checked is what the Docker daemon mounts.

The daemon resolves a bind mount's source itself, after toolsmith checked it; these tests race a
local user's swap (a real directory <-> a link to /proc, exchanged atomically) against the check.
No Docker engine is needed: the check decides what is handed to the daemon.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from toolsmith.errors import PolicyError
from toolsmith.sandbox.containers import read_mounts
from toolsmith.sandbox.grants import Grants

NOBODY = 65534

# Run as another local user: makes DIR (a directory) and DIR-alt (a link to /proc) in /tmp and
# swaps them with renameat2(RENAME_EXCHANGE) as fast as it can, as the finding's attacker did.
SWAPPER = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
a, b = sys.argv[1].encode(), (sys.argv[1] + "-alt").encode()
os.mkdir(a)
os.symlink("/proc", b)
print("ready", flush=True)
while True:
    if libc.syscall(316, -100, a, -100, b, 2) != 0:
        raise OSError(ctypes.get_errno(), "renameat2")
"""

# An interpreter another user may run (the test's own may sit in root's private home).
SYSTEM_PYTHON = "/usr/bin/python3"
root_only = pytest.mark.skipif(
    os.geteuid() != 0 or os.uname().machine != "x86_64" or not os.path.exists(SYSTEM_PYTHON),
    reason="needs root (to act as another user), x86_64 Linux (renameat2's syscall number) "
    "and /usr/bin/python3",
)


@root_only
def test_a_path_another_user_swaps_is_never_handed_to_the_daemon() -> None:
    """While uid 65534 swaps /tmp/x and a link to /proc, every read_mounts call is refused: the
    check itself (not luck in the race) says the path is not ours to pin."""
    path = f"/tmp/toolsmith-race-{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen(
        [SYSTEM_PYTHON, "-c", SWAPPER, path],
        user=NOBODY,
        cwd="/",
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        grants = Grants.from_capabilities([f"fs:read:{path}"])
        outcomes = []
        for _ in range(300):
            try:
                outcomes.append(read_mounts(grants)[0]["Source"])
            except PolicyError as e:
                outcomes.append(str(e))
        handed = [o for o in outcomes if o.startswith("/")]
        assert handed == [], f"handed to the daemon: {handed[:3]}"
        assert any("belongs to uid 65534" in o for o in outcomes)
    finally:
        proc.kill()
        proc.communicate()
        for p in (path, path + "-alt"):
            if os.path.islink(p):
                os.unlink(p)
            elif os.path.isdir(p):
                os.rmdir(p)


def test_a_path_in_a_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    """A directory that anyone may rename entries in (writable, not sticky) cannot be pinned."""
    shared = tmp_path / "shared"
    (shared / "data").mkdir(parents=True)
    shared.chmod(0o777)
    with pytest.raises(PolicyError, match="other users can write") as e:
        read_mounts(Grants.from_capabilities([f"fs:read:{shared / 'data'}"]))
    assert "home directory" in (e.value.hint or "")


def test_a_path_of_our_own_is_mounted_as_resolved(tmp_path: Path) -> None:
    """A directory only we can change is mounted, at the declared path, from where it resolves."""
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    mounts = read_mounts(Grants.from_capabilities([f"fs:read:{tmp_path / 'link'}"]))
    assert [(m["Source"], m["Target"]) for m in mounts] == [
        (os.path.realpath(tmp_path / "real"), str(tmp_path / "link"))
    ]
