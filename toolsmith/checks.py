"""The checks every build attempt goes through, as chains of plain typed callables.

A check (like a structlog processor) is one function ``(build, state) -> state``: it reads the
build's loop state (:class:`toolsmith.pipeline.Build`: the engine's sandbox, policy and
constitution, the options, the test suites by spec) and the attempt's :class:`AttemptState`, and
returns the state, with ``outcome`` set when it decides the attempt. :func:`run_checks` runs a
chain in order and stops at the first outcome that is not a pass. Two chains, cheapest first:

- :data:`PROOF_CHECKS`: the code's shape, static analysis, the dependencies' lock (resolved for
  the sandbox; the code's third-party imports must be in it), the capability policy (over the
  whole lock too), what the sandbox can grant, then the tests (the spec's, the constitution's
  state checks and earlier versions' regression tests) in the sandbox. The fix loop annotates
  their failures for the model.
- :data:`ADEQUACY_CHECKS`, once the tests pass: the mutation gate (with its bounded loop back to
  the designer, which runs the proof chain again for a stronger spec) and the policy's minimum
  mutation score.

A new check is one function added to the chain it belongs to.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from toolsmith.analysis import PolicyReport, analyze
from toolsmith.codegen import code_problems
from toolsmith.constitution import state_violations
from toolsmith.dependencies import Lock, provided_modules
from toolsmith.designer import strengthen
from toolsmith.errors import NoWheelError, PolicyError
from toolsmith.log import get_logger
from toolsmith.mutation import rerun, run_mutants
from toolsmith.policy import PolicyDecision, evaluate_policy
from toolsmith.report import MutantStatus, MutationReport, TestReport
from toolsmith.sandbox import SandboxJob
from toolsmith.sandbox.grants import Grants
from toolsmith.spec import ToolSpec

if TYPE_CHECKING:
    from toolsmith.pipeline import Build

log = get_logger(__name__)


class AttemptVerdict(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    UNTESTABLE = "untestable"
    POLICY = "policy"
    SPEC_CONFLICT = "spec_conflict"


@dataclass(frozen=True)
class Progress:
    """One step of a build, for progress displays."""

    stage: str
    attempt: int = 0
    max_attempts: int = 0
    detail: str = ""


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True)
class Checked:
    """One attempt's outcome at the check that decided it."""

    verdict: AttemptVerdict
    summary: str
    failure: str
    report: TestReport | None = None
    decision: PolicyDecision | None = None
    final: bool = False  # no new code can fix it: only a new spec can

    @property
    def signature(self) -> str:
        return self.report.signature() if self.report is not None else self.failure


@dataclass(frozen=True)
class AttemptState:
    """One attempt's code on its way through a chain; each check fills in what it learnt."""

    spec: ToolSpec
    code: str
    number: int
    analysis: PolicyReport | None = None
    decision: PolicyDecision | None = None
    lock: Lock | None = None
    report: TestReport | None = None
    mutation: MutationReport | None = None
    outcome: Checked | None = None

    def decided(self, outcome: Checked) -> AttemptState:
        return dataclasses.replace(self, outcome=outcome)


Check = Callable[["Build", AttemptState], AttemptState]


def run_checks(chain: Sequence[Check], build: Build, state: AttemptState) -> AttemptState:
    """Run ``chain`` in order; the first check that decides anything but a pass ends it."""
    for check in chain:
        state = check(build, state)
        if state.outcome is not None and state.outcome.verdict != AttemptVerdict.PASSED:
            break
    return state


def _progress(build: Build, state: AttemptState, stage: str, detail: str = "") -> None:
    build.progress(Progress(stage, state.number, build.max_attempts, detail))


def code_shape(build: Build, state: AttemptState) -> AttemptState:
    """The answer is a module defining the spec's function (else: untestable)."""
    problems = code_problems(state.code, state.spec.name)
    if problems:
        return state.decided(Checked(AttemptVerdict.UNTESTABLE, problems[0], "\n".join(problems)))
    return state


def static_analysis(build: Build, state: AttemptState) -> AttemptState:
    """Static analysis under the constitution's rules: early feedback, never the boundary."""
    _progress(build, state, "policy")
    analysis = analyze(state.code, state.spec, rules=build.rules)
    if not analysis.passed:
        first = analysis.errors[0]
        summary = f"policy: {len(analysis.errors)} finding(s), first: {first.message}"
        return state.decided(Checked(AttemptVerdict.POLICY, summary[:200], analysis.failure_text()))
    return dataclasses.replace(state, analysis=analysis)


def dependency_lock(build: Build, state: AttemptState) -> AttemptState:
    """The spec's dependencies resolved into a lock for the sandbox (a dependency without a
    wheel: only a new spec can fix that), and the code's third-party imports all installed by
    it (else the model is told which are not)."""
    try:
        lock = build.lock(state.spec)
    except NoWheelError as e:
        return state.decided(Checked(AttemptVerdict.POLICY, e.message[:200], str(e), final=True))
    if lock is None:
        return state
    assert state.analysis is not None
    tops = {m.split(".")[0] for m in state.analysis.imports} - set(sys.stdlib_module_names)
    missing = sorted(tops - provided_modules(lock) - {""})
    if missing:
        text = (
            f"the code imports {', '.join(missing)}, third-party and provided by none of the "
            f"declared dependencies ({', '.join(state.spec.dependencies)}), so it is not "
            "installed in the sandbox: use the declared dependencies or the standard library"
        )
        return state.decided(Checked(AttemptVerdict.POLICY, text[:200], text))
    return dataclasses.replace(state, lock=lock)


