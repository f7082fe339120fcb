"""The registry records its edits (yank, unyank, approve, reject) in its own audit log; loads go to
the consumer's log, never the registry's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_registry_support import (
    code_for,
    flip_byte,
    make_spec,
    passing_report,
    provenance,
    registry_with_roles,
    target_file,
)
from toolsmith.audit import AuditEntry, AuditLog
from toolsmith.errors import (
    ApprovalRequiredError,
    AuditError,
    DigestMismatchError,
    PolicyError,
    ToolNotFoundError,
)
from toolsmith.keys import KeyStore
from toolsmith.registry import Registry, VersionRecord, VersionStatus
from toolsmith.signing import SigningKey, public_pem

NET = ["network:api.example.com"]


@pytest.fixture(autouse=True)
def os_user(monkeypatch: pytest.MonkeyPatch) -> str:
    """The OS user getpass reports, pinned so the expected actor is known."""
    for var in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.setenv(var, "carol")
    return "carol"


@pytest.fixture
def publisher() -> SigningKey:
    return SigningKey.generate("publisher")


@pytest.fixture
def approver() -> SigningKey:
    return SigningKey.generate("local-name")


@pytest.fixture
def reg(
    tmp_path: Path, publisher: SigningKey, approver: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> Registry:
    """The consumer's policy allows network access: only the publisher's gate applies here."""
    policy = tmp_path / "policy.toml"
    policy.write_text('[capabilities]\nallow = ["network:*"]\n')
    monkeypatch.setenv("TOOLSMITH_POLICY", str(policy))
    return registry_with_roles(tmp_path / "reg", publisher, approver)


def publish(
    reg: Registry,
    signer: SigningKey,
    version: str,
    status: VersionStatus = VersionStatus.PUBLISHED,
    capabilities: list[str] | None = None,
) -> VersionRecord:
    return reg.publish(
        make_spec(capabilities=capabilities or []),
        code_for("add_ints"),
        passing_report(),
        provenance(),
        version=version,
        signer=signer,
        status=status,
    )


SETUP = ("init", "trust", "publish")


def entries(reg: Registry) -> list[AuditEntry]:
    """The registry's log, without the entries of setting it up."""
    return [e for e in reg.audit.entries() if e.event not in SETUP]


def loads(reg: Registry) -> list[AuditEntry]:
    """The consumer's log."""
    return list(reg.consumer_audit.entries())


def assert_intact(reg: Registry) -> None:
    result = reg.audit.verify()
    assert result.ok, result.problem


def index_bytes(reg: Registry) -> bytes:
    """The commit point of the registry's state."""
    return (reg.path / "metadata" / "timestamp.json").read_bytes()


def break_tail(reg: Registry, log: Path | None = None) -> None:
    """Edit the last entry's reason without recomputing its hash, as a careless editor would."""
    path = log if log is not None else reg.audit.path
    lines = path.read_bytes().splitlines(keepends=True)
    last = json.loads(lines[-1])
    last["reason"] = "nothing to see here"
    lines[-1] = json.dumps(last).encode() + b"\n"
    path.write_bytes(b"".join(lines))


# -- yank and unyank ----------------------------------------------------------------------------


def test_yank_and_unyank_are_recorded(reg: Registry, publisher: SigningKey, os_user: str) -> None:
    """yank and unyank each append one entry by the OS user and signing key, naming the version,
    reason and digest."""
    record = publish(reg, publisher, "1.0.0")
    actor = f"{os_user} (key {publisher.key_id[:16]})"
    reg.yank("add_ints@1.0.0", "returns wrong sums for negatives", publisher)
    reg.unyank("add_ints@1.0.0", "false alarm: the test was wrong", publisher)
    yank, unyank = entries(reg)
    assert (yank.event, yank.actor, yank.subject, yank.reason) == (
        "yank",
        actor,
        "add_ints@1.0.0",
        "returns wrong sums for negatives",
    )
    assert yank.data["digest"] == record.digest and yank.data["was_yanked"] is False
    assert (unyank.event, unyank.actor, unyank.subject, unyank.reason) == (
        "unyank",
        actor,
        "add_ints@1.0.0",
        "false alarm: the test was wrong",
    )
    assert unyank.data["was_yanked"] is True
    assert reg.find("add_ints@1.0.0").yank_reason is None
    assert_intact(reg)


