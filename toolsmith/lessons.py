"""The lessons memory (Reflexion): what failed builds taught, kept, recalled and retired.

After a build whose attempts failed before one passed, or that failed outright, the model writes a
short structured ``Reflection`` (what it assumed, what went wrong, what fixed it). It is kept as a
``Lesson`` in ``<registry>/lessons.jsonl``, beside the registry's audit log in the registry's
storage, because lessons are about the tools built into that registry and travel with it; a served
registry is read-only here and keeps none. The file is append-only events (a lesson, a use, a
retirement), replayed on read.

Lessons reach prompts, so each one is audited: adding one writes a ``lesson`` entry holding the
lesson's digest to the registry's hash-chained audit log first, and only lessons whose digest the
log holds are ever recalled. A line planted in ``lessons.jsonl`` (or an edited one) is listed as
unaudited and never reaches a model; retiring one writes a ``retire`` entry.

Before a build, lessons for similar tasks are recalled (bm25 over each lesson's task, tool
description and reflection) and given to the designer and the code generator; the build's
provenance names them. Each build that used a lesson is recorded against it as a use (passed or
not, attempts); a lesson whose builds keep failing does not help, and is retired: at least
``RETIRE_AFTER`` uses with fewer than half of them passed.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import os
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from toolsmith.errors import LLMError, ToolsmithError, UsageError
from toolsmith.log import get_logger
from toolsmith.models import PublicModel
from toolsmith.spec import ToolSpec, canonical_json

if TYPE_CHECKING:
    from toolsmith.llm import LLM, Message
    from toolsmith.registry import Registry

log = get_logger(__name__)

LESSONS_FILE = "lessons.jsonl"
MAX_LESSONS_BYTES = 64 * 1024 * 1024
"""What the lessons file may hold (a file over it is refused, not read): ~100,000 lessons."""
RETIRE_AFTER = 3
"""Uses a lesson must have before its record can retire it."""
RECALL_LIMIT = 3
"""Lessons given to one prompt at most: a few relevant ones, not the whole memory."""
_FIELD_CHARS = 400
_FAILURE_CHARS = 1200


class Reflection(BaseModel):
    """The model's answer after a troubled build: three short sentences."""

    model_config = ConfigDict(extra="forbid")

    assumed: str = Field(
        min_length=3, max_length=_FIELD_CHARS, description="what the first attempt assumed"
    )
    went_wrong: str = Field(
        min_length=3, max_length=_FIELD_CHARS, description="what went wrong, in general terms"
    )
    fixed_by: str = Field(
        default="",
        max_length=_FIELD_CHARS,
        description="what fixed it; empty when no attempt passed",
    )


class LessonUse(BaseModel):
    """One build that was given a lesson, and how it ended."""

    model_config = ConfigDict(extra="forbid")

    build_id: str
    passed: bool
    attempts: int = Field(ge=0)
    at: str


