"""The mutation gate: mutants of the candidate run against its tests in the sandbox, survivors go
back to the designer (a scripted model here: a real loopback server speaking the OpenAI API with
canned answers), and the score is signed into the test report and checked against the policy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from toolsmith.designer import strengthen
from toolsmith.errors import LLMResponseError, PolicyError, UsageError
from toolsmith.llm import LLMConfig, OpenAILLM
from toolsmith.mutation import differences, generate_mutants, operator_names, select
from toolsmith.pipeline import AttemptVerdict, BuildOptions, BuildStatus, Toolsmith
from toolsmith.policy import CapabilityPolicy
from toolsmith.registry import Registry
from toolsmith.report import MutantResult, MutantStatus, MutationReport, TestCase, TestReport
from toolsmith.sandbox import Sandbox, SandboxBackend, SandboxJob
from toolsmith.spec import ToolSpec
from toolsmith.testing import ScriptedLLMServer

CLAMP = """\
def clamp(value, low, high):
    \"\"\"value limited to [low, high].\"\"\"
    if low > high:
        raise ValueError(f"low {low} is above high {high}")
    if value < low:
        return low
    if value > high:
        return high
    return value
"""
WEAK = {
    "name": "clamp",
    "description": "Limit an integer to the range [low, high].",
    "parameters": {
        "type": "object",
        "properties": {
            "value": {"type": "integer", "minimum": -1000, "maximum": 1000},
            "low": {"type": "integer", "minimum": -1000, "maximum": 1000},
            "high": {"type": "integer", "minimum": -1000, "maximum": 1000},
        },
        "required": ["value", "low", "high"],
        "additionalProperties": False,
    },
    "returns": {"type": "integer"},
    "raises": ["ValueError"],
    "examples": [{"args": {"value": 5, "low": 0, "high": 10}, "returns": 5}],
}
STRONGER_EXAMPLES = [
    {"args": {"value": -3, "low": 0, "high": 10}, "returns": 0},
    {"args": {"value": 15, "low": 0, "high": 10}, "returns": 10},
    {"args": {"value": 1, "low": 2, "high": 1}, "raises": "ValueError"},
    {"args": {"value": 5, "low": 3, "high": 3}, "returns": 3},
]
WITHIN = {
    "name": "within_bounds",
    "source": "def check(args, result):\n"
    "    assert args['low'] <= result <= args['high']\n"
    "    if args['low'] <= args['value'] <= args['high']:\n"
    "        assert result == args['value']\n",
}


def test_mutants_cover_mutmut_operators_and_ours_and_all_compile() -> None:
    mutants = generate_mutants(CLAMP)
    operators = {m.operator for m in mutants}
    assert {"swap_op", "forced_branch", "return_none"} <= operators
    assert {"forced_branch", "return_none", "statement_deletion", "number", "string"} <= set(
        operator_names()
    )
    for m in mutants:
        compile(m.code, m.id, "exec")
        assert m.code != CLAMP and m.diff.startswith("--- candidate")
    assert len({m.code for m in mutants}) == len(mutants)
    # The message of a raise is not behaviour under the contract: never mutated.
    assert not [m for m in mutants if "low {low} is above" not in m.code]
    assert any("if True:" in m.code for m in mutants)
    assert any("value <= low" in m.code for m in mutants)


def test_selection_is_deterministic_and_spread_over_operators() -> None:
    mutants = generate_mutants(CLAMP)
    chosen = select(mutants, 6, CLAMP)
    assert chosen == select(mutants, 6, CLAMP) and len(chosen) == 6
    assert len({m.operator for m in chosen}) >= 3
    assert select(mutants, 1000, CLAMP) == mutants


def test_unparsable_code_has_no_mutants() -> None:
    assert generate_mutants("def broken(:\n") == []


def test_differences_are_read_from_the_differential_failures() -> None:
    doc = {"args": {"value": 1}, "candidate": {"returned": 1}, "mutant": {"raised": "KeyError"}}
    failure = "E   AssertionError: TOOLSMITH-DIFFERS " + json.dumps(doc) + "\nmore"
    report = TestReport(
        tests=[
            TestCase(nodeid="test_differs.py::test_differs_m3", outcome="failed", failure=failure),
            TestCase(nodeid="test_differs.py::test_differs_m4", outcome="passed"),
        ],
        expected=2,
        collected=2,
    )
    assert differences(report) == {"m3": doc}


def test_score_counts_equivalent_mutants_out() -> None:
    def result(i: int, status: MutantStatus) -> MutantResult:
        return MutantResult(id=f"m{i}", operator="number", line=1, diff="", status=status)

    report = MutationReport(
        operators=["number"],
        generated=5,
        budget_mutants=4,
        budget_time_s=60,
        mutants=[
            result(1, MutantStatus.KILLED),
            result(2, MutantStatus.KILLED),
            result(3, MutantStatus.SURVIVED),
            result(4, MutantStatus.EQUIVALENT),
        ],
    )
    assert report.score == pytest.approx(2 / 3)
    assert "1 survived, 1 equivalent of 4 run" in report.summary()
    assert (
        MutationReport(operators=[], generated=0, budget_mutants=0, budget_time_s=1).score is None
    )


def test_policy_tests_section_is_checked() -> None:
    assert CapabilityPolicy.from_toml("").tests.min_mutation_score is None
    assert (
        CapabilityPolicy.from_toml("[tests]\nmin_mutation_score = 0.8\n").tests.min_mutation_score
        == 0.8
    )
    with pytest.raises(PolicyError, match=r"tests.min_mutation_score: .*less than or equal to 1"):
        CapabilityPolicy.from_toml("[tests]\nmin_mutation_score = 80\n")
    with pytest.raises(PolicyError, match=r"tests.min_score: Extra inputs"):
        CapabilityPolicy.from_toml("[tests]\nmin_score = 0.8\n")


def test_mutant_budget_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """$TOOLSMITH_MUTANTS sets the default budget; a bad value names the variable."""
    monkeypatch.setenv("TOOLSMITH_MUTANTS", "7")
    assert BuildOptions().mutants == 7
    monkeypatch.delenv("TOOLSMITH_MUTANTS")
    assert BuildOptions().mutants == 12
    monkeypatch.setenv("TOOLSMITH_MUTANTS", "lots")
    with pytest.raises(UsageError, match=r"mutants \(from \$TOOLSMITH_MUTANTS\) is 'lots'"):
        BuildOptions()


def survivor(mutant_id: str) -> MutantResult:
    return MutantResult(
        id=mutant_id,
        operator="swap_op",
        line=5,
        diff="-    if value < low:\n+    if value <= low:\n",
        status=MutantStatus.SURVIVED,
    )


def test_designer_marks_an_equivalent_mutant_and_a_wrong_answer_is_sent_back() -> None:
    """The scripted model first names a mutant that did not survive, is told so, then marks the
    survivor equivalent with a reason and adds an example."""
    spec = ToolSpec.parse(WEAK)
    script = {
        "steps": [
            {
                "label": "names an unknown mutant",
                "when": "Surviving mutants:",
                "json": {"equivalent": [{"mutant": "m9", "reason": "it is the same thing"}]},
            },
            {
                "label": "corrected",
                "when": "invalid",
                "json": {
                    "examples": STRONGER_EXAMPLES[:1],
                    "equivalent": [
                        {"mutant": "m2", "reason": "at value == low both branches return low"}
                    ],
                },
            },
        ]
    }
    with ScriptedLLMServer(script) as server:
        llm = OpenAILLM(LLMConfig(base_url=server.base_url, model="scripted"))
        answer = strengthen(spec, [survivor("m2")], llm, task="clamp an integer")
        assert server.remaining == 0
        first_prompt = server.requests[0]["messages"][-1]["content"]
    assert "## m2 (swap_op, line 5)" in first_prompt and "value <= low" in first_prompt
    assert [e.mutant for e in answer.equivalent] == ["m2"]
    stronger = answer.applied_to(spec)
    assert len(stronger.examples) == 2 and stronger.examples[1].args["value"] == -3


def test_designer_answer_that_does_not_fit_the_spec_is_refused() -> None:
    spec = ToolSpec.parse(WEAK)
    bad = {"examples": [{"args": {"value": "x", "low": 0, "high": 1}, "returns": 0}]}
    with ScriptedLLMServer({"steps": [{"json": bad, "times": 3}]}) as server:
        llm = OpenAILLM(LLMConfig(base_url=server.base_url, model="scripted", max_retries=0))
        with pytest.raises(LLMResponseError, match="Strengthening"):
            strengthen(spec, [survivor("m2")], llm)


def registry_json(registry: Path, *args: str) -> Any:
    from typer.testing import CliRunner

    from toolsmith.cli import app

    result = CliRunner().invoke(app, [*args, "--registry", str(registry), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.mark.docker
def test_survivors_go_to_the_designer_whose_examples_kill_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox
) -> None:
    """A designed spec with one example lets mutants survive; the scripted designer answers with
    examples and a property, the candidate passes them, the survivors run again and die. The
    signed report carries the score and `registry show --json` shows it."""
    monkeypatch.setenv("TOOLSMITH_HOME", str(tmp_path / "home"))
    fence = "```python\n" + CLAMP + "```"
    script = {
        "steps": [
            {"label": "design", "when": "Task:", "json": {"spec": WEAK}},
            {"label": "code", "when": "Specification", "reply": fence},
            {
                "label": "strengthen",
                "when": "Surviving mutants:",
                "json": {"examples": STRONGER_EXAMPLES, "properties": [WITHIN]},
            },
        ]
    }
    registry = tmp_path / "registry"
    with ScriptedLLMServer(script) as server:
        llm = OpenAILLM(LLMConfig(base_url=server.base_url, model="scripted"))
        ts = Toolsmith(Registry(registry), llm, sandbox)
        options = BuildOptions(mutants=40, mutation_rounds=1, max_examples=30, force=True)
        result = ts.build("clamp an integer to a range", options)
        assert server.remaining == 0, "the designer was never asked about survivors"
        prompt = server.requests[2]["messages"][-1]["content"]
    assert result.status == BuildStatus.PUBLISHED, result.attempts
    assert result.report is not None and result.report.mutation is not None
    mutation = result.report.mutation
    assert mutation.rounds == 1 and mutation.generated >= len(mutation.mutants) > 10
    assert result.spec is not None and len(result.spec.examples) == 5
    assert [p.name for p in result.spec.properties] == ["within_bounds"]
    assert "## m" in prompt and "@@" in prompt and "On args {" in prompt
    assert mutation.score is not None and mutation.score >= 0.8
    # Left: `value <= low` for `value < low` and the like, equivalent, with no telling input.
    assert all(m.distinguishing_input is None for m in mutation.survivors)
    shown = registry_json(registry, "registry", "show", "clamp")
    assert shown["mutation"]["score"] == mutation.score
    assert shown["mutation"]["killed"] == mutation.killed
    assert len(shown["mutation"]["mutants"]) == len(mutation.mutants)
    (counts,) = shown["accepted_inputs"].values()
    assert counts["inputs"] >= 30 and 0 < counts["accepted"] <= counts["inputs"]


@pytest.mark.docker
def test_policy_minimum_refuses_a_weakly_tested_tool(tmp_path: Path, sandbox: Sandbox) -> None:
    """A caller's spec is not sent to the designer: its survivors stand, with the inputs that
    tell them apart, and a policy asking for a score of 1.0 refuses the build."""
    policy = CapabilityPolicy.from_toml("[tests]\nmin_mutation_score = 1.0\n")
    ts = Toolsmith(Registry(tmp_path / "registry"), None, sandbox, policy=policy)
    result = ts.build_from_spec(
        ToolSpec.parse(WEAK), CLAMP, BuildOptions(mutants=40, max_examples=30)
    )
    assert result.status == BuildStatus.FAILED
    last = result.attempts[-1]
    assert last.verdict == AttemptVerdict.POLICY
    assert (
        "[tests.min_mutation_score]" in last.failure and "below the required 100%" in last.failure
    )
    assert result.report is not None and result.report.mutation is not None
    survivors = result.report.mutation.survivors
    assert survivors and result.report.mutation.rounds == 0
    told = [m for m in survivors if m.distinguishing_input is not None]
    assert told, "no survivor came with an input telling it from the candidate"
    assert all(
        (m.difference or "").startswith("candidate r") and ", mutant r" in (m.difference or "")
        for m in told
    )


@pytest.mark.docker
def test_variants_of_one_job_are_judged_apart(sandbox: Sandbox) -> None:
    """One job runs the collected tests against each variant in a fresh worker: a right one
    passes, and a wrong one, one that hangs and one that exits at import are each caught on
    their own while the next variant still runs."""
    from toolsmith.mutation import MUTANT_CALL_TIMEOUT_S
    from toolsmith.sandbox import Limits, SandboxJob
    from toolsmith.testgen import generate_tests

    spec = ToolSpec.parse(WEAK)
    suite = generate_tests(spec, max_examples=20)
    variants = {
        "hang": CLAMP.replace('    """value limited', '    while True:\n        pass\n    """x'),
        "exits": "import os\nos._exit(0)\n" + CLAMP,
        "wrong": CLAMP.replace("return value", "return value + 1"),
        "right": CLAMP.replace("return value", "return int(value)"),
    }
    job = SandboxJob(
        tool_name="clamp",
        code=CLAMP,
        test_files=suite.files,
        expected_tests=suite.expected,
        variants=variants,
        limits=Limits(call_timeout_s=MUTANT_CALL_TIMEOUT_S, timeout_s=60),
    )
    report = sandbox.run(job)
    assert report.passed, report.failure_text()
    results = {v.id: v for v in report.variants or []}
    assert list(results) == list(variants)
    assert results["right"].passed(suite.expected)
    for name in ("hang", "exits", "wrong"):
        assert results[name].finished and not results[name].passed(suite.expected), name
        assert results[name].failed is not None


# Right on the weak spec's one example, wrong below the range: a wrong tool the weak tests pass.
CLAMP_NO_FLOOR = CLAMP.replace("        return low\n", "        return value\n")


@pytest.mark.docker
def test_new_examples_the_candidate_fails_send_it_back_to_the_fix_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox
) -> None:
    """The scripted designer answers survivors with examples; the candidate fails one of them,
    so the attempt fails with that test's failure, the code model fixes it against the stronger
    spec, and the fixed tool is published with the designer's examples in its spec."""
    monkeypatch.setenv("TOOLSMITH_HOME", str(tmp_path / "home"))
    script = {
        "steps": [
            {"label": "design", "when": "Task:", "json": {"spec": WEAK}},
            {"label": "code", "when": "Specification", "reply": f"```python\n{CLAMP_NO_FLOOR}```"},
            {
                "label": "strengthen",
                "when": "Surviving mutants:",
                "json": {"examples": STRONGER_EXAMPLES},
            },
            {"label": "fix", "when": "It failed in the sandbox", "reply": f"```python\n{CLAMP}```"},
        ]
    }
    with ScriptedLLMServer(script) as server:
        llm = OpenAILLM(LLMConfig(base_url=server.base_url, model="scripted"))
        ts = Toolsmith(Registry(tmp_path / "registry"), llm, sandbox)
        options = BuildOptions(mutants=12, mutation_rounds=1, max_examples=30, force=True)
        result = ts.build("clamp an integer to a range", options)
        assert server.remaining == 0
        fix_prompt = server.requests[3]["messages"][-1]["content"]
    assert [a.verdict for a in result.attempts] == [AttemptVerdict.FAILED, AttemptVerdict.PASSED]
    assert "test_example_1" in result.attempts[0].failure
    assert '"value": -3' in fix_prompt or "'value': -3" in fix_prompt
    assert result.status == BuildStatus.PUBLISHED and result.code == CLAMP
    assert result.spec is not None and len(result.spec.examples) == 1 + len(STRONGER_EXAMPLES)
    assert result.report is not None and result.report.mutation is not None
    assert result.report.mutation.rounds == 1


