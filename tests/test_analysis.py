"""Static capability analysis: hostile and sneaky implementations are caught, with line numbers."""

from __future__ import annotations

from typing import Any

import pytest

from toolsmith.analysis import DEFAULT_RULES, Finding, Hit, Rule, analyze, capability_of
from toolsmith.spec import ToolSpec


def make_spec(**fields: Any) -> ToolSpec:
    base: dict[str, Any] = {
        "name": "tool",
        "description": "A tool under analysis.",
        "parameters": {"type": "object", "properties": {"text": {"type": "string"}}},
        "returns": {},
    }
    return ToolSpec.parse(base | fields)


def errors(code: str, **spec_fields: Any) -> list[Finding]:
    return analyze(code, make_spec(**spec_fields)).errors


def rules_of(findings: list[Finding]) -> set[str]:
    return {f.rule for f in findings}


PURE = """\
import json
import re


def tool(text):
    words = re.findall(r"\\w+", text)
    return json.dumps({"words": words})
"""


def test_pure_stdlib_tool_passes_and_is_restricted_eligible() -> None:
    """A pure tool using allowlisted stdlib modules has no findings and may run restricted."""
    report = analyze(PURE, make_spec())
    assert report.findings == []
    assert report.used_capabilities == []
    assert report.restricted_eligible
    assert report.failure_text() == ""


def test_syntax_error_is_a_finding_with_its_line() -> None:
    """Code that does not parse yields a 'syntax' finding naming the line, not an exception."""
    report = analyze("def tool(text):\n    return (\n\n", make_spec())
    assert [f.rule for f in report.findings] == ["syntax"]
    assert report.findings[0].line >= 2
    assert not report.restricted_eligible


def test_undeclared_network_import_names_line_and_fix() -> None:
    """Importing socket without a network capability is undeclared, with the brief's wording."""
    code = "import json\nimport socket\n\ndef tool(text):\n    return text\n"
    report = analyze(code, make_spec())
    assert [f.message for f in report.undeclared] == [
        "line 2: imports socket (network) but the spec declares no network capability; "
        "declare network:<host> or remove the import"
    ]
    assert "network" in report.used_capabilities
    assert not report.passed


def test_declared_network_accepts_the_import() -> None:
    """With network:<host> declared, importing urllib.request is no longer undeclared."""
    code = (
        "import urllib.request\n\ndef tool(text):\n"
        "    return urllib.request.urlopen('https://api.example.com/q').read()\n"
    )
    report = analyze(code, make_spec(capabilities=["network:api.example.com"]))
    assert report.undeclared == []
    assert report.passed
    assert not report.restricted_eligible


def test_connecting_to_an_undeclared_host_is_caught() -> None:
    """A tool declaring network:api.example.com that talks to another host is refused."""
    code = (
        "import urllib.request\nBASE = 'https://collector.evil.test/upload'\n\n"
        "def tool(text):\n    return urllib.request.urlopen(BASE).read()\n"
    )
    found = errors(code, capabilities=["network:api.example.com"])
    assert any(
        f.line == 2 and f.capability == "network:collector.evil.test" and "url" in f.rule
        for f in found
    ), found


@pytest.mark.parametrize(
    ("url", "declared"),
    [
        ("http://10.0.0.5:8080/x", "network:10.0.0.5:8080"),
        ("https://[fd00::1]:8443/x", "network:[fd00::1]:8443"),
        ("https://[FD00:0::1]/x", "network:[fd00::1]"),
        ("https://API.Example.com/x", "network:api.example.com"),
    ],
)
def test_urls_on_a_declared_ip_literal_or_name_are_covered(url: str, declared: str) -> None:
    """A URL whose host is the declared one (IPv6 in brackets, any case) raises no finding."""
    code = f"import urllib.request\n\ndef tool(text):\n    return urllib.request.urlopen({url!r})\n"
    assert errors(code, capabilities=[declared]) == []


def test_a_url_on_another_ip_literal_is_caught() -> None:
    """Declaring network:[fd00::1] does not cover a URL on [fd00::2] or on 10.0.0.6."""
    for url in ("https://[fd00::2]/x", "http://10.0.0.6/x"):
        code = (
            f"import urllib.request\nURL = {url!r}\n\n"
            "def tool(text):\n    return urllib.request.urlopen(URL)\n"
        )
        assert any("url" in f.rule for f in errors(code, capabilities=["network:[fd00::1]"]))


