"""DSSE envelopes over in-toto Statements: signing and pure verification.

Nothing here touches the disk or the network: verification takes bytes and a trust policy and
either returns what was proved or raises a ``TrustError``. The registry and the loader do the IO
around it (python-tuf's ``TrustedMetadataSet`` is the model).

A published version is one Statement whose subjects are the sha256 digests of its four parts
(code, spec, report, provenance) and whose predicate names the tool and version, so that parts of
one version can never be served under another's signature. A version that needs a person's approval
says so in that signed predicate, so editing the index cannot make it skip the approval.

A person's decision on such a version is a second Statement (predicate type ``approval/v1``) whose
one subject is the version's statement digest, signed by the approver.

Envelopes are DSSE v1 through securesystemslib (``securesystemslib.dsse.Envelope``); keys are
Ed25519 and carry toolsmith's key id (sha256 of the raw public key) in TUF metadata as well, so one
key has one id everywhere.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import Error as SSLibError
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import CryptoSigner, Key, SSlibKey

from toolsmith.errors import DigestMismatchError, SignatureError
from toolsmith.spec import canonical_json

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://toolsmith.dev/tool-build/v1"
APPROVAL_PREDICATE_TYPE = "https://toolsmith.dev/approval/v1"
PARTS = ("code", "spec", "report", "provenance")
_TRUST_HINT = "trust the signer with `toolsmith keys trust PUBKEY_FILE` if you mean to"


class Decision(StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def key_id(public_key: Ed25519PublicKey) -> str:
    """A key's id: sha256 of its raw 32 public bytes, so the same key has one id everywhere."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return sha256_hex(raw)


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    """Parse an Ed25519 public key from PEM, refusing other key types."""
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as e:
        raise SignatureError(
            f"not a PEM public key: {e}", hint="pass the .pub file that `toolsmith keys` wrote"
        ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError(
            f"key is {type(key).__name__}, not Ed25519",
            hint="generate one with `toolsmith keys generate`",
        )
    return key


def public_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def tuf_key(public_key: Ed25519PublicKey) -> SSlibKey:
    """``public_key`` as a securesystemslib key whose keyid is toolsmith's ``key_id``."""
    return SSlibKey.from_crypto(public_key, keyid=key_id(public_key))


@dataclass(frozen=True)
class SigningKey:
    """A private Ed25519 key with its id and a name for people."""

    private_key: Ed25519PrivateKey
    name: str = "default"

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    @property
    def key_id(self) -> str:
        return key_id(self.public_key)

    @property
    def tuf_key(self) -> SSlibKey:
        """The public key as securesystemslib/TUF metadata carries it, under toolsmith's id."""
        return tuf_key(self.public_key)

    @property
    def signer(self) -> CryptoSigner:
        """A securesystemslib signer (for DSSE envelopes and TUF metadata)."""
        return CryptoSigner(self.private_key, self.tuf_key)

    @classmethod
    def generate(cls, name: str = "default") -> SigningKey:
        return cls(Ed25519PrivateKey.generate(), name)


@dataclass(frozen=True)
class TrustPolicy:
    """Which keys may sign (by key id, as TUF metadata lists them), and how many distinct ones
    must."""

    keys: Mapping[str, Key] = field(default_factory=dict)
    threshold: int = 1


@dataclass(frozen=True)
class VerifiedStatement:
    """A statement whose envelope met the trust policy; ``digest`` is sha256 of its bytes."""

    name: str
    version: str
    digest: str
    subjects: Mapping[str, str]
    signers: tuple[str, ...]
    needs_approval: bool = False


@dataclass(frozen=True)
class VerifiedDecision:
    """A person's signed approval or rejection of the version whose statement digest is
    ``subject``; ``approver`` is the key id the predicate names, always one of ``signers``."""

    name: str
    version: str
    subject: str
    decision: Decision
    reason: str | None
    approver: str
    time: str
    signers: tuple[str, ...]


def build_statement(
    name: str, version: str, parts: Mapping[str, bytes], *, needs_approval: bool = False
) -> bytes:
    """The canonical bytes of the in-toto Statement naming ``name@version`` and its parts."""
    if set(parts) != set(PARTS):
        raise ValueError(f"a statement covers exactly {PARTS}, got {sorted(parts)}")
    predicate = {"name": name, "version": version}
    if needs_approval:
        predicate["approval"] = "required"
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": p, "digest": {"sha256": sha256_hex(parts[p])}} for p in PARTS],
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    }
    return canonical_json(statement)


def build_decision(
    name: str,
    version: str,
    digest: str,
    decision: Decision,
    reason: str | None,
    approver: str,
    time: str,
) -> bytes:
    """The canonical bytes of an approval Statement about the version whose statement is
    ``digest``; ``approver`` is the signing key's id."""
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": f"{name}@{version}", "digest": {"sha256": digest}}],
        "predicateType": APPROVAL_PREDICATE_TYPE,
        "predicate": {
            "decision": decision.value,
            "reason": reason,
            "approver": approver,
            "time": time,
        },
    }
    return canonical_json(statement)


def sign_envelope(statement: bytes, signers: Sequence[SigningKey]) -> bytes:
    """A DSSE envelope (JSON bytes) carrying ``statement`` signed by every key in ``signers``."""
    if not signers:
        raise ValueError("at least one signer is needed")
    envelope = Envelope(statement, PAYLOAD_TYPE, {})
    for k in signers:
        envelope.sign(k.signer)
    return canonical_json(envelope.to_dict())


