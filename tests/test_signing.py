"""Pure DSSE/in-toto verification: bytes in, a verified statement or a TrustError out."""

from __future__ import annotations

import base64
import json

import pytest
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey

from toolsmith.errors import DigestMismatchError, SignatureError
from toolsmith.signing import (
    PARTS,
    SigningKey,
    TrustPolicy,
    build_statement,
    check_identity,
    check_part,
    sha256_hex,
    sign_envelope,
    verify_envelope,
)

PARTS_BYTES = {p: f"{p} bytes".encode() for p in PARTS}


def policy(*keys: SigningKey, threshold: int = 1) -> TrustPolicy:
    return TrustPolicy({k.key_id: k.tuf_key for k in keys}, threshold)


@pytest.fixture(scope="module")
def alice() -> SigningKey:
    return SigningKey.generate("alice")


@pytest.fixture(scope="module")
def bob() -> SigningKey:
    return SigningKey.generate("bob")


def test_round_trip_names_tool_version_and_parts(alice: SigningKey) -> None:
    """A signed statement verifies and reports the tool, version, digests and signer."""
    statement = build_statement("add_ints", "1.2.3", PARTS_BYTES)
    got = verify_envelope(sign_envelope(statement, [alice]), policy(alice))
    assert (got.name, got.version) == ("add_ints", "1.2.3")
    assert got.digest == sha256_hex(statement)
    assert got.subjects["code"] == sha256_hex(b"code bytes")
    assert got.signers == (alice.key_id,)


def test_envelope_verifies_with_securesystemslib(alice: SigningKey) -> None:
    """Our PAE and envelope are standard DSSE: securesystemslib verifies them too."""
    env = json.loads(sign_envelope(build_statement("t", "1.0.0", PARTS_BYTES), [alice]))
    sslib_env = Envelope.from_dict(env)
    key = SSlibKey.from_crypto(alice.public_key, keyid=alice.key_id)
    assert alice.key_id in sslib_env.verify([key], 1)


def test_untrusted_signer_is_rejected(alice: SigningKey, bob: SigningKey) -> None:
    """A signature by a key outside the policy does not count."""
    envelope = sign_envelope(build_statement("t", "1.0.0", PARTS_BYTES), [bob])
    with pytest.raises(SignatureError, match="untrusted key"):
        verify_envelope(envelope, policy(alice))


def test_threshold_needs_distinct_trusted_keys(alice: SigningKey, bob: SigningKey) -> None:
    """Two signatures by one key are one signature; two keys meet a threshold of two."""
    statement = build_statement("t", "1.0.0", PARTS_BYTES)
    with pytest.raises(SignatureError, match="fewer than 2 valid signature"):
        verify_envelope(sign_envelope(statement, [alice, alice]), policy(alice, bob, threshold=2))
    got = verify_envelope(sign_envelope(statement, [alice, bob]), policy(alice, bob, threshold=2))
    assert set(got.signers) == {alice.key_id, bob.key_id}


def test_altered_payload_fails_signature(alice: SigningKey) -> None:
    """Changing one byte of the signed statement breaks the signature."""
    env = json.loads(sign_envelope(build_statement("t", "1.0.0", PARTS_BYTES), [alice]))
    payload = bytearray(base64.b64decode(env["payload"]))
    payload[10] ^= 0x01
    env["payload"] = base64.b64encode(bytes(payload)).decode()
    with pytest.raises(SignatureError, match="fewer than 1 valid signature"):
        verify_envelope(json.dumps(env).encode(), policy(alice))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda env: b"not json", "JSONDecodeError"),
        (lambda env: json.dumps({**env, "signatures": []}).encode(), "no signatures"),
        (lambda env: json.dumps({**env, "payload": "%%%"}).encode(), "base64"),
        (lambda env: json.dumps({**env, "payloadType": "text/plain"}).encode(), "payloadType"),
        (
            lambda env: json.dumps({**env, "signatures": [{"sig": "AA=="}]}).encode(),
            "keyid",
        ),
    ],
)
def test_malformed_envelopes_are_signature_errors(alice: SigningKey, mutate, message) -> None:  # type: ignore[no-untyped-def]
    """Garbage where an envelope should be is a SignatureError naming what is wrong."""
    env = json.loads(sign_envelope(build_statement("t", "1.0.0", PARTS_BYTES), [alice]))
    with pytest.raises(SignatureError, match=message):
        verify_envelope(mutate(env), policy(alice))


def test_signed_non_statement_is_rejected(alice: SigningKey) -> None:
    """A validly signed payload that is not a toolsmith statement is refused."""
    envelope = sign_envelope(b'{"_type": "something else"}', [alice])
    with pytest.raises(SignatureError, match="not a toolsmith statement"):
        verify_envelope(envelope, policy(alice))


def test_part_digest_mismatch(alice: SigningKey) -> None:
    """A part whose bytes differ from the signed digest is a DigestMismatchError."""
    st = verify_envelope(
        sign_envelope(build_statement("t", "1.0.0", PARTS_BYTES), [alice]), policy(alice)
    )
    check_part(st, "code", b"code bytes")
    with pytest.raises(DigestMismatchError, match=r"code of t@1\.0\.0"):
        check_part(st, "code", b"code bytez")


def test_identity_must_match_index(alice: SigningKey) -> None:
    """A statement for version 1 cannot stand in for version 2 (mix-and-match)."""
    statement = build_statement("t", "1.0.0", PARTS_BYTES)
    st = verify_envelope(sign_envelope(statement, [alice]), policy(alice))
    with pytest.raises(SignatureError, match=r"statement is for t@1.0.0, index says t@2.0.0"):
        check_identity(st, "t", "2.0.0", st.digest)
    with pytest.raises(DigestMismatchError, match="statement digest"):
        check_identity(st, "t", "1.0.0", "0" * 64)


def test_statement_covers_exactly_the_four_parts() -> None:
    """A statement without all four parts cannot be built."""
    with pytest.raises(ValueError, match="exactly"):
        build_statement("t", "1.0.0", {"code": b""})
