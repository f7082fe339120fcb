"""The build pipeline: task -> spec -> code -> policy -> tests -> sandbox -> sign -> publish.

``Toolsmith`` wires the stages together and owns the bounded fix-retry loop. Stages talk through
pydantic models; this module decides only what runs next. The loop's state is one ``Build``
object; each attempt's code goes through the chains of checks in ``toolsmith.checks`` (policy,
tests in the sandbox, mutation gate ...), and the first check that fails decides the attempt and
the feedback the model gets. Progress is reported through a plain callback so the CLI can draw it
and a library caller can ignore it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from semantic_version import Version

from toolsmith import __version__
from toolsmith.analysis import Rule
from toolsmith.checks import (
    ADEQUACY_CHECKS,
    PROOF_CHECKS,
    AttemptState,
    AttemptVerdict,
    Progress,
    ProgressCallback,
    run_checks,
)
from toolsmith.codegen import NO_FENCE, SPEC_CONFLICT, ambiguous, check_impl, generate_code
from toolsmith.constitution import (
    Constitution,
    constitution_tests,
    load_constitution,
    policy_rules,
)
from toolsmith.dependencies import Lock
from toolsmith.designer import Candidate, design
from toolsmith.errors import (
    BuildError,
    LLMNotConfiguredError,
    LLMResponseError,
    LLMUnavailableError,
    ToolsmithError,
    UsageError,
    VersionConflictError,
)
from toolsmith.lessons import Lesson, LessonMemory
from toolsmith.llm import HOW_TO_CONFIGURE, LLM, Completion, Message
from toolsmith.loader import RuntimeName, Tool
from toolsmith.log import bound, get_logger
from toolsmith.metacognition import Metacognition, Prediction
from toolsmith.models import PublicModel
from toolsmith.policy import CapabilityPolicy, PolicyDecision, dependency_guidance, load_policy
from toolsmith.prompts import PromptSet, PromptStore
from toolsmith.registry import Registry, VerifiedTool, VersionRecord, VersionStatus
from toolsmith.report import Attempt, Provenance, TestReport
from toolsmith.sandbox import Sandbox, ensure_image
from toolsmith.settings import Settings
from toolsmith.spec import ToolSpec
from toolsmith.testgen import TestSuite, generate_tests

log = get_logger(__name__)

REGRESSION_VERSIONS = 5


class BuildStatus(StrEnum):
    PUBLISHED = "published"
    PENDING = "pending_approval"
    REUSED = "reused"
    DRY_RUN = "dry_run"
    FAILED = "failed"


class BuildOptions(PublicModel):
    """How one build runs. Unset fields take the ``[build]`` settings (``toolsmith.settings``:
    flags, ``TOOLSMITH_*`` variables, the config file, then the defaults)."""

    model_config = ConfigDict(extra="forbid")

    max_attempts: int = Field(
        default_factory=lambda: Settings.load().build.max_attempts, ge=1, le=20
    )
    max_spec_revisions: int = Field(default=1, ge=0, le=5)
    max_examples: int = Field(
        default_factory=lambda: Settings.load().build.max_examples, ge=1, le=10_000
    )
    force: bool = False
    dry_run: bool = False
    version: str | None = None
    bump: Literal["patch", "minor", "major"] = "patch"
    mutants: int = Field(
        default_factory=lambda: Settings.load().build.mutants,
        ge=0,
        le=1000,
        description="mutants the mutation gate runs after the tests pass (0: no gate)",
    )
    mutation_time_s: float = Field(
        default_factory=lambda: Settings.load().build.mutation_time_s, gt=0, le=3600
    )
    mutation_rounds: int = Field(
        default=2, ge=0, le=5, description="rounds of survivors sent back to the designer"
    )
    lessons: bool = Field(
        default=True,
        description="recall lessons of similar builds into the prompts, and reflect on a build "
        "whose attempts failed to keep a new one (toolsmith.lessons)",
    )

    @field_validator("version")
    @classmethod
    def _semver(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                Version(v)
            except ValueError:
                raise ValueError(f"version {v!r} is not a semantic version like 1.2.3") from None
        return v


class AttemptRecord(BaseModel):
    number: int
    verdict: AttemptVerdict
    summary: str
    failure: str = ""
    duration_s: float = 0.0
    code_digest: str = ""
    code: str = Field(default="", description="the code this attempt tested")


class BuildResult(PublicModel):
    """Everything a caller needs to know about one build, success or not."""

    build_id: str
    status: BuildStatus
    spec: ToolSpec | None = None
    code: str | None = None
    report: TestReport | None = None
    record: VersionRecord | None = None
    reused: str | None = None
    attempts: list[AttemptRecord] = Field(default_factory=list)
    spec_revisions: int = 0
    policy: str | None = Field(default=None, description="the capability policy's decision")
    tokens: dict[str, int] = Field(default_factory=dict)
    duration_s: float = 0.0
    lessons: list[str] = Field(default_factory=list, description="ids of the lessons it used")
    lesson: str | None = Field(default=None, description="id of the lesson it taught, if any")
    prediction: Prediction | None = Field(
        default=None, description="the predicted success and strategy, with metacognition on"
    )

    @property
    def ok(self) -> bool:
        return self.status != BuildStatus.FAILED

    @property
    def ref(self) -> str | None:
        if self.record is not None:
            return f"{self.record.name}@{self.record.version}"
        return self.reused


def _sha256(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


class PromptLog:
    """An LLM that records a digest of every prompt it is sent (design, re-asks, revisions and
    code alike) for the build's provenance: the canonical JSON of the messages, hashed."""

    def __init__(self, llm: LLM) -> None:
        self._llm = llm
        self.usage = llm.usage
        self.digests: list[str] = []

    @property
    def model(self) -> str:
        return self._llm.model

    @property
    def endpoint_kind(self) -> str:
        return self._llm.endpoint_kind

    def complete(
        self, messages: Sequence[Message], *, json_schema: dict[str, Any] | None = None
    ) -> Completion:
        prompt = json.dumps(list(messages), sort_keys=True, separators=(",", ":"))
        self.digests.append(_sha256(prompt))
        backend = type(self._llm).__name__
        try:
            completion = self._llm.complete(messages, json_schema=json_schema)
        except ToolsmithError:
            raise
        except Exception as e:  # a custom backend's own errors, mapped at this boundary
            raise LLMUnavailableError(
                f"the LLM backend {backend} raised {type(e).__name__}: {e}",
                hint="fix or restart the backend; its errors should be toolsmith LLMErrors",
            ) from e
        if not isinstance(completion, Completion) or not isinstance(completion.text, str):
            raise LLMResponseError(
                f"the LLM backend {backend} returned {type(completion).__name__}, not a "
                "Completion with text",
                hint="return toolsmith.llm.Completion(text=...) from complete()",
            )
        return completion