def verify_envelope(envelope: bytes, policy: TrustPolicy) -> VerifiedStatement:
    """Check the envelope's signatures against ``policy`` and return the statement it carries.

    Signatures by unknown keys are ignored; each trusted key counts once; fewer than
    ``policy.threshold`` valid signatures is a ``SignatureError``.
    """
    payload, signers = _verified_payload(envelope, policy, _TRUST_HINT)
    return _parse_statement(payload, signers)


def verify_decision(envelope: bytes, policy: TrustPolicy) -> VerifiedDecision:
    """Check an approval envelope against the approvers' ``policy`` and return its decision."""
    hint = "trust the approver with `toolsmith keys trust PUBKEY_FILE --role approver`"
    payload, signers = _verified_payload(envelope, policy, hint)
    return _parse_decision(payload, signers)


def _verified_payload(
    envelope: bytes, policy: TrustPolicy, trust_hint: str
) -> tuple[bytes, tuple[str, ...]]:
    try:
        data = json.loads(envelope)
        if not isinstance(data, dict):
            raise TypeError("not an object")
        env = Envelope.from_dict(data)
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
        raise SignatureError(f"malformed envelope: {type(e).__name__}: {e}") from None
    except SSLibError as e:
        raise SignatureError(f"malformed envelope: {e}") from None
    if env.payload_type != PAYLOAD_TYPE:
        raise SignatureError(f"malformed envelope: payloadType must be {PAYLOAD_TYPE!r}")
    if not env.signatures:
        raise SignatureError("envelope carries no signatures", hint="republish with a signing key")
    if len(policy.keys) < policy.threshold:
        raise SignatureError(
            f"{len(policy.keys)} trusted key(s), threshold is {policy.threshold}", hint=trust_hint
        )
    try:
        accepted = env.verify(list(policy.keys.values()), policy.threshold)
    except VerificationError:
        untrusted = [k for k in env.signatures if k not in policy.keys]
        detail = f"; signed by untrusted key(s) {', '.join(k[:16] for k in untrusted)}"
        raise SignatureError(
            f"fewer than {policy.threshold} valid signature(s) from trusted keys"
            + (detail if untrusted else ""),
            hint=trust_hint,
        ) from None
    return env.payload, tuple(accepted)


def _parse_statement(payload: bytes, signers: tuple[str, ...]) -> VerifiedStatement:
    try:
        st = json.loads(payload)
        if st["_type"] != STATEMENT_TYPE or st["predicateType"] != PREDICATE_TYPE:
            raise ValueError("unexpected _type or predicateType")
        subjects = {s["name"]: s["digest"]["sha256"] for s in st["subject"]}
        name, version = st["predicate"]["name"], st["predicate"]["version"]
        approval = st["predicate"].get("approval")
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
        raise SignatureError(f"signed payload is not a toolsmith statement: {e}") from None
    if set(subjects) != set(PARTS) or not all(isinstance(v, str) for v in subjects.values()):
        raise SignatureError(f"statement subjects must be {PARTS}, got {sorted(subjects)}")
    if not isinstance(name, str) or not isinstance(version, str):
        raise SignatureError("statement predicate must name the tool and version as strings")
    if approval not in (None, "required"):
        raise SignatureError(f"statement predicate has an unknown approval value {approval!r}")
    return VerifiedStatement(
        name, version, sha256_hex(payload), subjects, signers, approval == "required"
    )


def _parse_decision(payload: bytes, signers: tuple[str, ...]) -> VerifiedDecision:
    try:
        st = json.loads(payload)
        if st["_type"] != STATEMENT_TYPE or st["predicateType"] != APPROVAL_PREDICATE_TYPE:
            raise ValueError("unexpected _type or predicateType")
        [subject] = st["subject"]
        ref, digest = subject["name"], subject["digest"]["sha256"]
        name, sep, version = ref.partition("@")
        pred = st["predicate"]
        decision = Decision(pred["decision"])
        reason, approver, time = pred["reason"], pred["approver"], pred["time"]
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
        raise SignatureError(f"signed payload is not a toolsmith approval: {e}") from None
    if not sep or not all(isinstance(v, str) for v in (digest, approver, time)):
        raise SignatureError("approval must name NAME@VERSION, a digest, approver and time")
    if reason is not None and not isinstance(reason, str):
        raise SignatureError("approval reason must be a string")
    if approver not in signers:
        raise SignatureError(
            f"approval names approver {approver[:16]}, which is not a trusted signer of it"
        )
    return VerifiedDecision(name, version, digest, decision, reason, approver, time, signers)


def check_identity(statement: VerifiedStatement, name: str, version: str, digest: str) -> None:
    """The signed statement must be the one the index points at (no mix-and-match)."""
    if (statement.name, statement.version) != (name, version):
        raise SignatureError(
            f"statement is for {statement.name}@{statement.version}, index says {name}@{version}",
            hint="the registry mixes parts of different versions; re-publish from a clean build",
        )
    if statement.digest != digest:
        raise DigestMismatchError(
            f"statement digest is {statement.digest}, index expects {digest} for {name}@{version}"
        )


def check_part(statement: VerifiedStatement, part: str, data: bytes) -> None:
    """The bytes of ``part`` must hash to the digest the statement signed."""
    got = sha256_hex(data)
    want = statement.subjects[part]
    if got != want:
        raise DigestMismatchError(
            f"{part} of {statement.name}@{statement.version} has sha256 {got[:16]}..., "
            f"signed statement says {want[:16]}...",
            hint="the blob was altered after publishing; do not use this version",
        )
