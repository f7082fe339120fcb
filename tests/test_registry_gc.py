"""Garbage collection: blobs no version names go, everything a version names stays."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_registry_concurrency import KILLERS, run_child
from tests.test_registry_support import (
    code_for,
    edit_record,
    make_spec,
    passing_report,
    provenance,
    registry_with_roles,
    snapshot,
)
from toolsmith.errors import CorruptRegistryError, SignatureError
from toolsmith.registry import Registry, VersionStatus
from toolsmith.signing import SigningKey


@pytest.fixture
def reg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Registry:
    """add_ints 1.0.0 and 1.1.0, signed by the default key of a home of the test's own."""
    monkeypatch.setenv("TOOLSMITH_HOME", str(tmp_path / "home"))
    r = Registry(tmp_path / "reg")
    for version, body in (("1.0.0", "a + b"), ("1.1.0", "b + a")):
        r.publish(
            make_spec(), code_for("add_ints", body), passing_report(), provenance(), version=version
        )
    return r


def blobs(reg: Registry) -> set[str]:
    return {p.name for p in (reg.path / "blobs" / "sha256").iterdir()}


def assert_all_verify(reg: Registry) -> None:
    results = reg.verify()
    assert results and all(r.ok for r in results), [r.error for r in results if not r.ok]


def test_publisher_killed_after_its_blobs_leaves_garbage_that_gc_removes(
    reg: Registry, tmp_path: Path
) -> None:
    """A publish killed between its blobs and its index leaves unreferenced blobs; a dry run
    lists them and removes nothing, gc removes exactly them, and every version still verifies."""
    before = blobs(reg)
    script = (
        KILLERS["after_blobs_before_index"]
        + """
    reg = Registry(Path(os.environ["REG"]), storage=Storage(Path(os.environ["REG"])))
    publish(reg, version="2.0.0", body="a * 1 + b")
    """
    )
    child = run_child(script, reg.path, tmp_path / "home")
    _, err = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL, err
    orphans = blobs(reg) - before
    assert orphans, "the killed publish should have left its blobs"

    files = snapshot(reg.path)
    dry = reg.gc(dry_run=True)
    assert set(dry.unreferenced) == orphans and dry.dry_run
    assert dry.freed_bytes == sum(
        (reg.path / "blobs" / "sha256" / d).stat().st_size for d in orphans
    )
    assert snapshot(reg.path) == files

    done = reg.gc()
    assert set(done.unreferenced) == orphans and done.kept == len(before)
    assert blobs(reg) == before
    assert_all_verify(reg)
    [entry] = [e for e in reg.audit.entries() if e.event == "gc"]
    assert entry.data["unreferenced"] == sorted(orphans)
    assert reg.gc().unreferenced == []


def test_leftover_temporary_files_are_cleared(reg: Registry) -> None:
    """The temp file of a write killed half-way goes; nothing else changes."""
    (reg.path / "tmp").mkdir(exist_ok=True)
    (reg.path / "tmp" / "abc.json.x1.tmp").write_bytes(b"half of an ind")
    before = blobs(reg)
    report = reg.gc()
    assert report.leftovers == 1 and report.unreferenced == []
    assert not list((reg.path / "tmp").iterdir())
    assert blobs(reg) == before


def test_an_undone_approval_blob_is_collected(tmp_path: Path) -> None:
    """The approval envelope left when its index change is undone is garbage; a kept approval is
    not."""
    publisher, approver = SigningKey.generate("publisher"), SigningKey.generate("approver")
    reg = registry_with_roles(tmp_path / "reg", publisher, approver)
    reg.publish(
        make_spec(capabilities=["network:api.example.com"]),
        code_for("add_ints"),
        passing_report(),
        provenance(),
        version="1.0.0",
        signer=publisher,
        status=VersionStatus.PENDING,
    )
    approved = reg.approve("add_ints@1.0.0", approver)
    stray = reg._storage.put_blob(b'{"an approval whose index change was undone": true}')
    report = reg.gc()
    assert report.unreferenced == [stray]
    assert approved.approval in blobs(reg)
    assert reg.resolve("add_ints").version == "1.0.0"


@pytest.mark.parametrize("damage", ["garbage", "unsigned edit"])
def test_gc_refuses_while_an_index_is_damaged(reg: Registry, damage: str) -> None:
    """What a damaged index names cannot be known, so gc deletes nothing until it is fixed."""
    reg._storage.put_blob(b"an orphan")
    if damage == "garbage":
        (reg.path / "index" / "add_ints.json").write_text("{not json")
        error: type[Exception] = CorruptRegistryError
    else:
        edit_record(reg, "add_ints", "1.1.0", None, yanked=True)
        error = SignatureError
    files = snapshot(reg.path)
    with pytest.raises(error, match="index of 'add_ints'"):
        reg.gc()
    assert snapshot(reg.path) == files


def test_cli_gc(reg: Registry, tmp_path: Path) -> None:
    """`registry gc --dry-run --json` reports, `registry gc` removes and says how much."""
    orphan = reg._storage.put_blob(b"x" * 1000)
    env = {**os.environ, "TOOLSMITH_REGISTRY": str(reg.path), "COLUMNS": "200"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", "from toolsmith.cli import main; main()", "registry", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )

    dry = cli("gc", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["unreferenced"] == [orphan]
    assert orphan in blobs(reg)
    done = cli("gc")
    assert done.returncode == 0, done.stderr
    assert "removed 1 unreferenced blob(s), 1,000 bytes" in done.stdout
    assert orphan not in blobs(reg)
