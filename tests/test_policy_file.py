"""The capability policy file: loading, mistakes named by key, and allow/needs_approval/deny."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from toolsmith.analysis import analyze
from toolsmith.cli.policy import app as policy_app
from toolsmith.errors import PolicyError
from toolsmith.policy import (
    POLICY_ENV,
    CapabilityPolicy,
    PolicyDecision,
    evaluate_policy,
    load_policy,
)
from toolsmith.spec import ToolSpec

PURE = "import json\n\ndef tool(text):\n    return json.dumps(text)\n"
FETCH = (
    "import urllib.request\n\ndef tool(text):\n"
    "    return urllib.request.urlopen('https://api.example.com/q').read().decode()\n"
)


def make_spec(**fields: Any) -> ToolSpec:
    base: dict[str, Any] = {
        "name": "tool",
        "description": "A tool under policy.",
        "parameters": {"type": "object", "properties": {"text": {"type": "string"}}},
        "returns": {},
    }
    return ToolSpec.parse(base | fields)


def decide(code: str, policy: CapabilityPolicy | None = None, **spec_fields: Any) -> PolicyDecision:
    spec = make_spec(**spec_fields)
    return evaluate_policy(spec, analyze(code, spec), policy or load_policy())


def test_default_policy_allows_a_pure_tool_without_reasons(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With no path and no env variable the shipped default applies; a pure tool is allowed."""
    monkeypatch.delenv(POLICY_ENV, raising=False)
    decision = decide(PURE)
    assert decision.decision == "allow"
    assert decision.reasons == []
    assert decision.policy == "<default policy>"


def test_declared_network_needs_approval_naming_the_rule() -> None:
    """network:<host> is not auto-approved by default; the reason names the deciding rule."""
    decision = decide(FETCH, capabilities=["network:api.example.com"])
    assert decision.decision == "needs_approval"
    assert [(r.subject, r.rule) for r in decision.deciding] == [
        ("network:api.example.com", "capabilities.needs_approval")
    ]
    assert "pattern 'network:*'" in decision.deciding[0].message
    assert "[capabilities.needs_approval]" in decision.text()


def test_prohibited_declared_capability_is_denied() -> None:
    """A spec declaring subprocess is denied by capabilities.deny, even if the code is clean."""
    decision = decide(PURE, capabilities=["subprocess"])
    assert decision.decision == "deny"
    assert decision.deciding[0].message == (
        "capability subprocess prohibited by capabilities.deny pattern 'subprocess'"
    )


def test_own_tmp_is_allowed_but_a_path_escaping_it_is_not() -> None:
    """fs:write:/tmp/x is auto-approved; fs:write:/tmp/../etc/x is normalised to /etc and is not."""
    assert decide(PURE, capabilities=["fs:write:/tmp/out"]).decision == "allow"
    sneaky = decide(PURE, capabilities=["fs:write:/tmp/../etc/cron.d"])
    assert sneaky.decision == "needs_approval"
    assert sneaky.deciding[0].rule == "capabilities.needs_approval"


def test_deny_beats_allow() -> None:
    """A capability matched by both allow and deny is denied."""
    policy = CapabilityPolicy.from_toml(
        '[capabilities]\nallow = ["network:*"]\ndeny = ["network:*.evil.test"]\n'
    )
    assert decide(PURE, policy, capabilities=["network:api.example.com"]).decision == "allow"
    denied = decide(PURE, policy, capabilities=["network:c2.evil.test"])
    assert denied.decision == "deny"
    assert denied.deciding[0].rule == "capabilities.deny"


@pytest.mark.parametrize("cap", ["network:C2.Evil.Test.", "network:c2.evil.test.:443"])
def test_a_deny_is_not_evaded_by_a_trailing_dot(cap: str) -> None:
    """The sandbox grants c2.evil.test. as c2.evil.test, so the policy matches it as that."""
    policy = CapabilityPolicy.from_toml(
        '[capabilities]\nallow = ["network:*"]\ndeny = ["network:*.evil.test", '
        '"network:*.evil.test:*"]\n'
    )
    assert decide(PURE, policy, capabilities=[cap]).decision == "deny"


def test_ip_literal_grants_need_approval_and_match_in_canonical_form() -> None:
    """Private IP literals go through approval like any network grant; an IPv6 literal is
    matched compressed, so a deny of [fd00::1] is not evaded by spelling it [FD00:0::1]."""
    for cap in ("network:10.0.0.5:8080", "network:[fd00::1]:443"):
        assert decide(PURE, capabilities=[cap]).decision == "needs_approval"
    policy = CapabilityPolicy.from_toml(
        '[capabilities]\nallow = ["network:*"]\ndeny = ["network:[[]fd00::1[]]*"]\n'
    )
    assert decide(PURE, policy, capabilities=["network:[FD00:0::1]:443"]).decision == "deny"


def test_analysis_findings_deny_with_the_finding_rule() -> None:
    """A tool declaring network:api.example.com that connects to another host literal is denied."""
    code = (
        "import urllib.request\n\ndef tool(text):\n"
        "    return urllib.request.urlopen('https://collector.evil.test/up').read()\n"
    )
    decision = decide(code, capabilities=["network:api.example.com"])
    assert decision.decision == "deny"
    assert {r.rule for r in decision.deciding} == {"analysis:capability", "analysis:url-host"}
    assert all("collector.evil.test" in r.message for r in decision.deciding)


