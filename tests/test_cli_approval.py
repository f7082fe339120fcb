"""`toolsmith approve`/`reject` and `registry list --pending` in a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.test_registry_support import code_for, make_spec, passing_report, provenance
from toolsmith.registry import Registry, VersionStatus

# Registers approve/reject the way toolsmith/cli/__init__.py does, if it does not yet.
_MAIN = """
from toolsmith.cli import app, approval, main
if "approve" not in {c.name for c in app.registered_commands}:
    app.command("approve")(approval.approve)
    app.command("reject")(approval.reject)
main()
"""


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("TOOLSMITH_HOME", str(tmp_path / "home"))
    return {
        **os.environ,
        "TOOLSMITH_HOME": str(tmp_path / "home"),
        "TOOLSMITH_REGISTRY": str(tmp_path / "reg"),
        "COLUMNS": "200",
    }


@pytest.fixture
def reg(tmp_path: Path, env: dict[str, str]) -> Registry:
    """add_ints 0.1.0 and 0.1.1 pending (signed by the default key), alice trusted as approver."""
    r = Registry(tmp_path / "reg")
    for version in ("0.1.0", "0.1.1"):
        r.publish(
            make_spec(capabilities=["network:api.example.com"]),
            code_for("add_ints"),
            passing_report(),
            provenance(),
            version=version,
            status=VersionStatus.PENDING,
        )
    assert cli(env, "keys", "generate", "--name", "alice").returncode == 0
    pub = tmp_path / "home" / "keys" / "alice.pub"
    trusted = cli(env, "keys", "trust", str(pub), "--role", "approver")
    assert trusted.returncode == 0, trusted.stderr
    return r


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _MAIN, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def cli_json(env: dict[str, str], *args: str) -> Any:
    r = cli(env, *args, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_list_pending_shows_queue(reg: Registry, env: dict[str, str]) -> None:
    """list --pending has a row per pending version with status, time and capabilities."""
    rows = cli_json(env, "registry", "list", "--pending")
    assert [(r["name"], r["version"], r["status"]) for r in rows] == [
        ("add_ints", "0.1.0", "pending"),
        ("add_ints", "0.1.1", "pending"),
    ]
    assert rows[0]["capabilities"] == ["network:api.example.com"]
    assert rows[0]["digest"] == reg.find("add_ints@0.1.0").digest and rows[0]["published_at"]
    table = cli(env, "registry", "list", "--pending")
    assert "awaiting approval" in table.stdout and "network:api.example.com" in table.stdout


def test_approve_then_resolvable(reg: Registry, env: dict[str, str]) -> None:
    """Before approval an exact pin is refused with the hint; after it the tool exports."""
    refused = cli(env, "registry", "export", "add_ints@0.1.0")
    assert refused.returncode == 4
    assert "ApprovalRequiredError" in refused.stderr
    assert "toolsmith approve add_ints@0.1.0" in refused.stderr
    row = cli_json(env, "approve", "add_ints@0.1.0", "--key", "alice", "--reason", "reviewed")
    assert row["status"] == "published" and row["approval"]
    exported = cli(env, "registry", "export", "add_ints")
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)["name"] == "add_ints"
    queue = cli_json(env, "registry", "list", "--pending")
    assert [r["version"] for r in queue] == ["0.1.1"]


def test_reject_and_show(reg: Registry, env: dict[str, str]) -> None:
    """reject needs --reason, marks the version rejected, and show reports it verified."""
    missing = cli(env, "reject", "add_ints@0.1.1", "--key", "alice")
    assert missing.returncode == 2 and "--reason" in missing.stderr
    row = cli_json(env, "reject", "add_ints@0.1.1", "--key", "alice", "--reason", "phones home")
    assert row["status"] == "rejected"
    shown = cli_json(env, "registry", "show", "add_ints@0.1.1")
    assert (shown["status"], shown["verified"]) == ("rejected", True)
    assert reg.find("add_ints@0.1.1").status == VersionStatus.REJECTED


def test_untrusted_approver_refused(reg: Registry, env: dict[str, str]) -> None:
    """The default key signs versions but is no approver: approve exits non-zero, nothing moves."""
    r = cli(env, "approve", "add_ints@0.1.0")
    assert r.returncode == 4
    assert "not trusted as an approver" in r.stderr and "--role approver" in r.stderr
    assert reg.find("add_ints@0.1.0").status == VersionStatus.PENDING


def test_keys_list_shows_roles(reg: Registry, env: dict[str, str]) -> None:
    """keys list --json gives each trusted key's roles."""
    data = cli_json(env, "keys", "list")
    assert sorted((k["name"], k["roles"]) for k in data["trusted"]) == [
        ("", ["root", "targets", "snapshot", "timestamp"]),
        ("alice", ["approvers"]),
    ]
