"""Publishing, version selection, yanking, listing and search in the local registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_registry_support import (
    code_for,
    failing_report,
    make_spec,
    passing_report,
    provenance,
    snapshot,
)
from toolsmith.errors import (
    PublishRefusedError,
    ToolNotFoundError,
    UsageError,
    VersionConflictError,
)
from toolsmith.keys import KeyStore
from toolsmith.registry import Registry, VersionStatus
from toolsmith.signing import SigningKey


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TOOLSMITH_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TOOLSMITH_REGISTRY", raising=False)
    return tmp_path / "home"


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "reg")


def publish(reg: Registry, name: str = "add_ints", version: str | None = None, **kw):  # type: ignore[no-untyped-def]
    spec = kw.pop("spec", None) or make_spec(name)
    return reg.publish(
        spec, kw.pop("code", code_for(name)), passing_report(), provenance(), version=version, **kw
    )


def test_publish_then_resolve_returns_verified_parts(reg: Registry) -> None:
    """What was published comes back, verified, with signer and digest."""
    record = publish(reg, code=code_for("add_ints", "b + a"))
    tool = reg.resolve("add_ints")
    assert tool.version == record.version == "0.1.0"
    assert tool.digest == record.digest
    assert tool.code == code_for("add_ints", "b + a")
    assert tool.spec == make_spec()
    assert tool.report.passed and tool.provenance.task == "add numbers"
    assert tool.signers == (KeyStore().load().key_id,)
    assert record.status == VersionStatus.PUBLISHED


def test_version_bumps_and_explicit_versions(reg: Registry) -> None:
    """Versions are the next patch/minor/major after the highest, or given explicitly."""
    assert publish(reg).version == "0.1.0"
    assert publish(reg).version == "0.1.1"
    assert publish(reg, bump="minor").version == "0.2.0"
    assert publish(reg, bump="major").version == "1.0.0"
    assert publish(reg, version="0.9.0").version == "0.9.0"
    assert publish(reg).version == "1.0.1"
    assert publish(reg, name="fresh_tool", bump="major").version == "1.0.0"


def test_existing_version_is_a_conflict_and_changes_nothing(reg: Registry) -> None:
    """Re-publishing a version is refused; the registry's files are untouched."""
    publish(reg, version="1.0.0")
    before = snapshot(reg.path)
    with pytest.raises(VersionConflictError, match=r"add_ints@1\.0\.0 is already published"):
        publish(reg, version="1.0.0", code=code_for("add_ints", "a - b"))
    assert snapshot(reg.path) == before


def test_failed_report_is_refused_and_nothing_is_written(reg: Registry) -> None:
    """A report that is not a pass cannot be published."""
    with pytest.raises(PublishRefusedError, match=r"not a pass \(0/1 passed, 1 failed\)"):
        reg.publish(make_spec(), code_for("add_ints"), failing_report(), provenance())
    assert not reg.path.exists()


def test_bad_explicit_version(reg: Registry) -> None:
    """A version that is not semver is a usage error."""
    with pytest.raises(UsageError, match="not a semantic version"):
        publish(reg, version="1.2")


@pytest.mark.parametrize(
    ("ref", "want"),
    [
        ("add_ints", "2.0.0"),
        ("add_ints@1.2.3", "1.2.3"),
        ("add_ints@^1.2", "1.4.0"),
        ("add_ints@~1.2", "1.2.9"),
        ("add_ints@>=1,<2", "1.4.0"),
        ("add_ints@<1.3", "1.2.9"),
        ("add_ints@1.2", "1.2.9"),
    ],
)
def test_references_resolve_to_one_version(reg: Registry, ref: str, want: str) -> None:
    """Names, exact pins and ranges select the highest matching version."""
    for v in ("1.2.3", "1.2.9", "1.4.0", "2.0.0"):
        publish(reg, version=v)
    assert reg.resolve(ref).version == want