def test_failed_yank_is_not_recorded(reg: Registry, publisher: SigningKey) -> None:
    """A yank that changes nothing (no such version) leaves the audit log untouched."""
    publish(reg, publisher, "1.0.0")
    with pytest.raises(ToolNotFoundError, match=r"add_ints has no version 9\.9\.9"):
        reg.yank("add_ints@9.9.9", "never published", publisher)
    assert entries(reg) == []


def test_yank_refused_by_a_broken_log_changes_nothing(reg: Registry, publisher: SigningKey) -> None:
    """If the log refuses the entry, the yank is undone: the index is byte-identical, still live."""
    publish(reg, publisher, "1.0.0")
    reg.yank("add_ints@1.0.0", "first pull", publisher)
    reg.unyank("add_ints@1.0.0", signer=publisher)
    before = index_bytes(reg)
    break_tail(reg)
    with pytest.raises(
        AuditError,
        match=r"yank of add_ints@1\.0\.0 was not done: the last entry .* is damaged or edited",
    ):
        reg.yank("add_ints@1.0.0", "second pull", publisher)
    assert index_bytes(reg) == before
    assert reg.resolve("add_ints").version == "1.0.0"
    assert len(entries(reg)) == 2


def test_yank_refused_when_the_last_entry_was_deleted(reg: Registry, publisher: SigningKey) -> None:
    """A log cut short of its head anchor refuses the yank, and the version stays unyanked."""
    publish(reg, publisher, "1.0.0")
    reg.yank("add_ints@1.0.0", "first pull", publisher)
    reg.unyank("add_ints@1.0.0", signer=publisher)
    lines = reg.audit.path.read_bytes().splitlines(keepends=True)
    reg.audit.path.write_bytes(b"".join(lines[:-1]))
    with pytest.raises(
        AuditError,
        match=r"yank of add_ints@1\.0\.0 was not done: .*the head anchors seq \d+ but the log",
    ):
        reg.yank("add_ints@1.0.0", "second pull", publisher)
    assert reg.find("add_ints@1.0.0").yanked is False


# -- approve and reject -------------------------------------------------------------------------


def test_approve_is_recorded_with_the_approver_key(
    reg: Registry, publisher: SigningKey, approver: SigningKey
) -> None:
    """approve appends an entry by the trust store's name for the key, with reason and status."""
    record = publish(reg, publisher, "1.0.0", VersionStatus.PENDING, NET)
    approved = reg.approve("add_ints@1.0.0", approver, "  only talks to api.example.com ")
    [entry] = entries(reg)
    assert (entry.event, entry.actor, entry.subject, entry.reason) == (
        "approve",
        f"alice (key {approver.key_id[:16]})",
        "add_ints@1.0.0",
        "only talks to api.example.com",
    )
    assert entry.data | {"meta": 0} == {
        "digest": record.digest,
        "status": "published",
        "approver_key": approver.key_id,
        "approval": approved.approval,
        "meta": 0,
    }
    assert_intact(reg)


def test_reject_is_recorded(reg: Registry, publisher: SigningKey, approver: SigningKey) -> None:
    """reject appends an entry by the approver with the rejection's reason and status rejected."""
    publish(reg, publisher, "1.0.0", VersionStatus.PENDING, NET)
    reg.reject("add_ints@1.0.0", approver, "the host is not ours")
    [entry] = entries(reg)
    assert (entry.event, entry.actor, entry.reason, entry.data["status"]) == (
        "reject",
        f"alice (key {approver.key_id[:16]})",
        "the host is not ours",
        "rejected",
    )
    assert_intact(reg)


def test_approval_refused_by_a_broken_log_leaves_the_version_pending(
    reg: Registry, publisher: SigningKey, approver: SigningKey
) -> None:
    """An approval the log cannot record is undone: index unchanged, version still unloadable."""
    publish(reg, publisher, "1.0.0")
    publish(reg, publisher, "1.1.0", VersionStatus.PENDING, NET)
    reg.yank("add_ints@1.0.0", "superseded", publisher)
    before = index_bytes(reg)
    break_tail(reg)
    with pytest.raises(AuditError, match=r"approve of add_ints@1\.1\.0 was not done"):
        reg.approve("add_ints@1.1.0", approver, "fine")
    assert index_bytes(reg) == before
    assert reg.find("add_ints@1.1.0").status == VersionStatus.PENDING
    with pytest.raises(ApprovalRequiredError, match="pending approval"):
        reg.resolve("add_ints@1.1.0")


# -- load ---------------------------------------------------------------------------------------