def test_consumer_policy_refuses_a_tool_below_its_minimum_score(tmp_path: Path) -> None:
    """The signed score is checked again at load against the consumer's own policy: the curated
    tool with the lowest score loads under a minimum equal to it and is refused above it."""
    from tests.test_registry_support import curated_copy

    copy = tmp_path / "registry"
    curated_copy(copy)
    registry = Registry(copy)
    scores = {}
    for record in registry.list():
        mutation = registry.resolve(record.name).report.mutation
        assert mutation is not None and mutation.score is not None, record.name
        scores[record.name] = mutation.score
    name, score = min(scores.items(), key=lambda item: item[1])
    assert score < 1, "every curated tool killed all twelve mutants: no equivalent drawn at all?"

    def policy(minimum: float) -> CapabilityPolicy:
        return CapabilityPolicy.from_toml(f"[tests]\nmin_mutation_score = {minimum}\n", source="p")

    assert Registry(copy, policy=policy(score)).resolve(name).name == name
    from typer.testing import CliRunner

    from toolsmith.cli import app

    shown = CliRunner().invoke(app, ["registry", "show", name, "--registry", str(copy)])
    assert shown.exit_code == 0, shown.output
    assert f"mutation score {score:.0%}" in shown.output and "  survived   m" in shown.output
    assert "inputs     test_generated_inputs: " in shown.output and "% accepted" in shown.output
    with pytest.raises(PolicyError, match=rf"{name}@.*'s signed mutation score is .*your policy p"):
        Registry(copy, policy=policy(1.0)).resolve(name)


