"""The local key store: Ed25519 signing keys on disk, readable by their owner only.

Keys live in ``$TOOLSMITH_HOME/keys`` when that is set (tests and CI use it to stay hermetic), else
in the per-user config dir. Each key is ``<name>.key`` (PKCS#8 PEM, mode 0600) beside its
``<name>.pub``.
A private key that the group or others can read is refused, not silently used.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from toolsmith.errors import KeyStoreError, SignatureError
from toolsmith.files import atomic_write
from toolsmith.log import get_logger
from toolsmith.settings import Settings
from toolsmith.signing import SigningKey, key_id, load_public_key, public_pem

_log = get_logger(__name__)
KEY_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEFAULT_KEY = "default"


def key_dir() -> Path:
    """``$TOOLSMITH_HOME/keys``, else ``keys`` in the per-user config dir."""
    return Settings.load().paths.keys


@dataclass(frozen=True)
class KeyInfo:
    name: str
    key_id: str
    private_path: Path
    public_path: Path


class KeyStore:
    """Named signing keys in one directory."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else key_dir()

    def _io_error(self, doing: str, e: OSError) -> KeyStoreError:
        where = e.filename or self.path
        return KeyStoreError(
            f"cannot {doing} in the key store {self.path}: {e.strerror or e} ({where})",
            hint="point TOOLSMITH_HOME at a directory you can write (a file or a read-only "
            "place where the key directory should be cannot hold keys)",
        )

    def _paths(self, name: str) -> tuple[Path, Path]:
        if not KEY_NAME_RE.fullmatch(name):
            raise KeyStoreError(
                f"key name {name!r} is not allowed",
                hint="use letters, digits, '_', '.', '-' (no '/'), at most 64 characters",
            )
        return self.path / f"{name}.key", self.path / f"{name}.pub"

    def generate(self, name: str = DEFAULT_KEY) -> KeyInfo:
        """Create a new key; never overwrites an existing one.

        The private key is written whole to a temporary file and then hard-linked into place,
        which fails if the name exists: a concurrent reader never sees half a key, and of two
        processes generating the same name exactly one wins.
        """
        priv_path, pub_path = self._paths(name)
        key = SigningKey.generate(name)
        pem = key.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
            atomic_write(priv_path, pem, mode=0o600, exclusive=True)
        except FileExistsError:
            raise KeyStoreError(
                f"key {name!r} already exists at {priv_path}",
                hint="choose another --name; `toolsmith keys list` shows the existing keys",
            ) from None
        except OSError as e:
            raise self._io_error(f"write key {name!r}", e) from None
        try:
            atomic_write(pub_path, public_pem(key.public_key))
        except OSError as e:
            raise self._io_error(f"write public key {name!r}", e) from None
        return KeyInfo(name, key.key_id, priv_path, pub_path)

    def load(self, name: str = DEFAULT_KEY) -> SigningKey:
        priv_path, _ = self._paths(name)
        try:
            mode = priv_path.stat().st_mode
        except (FileNotFoundError, NotADirectoryError):
            raise KeyStoreError(
                f"no signing key {name!r} in {self.path}",
                hint=f"create one with `toolsmith keys generate --name {name}`",
            ) from None
        except OSError as e:
            raise self._io_error(f"read key {name!r}", e) from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyStoreError(
                f"private key {priv_path} is accessible by group or others "
                f"(mode {stat.S_IMODE(mode):04o})",
                hint=f"chmod 600 {priv_path}",
            )
        try:
            key = serialization.load_pem_private_key(priv_path.read_bytes(), password=None)
        except OSError as e:
            raise self._io_error(f"read key {name!r}", e) from None
        except (ValueError, TypeError) as e:
            raise KeyStoreError(f"cannot read private key {priv_path}: {e}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyStoreError(f"{priv_path} is not an Ed25519 key")
        return SigningKey(key, name)

    def list(self) -> list[KeyInfo]:
        if not self.path.is_dir():
            return []
        infos = []
        for pub_path in sorted(self.path.glob("*.pub")):
            name = pub_path.stem
            try:
                kid = key_id(load_public_key(pub_path.read_bytes()))
            except (SignatureError, OSError) as e:
                _log.warning("unreadable public key skipped", file=str(pub_path), error=str(e))
                continue
            infos.append(KeyInfo(name, kid, self.path / f"{name}.key", pub_path))
        return infos

    def public_key_path(self, name: str = DEFAULT_KEY) -> Path:
        return self._paths(name)[1]


def default_signing_key(store: KeyStore | None = None) -> SigningKey:
    """The ``default`` key, generated on first use (and logged, so it never happens unseen)."""
    store = store or KeyStore()
    priv_path, _ = store._paths(DEFAULT_KEY)
    if not priv_path.exists():
        try:
            info = store.generate(DEFAULT_KEY)
        except KeyStoreError:
            if not priv_path.exists():
                raise
        else:
            _log.warning("generated signing key", key_id=info.key_id, path=str(info.private_path))
    return store.load(DEFAULT_KEY)
