"""Attacks on a published registry, python-tuf style: each one is caught before any tool code is
returned, with a clear error, and resolving leaves the registry's files exactly as they were."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.test_registry_support import (
    code_for,
    edit_record,
    failing_report,
    flip_byte,
    make_spec,
    passing_report,
    provenance,
    read_index_doc,
    snapshot,
    write_index_doc,
)
from toolsmith.errors import (
    CorruptRegistryError,
    DigestMismatchError,
    SignatureError,
    TrustError,
)
from toolsmith.keys import KeyStore
from toolsmith.registry import Registry, VersionRecord
from toolsmith.registry._registry import report_bytes
from toolsmith.signing import SigningKey, build_statement, sha256_hex, sign_envelope
from toolsmith.spec import canonical_json


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLSMITH_HOME", str(tmp_path / "home"))


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    """A registry holding add_ints 1.0.0 and 2.0.0, signed by the default key."""
    r = Registry(tmp_path / "reg")
    for version, body in (("1.0.0", "a + b"), ("2.0.0", "b + a")):
        r.publish(
            make_spec(), code_for("add_ints", body), passing_report(), provenance(), version=version
        )
    return r


def blob(reg: Registry, digest: str) -> Path:
    return reg.path / "blobs" / "sha256" / digest


def index_path(reg: Registry) -> Path:
    return reg.path / "index" / "add_ints.json"


def record(reg: Registry, version: str) -> VersionRecord:
    return next(r for r in reg.versions("add_ints") if r.version == version)


def rewrite_record(reg: Registry, version: str, **changes: object) -> None:
    """What an attacker holding a trusted key does to the index: the checks behind the index
    signature must still catch it."""
    edit_record(reg, "add_ints", version, KeyStore().load(), **changes)


def assert_refused(reg: Registry, ref: str, error: type[Exception], match: str) -> None:
    """Resolving fails with ``error`` and changes no file; verify() reports the same failure."""
    before = snapshot(reg.path)
    with pytest.raises(error, match=match):
        reg.resolve(ref)
    assert snapshot(reg.path) == before
    failed = [r for r in reg.verify(ref) if not r.ok]
    assert failed and error.__name__ in (failed[0].error or "")


@pytest.mark.parametrize("part", ["code", "spec", "report", "provenance"])
def test_one_flipped_byte_in_a_part(reg: Registry, part: str) -> None:
    """A part whose blob lost one bit no longer matches the signed digest."""
    digest = record(reg, "2.0.0").parts[part]
    flip_byte(blob(reg, digest), offset=5)
    assert_refused(reg, "add_ints@2.0.0", DigestMismatchError, f"{part} of add_ints@2.0.0")
    if record(reg, "1.0.0").parts[part] != digest:  # identical parts share one blob
        assert reg.resolve("add_ints@1.0.0").version == "1.0.0"


def test_flipped_byte_in_envelope(reg: Registry) -> None:
    """An altered envelope blob fails its content address."""
    flip_byte(blob(reg, record(reg, "2.0.0").envelope), offset=20)
    assert_refused(reg, "add_ints", DigestMismatchError, "envelope of add_ints@2.0.0")


def _write_envelope(reg: Registry, version: str, envelope: bytes) -> None:
    digest = sha256_hex(envelope)
    blob(reg, digest).write_bytes(envelope)
    rewrite_record(reg, version, envelope=digest)


def test_missing_signatures(reg: Registry) -> None:
    """An envelope stripped of its signatures is refused."""
    env = json.loads(blob(reg, record(reg, "2.0.0").envelope).read_bytes())
    _write_envelope(reg, "2.0.0", json.dumps({**env, "signatures": []}).encode())
    assert_refused(reg, "add_ints", SignatureError, "no signatures")


def test_malformed_signature(reg: Registry) -> None:
    """A signature that is not base64 is a malformed envelope."""
    env = json.loads(blob(reg, record(reg, "2.0.0").envelope).read_bytes())
    env["signatures"][0]["sig"] = "!!not base64!!"
    _write_envelope(reg, "2.0.0", json.dumps(env).encode())
    assert_refused(reg, "add_ints", SignatureError, "malformed envelope")


def test_envelope_resigned_by_untrusted_key(reg: Registry) -> None:
    """A statement re-signed by a key the registry does not trust is refused."""
    rec = record(reg, "2.0.0")
    env = json.loads(blob(reg, rec.envelope).read_bytes())
    statement = base64.b64decode(env["payload"])
    _write_envelope(reg, "2.0.0", sign_envelope(statement, [SigningKey.generate("mallory")]))
    assert_refused(reg, "add_ints", SignatureError, "untrusted key")


def test_attacker_builds_own_version_with_own_key(reg: Registry) -> None:
    """Evil code with a fully consistent statement still needs a trusted signature."""
    parts = {
        "code": b"import os\nos.system('rm -rf /')\n",
        "spec": make_spec().canonical_json(),
        "report": report_bytes(passing_report()),
        "provenance": canonical_json(provenance().model_dump(mode="json")),
    }
    statement = build_statement("add_ints", "2.0.0", parts)
    for data in parts.values():
        blob(reg, sha256_hex(data)).write_bytes(data)
    _write_envelope(reg, "2.0.0", sign_envelope(statement, [SigningKey.generate("mallory")]))
    rewrite_record(
        reg,
        "2.0.0",
        digest=sha256_hex(statement),
        parts={p: sha256_hex(d) for p, d in parts.items()},
    )
    assert_refused(reg, "add_ints", SignatureError, "untrusted key")


def test_below_threshold(reg: Registry) -> None:
    """Raising the threshold above the signatures present makes versions unresolvable."""
    reg.trust.set_threshold(2)
    assert_refused(reg, "add_ints", SignatureError, "threshold is 2")


def test_untrusted_after_publish(reg: Registry) -> None:
    """Removing the signer from the trust store revokes what it signed."""
    reg.trust.untrust(KeyStore().load().key_id)
    assert_refused(reg, "add_ints@1.0.0", SignatureError, "threshold is 1")


def test_mix_and_match_v1_statement_with_v2_record(reg: Registry) -> None:
    """Version 1's signed statement served as version 2 is refused by name+version."""
    v1 = record(reg, "1.0.0")
    rewrite_record(reg, "2.0.0", envelope=v1.envelope, digest=v1.digest, parts=v1.parts)
    assert_refused(reg, "add_ints", SignatureError, r"statement is for add_ints@1\.0\.0")


