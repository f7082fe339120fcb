"""Attacks on the registry, in the style of python-tuf's ``RepositorySimulator`` tests.

An attacker here can write the registry directory (or serve what it likes) and, where a test says
so, holds some of the registry's keys. Each test asserts the attack is refused with the error that
names it, and that neither the registry directory nor the consumer's trusted state was changed by
the attempt (``Snapshot``). Old, validly signed metadata is made by the registry's own writer and
kept aside; forged metadata is signed with python-tuf's Metadata API, as an attacker would.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tuf.api.metadata import Metadata, Root, Timestamp
from tuf.api.serialization.json import JSONSerializer

from tests.test_registry_support import (
    code_for,
    flip_byte,
    holder_files,
    make_spec,
    passing_report,
    provenance,
    registry_with_roles,
    target_file,
)
from toolsmith.errors import (
    CorruptRegistryError,
    DigestMismatchError,
    FreezeError,
    MetadataTooLargeError,
    MixAndMatchError,
    PublishRefusedError,
    RollbackError,
    SignatureError,
    ToolNotFoundError,
    ToolsmithError,
    TrustError,
    UnsafePathError,
    UntrustedRegistryError,
)
from toolsmith.keys import KeyStore, default_signing_key
from toolsmith.registry import Registry, trust_registry
from toolsmith.signing import SigningKey, public_pem

COMPACT = JSONSerializer(compact=True)


def tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` (links as their target text) with its sha256."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


class Snapshot:
    """The registry directory and the consumer's state, to compare before and after.

    ``ignore`` names consumer files an attack may legitimately advance: a timestamp validly
    signed by a stolen online key is trusted (and kept) before the snapshot it names is refused.
    """

    def __init__(self, reg: Registry, ignore: tuple[str, ...] = ()) -> None:
        assert isinstance(reg.path, Path)
        self.reg = reg
        self.paths = [reg.path, reg._consumer.dir]
        self.ignore = ignore
        self.before = self._trees()

    def _trees(self) -> list[dict[str, str]]:
        return [
            {k: v for k, v in tree(p).items() if k.rsplit("/", 1)[-1] not in self.ignore}
            for p in self.paths
        ]

    def unchanged(self) -> None:
        assert self._trees() == self.before


def publish(reg: Registry, version: str, body: str = "a + b", **kw: object) -> None:
    reg.publish(
        make_spec(),
        code_for("add_ints", body),
        passing_report(),
        provenance(),
        version=version,
        **kw,
    )


@pytest.fixture(params=["bins", "flat"])
def reg(tmp_path: Path, request: pytest.FixtureRequest) -> Registry:
    """A registry with add_ints@1.0.0: in hashed bins, or in the flat layout of registries made
    before bins (which must keep resisting every attack)."""
    r = Registry(tmp_path / "reg")
    if request.param == "flat":
        r.init(bin_bits=None)
    publish(r, "1.0.0")
    return r


def meta(reg: Registry) -> Path:
    assert isinstance(reg.path, Path)
    return reg.path / "metadata"


def keep(reg: Registry, where: Path) -> Path:
    """Keep the registry's current metadata aside (a validly signed old state)."""
    shutil.copytree(meta(reg), where)
    return where


def put_back(reg: Registry, kept: Path, *names: str) -> None:
    """Put files of a kept state back (all of them when no names are given)."""
    for name in names or [p.name for p in kept.iterdir()]:
        shutil.copy2(kept / name, meta(reg) / name)


def re_sign(path: Path, key: SigningKey, edit: Callable[[Metadata], None]) -> None:
    """Edit and re-sign a metadata file with ``key`` (a key the attacker holds)."""
    md = Metadata.from_file(str(path))
    edit(md)
    md.signatures.clear()
    md.sign(key.signer)
    path.write_bytes(md.to_bytes(COMPACT))


