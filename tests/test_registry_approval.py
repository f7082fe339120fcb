"""The approval gate: pending versions never resolve until a trusted approver signs a decision."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_registry_support import (
    code_for,
    edit_record,
    flip_byte,
    make_spec,
    passing_report,
    provenance,
    registry_with_roles,
    snapshot,
)
from toolsmith import signing
from toolsmith.errors import (
    ApprovalRequiredError,
    DigestMismatchError,
    SignatureError,
    ToolNotFoundError,
    TrustError,
    UsageError,
)
from toolsmith.registry import KeyRole, Registry, VersionRecord, VersionStatus
from toolsmith.signing import Decision, SigningKey, public_pem

NET = ["network:api.example.com"]


@pytest.fixture
def publisher() -> SigningKey:
    return SigningKey.generate("publisher")


@pytest.fixture
def approver() -> SigningKey:
    return SigningKey.generate("alice")


@pytest.fixture
def reg(tmp_path: Path, publisher: SigningKey, approver: SigningKey) -> Registry:
    return registry_with_roles(tmp_path / "reg", publisher, approver)


def publish(
    reg: Registry,
    signer: SigningKey,
    version: str,
    status: VersionStatus = VersionStatus.PENDING,
) -> VersionRecord:
    return reg.publish(
        make_spec(capabilities=NET),
        code_for("add_ints"),
        passing_report(),
        provenance(),
        version=version,
        signer=signer,
        status=status,
    )


def test_pending_version_is_never_resolved(reg: Registry, publisher: SigningKey) -> None:
    """A pending version is refused by name and range, and by exact pin with an approve hint."""
    publish(reg, publisher, "1.0.0")
    with pytest.raises(ToolNotFoundError, match=r"versions 1\.0\.0 await approval"):
        reg.resolve("add_ints")
    with pytest.raises(ToolNotFoundError, match="await approval"):
        reg.resolve("add_ints@^1.0")
    with pytest.raises(ApprovalRequiredError, match="pending approval") as exc:
        reg.resolve("add_ints@1.0.0")
    assert exc.value.hint is not None and "toolsmith approve add_ints@1.0.0" in exc.value.hint
    assert reg.search("add integers") == []


def test_pending_version_is_listed_and_verifies(reg: Registry, publisher: SigningKey) -> None:
    """pending() is the queue with declared capabilities; list and verify show the status."""
    record = publish(reg, publisher, "1.0.0")
    assert [(r.version, r.status, r.capabilities) for r in reg.pending()] == [
        ("1.0.0", VersionStatus.PENDING, NET)
    ]
    assert [(r.name, r.status) for r in reg.list()] == [("add_ints", VersionStatus.PENDING)]
    [result] = reg.verify("add_ints")
    assert (result.ok, result.status, result.digest) == (True, VersionStatus.PENDING, record.digest)


def test_bare_name_falls_back_past_pending(reg: Registry, publisher: SigningKey) -> None:
    """With 1.0.0 published and 1.1.0 pending, the bare name resolves 1.0.0."""
    publish(reg, publisher, "1.0.0", VersionStatus.PUBLISHED)
    publish(reg, publisher, "1.1.0")
    assert reg.resolve("add_ints").version == "1.0.0"
    assert reg.resolve("add_ints@^1.0").version == "1.0.0"


def test_approve_makes_version_resolvable(
    reg: Registry, publisher: SigningKey, approver: SigningKey
) -> None:
    """An approval by a trusted approver publishes the version; its signed decision verifies."""
    record = publish(reg, publisher, "1.0.0")
    approved = reg.approve("add_ints@1.0.0", approver, "network use reviewed")
    assert approved.status == VersionStatus.PUBLISHED and approved.approval is not None
    tool = reg.resolve("add_ints")
    assert (tool.version, tool.approvers) == ("1.0.0", (approver.key_id,))
    assert reg.pending() == []
    envelope = (reg.path / "blobs" / "sha256" / approved.approval).read_bytes()
    decision = signing.verify_decision(envelope, reg.trust.policy(KeyRole.APPROVER))
    assert (decision.subject, decision.decision, decision.reason, decision.approver) == (
        record.digest,
        Decision.APPROVED,
        "network use reviewed",
        approver.key_id,
    )


def test_untrusted_approver_is_refused(
    reg: Registry, publisher: SigningKey, tmp_path: Path
) -> None:
    """An unknown key, or a key trusted only as a publisher, cannot approve; nothing changes."""
    publish(reg, publisher, "1.0.0")
    before = snapshot(reg.path)
    with pytest.raises(SignatureError, match="not trusted as an approver"):
        reg.approve("add_ints@1.0.0", SigningKey.generate("mallory"))
    with pytest.raises(SignatureError, match="not trusted as an approver"):
        reg.approve("add_ints@1.0.0", publisher)
    assert snapshot(reg.path) == before
    assert reg.find("add_ints@1.0.0").status == VersionStatus.PENDING


def test_rejected_version_is_never_resolved(
    reg: Registry, publisher: SigningKey, approver: SigningKey
) -> None:
    """A rejected version refuses every reference and stays rejected; verify still checks it."""
    publish(reg, publisher, "1.0.0")
    rejected = reg.reject("add_ints@1.0.0", approver, "talks to the network")
    assert rejected.status == VersionStatus.REJECTED
    with pytest.raises(ToolNotFoundError, match="no published version"):
        reg.resolve("add_ints")
    with pytest.raises(ApprovalRequiredError, match="was rejected"):
        reg.resolve("add_ints@1.0.0")
    with pytest.raises(UsageError, match="it is rejected"):
        reg.approve("add_ints@1.0.0", approver)
    [result] = reg.verify("add_ints@1.0.0")
    assert (result.ok, result.status) == (True, VersionStatus.REJECTED)


def test_decisions_need_reason_pin_and_pending_state(
    reg: Registry, publisher: SigningKey, approver: SigningKey
) -> None:
    """Reject needs a reason, decisions need an exact pin, and a version is decided only once."""
    publish(reg, publisher, "1.0.0")
    with pytest.raises(UsageError, match="rejecting needs a reason"):
        reg.reject("add_ints@1.0.0", approver, "  ")
    with pytest.raises(UsageError, match="approve needs an exact version"):
        reg.approve("add_ints@^1.0", approver)
    reg.approve("add_ints@1.0.0", approver)
    before = snapshot(reg.path)
    with pytest.raises(UsageError, match="it is published, and only pending versions"):
        reg.approve("add_ints@1.0.0", approver)
    assert snapshot(reg.path) == before


def test_publish_as_rejected_is_refused(reg: Registry, publisher: SigningKey) -> None:
    """Only an approver's decision makes a version rejected."""
    with pytest.raises(UsageError, match="cannot be published as rejected"):
        publish(reg, publisher, "1.0.0", VersionStatus.REJECTED)