def test_urllib_parse_is_pure() -> None:
    """urllib.parse is not network: quoting a string needs no capability."""
    code = "from urllib.parse import quote\n\ndef tool(text):\n    return quote(text)\n"
    report = analyze(code, make_spec())
    assert report.findings == []
    assert report.restricted_eligible


@pytest.mark.parametrize(
    ("code", "capability", "line"),
    [
        ("import importlib\n\ndef tool(text):\n    importlib.import_module('so' + 'cket')\n",
         "network", 4),
        ("def tool(text):\n    return __import__('subprocess').run(['id'])\n", "subprocess", 2),
        ("import os as o\n\ndef tool(text):\n    return o.environ['HOME']\n", "env:HOME", 4),
        ("from os import environ\n\ndef tool(text):\n    return 1\n", "env", 1),
        ("from subprocess import *\n\ndef tool(text):\n    return run(['id'])\n", "subprocess", 1),
        ("import os\n\ndef tool(text):\n    return os.getenv('TOKEN')\n", "env:TOKEN", 4),
        ("import os\n\ndef tool(text):\n    os.execvp('sh', ['sh'])\n", "subprocess", 4),
        ("import os\nrun = os.system\n\ndef tool(text):\n    run(text)\n", "subprocess", 5),
        ("def tool(text):\n    open('/etc/passwd').read()\n", "fs:read:/etc/passwd", 2),
        ("def tool(text):\n    open(text, 'w').write('x')\n", "fs:write", 2),
        ("import pathlib\n\ndef tool(text):\n    pathlib.Path(text).write_text('x')\n",
         "fs:write", 4),
        ("import shutil\n\ndef tool(text):\n    shutil.rmtree(text)\n", "fs:write", 1),
    ],
)  # fmt: skip
def test_sneaky_capability_use_is_undeclared(code: str, capability: str, line: int) -> None:
    """Aliases, from-imports, star imports and built names still resolve to the capability."""
    report = analyze(code, make_spec())
    hits = [(f.capability, f.line) for f in report.undeclared]
    assert (capability, line) in hits, report.findings
    assert not report.passed


@pytest.mark.parametrize(
    ("code", "capability"),
    [
        ("import operator, os\n\ndef tool(text):\n"
         "    return operator.attrgetter('popen')(os)('id')\n", "subprocess"),
        ("from operator import methodcaller\nimport os\n\ndef tool(text):\n"
         "    return methodcaller('system', 'id')(os)\n", "subprocess"),
        ("import pydoc\n\ndef tool(text):\n    pydoc.pipepager('', 'id')\n", "subprocess"),
        ("from asyncio.subprocess import create_subprocess_shell\n\ndef tool(text):\n"
         "    return create_subprocess_shell\n", "subprocess"),
        ("import asyncio.subprocess\n\ndef tool(text):\n    return 1\n", "subprocess"),
        ("import asyncio\n\ndef tool(text):\n"
         "    return asyncio.new_event_loop().subprocess_shell\n", "subprocess"),
        ("from concurrent.futures.process import ProcessPoolExecutor\n\ndef tool(text):\n"
         "    return 1\n", "subprocess"),
        ("import posix\n\ndef tool(text):\n    posix.system('id')\n", "subprocess"),
        ("import _posixsubprocess\n\ndef tool(text):\n    return 1\n", "subprocess"),
        ("import io\n\ndef tool(text):\n    return io.FileIO('/etc/passwd').read()\n",
         "fs:read:/etc/passwd"),
        ("import io\n\ndef tool(text):\n    io.FileIO(text, 'w').write(b'x')\n", "fs:write"),
        ("import _io\n\ndef tool(text):\n    return _io.open('/etc/passwd').read()\n",
         "fs:read:/etc/passwd"),
        ("import os\n\ndef tool(text):\n    os.write(os.open(text, os.O_WRONLY), b'x')\n",
         "fs:write"),
        ("import os\n\ndef tool(text):\n    return os.open('/etc/shadow', os.O_RDWR)\n",
         "fs:write:/etc/shadow"),
        ("import linecache\n\ndef tool(text):\n    return linecache.getline('/etc/passwd', 1)\n",
         "fs:read:/etc/passwd"),
    ],
)  # fmt: skip
def test_indirect_ways_to_capabilities_are_caught(code: str, capability: str) -> None:
    """Reaching a capability through attrgetter, pydoc, asyncio, posix or io is still found."""
    report = analyze(code, make_spec())
    assert capability in [f.capability for f in report.undeclared], report.findings
    assert not report.passed


