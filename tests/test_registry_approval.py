"""The approval gate: pending versions never resolve until a trusted approver signs a decision."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_registry_support import (
    code_for,
    edit_version,
    flip_byte,
    make_spec,
    passing_report,
    plant_decision,
    provenance,
    registry_with_roles,
    snapshot,
    target_file,
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
def reg(
    tmp_path: Path, publisher: SigningKey, approver: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> Registry:
    """The consumer's policy allows network access, so only the publisher's "approval
    required" gates these versions (the consumer's own gate is tested below)."""
    policy = tmp_path / "policy.toml"
    policy.write_text('[capabilities]\nallow = ["network:*"]\n')
    monkeypatch.setenv("TOOLSMITH_POLICY", str(policy))
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
    envelope = target_file(reg, approved.approval).read_bytes()
    decision = signing.verify_decision(
        envelope, signing.TrustPolicy({approver.key_id: approver.tuf_key})
    )
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
    """A publisher re-signing a pending version as published, with no approval: its signed
    statement still asks for one, so it is refused; verification of the signatures still
    passes (the metadata is validly signed)."""
    publish(reg, publisher, "1.0.0")
    edit_version(reg, "add_ints", "1.0.0", {"targets": [publisher]}, status="published")
    before = snapshot(reg.path)
    with pytest.raises(ApprovalRequiredError, match="pending approval"):
        reg.resolve("add_ints")
    with pytest.raises(TrustError):
        reg.resolve("add_ints@1.0.0")
    assert snapshot(reg.path) == before


def test_rejection_relabelled_published_fails(
    reg: Registry, publisher: SigningKey, approver: SigningKey
) -> None:
    """A rejected version re-signed as published still carries a signed rejection: refused."""
    publish(reg, publisher, "1.0.0")
    reg.reject("add_ints@1.0.0", approver, "no")
    edit_version(reg, "add_ints", "1.0.0", {"targets": [publisher]}, status="published")
    with pytest.raises(ToolNotFoundError):
        reg.resolve("add_ints")
    with pytest.raises(ApprovalRequiredError, match="was rejected"):
        reg.resolve("add_ints@1.0.0")


def test_approval_of_another_version_is_refused(
    reg: Registry, publisher: SigningKey, approver: SigningKey
) -> None:
    """1.0.0's approval planted as the decision on pending 1.1.0 does not approve 1.1.0."""
    publish(reg, publisher, "1.0.0")
    good = reg.approve("add_ints@1.0.0", approver)
    publish(reg, publisher, "1.1.0")
    assert good.approval is not None
    plant_decision(reg, "add_ints", "1.1.0", target_file(reg, good.approval).read_bytes(), approver)
    with pytest.raises(SignatureError, match=r"is about add_ints@1\.0\.0"):
        reg.resolve("add_ints@1.1.0")
    assert reg.resolve("add_ints@1.0.0").version == "1.0.0"


def test_tampered_approval_and_untrusted_approver(
    reg: Registry, publisher: SigningKey, approver: SigningKey
) -> None:
    """An approver removed from the approvers role, or an altered decision file, fails
    resolution."""
    publish(reg, publisher, "1.0.0")
    approved = reg.approve("add_ints@1.0.0", approver)
    assert approved.approval is not None
    reg.untrust_key(approver.key_id, signer=publisher)
    with pytest.raises(TrustError):
        reg.resolve("add_ints")
    reg.trust_key(public_pem(approver.public_key), "alice", KeyRole.APPROVER, signer=publisher)
    assert reg.resolve("add_ints").approvers == (approver.key_id,)
    flip_byte(target_file(reg, approved.approval), 10)
    with pytest.raises(DigestMismatchError, match=r"decision on add_ints@1\.0\.0"):
        Registry(reg.path).resolve("add_ints")


def test_consumer_trusts_only_its_own_approvers(
    tmp_path: Path, reg: Registry, publisher: SigningKey, approver: SigningKey
) -> None:
    """A consumer naming its own trusted approvers refuses an approval by any other key, even
    one the registry lists as approver."""
    publish(reg, publisher, "1.0.0")
    reg.approve("add_ints@1.0.0", approver)
    assert Registry(reg.path, trusted_approvers=[approver.key_id]).resolve("add_ints")
    with pytest.raises(SignatureError, match="0 trusted key"):
        Registry(reg.path, trusted_approvers=["f" * 64]).resolve("add_ints")


def test_decision_must_be_signed_by_its_named_approver(reg: Registry, approver: SigningKey) -> None:
    """A decision naming one approver but signed by another is refused."""
    other = SigningKey.generate("bob")
    statement = signing.build_decision(
        "add_ints", "1.0.0", "0" * 64, Decision.APPROVED, None, approver.key_id, "2026-01-01"
    )
    envelope = signing.sign_envelope(statement, [other])
    policy = signing.TrustPolicy({k.key_id: k.tuf_key for k in (approver, other)})
    with pytest.raises(SignatureError, match="not a trusted signer"):
        signing.verify_decision(envelope, policy)


def test_tampered_pending_version_cannot_be_approved(
    reg: Registry, publisher: SigningKey, approver: SigningKey
) -> None:
    """Approval verifies the version first: altered code is refused and nothing is recorded."""
    record = publish(reg, publisher, "1.0.0")
    flip_byte(target_file(reg, record.parts["code"]))
    before = snapshot(reg.path)
    with pytest.raises(DigestMismatchError, match=r"code of add_ints@1\.0\.0"):
        reg.approve("add_ints@1.0.0", approver)
    assert snapshot(reg.path) == before


def test_consumer_policy_gates_what_the_publisher_published(
    reg: Registry, publisher: SigningKey, approver: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Published without asking for approval, a network tool is still refused by a consumer
    whose policy wants approval for network access, until a trusted approver approves it; a
    consumer whose policy denies the capability refuses it whatever was approved."""
    from toolsmith.errors import PolicyError

    publish(reg, publisher, "1.0.0", VersionStatus.PUBLISHED)
    monkeypatch.delenv("TOOLSMITH_POLICY")
    with pytest.raises(ApprovalRequiredError, match="needs approval under your policy"):
        Registry(reg.path).resolve("add_ints")
    denying = reg.path.parent / "deny.toml"
    denying.write_text('[capabilities]\ndeny = ["network:*"]\n')
    monkeypatch.setenv("TOOLSMITH_POLICY", str(denying))
    with pytest.raises(PolicyError, match="denies"):
        Registry(reg.path).resolve("add_ints")


def test_cli_approvers_choose_whose_approvals_count(
    reg: Registry, publisher: SigningKey, approver: SigningKey
) -> None:
    """`toolsmith registry approvers KEYID` keeps the consumer's own choice in its state dir:
    an approval by anyone else stops counting; `--clear` goes back to the registry's role."""
    import os
    import subprocess
    import sys

    publish(reg, publisher, "1.0.0")
    reg.approve("add_ints@1.0.0", approver)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", "from toolsmith.cli import main; main()", "registry", *args],
            capture_output=True,
            text=True,
            env={**os.environ, "TOOLSMITH_REGISTRY": str(reg.path)},
            timeout=60,
        )

    assert cli("approvers", "f" * 64).returncode == 0
    with pytest.raises(SignatureError):
        Registry(reg.path).resolve("add_ints")
    assert cli("approvers", approver.key_id).returncode == 0
    assert Registry(reg.path).resolve("add_ints").approvers == (approver.key_id,)
    shown = cli("approvers", "--clear", "--json")
    assert shown.returncode == 0 and '"approvers": null' in shown.stdout
    assert Registry(reg.path).resolve("add_ints").version == "1.0.0"
