"""`toolsmith eval`: suites with hidden checks, runs, comparisons and calibration.

The end-to-end test runs three tasks of the packaged core suite against a SCRIPTED model: the
ScriptedLLMServer (a real loopback HTTP server speaking the OpenAI API) replays the fixed answers
below. They are honest fixtures written for this test, not a real model's output, and chosen to
show each outcome: one tool right at once, one fixed after a failing attempt, and one that passes
the tests it wrote for itself but not the task's hidden checks. The sandbox, the tests, the hidden
checks and the registry are real.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.test_improve_prompts import run_steps, suite_of
from toolsmith.audit import AuditLog
from toolsmith.cli import app
from toolsmith.errors import UsageError
from toolsmith.evaluation import (
    EvalRun,
    TaskResult,
    compare,
    hidden_test_files,
    load_run,
    load_suite,
    run_suite,
    save_run,
)
from toolsmith.llm import LLMConfig, OpenAILLM
from toolsmith.metacognition import Metacognition, calibrate
from toolsmith.pipeline import BuildOptions
from toolsmith.registry import Registry
from toolsmith.testing import ScriptedLLMServer


def test_core_suite_has_twenty_varied_tasks_with_hidden_checks() -> None:
    """The packaged suite loads, has at least 20 tasks, and each hidden check is a test file."""
    suite = load_suite("core")
    assert len(suite.tasks) >= 20
    assert len({tag for t in suite.tasks for tag in t.tags}) >= 8
    assert any(t.check.pytest for t in suite.tasks) and any(t.check.reference for t in suite.tasks)
    for task in suite.tasks:
        files, expected = hidden_test_files(task)
        compile(next(iter(files.values())), task.id, "exec")
        assert expected >= 4, task.id


def test_a_reference_must_define_the_named_tool(tmp_path: Path) -> None:
    """A suite whose reference defines another function is refused, naming the task."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\ntasks:\n- id: t\n  tool: f\n  task: do it\n"
        '  check: {reference: "def g(x):\\n    return x", inputs: [{x: 1}]}\n'
    )
    with pytest.raises(UsageError, match="defines no function f"):
        load_suite(bad)
    with pytest.raises(UsageError, match="no suite"):
        load_suite(tmp_path / "missing.yaml")


def test_select_refuses_unknown_task_ids() -> None:
    """--tasks with an id the suite lacks names it and lists the known ones."""
    with pytest.raises(UsageError, match="no task nope"):
        load_suite("core").select(["clamp", "nope"])


def test_calibration_brier_and_reliability_table() -> None:
    """Brier is the mean squared error of the probabilities; bins count and average them."""
    cal = calibrate([(0.9, True), (0.9, False), (0.1, False), (0.5, True)], bins=5)
    assert cal.brier == pytest.approx((0.01 + 0.81 + 0.01 + 0.25) / 4)
    by_low = {b.low: b for b in cal.bins}
    assert by_low[0.8].count == 2 and by_low[0.8].observed == 0.5
    assert by_low[0.0].count == 1 and by_low[0.0].observed == 0.0
    assert calibrate([]).brier is None


def _result(id: str, published: bool, hidden: str, p: float | None) -> TaskResult:
    return TaskResult(
        id=id,
        status="published" if published else "failed",
        published=published,
        hidden=hidden,  # type: ignore[arg-type]
        attempts=1,
        predicted=p,
    )


def test_compare_marks_fixed_and_broken_tasks() -> None:
    """Side by side, a task passing only in B is fixed, one passing only in A broke."""
    a = EvalRun(
        run_id="a",
        suite="s",
        model="m",
        started_at="now",
        results=[_result("x", True, "passed", 0.5), _result("y", False, "not_run", 0.5)],
    )
    b = a.model_copy(
        update={
            "run_id": "b",
            "results": [_result("x", True, "failed", 0.5), _result("y", True, "passed", 0.5)],
        }
    )
    assert {r.id: r.change for r in compare(a, b)} == {"x": "broke", "y": "fixed"}


def test_prediction_uses_the_prior_then_similar_builds(tmp_path: Path) -> None:
    """No history: the prior 0.5 and the caller's budget. After similar failures the estimate
    drops, the strategy turns careful (more attempts and examples), and the log verifies."""
    from toolsmith.pipeline import BuildResult, BuildStatus

    meta = Metacognition(tmp_path / "meta.jsonl")
    base = BuildOptions(max_attempts=4, max_examples=100, mutants=12)
    first = meta.predict("parse a date from a string", base)
    assert first.probability == 0.5 and first.history == 0
    assert first.strategy.name == "standard" and first.strategy.max_attempts == 4
    for _ in range(3):
        failed = BuildResult(build_id="b", status=BuildStatus.FAILED)
        meta.record(first, failed, "parse a date string in ISO form")
    meta.record(first, BuildResult(build_id="c", status=BuildStatus.PUBLISHED), "add two numbers")
    later = meta.predict("parse a date in ISO form", base)
    assert later.probability < 0.4 and later.similar[0].success is False
    assert later.strategy.name == "careful"
    assert later.strategy.max_attempts == 6 and later.strategy.max_examples == 200
    assert AuditLog(tmp_path / "meta.jsonl").verify().ok
    assert meta.calibration().count == 4