def refused(reg: Registry, error: type[ToolsmithError], match: str) -> None:
    """A fresh consumer object (same user) is refused, and so is the old one."""
    with pytest.raises(error, match=match):
        Registry(reg.path).resolve("add_ints")
    reg.refresh_view()
    with pytest.raises(error, match=match):
        reg.find("add_ints")


# -- content: what the targets metadata names must be exactly what is served -------------------


@pytest.mark.parametrize("part", ["code", "spec", "report", "provenance"])
def test_one_flipped_byte_in_a_part(reg: Registry, part: str) -> None:
    flip_byte(target_file(reg, reg.find("add_ints").parts[part]))
    snap = Snapshot(reg)
    with pytest.raises(DigestMismatchError, match=part):
        reg.resolve("add_ints")
    snap.unchanged()


def test_flipped_byte_in_the_statement(reg: Registry) -> None:
    flip_byte(target_file(reg, reg.find("add_ints").envelope), 30)
    with pytest.raises(DigestMismatchError, match="statement envelope"):
        reg.resolve("add_ints")


def test_missing_target_file(reg: Registry) -> None:
    target_file(reg, reg.find("add_ints").parts["code"]).unlink()
    with pytest.raises(CorruptRegistryError, match="missing"):
        reg.resolve("add_ints")


def test_attacker_publishes_with_own_key_without_the_targets_key(reg: Registry) -> None:
    """An attacker's own key is not a publisher: publishing is refused, and metadata re-signed
    with it does not verify for any consumer."""
    mallory = SigningKey.generate("mallory")
    with pytest.raises(PublishRefusedError, match="not a publisher"):
        publish(reg, "6.6.6", "a * 666", signer=mallory)
    targets = max(meta(reg).glob("*.targets.json"), key=lambda p: int(p.name.split(".")[0]))
    re_sign(targets, mallory, lambda md: md.signed.targets.clear())
    (reg._consumer.metadata_dir / "targets.json").unlink()
    snap = Snapshot(reg)
    refused(reg, SignatureError, "targets")
    snap.unchanged()


def test_signed_failing_report_is_not_trusted(reg: Registry) -> None:
    """Even a real publisher cannot make a failing build loadable by signing it."""
    from tests.test_registry_support import failing_report

    report = failing_report()
    with pytest.raises(PublishRefusedError):
        reg.publish(make_spec(), code_for("add_ints"), report, provenance(), version="2.0.0")


# -- TUF: rollback, freeze, mix-and-match ----------------------------------------------------


def test_rollback_of_the_whole_registry(reg: Registry, tmp_path: Path) -> None:
    """An older, validly signed state put back (un-yanking 1.0.0, hiding 1.0.1) is refused."""
    old = keep(reg, tmp_path / "old")
    publish(reg, "1.0.1", "b + a")
    reg.yank("add_ints@1.0.0", "vulnerable")
    put_back(reg, old)
    snap = Snapshot(reg)
    refused(reg, RollbackError, "rollback")
    with pytest.raises(RollbackError):
        Registry(reg.path).gc()
    snap.unchanged()


def test_rollback_of_the_timestamp(reg: Registry, tmp_path: Path) -> None:
    old = keep(reg, tmp_path / "old")
    publish(reg, "1.0.1")
    put_back(reg, old, "timestamp.json")
    snap = Snapshot(reg)
    refused(reg, RollbackError, "timestamp version")
    snap.unchanged()


def test_rollback_of_the_snapshot_by_an_online_key_holder(reg: Registry) -> None:
    """Holding the timestamp key, an attacker points a new timestamp at an older snapshot."""
    publish(reg, "1.0.1")
    online = default_signing_key()

    def older_snapshot(md: Metadata) -> None:
        md.signed.version += 1
        md.signed.snapshot_meta.version -= 1

    re_sign(meta(reg) / "timestamp.json", online, older_snapshot)
    snap = Snapshot(reg)
    refused(reg, RollbackError, "snapshot version")
    snap.unchanged()


