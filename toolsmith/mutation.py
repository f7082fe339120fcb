"""The mutation gate: how much of a tool's behaviour its tests pin down.

Passing tests say the candidate is consistent with them, not that they would notice a wrong
tool. So after the tests pass, the candidate is mutated with a standard operator set and each
mutant runs against the same tests in the same sandbox. A mutant the tests fail is *killed*; one
that passes *survives*: behaviour the tests leave open. The score is
``killed / (run - equivalent)``, equivalent mutants being those the designer showed (with a reason)
to behave exactly like the candidate.

Operators (``OPERATORS``): mutmut's node operators, driven as a library over libcst (numbers,
strings, names True/False, assignment values, augmented assignments, unary/binary/boolean/
comparison operators, ``is``/``in``/``break``/``continue`` keywords, call arguments, string
method swaps, lambdas, ``match`` cases, ternaries), plus the standard ones it lacks: an ``if`` or
``elif`` forced down one branch (condition -> ``True``/``False``), a returned value replaced by
``None``, and an expression statement deleted. Strings inside ``raise`` statements are not
mutated: the contract compares exception types, not messages. Mutants that do not compile or
repeat another are dropped.

Mutant generation is pure (no IO); running them is ``run_mutants`` over any ``Sandbox``.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from toolsmith.dependencies import Lock
from toolsmith.log import get_logger
from toolsmith.report import MutantResult, MutantStatus, MutationReport, TestReport
from toolsmith.sandbox import Limits, Sandbox, SandboxJob
from toolsmith.settings import DEFAULT_MUTANTS, DEFAULT_MUTATION_TIME_S
from toolsmith.spec import ToolSpec
from toolsmith.testgen import HELPERS, TestSuite, prelude

log = get_logger(__name__)


class _HasOperator(Protocol):
    @property
    def operator(self) -> str: ...


_T = TypeVar("_T", bound=_HasOperator)

# A mutant that loops forever must cost seconds, not the default per-call limit per input.
MUTANT_CALL_TIMEOUT_S = 2.0
# What a job may take beyond its mutants' time budget: the candidate's own pass, the last mutant.
MUTANT_JOB_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Mutant:
    """A mutated module, before it runs."""

    id: str
    operator: str
    line: int
    code: str
    diff: str


# --- operators -----------------------------------------------------------------------------


def _operators() -> list[tuple[type, Callable[[Any], Iterable[Any]], str]]:
    """(node type, operator, name): mutmut's set, then ours. Imported lazily: libcst is heavy."""
    import libcst as cst
    from mutmut.mutation.mutators import mutation_operators

    def forced_branch(node: cst.If) -> Iterator[cst.If]:
        for literal in ("True", "False"):
            if not (isinstance(node.test, cst.Name) and node.test.value == literal):
                yield node.with_changes(test=cst.Name(literal))

    def return_none(node: cst.Return) -> Iterator[cst.Return]:
        if node.value is not None and not (
            isinstance(node.value, cst.Name) and node.value.value == "None"
        ):
            yield node.with_changes(value=cst.Name("None"))

    def delete_statement(node: cst.Expr) -> Iterator[cst.Expr]:
        if not isinstance(node.value, cst.SimpleString | cst.ConcatenatedString | cst.Ellipsis):
            yield node.with_changes(value=cst.Name("None"))

    ours: list[tuple[type, Callable[[Any], Iterable[Any]], str]] = [
        (cst.If, forced_branch, "forced_branch"),
        (cst.Return, return_none, "return_none"),
        (cst.Expr, delete_statement, "statement_deletion"),
    ]
    theirs = [(t, op, op.__name__.removeprefix("operator_")) for t, op in mutation_operators]
    return theirs + ours


def operator_names() -> list[str]:
    return sorted({name for _, _, name in _operators()})


@dataclass(frozen=True)
class _Site:
    """One mutation an operator proposes, before it is rendered into a module."""

    index: int
    original: Any
    mutated: Any
    operator: str
    line: int