def test_yanked_versions_only_by_exact_pin(reg: Registry) -> None:
    """A yanked version is skipped by ranges and bare names but resolves when pinned."""
    publish(reg, version="1.0.0")
    publish(reg, version="1.1.0")
    reg.yank("add_ints@1.1.0", "wrong sign")
    assert reg.resolve("add_ints").version == "1.0.0"
    assert reg.resolve("add_ints@^1.0").version == "1.0.0"
    pinned = reg.resolve("add_ints@1.1.0")
    assert pinned.yanked and pinned.yank_reason == "wrong sign"
    reg.unyank("add_ints@1.1.0")
    assert reg.resolve("add_ints").version == "1.1.0"


def test_range_matching_only_yanked_versions_fails(reg: Registry) -> None:
    """A range that only a yanked version satisfies resolves to nothing, saying why."""
    publish(reg, version="1.0.0")
    publish(reg, version="2.0.0")
    reg.yank("add_ints@2.0.0", "broken")
    with pytest.raises(ToolNotFoundError, match=r"yanked versions 2\.0\.0 are chosen only by"):
        reg.resolve("add_ints@^2")


def test_yank_changes_only_the_yank_fields(reg: Registry) -> None:
    """Yanking keeps the digest and every other field of the record."""
    record = publish(reg)
    yanked = reg.yank("add_ints@0.1.0", "superseded")
    assert yanked.model_dump(exclude={"yanked", "yank_reason"}) == record.model_dump(
        exclude={"yanked", "yank_reason"}
    )
    assert reg.versions("add_ints")[0].yank_reason == "superseded"


def test_yank_needs_exact_version_and_reason(reg: Registry) -> None:
    """Yanking a range or without a reason is a usage error."""
    publish(reg)
    with pytest.raises(UsageError, match="needs an exact version"):
        reg.yank("add_ints@^0.1", "x")
    with pytest.raises(UsageError, match="needs a reason"):
        reg.yank("add_ints@0.1.0", "  ")


def test_unknown_version_and_tool(reg: Registry) -> None:
    """Unknown versions and tools are ToolNotFoundError with a hint."""
    publish(reg)
    with pytest.raises(ToolNotFoundError, match=r"add_ints has no version 9\.9\.9"):
        reg.resolve("add_ints@9.9.9")
    with pytest.raises(ToolNotFoundError, match="no published version of add_ints matches"):
        reg.resolve("add_ints@>=5")
    with pytest.raises(ToolNotFoundError, match="no tool named 'other'"):
        reg.resolve("other")


def test_empty_registry(reg: Registry) -> None:
    """An empty (even absent) registry lists nothing and says it is empty on resolve."""
    assert reg.list() == [] and reg.search("add") == [] and reg.verify() == []
    with pytest.raises(ToolNotFoundError, match="the registry is empty"):
        reg.resolve("add_ints")
    assert not reg.path.exists()


@pytest.mark.parametrize("ref", ["../x", "a/b", "A", "x@", "x@not a range", "", "x/../y@1.0.0"])
def test_bad_references_are_usage_errors(reg: Registry, ref: str) -> None:
    """Path-like names and broken constraints are refused before touching the disk."""
    publish(reg)
    before = snapshot(reg.path)
    with pytest.raises(UsageError, match="invalid"):
        reg.resolve(ref)
    assert snapshot(reg.path) == before


def test_list_and_versions(reg: Registry) -> None:
    """list shows one row per tool (what a bare name resolves to); versions shows all."""
    publish(reg, version="1.0.0")
    publish(reg, version="1.1.0")
    publish(reg, name="mul_ints", version="0.1.0")
    reg.yank("add_ints@1.1.0", "bad")
    assert [(r.name, r.version) for r in reg.list()] == [
        ("add_ints", "1.0.0"),
        ("mul_ints", "0.1.0"),
    ]
    assert [r.version for r in reg.versions("add_ints")] == ["1.0.0", "1.1.0"]
    with pytest.raises(UsageError, match="takes a tool name"):
        reg.versions("add_ints@1.0.0")