def test_rollback_of_targets_by_an_online_key_holder(reg: Registry) -> None:
    """Holding snapshot and timestamp keys, an attacker serves a snapshot naming old targets."""
    publish(reg, "1.0.1")
    role, _ = holder_files(reg)
    online = default_signing_key()
    ts = Metadata[Timestamp].from_file(str(meta(reg) / "timestamp.json"))
    snapshot_file = meta(reg) / f"{ts.signed.snapshot_meta.version}.snapshot.json"
    new_version = ts.signed.snapshot_meta.version + 1

    def older_targets(md: Metadata) -> None:
        md.signed.version = new_version
        md.signed.meta[f"{role}.json"].version -= 1

    re_sign(snapshot_file, online, older_targets)
    shutil.move(snapshot_file, meta(reg) / f"{new_version}.snapshot.json")

    def to_new_snapshot(md: Metadata) -> None:
        md.signed.version += 1
        md.signed.snapshot_meta.version = new_version

    re_sign(meta(reg) / "timestamp.json", online, to_new_snapshot)
    snap = Snapshot(reg, ignore=("timestamp.json",))
    refused(reg, RollbackError, f"{role}.json version")
    snap.unchanged()


@pytest.mark.parametrize("role", ["timestamp", "snapshot"])
def test_freeze_expired_metadata_is_refused(reg: Registry, role: str) -> None:
    """Metadata past its expiry (an old state served forever) is a FreezeError; the
    maintainer's refresh brings the registry back."""
    online = default_signing_key()
    past = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    ts = Metadata[Timestamp].from_file(str(meta(reg) / "timestamp.json"))
    if role == "snapshot":
        re_sign(
            meta(reg) / f"{ts.signed.snapshot_meta.version}.snapshot.json",
            online,
            lambda md: setattr(md.signed, "expires", past),
        )
        (reg._consumer.metadata_dir / "snapshot.json").unlink()

    def expire(md: Metadata) -> None:
        md.signed.version += 1
        if role == "timestamp":
            md.signed.expires = past

    re_sign(meta(reg) / "timestamp.json", online, expire)
    targets_state = (reg._consumer.metadata_dir / "targets.json").read_bytes()
    with pytest.raises(FreezeError, match=f"{role}.json is expired"):
        Registry(reg.path).resolve("add_ints")
    assert (reg._consumer.metadata_dir / "targets.json").read_bytes() == targets_state
    if role == "timestamp":
        Registry(reg.path).refresh(expiry_days=7)
        assert Registry(reg.path).resolve("add_ints").version == "1.0.0"


def test_mix_and_match_old_targets_under_a_new_snapshot(reg: Registry) -> None:
    """The current metadata listing the tool (its bin, or targets) replaced by an older
    version's content."""
    publish(reg, "1.0.1")
    role, files = holder_files(reg)
    files[-1].write_bytes(files[-2].read_bytes())
    (reg._consumer.metadata_dir / f"{role}.json").unlink()
    snap = Snapshot(reg)
    refused(reg, MixAndMatchError, "mix-and-match")
    snap.unchanged()


def test_fast_forward_recovery_after_a_compromised_timestamp_key(reg: Registry) -> None:
    """A stolen timestamp key signs version 1000; once the root rotates the timestamp key, the
    consumer accepts the maintainer's lower version again (TUF fast-forward recovery)."""
    online = default_signing_key()
    re_sign(
        meta(reg) / "timestamp.json",
        online,
        lambda md: setattr(md.signed, "version", 1000),
    )
    assert Registry(reg.path).resolve("add_ints")  # the consumer now trusts version 1000
    fresh = SigningKey.generate("timestamp-2")
    with reg._edit() as state:
        root: Root = state.root.signed
        root.revoke_key(online.key_id, "timestamp")
        root.add_key(fresh.tuf_key, "timestamp")
        state.changed.add("root")
        state.timestamp.signed.version = 1
        reg._commit(
            state,
            {"root": [online], "timestamp": [fresh]},
            "trust",
            subject="timestamp",
            actor="test",
            reason="rotate the stolen timestamp key",
            data={},
        )
    assert Registry(reg.path).resolve("add_ints").version == "1.0.0"


