"""The local key store: 0600 private keys, refusal of readable ones, TOOLSMITH_HOME isolation."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from toolsmith.errors import KeyStoreError, SignatureError, UsageError
from toolsmith.keys import KeyStore, default_signing_key, key_dir
from toolsmith.registry import Registry


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TOOLSMITH_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_toolsmith_home_overrides_key_dir(home: Path) -> None:
    """Keys live under $TOOLSMITH_HOME/keys when it is set."""
    assert key_dir() == home / "keys"
    assert KeyStore().path == home / "keys"


def test_generate_writes_private_key_0600(home: Path) -> None:
    """A generated key is owner-only, listed, and loads back with the same id."""
    info = KeyStore().generate("release")
    assert stat.S_IMODE(info.private_path.stat().st_mode) == 0o600
    assert [k.key_id for k in KeyStore().list()] == [info.key_id]
    assert KeyStore().load("release").key_id == info.key_id


def test_generate_never_overwrites(home: Path) -> None:
    """Generating a key under an existing name is refused, keeping the old key."""
    first = KeyStore().generate("k")
    with pytest.raises(KeyStoreError, match="already exists"):
        KeyStore().generate("k")
    assert KeyStore().load("k").key_id == first.key_id


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_readable_private_key_is_refused(home: Path, mode: int) -> None:
    """A private key that group or others can read is not used; the hint is the chmod."""
    info = KeyStore().generate("k")
    info.private_path.chmod(mode)
    with pytest.raises(KeyStoreError, match="group or others") as exc:
        KeyStore().load("k")
    assert exc.value.hint == f"chmod 600 {info.private_path}"


def test_path_like_key_names_are_refused(home: Path) -> None:
    """A key name cannot escape the key directory."""
    with pytest.raises(KeyStoreError, match="not allowed"):
        KeyStore().generate("../evil")
    assert not (home / "evil.key").exists()


def test_missing_key_names_the_fix(home: Path) -> None:
    """Loading a key that does not exist says how to create it."""
    with pytest.raises(KeyStoreError, match="no signing key 'nope'") as exc:
        KeyStore().load("nope")
    assert "keys generate" in (exc.value.hint or "")


def test_default_key_is_generated_once(home: Path) -> None:
    """The default key is created on first use and reused afterwards."""
    first = default_signing_key()
    assert default_signing_key().key_id == first.key_id
    assert len(KeyStore().list()) == 1


def test_publisher_keys_trust_untrust_threshold(tmp_path: Path) -> None:
    """Publisher keys are added idempotently (new root versions), removed by id prefix, and the
    threshold is part of the signed root: a fresh Registry object reads it back."""
    reg = Registry(tmp_path / "reg")
    reg.init()
    info = KeyStore().generate("k")
    kid = reg.trust_key(info.public_path.read_bytes(), "k")
    assert reg.trust_key(info.public_path.read_bytes(), "k") == kid
    publishers = {k.key_id: k for k in reg.trusted_keys() if "targets" in k.roles}
    assert kid in publishers and publishers[kid].name == "k" and len(publishers) == 2
    reg.set_threshold(2)
    assert Registry(tmp_path / "reg").threshold() == 2
    with pytest.raises(UsageError, match="fewer publishers than the threshold"):
        reg.untrust_key(kid[:12])
    reg.set_threshold(1)
    assert reg.untrust_key(kid[:12]) == kid
    assert kid not in {k.key_id for k in Registry(tmp_path / "reg").trusted_keys()}


def test_untrust_unknown_or_short_prefix(tmp_path: Path) -> None:
    """Untrusting needs a key id or a unique prefix of 8+ characters."""
    reg = Registry(tmp_path / "reg")
    reg.init()
    with pytest.raises(UsageError, match="0 publisher or approver keys match"):
        reg.untrust_key("deadbeef")
    with pytest.raises(UsageError, match="threshold must be at least 1"):
        reg.set_threshold(0)


def test_trusting_a_non_key_file(tmp_path: Path) -> None:
    """A file that is not a PEM public key is refused with a hint."""
    with pytest.raises(SignatureError, match="not a PEM public key"):
        Registry(tmp_path / "reg").trust_key(b"hello")


def test_processes_racing_to_create_the_default_key_agree(home: Path) -> None:
    """Processes that all find no default key each get the one key exactly one of them wrote,
    never an error or half a PEM file."""
    script = (
        "import sys, time\n"
        "from toolsmith.keys import default_signing_key\n"
        "time.sleep(max(0.0, float(sys.argv[1]) - time.time()))\n"
        "print(default_signing_key().key_id)\n"
    )
    for _round in range(5):
        shutil.rmtree(home, ignore_errors=True)
        start = str(time.time() + 1.5)
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", script, start],
                env={**os.environ, "TOOLSMITH_HOME": str(home)},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        results = [p.communicate(timeout=60) for p in procs]
        assert all(p.returncode == 0 for p in procs), [err for _, err in results]
        ids = {out.strip() for out, _ in results}
        assert ids == {KeyStore().load().key_id}
        assert not list((home / "keys").glob("*.tmp"))


def test_an_unreadable_public_key_does_not_hide_the_others(home: Path) -> None:
    """`keys list` skips a garbled .pub file (with a warning) and lists the rest."""
    KeyStore().generate("good")
    (KeyStore().path / "broken.pub").write_text("not a key")
    assert [k.name for k in KeyStore().list()] == ["good"]
