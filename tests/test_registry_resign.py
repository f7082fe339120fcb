"""Re-signing an index that no longer verifies: after untrusting its signer, or from before
indexes were signed. Every version must still verify on its own; a person reviews the rest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_registry_support import (
    code_for,
    edit_record,
    make_spec,
    passing_report,
    provenance,
    read_index_doc,
    snapshot,
)
from toolsmith.errors import CorruptRegistryError, SignatureError
from toolsmith.registry import Registry
from toolsmith.signing import SigningKey, public_pem


@pytest.fixture
def alice() -> SigningKey:
    return SigningKey.generate("alice")


@pytest.fixture
def bob() -> SigningKey:
    return SigningKey.generate("bob")


@pytest.fixture
def reg(tmp_path: Path, alice: SigningKey, bob: SigningKey) -> Registry:
    """add_ints 1.0.0 and 1.0.1 by alice; bob, also trusted, yanked 1.0.1 (so he signed the
    index last)."""
    r = Registry(tmp_path / "reg")
    r.trust.trust(public_pem(alice.public_key), "alice")
    r.trust.trust(public_pem(bob.public_key), "bob")
    for version, body in (("1.0.0", "a + b"), ("1.0.1", "b + a")):
        r.publish(
            make_spec(),
            code_for("add_ints", body),
            passing_report(),
            provenance(),
            version=version,
            signer=alice,
        )
    r.yank("add_ints@1.0.1", "wrong for negatives", bob)
    return r


def test_untrusting_the_last_signer_then_resigning(
    reg: Registry, alice: SigningKey, bob: SigningKey
) -> None:
    """Untrusting bob leaves the index unverifiable, and the error says how to re-sign it; a dry
    run lists what alice would vouch for (1.0.1 still yanked) and writes nothing; re-signing
    restores resolution with the yank kept, and is audited."""
    reg.trust.untrust(bob.key_id)
    with pytest.raises(SignatureError, match="does not verify") as refused:
        reg.resolve("add_ints")
    assert "toolsmith registry resign add_ints" in (refused.value.hint or "")
    files = snapshot(reg.path)
    review = reg.resign("add_ints", alice, dry_run=True)
    assert [(r.version, r.yanked) for r in review] == [("1.0.0", False), ("1.0.1", True)]
    assert snapshot(reg.path) == files
    reg.resign("add_ints", alice)
    assert reg.resolve("add_ints").version == "1.0.0"
    assert reg.find("add_ints@1.0.1").yanked
    [entry] = [e for e in reg.audit.entries() if e.event == "resign"]
    assert entry.subject == "add_ints" and entry.data["yanked"] == ["1.0.1"]


def test_index_from_before_signing_is_migrated(reg: Registry, alice: SigningKey) -> None:
    """A plain JSON index (as written before indexes were signed) reads as unsigned, with the
    re-sign command as its fix; re-signing makes it load again."""
    doc = read_index_doc(reg, "add_ints")
    (reg.path / "index" / "add_ints.json").write_text(json.dumps(doc))
    with pytest.raises(CorruptRegistryError, match="not a signed index") as refused:
        reg.resolve("add_ints")
    assert "resign add_ints" in (refused.value.hint or "")
    reg.resign("add_ints", alice)
    assert reg.resolve("add_ints").version == "1.0.0"


def test_a_forged_version_is_never_resigned(reg: Registry, alice: SigningKey) -> None:
    """An index pointing 1.0.0 at version 1.0.1's statement (mix and match) is refused, so
    re-signing cannot bless what no publisher signed; nothing is written."""
    v2 = next(r for r in reg.versions("add_ints") if r.version == "1.0.1")
    edit_record(reg, "add_ints", "1.0.0", None, envelope=v2.envelope, digest=v2.digest)
    files = snapshot(reg.path)
    with pytest.raises(SignatureError, match=r"will not re-sign the index of add_ints: 1\.0\.0"):
        reg.resign("add_ints", alice)
    assert snapshot(reg.path) == files


def test_only_a_trusted_key_may_resign(reg: Registry) -> None:
    files = snapshot(reg.path)
    with pytest.raises(SignatureError, match="is not trusted"):
        reg.resign("add_ints", SigningKey.generate("mallory"))
    assert snapshot(reg.path) == files


def test_cli_resign_dry_run(reg: Registry, bob: SigningKey, tmp_path: Path) -> None:
    """`registry resign NAME --dry-run --json` lists the versions and yank flags under review."""
    reg.trust.untrust(bob.key_id)
    home = tmp_path / "home"
    env = {**os.environ, "TOOLSMITH_HOME": str(home), "TOOLSMITH_REGISTRY": str(reg.path)}
    cli = [sys.executable, "-c", "from toolsmith.cli import main; main()", "registry"]
    subprocess.run([*cli[:-1], "keys", "generate"], env=env, check=True, capture_output=True)
    pub = (home / "keys" / "default.pub").read_bytes()
    reg.trust.trust(pub, "cli")
    result = subprocess.run(
        [*cli, "resign", "add_ints", "--dry-run", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [(r["version"], r["yanked"]) for r in rows] == [("1.0.0", False), ("1.0.1", True)]