def test_allowed_load_is_recorded(reg: Registry, publisher: SigningKey, os_user: str) -> None:
    """load returns a working tool and records who loaded which digest in which runtime."""
    record = publish(reg, publisher, "1.0.0")
    with reg.load("add_ints@^1", runtime="restricted") as tool:
        assert tool(a=2, b=3) == 5
    [entry] = loads(reg)
    assert (entry.event, entry.actor, entry.subject, entry.reason) == (
        "load",
        os_user,
        "add_ints@1.0.0",
        "verified",
    )
    assert entry.data == {
        "ref": "add_ints@^1",
        "runtime": "restricted",
        "registry": str(reg.path),
        "digest": record.digest,
        "allowed": True,
        "signers": [publisher.key_id],
    }
    assert "load" not in {e.event for e in reg.audit.entries()}
    assert reg.consumer_audit.verify().ok


def test_load_names_the_given_actor_and_a_yanked_pin(reg: Registry, publisher: SigningKey) -> None:
    """An explicit actor is recorded, and loading a yanked version by exact pin says so."""
    publish(reg, publisher, "1.0.0")
    reg.yank("add_ints@1.0.0", "slow", publisher)
    with reg.load("add_ints@1.0.0", runtime="restricted", actor="mcp client planner") as tool:
        assert tool(a=1, b=1) == 2
    entry = loads(reg)[-1]
    assert (entry.actor, entry.reason) == (
        "mcp client planner",
        "verified; yanked (slow), pinned exactly",
    )


def test_load_of_a_tampered_blob_is_refused_and_recorded(
    reg: Registry, publisher: SigningKey, os_user: str
) -> None:
    """A code blob altered after publishing: load raises, and the refusal is in the log."""
    record = publish(reg, publisher, "1.0.0")
    flip_byte(target_file(reg, record.parts["code"]), offset=4)
    with pytest.raises(DigestMismatchError, match="code") as raised:
        reg.load("add_ints", runtime="restricted")
    [entry] = loads(reg)
    assert (entry.event, entry.actor, entry.subject, entry.reason) == (
        "load",
        os_user,
        "add_ints@1.0.0",
        raised.value.message,
    )
    assert entry.data["allowed"] is False
    assert entry.data["error"] == "DigestMismatchError"
    assert entry.data["digest"] == record.digest
    assert reg.consumer_audit.verify().ok


def test_load_of_a_pending_version_is_refused_and_recorded(
    reg: Registry, publisher: SigningKey
) -> None:
    """An agent loading a version awaiting approval is refused, and the attempt is logged."""
    publish(reg, publisher, "1.0.0", VersionStatus.PENDING, NET)
    with pytest.raises(ApprovalRequiredError, match=r"add_ints@1\.0\.0 is pending approval"):
        reg.load("add_ints@1.0.0", runtime="restricted")
    [entry] = loads(reg)
    assert (entry.subject, entry.data["allowed"], entry.data["error"]) == (
        "add_ints@1.0.0",
        False,
        "ApprovalRequiredError",
    )
    assert entry.reason is not None and "pending approval" in entry.reason


def test_load_of_an_unknown_tool_is_recorded_under_the_ref(reg: Registry) -> None:
    """A ref that matches nothing is logged with the ref as asked, since no version was chosen."""
    with pytest.raises(ToolNotFoundError, match="no tool named 'nope'"):
        reg.load("nope@^2", runtime="restricted")
    [entry] = loads(reg)
    assert (entry.subject, entry.data) == (
        "nope@^2",
        {
            "ref": "nope@^2",
            "runtime": "restricted",
            "registry": str(reg.path),
            "allowed": False,
            "error": "ToolNotFoundError",
        },
    )


def test_ineligible_restricted_load_is_refused_and_recorded(
    reg: Registry, publisher: SigningKey
) -> None:
    """A tool with capabilities, asked for in-process, is refused by policy and logged with why."""
    publish(reg, publisher, "1.0.0", capabilities=NET)
    with pytest.raises(PolicyError, match="cannot use the restricted runtime"):
        reg.load("add_ints", runtime="restricted")
    [entry] = loads(reg)
    assert entry.data["error"] == "PolicyError"
    assert entry.reason is not None and "declares capabilities" in entry.reason