def test_search_ranks_and_follows_changes(reg: Registry) -> None:
    """Search ranks by relevance over name/description/tags and sees new and yanked versions."""
    publish(reg, spec=make_spec("add_ints", "Add two integers.", tags=["math"]))
    publish(reg, name="parse_csv", spec=make_spec("parse_csv", "Parse CSV text into rows."))
    publish(reg, name="csv_header", spec=make_spec("csv_header", "Read the header of a table."))
    hits = reg.search("parse csv rows")
    assert [h.name for h in hits] == ["parse_csv", "csv_header"]
    assert reg.search("math")[0].name == "add_ints"
    assert reg.search("zebra") == []
    publish(reg, name="count_rows", spec=make_spec("count_rows", "Count rows rows rows."))
    assert reg.search("rows")[0].name == "count_rows"
    reg.yank("count_rows@0.1.0", "gone")
    assert "count_rows" not in [h.name for h in reg.search("rows")]
    assert len(reg.search("csv", limit=1)) == 1


def test_default_path_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TOOLSMITH_REGISTRY picks the registry when no path is given."""
    monkeypatch.setenv("TOOLSMITH_REGISTRY", str(tmp_path / "env-reg"))
    assert Registry().path == tmp_path / "env-reg"
    monkeypatch.delenv("TOOLSMITH_REGISTRY")
    assert Registry.default_path().name == "registry"


def test_first_publish_trusts_its_key_later_keys_are_refused(reg: Registry) -> None:
    """A registry created by a publish is held by its signer; an unknown signer later is
    refused, and nothing is written."""
    publish(reg)
    stranger = SigningKey.generate("stranger")
    before = snapshot(reg.path)
    with pytest.raises(PublishRefusedError, match=r"is not a publisher \(targets role\)"):
        publish(reg, signer=stranger)
    assert snapshot(reg.path) == before


def test_threshold_two_needs_two_signers(reg: Registry) -> None:
    """With threshold 2, one signer is refused at publish time; two signers pass and verify."""
    alice, bob = KeyStore().generate("alice"), KeyStore().generate("bob")
    reg.init()
    reg.trust_key(alice.public_path.read_bytes())
    reg.trust_key(bob.public_path.read_bytes())
    reg.set_threshold(2)
    keys = [KeyStore().load("alice"), KeyStore().load("bob")]
    with pytest.raises(PublishRefusedError, match="threshold is 2"):
        publish(reg, signer=keys[0])
    publish(reg, signer=keys)
    assert set(reg.resolve("add_ints").signers) == {alice.key_id, bob.key_id}


def test_prereleases_are_chosen_only_when_asked_for(reg: Registry) -> None:
    """A release candidate never becomes the default: bare names and ranges skip it, an exact pin
    or a range naming a prerelease picks it."""
    publish(reg, version="1.0.0")
    publish(reg, version="1.1.0-rc.1")
    assert reg.resolve("add_ints").version == "1.0.0"
    assert reg.resolve("add_ints@^1").version == "1.0.0"
    assert reg.list()[0].version == "1.0.0"
    assert reg.resolve("add_ints@1.1.0-rc.1").version == "1.1.0-rc.1"
    assert reg.resolve("add_ints@>=1.1.0-rc.0").version == "1.1.0-rc.1"


def test_build_metadata_versions_are_refused(reg: Registry) -> None:
    """1.0.0+evil would sort as 1.0.0 with other code; publishing it is refused, nothing written."""
    publish(reg, version="1.0.0")
    before = snapshot(reg.path)
    with pytest.raises(UsageError, match=r"build metadata"):
        publish(reg, version="1.0.0+evil", code=code_for("add_ints", "a - b"))
    assert snapshot(reg.path) == before


def test_expiry_windows_local_long_served_short(tmp_path: Path) -> None:
    """A local registry's timestamp outlives a year untouched; `init --timestamp-days` makes a
    short window for a served one, and `refresh` re-signs it with a fresh expiry."""
    import json
    from datetime import UTC, datetime, timedelta

    def expires(reg: Registry) -> datetime:
        assert isinstance(reg.path, Path)
        ts = json.loads((reg.path / "metadata" / "timestamp.json").read_bytes())
        return datetime.fromisoformat(ts["signed"]["expires"].replace("Z", "+00:00"))

    local = Registry(tmp_path / "local")
    publish(local)
    assert expires(local) > datetime.now(UTC) + timedelta(days=365)
    served = Registry(tmp_path / "served")
    served.init(expiry_days={"timestamp": 1})
    assert expires(served) < datetime.now(UTC) + timedelta(days=2)
    before = expires(served)
    served.refresh(expiry_days=3)
    assert expires(served) > before + timedelta(days=1)