def test_build_output_shows_the_score_and_the_share_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io

    from rich.console import Console

    import toolsmith.cli.build as build_cli
    from toolsmith.pipeline import BuildResult

    report = TestReport(
        tests=[
            TestCase(
                nodeid="test_tool.py::test_generated_inputs",
                outcome="passed",
                inputs=120,
                accepted=2,
            )
        ],
        expected=1,
        collected=1,
        mutation=MutationReport(
            operators=["number"],
            generated=9,
            budget_mutants=12,
            budget_time_s=60,
            mutants=[survivor("m4"), survivor("m5").model_copy(update={"status": "killed"})],
        ),
    )
    out = io.StringIO()
    monkeypatch.setattr(build_cli, "console", Console(file=out, width=200))
    build_cli.render_result(
        BuildResult(
            build_id="b1", status=BuildStatus.DRY_RUN, spec=ToolSpec.parse(WEAK), report=report
        )
    )
    text = out.getvalue()
    assert "mutation score 50%: 1 killed, 1 survived of 2 run (9 proposed)" in text
    assert "warning test_tool.py::test_generated_inputs: the tool accepted only 2 of 120" in text


def test_no_verdict_counts_when_the_candidate_fails_in_the_mutants_job() -> None:
    """A candidate failing next to its mutants (e.g. calls slower than the mutants' limit) would
    make every kill meaningless: the gate then counts no mutant rather than inflate the score."""
    from toolsmith.mutation import run_mutants
    from toolsmith.report import VariantResult
    from toolsmith.testgen import generate_tests

    spec = ToolSpec.parse(WEAK)
    suite = generate_tests(spec, max_examples=5)
    seen: list[Any] = []

    class Recording(SandboxBackend):
        """A sandbox backend answering the job as a runner whose candidate timed out."""

        def run(self, job: SandboxJob) -> TestReport:
            seen.append(job)
            return TestReport(
                tests=[TestCase(nodeid="t::test_example_0", outcome="failed", failure="timeout")],
                expected=suite.expected,
                collected=suite.expected,
                variants=[
                    VariantResult(id=i, finished=True, ran=0, failed="t::test_example_0")
                    for i in job.variants
                ],
            )

    report = run_mutants(Sandbox(Recording()), spec, CLAMP, suite, mutants=5)
    assert len(seen) == 1 and len(seen[0].variants) == 5
    assert report.mutants == [] and report.score is None and report.generated > 5