def _sites(code: str) -> tuple[Any, list[_Site]]:
    """The parsed module and every mutation the operators propose for it, in source order."""
    import libcst as cst
    from libcst.metadata import MetadataWrapper, PositionProvider

    try:
        wrapper = MetadataWrapper(cst.parse_module(code))
    except cst.ParserSyntaxError:
        return None, []
    operators = _operators()
    found: list[_Site] = []

    class Visitor(cst.CSTVisitor):
        METADATA_DEPENDENCIES = (PositionProvider,)

        def on_visit(self, node: cst.CSTNode) -> bool:
            # Exception messages are not behaviour: the contract compares exception types.
            skipped = cst.Import | cst.ImportFrom | cst.Annotation | cst.Decorator | cst.Raise
            if isinstance(node, skipped):
                return False
            if _never_mutated_call(node):
                return True  # its arguments are, unlike in mutmut: len(re.findall(...))
            line = self.get_metadata(PositionProvider, node).start.line
            for node_type, operator, name in operators:
                if isinstance(node, node_type):
                    for mutated in operator(node):
                        found.append(_Site(len(found), node, mutated, name, line))
            return True

    wrapper.visit(Visitor())
    return wrapper.module, found


def _render(module: Any, site: _Site, code: str) -> Mutant | None:
    """The mutant ``site`` makes (id ``m<n>`` after its place among the proposals), or None if
    it does not compile or changes nothing."""
    try:
        text = module.deep_replace(site.original, site.mutated).code
    except Exception:  # an operator's node that cannot stand in that place
        return None
    if text == code or not _compiles(text):
        return None
    diff = "".join(
        difflib.unified_diff(
            code.splitlines(keepends=True),
            text.splitlines(keepends=True),
            "candidate",
            "mutant",
            n=1,
        )
    )
    return Mutant(f"m{site.index + 1}", site.operator, site.line, text, diff)


def generate_mutants(code: str) -> list[Mutant]:
    """Every distinct, compiling mutant of ``code`` the operators make, in source order; none
    for code libcst cannot parse."""
    module, sites = _sites(code)
    out: list[Mutant] = []
    seen = {code}
    for site in sites:
        mutant = _render(module, site, code)
        if mutant is not None and mutant.code not in seen:
            seen.add(mutant.code)
            out.append(mutant)
    return out


def sample_mutants(code: str, limit: int) -> tuple[int, list[Mutant]]:
    """(mutations proposed, up to ``limit`` distinct compiling mutants spread as ``select``
    spreads them), rendering only as many as it takes: large modules propose hundreds."""
    module, sites = _sites(code)
    out: list[Mutant] = []
    seen = {code}
    for site in _spread(sites, code):
        if len(out) >= limit:
            break
        mutant = _render(module, site, code)
        if mutant is not None and mutant.code not in seen:
            seen.add(mutant.code)
            out.append(mutant)
    return len(sites), sorted(out, key=lambda m: int(m.id[1:]))


def _never_mutated_call(node: Any) -> bool:
    """len() and isinstance() calls themselves are left alone as in mutmut (dropping their one
    argument only breaks the call)."""
    import libcst as cst

    return (
        isinstance(node, cst.Call)
        and isinstance(node.func, cst.Name)
        and node.func.value in {"len", "isinstance"}
    )


def _compiles(code: str) -> bool:
    try:
        compile(code, "<mutant>", "exec")
    except (SyntaxError, ValueError):
        return False
    return True


def _spread(items: Sequence[_T], code: str) -> list[_T]:
    """``items`` (each with an ``operator``) shuffled per operator with a seed taken from the
    code (the same candidate always gets the same order), then taken from each in turn."""
    rng = random.Random(hashlib.sha256(code.encode()).hexdigest())
    groups: dict[str, list[_T]] = {}
    for item in items:
        groups.setdefault(item.operator, []).append(item)
    order = sorted(groups)
    rng.shuffle(order)
    for name in order:
        rng.shuffle(groups[name])
    out: list[_T] = []
    while any(groups.values()):
        for name in order:
            if groups[name]:
                out.append(groups[name].pop())
    return out


def select(mutants: Sequence[Mutant], limit: int, code: str) -> list[Mutant]:
    """Up to ``limit`` mutants spread over operators and lines (``_spread``), in source order."""
    return sorted(_spread(mutants, code)[:limit], key=lambda m: int(m.id[1:]))


