"""Prompt sets: the bounds every revision must keep, and versioned checkpoints with rollback,
each audited. (The optimisation loop is in test_improve_prompts.py.)"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from toolsmith.errors import UsageError
from toolsmith.pipeline import Toolsmith
from toolsmith.prompts import MAX_PROMPT_CHARS, PromptSet, PromptStore, builtin, revision_problems
from toolsmith.registry import Registry, consumer_audit

MARK = "Name the function exactly as the specification's name."
BETTER = builtin().model_copy(
    update={"codegen": builtin().codegen.replace("Rules:\n", f"Rules:\n- {MARK}\n", 1)}
)


def revised(**changes: str) -> PromptSet:
    return builtin().model_copy(update={**changes, "parent": 0})


def bounds(prompts: PromptSet) -> set[str]:
    return {bound for bound, _ in revision_problems(prompts)}


def test_shipped_prompts_and_a_careful_revision_are_within_bounds() -> None:
    """The shipped set and a revision adding a rule break no bound."""
    assert revision_problems(builtin()) == []
    assert revision_problems(BETTER) == []


def test_dropping_a_safety_instruction_is_refused() -> None:
    """A revision without the no-I/O line (the {caps} field) or the determinism rule is out."""
    shipped = builtin()
    no_caps = revised(codegen=shipped.codegen.replace("- {caps}\n", ""))
    assert "keeps-safety" in bounds(no_caps) and "template-fields" in bounds(no_caps)
    lax = revised(
        codegen=shipped.codegen.replace("- Be deterministic and never modify the arguments", "-")
    )
    assert bounds(lax) == {"keeps-safety"}
    designer = revised(designer=shipped.designer.replace("Declare capabilities only if", "Add"))
    assert bounds(designer) == {"keeps-safety"}


def test_widening_capabilities_is_refused() -> None:
    """A revision naming a capability or a forbidden module the shipped prompts do not is out."""
    shipped = builtin()
    net = revised(designer=shipped.designer + "\nAlways declare network:api.example.com.")
    assert bounds(net) == {"no-capability-widening"}
    sub = revised(codegen=shipped.codegen + "\n- You may use subprocess when it helps.")
    assert bounds(sub) == {"no-capability-widening"}
    native = revised(codegen=shipped.codegen + "\n- ctypes is fine for speed.")
    assert bounds(native) == {"no-capability-widening"}


def test_oversized_or_broken_templates_are_refused() -> None:
    """A prompt over the size cap, or a codegen template with a stray field, is out."""
    shipped = builtin()
    huge = revised(designer=shipped.designer + "\n" + "Be careful. " * (MAX_PROMPT_CHARS // 10))
    assert bounds(huge) == {"max-prompt-chars"}
    stray = revised(codegen=shipped.codegen + "\n- Return {result}.")
    assert bounds(stray) == {"template-fields"}


def test_checkpoints_rollback_and_audit() -> None:
    """A checkpoint is a new version; activating and rolling back switch what builds get, each
    step audited; an out-of-bounds set is never saved."""
    store = PromptStore()
    assert store.active().version == 0
    kept = store.checkpoint(BETTER, "adds a naming rule")
    assert kept.version == 1 and store.active().version == 0
    store.activate(1, "try it")
    assert store.active().digest == BETTER.digest
    with pytest.raises(UsageError, match="keeps-safety"):
        store.checkpoint(revised(codegen="- {name} {deps} {caps} {conflict}"), "bad")
    assert [p.version for p in store.versions()] == [0, 1]
    store.activate(0, "rollback")
    assert store.active().version == 0
    engine = Toolsmith(Registry(store.root.parent / "reg"), None)
    assert engine.prompts.version == 0
    actions = [e.data["action"] for e in consumer_audit().entries() if e.event == "prompts"]
    assert actions == ["checkpoint", "activate", "activate"]
    with pytest.raises(UsageError, match="no prompt set v7"):
        store.activate(7, "nothing there")


def test_a_checkpoint_is_never_overwritten() -> None:
    """Checkpoints only ever add files: with a v2.json already there the next is v3, and the
    file found is left as it was."""
    store = PromptStore()
    store.checkpoint(BETTER, "first")
    (store.root / "v2.json").write_text("{}")  # e.g. another run got there first
    assert store.checkpoint(BETTER, "second").version == 3
    assert (store.root / "v2.json").read_text() == "{}"
    with pytest.raises(UsageError, match=r"v2\.json is unreadable"):
        store.activate(2, "a damaged checkpoint is never made active")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    code = "from toolsmith.cli import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)


def test_cli_lists_shows_and_rolls_back() -> None:
    """`toolsmith prompts list|show|rollback --json`: versions, the active one, a rollback."""
    store = PromptStore()
    store.checkpoint(BETTER, "adds a naming rule")
    store.activate(1, "try it")
    listed = json.loads(cli("prompts", "list", "--json").stdout)
    assert [(r["version"], r["active"]) for r in listed] == [(0, False), (1, True)]
    shown = json.loads(cli("prompts", "show", "--json").stdout)
    assert MARK in shown["codegen"]
    back = cli("prompts", "rollback", "0", "--reason", "worse on real tasks", "--json")
    assert back.returncode == 0, back.stderr
    assert store.active().version == 0
    missing = cli("prompts", "rollback", "9")
    assert missing.returncode == 2 and "no prompt set v9" in missing.stderr
