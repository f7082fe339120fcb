"""Hashed bins: what a publish writes, what a consumer fetches, and the flat layout of registries
made before bins (attacks on bins are in test_registry_attacks.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_registry_support import (
    code_for,
    holder_files,
    make_spec,
    passing_report,
    provenance,
)
from toolsmith.errors import RegistryError, UsageError
from toolsmith.registry import Registry, trust_registry
from toolsmith.registry._repository import MAX_METADATA


def publish(reg: Registry, name: str = "add_ints", version: str | None = None) -> None:
    reg.publish(make_spec(name), code_for(name), passing_report(), provenance(), version=version)


def metadata(reg: Registry) -> dict[str, bytes]:
    assert isinstance(reg.path, Path)
    return {p.name: p.read_bytes() for p in (reg.path / "metadata").glob("*.json")}


def consumer_bins(reg: Registry) -> set[str]:
    return {p.name for p in reg._consumer.metadata_dir.glob("tools-bin-*.json")}


def test_a_publish_writes_one_bin_a_snapshot_and_the_timestamp(tmp_path: Path) -> None:
    """A new version adds its tool's bin and a snapshot, replaces the timestamp, and leaves the
    targets and tools metadata and every other bin as they were."""
    reg = Registry(tmp_path / "reg")
    publish(reg, "add_ints", "1.0.0")
    publish(reg, "mul_ints", "1.0.0")
    before = metadata(reg)
    publish(reg, "add_ints", "1.0.1")
    after = metadata(reg)
    role, files = holder_files(reg)
    snapshot = json.loads(after["timestamp.json"])["signed"]["meta"]["snapshot.json"]["version"]
    assert set(after) - set(before) == {files[-1].name, f"{snapshot}.snapshot.json"}
    assert [n for n in before if before[n] != after[n]] == ["timestamp.json"]
    assert role.startswith("tools-bin-")
    assert [r.version for r in Registry(reg.path).versions("add_ints")] == ["1.0.0", "1.0.1"]


def test_a_consumer_resolving_one_tool_fetches_only_its_bin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another user's first resolve of add_ints@^1 fetches add_ints' bin alone; listing then
    fetches the other bin too."""
    reg = Registry(tmp_path / "reg")
    publish(reg, "add_ints", "1.0.0")
    publish(reg, "add_ints", "1.1.0")
    publish(reg, "mul_ints", "1.0.0")
    fingerprint = reg.fingerprint()
    monkeypatch.setenv("TOOLSMITH_HOME", str(tmp_path / "other"))
    trust_registry(reg.path, fingerprint)
    other = Registry(reg.path)
    assert other.resolve("add_ints@^1").version == "1.1.0"
    own, _ = holder_files(reg)
    assert consumer_bins(other) == {f"{own}.json"}
    assert [r.name for r in other.list()] == ["add_ints", "mul_ints"]
    assert consumer_bins(other) == {f"{own}.json", f"{holder_files(reg, 'mul_ints')[0]}.json"}


def test_the_bin_count_is_fixed_at_creation_and_recorded(tmp_path: Path) -> None:
    """``init(bin_bits=4)`` makes 16 bins, recorded in the signed tools role."""
    reg = Registry(tmp_path / "reg")
    reg.init(bin_bits=4)
    for i in range(6):
        publish(reg, f"tool_{i}")
    tools = json.loads(metadata(reg)["1.tools.json"])["signed"]["delegations"]["succinct_roles"]
    assert tools["bit_length"] == 4 and tools["name_prefix"] == "tools-bin"
    roles = {holder_files(reg, f"tool_{i}")[0] for i in range(6)}
    assert all(len(r) == len("tools-bin-") + 1 for r in roles)
    assert len(Registry(reg.path).list()) == 6


def test_a_bin_count_out_of_range_is_a_usage_error(tmp_path: Path) -> None:
    """bin_bits outside 1-32 is refused before anything is written."""
    with pytest.raises(UsageError, match="bin_bits must be 1-32"):
        Registry(tmp_path / "reg").init(bin_bits=0)
    assert not (tmp_path / "reg").exists()


def test_a_flat_registry_keeps_working_in_its_layout(tmp_path: Path) -> None:
    """A registry made before bins (every version in the targets metadata) publishes, yanks,
    lists and resolves as before, and gains no bins."""
    reg = Registry(tmp_path / "reg")
    reg.init(bin_bits=None)
    publish(reg, "add_ints", "1.0.0")
    publish(reg, "add_ints", "1.0.1")
    reg.yank("add_ints@1.0.1", "broken")
    fresh = Registry(reg.path)
    assert fresh.resolve("add_ints").version == "1.0.0"
    assert [r.version for r in fresh.list()] == ["1.0.0"]
    assert holder_files(reg)[0] == "targets"
    assert not [n for n in metadata(reg) if "tools" in n]


def test_metadata_over_its_cap_is_refused_before_the_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A publish that would make a flat targets metadata bigger than its cap is refused and
    changes nothing (committed, it would have made the registry unreadable and uneditable)."""
    reg = Registry(tmp_path / "reg")
    reg.init(bin_bits=None)
    publish(reg, "add_ints", "1.0.0")
    _, files = holder_files(reg)
    monkeypatch.setitem(MAX_METADATA, "targets", files[-1].stat().st_size + 100)
    timestamp = metadata(reg)["timestamp.json"]
    with pytest.raises(RegistryError, match=r"targets metadata would be [\d,]+ bytes, over its"):
        publish(reg, "add_ints", "1.0.1")
    assert metadata(reg)["timestamp.json"] == timestamp
    assert [r.version for r in Registry(reg.path).versions("add_ints")] == ["1.0.0"]