# --- running -------------------------------------------------------------------------------


def mutants_job(
    spec: ToolSpec,
    candidate: str,
    suite: TestSuite,
    mutants: Sequence[Mutant],
    time_s: float,
    lock: Lock | None = None,
) -> SandboxJob:
    """One job: the suite against the candidate, then against each mutant in a fresh worker,
    in the dependency layer of ``lock`` (the tool's resolved dependencies) when it has one."""
    return SandboxJob(
        tool_name=spec.name,
        code=candidate,
        test_files=suite.files,
        expected_tests=suite.expected,
        capabilities=spec.capabilities,
        variants={m.id: m.code for m in mutants},
        variant_time_s=time_s,
        limits=Limits(
            timeout_s=time_s + MUTANT_JOB_TIMEOUT_S, call_timeout_s=MUTANT_CALL_TIMEOUT_S
        ),
        lock=lock,
    )


def _verdicts(report: TestReport, expected: int) -> dict[str, MutantStatus]:
    """Mutant id -> killed or survived, for the mutants the job reached. One that ended the job
    (a hang past every limit, a crash of the runner) is killed: the tests did notice it. When
    the candidate itself failed in that job (a call slower than the mutants' time limit, a
    flaky test), a kill says nothing, so no verdict counts."""
    if not report.passed:
        log.warning("mutation.candidate_failed", summary=report.summary())
        return {}
    return {
        v.id: MutantStatus.SURVIVED if v.passed(expected) else MutantStatus.KILLED
        for v in report.variants or []
    }


def run_mutants(
    sandbox: Sandbox,
    spec: ToolSpec,
    candidate: str,
    suite: TestSuite,
    *,
    mutants: int = DEFAULT_MUTANTS,
    time_s: float = DEFAULT_MUTATION_TIME_S,
    max_examples: int = 100,
    lock: Lock | None = None,
) -> MutationReport:
    """Mutate ``candidate``, run ``suite`` against up to ``mutants`` of them in one sandbox job
    (no mutant starts after ``time_s`` seconds; those are left out of the score), and look for
    inputs that tell each survivor from the candidate. Raises SandboxError as ``Sandbox.run``."""
    started = time.monotonic()
    proposed, chosen = sample_mutants(candidate, mutants)
    verdicts: dict[str, MutantStatus] = {}
    if chosen:
        job = mutants_job(spec, candidate, suite, chosen, time_s, lock)
        verdicts = _verdicts(sandbox.run(job), suite.expected)
    if len(verdicts) < len(chosen):
        log.info("mutation.budget_spent", run=len(verdicts), of=len(chosen))
    report = MutationReport(
        operators=operator_names(),
        generated=proposed,
        budget_mutants=mutants,
        budget_time_s=time_s,
        mutants=[
            MutantResult(
                id=m.id, operator=m.operator, line=m.line, diff=m.diff, status=verdicts[m.id]
            )
            for m in chosen
            if m.id in verdicts
        ],
    )
    survivors = {m.id: m for m in chosen if m.id in {r.id for r in report.survivors}}
    if survivors:
        distinguish(
            sandbox, spec, candidate, survivors, report, max_examples=max_examples, lock=lock
        )
    report.duration_s = round(time.monotonic() - started, 3)
    return report


def rerun(
    sandbox: Sandbox,
    spec: ToolSpec,
    candidate: str,
    suite: TestSuite,
    report: MutationReport,
    *,
    max_examples: int = 100,
    lock: Lock | None = None,
) -> MutationReport:
    """Run ``report``'s survivors again against a stronger ``suite``; the killed stay killed."""
    started = time.monotonic()
    by_id = {m.id: m for m in generate_mutants(candidate)}
    updated = report.model_copy(deep=True)
    again = [by_id[r.id] for r in updated.survivors if r.id in by_id]
    if again:
        job = mutants_job(spec, candidate, suite, again, updated.budget_time_s, lock)
        verdicts = _verdicts(sandbox.run(job), suite.expected)
        for result in updated.survivors:
            if verdicts.get(result.id) == MutantStatus.KILLED:
                result.status = MutantStatus.KILLED
                result.distinguishing_input = result.difference = None
    survivors = {m.id: by_id[m.id] for m in updated.survivors if m.id in by_id}
    if survivors:
        distinguish(
            sandbox, spec, candidate, survivors, updated, max_examples=max_examples, lock=lock
        )
    updated.duration_s = round(updated.duration_s + time.monotonic() - started, 3)
    return updated


