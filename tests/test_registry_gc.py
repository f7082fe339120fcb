"""Garbage collection: target files no verified metadata names go, everything else stays, and a
registry that does not verify from the pinned root is never collected."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_registry_support import (
    code_for,
    holder_files,
    make_spec,
    passing_report,
    provenance,
    snapshot,
)
from toolsmith.errors import RollbackError, SignatureError
from toolsmith.registry import Registry


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    """add_ints 1.0.0 and 1.1.0, signed by the default key of the test's own home."""
    r = Registry(tmp_path / "reg")
    for version, body in (("1.0.0", "a + b"), ("1.1.0", "b + a")):
        r.publish(
            make_spec(), code_for("add_ints", body), passing_report(), provenance(), version=version
        )
    return r


def target_files(reg: Registry) -> set[str]:
    return {str(p.relative_to(reg.path)) for p in (reg.path / "targets").rglob("*") if p.is_file()}


def orphan(reg: Registry, data: bytes = b"an orphan") -> str:
    """A target file written but never named by signed metadata (a killed publish's)."""
    assert reg._repo is not None
    info = reg._repo.put_target("tools/add_ints/9.9.9/code", data)
    return f"targets/tools/add_ints/9.9.9/{info.hashes['sha256']}.code"


def assert_all_verify(reg: Registry) -> None:
    results = reg.verify()
    assert results and all(r.ok for r in results), [r.error for r in results if not r.ok]


def test_unreferenced_files_go_referenced_ones_stay(reg: Registry) -> None:
    """Only the orphan is removed; every version still verifies; a second run finds nothing."""
    stray = orphan(reg)
    before = target_files(reg)
    report = reg.gc()
    assert report.unreferenced == [stray] and report.freed_bytes == len(b"an orphan")
    assert target_files(reg) == before - {stray}
    assert_all_verify(reg)
    assert reg.gc().unreferenced == []


def test_leftover_temporary_files_are_cleared(reg: Registry) -> None:
    """The temp file of a write killed half-way goes; nothing else changes."""
    (reg.path / "metadata" / ".timestamp.json.x1.tmp").write_bytes(b"half of a times")
    before = target_files(reg)
    report = reg.gc()
    assert report.leftovers == 1 and report.unreferenced == []
    assert not list((reg.path / "metadata").glob(".*.tmp"))
    assert target_files(reg) == before


def test_gc_refuses_metadata_edited_without_its_key(reg: Registry) -> None:
    """What unverifiable metadata names cannot be known, so gc deletes nothing."""
    orphan(reg)
    role, [*_, targets] = holder_files(reg)
    targets.write_text(targets.read_text().replace('"yanked":false', '"yanked":true', 1))
    # The consumer holds the last bin it trusted; a fresh consumer has to fetch this one.
    (reg._consumer.metadata_dir / f"{role}.json").unlink()
    files = snapshot(reg.path)
    with pytest.raises(SignatureError, match=role):
        reg.gc()
    assert snapshot(reg.path) == files


def test_gc_refuses_a_rolled_back_registry(reg: Registry, tmp_path: Path) -> None:
    """An old (validly signed) state put back must not make gc delete the newer versions'
    files: the pinned state knows a later timestamp, so gc is refused as a rollback."""
    old = tmp_path / "old-metadata"
    shutil.copytree(reg.path / "metadata", old)
    reg.publish(
        make_spec(),
        code_for("add_ints", "a + b + 0"),
        passing_report(),
        provenance(),
        version="1.2.0",
    )
    shutil.rmtree(reg.path / "metadata")
    shutil.copytree(old, reg.path / "metadata")
    files = snapshot(reg.path)
    with pytest.raises(RollbackError, match="rollback"):
        Registry(reg.path).gc()
    assert snapshot(reg.path) == files


def test_cli_gc(reg: Registry) -> None:
    """`registry gc --dry-run --json` reports, `registry gc` removes and says how much."""
    stray = orphan(reg, b"x" * 1000)
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
    assert json.loads(dry.stdout)["unreferenced"] == [stray]
    assert stray in target_files(reg)
    done = cli("gc")
    assert done.returncode == 0, done.stderr
    assert "removed 1 unreferenced file(s), 1,000 bytes" in done.stdout
    assert stray not in target_files(reg)
