"""The constitution: loading and merging, static rules by id, generated state-rule tests."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from toolsmith.analysis import Finding, analyze
from toolsmith.constitution import (
    CONSTITUTION_ENV,
    TEST_FILE,
    Constitution,
    constitution_tests,
    load_constitution,
    policy_rules,
    state_violations,
)
from toolsmith.errors import PolicyError
from toolsmith.report import Outcome, TestCase, TestReport
from toolsmith.spec import ToolSpec
from toolsmith.testgen import generate_tests


def make_spec(**fields: Any) -> ToolSpec:
    base: dict[str, Any] = {
        "name": "tool",
        "description": "A tool under the constitution.",
        "parameters": {"type": "object", "properties": {"text": {"type": "string"}}},
        "returns": {},
        "examples": [{"args": {"text": "a"}, "returns": "a"}],
    }
    return ToolSpec.parse(base | fields)


def constitution_errors(code: str, **spec_fields: Any) -> list[Finding]:
    rules = policy_rules(load_constitution())
    return analyze(code, make_spec(**spec_fields), rules=rules).errors


def by_rule(findings: list[Finding], rule: str) -> list[Finding]:
    return [f for f in findings if f.rule == rule]


@pytest.fixture(autouse=True)
def _no_project_constitution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONSTITUTION_ENV, raising=False)


@pytest.mark.parametrize(
    ("code", "rule", "line"),
    [
        ("import importlib\n\ndef tool(text):\n    importlib.import_module('so' + 'cket')\n",
         "no-dynamic-import", 4),
        ("def tool(text):\n    return __import__('o' + 's').name\n", "no-dynamic-import", 2),
        ("def tool(text):\n    return getattr(__builtins__, 'ev' + 'al')(text)\n",
         "no-builtins-access", 2),
        ("import os\n\ndef tool(text):\n    return os.environ.get('HOME')\n", "no-env-read", 4),
        ("from os import environ as e\n\ndef tool(text):\n    return e['TOKEN']\n",
         "no-env-read", 4),
        ("import os\n\ndef tool(text):\n    return os.getenv('AWS_SECRET')\n", "no-env-read", 4),
        ("def tool(text):\n    return eval(text)\n", "no-eval", 2),
        ("def tool(text):\n    open('/etc/cron.d/x', 'w').write(text)\n",
         "no-write-outside-tmp", 2),
        ("import ctypes.util\n\ndef tool(text):\n    return text\n", "no-native-code", 1),
        ("KEY = 'AKIAABCDEFGHIJKLMNOP'\n\ndef tool(text):\n    return text\n",
         "no-embedded-secrets", 1),
    ],
)  # fmt: skip
def test_sneaky_code_breaks_a_static_rule_by_id(code: str, rule: str, line: int) -> None:
    """Hidden imports, builtins access, env reads and eval are findings carrying the rule id."""
    found = by_rule(constitution_errors(code), rule)
    assert line in [f.line for f in found], constitution_errors(code)
    assert all("forbidden by the constitution" in f.message for f in found)


def test_declared_capability_can_break_the_constitution() -> None:
    """A spec declaring env:HOME breaks no-env-read at the spec, even if the code never reads it."""
    found = by_rule(
        constitution_errors("def tool(text):\n    return text\n", capabilities=["env:HOME"]),
        "no-env-read",
    )
    assert [(f.line, f.capability) for f in found] == [(0, "env:HOME")]
    assert found[0].message.startswith("spec: declares env:HOME, forbidden by the constitution")


def test_writes_in_own_tmp_and_ordinary_code_are_fine() -> None:
    """Writing under /tmp with fs:write:/tmp declared, and plain builtins, break no rule."""
    code = (
        "def tool(text):\n    with open('/tmp/out.txt', 'w') as f:\n"
        "        f.write(text)\n    return len(text)\n"
    )
    assert constitution_errors(code, capabilities=["fs:write:/tmp"]) == []


def test_project_file_overrides_disables_and_adds_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A project constitution replaces a default rule by id, disables one, and adds its own."""
    project = tmp_path / "constitution.toml"
    project.write_text(
        '[[rule]]\nid = "no-eval"\nreason = "off here"\nkind = "call"\nmatch = ["eval"]\n'
        "enabled = false\n\n"
        '[[rule]]\nid = "max-result-bytes"\nreason = "tiny"\nkind = "result-bytes"\nlimit = 10\n\n'
        '[[rule]]\nid = "no-print"\nreason = "stdout is not the result"\nkind = "call"\n'
        'match = ["print"]\n'
    )
    monkeypatch.setenv(CONSTITUTION_ENV, str(project))
    merged = load_constitution()
    assert merged.sources == ["<default constitution>", str(project)]
    ids = [r.id for r in merged.rules]
    assert ids.count("no-eval") == 1 and ids[-1] == "no-print"
    assert next(r for r in merged.rules if r.id == "max-result-bytes").limit == 10
    code = "def tool(text):\n    print(text)\n    return eval(text)\n"
    found = analyze(code, make_spec(), rules=policy_rules(merged)).errors
    assert by_rule(found, "no-eval") == []
    assert [f.line for f in by_rule(found, "no-print")] == [2]


