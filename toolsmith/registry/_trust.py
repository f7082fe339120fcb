"""A registry's trust store: the public keys whose signatures count, in which role, and how many
publishers must sign.

A key is trusted as a ``publisher`` (signs versions), an ``approver`` (signs a person's decision on
a pending version), or both. Stores written before roles existed have no ``roles`` field; their
keys read as publishers. Any one trusted key, in either role, may sign a tool's index (yank, unyank
and the index changes of publishing and deciding).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, Field, ValidationError

from toolsmith.errors import CorruptRegistryError, UsageError
from toolsmith.registry._storage import Storage
from toolsmith.signing import TrustPolicy, key_id, load_public_key, public_pem
from toolsmith.spec import canonical_json


class KeyRole(StrEnum):
    PUBLISHER = "publisher"
    APPROVER = "approver"


class TrustedKey(BaseModel):
    key_id: str
    name: str = ""
    public_pem: str
    roles: list[KeyRole] = Field(default_factory=lambda: [KeyRole.PUBLISHER])


class _TrustDoc(BaseModel):
    threshold: int = Field(default=1, ge=1)
    keys: list[TrustedKey] = Field(default_factory=list)

    def policy(self, role: KeyRole) -> TrustPolicy:
        keys = {
            k.key_id: load_public_key(k.public_pem.encode()) for k in self.keys if role in k.roles
        }
        return TrustPolicy(keys, self.threshold if role == KeyRole.PUBLISHER else 1)

    def maintainers(self) -> TrustPolicy:
        return TrustPolicy({k.key_id: load_public_key(k.public_pem.encode()) for k in self.keys})


@dataclass(frozen=True)
class Policies:
    """Every policy from one read of the trust store."""

    publishers: TrustPolicy
    approvers: TrustPolicy
    maintainers: TrustPolicy


class TrustStore:
    """Stored as the registry's ``trust`` metadata document; writes happen under the lock."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    def _load(self) -> _TrustDoc:
        data = self._storage.read_meta("trust")
        if data is None:
            return _TrustDoc()
        try:
            return _TrustDoc.model_validate_json(data)
        except ValidationError as e:
            raise CorruptRegistryError(
                f"the registry trust store is unreadable: {e.errors()[0]['msg']}",
                hint="restore trust.json from a copy, or delete it and trust keys again",
            ) from None

    def _save(self, doc: _TrustDoc) -> None:
        self._storage.write_meta("trust", canonical_json(doc.model_dump(mode="json")))

    def trusted_keys(self) -> list[TrustedKey]:
        return self._load().keys

    @property
    def threshold(self) -> int:
        return self._load().threshold

    def policy(self, role: KeyRole = KeyRole.PUBLISHER) -> TrustPolicy:
        """The keys trusted in ``role``; the threshold is for publishers, one approver suffices."""
        return self._load().policy(role)

    def policies(self) -> Policies:
        doc = self._load()
        return Policies(
            doc.policy(KeyRole.PUBLISHER), doc.policy(KeyRole.APPROVER), doc.maintainers()
        )

    def trust(self, pem: bytes, name: str = "", role: KeyRole = KeyRole.PUBLISHER) -> str:
        """Trust a public key in ``role`` (idempotent; adds the role to a known key) and return
        its id."""
        with self._storage.lock():
            return self.trust_while_locked(pem, name, role)

    def trust_while_locked(
        self, pem: bytes, name: str = "", role: KeyRole = KeyRole.PUBLISHER
    ) -> str:
        """``trust`` for a caller that already holds the storage lock (flock does not nest)."""
        key = load_public_key(pem)
        kid = key_id(key)
        doc = self._load()
        known = next((k for k in doc.keys if k.key_id == kid), None)
        if known is None:
            doc.keys.append(
                TrustedKey(key_id=kid, name=name, public_pem=public_pem(key).decode(), roles=[role])
            )
        elif role not in known.roles:
            known.roles.append(role)
        else:
            return kid
        self._save(doc)
        return kid

    def untrust(self, key_ref: str) -> str:
        """Remove a key by its id or a unique prefix of at least 8 characters."""
        with self._storage.lock():
            doc = self._load()
            matches = [k for k in doc.keys if len(key_ref) >= 8 and k.key_id.startswith(key_ref)]
            if len(matches) != 1:
                raise UsageError(
                    f"{len(matches)} trusted keys match {key_ref!r}",
                    hint="pass a key id (or a unique prefix of 8+ characters) from "
                    "`toolsmith keys list`",
                )
            doc.keys.remove(matches[0])
            self._save(doc)
        return matches[0].key_id

    def set_threshold(self, threshold: int) -> None:
        if threshold < 1:
            raise UsageError(f"threshold must be at least 1, got {threshold}")
        with self._storage.lock():
            doc = self._load()
            doc.threshold = threshold
            self._save(doc)