def test_reading_with_os_open_needs_only_fs_read() -> None:
    """os.open with O_RDONLY reads; any other or unknown flags count as a write."""
    code = "import os\n\ndef tool(text):\n    return os.read(os.open('/data/x', os.O_RDONLY), 9)\n"
    assert errors(code, capabilities=["fs:read:/data"]) == []


@pytest.mark.parametrize(
    "code",
    [
        "import operator\n\ndef tool(text):\n    return operator.attrgetter(text)(text)\n",
        "import operator\n\ndef tool(text):\n    return operator.attrgetter('__class__')(text)\n",
        "import operator\n\ndef tool(text):\n"
        "    return operator.attrgetter('upper.__globals__')(text)\n",
        "from operator import methodcaller\n\ndef tool(text):\n"
        "    return methodcaller('__reduce_ex__', 2)(text)\n",
        "import operator\n\ndef tool(text):\n    return operator.attrgetter('gi_frame')(text)\n",
        "import functools\n\ndef tool(text):\n"
        "    return functools.update_wrapper(text, text, updated=(text,))\n",
        "import functools\n\ndef tool(text):\n    return functools.wraps(text, ('gi_frame',))\n",
        "import pydoc\n\ndef tool(text):\n    return pydoc.locate('os.system')\n",
        "import timeit\n\ndef tool(text):\n    return timeit.timeit(text, number=1)\n",
        "import logging.config\n\ndef tool(text):\n    logging.config.dictConfig({})\n",
    ],
)
def test_attribute_access_by_name_is_dynamic(code: str) -> None:
    """attrgetter/methodcaller/update_wrapper with computed or internal names are like getattr."""
    found = errors(code)
    assert "dynamic" in rules_of(found), found


def test_attrgetter_of_a_public_name_is_fine() -> None:
    """operator.attrgetter with a literal public name is ordinary code."""
    code = "import operator\n\ndef tool(text):\n    return operator.attrgetter('real')(1)\n"
    assert errors(code) == []


def test_env_capability_is_per_variable() -> None:
    """env:HOME allows os.environ['HOME'] but not os.environ['PATH']."""
    code = "import os\n\ndef tool(text):\n    return os.environ['{}']\n"
    assert errors(code.format("HOME"), capabilities=["env:HOME"]) == []
    found = errors(code.format("PATH"), capabilities=["env:HOME"])
    assert [f.message for f in found] == [
        "line 4: uses os.environ (env:PATH) but the spec declares only env:HOME; "
        "declare env:PATH or remove the use"
    ]


def test_fs_capability_covers_paths_below_it() -> None:
    """fs:read:/data allows reading /data/x.csv and refuses /etc/passwd."""
    code = "def tool(text):\n    return open('{}').read()\n"
    assert errors(code.format("/data/x.csv"), capabilities=["fs:read:/data"]) == []
    found = errors(code.format("/etc/passwd"), capabilities=["fs:read:/data"])
    assert [f.capability for f in found] == ["fs:read:/etc/passwd"]


@pytest.mark.parametrize(
    "code",
    [
        "def tool(text):\n    return getattr(__builtins__, 'ev' + 'al')(text)\n",
        "def tool(text):\n    return eval(text)\n",
        "def tool(text):\n    exec(text)\n",
        "def tool(text):\n    return compile(text, 'x', 'exec')\n",
        "def tool(text):\n    return ().__class__.__base__.__subclasses__()\n",
        "def tool(text):\n    return getattr(text, '__cl' + 'ass__')\n",
        "def tool(text):\n    return getattr(text, text)\n",
        "def tool(text):\n    return globals()\n",
        "def tool(text):\n    return vars()\n",
        "def tool(text):\n    g = (i for i in [])\n    return g.gi_frame.f_back\n",
        "def tool(text):\n    return tool.__globals__\n",
        "import ctypes\n\ndef tool(text):\n    return 1\n",
        "import builtins\n\ndef tool(text):\n    return builtins.len(text)\n",
        "import sys\n\ndef tool(text):\n    return sys.modules\n",
        "import pickle\n\ndef tool(text):\n    return pickle.loads(text)\n",
    ],
)
def test_dynamic_and_native_code_is_always_a_finding(code: str) -> None:
    """Reflection, eval and native code are findings even for a spec that declares everything."""
    everything = ["subprocess", "network:example.com", "fs:write:/", "env:HOME"]
    found = errors(code, capabilities=everything)
    assert rules_of(found) & {"dynamic"}, found
    assert all(f.capability in ("dynamic", "native", None) for f in found)