RULE = '[[rule]]\nid = "x"\nreason = "r"\n'


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('[[rule]]\nid = "x"\nkind = "call"\nmatch = ["eval"]\n',
         r"rule 0 \(id 'x'\)\.reason: Field required"),
        ('[[rule]]\nid = "No Eval"\nreason = "r"\nkind = "call"\nmatch = ["eval"]\n',
         r"rule id 'No Eval' must be"),
        ('[[rule]]\nid = "dynamic"\nreason = "r"\nkind = "call"\nmatch = ["eval"]\n',
         r"taken by a built-in"),
        (RULE + 'kind = "call"\n', r"needs a non-empty 'match'"),
        (RULE + 'kind = "result-bytes"\n', r"'limit' \(bytes\) is required"),
        (RULE + 'kind = "telepathy"\nmatch = ["a"]\n', r"\.kind: Input should be"),
        (RULE + 'kind = "source"\nmatch = ["("]\n', r"is not a regex"),
        (RULE + 'kind = "leftover-files"\n\n' + RULE + 'kind = "leftover-processes"\n',
         r"rule id 'x' is used twice"),
        ('[rules]\nid = "x"\n', r"rules: Extra inputs"),
    ],
)  # fmt: skip
def test_malformed_constitution_names_the_rule_and_key(text: str, match: str) -> None:
    """Mistakes in a constitution file are PolicyErrors naming the rule, the key and the fix."""
    with pytest.raises(PolicyError, match=match) as info:
        Constitution.from_toml(text, source="c.toml")
    assert info.value.hint


def test_missing_constitution_file_is_a_policy_error(tmp_path: Path) -> None:
    """An explicit constitution path that does not exist is a PolicyError naming it."""
    with pytest.raises(PolicyError, match=r"cannot read constitution file .*absent\.toml"):
        load_constitution(tmp_path / "absent.toml")


def test_state_rules_render_as_valid_pytest_with_the_right_count() -> None:
    """Each state rule becomes one named test in a file that parses and merges into the suite."""
    spec = make_spec()
    suite = constitution_tests(load_constitution(), spec)
    assert suite is not None
    assert list(suite.files) == [TEST_FILE]
    tree = ast.parse(suite.files[TEST_FILE])
    tests = [
        n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")
    ]
    assert tests == [
        "test_constitution_max_result_bytes",
        "test_constitution_no_leftover_files",
        "test_constitution_no_leftover_processes",
    ]
    assert suite.expected == 3
    merged = generate_tests(spec).merged(suite)
    assert merged.expected == generate_tests(spec).expected + 3
    assert "from toolsmith_harness import call, invoke, tally" in suite.files[TEST_FILE]


def test_declared_fs_write_exempts_the_leftover_files_rule() -> None:
    """unless_declared: a spec declaring fs:write:* gets no leftover-files test."""
    suite = constitution_tests(load_constitution(), make_spec(capabilities=["fs:write:/tmp/out"]))
    assert suite is not None
    assert suite.expected == 2
    assert "test_constitution_no_leftover_files" not in suite.files[TEST_FILE]


def test_no_state_rules_means_no_extra_suite() -> None:
    """A constitution without state rules adds no test file."""
    only_static = Constitution.from_toml(
        '[[rule]]\nid = "no-print"\nreason = "r"\nkind = "call"\nmatch = ["print"]\n'
    )
    assert constitution_tests(only_static, make_spec()) is None


def test_reasons_with_quotes_and_braces_stay_valid_python() -> None:
    """A reason full of quotes, braces and backslashes cannot break the generated file."""
    text = (
        '[[rule]]\nid = "tiny"\nkind = "result-bytes"\nlimit = 5\n'
        "reason = '''it's {not} \"fine\" \\\\ \"\"\" at all'''\n"
    )
    constitution = Constitution.from_toml(text)
    suite = constitution_tests(constitution, make_spec())
    assert suite is not None
    namespace: dict[str, Any] = {}
    tree = ast.parse(suite.files[TEST_FILE])
    reason = next(
        n
        for n in tree.body
        if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "REASON_tiny"
    )
    exec(compile(ast.Module(body=[reason], type_ignores=[]), "<reason>", "exec"), namespace)
    assert namespace["REASON_tiny"] == constitution.rules[0].reason
    assert '{not} "fine"' in constitution.rules[0].reason


def test_state_violations_map_failed_tests_to_rule_ids() -> None:
    """A sandbox report's failed constitution tests read back as violations by rule id."""
    report = TestReport(
        tests=[
            TestCase(
                nodeid="test_constitution.py::test_constitution_no_leftover_files",
                outcome=Outcome.FAILED,
                failure="left /tmp/x",
            ),
            TestCase(
                nodeid="test_constitution.py::test_constitution_max_result_bytes",
                outcome=Outcome.PASSED,
            ),
            TestCase(nodeid="test_tool.py::test_example_0", outcome=Outcome.FAILED),
        ],
        expected=3,
        collected=3,
    )
    violations = state_violations(load_constitution(), report)
    assert [(v.rule, v.failure) for v in violations] == [("no-leftover-files", "left /tmp/x")]