class Lesson(PublicModel):
    """A reflection kept for later builds, with the outcomes of the builds that used it."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="'lesson-' and 12 hex digits of the content digest")
    created_at: str
    build_id: str = Field(description="the build it was learnt from")
    task: str | None = Field(default=None, description="that build's task (None: a given spec)")
    tool: str = Field(description="the tool name that build designed")
    description: str = Field(description="the tool's description")
    outcome: Literal["recovered", "failed"] = Field(
        description="recovered: an attempt passed after failures; failed: none passed"
    )
    model: str = Field(description="the model that reflected")
    reflection: Reflection
    uses: list[LessonUse] = Field(default_factory=list)
    retired: str | None = Field(default=None, description="why it was retired; None: active")
    audited: bool = Field(
        default=False, description="the registry's audit log holds this lesson's digest"
    )

    def digest(self) -> str:
        """sha256 over the lesson as learnt (not its uses, retirement or audit state)."""
        return _digest(self.model_dump(mode="json", exclude=_STATE))

    @property
    def passed_share(self) -> float | None:
        """Share of the builds using it that passed; None before any use."""
        return sum(u.passed for u in self.uses) / len(self.uses) if self.uses else None

    def prompt_text(self) -> str:
        """The lesson as one bullet for a designer or code prompt."""
        r = self.reflection
        what = f"building {self.tool} ({self.description.rstrip('.')})"
        wrong = _sentence(r.went_wrong)
        text = f"When {what}, it was assumed that {r.assumed.rstrip('.')}; {wrong}"
        if r.fixed_by:
            text += f" What fixed it: {_sentence(r.fixed_by)}"
        return " ".join(text.split())


_STATE = {"uses", "retired", "audited"}


def _whoami() -> str:
    """The OS user, for the audit log: self-reported, so it names, not proves."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return f"uid {os.getuid()}"


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def _digest(fields: dict[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(canonical_json(fields)).hexdigest()


REFLECT_SYSTEM = """You review a build of a small Python tool that did not go smoothly: some
attempts failed the sandbox tests before one passed, or none passed. Write a short lesson for
future builds of similar tools: what the first attempt assumed, what went wrong (in general terms
that would help with another tool, not just this one), and what fixed it (empty if nothing did).
One or two sentences each, no code."""


def reflect_messages(task: str | None, spec: ToolSpec, attempts: Sequence[Any]) -> list[Message]:
    """The reflection prompt: the task, the spec's name and description, and each attempt's
    verdict, summary and failure text (cut to a bounded length)."""
    lines = [f"Task: {task}" if task else "Task: implement a given specification."]
    lines.append(f"Tool: {spec.name}: {spec.description}")
    for a in attempts:
        failure = a.failure[:_FAILURE_CHARS]
        lines.append(f"Attempt {a.number}: {a.verdict.value}: {a.summary}\n{failure}".rstrip())
    return [
        {"role": "system", "content": REFLECT_SYSTEM},
        {"role": "user", "content": "\n\n".join(lines)},
    ]


def reflect(llm: LLM, task: str | None, spec: ToolSpec, attempts: Sequence[Any]) -> Reflection:
    """Ask ``llm`` for a ``Reflection`` on ``attempts`` (``pipeline.AttemptRecord``s).
    Raises the ``LLMError``s of ``ask_structured``."""
    # Imported here: the LLM client (openai) is not needed to list or retire lessons.
    from toolsmith.llm import ask_structured

    return ask_structured(llm, reflect_messages(task, spec, attempts), Reflection, max_repairs=1)


_WORD = re.compile(r"[a-z0-9]+")


def _tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _document(lesson: Lesson) -> list[str]:
    r = lesson.reflection
    text = " ".join(
        [lesson.task or "", lesson.tool, lesson.description, r.assumed, r.went_wrong, r.fixed_by]
    )
    return _tokens(text)


def rank(lessons: Sequence[Lesson], query: str, limit: int = RECALL_LIMIT) -> list[Lesson]:
    """The ``limit`` lessons most relevant to ``query`` (a task, and spec text when there is
    one), best first, by bm25 over each lesson's task, tool and reflection; none that share no
    word with the query."""
    if not lessons or limit < 1:
        return []
    # Imported here: bm25s and numpy cost ~0.3 s, which CLI commands without a search would pay.
    import bm25s
    import numpy as np

    retriever = bm25s.BM25()
    retriever.index([_document(lesson) for lesson in lessons], show_progress=False)
    words = [w for w in _tokens(query) if w in retriever.vocab_dict]
    if not words:
        return []
    scores = np.asarray(retriever.get_scores(words))
    order = np.argsort(-scores, kind="stable")[:limit]
    return [lessons[int(i)] for i in order if scores[int(i)] > 0]


class LessonMemory:
    """The lessons kept beside one local registry (``<registry>/lessons.jsonl``).

    Reads replay the file; writes append one event under the log's lock, through the registry's
    storage (never through a symlink). Adding and retiring are recorded in the registry's audit
    log before the file changes. ``path`` names the file (on disk for a registry directory).
    """

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        # The registry's storage property refuses a served registry: it is read-only here.
        self._storage = registry.storage
        self.path = registry.audit.path.with_name(LESSONS_FILE)

    @classmethod
    def of(cls, registry: Registry) -> LessonMemory | None:
        """The memory beside ``registry``, or None for a served (read-only) registry."""
        try:
            return cls(registry)
        except UsageError:
            return None

    # -- reading -------------------------------------------------------------------------------

    def all(self) -> list[Lesson]:
        """Every lesson, oldest first, with its uses, retirement and audit state."""
        lessons: dict[str, Lesson] = {}
        for event in self._events():
            kind, ident = event.get("kind"), event.get("id")
            try:
                if kind == "lesson":
                    lesson = Lesson.model_validate(event["lesson"])
                    lessons.setdefault(lesson.id, lesson)
                elif kind == "use" and ident in lessons:
                    lessons[ident].uses.append(LessonUse.model_validate(event["use"]))
                elif kind == "retire" and ident in lessons:
                    lessons[ident].retired = str(event["reason"])
            except (ValidationError, KeyError, TypeError) as e:
                log.warning("lessons.bad_event", path=str(self.path), error=str(e)[:200])
        audited = self._audited_digests()
        for lesson in lessons.values():
            lesson.audited = lesson.digest() in audited and audited[lesson.digest()] == lesson.id
        return list(lessons.values())

    def get(self, lesson_id: str) -> Lesson:
        """The lesson ``lesson_id`` (a unique prefix will do); a ``UsageError`` if unknown."""
        lessons = self.all()
        found = [x for x in lessons if x.id == lesson_id] or [
            x for x in lessons if x.id.startswith(lesson_id)
        ]
        if len(found) != 1:
            what = "matches several lessons" if found else "is not a lesson"
            raise UsageError(
                f"{lesson_id!r} {what} in {self.path}",
                hint="`toolsmith lessons list` shows their ids",
            )
        return found[0]

    def recall(self, query: str, limit: int = RECALL_LIMIT) -> list[Lesson]:
        """Active, audited lessons most relevant to ``query``, best first."""
        usable = [x for x in self.all() if x.retired is None and x.audited]
        return rank(usable, query, limit)

    # -- writing -------------------------------------------------------------------------------

    def learn(
        self,
        llm: LLM,
        *,
        build_id: str,
        task: str | None,
        spec: ToolSpec,
        attempts: Sequence[Any],
        passed: bool,
    ) -> Lesson | None:
        """Reflect on a troubled build and keep the lesson; None (logged) when the build needs
        none (it passed at once) or the model could not reflect: a lesson is never worth failing
        a build for."""
        if not attempts or (passed and len(attempts) == 1):
            return None
        try:
            reflection = reflect(llm, task, spec, attempts)
        except LLMError as e:
            log.warning("lessons.no_reflection", build_id=build_id, error=e.message[:200])
            return None
        fields: dict[str, Any] = {
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "build_id": build_id,
            "task": task,
            "tool": spec.name,
            "description": spec.description,
            "outcome": "recovered" if passed else "failed",
            "model": llm.model,
            "reflection": reflection.model_dump(mode="json"),
        }
        lesson = Lesson(id="lesson-" + _digest(fields)[7:19], **fields)
        try:
            self.add(lesson)
        except ToolsmithError as e:
            log.warning("lessons.not_kept", build_id=build_id, error=e.message[:200])
            return None
        return lesson

    def add(self, lesson: Lesson) -> None:
        """Audit the lesson's digest, then append it."""
        self.registry.record(
            "lesson",
            actor=lesson.model,
            subject=lesson.tool,
            reason=lesson.reflection.went_wrong[:200],
            data={"lesson": lesson.id, "digest": lesson.digest(), "build_id": lesson.build_id},
        )
        self._append({"kind": "lesson", "lesson": lesson.model_dump(mode="json", exclude=_STATE)})
        log.info("lessons.learnt", lesson=lesson.id, tool=lesson.tool)

    def settle(
        self, used: Sequence[Lesson], *, build_id: str, passed: bool, attempts: int
    ) -> list[Lesson]:
        """Record a build's outcome against each lesson it used; retire those that, with this
        use, have ``RETIRE_AFTER`` uses or more and fewer than half of them passed. Returns the
        lessons retired now."""
        at = datetime.now(UTC).isoformat(timespec="seconds")
        use = LessonUse(build_id=build_id, passed=passed, attempts=attempts, at=at)
        for lesson in used:
            self._append({"kind": "use", "id": lesson.id, "use": use.model_dump(mode="json")})
        retired = []
        current = {x.id: x for x in self.all()}
        for lesson in used:
            now = current.get(lesson.id)
            if now is None or now.retired is not None or len(now.uses) < RETIRE_AFTER:
                continue
            share = now.passed_share or 0.0
            if share < 0.5:
                reason = (
                    f"did not help: {sum(u.passed for u in now.uses)} of {len(now.uses)} builds "
                    "using it passed"
                )
                retired.append(self.retire(now.id, reason, actor="toolsmith"))
        return retired

    def retire(self, lesson_id: str, reason: str, *, actor: str | None = None) -> Lesson:
        """Retire a lesson (audited as ``actor``, default the OS user): it is kept and listed,
        but never recalled again."""
        lesson = self.get(lesson_id)
        if lesson.retired is not None:
            raise UsageError(
                f"{lesson.id} is already retired: {lesson.retired}",
                hint="`toolsmith lessons list --all` shows retired lessons",
            )
        self.registry.record(
            "retire",
            actor=actor or _whoami(),
            subject=lesson.id,
            reason=reason,
            data={"lesson": lesson.id, "uses": len(lesson.uses)},
        )
        self._append({"kind": "retire", "id": lesson.id, "reason": reason})
        log.info("lessons.retired", lesson=lesson.id, reason=reason)
        return lesson.model_copy(update={"retired": reason})

    # -- files ---------------------------------------------------------------------------------

    def _audited_digests(self) -> dict[str, str]:
        """digest -> lesson id for every ``lesson`` entry in the registry's audit log."""
        audit = self.registry.audit
        if not audit.exists():
            return {}
        out: dict[str, str] = {}
        for entry in audit.entries():
            if entry.event == "lesson":
                digest, ident = entry.data.get("digest"), entry.data.get("lesson")
                if isinstance(digest, str) and isinstance(ident, str):
                    out[digest] = ident
        return out

    def _events(self) -> Iterator[dict[str, Any]]:
        with self._locked(append=False) as f:
            data = f.read()
        for number, line in enumerate(data.splitlines(), 1):
            try:
                event = json.loads(line)
            except ValueError:
                log.warning("lessons.bad_line", path=str(self.path), line=number)
                continue
            if isinstance(event, dict):
                yield event

    def _append(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, sort_keys=True, separators=(",", ":")).encode() + b"\n"
        with self._locked(append=True) as f:
            f.write(line)
            f.flush()

    def _locked(self, *, append: bool) -> contextlib.AbstractContextManager[IO[bytes]]:
        # Through the storage: a link planted as the file is refused, so an append never writes
        # a file elsewhere (the registry's own rule for everything inside it).
        return self._storage.open_log(LESSONS_FILE, append=append, cap=MAX_LESSONS_BYTES)