DIFFER = "TOOLSMITH-DIFFERS "
_DIFFER_LINE = re.compile(re.escape(DIFFER) + r"(\{.*\})")

WRAPPER = '''\
"""The candidate and its surviving mutants side by side, each in a namespace of its own."""
import copy
import json

_SOURCES = json.loads({sources!r})


def _load(label, source):
    namespace = {{"__name__": "toolsmith_" + label}}
    exec(compile(source, "<" + label + ">", "exec"), namespace)
    return namespace[{name!r}]


_FUNCTIONS = {{label: _load(label, source) for label, source in _SOURCES.items()}}


def _outcome(function, kwargs):
    try:
        return {{"returned": function(**copy.deepcopy(kwargs))}}
    except Exception as e:
        return {{"raised": type(e).__name__}}


def {name}(**kwargs):
    return {{label: _outcome(f, kwargs) for label, f in _FUNCTIONS.items()}}
'''

DIFFER_TEST = """

@HYPOTHESIS
@with_seeds
@given(args=ARGS)
def test_differs_{id}(args):
    inv = invoke(copy.deepcopy(args))
    if not inv.ok:
        return
    candidate, mutant = inv.value["candidate"], inv.value[{id!r}]
    assert same(candidate, mutant), {differ!r} + json.dumps(
        {{"args": args, "candidate": candidate, "mutant": mutant}}
    )
"""


def distinguish(
    sandbox: Sandbox,
    spec: ToolSpec,
    candidate: str,
    survivors: dict[str, Mutant],
    report: MutationReport,
    *,
    max_examples: int = 100,
    lock: Lock | None = None,
) -> None:
    """One sandbox job drawing the tests' inputs for the candidate and every survivor at once;
    where a survivor's outcome differs, record the (shrunk) input on ``report``. Best effort: a
    job that cannot tell (a survivor that hangs, a crash) leaves the inputs unknown."""
    sources = {"candidate": candidate, **{i: m.code for i, m in survivors.items()}}
    code = WRAPPER.format(sources=json.dumps(sources), name=spec.name)
    parts = [prelude(spec, title="differential tests", max_examples=max_examples), HELPERS]
    parts += [DIFFER_TEST.format(id=i, differ=DIFFER) for i in survivors]
    job = SandboxJob(
        tool_name=spec.name,
        code=code,
        test_files={"test_differs.py": "".join(parts)},
        expected_tests=len(survivors),
        capabilities=spec.capabilities,
        limits=Limits(timeout_s=MUTANT_JOB_TIMEOUT_S, call_timeout_s=MUTANT_CALL_TIMEOUT_S),
        lock=lock,
    )
    found = differences(sandbox.run(job))
    for result in report.survivors:
        if result.id in found:
            shown = found[result.id]
            result.distinguishing_input = shown["args"]
            result.difference = (
                f"candidate {_show(shown['candidate'])}, mutant {_show(shown['mutant'])}"
            )


def differences(report: TestReport) -> dict[str, dict[str, Any]]:
    """Mutant id -> {args, candidate, mutant} from a differential job's failures."""
    out: dict[str, dict[str, Any]] = {}
    for test in report.tests:
        name = test.nodeid.rpartition("::test_differs_")[2]
        match = _DIFFER_LINE.search(test.failure or "")
        if not name or match is None:
            continue
        try:
            doc = json.loads(match.group(1))
        except ValueError:  # cut by the failure-text limit
            continue
        if isinstance(doc, dict) and isinstance(doc.get("args"), dict):
            out[name] = doc
    return out


def _show(outcome: Any) -> str:
    if isinstance(outcome, dict) and "raised" in outcome:
        return f"raises {outcome['raised']}"
    if isinstance(outcome, dict) and "returned" in outcome:
        text = json.dumps(outcome["returned"], ensure_ascii=False)
        return "returns " + (text if len(text) <= 200 else text[:197] + "...")
    return repr(outcome)