def test_dynamic_import_is_seen_by_the_import_rules() -> None:
    """importlib.import_module("so" + "cket") counts as importing socket for [imports] patterns."""
    policy = CapabilityPolicy.from_toml('[imports]\ndeny = ["socket"]\n')
    code = "import importlib\n\ndef tool(text):\n    importlib.import_module('so' + 'cket')\n"
    spec = make_spec()
    report = analyze(code, spec)
    assert "socket" in report.imports
    decision = evaluate_policy(spec, report, policy)
    assert decision.decision == "deny"
    assert ("socket", "imports.deny") in [(r.subject, r.rule) for r in decision.reasons]


def test_import_patterns_cover_submodules() -> None:
    """An imports.deny pattern naming a package also denies its submodules."""
    policy = CapabilityPolicy.from_toml('[imports]\ndeny = ["xml"]\n')
    code = "import xml.etree.ElementTree as ET\n\ndef tool(text):\n    return ET.tostring(text)\n"
    decision = decide(code, policy)
    assert decision.decision == "deny"
    assert decision.deciding[0].message == (
        "import xml.etree.ElementTree prohibited by imports.deny pattern 'xml'"
    )


def test_dependencies_need_approval_unless_allowlisted() -> None:
    """No dependency is auto-approved by default; an allow entry matches the canonical name."""
    code = "import yaml\n\ndef tool(text):\n    return yaml.safe_load(text)\n"
    pending = decide(code, dependencies=["PyYAML>=6"])
    assert pending.decision == "needs_approval"
    assert pending.deciding[0].rule == "dependencies.default"
    policy = CapabilityPolicy.from_toml('[dependencies]\nallow = ["py_yaml", "PyYAML"]\n')
    assert decide(code, policy, dependencies=["PyYAML>=6"]).decision == "allow"


def test_explicit_path_beats_env_which_beats_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """load_policy reads the explicit path, else $TOOLSMITH_POLICY, else the shipped default."""
    strict = tmp_path / "strict.toml"
    strict.write_text('[capabilities]\ndeny = ["*"]\n')
    lax = tmp_path / "lax.toml"
    lax.write_text('[capabilities]\nallow = ["*"]\n')
    monkeypatch.setenv(POLICY_ENV, str(strict))
    assert load_policy().source == str(strict)
    assert load_policy(lax).source == str(lax)
    assert decide(PURE, load_policy(), capabilities=["env:HOME"]).decision == "deny"
    assert decide(PURE, load_policy(lax), capabilities=["env:HOME"]).decision == "allow"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('[capabilities]\nalow = ["network:*"]\n', r"capabilities\.alow: Extra inputs"),
        ('[capabilities]\ndefault = "maybe"\n', r"capabilities\.default: Input should be"),
        ('[capabilities]\nallow = ["net:*"]\n', r"capabilities: allow\[0\]: 'net:\*' matches no"),
        ('[imports]\ndeny = "ctypes"\n', r"imports\.deny: Input should be a valid list"),
        ("[policy\n", r"not valid TOML"),
    ],
)
def test_malformed_policy_names_the_key_and_the_fix(text: str, match: str) -> None:
    """Mistakes in the policy file are PolicyErrors naming the key, with a hint how to fix them."""
    with pytest.raises(PolicyError, match=match) as info:
        CapabilityPolicy.from_toml(text, source="p.toml")
    assert info.value.hint


def test_missing_policy_file_from_env_says_where_it_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A $TOOLSMITH_POLICY pointing nowhere is a PolicyError naming the variable."""
    monkeypatch.setenv(POLICY_ENV, str(tmp_path / "absent.toml"))
    with pytest.raises(PolicyError, match=r"absent\.toml \(from \$TOOLSMITH_POLICY\)"):
        load_policy()


def test_cli_check_decides_and_denies_with_exit_code(tmp_path: Path) -> None:
    """`policy check` prints needs_approval for a network tool and exits 8 for a denied one."""
    spec_file = tmp_path / "tool.json"
    spec_file.write_text(make_spec(capabilities=["network:api.example.com"]).model_dump_json())
    code_file = tmp_path / "tool.py"
    code_file.write_text(FETCH)
    ok = CliRunner().invoke(policy_app, ["check", str(spec_file), str(code_file), "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["decision"] == "needs_approval"
    code_file.write_text(FETCH + "\nimport os\nHOME = os.environ['HOME']\n")
    denied = CliRunner().invoke(policy_app, ["check", str(spec_file), str(code_file), "--json"])
    assert denied.exit_code == PolicyError.exit_code
    rules = {r["rule"] for r in json.loads(denied.output)["reasons"]}
    assert "analysis:no-env-read" in rules


def test_cli_show_prints_the_effective_policy(tmp_path: Path) -> None:
    """`policy show --json` prints the sections of the policy file given."""
    path = tmp_path / "p.toml"
    path.write_text('[capabilities]\nallow = ["network:api.example.com"]\n')
    result = CliRunner().invoke(policy_app, ["show", "--policy", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["capabilities"]["allow"] == ["network:api.example.com"]
