"""Versioned prompt sets and their bounded self-optimisation.

A ``PromptSet`` is the designer's system prompt and the code generator's system template (with
its ``{name}``, ``{deps}``, ``{caps}`` and ``{conflict}`` fields). The shipped set is version 0;
every later set is a checkpoint, ``v<N>.json`` in ``$TOOLSMITH_STATE/prompts`` (default
``$TOOLSMITH_HOME/state/prompts``), written once and never changed. ``active.json`` names the set
builds use; rollback points it at an earlier checkpoint. Prompts are the engine's, not a
registry's: they shape every build this user runs, so they live in the user's state dir, and every
checkpoint, activation and refused revision is recorded in the user's audit log there
(``toolsmith audit show --consumer``, event ``prompts``).

``improve_prompts`` is the bounded loop: split a suite into a part the proposal sees and a
held-out part it never sees; score the active set on both; ask the model for a revision from the
seen part's failures only; check the revision against the bounds (``revision_problems``: the
safety instructions kept verbatim, no capability or forbidden module the shipped prompts do not
name, the templates' fields intact, a size cap); score it on both parts; keep it only if the
held-out score rises and no task that passed before now fails. Anything else is refused, with
the reason, in the audit log.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import string
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from toolsmith import codegen, designer
from toolsmith.errors import ToolsmithError, UsageError
from toolsmith.files import atomic_write
from toolsmith.log import get_logger
from toolsmith.models import PublicModel

if TYPE_CHECKING:
    from toolsmith.audit import AuditLog
    from toolsmith.constitution import Constitution
    from toolsmith.evaluation import EvalRun, Suite
    from toolsmith.llm import LLM, Message
    from toolsmith.pipeline import BuildOptions
    from toolsmith.sandbox import Sandbox

log = get_logger(__name__)

MAX_PROMPT_CHARS = 6000
"""A revised prompt longer than this is refused: prompts grow by accretion, and every build pays."""

SAFETY = {
    "designer": [
        "Declare capabilities only if the task truly needs I/O (network:<host>, fs:read:<path>, "
        "...).",
    ],
    "codegen": [
        "- For bad input raise only the exceptions listed in `raises`, with a helpful message.",
        "- Be deterministic and never modify the arguments you receive.",
        "- {deps}",
        "- {caps}",
    ],
}
"""Lines of the shipped prompts every revision must keep verbatim (whitespace aside): what a tool
may import and do, and the contract the sandbox checks. ``{deps}`` and ``{caps}`` are filled with
the spec's own dependencies and capabilities ("stdlib only", "no I/O" when it has none)."""

CODEGEN_FIELDS = ("name", "deps", "caps", "conflict")

_CAPABILITY = re.compile(r"\b(?:network|fs:read|fs:write|env|subprocess)(?::[^\s,;)`'\"]*)?")
"""Capability words as a spec declares them (``network:<host>``, ``fs:write:/tmp``...)."""


def _squash(text: str) -> str:
    return " ".join(text.split())