def test_forged_status_edit_fails_verification(reg: Registry, publisher: SigningKey) -> None:
    """Flipping a pending version to published in the index, with no approval, is a TrustError."""
    publish(reg, publisher, "1.0.0")
    edit_record(reg, "add_ints", "1.0.0", publisher, status="published")
    before = snapshot(reg.path)
    with pytest.raises(ApprovalRequiredError, match="no trusted approver approved it"):
        reg.resolve("add_ints")
    with pytest.raises(TrustError):
        reg.resolve("add_ints@1.0.0")
    [result] = reg.verify("add_ints")
    assert not result.ok and "ApprovalRequiredError" in (result.error or "")
    assert snapshot(reg.path) == before


def test_rejection_relabelled_published_fails(
    reg: Registry, publisher: SigningKey, approver: SigningKey
) -> None:
    """A rejected version edited to published still carries a signed rejection: refused."""
    publish(reg, publisher, "1.0.0")
    reg.reject("add_ints@1.0.0", approver, "no")
    edit_record(reg, "add_ints", "1.0.0", publisher, status="published")
    with pytest.raises(ApprovalRequiredError, match="signed statements make it rejected"):
        reg.resolve("add_ints")


def test_approval_of_another_version_is_refused(
    reg: Registry, publisher: SigningKey, approver: SigningKey
) -> None:
    """An approval moved from 1.0.0 onto pending 1.1.0 in the index does not approve 1.1.0."""
    publish(reg, publisher, "1.0.0")
    good = reg.approve("add_ints@1.0.0", approver)
    publish(reg, publisher, "1.1.0")
    edit_record(reg, "add_ints", "1.1.0", publisher, status="published", approval=good.approval)
    with pytest.raises(SignatureError, match=r"is about add_ints@1\.0\.0"):
        reg.resolve("add_ints@1.1.0")
    assert reg.resolve("add_ints@1.0.0").version == "1.0.0"


