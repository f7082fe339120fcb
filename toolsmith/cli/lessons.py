"""`toolsmith lessons`: list, show and retire what failed builds taught (``toolsmith.lessons``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from toolsmith.cli._common import JsonOpt, RegistryOpt, console, emit, plain
from toolsmith.registry import Registry

if TYPE_CHECKING:
    from toolsmith.lessons import Lesson, LessonMemory

app = typer.Typer(
    help="The lessons memory: reflections on troubled builds, recalled into later prompts.",
    no_args_is_help=True,
)


def _memory(registry: str | None) -> LessonMemory:
    # Imported here: toolsmith.lessons brings the LLM client, which other commands need not load.
    from toolsmith.lessons import LessonMemory

    return LessonMemory(Registry(registry))


def _uses(lesson: Lesson) -> str:
    if not lesson.uses:
        return "unused"
    return f"{sum(u.passed for u in lesson.uses)}/{len(lesson.uses)} passed"


def _state(lesson: Lesson) -> str:
    if not lesson.audited:
        return "unaudited (never recalled)"
    return "retired" if lesson.retired is not None else "active"


@app.command("list")
def list_(
    registry: RegistryOpt = None,
    show_all: Annotated[bool, typer.Option("--all", help="Include retired lessons.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Lessons kept beside the registry, oldest first, with the outcomes of builds using them."""
    memory = _memory(registry)
    lessons = [x for x in memory.all() if show_all or x.retired is None]

    def render() -> None:
        table = Table(title=escape(f"{len(lessons)} lessons in {memory.path}"))
        table.add_column("id", no_wrap=True)
        for col in ("tool", "from", "builds using it", "state", "what went wrong"):
            table.add_column(col)
        for x in lessons:
            cells = (x.id, x.tool, x.outcome, _uses(x), _state(x), x.reflection.went_wrong)
            table.add_row(*map(plain, cells))
        console.print(table)

    emit(lessons, as_json, render)


@app.command("show")
def show(
    lesson_id: Annotated[str, typer.Argument(help="A lesson id (a unique prefix will do).")],
    registry: RegistryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One lesson: where it came from, the reflection, the prompt text and every use."""
    lesson = _memory(registry).get(lesson_id)

    def render() -> None:
        r = lesson.reflection
        lines = [
            f"{lesson.id}  {_state(lesson)}" + (f": {lesson.retired}" if lesson.retired else ""),
            f"learnt from build {lesson.build_id} of {lesson.tool} ({lesson.outcome}), "
            f"model {lesson.model}, {lesson.created_at}",
            f"task: {lesson.task or '(a given spec)'}",
            f"assumed: {r.assumed}",
            f"went wrong: {r.went_wrong}",
            f"fixed by: {r.fixed_by or '(nothing: no attempt passed)'}",
            f"prompt text: {lesson.prompt_text()}",
            f"builds using it: {_uses(lesson)}",
        ]
        lines += [
            f"  {u.at} build {u.build_id}: {'passed' if u.passed else 'failed'}, "
            f"{u.attempts} attempt(s)"
            for u in lesson.uses
        ]
        for line in lines:
            console.print(plain(line), soft_wrap=True)

    emit(lesson, as_json, render)


@app.command("retire")
def retire(
    lesson_id: Annotated[str, typer.Argument(help="A lesson id (a unique prefix will do).")],
    reason: Annotated[str, typer.Option(help="Why it is retired (kept in the audit log).")],
    registry: RegistryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Retire a lesson: it stays listed (--all) but is never recalled into a prompt again."""
    lesson = _memory(registry).retire(lesson_id, reason)
    emit(
        lesson,
        as_json,
        lambda: console.print(plain(f"retired {lesson.id}: {reason}"), soft_wrap=True),
    )