def test_mix_and_match_v2_code_under_v1_statement(reg: Registry) -> None:
    """Version 2's code listed under version 1's record contradicts the signed statement."""
    v1, v2 = record(reg, "1.0.0"), record(reg, "2.0.0")
    rewrite_record(reg, "1.0.0", parts={**v1.parts, "code": v2.parts["code"]})
    assert_refused(reg, "add_ints@1.0.0", DigestMismatchError, "differ from its signed statement")


def test_signed_failing_report_is_not_trusted(reg: Registry) -> None:
    """Even a trusted signature over a failing report does not make a usable tool."""
    parts = {
        "code": code_for("add_ints").encode(),
        "spec": make_spec().canonical_json(),
        "report": report_bytes(failing_report()),
        "provenance": canonical_json(provenance().model_dump(mode="json")),
    }
    statement = build_statement("add_ints", "2.0.0", parts)
    for data in parts.values():
        blob(reg, sha256_hex(data)).write_bytes(data)
    _write_envelope(reg, "2.0.0", sign_envelope(statement, [KeyStore().load()]))
    rewrite_record(
        reg,
        "2.0.0",
        digest=sha256_hex(statement),
        parts={p: sha256_hex(d) for p, d in parts.items()},
    )
    assert_refused(reg, "add_ints", TrustError, "not a passing build")


def test_missing_blob(reg: Registry) -> None:
    """A deleted blob is reported as registry corruption, naming the digest."""
    digest = record(reg, "2.0.0").parts["code"]
    blob(reg, digest).unlink()
    assert_refused(reg, "add_ints", CorruptRegistryError, f"blob sha256:{digest} is missing")