def test_compromised_online_keys_cannot_add_a_tool(tmp_path: Path) -> None:
    """Holding the snapshot and timestamp keys but not the (offline) targets key, an attacker's
    targets metadata with a new tool, signed with the online key, does not verify."""
    publisher, approver = SigningKey.generate("publisher"), SigningKey.generate("approver")
    reg = registry_with_roles(tmp_path / "reg", publisher, approver)
    publish(reg, "1.0.0", signer=publisher)
    online = default_signing_key()
    role, files = holder_files(reg)

    def add_tool(md: Metadata) -> None:
        info = md.signed.targets["tools/add_ints/1.0.0/statement"]
        md.signed.targets["tools/add_ints/6.6.6/statement"] = info

    re_sign(files[-1], online, add_tool)
    (reg._consumer.metadata_dir / f"{role}.json").unlink()
    snap = Snapshot(reg)
    refused(reg, SignatureError, role)
    snap.unchanged()


def test_trust_store_edit_in_the_registry_changes_nothing(reg: Registry) -> None:
    """Whoever writes the registry directory writes a new root naming their own key: it is not
    signed by the pinned root's key, so it is refused and the pinned root stays."""
    mallory = SigningKey.generate("mallory")
    root = Metadata[Root].from_file(str(meta(reg) / "root.json"))
    for role in ("root", "targets", "snapshot", "timestamp"):
        for kid in list(root.signed.roles[role].keyids):
            root.signed.revoke_key(kid, role)
        root.signed.add_key(mallory.tuf_key, role)
    root.signed.version += 1
    root.signatures.clear()
    root.sign(mallory.signer)
    (meta(reg) / f"{root.signed.version}.root.json").write_bytes(root.to_bytes(COMPACT))
    snap = Snapshot(reg)
    refused(reg, SignatureError, "root")
    snap.unchanged()


