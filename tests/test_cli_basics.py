"""The CLI's contract: version, help, and one-line errors with exit codes instead of tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import toolsmith
from toolsmith.testing import ScriptedLLMServer

CLI = "from toolsmith.cli import main; main()"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CLI, *args],
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


def test_spec_schema_takes_json_like_every_data_command() -> None:
    """`spec schema --json` prints the same JSON Schema instead of refusing the flag."""
    r = run("spec", "schema", "--json")
    assert r.returncode == 0, r.stderr
    assert "name" in json.loads(r.stdout)["properties"]


MARKUP = "Fetch [conceal]secret[/conceal] and [/] things [bold]now"
NETWORK_SPEC = f"""
name: fetch_it
description: "{MARKUP}"
parameters: {{type: object}}
returns: {{type: integer}}
capabilities: ["network:example.com"]
"""


def test_markup_in_data_is_printed_literally(tmp_path: Path) -> None:
    """Brackets in a description, a policy rule id or a pattern neither crash nor hide text."""
    spec = tmp_path / "s.yaml"
    spec.write_text(NETWORK_SPEC)
    code = tmp_path / "c.py"
    code.write_text("def fetch_it():\n    return 1\n")
    valid = run("spec", "validate", str(spec))
    assert valid.returncode == 0, valid.stderr
    assert MARKUP in valid.stdout
    checked = run("policy", "check", str(spec), str(code))
    assert checked.returncode == 0, checked.stderr
    assert "[capabilities.needs_approval] capability network:example.com" in checked.stdout
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[capabilities]\nallow = ["fs:read:/data/[ab]*"]\nneeds_approval = []\ndeny = []\n'
        'default = "needs_approval"\n'
    )
    shown = run("policy", "show", "--policy", str(policy))
    assert shown.returncode == 0, shown.stderr
    assert "fs:read:/data/[ab]*" in shown.stdout


def test_build_table_prints_model_text_literally(tmp_path: Path) -> None:
    """A model's conflict report with [/] and [conceal] shows in the attempts table as sent."""
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "name: one\ndescription: d\nparameters: {type: object}\nreturns: {type: integer}\n"
    )
    conflict = "example [/] breaks [conceal]p[/conceal]"
    with ScriptedLLMServer({"steps": [{"reply": f"SPEC_CONFLICT: {conflict}"}]}) as srv:
        llm = ["--base-url", srv.base_url, "--model", "m"]
        reg = str(tmp_path / "reg")
        r = subprocess.run(
            [sys.executable, "-c", CLI, "build", "--spec", str(spec), "--registry", reg, *llm],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "TOOLSMITH_HOME": str(tmp_path / "home"), "COLUMNS": "200"},
        )
    assert r.returncode == 7, r.stderr
    assert conflict in r.stdout and "Traceback" not in r.stderr


EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "word_count.yaml"


def test_impl_with_a_syntax_error_shows_file_line_column_and_the_line(tmp_path: Path) -> None:
    """`build --spec S --impl FILE` whose FILE does not parse: exit 2 before anything runs,
    `FILE:LINE:COL`, the offending line with a caret under the column, and a fix naming it."""
    impl = tmp_path / "impl.py"
    impl.write_text(
        "def word_count(text, min_length=1):\n"
        "    return sum(1 for w in text.split() if len(w) >= min_length\n"
    )
    r = run("build", "--spec", str(EXAMPLE), "--impl", str(impl), "--registry", str(tmp_path))
    assert r.returncode == 2, r.stderr
    lines = r.stderr.splitlines()
    assert lines[0] == f"UsageError: {impl}:2:15: SyntaxError: '(' was never closed"
    assert lines[1].strip().startswith("return sum(1 for w")
    assert lines[2].index("^") == lines[1].index("sum(") + 3  # under the unclosed paren
    assert lines[3].startswith(f"fix: correct line 2 of {impl}")
    assert not (tmp_path / "metadata").exists(), "nothing was built or published"