@pytest.mark.parametrize("garbage", [b"{not json", b"[]", b'{"name": "add_ints", "records": 5}'])
def test_corrupted_index(reg: Registry, garbage: bytes) -> None:
    """An unreadable index is CorruptRegistryError; verify() reports it instead of crashing."""
    index_path(reg).write_bytes(garbage)
    before = snapshot(reg.path)
    with pytest.raises(CorruptRegistryError, match=r"index of 'add_ints' in .* is unreadable"):
        reg.resolve("add_ints")
    results = reg.verify()
    assert len(results) == 1 and not results[0].ok
    assert "CorruptRegistryError" in (results[0].error or "")
    assert snapshot(reg.path) == before


def test_yank_flag_flipped_without_a_key(reg: Registry) -> None:
    """Un-yanking a pulled version by editing the index (no key) is caught, so ranges cannot be
    made to pick it again."""
    reg.yank("add_ints@2.0.0", "returns wrong sums")
    edit_record(reg, "add_ints", "2.0.0", None, yanked=False, yank_reason=None)
    assert_refused(reg, "add_ints", SignatureError, r"index of 'add_ints' .* does not verify")


def test_record_deleted_without_a_key(reg: Registry) -> None:
    """Dropping the newest record (to roll resolution back to an older version) is caught."""
    doc = read_index_doc(reg, "add_ints")
    doc["records"] = [r for r in doc["records"] if r["version"] != "2.0.0"]
    write_index_doc(reg, "add_ints", doc, None)
    assert_refused(reg, "add_ints", SignatureError, "does not verify")


def test_index_resigned_by_an_untrusted_key(reg: Registry) -> None:
    """An edited index signed by a key the registry does not trust is refused."""
    edit_record(reg, "add_ints", "2.0.0", SigningKey.generate("mallory"), yanked=True)
    assert_refused(reg, "add_ints@1.0.0", SignatureError, "signed by untrusted key")


def test_yank_with_an_untrusted_key_changes_nothing(reg: Registry) -> None:
    """Only a trusted key may sign an index change; a stranger's yank is refused, unrecorded."""
    before = snapshot(reg.path)
    with pytest.raises(SignatureError, match=r"cannot yank add_ints@2\.0\.0: key .* not trusted"):
        reg.yank("add_ints@2.0.0", "spite", SigningKey.generate("mallory"))
    assert snapshot(reg.path) == before
    assert reg.resolve("add_ints").version == "2.0.0"


def test_deeply_nested_index_is_unreadable_not_a_crash(reg: Registry) -> None:
    """An index of 200,000 nested brackets is reported like any unreadable index, and listing
    still shows the other tools."""
    reg.publish(make_spec("mul_ints"), code_for("mul_ints"), passing_report(), provenance())
    index_path(reg).write_text("[" * 200_000)
    with pytest.raises(CorruptRegistryError, match=r"index of 'add_ints' .* is unreadable"):
        reg.resolve("add_ints")
    problems: dict[str, Exception] = {}
    assert [r.name for r in reg.list(on_error=problems.__setitem__)] == ["mul_ints"]
    assert isinstance(problems["add_ints"], CorruptRegistryError)


@pytest.mark.parametrize("stray", ["Add-Ints.json", ".json", "add_ints\n.json", "notes.txt.json"])
def test_stray_file_in_the_index_directory_is_skipped(reg: Registry, stray: str) -> None:
    """A file that is not ``<tool name>.json`` is not a tool: listing, search and gc go on."""
    (reg.path / "index" / stray).write_bytes(index_path(reg).read_bytes())
    assert [r.name for r in reg.list()] == ["add_ints"]
    assert [h.name for h in reg.search("add")] == ["add_ints"]
    assert reg.gc().unreferenced == []


def test_index_of_another_tool(reg: Registry) -> None:
    """An index file copied over another tool's name is refused."""
    doc = json.loads(index_path(reg).read_bytes())
    (reg.path / "index" / "mul_ints.json").write_text(json.dumps(doc))
    with pytest.raises(CorruptRegistryError, match="holds records of another tool"):
        reg.resolve("mul_ints")


def test_corrupt_trust_store(reg: Registry) -> None:
    """A garbled trust store stops every resolution rather than trusting nothing silently."""
    (reg.path / "trust.json").write_text('{"threshold": 0}')
    with pytest.raises(CorruptRegistryError, match="trust store is unreadable"):
        reg.resolve("add_ints")