def capability_policy(build: Build, state: AttemptState) -> AttemptState:
    """The capability policy file's decision on what the spec and code use, and on every
    distribution the lock installs."""
    assert state.analysis is not None
    decision = evaluate_policy(state.spec, state.analysis, build.engine.policy, state.lock)
    if decision.decision == "deny":
        # Code can drop an import; only a new spec can drop a capability or dependency.
        final = any(r.kind in ("capability", "dependency") for r in decision.deciding)
        text = decision.text()
        return state.decided(
            Checked(AttemptVerdict.POLICY, text.splitlines()[-1].strip()[:200], text, final=final)
        )
    return dataclasses.replace(state, decision=decision)


def grantable(build: Build, state: AttemptState) -> AttemptState:
    """The sandbox can grant every capability the spec asks for."""
    try:
        Grants.from_capabilities(state.spec.capabilities)
    except PolicyError as e:  # the sandbox cannot grant it: only a new spec can fix that
        return state.decided(Checked(AttemptVerdict.POLICY, e.message[:200], str(e), final=True))
    return state


def sandbox_tests(build: Build, state: AttemptState) -> AttemptState:
    """The spec's tests, the constitution's state checks and earlier versions' tests, run in the
    sandbox; a failure names the constitution's state rules it broke."""
    _progress(build, state, "sandbox")
    suite = build.suite(state.spec)
    report = build.engine.sandbox.run(
        SandboxJob(
            tool_name=state.spec.name,
            code=state.code,
            test_files=suite.files,
            expected_tests=suite.expected,
            capabilities=state.spec.capabilities,
            lock=state.lock,
        )
    )
    _progress(build, state, "tested", report.summary())
    state = dataclasses.replace(state, report=report)
    if report.passed:
        return state.decided(
            Checked(AttemptVerdict.PASSED, report.summary(), "", report, state.decision)
        )
    summary = report.summary()
    violated = state_violations(build.engine.constitution, report)
    if violated and report.root_cause() is None:  # else the rules failed because of it
        summary += "; constitution: " + ", ".join(v.rule for v in violated)
    return state.decided(Checked(AttemptVerdict.FAILED, summary, report.failure_text(), report))


def mutation_gate(build: Build, state: AttemptState) -> AttemptState:
    """Mutants of the passing code must fail the tests; survivors go back to the designer.

    Survivors go to the designer only for a designed spec (a task), at most
    ``mutation_rounds`` times per build: a spec the caller wrote is theirs to change. New tests
    the candidate fails make the attempt a failure, which the fix loop answers like any other.
    The state's spec is the (possibly strengthened) one the attempt ends with.
    """
    opts = build.opts
    if opts.mutants <= 0:
        return state
    checked = state.outcome
    assert checked is not None and checked.report is not None
    spec, code = state.spec, state.code
    _progress(build, state, "mutation")
    mutation = run_mutants(
        build.engine.sandbox,
        spec,
        code,
        build.suite(spec),
        mutants=opts.mutants,
        time_s=opts.mutation_time_s,
        max_examples=opts.max_examples,
        lock=build.lock(spec),
    )
    while (
        mutation.survivors
        and build.llm is not None
        and build.task is not None
        and build.rounds < opts.mutation_rounds
    ):
        build.rounds += 1
        _progress(build, state, "strengthen tests")
        answer = strengthen(spec, mutation.survivors, build.llm, task=build.task)
        for marked in answer.equivalent:
            for result in mutation.survivors:
                if result.id == marked.mutant:
                    result.status = MutantStatus.EQUIVALENT
                    result.reason = marked.reason
        stronger = answer.applied_to(spec)
        if stronger is spec:
            continue
        rechecked = run_checks(PROOF_CHECKS, build, AttemptState(stronger, code, state.number))
        spec = stronger
        assert rechecked.outcome is not None
        if rechecked.outcome.verdict != AttemptVerdict.PASSED:
            log.info("mutation.new_tests_fail", round=build.rounds)
            return rechecked
        checked = rechecked.outcome
        mutation = rerun(
            build.engine.sandbox,
            spec,
            code,
            build.suite(spec),
            mutation,
            max_examples=opts.max_examples,
            lock=build.lock(spec),
        )
    mutation.rounds = build.rounds
    log.info("build.mutation", score=mutation.score, summary=mutation.summary())
    assert checked.report is not None
    passed = dataclasses.replace(
        checked,
        report=checked.report.model_copy(update={"mutation": mutation}),
        summary=f"{checked.summary}; {mutation.summary()}",
    )
    return dataclasses.replace(state, spec=spec, mutation=mutation, outcome=passed)


def min_mutation_score(build: Build, state: AttemptState) -> AttemptState:
    """The capability policy's ``[tests] min_mutation_score``, if it sets one."""
    policy = build.engine.policy
    minimum = policy.tests.min_mutation_score
    mutation = state.mutation
    score = mutation.score if mutation is not None else None
    if minimum is None or (score is not None and score >= minimum):
        return state
    shown = "not measured (no mutant ran)" if score is None else f"{score:.0%}"
    text = (
        f"policy {policy.source}: denied\n  [tests.min_mutation_score] the tests' "
        f"mutation score is {shown}, below the required {minimum:.0%}"
    )
    if mutation is not None and mutation.survivors:
        text += "; survivors:\n" + "\n".join(m.diff for m in mutation.survivors)
    elif mutation is None:
        text += "; run the mutation gate (--mutants above 0)"
    summary = f"policy: mutation score {shown} below {minimum:.0%}"
    report = state.outcome.report if state.outcome is not None else None
    return state.decided(Checked(AttemptVerdict.POLICY, summary, text, report, final=True))


PROOF_CHECKS: tuple[Check, ...] = (
    code_shape,
    static_analysis,
    dependency_lock,
    capability_policy,
    grantable,
    sandbox_tests,
)
ADEQUACY_CHECKS: tuple[Check, ...] = (mutation_gate, min_mutation_score)
