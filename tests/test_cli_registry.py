"""`toolsmith registry` and `toolsmith keys` run in a real subprocess, as scripts and people do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mcp.types
import pytest

from tests.test_registry_support import (
    code_for,
    flip_byte,
    holder_files,
    make_spec,
    passing_report,
    provenance,
    target_file,
)
from toolsmith.registry import Registry


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("TOOLSMITH_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TOOLSMITH_REGISTRY", raising=False)
    return {**os.environ, "TOOLSMITH_HOME": str(tmp_path / "home"), "COLUMNS": "200"}


@pytest.fixture
def reg(tmp_path: Path, env: dict[str, str]) -> Registry:
    r = Registry(tmp_path / "reg")
    for version, body in (("1.0.0", "a + b"), ("1.1.0", "b + a")):
        r.publish(
            make_spec(tags=["math"]),
            code_for("add_ints", body),
            passing_report(),
            provenance(),
            version=version,
        )
    r.publish(
        make_spec("parse_csv", "Parse CSV text into rows."),
        code_for("parse_csv"),
        passing_report(),
        provenance(),
    )
    return r


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from toolsmith.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def cli_json(env: dict[str, str], *args: str):  # type: ignore[no-untyped-def]
    r = cli(env, *args, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_list_json_rows(reg: Registry, env: dict[str, str]) -> None:
    """list --json has one row per tool with name, version, digest, status and yanked."""
    rows = cli_json(env, "registry", "list", "--registry", str(reg.path))
    assert [(r["name"], r["version"]) for r in rows] == [
        ("add_ints", "1.1.0"),
        ("parse_csv", "0.1.0"),
    ]
    assert {"name", "version", "digest", "status", "yanked"} <= set(rows[0])
    assert rows[0]["digest"] == reg.find("add_ints").digest


def test_registry_from_environment_and_table(reg: Registry, env: dict[str, str]) -> None:
    """TOOLSMITH_REGISTRY selects the registry; without --json a table is printed."""
    r = cli({**env, "TOOLSMITH_REGISTRY": str(reg.path)}, "registry", "list")
    assert r.returncode == 0 and "add_ints" in r.stdout and "parse_csv" in r.stdout


def test_versions_yank_unyank(reg: Registry, env: dict[str, str]) -> None:
    """yank hides a version from list; versions shows it yanked; unyank restores it."""
    p = str(reg.path)
    row = cli_json(env, "registry", "yank", "add_ints@1.1.0", "--reason", "bad", "--registry", p)
    assert row["yanked"] and row["yank_reason"] == "bad"
    assert cli_json(env, "registry", "list", "--registry", p)[0]["version"] == "1.0.0"
    rows = cli_json(env, "registry", "versions", "add_ints", "--registry", p)
    assert [(r["version"], r["yanked"]) for r in rows] == [("1.0.0", False), ("1.1.0", True)]
    cli_json(env, "registry", "unyank", "add_ints@1.1.0", "--registry", p)
    assert cli_json(env, "registry", "list", "--registry", p)[0]["version"] == "1.1.0"


@pytest.mark.parametrize(
    ("damage", "error"),
    [("garbage", "TrustError"), ("unsigned edit", "SignatureError")],
)
def test_damaged_metadata_is_one_clear_error_and_changes_nothing(
    reg: Registry, tmp_path: Path, env: dict[str, str], damage: str, error: str
) -> None:
    """Metadata that does not verify (garbage, or a bin edited without its key) fails
    another user's command with the problem named and a fix, and never enters their trusted
    state."""
    other = {**env, "TOOLSMITH_HOME": str(tmp_path / "other")}
    fp = cli_json(env, "registry", "fingerprint", "--registry", str(reg.path))["fingerprint"]
    role, [*_, targets] = holder_files(reg)
    if damage == "garbage":
        targets.write_text("{not json")
    else:
        targets.write_text(targets.read_text().replace('"yanked":false', '"yanked":true', 1))
    assert cli_json(other, "registry", "trust", str(reg.path), "--root", fp)
    r = cli(other, "registry", "list", "--registry", str(reg.path), "--json")
    assert r.returncode == 4 and r.stdout == ""
    assert error in r.stderr and "fix:" in r.stderr and "Traceback" not in r.stderr
    assert not list((tmp_path / "other" / "state").rglob(f"{role}.json"))


def test_data_is_printed_literally_not_as_markup(tmp_path: Path, env: dict[str, str]) -> None:
    """Square brackets in descriptions, reasons and refs are text: `[/]` does not crash a command
    and `[conceal]` does not hide what follows it."""
    r = Registry(tmp_path / "marked")
    r.publish(
        make_spec(description="Adds ints [conceal]secretly[/conceal] fast [/] really."),
        code_for("add_ints"),
        passing_report(),
        provenance(),
    )
    p = str(r.path)
    yank = cli(
        env, "registry", "yank", "add_ints@0.1.0", "--reason", "why [/red] [/]", "--registry", p
    )
    assert yank.returncode == 0, yank.stderr
    assert "why [/red] [/]" in yank.stdout
    for args in (("registry", "list"), ("registry", "versions", "add_ints"), ("audit", "show")):
        shown = cli({**env, "COLUMNS": "400"}, *args, "--registry", p)
        assert shown.returncode == 0, shown.stderr
        assert "[/red] [/]" in shown.stdout, args
    unyank = cli(env, "registry", "unyank", "add_ints@0.1.0", "--registry", p)
    assert unyank.returncode == 0, unyank.stderr
    found = cli({**env, "COLUMNS": "400"}, "registry", "search", "ints", "--registry", p)
    assert found.returncode == 0, found.stderr
    assert "[conceal]secretly[/conceal] fast [/] really." in found.stdout
    missing = cli(env, "registry", "show", "add_ints@[/]", "--registry", p)
    assert missing.returncode == 2 and "add_ints@[/]" in missing.stderr


def test_search(reg: Registry, env: dict[str, str]) -> None:
    """search ranks the matching tool first."""
    rows = cli_json(env, "registry", "search", "csv rows", "--registry", str(reg.path))
    assert rows[0]["name"] == "parse_csv" and rows[0]["digest"]


def test_show_displays_signature_tests_and_provenance(reg: Registry, env: dict[str, str]) -> None:
    """show reports a verified signature, the signer, the test summary and provenance."""
    r = cli(env, "registry", "show", "add_ints@^1.0", "--registry", str(reg.path))
    assert r.returncode == 0, r.stderr
    signer = reg.resolve("add_ints").signers[0]
    for text in ("add_ints@1.1.0", "verified", signer, "1/1 passed", "hand-written", "a: "):
        assert text in r.stdout
    data = cli_json(env, "registry", "show", "add_ints", "--registry", str(reg.path))
    assert data["verified"] and data["spec"]["name"] == "add_ints"


def test_verify_ok_then_fails_after_tampering(reg: Registry, env: dict[str, str]) -> None:
    """verify exits 0 on a clean registry and non-zero naming the tampered version."""
    rows = cli_json(env, "registry", "verify", "--registry", str(reg.path))
    assert len(rows) == 3 and all(r["ok"] for r in rows)
    flip_byte(target_file(reg, reg.find("add_ints@1.0.0").parts["code"]))
    r = cli(env, "registry", "verify", "--registry", str(reg.path), "--json")
    assert r.returncode == 4
    failed = [row for row in json.loads(r.stdout) if not row["ok"]]
    assert [(f["name"], f["version"]) for f in failed] == [("add_ints", "1.0.0")]
    assert "DigestMismatchError" in failed[0]["error"]
    shown = cli(env, "registry", "show", "add_ints@1.0.0", "--registry", str(reg.path))
    assert shown.returncode == 4 and "FAILED" in shown.stdout


@pytest.mark.parametrize("fmt", ["openai", "mcp", "json"])
def test_export_formats(reg: Registry, env: dict[str, str], fmt: str) -> None:
    """export prints a definition other ecosystems accept."""
    r = cli(env, "registry", "export", "add_ints", "--format", fmt, "--registry", str(reg.path))
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    if fmt == "openai":
        assert data["type"] == "function" and data["function"]["name"] == "add_ints"
        assert data["function"]["parameters"]["required"] == ["a", "b"]
    elif fmt == "mcp":
        tool = mcp.types.Tool.model_validate(data)
        assert tool.name == "add_ints" and tool.input_schema["type"] == "object"
        assert tool.output_schema is None  # returns an integer, MCP wants objects only
    else:
        assert data == make_spec(tags=["math"]).model_dump(mode="json")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["registry", "show", "../x"], 2, "UsageError: invalid tool reference '../x'"),
        (["registry", "show", "add_ints@9.9.9"], 3, "ToolNotFoundError: add_ints has no version"),
        (["registry", "yank", "add_ints@^1", "--reason", "r"], 2, "needs an exact version"),
    ],
)
def test_errors_are_one_line(
    reg: Registry, env: dict[str, str], args: list[str], code: int, message: str
) -> None:
    """Bad references exit non-zero with the error type and message, no traceback."""
    r = cli(env, *args, "--registry", str(reg.path))
    assert r.returncode == code
    assert message in r.stderr and "Traceback" not in r.stderr


def test_keys_generate_list_trust_untrust(tmp_path: Path, env: dict[str, str]) -> None:
    """keys generate/trust/list/threshold/untrust change the registry's signed root."""
    p = str(tmp_path / "reg")
    created = cli_json(env, "registry", "init", "--registry", p)
    made = cli_json(env, "keys", "generate", "--name", "ci")
    assert Path(made["public_key"]).parent == tmp_path / "home" / "keys"
    assert (
        cli_json(env, "keys", "trust", made["public_key"], "--registry", p)["key_id"]
        == made["key_id"]
    )
    listed = cli_json(env, "keys", "list", "--registry", p)
    assert {"name": "ci", "key_id": made["key_id"], "roles": ["targets"]} in listed["local"]
    assert listed["threshold"] == 1
    cli_json(env, "keys", "threshold", "2", "--registry", p)
    assert cli_json(env, "keys", "list", "--registry", p)["threshold"] == 2
    r = cli(env, "keys", "untrust", made["key_id"][:10], "--registry", p)
    assert r.returncode == 2 and "fewer publishers than the threshold" in r.stderr
    cli_json(env, "keys", "threshold", "1", "--registry", p)
    cli_json(env, "keys", "untrust", made["key_id"][:10], "--registry", p)
    listed = cli_json(env, "keys", "list", "--registry", p)
    assert made["key_id"] not in {k["key_id"] for k in listed["trusted"]}
    assert cli_json(env, "registry", "fingerprint", "--registry", p) == created