@dataclass
class Build:
    """One build's loop state, in one object: what the checks read and the fix loop carries
    from one attempt to the next.

    The checks (:mod:`toolsmith.checks`) reach the engine's sandbox, policy and constitution
    through ``engine``, and ``rounds`` (rounds of surviving mutants sent to the designer) is
    counted across attempts.
    """

    engine: Toolsmith
    opts: BuildOptions
    spec: ToolSpec
    task: str | None
    impl: str | None
    llm: PromptLog | None
    max_attempts: int
    rules: Sequence[Rule]
    progress: ProgressCallback
    code: str = ""
    attempts: list[AttemptRecord] = dataclasses.field(default_factory=list)
    revisions: int = 0
    rounds: int = 0
    report: TestReport | None = None
    decision: PolicyDecision | None = None
    feedback: str | None = None
    feedback_code: str | None = None  # the code ``feedback`` is about, if any
    insisted: bool = False  # the model was told to implement a spec it called contradictory
    last_signature: str = ""
    lessons: list[Lesson] = dataclasses.field(default_factory=list)  # recalled for the prompts

    @property
    def hints(self) -> list[str]:
        """The recalled lessons as prompt lines, for the designer and the code generator."""
        return [lesson.prompt_text() for lesson in self.lessons]

    # By spec: generated once, not per attempt.
    suites: dict[bytes, TestSuite] = dataclasses.field(default_factory=dict)
    prediction: Prediction | None = None  # metacognition's, kept in the provenance
    # By the spec's dependencies: resolved once per build.
    locks: dict[tuple[str, ...], Lock] = dataclasses.field(default_factory=dict)

    def lock(self, spec: ToolSpec) -> Lock | None:
        """``spec``'s dependencies resolved for the sandbox (None: stdlib only), once per set
        of dependencies; DependencyError (NoWheelError, IndexUnavailableError) as
        ``Sandbox.lock``."""
        if not spec.dependencies:
            return None
        key = tuple(spec.dependencies)
        if key not in self.locks:
            self.locks[key] = self.engine.sandbox.lock(spec.dependencies)
        return self.locks[key]

    def suite(self, spec: ToolSpec) -> TestSuite:
        """``spec``'s tests (with the constitution's and earlier versions'), made once."""
        key = spec.canonical_json()
        if key not in self.suites:
            self.suites[key] = self.engine._suite(spec, self.opts)
        return self.suites[key]