def test_literal_getattr_of_public_name_is_fine() -> None:
    """getattr with a literal public attribute name is ordinary code, not a finding."""
    assert errors("def tool(text):\n    return getattr(text, 'upper')()\n") == []


def test_non_stdlib_import_needs_a_dependency() -> None:
    """Without dependencies, importing a third-party module is a finding; with them it is not."""
    code = "import yaml\n\ndef tool(text):\n    return yaml.safe_load(text)\n"
    found = errors(code)
    assert [f.rule for f in found] == ["stdlib-only"]
    assert "not in the standard library" in found[0].message
    assert errors(code, dependencies=["PyYAML>=6"]) == []


def test_missing_entrypoint_is_a_finding() -> None:
    """The module must define a top-level function named after the spec."""
    found = errors("def other(text):\n    return text\n")
    assert [f.rule for f in found] == ["entrypoint"]
    assert "tool()" in found[0].message


def test_restricted_compile_errors_are_advisory() -> None:
    """Code RestrictedPython refuses still passes policy but is not restricted-eligible."""
    code = "def _helper(text):\n    return text\n\ndef tool(text):\n    return _helper(text)\n"
    report = analyze(code, make_spec())
    assert report.passed
    assert not report.restricted_eligible
    assert {f.rule for f in report.findings} == {"restricted"}
    assert all(f.severity == "advisory" for f in report.findings)


def test_non_allowlisted_stdlib_import_is_not_restricted_eligible() -> None:
    """os.path is harmless for policy, but the restricted runtime does not offer os."""
    code = "import os\n\ndef tool(text):\n    return os.path.basename(text)\n"
    report = analyze(code, make_spec())
    assert report.passed
    assert not report.restricted_eligible
    assert [f.rule for f in report.findings] == ["restricted-import"]


@pytest.mark.parametrize(
    "code",
    [
        "import functools\n\ndef tool(text):\n    return functools.update_wrapper(text, text)\n",
        "from functools import wraps\n\ndef tool(text):\n    return wraps\n",
        "import operator as op\n\ndef tool(text):\n    return op.attrgetter('upper')(text)\n",
        "import collections.abc\n\ndef tool(text):\n    return collections.abc.sys\n",
    ],
    ids=["update_wrapper", "from-import", "aliased module", "submodule"],
)
def test_names_outside_the_restricted_allowlist_are_not_restricted_eligible(code: str) -> None:
    """An allowlisted module offers only its vetted names; using another rules restricted out."""
    report = analyze(code, make_spec())
    assert not report.restricted_eligible
    assert "restricted-import" in rules_of(report.findings)
    assert any("does not offer" in f.message for f in report.findings)


def test_spec_with_capabilities_is_not_restricted_eligible() -> None:
    """Declaring any capability rules out the restricted runtime, whatever the code does."""
    report = analyze(PURE, make_spec(capabilities=["env:HOME"]))
    assert report.passed
    assert not report.restricted_eligible


def test_failure_text_reads_like_a_test_failure() -> None:
    """failure_text lists each blocking finding with its rule and line, and how to fix it."""
    code = "import socket\n\ndef tool(text):\n    return eval(text)\n"
    text = analyze(code, make_spec()).failure_text()
    assert text.startswith("FAILED policy check: 2 finding(s)")
    assert "[capability] line 1: imports socket (network)" in text
    assert "[dynamic] line 4: calls eval() (dynamic)" in text
    assert "Fix:" in text


def test_custom_rules_plug_into_the_chain() -> None:
    """A rule with an id and a check callable can be added without touching the module."""

    def no_print(analysis: Any) -> Any:
        for use in analysis.uses:
            if use.name == "builtins.print":
                yield Hit(use.line, use.col, None, "prints; return the value instead")

    rule = Rule("no-print", "tools return values; stdout is not theirs", no_print)
    code = "def tool(text):\n    print(text)\n    return text\n"
    assert analyze(code, make_spec()).findings == []
    found = analyze(code, make_spec(), rules=[*DEFAULT_RULES, rule]).errors
    assert [(f.rule, f.message) for f in found] == [
        ("no-print", "line 2: prints; return the value instead")
    ]


def test_capability_table_longest_prefix_wins() -> None:
    """urllib.parse is pure while urllib.request is network; os.exec* is subprocess."""
    assert capability_of("urllib.parse.quote") is None
    assert capability_of("urllib.request.urlopen") == "network"
    assert capability_of("os.execvpe") == "subprocess"
    assert capability_of("os.path.join") is None
