"""One settings object: defaults < config file < environment < flags, read in one place."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from toolsmith.errors import LLMNotConfiguredError, UsageError
from toolsmith.pipeline import BuildOptions
from toolsmith.settings import KNOBS, Settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No knob set in the environment; the config file is ``tmp_path/config.toml``."""
    for knob in KNOBS:
        if knob.env:
            monkeypatch.delenv(knob.env, raising=False)
    cfg = tmp_path / "config.toml"
    monkeypatch.setenv("TOOLSMITH_CONFIG", str(cfg))
    return cfg


def test_each_layer_beats_the_one_below(clean: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A build knob and a path knob: default, then file, then environment, then flag."""
    assert Settings.load().build.max_attempts == 4
    assert Settings.load().paths.policy is None
    clean.write_text('[build]\nmax_attempts = 6\n[paths]\npolicy = "/file/policy.toml"\n')
    s = Settings.load()
    assert (s.build.max_attempts, s.paths.policy) == (6, Path("/file/policy.toml"))
    assert s.sources["build.max_attempts"] == f"[build] max_attempts in {clean}"
    monkeypatch.setenv("TOOLSMITH_MAX_ATTEMPTS", "7")
    monkeypatch.setenv("TOOLSMITH_POLICY", "/env/policy.toml")
    s = Settings.load()
    assert (s.build.max_attempts, s.paths.policy) == (7, Path("/env/policy.toml"))
    s = Settings.load({"build.max_attempts": 8, "build.mutants": None})
    assert (s.build.max_attempts, s.build.mutants) == (8, 12)
    assert s.sources["build.max_attempts"] == "--max-attempts"


def test_build_options_default_to_the_settings(
    clean: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``BuildOptions()`` takes every unset [build] field from the settings; explicit wins."""
    clean.write_text("[build]\nmax_examples = 30\nmutation_time_s = 5\n")
    monkeypatch.setenv("TOOLSMITH_MUTANTS", "3")
    opts = BuildOptions()
    assert (opts.max_attempts, opts.max_examples, opts.mutants, opts.mutation_time_s) == (
        4,
        30,
        3,
        5.0,
    )
    assert BuildOptions(mutants=0).mutants == 0


def test_a_changed_file_or_variable_is_seen(clean: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Loads are cached, but never past a change to the file or a knob's variable."""
    clean.write_text("[build]\nmutants = 1\n")
    assert Settings.load().build.mutants == 1
    clean.write_text("[build]\nmutants = 22\n")
    assert Settings.load().build.mutants == 22
    monkeypatch.setenv("TOOLSMITH_REGISTRY", "/r")
    assert Settings.load().paths.registry == "/r"


@pytest.mark.parametrize(
    ("content", "env", "error", "fragment"),
    [
        ("", {"TOOLSMITH_MAX_EXAMPLES": "many"}, UsageError, r"max_examples \(from \$TOOLSMITH"),
        ("[build]\nmutants = -1\n", {}, UsageError, r"build.mutants \(from \[build\] mutants in"),
        ("[llm]\ntimeout_s = 0\n", {}, LLMNotConfiguredError, r"timeout_s \(from \[llm\]"),
        ("[bild]\nmutants = 1\n", {}, UsageError, "unknown table or key 'bild'"),
        ("[build]\nmutant = 1\n", {}, UsageError, "build.mutant"),
        ("[build\n", {}, UsageError, "cannot read config file"),
    ],
)
def test_a_bad_value_names_where_it_came_from(
    clean: Path,
    monkeypatch: pytest.MonkeyPatch,
    content: str,
    env: dict[str, str],
    error: type[Exception],
    fragment: str,
) -> None:
    """The error family is the setting's, and the message says which file, table or variable."""
    clean.write_text(content)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(error, match=fragment):
        Settings.load()


def test_an_api_key_is_never_echoed(clean: Path) -> None:
    """A bad [llm] table that holds a key does not print the key in the error."""
    clean.write_text('[llm]\napi_key = "sk-secret"\ntimeout_s = "soon"\n')
    with pytest.raises(LLMNotConfiguredError) as exc:
        Settings.load()
    assert "sk-secret" not in str(exc.value)


def test_unknown_flags_are_refused(clean: Path) -> None:
    """A flag mapped to a knob that does not exist is a caller's mistake, said at once."""
    with pytest.raises(UsageError, match="unknown settings"):
        Settings.load({"build.attempts": 3})


def test_readme_table_lists_exactly_the_knobs() -> None:
    """README's configuration table has one row per knob, with its key, flag and variable."""
    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| `\[(\w+)\] (\w+)` \|[^|]*\|\s*(.*?)\s*\| `(\w+)` \|", readme, re.M)
    documented = {
        (f"{section}.{key}", (re.findall(r"--[\w-]+", flag) or [None])[0], env)
        for section, key, flag, env in rows
    }
    assert documented == {(k.key, k.flag, k.env) for k in KNOBS}
    assert "`TOOLSMITH_CONFIG`" in readme


def test_no_module_reads_configuration_from_the_environment() -> None:
    """Only ``toolsmith.settings`` reads ``os.environ``/``os.getenv``, apart from the places
    that hand the environment on rather than configure toolsmith (named here, with why)."""
    allowed = {
        "toolsmith/settings.py",
        # Runs inside the sandbox container and probes its own, scrubbed environment.
        "toolsmith/sandbox/check.py",
        # Passes the variables a tool's env: capabilities grant, which are the tool's data.
        "toolsmith/sandbox/containers.py",
        # Hands docker-py the environment it reads TLS settings from, with the host's setting.
        "toolsmith/sandbox/engine.py",
        # Hands the environment on to LocalBackend's test subprocess.
        "toolsmith/testing.py",
    }
    readers = set()
    for path in (ROOT / "toolsmith").rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text(), rel)):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "os"
                and node.attr in ("environ", "getenv", "environb")
            ):
                readers.add(rel)
    assert readers <= allowed, readers - allowed