def test_saved_runs_load_by_id_and_path(tmp_path: Path) -> None:
    """A run saved under TOOLSMITH_HOME loads by its id; an unknown id is a UsageError."""
    run = EvalRun(run_id="r1", suite="s", model="m", started_at="now", results=[])
    path = save_run(run)
    assert load_run("r1") == run and load_run(str(path)) == run
    with pytest.raises(UsageError, match="no eval run"):
        load_run("r2")


CLAMP_SPEC = {
    "name": "clamp",
    "description": "Limit a number to the closed range [low, high].",
    "parameters": {
        "type": "object",
        "properties": {
            "value": {"type": "number", "minimum": -1e6, "maximum": 1e6},
            "low": {"type": "number", "minimum": -1e6, "maximum": 1e6},
            "high": {"type": "number", "minimum": -1e6, "maximum": 1e6},
        },
        "required": ["value", "low", "high"],
        "additionalProperties": False,
    },
    "returns": {"type": "number"},
    "raises": ["ValueError"],
    "examples": [
        {"args": {"value": 5, "low": 0, "high": 10}, "returns": 5},
        {"args": {"value": -1, "low": 0, "high": 10}, "returns": 0},
        {"args": {"value": 11, "low": 0, "high": 10}, "returns": 10},
        {"args": {"value": 1, "low": 2, "high": 0}, "raises": "ValueError"},
    ],
    "tags": ["numbers"],
}
CLAMP_CODE = """```python
def clamp(value, low, high):
    if low > high:
        raise ValueError("low is greater than high")
    return min(max(value, low), high)
```"""
VOWELS_SPEC = {
    "name": "count_vowels",
    "description": "Count the vowels a, e, i, o, u (either case) in a text.",
    "parameters": {
        "type": "object",
        "properties": {"text": {"type": "string", "maxLength": 200}},
        "required": ["text"],
        "additionalProperties": False,
    },
    "returns": {"type": "integer", "minimum": 0},
    "raises": [],
    "examples": [
        {"args": {"text": "hello"}, "returns": 2},
        {"args": {"text": "AEIOU"}, "returns": 5},
        {"args": {"text": ""}, "returns": 0},
    ],
    "tags": ["text"],
}
LEAP_SPEC = {
    "name": "is_leap_year",
    "description": "Whether a year is a leap year in the Gregorian calendar.",
    "parameters": {
        "type": "object",
        "properties": {"year": {"type": "integer", "minimum": 1, "maximum": 9999}},
        "required": ["year"],
        "additionalProperties": False,
    },
    "returns": {"type": "boolean"},
    "raises": [],
    "examples": [
        {"args": {"year": 2024}, "returns": True},
        {"args": {"year": 2023}, "returns": False},
        {"args": {"year": 2000}, "returns": True},
    ],
    "tags": ["dates"],
}
# The scripted model's answers, in the order the three builds ask for them.
SCRIPT: dict[str, Any] = {
    "model": "scripted-eval-model",
    "steps": [
        {"label": "design clamp", "when": "Task:", "json": {"spec": CLAMP_SPEC}},
        {"label": "code clamp", "when": "Specification:", "reply": CLAMP_CODE},
        {"label": "design count_vowels", "when": "Task:", "json": {"spec": VOWELS_SPEC}},
        {
            "label": "code count_vowels, lowercase only (fails the AEIOU example)",
            "when": "Specification:",
            "reply": "```python\ndef count_vowels(text):\n"
            "    return sum(1 for c in text if c in 'aeiou')\n```",
        },
        {
            "label": "fix count_vowels",
            "when": "It failed in the sandbox",
            "reply": "```python\ndef count_vowels(text):\n"
            "    return sum(1 for c in text if c in 'aeiouAEIOU')\n```",
        },
        {"label": "design is_leap_year", "when": "Task:", "json": {"spec": LEAP_SPEC}},
        {
            "label": "code is_leap_year, forgetting the century rule its own examples miss",
            "when": "Specification:",
            "reply": "```python\ndef is_leap_year(year):\n    return year % 4 == 0\n```",
        },
    ],
}


