"""The CLI's contract: version, help, and one-line errors with exit codes instead of tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import toolsmith


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from toolsmith.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_version() -> None:
    """--version prints the package version."""
    r = run("--version")
    assert r.returncode == 0
    assert toolsmith.__version__ in r.stdout


def test_user_error_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    """A bad spec file yields the error type, the problem, the fix, and exit code 2."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: ../x\ndescription: d\nparameters: {type: object}\nreturns: {}\n")
    r = run("spec", "validate", str(bad))
    assert r.returncode == 2
    assert "SpecError" in r.stderr and "snake_case" in r.stderr and "fix:" in r.stderr
    assert "Traceback" not in r.stderr


def test_unknown_option_is_a_usage_error() -> None:
    """A wrong CLI argument is reported by the parser with a non-zero exit."""
    r = run("spec", "validate", "--no-such-flag")
    assert r.returncode == 2
    assert "No such option" in r.stderr


def test_spec_schema_is_json() -> None:
    """The exported schema names the ToolSpec fields, so an LLM can be asked for it."""
    r = run("spec", "schema")
    schema = json.loads(r.stdout)
    assert {"name", "parameters", "returns", "examples"} <= set(schema["properties"])


def test_bad_build_options_are_usage_errors(tmp_path: Path) -> None:
    """--version that is not semver and a non-UTF-8 implementation: one line each, exit 2."""
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "name: one\ndescription: d\nparameters: {type: object}\nreturns: {type: integer}\n"
    )
    impl = tmp_path / "impl.py"
    impl.write_bytes(b"def one():\n    return '\xe9'\n")
    bad_version = run("build", "--spec", str(spec), "--impl", str(impl), "--version", "banana")
    assert bad_version.returncode == 2 and "semantic version" in bad_version.stderr
    latin1 = run("build", "--spec", str(spec), "--impl", str(impl))
    assert latin1.returncode == 2 and "not UTF-8" in latin1.stderr
    assert "Traceback" not in bad_version.stderr + latin1.stderr


def test_policy_check_of_a_non_utf8_code_file_is_one_line(tmp_path: Path) -> None:
    """`policy check` on a Latin-1 file says it is not UTF-8 (exit 2), not a traceback."""
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "name: one\ndescription: d\nparameters: {type: object}\nreturns: {type: string}\n"
    )
    code = tmp_path / "one.py"
    code.write_bytes(b"def one():\n    return '\xe9'\n")
    r = run("policy", "check", str(spec), str(code))
    assert r.returncode == 2, r.stderr
    assert "not UTF-8" in r.stderr and "Traceback" not in r.stderr