def test_a_damaged_consumer_log_is_sealed_and_every_later_load_recorded(
    reg: Registry, publisher: SigningKey, capsys: pytest.CaptureFixture[str]
) -> None:
    """One damaged line in the consumer's log: the verified tool is still handed out, the damage
    is sealed by a break entry (said on the error log), every later load is recorded after it,
    and `audit verify` still fails naming the damaged line and the break."""
    publish(reg, publisher, "1.0.0")
    reg.load("add_ints@1.0.0", runtime="restricted").close()
    break_tail(reg, reg.consumer_audit.path)
    with reg.load("add_ints@1.0.0", runtime="restricted") as tool:
        assert tool(a=1, b=2) == 3
    reg.load("add_ints@1.0.0", runtime="restricted").close()
    assert "sealed it with a break entry" in capsys.readouterr().err
    recorded = [(e.seq, e.event) for e in loads(reg)]
    assert recorded == [(1, "load"), (2, "break"), (3, "load"), (4, "load")]
    result = reg.consumer_audit.verify()
    assert (result.ok, result.first_bad_seq, result.breaks) == (False, 1, [2])
    assert result.tail_intact and result.entries == 3


def test_cli_audit_consumer_shows_loads(reg: Registry, publisher: SigningKey) -> None:
    """`audit show --consumer --json` lists this user's loads; the registry's log has none."""
    publish(reg, publisher, "1.0.0")
    reg.load("add_ints", runtime="restricted").close()
    shown = cli(reg, "audit", "show", "--consumer", "--json")
    assert shown.returncode == 0, shown.stderr
    assert [(r["event"], r["subject"]) for r in json.loads(shown.stdout)] == [
        ("load", "add_ints@1.0.0")
    ]
    assert cli(reg, "audit", "verify", "--consumer").returncode == 0


def test_refusal_the_log_cannot_record_still_raises(reg: Registry, publisher: SigningKey) -> None:
    """With a log that refuses appends, a refused load keeps its own error and notes it went
    unrecorded."""
    publish(reg, publisher, "1.0.0", VersionStatus.PENDING, NET)
    with pytest.raises(ApprovalRequiredError):
        reg.load("add_ints@1.0.0", runtime="restricted")
    break_tail(reg, reg.consumer_audit.path)
    # The consumer's own log seals damage; a refusing one stands in for a log that cannot be
    # written at all (a full disk), which root's tests cannot otherwise make.
    reg.consumer_audit = AuditLog(reg.consumer_audit.path)
    with pytest.raises(ApprovalRequiredError, match="pending approval") as raised:
        reg.load("add_ints@1.0.0", runtime="restricted")
    assert any("not in the audit log" in note for note in raised.value.__notes__)


# -- through the CLI ----------------------------------------------------------------------------


def cli(reg: Registry, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TOOLSMITH_REGISTRY": str(reg.path), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-c", "from toolsmith.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@pytest.fixture
def cli_key(reg: Registry, publisher: SigningKey) -> SigningKey:
    """The CLI's default key (in the test's home, which created ``reg``), made a publisher."""
    key = KeyStore().load()
    reg.trust_key(public_pem(key.public_key), "cli", signer=publisher)
    return key


def test_cli_yank_shows_up_in_audit_show(
    reg: Registry, publisher: SigningKey, cli_key: SigningKey
) -> None:
    """`registry yank` and `registry unyank --reason` appear in `audit show --json`, naming the
    OS user and the key that signed the index change."""
    publish(reg, publisher, "1.0.0")
    assert cli(reg, "registry", "yank", "add_ints@1.0.0", "--reason", "bad").returncode == 0
    assert cli(reg, "registry", "unyank", "add_ints@1.0.0", "--reason", "fixed").returncode == 0
    shown = cli(reg, "audit", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    rows = [r for r in json.loads(shown.stdout) if r["event"] not in SETUP]
    assert [(r["event"], r["subject"], r["reason"], r["actor"]) for r in rows] == [
        ("yank", "add_ints@1.0.0", "bad", f"carol (key {cli_key.key_id[:16]})"),
        ("unyank", "add_ints@1.0.0", "fixed", f"carol (key {cli_key.key_id[:16]})"),
    ]


def test_cli_yank_with_a_broken_log_fails_cleanly(
    reg: Registry, publisher: SigningKey, cli_key: SigningKey
) -> None:
    """The CLI reports AuditError with exit code 9, and the version stays unyanked."""
    publish(reg, publisher, "1.0.0")
    reg.yank("add_ints@1.0.0", "first", publisher)
    reg.unyank("add_ints@1.0.0", signer=publisher)
    break_tail(reg)
    result = cli(reg, "registry", "yank", "add_ints@1.0.0", "--reason", "second")
    assert result.returncode == 9
    assert "AuditError" in result.stderr and "was not done" in result.stderr
    assert reg.find("add_ints@1.0.0").yanked is False