@pytest.mark.docker
def test_scripted_eval_reports_each_outcome_and_compares(sandbox: Any, tmp_path: Path) -> None:
    """With the SCRIPTED model above: clamp passes at once, count_vowels after a fix, and
    is_leap_year is published but fails the hidden checks (1900 is not a leap year). Each build
    predicted its success first and recorded it; runs save, load and compare from the CLI."""
    suite = load_suite("core").select(["clamp", "count_vowels", "is_leap_year"])
    meta = Metacognition(tmp_path / "meta.jsonl")
    registry = Registry(tmp_path / "registry")
    with ScriptedLLMServer(SCRIPT) as server:
        llm = OpenAILLM(LLMConfig(base_url=server.base_url, model="scripted", max_retries=0))
        run = run_suite(
            suite,
            llm,
            # No lessons: a reflection would be one more scripted answer; the lessons memory's
            # own tests cover it.
            options=BuildOptions(max_attempts=3, max_examples=20, lessons=False),
            sandbox=sandbox,
            registry=registry,
            metacognition=meta,
        )
        assert server.remaining == 0, run.results
    by_id = {r.id: r for r in run.results}
    assert [r.id for r in run.results] == ["clamp", "count_vowels", "is_leap_year"]
    assert by_id["clamp"].published and by_id["clamp"].hidden == "passed", by_id["clamp"]
    assert by_id["clamp"].attempts == 1
    assert by_id["count_vowels"].hidden == "passed" and by_id["count_vowels"].attempts == 2
    leap = by_id["is_leap_year"]
    assert leap.published and leap.hidden == "failed" and "1900" in leap.hidden_summary
    totals = run.totals
    assert (totals.tasks, totals.published, totals.hidden_passed) == (3, 3, 2)
    assert totals.tokens > 0 and all(r.tokens > 0 for r in run.results)
    # Metacognition: the first build had no history (the prior), each recorded its outcome, and
    # the published tool's signed provenance holds its prediction and strategy.
    assert by_id["clamp"].predicted == 0.5
    assert all(r.predicted is not None and r.strategy for r in run.results)
    assert [p.success for p in meta.history()] == [True, True, True]
    assert AuditLog(tmp_path / "meta.jsonl").verify().ok
    provenance = registry.resolve("clamp@*").provenance
    assert provenance.extra["prediction"]["probability"] == 0.5
    assert provenance.extra["prediction"]["strategy"]["name"] == "standard"
    cal = run.calibration
    assert cal.count == 3 and cal.brier is not None and 0 < cal.brier < 1

    first = save_run(run, tmp_path / "a.json")
    better = run.model_copy(
        update={
            "run_id": "b",
            "results": [*run.results[:2], leap.model_copy(update={"hidden": "passed"})],
        }
    )
    second = save_run(better, tmp_path / "b.json")
    cli = CliRunner().invoke(app, ["eval", "--compare", str(first), str(second), "--json"])
    assert cli.exit_code == 0, cli.output
    data = json.loads(cli.stdout)
    assert data["a"]["totals"]["hidden_passed"] == 2 and data["b"]["totals"]["hidden_passed"] == 3
    shown = CliRunner().invoke(app, ["eval", "--compare", str(first), str(second)])
    assert shown.exit_code == 0 and "fixed" in shown.output


@pytest.mark.docker
def test_cli_eval_runs_a_task_with_a_scripted_model(sandbox_image: Any, tmp_path: Path) -> None:
    """`toolsmith eval core --tasks clamp` against the SCRIPTED model (the clamp answers above):
    the JSON names the hidden checks' verdict, the prediction, and the recorded history."""
    steps = SCRIPT["steps"][:2]
    with ScriptedLLMServer({"model": "scripted", "steps": steps}) as server:
        out = tmp_path / "run.json"
        cli = CliRunner().invoke(
            app,
            [
                "eval",
                "core",
                "--tasks",
                "clamp",
                "--base-url",
                server.base_url,
                "--model",
                "scripted",
                "--api-key",
                "unused",
                "--max-examples",
                "20",
                "--out",
                str(out),
                "--json",
            ],
        )
    assert cli.exit_code == 0, cli.output
    data = json.loads(cli.stdout)
    [task] = data["results"]
    assert task["id"] == "clamp" and task["hidden"] == "passed" and task["predicted"] == 0.5
    assert data["history_calibration"]["count"] == 1
    assert load_run(out).results[0].hidden == "passed"


def test_cli_eval_takes_the_build_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without flags, `toolsmith eval` takes $TOOLSMITH_MAX_ATTEMPTS and $TOOLSMITH_MAX_EXAMPLES
    like `build` (the run records them); the one-attempt script would run dry under the old
    fixed 4 attempts. The builds fail before the sandbox (a wrongly named function)."""
    suite = suite_of("a")
    path = tmp_path / "tiny.yaml"
    path.write_text(json.dumps(suite.model_dump(mode="json")))
    monkeypatch.setenv("TOOLSMITH_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("TOOLSMITH_MAX_EXAMPLES", "7")
    out = tmp_path / "run.json"
    with ScriptedLLMServer({"model": "scripted", "steps": run_steps(suite, set())}) as srv:
        args = ["eval", str(path), "--base-url", srv.base_url, "--model", "scripted"]
        cli = CliRunner().invoke(app, [*args, "--no-adapt", "--out", str(out), "--json"])
        assert srv.remaining == 0
    assert cli.exit_code == 0, cli.output
    run = load_run(out)
    assert (run.options["max_attempts"], run.options["max_examples"]) == (1, 7)
    assert run.results[0].status != "published"