class PromptSet(PublicModel):
    """One version of the designer and codegen prompts."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=0, description="0: the shipped prompts")
    designer: str = Field(min_length=1, description="the designer's system prompt")
    codegen: str = Field(
        min_length=1, description="the code generator's system template ({name} {deps} ...)"
    )
    parent: int | None = Field(default=None, description="the version it was revised from")
    created_at: str = ""
    reason: str = ""
    scores: dict[str, float] = Field(
        default_factory=dict, description="held-out and seen-part scores that earned its place"
    )

    @property
    def digest(self) -> str:
        """sha256 over the two prompts (what builds are given), not the bookkeeping."""
        body = json.dumps({"designer": self.designer, "codegen": self.codegen}, sort_keys=True)
        return "sha256:" + hashlib.sha256(body.encode()).hexdigest()

    @property
    def label(self) -> str:
        return f"v{self.version} {self.digest[:19]}"


def builtin() -> PromptSet:
    """The shipped prompts, version 0."""
    return PromptSet(
        version=0, designer=designer.SYSTEM, codegen=codegen.SYSTEM, reason="shipped with toolsmith"
    )


def revision_problems(
    revised: PromptSet, constitution: Constitution | None = None
) -> list[tuple[str, str]]:
    """Why ``revised`` may not be used, as (bound id, problem) pairs; empty when it may.

    Bounds, checked against the shipped prompts (never against an earlier revision, so bounds do
    not drift): ``keeps-safety`` (each ``SAFETY`` line, verbatim), ``no-capability-widening``
    (no capability word, and no module or call the constitution forbids, that the shipped prompt
    does not already name), ``template-fields`` (the codegen template has exactly its fields and
    formats), ``max-prompt-chars`` (``MAX_PROMPT_CHARS`` per prompt).
    """
    from toolsmith.constitution import load_constitution

    rules = constitution if constitution is not None else load_constitution()
    forbidden = sorted(
        {
            m.split(".")[-1]
            for r in rules.rules
            if r.enabled and r.kind in ("import", "call")
            for m in r.match
            if "*" not in m
        }
    )
    base = builtin()
    problems: list[tuple[str, str]] = []
    for part in ("designer", "codegen"):
        text, shipped = getattr(revised, part), getattr(base, part)
        squashed = _squash(text)
        for line in SAFETY[part]:
            if _squash(line) not in squashed:
                problems.append(("keeps-safety", f"the {part} prompt drops {line!r}"))
        for word in sorted(set(_CAPABILITY.findall(text)) - set(_CAPABILITY.findall(shipped))):
            problems.append(("no-capability-widening", f"the {part} prompt names {word!r}"))
        for name in forbidden:
            pattern = re.compile(rf"(?<![\w.]){re.escape(name)}\b")
            if pattern.search(text) and not pattern.search(shipped):
                problems.append(
                    ("no-capability-widening", f"the {part} prompt names forbidden {name!r}")
                )
        if len(text) > MAX_PROMPT_CHARS:
            problems.append(
                (
                    "max-prompt-chars",
                    f"the {part} prompt has {len(text)} characters, over {MAX_PROMPT_CHARS}",
                )
            )
    fields = [f for _, f, _, _ in string.Formatter().parse(revised.codegen) if f is not None]
    if sorted(fields) != sorted(CODEGEN_FIELDS):
        problems.append(
            (
                "template-fields",
                f"the codegen template's fields are {sorted(fields)}, not exactly "
                f"{sorted(CODEGEN_FIELDS)} once each (write other braces as {{{{ and }}}})",
            )
        )
    return problems


class PromptStore:
    """Prompt set checkpoints and the active pointer in ``root`` (default
    ``$TOOLSMITH_STATE/prompts``), with every change in the user's audit log."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        from toolsmith.registry import consumer_audit

        self.audit: AuditLog = consumer_audit()
        self.root = Path(root) if root is not None else self.audit.path.parent / "prompts"

    def _path(self, version: int) -> Path:
        return self.root / f"v{version}.json"

    def _numbers(self) -> list[int]:
        if not self.root.is_dir():
            return []
        return sorted(int(p.stem[1:]) for p in self.root.glob("v*.json") if p.stem[1:].isdigit())

    def versions(self) -> list[PromptSet]:
        """Every checkpoint, version 0 (shipped) first."""
        return [builtin()] + [self.get(v) for v in self._numbers() if v > 0]

    def get(self, version: int) -> PromptSet:
        """Checkpoint ``version``; a ``UsageError`` naming the known ones when there is none."""
        if version == 0:
            return builtin()
        path = self._path(version)
        try:
            data = json.loads(path.read_text())
            found = PromptSet.model_validate(data)
        except FileNotFoundError:
            raise UsageError(
                f"there is no prompt set v{version} in {self.root}",
                hint="`toolsmith prompts list` shows the versions",
            ) from None
        except (OSError, ValueError, ValidationError) as e:
            raise UsageError(
                f"prompt set {path} is unreadable: {e}",
                hint="roll back to another version (`toolsmith prompts rollback N`)",
            ) from None
        if found.version != version:
            raise UsageError(
                f"{path} holds version {found.version}, not {version}",
                hint="roll back to another version (`toolsmith prompts rollback N`)",
            )
        return found

    def active(self) -> PromptSet:
        """The set builds use: the one ``active.json`` names, else the shipped one."""
        pointer = self.root / "active.json"
        if not pointer.exists():
            return builtin()
        try:
            version = int(json.loads(pointer.read_text())["version"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise UsageError(
                f"{pointer} is unreadable: {e}",
                hint="`toolsmith prompts rollback 0` returns to the shipped prompts",
            ) from None
        return self.get(version)

    def checkpoint(self, prompts: PromptSet, reason: str) -> PromptSet:
        """Save ``prompts`` as the next version (audited); the bounds are checked first."""
        problems = revision_problems(prompts)
        if problems:
            raise UsageError(
                "the prompt set breaks its bounds: " + "; ".join(f"[{b}] {p}" for b, p in problems),
                hint="keep the safety lines verbatim, name no new capability, stay under "
                f"{MAX_PROMPT_CHARS} characters",
            )
        version = max([0, *self._numbers()]) + 1
        saved = prompts.model_copy(
            update={
                "version": version,
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "reason": reason,
            }
        )
        self._audit("checkpoint", saved, reason)
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            _write_new(self._path(version), saved.model_dump_json(indent=2))
        except FileExistsError:
            raise UsageError(
                f"prompt set v{version} appeared in {self.root} while it was being saved",
                hint="another improve run is saving prompt sets: let it finish, then retry",
            ) from None
        return saved

    def activate(self, version: int, reason: str) -> PromptSet:
        """Make checkpoint ``version`` the active set (audited): a keep or a rollback."""
        chosen = self.get(version)
        self._audit("activate", chosen, reason)
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write(self.root / "active.json", json.dumps({"version": version}).encode())
        return chosen

    def refused(self, prompts: PromptSet, reason: str, data: dict[str, Any]) -> None:
        """Record a revision that was not kept, and why."""
        self._audit("refuse", prompts, reason, data)

    def _audit(
        self, action: str, prompts: PromptSet, reason: str, data: dict[str, Any] | None = None
    ) -> None:
        self.audit.path.parent.mkdir(parents=True, exist_ok=True)
        self.audit.append(
            "prompts",
            actor="toolsmith",
            subject=f"prompts v{prompts.version}" if action != "refuse" else "prompts (revision)",
            reason=f"{action}: {reason}",
            data={
                "action": action,
                "version": prompts.version,
                "digest": prompts.digest,
                "parent": prompts.parent,
                **(data or {}),
            },
        )


def _write_new(path: Path, text: str) -> None:
    """Create ``path`` with ``text`` whole; an existing checkpoint is never overwritten
    (``FileExistsError``)."""
    atomic_write(path, text.encode(), exclusive=True)


# -- the bounded optimisation loop ---------------------------------------------------------------


class PromptRevision(BaseModel):
    """The model's proposal: both prompts rewritten, and why."""

    model_config = ConfigDict(extra="forbid")

    rationale: str = Field(min_length=3, max_length=1000)
    designer: str = Field(min_length=50, max_length=MAX_PROMPT_CHARS)
    codegen: str = Field(min_length=50, max_length=MAX_PROMPT_CHARS)


PROPOSE_SYSTEM = """You improve the system prompts of a tool-building engine. A designer prompt
turns a task into a typed tool specification; a code prompt turns the specification into a Python
module. You see both prompts and the tasks the engine failed, with what went wrong. Propose
revised prompts that would avoid those failures in general, not just for these tasks.
Keep every line that states what a tool may import or do, and the exception and determinism
rules, exactly as written. Keep the code prompt's {name}, {deps}, {caps} and {conflict} fields,
once each. Never grant a capability, a module or a call the current prompts do not. Stay short."""


def propose_messages(current: PromptSet, failures: Sequence[str]) -> list[Message]:
    user = (
        "Designer prompt:\n<<<\n"
        + current.designer
        + "\n>>>\n\nCode prompt:\n<<<\n"
        + current.codegen
        + "\n>>>\n\nFailed tasks:\n"
        + "\n".join(f"- {f}" for f in failures)
    )
    return [{"role": "system", "content": PROPOSE_SYSTEM}, {"role": "user", "content": user}]


def propose(llm: LLM, current: PromptSet, failures: Sequence[str]) -> PromptSet:
    """A revision of ``current`` from ``failures`` (one line per failed task); ``LLMError``s as
    ``ask_structured`` raises them. The result is unchecked: see ``revision_problems``."""
    from toolsmith.llm import ask_structured

    answer = ask_structured(llm, propose_messages(current, failures), PromptRevision)
    return PromptSet(
        version=current.version,
        designer=answer.designer,
        codegen=answer.codegen,
        parent=current.version,
        reason=answer.rationale,
    )


def split(suite: Suite, holdout: float = 0.5, seed: int = 0) -> tuple[list[str], list[str]]:
    """Task ids of the part a proposal sees and of the held-out part, shuffled by ``seed``;
    each part has at least one task."""
    ids = [t.id for t in suite.tasks]
    if len(ids) < 2:
        raise UsageError(
            f"suite {suite.name} has {len(ids)} task: a held-out split needs two or more",
            hint="use a suite with more tasks",
        )
    random.Random(seed).shuffle(ids)
    held = min(len(ids) - 1, max(1, round(len(ids) * holdout)))
    return sorted(ids[held:]), sorted(ids[:held])


Outcome = Literal["kept", "no_gain", "regression", "out_of_bounds", "no_proposal"]


class RoundResult(BaseModel):
    """One proposal and what became of it."""

    round: int
    outcome: Outcome
    reason: str
    candidate_digest: str | None = None
    version: int | None = Field(default=None, description="the checkpoint, when kept")
    held_out_before: float
    held_out_after: float | None = None
    regressions: list[str] = Field(default_factory=list, description="tasks that passed before")


class Improvement(PublicModel):
    """What ``improve_prompts`` did: the split, the scores, each round and the active set."""

    suite: str
    seen: list[str]
    held_out: list[str]
    started_from: int
    active: int
    rounds: list[RoundResult] = Field(default_factory=list)


Evaluate = Callable[["Suite", PromptSet], "EvalRun"]


def _score(run: EvalRun, ids: Sequence[str]) -> float:
    wanted = set(ids)
    rows = [r for r in run.results if r.id in wanted]
    return sum(r.success for r in rows) / len(rows) if rows else 0.0


def _failures(run: EvalRun, ids: Sequence[str], suite: Suite) -> list[str]:
    """One line per failed task of the seen part: its text and what went wrong."""
    text = {t.id: t.task for t in suite.tasks}
    out = []
    for r in run.results:
        if r.id in ids and not r.success:
            why = r.error or r.hidden_summary or f"build {r.status} after {r.attempts} attempt(s)"
            out.append(f"{text[r.id]}: {why}")
    return out


def improve_prompts(
    suite: Suite,
    llm: LLM,
    *,
    store: PromptStore | None = None,
    evaluate: Evaluate | None = None,
    options: BuildOptions | None = None,
    sandbox: Sandbox | None = None,
    rounds: int = 1,
    holdout: float = 0.5,
    seed: int = 0,
) -> Improvement:
    """Propose up to ``rounds`` revisions of the active prompt set from ``suite``'s failures and
    keep each only if it earns its place (see the module docstring). ``evaluate(suite, prompts)``
    runs a suite with a prompt set (default: ``toolsmith.evaluation.run_suite`` with ``llm``,
    ``options`` with lessons off, and ``sandbox``). Every outcome is in the audit log."""
    store = store if store is not None else PromptStore()
    if evaluate is None:
        evaluate = _suite_runner(llm, options, sandbox)
    seen, held_out = split(suite, holdout, seed)
    current = store.active()
    report = Improvement(
        suite=suite.name,
        seen=seen,
        held_out=held_out,
        started_from=current.version,
        active=current.version,
    )
    before = evaluate(suite, current)
    for number in range(1, rounds + 1):
        base_held = _score(before, held_out)
        failures = _failures(before, seen, suite)
        if not failures:
            report.rounds.append(
                RoundResult(
                    round=number,
                    outcome="no_proposal",
                    reason="every task the proposal may see passed: nothing to learn from",
                    held_out_before=base_held,
                )
            )
            break
        try:
            candidate = propose(llm, current, failures)
        except ToolsmithError as e:
            log.warning("prompts.no_proposal", error=e.message[:200])
            report.rounds.append(
                RoundResult(
                    round=number,
                    outcome="no_proposal",
                    reason=f"the model gave no valid revision: {e.message}"[:500],
                    held_out_before=base_held,
                )
            )
            break
        bounds = revision_problems(candidate)
        if bounds:
            reason = "; ".join(f"[{b}] {p}" for b, p in bounds)
            store.refused(candidate, reason, {"bounds": [b for b, _ in bounds]})
            report.rounds.append(
                RoundResult(
                    round=number,
                    outcome="out_of_bounds",
                    reason=reason,
                    candidate_digest=candidate.digest,
                    held_out_before=base_held,
                )
            )
            continue
        after = evaluate(suite, candidate)
        new_held = _score(after, held_out)
        passed_before = {r.id for r in before.results if r.success}
        passed_after = {r.id for r in after.results if r.success}
        regressions = sorted(passed_before - passed_after)
        scores = {"held_out_before": base_held, "held_out_after": new_held}
        data = {**scores, "regressions": regressions, "held_out": held_out}
        result = RoundResult(
            round=number,
            outcome="kept",
            reason="",
            candidate_digest=candidate.digest,
            held_out_before=base_held,
            held_out_after=new_held,
            regressions=regressions,
        )
        if regressions:
            result.outcome = "regression"
            result.reason = "tasks that passed before now fail: " + ", ".join(regressions)
        elif new_held <= base_held:
            result.outcome = "no_gain"
            result.reason = f"held-out score {new_held:.2f} did not rise above {base_held:.2f}"
        if result.outcome != "kept":
            store.refused(candidate, result.reason, data)
            report.rounds.append(result)
            continue
        kept = store.checkpoint(
            candidate.model_copy(update={"scores": scores}),
            f"held-out score {base_held:.2f} -> {new_held:.2f}: {candidate.reason}"[:300],
        )
        store.activate(kept.version, f"kept by improve prompts on suite {suite.name}")
        result.version = kept.version
        result.reason = f"held-out score rose {base_held:.2f} -> {new_held:.2f}, no regression"
        report.rounds.append(result)
        current, before = kept, after
        report.active = kept.version
    return report


def _suite_runner(llm: LLM, options: BuildOptions | None, sandbox: Sandbox | None) -> Evaluate:
    from toolsmith.evaluation import run_suite
    from toolsmith.pipeline import BuildOptions

    # Lessons off: the prompts alone are being measured, not what earlier runs taught.
    opts = (options or BuildOptions()).model_copy(update={"lessons": False})

    def evaluate(suite: Suite, prompts: PromptSet) -> EvalRun:
        return run_suite(suite, llm, options=opts, sandbox=sandbox, prompts=prompts)

    return evaluate
