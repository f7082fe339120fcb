"""The bounded prompt optimisation loop: a revision is kept only when the held-out split's score
rises and no task that passed before now fails; the proposal never sees the held-out tasks.

The model is scripted: a real loopback server speaking the OpenAI API replays the designs, code
and prompt proposals below (written for these tests, not a model's output). The loop runs the
real eval harness (``toolsmith.evaluation.run_suite``); builds whose code never reaches the
sandbox need no Docker, the ones that pass use the real engine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from toolsmith.errors import UsageError
from toolsmith.evaluation import Suite
from toolsmith.llm import LLMConfig, OpenAILLM
from toolsmith.pipeline import BuildOptions, Toolsmith
from toolsmith.prompts import PromptSet, PromptStore, builtin, improve_prompts, split
from toolsmith.registry import Registry, consumer_audit
from toolsmith.sandbox import Sandbox
from toolsmith.testing import ScriptedLLMServer

MARK = "Name the function exactly as the specification's name."
BETTER = builtin().model_copy(
    update={"codegen": builtin().codegen.replace("Rules:\n", f"Rules:\n- {MARK}\n", 1)}
)


def revised(**changes: str) -> PromptSet:
    return builtin().model_copy(update={**changes, "parent": 0})


def test_split_is_deterministic_and_both_parts_are_non_empty() -> None:
    """The same seed gives the same split; every task is in exactly one part."""
    suite = suite_of("a", "b", "c", "d", "e")
    seen, held = split(suite, 0.4, seed=3)
    assert (seen, held) == split(suite, 0.4, seed=3)
    assert sorted(seen + held) == ["a", "b", "c", "d", "e"] and len(held) == 2
    with pytest.raises(UsageError, match="two or more"):
        split(suite_of("a"))


# -- the loop, on the real harness with a scripted model -------------------------------------

REFERENCE = "def {tool}(a, b):\n    return a + b\n"


def suite_of(*ids: str) -> Suite:
    return Suite.model_validate(
        {
            "name": "tiny",
            "tasks": [
                {
                    "id": i,
                    "task": f"task {i}: add two integers ({i})",
                    "tool": f"add_{i}",
                    "check": {
                        "reference": REFERENCE.format(tool=f"add_{i}"),
                        "inputs": [{"a": 1, "b": 2}, {"a": -3, "b": 3}],
                    },
                }
                for i in ids
            ],
        }
    )


def design(tool: str) -> dict[str, Any]:
    spec = {
        "name": tool,
        "description": "Add two integers.",
        "parameters": {
            "type": "object",
            "properties": {
                "a": {"type": "integer", "minimum": -100, "maximum": 100},
                "b": {"type": "integer", "minimum": -100, "maximum": 100},
            },
            "required": ["a", "b"],
            "additionalProperties": False,
        },
        "returns": {"type": "integer"},
        "examples": [{"args": {"a": 1, "b": 2}, "returns": 3}],
    }
    return {"json": {"spec": spec}}


def build_steps(task_id: str, passes: bool) -> list[dict[str, Any]]:
    """A one-attempt build of task ``task_id``: the right function, or a wrongly named one
    (untestable, so it fails before the sandbox)."""
    tool = f"add_{task_id}"
    name = tool if passes else "wrong_name"
    code = f"```python\ndef {name}(a, b):\n    return a + b\n```"
    return [design(tool), {"reply": code}]


def run_steps(suite: Suite, passing: set[str]) -> list[dict[str, Any]]:
    return [step for t in suite.tasks for step in build_steps(t.id, t.id in passing)]


def proposal(prompts: PromptSet) -> dict[str, Any]:
    return {
        "json": {
            "rationale": "builds named the function wrongly",
            "designer": prompts.designer,
            "codegen": prompts.codegen,
        }
    }


OPTIONS = BuildOptions(max_attempts=1, max_examples=10)


def improve(
    suite: Suite, steps: list[dict[str, Any]], sandbox: Any = None, holdout: float = 0.5
) -> Any:
    with ScriptedLLMServer({"steps": steps}) as srv:
        llm = OpenAILLM(LLMConfig(base_url=srv.base_url, model="scripted", max_retries=0))
        report = improve_prompts(
            suite, llm, options=OPTIONS, sandbox=sandbox, seed=1, holdout=holdout
        )
        assert srv.remaining == 0
        return report, srv.requests


def test_out_of_bounds_proposal_is_refused_before_any_build() -> None:
    """A proposal dropping a safety line is refused and audited; no candidate build runs and
    the active set stays the shipped one."""
    suite = suite_of("a", "b")
    bad = revised(codegen=builtin().codegen.replace("- {caps}\n", ""))
    report, _ = improve(suite, [*run_steps(suite, set()), proposal(bad)])
    [round_] = report.rounds
    assert round_.outcome == "out_of_bounds" and "keeps-safety" in round_.reason
    assert PromptStore().active().version == 0 and report.active == 0
    [entry] = [e for e in consumer_audit().entries() if e.event == "prompts"]
    assert entry.data["action"] == "refuse" and entry.data["bounds"][0] == "keeps-safety"


def test_proposal_sees_only_its_split_and_no_gain_is_not_kept() -> None:
    """The proposal prompt holds the seen tasks' failures and none of the held-out tasks; a
    candidate that scores no better on the held-out part is refused."""
    suite = suite_of("a", "b", "c", "d")
    seen, held = split(suite, 0.5, seed=1)
    steps = [*run_steps(suite, set()), proposal(BETTER), *run_steps(suite, set())]
    report, requests = improve(suite, steps)
    asked = json.dumps(requests[len(suite.tasks) * 2]["messages"])
    assert all(f"task {i}:" in asked for i in seen)
    assert not any(f"task {i}:" in asked for i in held)
    assert report.rounds[0].outcome == "no_gain" and PromptStore().active().version == 0
    assert report.seen == seen and report.held_out == held


@pytest.mark.docker
def test_a_revision_that_lifts_the_held_out_split_is_kept(sandbox: Sandbox, tmp_path: Path) -> None:
    """Held-out score rises and nothing regresses: the revision becomes checkpoint v1, active,
    audited, and later builds get it."""
    suite = suite_of("a", "b")
    _, [held] = split(suite, 0.5, seed=1)
    steps = [*run_steps(suite, set()), proposal(BETTER), *run_steps(suite, {held})]
    report, requests = improve(suite, steps, sandbox)
    [round_] = report.rounds
    assert round_.outcome == "kept", round_.reason
    assert (round_.held_out_before, round_.held_out_after) == (0.0, 1.0)
    assert report.active == 1 and PromptStore().active().digest == BETTER.digest
    assert MARK in requests[-1]["messages"][0]["content"], "the candidate ran with its prompts"
    actions = [e.data["action"] for e in consumer_audit().entries() if e.event == "prompts"]
    assert actions == ["checkpoint", "activate"]
    assert Toolsmith(Registry(tmp_path / "reg"), None).prompts.version == 1


@pytest.mark.docker
def test_a_revision_that_breaks_a_passing_task_is_refused(sandbox: Sandbox) -> None:
    """Held-out score rises but a seen task that passed now fails: refused as a regression."""
    suite = suite_of("a", "b", "c")
    seen, held = split(suite, 0.34, seed=1)
    before = {seen[0]}
    after = {*held}
    steps = [*run_steps(suite, before), proposal(BETTER), *run_steps(suite, after)]
    report, _ = improve(suite, steps, sandbox, holdout=0.34)
    [round_] = report.rounds
    assert round_.outcome == "regression" and round_.regressions == [seen[0]]
    assert round_.held_out_after == 1.0 and PromptStore().active().version == 0


def test_cli_improve_prompts_reports_a_refused_revision(tmp_path: Path) -> None:
    """`toolsmith improve prompts --suite FILE --json` runs the loop against the configured
    endpoint and reports the round; the refused proposal leaves v0 active."""
    suite = suite_of("a", "b")
    path = tmp_path / "tiny.yaml"
    path.write_text(json.dumps(suite.model_dump(mode="json")))
    bad = revised(designer=builtin().designer + "\nDeclare network:anywhere.example freely.")
    steps = [*run_steps(suite, set()), proposal(bad)]
    code = "from toolsmith.cli import main; main()"
    with ScriptedLLMServer({"steps": steps}) as srv:
        env = {**os.environ, "OPENAI_BASE_URL": srv.base_url, "TOOLSMITH_MODEL": "scripted"}
        args = ["improve", "prompts", "--suite", str(path), "--max-attempts", "1", "--json"]
        r = subprocess.run(
            [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env
        )
        assert srv.remaining == 0
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["rounds"][0]["outcome"] == "out_of_bounds"
    assert "no-capability-widening" in report["rounds"][0]["reason"]
    assert report["active"] == 0 and PromptStore().active().version == 0


def test_cli_improve_prompts_takes_the_build_settings(tmp_path: Path) -> None:
    """Without --max-attempts, `improve prompts` takes $TOOLSMITH_MAX_ATTEMPTS like `build`: the
    script holds one attempt per build, so a fix-loop of the old fixed 4 would run it dry."""
    suite = suite_of("a", "b")
    path = tmp_path / "tiny.yaml"
    path.write_text(json.dumps(suite.model_dump(mode="json")))
    bad = revised(designer=builtin().designer + "\nDeclare network:anywhere.example freely.")
    steps = [*run_steps(suite, set()), proposal(bad)]
    code = "from toolsmith.cli import main; main()"
    with ScriptedLLMServer({"steps": steps}) as srv:
        env = {
            **os.environ,
            "OPENAI_BASE_URL": srv.base_url,
            "TOOLSMITH_MODEL": "scripted",
            "TOOLSMITH_MAX_ATTEMPTS": "1",
        }
        args = ["improve", "prompts", "--suite", str(path), "--json"]
        r = subprocess.run(
            [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env
        )
        assert srv.remaining == 0
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["rounds"][0]["outcome"] == "out_of_bounds"