def test_tampered_approval_blob_and_untrusted_approver(
    reg: Registry, publisher: SigningKey, approver: SigningKey
) -> None:
    """An altered approval blob, or an approver no longer trusted, fails resolution."""
    publish(reg, publisher, "1.0.0")
    approved = reg.approve("add_ints@1.0.0", approver)
    assert approved.approval is not None
    reg.trust.untrust(approver.key_id)
    with pytest.raises(SignatureError, match="threshold is 1"):
        reg.resolve("add_ints")
    reg.trust.trust(public_pem(approver.public_key), "alice", KeyRole.APPROVER)
    flip_byte(reg.path / "blobs" / "sha256" / approved.approval, 10)
    with pytest.raises(DigestMismatchError, match=r"approval envelope of add_ints@1\.0\.0"):
        reg.resolve("add_ints")


def test_decision_must_be_signed_by_its_named_approver(reg: Registry, approver: SigningKey) -> None:
    """A decision naming one approver but signed by another is refused."""
    other = SigningKey.generate("bob")
    reg.trust.trust(public_pem(other.public_key), "bob", KeyRole.APPROVER)
    statement = signing.build_decision(
        "add_ints", "1.0.0", "0" * 64, Decision.APPROVED, None, approver.key_id, "2026-01-01"
    )
    envelope = signing.sign_envelope(statement, [other])
    with pytest.raises(SignatureError, match="not a trusted signer"):
        signing.verify_decision(envelope, reg.trust.policy(KeyRole.APPROVER))


def test_trust_store_roles_and_old_format(tmp_path: Path, publisher: SigningKey) -> None:
    """A trust.json without roles reads as publishers; trusting again adds the approver role."""
    reg = Registry(tmp_path / "reg")
    pem = public_pem(publisher.public_key).decode()
    (tmp_path / "reg").mkdir()
    old = {"threshold": 1, "keys": [{"key_id": publisher.key_id, "name": "p", "public_pem": pem}]}
    (tmp_path / "reg" / "trust.json").write_text(json.dumps(old))
    assert publisher.key_id in reg.trust.policy().keys
    assert reg.trust.policy(KeyRole.APPROVER).keys == {}
    publish(reg, publisher, "1.0.0")
    reg.trust.trust(pem.encode(), "p", KeyRole.APPROVER)
    assert [k.roles for k in reg.trust.trusted_keys()] == [[KeyRole.PUBLISHER, KeyRole.APPROVER]]
    assert reg.approve("add_ints@1.0.0", publisher).status == VersionStatus.PUBLISHED


def test_tampered_pending_version_cannot_be_approved(
    reg: Registry, publisher: SigningKey, approver: SigningKey
) -> None:
    """Approval verifies the version first: altered code is refused and nothing is recorded."""
    record = publish(reg, publisher, "1.0.0")
    flip_byte(reg.path / "blobs" / "sha256" / record.parts["code"])
    before = snapshot(reg.path)
    with pytest.raises(DigestMismatchError, match=r"code of add_ints@1\.0\.0"):
        reg.approve("add_ints@1.0.0", approver)
    assert snapshot(reg.path) == before