@pytest.mark.parametrize(
    ("given", "fragment"),
    [
        ({"llm.timeout_s": -5}, "--llm-timeout"),
        ({"llm.max_tokens": 0}, "--max-tokens"),
    ],
)
def test_a_bad_llm_flag_is_a_usage_error(clean: Path, given: dict, fragment: str) -> None:
    """A bad value given as an option is a bad argument (exit 2, README's table), not an
    unconfigured LLM (exit 6), even for the [llm] knobs."""
    with pytest.raises(UsageError, match=fragment) as exc:
        Settings.load(given)
    assert not isinstance(exc.value, LLMNotConfiguredError)


@pytest.mark.parametrize(
    ("flags", "env", "content", "source"),
    [
        ({"llm.base_url": "not-a-url"}, {}, "", "--base-url"),
        ({}, {"OPENAI_BASE_URL": "not-a-url"}, "", "$OPENAI_BASE_URL"),
        ({}, {}, '[llm]\nbase_url = "not-a-url"\n', "[llm] base_url in"),
        ({}, {"OPENAI_BASE_URL": "http://h:99999/v1"}, "", "$OPENAI_BASE_URL"),
    ],
)
def test_a_malformed_endpoint_url_is_a_usage_error_from_any_source(
    clean: Path,
    monkeypatch: pytest.MonkeyPatch,
    flags: dict,
    env: dict[str, str],
    content: str,
    source: str,
) -> None:
    """A base URL that is not an http(s) URL is a typo (exit 2), refused when the settings are
    read, naming the value, where it came from and what a good one looks like."""
    clean.write_text(content)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(UsageError) as exc:
        Settings.load(flags)
    assert not isinstance(exc.value, LLMNotConfiguredError)
    assert source in exc.value.message and "http://localhost:8000/v1" in exc.value.message
    assert "'not-a-url'" in exc.value.message or "'http://h:99999/v1'" in exc.value.message
    assert exc.value.hint and source in exc.value.hint


def test_toolsmith_home_holds_the_default_registry_and_all_state(
    clean: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With only TOOLSMITH_HOME set, keys, state, eval runs and the registry a command uses
    when none is named all live under it; TOOLSMITH_REGISTRY still wins."""
    from toolsmith.evaluation import runs_dir
    from toolsmith.registry import Registry

    home = tmp_path / "home"
    monkeypatch.setenv("TOOLSMITH_HOME", str(home))
    paths = Settings.load().paths
    assert (paths.keys, paths.state_root) == (home / "keys", home / "state")
    assert Registry().path == Registry.default_path() == home / "registry"
    assert runs_dir() == home / "evals"
    monkeypatch.setenv("TOOLSMITH_REGISTRY", str(tmp_path / "elsewhere"))
    assert Registry().path == tmp_path / "elsewhere"