# Claims /tmp/mark on its first call and fails in any later worker: if /tmp survived from the
# candidate to its variants, every variant -- even an identical one -- would be "killed".
MARKER = '''\
import os


def add_marked(a, b):
    """Sum of a and b."""
    os.makedirs("/tmp/mark", exist_ok=True)
    me = os.path.join("/tmp/mark", str(os.getpid()))
    if not os.path.exists(me):
        if os.listdir("/tmp/mark"):
            raise RuntimeError("a later worker")
        with open(me, "w") as f:
            f.write("x")
    return a + b
'''


@pytest.mark.docker
def test_each_variant_starts_from_a_clean_tmp(sandbox: Sandbox) -> None:
    """The candidate's files in /tmp are gone before each variant runs (as between the docker
    runtime's calls), so a candidate cannot fail its own mutants to raise its score."""
    from toolsmith.mutation import MUTANT_CALL_TIMEOUT_S
    from toolsmith.sandbox import Limits, SandboxJob
    from toolsmith.testgen import generate_tests

    spec = ToolSpec.parse(
        {
            "name": "add_marked",
            "description": "Add two integers and return their sum.",
            "parameters": {
                "type": "object",
                "properties": {
                    "a": {"type": "integer", "minimum": -1000, "maximum": 1000},
                    "b": {"type": "integer", "minimum": -1000, "maximum": 1000},
                },
                "required": ["a", "b"],
            },
            "returns": {"type": "integer"},
            "capabilities": ["fs:write:/tmp/mark"],
            "examples": [{"args": {"a": 0, "b": 0}, "returns": 0}],
        }
    )
    suite = generate_tests(spec, max_examples=5)
    variants = {"same": MARKER, "again": MARKER.replace('"""Sum', '"""The sum')}
    job = SandboxJob(
        tool_name="add_marked",
        code=MARKER,
        test_files=suite.files,
        expected_tests=suite.expected,
        variants=variants,
        capabilities=spec.capabilities,
        limits=Limits(call_timeout_s=MUTANT_CALL_TIMEOUT_S, timeout_s=60),
    )
    report = sandbox.run(job)
    assert report.passed, report.failure_text()
    results = {v.id: v for v in report.variants or []}
    for name in variants:
        assert results[name].passed(suite.expected), (name, results[name].failed)