def test_registry_trust_pins_a_root_by_fingerprint(
    reg: Registry, tmp_path: Path, env: dict[str, str]
) -> None:
    """Another user cannot read the registry until they pin its root by fingerprint; a wrong
    fingerprint is refused; refresh re-signs the timestamp for them to see."""
    other = {**env, "TOOLSMITH_HOME": str(tmp_path / "other-home")}
    p = str(reg.path)
    r = cli(other, "registry", "list", "--registry", p)
    assert r.returncode == 4 and "UntrustedRegistryError" in r.stderr
    assert "toolsmith registry trust" in r.stderr
    fp = cli_json(env, "registry", "fingerprint", "--registry", p)["fingerprint"]
    bad = cli(other, "registry", "trust", p, "--root", "0" * 64)
    assert bad.returncode == 4 and fp in bad.stderr
    assert cli_json(other, "registry", "trust", p, "--root", fp)["fingerprint"] == fp
    assert {row["name"] for row in cli_json(other, "registry", "list", "--registry", p)} == {
        "add_ints",
        "parse_csv",
    }
    version = cli_json(env, "registry", "refresh", "--days", "7", "--registry", p)
    assert version["timestamp_version"] > 1
    assert cli(other, "registry", "list", "--registry", p).returncode == 0


def test_keys_refuses_world_readable_key(tmp_path: Path, env: dict[str, str]) -> None:
    """Publishing with a world-readable default key fails with the chmod fix, nothing written."""
    made = cli_json(env, "keys", "generate")
    key = Path(made["public_key"]).with_suffix(".key")
    key.chmod(0o644)
    script = (
        "from pathlib import Path\n"
        "from tests.test_registry_support import *\n"
        "from toolsmith.cli import main\n"
        "from toolsmith.registry import Registry\n"
        "import sys\n"
        "from toolsmith.errors import ToolsmithError\n"
        "try:\n"
        f"    Registry(Path({str(tmp_path / 'reg')!r})).publish(make_spec(), code_for('add_ints'),"
        " passing_report(), provenance())\n"
        "except ToolsmithError as e:\n"
        "    print(type(e).__name__, e); sys.exit(1)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[1],
        timeout=60,
    )
    assert r.returncode == 1
    assert "KeyStoreError" in r.stdout and f"chmod 600 {key}" in r.stdout
    assert not (tmp_path / "reg").exists()