def test_impl_without_the_specs_function_names_both(tmp_path: Path) -> None:
    """An implementation that defines another function is refused at once, naming the spec's
    function and the ones found, with how to reconcile them."""
    impl = tmp_path / "impl.py"
    impl.write_text("def wc(text, min_length=1):\n    return len(text.split())\n")
    r = run("build", "--spec", str(EXAMPLE), "--impl", str(impl), "--registry", str(tmp_path))
    assert r.returncode == 2, r.stderr
    assert "no top-level function named 'word_count' (found: wc)" in r.stderr
    assert "fix: define `def word_count(...)`" in r.stderr


def _init(home: Path, *root: str, json_out: bool = False, tty: bool = False, **env: str) -> str:
    """stderr of `toolsmith ROOT... registry init [--json]` in a fresh home (which logs the
    generated key's warning), with ``env`` set, through a pseudo-terminal when ``tty``."""
    import pty

    argv = [sys.executable, "-c", CLI, *root, "registry", "init", "--registry", str(home / "r")]
    argv += ["--json"] if json_out else []
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TOOLSMITH_LOG_")}
    environ |= {"TOOLSMITH_HOME": str(home), **env}
    if not tty:
        r = subprocess.run(argv, capture_output=True, text=True, env=environ, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stderr
    main, side = pty.openpty()
    with os.fdopen(main, "rb", buffering=0) as terminal:
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=side, env=environ, timeout=60)
        os.close(side)
        chunks = []
        while True:
            try:
                chunk = terminal.read(4096)
            except OSError:  # EIO: the other side is closed and everything was read
                break
            if not chunk:
                break
            chunks.append(chunk)
    assert r.returncode == 0
    return b"".join(chunks).decode().replace("\r\n", "\n")


def test_log_lines_are_short_for_people_and_json_for_machines(tmp_path: Path) -> None:
    """A terminal gets `warning: event (key=value, ...)`; piped stderr and a command printing
    --json get JSON lines; --log-format, $TOOLSMITH_LOG_FORMAT and --log-level choose."""
    on_terminal = _init(tmp_path / "a", tty=True)
    assert on_terminal.startswith("warning: generated signing key (key_id=")
    assert "{" not in on_terminal and "timestamp" not in on_terminal
    script = _init(tmp_path / "b", tty=True, json_out=True)
    assert json.loads(script.splitlines()[0])["event"] == "generated signing key"
    piped = _init(tmp_path / "c")
    assert json.loads(piped.splitlines()[0])["level"] == "warning"
    human = _init(tmp_path / "d", "--log-format", "human")
    assert human.startswith("warning: generated signing key (key_id=")
    from_env = _init(tmp_path / "e", json_out=True, TOOLSMITH_LOG_FORMAT="human")
    assert from_env.startswith("warning: generated signing key")
    assert "generated signing key" not in _init(tmp_path / "f", "--log-level", "error")


def test_a_bad_log_setting_is_a_usage_error_and_others_wait_for_their_command() -> None:
    """A bad --log-format is exit 2 naming it; a bad setting of another section does not stop
    a command that does not use it."""
    r = run("--log-format", "xml", "spec", "schema")
    assert r.returncode == 2 and "--log-format" in r.stderr and "'xml'" in r.stderr
    environ = {**os.environ, "TOOLSMITH_MAX_ATTEMPTS": "0"}
    ok = subprocess.run(
        [sys.executable, "-c", CLI, "spec", "schema"], capture_output=True, env=environ, timeout=60
    )
    assert ok.returncode == 0, ok.stderr


def test_a_malformed_base_url_flag_is_refused_even_when_no_model_is_asked(tmp_path: Path) -> None:
    """`build --spec S --impl F --base-url nope` asks no model, yet the flag is checked as it
    is parsed: exit 2 naming the value, nothing built."""
    impl = EXAMPLE.with_suffix(".py")
    args = ["--spec", str(EXAMPLE), "--impl", str(impl), "--registry", str(tmp_path)]
    r = run("build", *args, "--base-url", "nope")
    assert r.returncode == 2, r.stderr
    assert "--base-url 'nope' is not an http:// or https:// URL" in r.stderr
    assert not (tmp_path / "metadata").exists()