class Toolsmith:
    """The engine: build tools from tasks or specs, prove them, publish them."""

    def __init__(
        self,
        registry: Registry | None = None,
        llm: LLM | None = None,
        sandbox: Sandbox | None = None,
        *,
        policy: CapabilityPolicy | None = None,
        constitution: Constitution | None = None,
        on_progress: ProgressCallback | None = None,
        metacognition: Metacognition | None = None,
        prompts: PromptSet | None = None,
    ) -> None:
        """``prompts``: the designer and codegen prompts (default: the active set of
        ``toolsmith.prompts.PromptStore``, the shipped one until a revision is kept)."""
        self.registry = registry if registry is not None else Registry()
        self.prompts = prompts if prompts is not None else PromptStore().active()
        self.llm = llm
        self.policy = policy if policy is not None else load_policy()
        self.constitution = constitution if constitution is not None else load_constitution()
        self._rules = policy_rules(self.constitution)
        self._sandbox = sandbox
        self._owns_sandbox = sandbox is None
        self._progress = on_progress or (lambda _p: None)
        self.metacognition = metacognition

    @property
    def sandbox(self) -> Sandbox:
        """The engine's sandbox, opened on first use (see ``_open_sandbox``)."""
        return self._open_sandbox()

    def _open_sandbox(self) -> Sandbox:
        """Open the sandbox, building its image first if the engine lacks it (about a minute,
        once per set of image inputs): each step is reported as ``Progress("image", detail=step)``
        and the end as ``Progress("image ready", detail=tag)``; nothing is reported when the
        image is already there."""
        if self._sandbox is None:
            info = ensure_image(
                progress=lambda step: self._progress(Progress("image", detail=step))
            )
            if info.built:
                self._progress(Progress("image ready", detail=info.tag))
            self._sandbox = Sandbox(image=info)
        return self._sandbox

    def close(self) -> None:
        if self._owns_sandbox and self._sandbox is not None:
            self._sandbox.close()
            self._sandbox = None

    def __enter__(self) -> Toolsmith:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _need_llm(self) -> LLM:
        if self.llm is None:
            raise LLMNotConfiguredError("this build needs an LLM", hint=HOW_TO_CONFIGURE)
        return self.llm

    def build(self, task: str, options: BuildOptions | None = None) -> BuildResult:
        """Design a tool for ``task`` (or reuse a registry tool), then prove and publish it.

        With ``metacognition``, the build first predicts its success, runs with the strategy the
        prediction chose, and records the prediction and the outcome (``toolsmith.metacognition``).
        """
        opts = options or BuildOptions()
        if self.metacognition is None:
            return self._build(task, opts, None)
        prediction = self.metacognition.predict(task, opts)
        try:
            result = self._build(task, prediction.strategy.apply(opts), prediction)
        except (LLMNotConfiguredError, LLMUnavailableError):  # not the task's outcome
            raise
        except ToolsmithError:
            self.metacognition.record(prediction, None, task)
            raise
        if result.status != BuildStatus.REUSED:
            self.metacognition.record(prediction, result, task)
        return result

    def _build(self, task: str, opts: BuildOptions, prediction: Prediction | None) -> BuildResult:
        build_id = uuid.uuid4().hex[:12]
        started = time.monotonic()
        llm = PromptLog(self._need_llm())
        spent = llm.usage.as_dict()
        with bound(build_id=build_id):
            self._progress(Progress("design", detail=task))
            candidates = [] if opts.force else self._candidates(task)
            memory = LessonMemory.of(self.registry) if opts.lessons else None
            used = memory.recall(task) if memory is not None else []
            hints = [lesson.prompt_text() for lesson in used]
            answer = design(
                task,
                llm,
                candidates=candidates,
                lessons=hints,
                system=self.prompts.designer,
                dependencies=dependency_guidance(self.policy),
            )
            if answer.reuse is not None and answer.reuse not in {c.ref for c in candidates}:
                raise LLMResponseError(
                    f"the model insisted on reusing {answer.reuse}, which was not offered",
                    hint="retry, use --force with a stronger model, or write the spec (--spec)",
                )
            if answer.reuse is not None:
                log.info("build.reused", reuse=answer.reuse)
                tool = self.registry.find(answer.reuse)
                result = BuildResult(
                    build_id=build_id,
                    status=BuildStatus.REUSED,
                    reused=f"{tool.name}@{tool.version}",
                    tokens=llm.usage.since(spent),
                    duration_s=time.monotonic() - started,
                )
                self._audit(result, task)
                return result
            assert answer.spec is not None
            return self._prove(
                build_id,
                started,
                answer.spec,
                None,
                opts,
                task=task,
                spent=spent,
                llm=llm,
                used=used,
                prediction=prediction,
            )

    def get_or_build(
        self, task: str, options: BuildOptions | None = None, *, runtime: RuntimeName = "auto"
    ) -> Tool:
        """What an agent calls when it needs a capability: reuse a fitting tool, else build one."""
        opts = options or BuildOptions()
        if opts.dry_run:
            raise UsageError("get_or_build cannot load a dry-run build", hint="drop dry_run")
        result = require_success(self.build(task, opts))
        assert result.ref is not None
        return self.registry.load(result.ref, runtime=runtime, actor=f"build {result.build_id}")

    async def abuild(self, task: str, options: BuildOptions | None = None) -> BuildResult:
        return await asyncio.to_thread(self.build, task, options)

    async def aget_or_build(
        self, task: str, options: BuildOptions | None = None, *, runtime: RuntimeName = "auto"
    ) -> Tool:
        return await asyncio.to_thread(self.get_or_build, task, options, runtime=runtime)

    def build_from_spec(
        self, spec: ToolSpec, impl: str | None = None, options: BuildOptions | None = None
    ) -> BuildResult:
        """Bring your own spec, and optionally your own code: with both, no LLM is used. Code
        that cannot be tested (a syntax error, no function of the spec's name) is a UsageError
        before anything runs, since no model is there to repair it."""
        opts = options or BuildOptions()
        if impl is None:
            self._need_llm()
        else:
            check_impl(impl, spec.name)
        llm = PromptLog(self.llm) if self.llm else None
        spent = self.llm.usage.as_dict() if self.llm else {}
        return self._prove(
            uuid.uuid4().hex[:12],
            time.monotonic(),
            spec,
            impl,
            opts,
            task=None,
            spent=spent,
            llm=llm,
        )

    def _candidates(self, task: str) -> list[Candidate]:
        try:
            hits = self.registry.search(task, limit=5)
        except ToolsmithError as e:  # a broken registry must not stop a build: design anew
            log.warning("design.search_failed", error=str(e))
            return []
        out = []
        for hit in hits:
            try:
                tool = self.registry.resolve(f"{hit.name}@{hit.version}")
            except ToolsmithError as e:  # a broken registry entry must not stop a build
                log.warning("design.candidate_unusable", candidate=hit.name, error=str(e))
                continue
            out.append(
                Candidate(
                    ref=f"{tool.name}@{tool.version}",
                    description=tool.spec.description,
                    parameters=tool.spec.parameters,
                    returns=tool.spec.returns,
                )
            )
        return out

    def _prove(
        self,
        build_id: str,
        started: float,
        spec: ToolSpec,
        impl: str | None,
        opts: BuildOptions,
        *,
        task: str | None,
        spent: dict[str, int],
        llm: PromptLog | None,
        used: Sequence[Lesson] = (),
        prediction: Prediction | None = None,
    ) -> BuildResult:
        if opts.version and not opts.dry_run:
            taken = {r.version for r in self.registry.versions(spec.name)}
            if opts.version in taken:
                raise VersionConflictError(
                    f"{spec.name}@{opts.version} is already published; published versions "
                    "never change",
                    hint="pick another --version, or leave it out to take the next one",
                )
        build = Build(
            engine=self,
            opts=opts,
            spec=spec,
            task=task,
            impl=impl,
            llm=llm,
            max_attempts=1 if impl is not None else opts.max_attempts,
            rules=self._rules,
            progress=self._progress,
            code=impl or "",
            prediction=prediction,
        )
        memory = LessonMemory.of(self.registry) if opts.lessons and impl is None else None
        if memory is not None:  # the designer's lessons, then those the spec's text recalls
            query = f"{task or ''} {spec.name.replace('_', ' ')} {spec.description}"
            recalled = {lesson.id: lesson for lesson in [*used, *memory.recall(query)]}
            build.lessons = list(recalled.values())
        # The first suite before any model call, so a spec whose tests cannot run is refused
        # up front.
        build.suite(spec)
        # The sandbox opens before attempt 1's clock starts: building a missing image is set-up,
        # not the attempt's work.
        self._open_sandbox()
        with bound(build_id=build_id, tool=spec.name):
            for number in range(1, build.max_attempts + 1):
                if not self._attempt(build, number):
                    break
            return self._finish(build, build_id, started, spent, memory)

    def _attempt(self, build: Build, number: int) -> bool:
        """One attempt: new code (unless the caller's), then the checks. False: stop the loop."""
        t0 = time.monotonic()
        fenced, blocks = True, 1
        self._progress(Progress("generate", number, build.max_attempts))
        if number > 1 or build.impl is None:
            if build.llm is None:
                build.llm = PromptLog(self._need_llm())
            gen = generate_code(
                build.spec,
                build.llm,
                previous_code=build.feedback_code,
                feedback=build.feedback,
                lessons=build.hints,
                system=self.prompts.codegen,
            )
            if gen.conflict is not None:
                return self._conflict(build, number, gen.conflict, t0)
            build.code, fenced, blocks, build.insisted = gen.code, gen.fenced, gen.blocks, False
        state = run_checks(PROOF_CHECKS, build, AttemptState(build.spec, build.code, number))
        checked = state.outcome
        assert checked is not None
        if checked.verdict == AttemptVerdict.UNTESTABLE and not fenced:
            # The answer had no code block and its prose was read as code.
            checked = dataclasses.replace(checked, failure=f"{checked.failure}\n{NO_FENCE}")
        elif checked.verdict != AttemptVerdict.PASSED and blocks > 1:
            note = ambiguous(blocks, build.spec.name)
            checked = dataclasses.replace(checked, failure=f"{checked.failure}\n{note}")
        if checked.verdict == AttemptVerdict.PASSED:
            state = run_checks(ADEQUACY_CHECKS, build, state)
            build.spec, checked = state.spec, state.outcome
            assert checked is not None
        build.report, build.decision = checked.report, checked.decision
        build.attempts.append(
            AttemptRecord(
                number=number,
                verdict=checked.verdict,
                summary=checked.summary,
                failure=checked.failure,
                duration_s=time.monotonic() - t0,
                code_digest=_sha256(build.code),
                code=build.code,
            )
        )
        log.info("build.attempt", attempt=number, verdict=checked.verdict.value)
        if checked.verdict == AttemptVerdict.PASSED:
            return False
        if checked.final:
            log.info("build.stopped", reason="denied by policy")
            return False
        if checked.signature == build.last_signature:
            log.info("build.stopped_early", reason="identical repeated failure")
            return False
        build.feedback, build.last_signature = checked.failure, checked.signature
        build.feedback_code = build.code
        return True

    def _conflict(self, build: Build, number: int, conflict: str, t0: float) -> bool:
        """The model called the spec contradictory: revise a designed spec (within bounds), else
        tell the model to implement it as written, once. False: stop the loop."""
        build.attempts.append(
            AttemptRecord(
                number=number,
                verdict=AttemptVerdict.SPEC_CONFLICT,
                summary=f"spec conflict: {conflict}"[:200],
                failure=conflict,
                duration_s=time.monotonic() - t0,
            )
        )
        if build.task is None or build.insisted:
            # Nobody can revise a spec the caller wrote; a conflict the model repeats after
            # being told to implement the spec as written stands.
            log.info("build.stopped", reason="spec conflict", conflict=conflict)
            return False
        if build.revisions < build.opts.max_spec_revisions:
            assert build.llm is not None
            self._progress(Progress("revise spec", number, build.max_attempts))
            revised = design(
                build.task,
                build.llm,
                revision=(build.spec, conflict),
                lessons=build.hints,
                system=self.prompts.designer,
                dependencies=dependency_guidance(self.policy),
            )
            if revised.spec is not None:
                build.spec, build.revisions = revised.spec, build.revisions + 1
                build.feedback = build.feedback_code = None
                return True
        build.feedback, build.feedback_code = _conflict_feedback(conflict), None
        build.insisted = True
        return True

    def _finish(
        self,
        build: Build,
        build_id: str,
        started: float,
        spent: dict[str, int],
        memory: LessonMemory | None = None,
    ) -> BuildResult:
        """The build's result; a passing build is published (or held for approval). With a
        lessons ``memory``, the used lessons' outcomes are settled and a troubled build reflects."""
        spec, attempts = build.spec, build.attempts
        result = BuildResult(
            build_id=build_id,
            status=BuildStatus.FAILED,
            spec=spec,
            code=build.code,
            report=build.report,
            attempts=attempts,
            spec_revisions=build.revisions,
            tokens=self.llm.usage.since(spent) if self.llm else {},
            lessons=[lesson.id for lesson in build.lessons],
            prediction=build.prediction,
        )
        passed = bool(attempts) and attempts[-1].verdict == AttemptVerdict.PASSED
        if passed and build.opts.dry_run:
            result.status = BuildStatus.DRY_RUN
        elif passed:
            report, decision = build.report, build.decision
            assert report is not None and decision is not None
            self._progress(Progress("publish"))
            digests = build.llm.digests if build.llm is not None else []
            provenance = self._provenance(
                build.task, build.impl, attempts, build.revisions, digests, spec
            )
            provenance.tokens = result.tokens
            if build.prediction is not None:
                provenance.extra["prediction"] = build.prediction.provenance()
            provenance.duration_s = time.monotonic() - started
            if build.lessons:
                provenance.extra["lessons"] = result.lessons
            if build.llm is not None:
                provenance.extra["prompts"] = self.prompts.label
            pending = decision.decision == "needs_approval"
            result.record = self.registry.publish(
                spec,
                build.code,
                report,
                provenance,
                version=build.opts.version,
                bump=build.opts.bump,
                status=VersionStatus.PENDING if pending else VersionStatus.PUBLISHED,
            )
            result.status = BuildStatus.PENDING if pending else BuildStatus.PUBLISHED
            result.policy = decision.text()
        if memory is not None:
            self._learn(memory, result, build, passed)
            result.tokens = self.llm.usage.since(spent) if self.llm else {}
        result.duration_s = time.monotonic() - started
        self._audit(result, build.task)
        return result

    def _learn(self, memory: LessonMemory, result: BuildResult, build: Build, passed: bool) -> None:
        """Settle the used lessons' outcomes and keep what a troubled build taught."""
        attempts = len(result.attempts)
        if build.lessons:
            memory.settle(build.lessons, build_id=result.build_id, passed=passed, attempts=attempts)
        troubled = attempts > 1 or (attempts == 1 and not passed)
        if troubled and build.llm is not None:
            self._progress(Progress("reflect"))
            learnt = memory.learn(
                build.llm,
                build_id=result.build_id,
                task=build.task,
                spec=build.spec,
                attempts=result.attempts,
                passed=passed,
            )
            result.lesson = learnt.id if learnt is not None else None

    def _audit(self, result: BuildResult, task: str | None) -> None:
        name = result.spec.name if result.spec else (result.reused or "?").partition("@")[0]
        last = result.attempts[-1].summary if result.attempts else ""
        self.registry.record(
            "build",
            actor=self.llm.model if self.llm else "hand-written",
            subject=name,
            reason=f"{result.status.value}: {last or result.reused or ''}",
            data={
                "build_id": result.build_id,
                "task": task,
                "attempts": len(result.attempts),
                "lessons": result.lessons,
            },
        )

    def _suite(self, spec: ToolSpec, opts: BuildOptions) -> TestSuite:
        """This spec's tests, the constitution's state checks, and earlier versions' tests."""
        suite = generate_tests(spec, max_examples=opts.max_examples)
        extra = constitution_tests(self.constitution, spec)
        if extra is not None:
            suite = suite.merged(extra)
        for previous in self._regression_specs(spec.name, opts):
            name = "test_regression_" + previous.version.replace(".", "_").replace("-", "_")
            if previous.spec.examples or previous.spec.properties:
                old = generate_tests(
                    previous.spec, max_examples=opts.max_examples, generic=False, prefix=name
                )
                suite = suite.merged(old)
        return suite

    def _regression_specs(self, name: str, opts: BuildOptions) -> list[VerifiedTool]:
        """Earlier live versions the new one must still satisfy: same major, distinct specs.

        A declared breaking change (``--bump major`` or a higher explicit major) starts afresh.
        """
        records = [r for r in self.registry.versions(name) if r.status == VersionStatus.PUBLISHED]
        live = [r for r in records if not r.yanked]
        if not live:
            return []
        newest = max(Version(r.version) for r in records)
        target = Version(opts.version) if opts.version else None
        breaking = opts.bump == "major" if target is None else target.major > newest.major
        if breaking:
            return []
        major = target.major if target is not None else newest.major
        same = sorted(
            (r for r in live if Version(r.version).major == major),
            key=lambda r: Version(r.version),
            reverse=True,
        )
        seen: set[str] = set()
        out: list[VerifiedTool] = []
        for record in same:
            tool = self.registry.resolve(f"{name}@{record.version}")
            key = tool.spec.canonical_json().decode()
            if key not in seen and len(out) < REGRESSION_VERSIONS:
                seen.add(key)
                out.append(tool)
        return out

    def _provenance(
        self,
        task: str | None,
        impl: str | None,
        attempts: list[AttemptRecord],
        revisions: int,
        prompt_digests: list[str],
        spec: ToolSpec,
    ) -> Provenance:
        if impl is not None and len(attempts) == 1:
            source = "hand-written"
        elif task is None:
            source = "spec+llm"
        else:
            source = "llm"
        return Provenance(
            builder_version=__version__,
            source=source,
            model=self.llm.model if self.llm and source != "hand-written" else None,
            endpoint_kind=self.llm.endpoint_kind if self.llm and source != "hand-written" else None,
            task=task,
            attempts=[
                Attempt(
                    number=a.number,
                    verdict=a.verdict.value,
                    summary=a.summary,
                    duration_s=a.duration_s,
                )
                for a in attempts
            ],
            prompt_digests=prompt_digests,
            spec_revisions=revisions,
            extra={"spec_digest": _sha256(spec.canonical_json().decode())},
        )


def _conflict_feedback(conflict: str) -> str:
    """What the code model hears after a conflict the spec can no longer be revised for."""
    return (
        f"You answered that the specification contradicts itself: {conflict}\n"
        "It cannot be revised any further. Implement it as written so that every example and "
        f"property holds; answer {SPEC_CONFLICT} again only if no implementation can."
    )


def require_success(result: BuildResult) -> BuildResult:
    """Raise BuildError for a failed build, with the last attempt's failure."""
    if result.ok:
        return result
    last = result.attempts[-1] if result.attempts else None
    hint = (
        "read the attempts in the build report (--json), refine the task or spec, "
        "or raise --max-attempts"
    )
    if last is not None and last.verdict == AttemptVerdict.SPEC_CONFLICT:
        hint = (
            "the model found the spec contradicting itself: fix the parts it names (examples, "
            "properties, schemas) in a spec file for --spec, or reword the task"
        )
    raise BuildError(
        f"build {result.build_id} failed after {len(result.attempts)} attempt(s): "
        + (last.summary if last else "no attempt ran"),
        hint=hint,
    )