def test_untrusted_registry_needs_its_fingerprint(
    reg: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another user's first load is refused with the fix; a wrong fingerprint is refused; the
    right one pins it."""
    monkeypatch.setenv("TOOLSMITH_HOME", str(tmp_path / "other"))
    with pytest.raises(UntrustedRegistryError, match="registry trust"):
        Registry(reg.path).resolve("add_ints")
    with pytest.raises(TrustError, match="not the registry you were given"):
        trust_registry(reg.path, "0" * 64)
    trust_registry(reg.path, reg.fingerprint())
    assert Registry(reg.path).resolve("add_ints").version == "1.0.0"


def test_k_of_n_with_one_key_rotated(reg: Registry) -> None:
    """Two of three publishers must sign; after one is rotated out, its signature no longer
    counts, and the new key's does."""
    store = KeyStore()
    for n in ("alice", "bob", "carol", "dave"):
        store.generate(n)
    alice, bob, carol, dave = (store.load(n) for n in ("alice", "bob", "carol", "dave"))
    for k in (alice, bob, carol):
        reg.trust_key(public_pem(k.public_key), k.name)
    reg.untrust_key(default_signing_key().key_id)
    reg.set_threshold(2, signer=alice)
    publish(reg, "2.0.0", signer=[alice, bob])
    assert set(reg.resolve("add_ints@2.0.0").signers) == {alice.key_id, bob.key_id}
    reg.untrust_key(bob.key_id, signer=alice)
    reg.trust_key(public_pem(dave.public_key), "dave", signer=alice)
    with pytest.raises(PublishRefusedError, match="not a publisher"):
        publish(reg, "2.0.1", signer=[alice, bob])
    with pytest.raises(PublishRefusedError, match="threshold is 2"):
        publish(reg, "2.0.1", signer=[alice])
    publish(reg, "2.0.1", signer=[alice, dave])
    assert Registry(reg.path).resolve("add_ints").version == "2.0.1"
    with pytest.raises(SignatureError):
        Registry(reg.path).resolve("add_ints@2.0.0")  # bob's signature counts no more


# -- hashed bins --------------------------------------------------------------------------------


@pytest.fixture
def binned(tmp_path: Path) -> Registry:
    """A registry in hashed bins with add_ints and mul_ints, whose bins differ."""
    r = Registry(tmp_path / "reg")
    publish(r, "1.0.0")
    r.publish(make_spec("mul_ints"), code_for("mul_ints", "a * b"), passing_report(), provenance())
    assert holder_files(r)[0] != holder_files(r, "mul_ints")[0]
    return r


def test_a_bin_edited_without_the_publisher_key_is_refused(binned: Registry) -> None:
    """A yank undone in the current bin's bytes, not re-signed: its signature fails, for
    resolve and for list, and nothing is saved."""
    binned.yank("add_ints@1.0.0", "vulnerable")
    role, files = holder_files(binned)
    files[-1].write_text(files[-1].read_text().replace('"yanked":true', '"yanked":false', 1))
    (binned._consumer.metadata_dir / f"{role}.json").unlink()
    snap = Snapshot(binned)
    refused(binned, SignatureError, role)
    with pytest.raises(SignatureError, match=role):
        Registry(binned.path).list()
    snap.unchanged()


def test_a_bin_signed_by_a_key_that_is_not_a_publisher_is_refused(binned: Registry) -> None:
    """A bin re-signed by an attacker's own key (a new version listed in it) does not verify."""
    mallory = SigningKey.generate("mallory")
    role, files = holder_files(binned)

    def add_version(md: Metadata) -> None:
        info = md.signed.targets["tools/add_ints/1.0.0/statement"]
        md.signed.targets["tools/add_ints/6.6.6/statement"] = info

    re_sign(files[-1], mallory, add_version)
    (binned._consumer.metadata_dir / f"{role}.json").unlink()
    snap = Snapshot(binned)
    refused(binned, SignatureError, role)
    snap.unchanged()


def test_a_target_in_the_wrong_bin_is_refused(binned: Registry) -> None:
    """A publisher key holder moves add_ints into mul_ints' bin (every signature valid): the
    client does not find add_ints there, and listing the registry refuses the misplaced
    target; nothing is saved but the verified metadata."""
    right, _ = holder_files(binned)
    wrong, _ = holder_files(binned, "mul_ints")
    # Committed through the writer's own path (the writer's check after its commit already
    # refuses what it wrote); a consumer must refuse it too.
    with pytest.raises(TrustError, match="wrong bin"), binned._edit() as state:
        moved = state.tool_targets("add_ints")
        state.bins[right].signed.targets.clear()
        state.holder("mul_ints")[1].signed.targets.update(moved)
        state.changed |= {right, wrong}
        binned._commit(
            state,
            {"targets": [default_signing_key()]},
            "publish",
            subject="x",
            actor="t",
            reason=None,
            data={},
        )
    with pytest.raises(ToolNotFoundError, match="no tool named 'add_ints'"):
        Registry(binned.path).resolve("add_ints")
    snap = Snapshot(binned)
    with pytest.raises(
        TrustError,
        match=rf"add_ints/1\.0\.0/\w+ is listed in bin {wrong}.*"
        rf"belong in bin {right}.*wrong bin",
    ):
        Registry(binned.path).list()
    snap.unchanged()


def test_a_bin_rolled_back_by_an_online_key_holder_is_refused(binned: Registry) -> None:
    """Holding the snapshot and timestamp keys, an attacker serves a new snapshot naming the
    bin as it was before a yank (the old bin file is still there, validly signed)."""
    binned.yank("add_ints@1.0.0", "vulnerable")
    role, _ = holder_files(binned)
    online = default_signing_key()
    ts = Metadata[Timestamp].from_file(str(meta(binned) / "timestamp.json"))
    current = meta(binned) / f"{ts.signed.snapshot_meta.version}.snapshot.json"
    new = ts.signed.snapshot_meta.version + 1

    def older_bin(md: Metadata) -> None:
        md.signed.version = new
        md.signed.meta[f"{role}.json"].version -= 1

    re_sign(current, online, older_bin)
    shutil.move(current, meta(binned) / f"{new}.snapshot.json")
    re_sign(
        meta(binned) / "timestamp.json",
        online,
        lambda md: (
            setattr(md.signed, "version", md.signed.version + 1),
            setattr(md.signed.snapshot_meta, "version", new),
        ),
    )
    snap = Snapshot(binned, ignore=("timestamp.json",))
    refused(binned, RollbackError, f"{role}.json version")
    snap.unchanged()


def test_bins_of_two_snapshots_mixed_are_refused(binned: Registry, tmp_path: Path) -> None:
    """After mul_ints' bin moved on, its old bin file served under the new version's name
    (the snapshot names the new one): the version it carries gives it away."""
    old = keep(binned, tmp_path / "old")
    binned.yank("mul_ints@0.1.0", "vulnerable")
    role, files = holder_files(binned, "mul_ints")
    files[-1].write_bytes((old / files[-2].name).read_bytes())
    (binned._consumer.metadata_dir / f"{role}.json").unlink()
    snap = Snapshot(binned)
    with pytest.raises(MixAndMatchError, match=rf"{role}.*mix-and-match"):
        Registry(binned.path).list()
    snap.unchanged()


def test_a_snapshot_that_drops_a_bin_is_refused(binned: Registry) -> None:
    """A snapshot signed by a stolen online key that no longer lists add_ints' bin (hiding
    every version of it) is refused: a bin once listed never leaves."""
    role, _ = holder_files(binned)
    online = default_signing_key()
    ts = Metadata[Timestamp].from_file(str(meta(binned) / "timestamp.json"))
    current = meta(binned) / f"{ts.signed.snapshot_meta.version}.snapshot.json"
    new = ts.signed.snapshot_meta.version + 1

    def drop_bin(md: Metadata) -> None:
        md.signed.version = new
        del md.signed.meta[f"{role}.json"]

    re_sign(current, online, drop_bin)
    shutil.move(current, meta(binned) / f"{new}.snapshot.json")
    re_sign(
        meta(binned) / "timestamp.json",
        online,
        lambda md: (
            setattr(md.signed, "version", md.signed.version + 1),
            setattr(md.signed.snapshot_meta, "version", new),
        ),
    )
    snap = Snapshot(binned, ignore=("timestamp.json",))
    refused(binned, MixAndMatchError, f"missing info for '{role}.json'")
    snap.unchanged()


# -- storage: links, special files, endless data ----------------------------------------------


def outside(tmp_path: Path) -> Path:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("keep me")
    return victim


@pytest.mark.parametrize(
    "where", ["metadata/timestamp.json", "metadata", "targets", "targets/tools/add_ints"]
)
def test_symlinks_inside_the_registry_are_not_followed_for_reads(
    reg: Registry, tmp_path: Path, where: str
) -> None:
    """A metadata file or a directory replaced by a link to a copy elsewhere: the registry
    refuses the link (it would let whoever controls the target change what is read)."""
    assert isinstance(reg.path, Path)
    path = reg.path / where
    real = tmp_path / "real"
    shutil.move(path, real)
    path.symlink_to(real)
    snap = Snapshot(reg)
    with pytest.raises(UnsafePathError, match=r"not a directory|symlink"):
        Registry(reg.path).resolve("add_ints")
    snap.unchanged()


@pytest.mark.parametrize("where", [".lock", "audit.jsonl", "audit.jsonl.head"])
def test_symlinks_at_written_paths_write_nothing_outside(
    reg: Registry, tmp_path: Path, where: str
) -> None:
    """A lock file or audit log replaced by a link to a file elsewhere: the edit is refused and
    the file elsewhere is untouched; nothing is created outside the registry."""
    victim = outside(tmp_path)
    assert isinstance(reg.path, Path)
    (reg.path / where).unlink(missing_ok=True)
    (reg.path / where).symlink_to(victim / "precious")
    with pytest.raises(ToolsmithError):
        reg.yank("add_ints@1.0.0", "test")
    assert (victim / "precious").read_text() == "keep me"
    assert sorted(p.name for p in victim.iterdir()) == ["precious"]
    assert reg.find("add_ints@1.0.0").yanked is False


def test_gc_never_deletes_outside_through_links(reg: Registry, tmp_path: Path) -> None:
    """A symlinked directory and a hard-linked file inside targets/: gc removes neither the
    victim's files nor follows the link."""
    victim = outside(tmp_path)
    assert isinstance(reg.path, Path)
    (reg.path / "targets" / "tools" / "evil").symlink_to(victim)
    os.link(victim / "precious", reg.path / "targets" / "hardlinked")
    reg.gc()
    assert (victim / "precious").read_text() == "keep me"


def test_hard_linked_target_is_refused(reg: Registry, tmp_path: Path) -> None:
    """A target file that is a hard link (so writes elsewhere change it) is never read."""
    code = target_file(reg, reg.find("add_ints").parts["code"])
    os.link(code, tmp_path / "elsewhere")
    with pytest.raises(UnsafePathError, match="hard links"):
        reg.resolve("add_ints")


def test_a_fifo_is_refused_not_waited_on(reg: Registry) -> None:
    code = target_file(reg, reg.find("add_ints").parts["code"])
    code.unlink()
    os.mkfifo(code)
    with pytest.raises(UnsafePathError, match="not a regular file"):
        reg.resolve("add_ints")


@pytest.mark.parametrize("name", ["timestamp.json", "snapshot"])
def test_oversized_metadata_is_refused(reg: Registry, name: str) -> None:
    """Endless data: metadata over its cap is refused before it is parsed."""
    if name == "snapshot":
        ts = Metadata[Timestamp].from_file(str(meta(reg) / "timestamp.json"))
        path = meta(reg) / f"{ts.signed.snapshot_meta.version + 1}.snapshot.json"
        re_sign(
            meta(reg) / "timestamp.json",
            default_signing_key(),
            lambda md: (
                setattr(md.signed, "version", md.signed.version + 1),
                setattr(md.signed.snapshot_meta, "version", md.signed.snapshot_meta.version + 1),
            ),
        )
        path.write_bytes(b" " * 2_100_000)
    else:
        (meta(reg) / name).write_bytes(b" " * 20_000)
    with pytest.raises(MetadataTooLargeError):
        Registry(reg.path).resolve("add_ints")


@pytest.mark.parametrize("where", ["targets", "targets/tools", "metadata"])
def test_publish_through_a_linked_directory_creates_nothing_outside(
    reg: Registry, tmp_path: Path, where: str
) -> None:
    """A directory the registry writes into replaced by a link to a folder elsewhere: the
    publish is refused and nothing appears in that folder."""
    victim = outside(tmp_path)
    assert isinstance(reg.path, Path)
    path = reg.path / where
    shutil.copytree(path, victim / "copy")
    shutil.rmtree(path)
    path.symlink_to(victim / "copy")
    before = tree(victim)
    with pytest.raises(UnsafePathError):
        publish(reg, "2.0.0", "a - -b")
    assert tree(victim) == before


def test_a_damaged_pinned_root_in_the_consumer_state_says_to_pin_again(reg: Registry) -> None:
    """The consumer's own pinned root being garbage is its state's fault, not the registry's:
    the error names the file and says to pin the registry again (was "do not use this
    registry copy")."""
    from toolsmith.registry._client import state_root

    reg.resolve("add_ints")
    [pinned] = (state_root() / "registries").glob("*/metadata/root.json")
    pinned.write_text("garbage\n")
    with pytest.raises(TrustError, match=r"pinned root .* is damaged") as e:
        Registry(reg.path).resolve("add_ints")
    assert "registry trust" in (e.value.hint or "")
    assert "do not use this registry copy" not in str(e.value)
