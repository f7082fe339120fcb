"""README.md's code runs as written, so the documentation cannot drift from the API again.

Every ```python block runs in a directory holding a copy of the curated registry (as the
checkout does), top-level ``await`` allowed (as in an asyncio REPL), against a scripted model on
loopback standing in for the LLM the block configures from the environment. Every command the
command-line reference names must exist.
"""

from __future__ import annotations

import ast
import asyncio
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.test_registry_support import curated_copy
from toolsmith.cli import app
from toolsmith.testing import ScriptedLLMServer

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README.read_text(), re.S | re.M)


def spec(name: str, param: str, returns: dict[str, Any], args: str, result: Any) -> dict[str, Any]:
    return {
        "spec": {
            "name": name,
            "description": f"The {name} tool.",
            "parameters": {
                "type": "object",
                "properties": {param: {"type": "string", "maxLength": 1000}},
                "required": [param],
                "additionalProperties": False,
            },
            "returns": returns,
            "examples": [{"args": {param: args}, "returns": result}],
        }
    }


MD_TO_CSV = """```python
def md_to_csv(table):
    rows = [line.strip().strip("|") for line in table.splitlines() if line.strip()]
    rows = [r for r in rows if not set(r.replace("|", "").strip()) <= set("-: ")]
    return "\\n".join(",".join(c.strip() for c in r.split("|")) for r in rows)
```"""
COUNT_WORDS = """```python
def count_words(text):
    return len(text.split())
```"""


@pytest.mark.docker
def test_python_blocks_run_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: Any
) -> None:
    """The library example: load, call and export a curated tool, then build with a model."""
    [code] = blocks("python")
    curated_copy(tmp_path / "registry")
    script = [
        {
            "json": spec(
                "md_to_csv",
                "table",
                {"type": "string"},
                "| a | b |\n|---|---|\n| 1 | 2 |",
                "a,b\n1,2",
            )
        },
        {"reply": MD_TO_CSV},
        {"json": spec("count_words", "text", {"type": "integer"}, "one two", 2)},
        {"reply": COUNT_WORDS},
    ]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TOOLSMITH_MUTANTS", "0")  # the mutation gate has tests of its own
    with ScriptedLLMServer({"steps": script}) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        monkeypatch.setenv("TOOLSMITH_MODEL", "scripted")
        namespace: dict[str, Any] = {}
        compiled = compile(code, "README.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        outcome = eval(compiled, namespace)  # a coroutine when the block awaits
        if asyncio.iscoroutine(outcome):
            asyncio.run(outcome)
        assert srv.remaining == 0
    assert namespace["result"].status == "published"
    assert namespace["tool"](text="three words here") == 3
    namespace["tool"].close()


def test_every_documented_command_exists() -> None:
    """Each `toolsmith ...` line of the command-line reference names real commands."""
    commands = set()
    for block in blocks("sh"):
        for line in block.splitlines():
            line = line.split("#")[0].strip()
            if not line.startswith("toolsmith "):
                continue
            words = shlex.split(line.split(" | ")[0])[1:]
            group = words[0]
            commands.add((group,) + ((words[1],) if len(words) > 1 and words[1].isalpha() else ()))
            for alt in line.split(" | ")[1:]:  # `registry list | search QUERY | show NAME`
                commands.add((group, alt.split()[0]))
    assert len(commands) > 20
    for words in sorted(commands):
        result = CliRunner().invoke(app, [*words, "--help"])
        if result.exit_code != 0 and len(words) == 2:  # `toolsmith run slugify`: an argument
            result = CliRunner().invoke(app, [words[0], "--help"])
        assert result.exit_code == 0, (words, result.output)
