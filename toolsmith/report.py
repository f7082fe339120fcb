"""TestReport and Provenance: what the sandbox proved, and how a tool came to be.

The report's verdict (``passed``) is computed from its parts, never stored: a report file edited to
say "passed" while listing a failure still reads as a failure.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, computed_field

from toolsmith.dependencies import Lock
from toolsmith.models import PublicModel

# Run-specific noise in a failure line: object addresses, job directories, long hex ids.
_NOISE = (
    (re.compile(r"0x[0-9a-fA-F]+"), "0x?"),
    (re.compile(r"/work/job-[0-9a-fA-F]+"), "/work/job-?"),
    (re.compile(r"\b(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{12,}\b"), "?"),
)


def failure_line(failure: str | None) -> str:
    """The first line naming what was raised (pytest's ``E`` lines), with run-specific ids masked.

    Two attempts that fail the same tests for different reasons (a NameError, then a wrong type)
    differ here, so the fix loop does not mistake progress for a repeated failure.
    """
    if not failure:
        return ""
    lines = [ln.strip() for ln in failure.splitlines() if ln.strip()]
    raised = [ln[1:].strip() for ln in lines if ln.startswith("E ")]
    line = (raised or lines or [""])[0]
    for pattern, replacement in _NOISE:
        line = pattern.sub(replacement, line)
    return line[:300]


_RAISED = re.compile(r"\b([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)): ")
# Where an exception's message ends in a failure text: the line, a repr's escaped newline or
# closing quote, or the generic contract's "(declared: [...])" note.
_MESSAGE_END = re.compile(r"\n|\\n|'\)|\s+\(declared: ")


def raised_in(failure: str | None) -> str:
    """The first exception named in a test's failure other than the test's own AssertionError,
    as ``Type: message`` (run-specific ids masked), or ``""``: what the tool raised, when it did."""
    text = failure or ""
    for found in _RAISED.finditer(text):
        name = found.group(1).rpartition(".")[2]
        if name == "AssertionError":
            continue
        message = _MESSAGE_END.split(text[found.end() :], maxsplit=1)[0].strip()
        line = f"{name}: {message}"
        for pattern, replacement in _NOISE:
            line = pattern.sub(replacement, line)
        return line[:200]
    return ""


# Below this share of accepted inputs a test proves next to nothing about what the tool returns.
ACCEPTED_FLOOR = 0.1


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"


class Verdict(StrEnum):
    """Resource verdicts: each one fails the report."""

    TIMEOUT = "timeout"
    OOM = "oom"
    OUTPUT_TRUNCATED = "output_truncated"
    CRASHED = "crashed"


class TestCase(PublicModel):
    model_config = ConfigDict(extra="forbid")
    __test__ = False

    nodeid: str
    outcome: Outcome
    duration_s: float = 0.0
    failure: str | None = None
    falsifying_example: str | None = None
    inputs: int | None = Field(
        default=None, ge=1, description="inputs the test drew (hypothesis tests only)"
    )
    accepted: int | None = Field(
        default=None,
        ge=0,
        description="of those, how many the tool accepted rather than rejected with a declared "
        "exception",
    )

    @property
    def accepted_share(self) -> float | None:
        """``accepted / inputs`` in [0, 1], or None for a test that drew no inputs."""
        if not self.inputs or self.accepted is None:
            return None
        return self.accepted / self.inputs


class VariantResult(BaseModel):
    """How one variant of the tool (a mutant) fared against the job's tests."""

    model_config = ConfigDict(extra="forbid")

    id: str
    finished: bool = Field(description="false: it started and the job ended before its result")
    ran: int = Field(default=0, ge=0, description="tests run before the first failure, if any")
    failed: str | None = Field(default=None, description="the first test it failed")
    duration_s: float = 0.0

    def passed(self, expected: int) -> bool:
        """True when every one of the ``expected`` tests ran and none failed."""
        return self.finished and self.failed is None and self.ran == expected


class MutantStatus(StrEnum):
    KILLED = "killed"
    SURVIVED = "survived"
    EQUIVALENT = "equivalent"


class MutantResult(PublicModel):
    """One mutant that ran: what was changed and what became of it."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="m1, m2, ... in the order mutants were made")
    operator: str
    line: int = Field(ge=1)
    diff: str = Field(description="unified diff from the candidate")
    status: MutantStatus
    distinguishing_input: dict[str, Any] | None = Field(
        default=None, description="arguments on which the mutant and the candidate differ"
    )
    difference: str | None = Field(default=None, description="both outcomes on that input")
    reason: str | None = Field(default=None, description="why it is equivalent, if it is")


class MutationReport(PublicModel):
    """The mutation gate's account, signed as part of the test report."""

    model_config = ConfigDict(extra="forbid")

    operators: list[str] = Field(description="operator names the mutants were drawn with")
    generated: int = Field(ge=0, description="mutations the operators proposed")
    budget_mutants: int = Field(ge=0)
    budget_time_s: float = Field(ge=0)
    mutants: list[MutantResult] = Field(default_factory=list, description="those that ran")
    rounds: int = Field(default=0, ge=0, description="rounds of survivors sent to the designer")
    duration_s: float = 0.0

    def _count(self, status: MutantStatus) -> int:
        return sum(1 for m in self.mutants if m.status == status)

    @property
    def killed(self) -> int:
        return self._count(MutantStatus.KILLED)

    @property
    def survivors(self) -> list[MutantResult]:
        return [m for m in self.mutants if m.status == MutantStatus.SURVIVED]

    @property
    def equivalent(self) -> list[MutantResult]:
        return [m for m in self.mutants if m.status == MutantStatus.EQUIVALENT]

    @property
    def score(self) -> float | None:
        """``killed / (run - equivalent)`` in [0, 1]; None when no mutant counts."""
        counted = len(self.mutants) - len(self.equivalent)
        return self.killed / counted if counted else None

    def summary(self) -> str:
        if self.score is None:
            return f"mutation: no mutant counted ({self.generated} proposed)"
        text = (
            f"mutation score {self.score:.0%}: {self.killed} killed, {len(self.survivors)} survived"
        )
        if self.equivalent:
            text += f", {len(self.equivalent)} equivalent"
        return text + f" of {len(self.mutants)} run ({self.generated} proposed)"


class TestReport(PublicModel):
    """The sandbox's account of one job, produced outside the reach of the code under test."""

    model_config = ConfigDict(extra="forbid")
    __test__ = False

    tests: list[TestCase] = Field(default_factory=list)
    expected: int = Field(ge=0, description="number of tests the job was built with")
    collected: int = Field(ge=0)
    verdicts: list[Verdict] = Field(default_factory=list)
    error: str | None = Field(default=None, description="runner-level failure, e.g. no report")
    duration_s: float = 0.0
    image_digest: str = ""
    runtime: str = ""
    lock: Lock | None = Field(
        default=None,
        description="the third-party wheels the tests ran with, each with its sha256 (None: "
        "stdlib only); signed with the report, so a consumer installs exactly these",
    )
    mutation: MutationReport | None = Field(
        default=None, description="the mutation gate's account, when it ran"
    )
    variants: list[VariantResult] | None = Field(
        default=None, description="variants of the tool run in the same job (mutation gate)"
    )

    def count(self, outcome: Outcome) -> int:
        return sum(1 for t in self.tests if t.outcome == outcome)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def executed(self) -> int:
        return sum(1 for t in self.tests if t.outcome != Outcome.SKIPPED)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def passed(self) -> bool:
        return (
            self.error is None
            and not self.verdicts
            and self.expected > 0
            and self.collected == self.expected
            and len(self.tests) == self.expected
            and all(t.outcome == Outcome.PASSED for t in self.tests)
        )

    def warnings(self) -> list[str]:
        """Tests that passed while proving little: nearly every drawn input was rejected."""
        out = []
        for t in self.tests:
            share = t.accepted_share
            if share is not None and share < ACCEPTED_FLOOR:
                out.append(
                    f"{t.nodeid}: the tool accepted only {t.accepted} of {t.inputs} drawn inputs "
                    f"({share:.0%}); the rest raised declared exceptions, so its properties were "
                    "hardly exercised: give the parameters precise schemas (pattern, enum, "
                    "format, bounds) and examples of valid input"
                )
        return out

    def root_cause(self) -> str | None:
        """The one exception every failing test (two or more) reports, e.g. ``ModuleNotFoundError:
        No module named 'dateutil'`` or ``EOFError: EOF when reading a line``: then the failures
        are one fault, not as many as there are tests (or constitution rules)."""
        failing = [t for t in self.tests if t.outcome in (Outcome.FAILED, Outcome.ERROR)]
        causes = {raised_in(t.failure) for t in failing}
        if len(failing) < 2 or len(causes) != 1 or "" in causes:
            return None
        return causes.pop()

    def summary(self) -> str:
        cause = self.root_cause()
        parts = [f"{self.count(Outcome.PASSED)}/{self.expected} passed"]
        for o in (Outcome.FAILED, Outcome.ERROR, Outcome.SKIPPED):
            if n := self.count(o):
                parts.append(f"{n} {o.value}")
        if self.collected != self.expected:
            parts.append(f"collected {self.collected} of {self.expected}")
        parts.extend(v.value for v in self.verdicts)
        if self.error:
            parts.append(f"error: {self.error.splitlines()[0][:120]}")
        text = ", ".join(parts)
        return f"{text}; every failure is {cause}" if cause else text

    def signature(self) -> str:
        """What failed and why, without run-specific noise (paths, timings, addresses), to spot
        a repeated failure."""
        parts = [
            f"{t.nodeid}:{t.outcome.value}:{t.falsifying_example}:{failure_line(t.failure)}"
            for t in self.tests
        ]
        parts += [v.value for v in self.verdicts]
        parts.append(f"{self.collected}/{self.expected}")
        if self.error:
            parts.append(self.error.splitlines()[0])
        return "\n".join(sorted(parts))

    def failure_text(self, limit: int = 4000) -> str:
        """What went wrong, for a person or for the fix loop's prompt."""
        chunks = []
        if self.error:
            chunks.append(f"runner error: {self.error}")
        chunks.extend(f"resource verdict: {v.value}" for v in self.verdicts)
        if self.collected != self.expected:
            chunks.append(f"collected {self.collected} tests, expected {self.expected}")
        for t in self.tests:
            if t.outcome != Outcome.PASSED:
                text = f"{t.nodeid}: {t.outcome.value}"
                if t.falsifying_example:
                    text += f"\n  falsifying example: {t.falsifying_example}"
                if t.failure:
                    text += f"\n{t.failure}"
                chunks.append(text)
        text = "\n\n".join(chunks)
        return text if len(text) <= limit else text[:limit] + "\n... (truncated)"


class Attempt(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: int
    verdict: str
    summary: str = ""
    duration_s: float = 0.0


class Provenance(PublicModel):
    """How a version was made; signed along with the code, spec and report."""

    model_config = ConfigDict(extra="forbid")

    builder: str = "toolsmith"
    builder_version: str = ""
    source: str = Field(description="'llm', 'hand-written', or 'spec+llm'")
    model: str | None = None
    endpoint_kind: str | None = None
    task: str | None = None
    attempts: list[Attempt] = Field(default_factory=list)
    tokens: dict[str, int] = Field(default_factory=dict)
    prompt_digests: list[str] = Field(
        default_factory=list,
        description="sha256 of each prompt sent to the model (the canonical JSON of its "
        "messages), design, re-asks and code alike, in the order sent",
    )
    spec_revisions: int = 0
    duration_s: float = 0.0
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    extra: dict[str, Any] = Field(default_factory=dict)
