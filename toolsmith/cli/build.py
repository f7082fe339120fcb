"""`toolsmith build` and `toolsmith demo`: the main job; progress for people, JSON for scripts."""

from __future__ import annotations

import difflib
import itertools
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Group
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from toolsmith.cli._common import (
    ApiKeyOpt,
    BaseUrlOpt,
    JsonOpt,
    LLMRetriesOpt,
    LLMTimeoutOpt,
    MaxAttemptsOpt,
    MaxExamplesOpt,
    MaxTokensOpt,
    ModelOpt,
    MutantsOpt,
    MutationTimeOpt,
    RegistryOpt,
    build_flags,
    console,
    emit,
    err_console,
    escape,
)
from toolsmith.cli._image import ImageBuildDisplay
from toolsmith.errors import UsageError
from toolsmith.registry import Registry
from toolsmith.spec import ToolSpec, read_text

if TYPE_CHECKING:
    from toolsmith.pipeline import BuildResult, Progress


class Bump(StrEnum):
    PATCH = "patch"
    MINOR = "minor"
    MAJOR = "major"


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[Progress], None]]:
    if not enabled:
        yield lambda _p: None
        return
    with err_console.status("starting") as status:
        image = ImageBuildDisplay(err_console, status)

        def show(p: Progress) -> None:
            if p.stage == "image":
                image.step(p.detail)
                return
            if p.stage == "image ready":
                image.done(p.detail)
                return
            attempt = f" attempt {p.attempt}/{p.max_attempts}" if p.attempt else ""
            detail = f": {escape(p.detail)}" if p.detail else ""
            status.update(f"[bold]{p.stage}[/bold]{attempt}{detail}")
            if p.stage == "tested":
                err_console.print(f"  attempt {p.attempt}/{p.max_attempts}: {escape(p.detail)}")

        yield show


def render_result(result: BuildResult) -> None:
    if result.attempts:
        table = Table(title=f"build {result.build_id}", show_lines=False)
        for col in ("attempt", "verdict", "summary", "seconds"):
            table.add_column(col)
        for a in result.attempts:
            colour = "green" if a.verdict == "passed" else "red"
            table.add_row(
                str(a.number),
                f"[{colour}]{a.verdict}[/{colour}]",
                escape(a.summary),
                f"{a.duration_s:.2f}",
            )
        console.print(table)
    if result.report is not None:
        if result.report.mutation is not None:
            console.print(escape(result.report.mutation.summary()))
        for warning in result.report.warnings():
            console.print(f"[yellow]warning[/yellow] {escape(warning)}")
    if result.status == "reused":
        console.print(
            f"[green]reused[/green] {escape(result.reused or '')} (use --force to build anew)"
        )
    elif result.status == "published":
        assert result.record is not None
        console.print(
            f"[green]published[/green] {escape(result.ref or '')}  "
            f"digest {escape(result.record.digest[:19])}…  "
            f"signed by {', '.join(k[:12] for k in result.record.signers)}"
        )
    elif result.status == "pending_approval":
        assert result.record is not None
        ref = escape(result.ref or "")
        console.print(
            f"[yellow]pending approval[/yellow] {ref}: agents cannot load it until "
            f"`toolsmith approve {ref}`\n{escape(result.policy or '')}"
        )
    elif result.status == "dry_run":
        name = result.spec.name if result.spec else ""
        console.print(f"[green]passed[/green] {escape(name)} (dry run)")
    if result.lessons:
        console.print(f"lessons used: {escape(', '.join(result.lessons))}")
    if result.lesson:
        console.print(f"lesson kept: {escape(result.lesson)} (`toolsmith lessons show`)")
    if result.prediction is not None:
        p = result.prediction
        console.print(
            f"predicted success {p.probability:.0%} from {len(p.similar)} similar of "
            f"{p.history} past builds: {p.strategy.name} strategy "
            f"({p.strategy.max_attempts} attempts, {p.strategy.mutants} mutants, "
            f"{p.strategy.max_examples} examples)"
        )
    if result.tokens:
        t = result.tokens
        console.print(
            f"tokens: {t.get('prompt_tokens', 0)} prompt + {t.get('completion_tokens', 0)} "
            f"completion in {t.get('calls', 0)} calls; {result.duration_s:.1f}s"
        )


def _what_failed(failure: str) -> str:
    """The first failing test and its assertion message, from an attempt's failure text (which
    is pytest's report of the sandbox run: ``file::test: failed`` then ``E   `` lines)."""
    lines = [line.strip() for line in failure.splitlines() if line.strip()]
    test = next((line.split("::", 1)[1] for line in lines if "::" in line), "")
    test = test.removesuffix(": failed")
    message = next((line[1:].strip() for line in lines if line.startswith("E ")), "")
    message = message.removeprefix("AssertionError: ")
    if not message:
        return lines[0] if lines else "no detail"
    return f"{test}: {message}" if test else message


def explain_fixes(result: BuildResult) -> None:
    """For each attempt that failed and was followed by another: what it got wrong, what the
    model was sent, and the change its next answer made (a diff of the two codes)."""
    for failed, fix in itertools.pairwise(result.attempts):
        if failed.verdict == "passed" or not failed.code or not fix.code:
            continue
        diff = "".join(
            difflib.unified_diff(
                failed.code.splitlines(keepends=True),
                fix.code.splitlines(keepends=True),
                f"attempt {failed.number}",
                f"attempt {fix.number}",
            )
        )
        outcome = "passed" if fix.verdict == "passed" else f"{fix.verdict} ({fix.summary})"
        console.print(
            Panel(
                Group(
                    Text.assemble(
                        (f"attempt {failed.number} failed", "red"),
                        f" ({failed.summary}): {_what_failed(failed.failure)}",
                    ),
                    Text(
                        f"The model was sent that failure with its code. Its answer, attempt "
                        f"{fix.number}, made this change and {outcome}:"
                    ),
                    Syntax(diff or "(no change)", "diff", background_color="default"),
                ),
                title="what the fix loop did",
            )
        )


def build(
    task: Annotated[str | None, typer.Argument(help="What the tool should do.")] = None,
    spec: Annotated[Path | None, typer.Option(help="Bring your own ToolSpec (YAML/JSON).")] = None,
    impl: Annotated[
        Path | None, typer.Option(help="Bring your own implementation (needs --spec).")
    ] = None,
    registry: RegistryOpt = None,
    max_attempts: MaxAttemptsOpt = None,
    max_examples: MaxExamplesOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    llm_timeout: LLMTimeoutOpt = None,
    llm_retries: LLMRetriesOpt = None,
    max_tokens: MaxTokensOpt = None,
    dry_run: Annotated[bool, typer.Option(help="Prove the tool but do not publish it.")] = False,
    force: Annotated[bool, typer.Option(help="Build even if a registry tool fits.")] = False,
    version: Annotated[str | None, typer.Option(help="Publish as this exact version.")] = None,
    bump: Annotated[Bump, typer.Option(help="Which part of the version to raise.")] = Bump.PATCH,
    mutants: MutantsOpt = None,
    mutation_time: MutationTimeOpt = None,
    lessons: Annotated[
        bool,
        typer.Option(
            help="Recall lessons of similar builds into the prompts and keep new ones "
            "(`toolsmith lessons`)."
        ),
    ] = True,
    adapt: Annotated[
        bool,
        typer.Option(
            help="Predict the build's success from past builds (kept in $TOOLSMITH_HOME/state) "
            "and let it choose the attempt, mutant and example budget."
        ),
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Build a tool from a task (LLM), or from --spec [--impl], prove it and publish it."""
    from toolsmith.llm import LLMConfig, OpenAILLM
    from toolsmith.pipeline import BuildOptions, Toolsmith, require_success

    if (task is None) == (spec is None):
        raise UsageError(
            "give either a task or --spec",
            hint='toolsmith build "parse ISO dates", or toolsmith build --spec s.yaml',
        )
    if impl is not None and spec is None:
        raise UsageError("--impl needs --spec", hint="add --spec SPEC.yaml")
    options = BuildOptions(  # a bad value is a UsageError naming the field
        dry_run=dry_run,
        force=force,
        version=version,
        bump=bump.value,
        lessons=lessons,
        **build_flags(max_attempts, max_examples, mutants, mutation_time),
    )
    tool_spec = ToolSpec.from_file(spec) if spec is not None else None
    code = None
    if impl is not None:
        from toolsmith.codegen import check_impl

        code = read_text(impl, "implementation")
        check_impl(code, tool_spec.name if tool_spec else "", str(impl))
    llm = None
    if task is not None or code is None:
        config = LLMConfig.resolve(
            base_url=base_url,
            model=model,
            api_key=api_key,
            timeout_s=llm_timeout,
            max_retries=llm_retries,
            max_tokens=max_tokens,
        )
        llm = OpenAILLM(config)
    from toolsmith.metacognition import Metacognition

    meta = Metacognition() if adapt and task is not None else None
    with (
        _progress(not as_json) as show,
        Toolsmith(Registry(registry), llm, on_progress=show, metacognition=meta) as ts,
    ):
        if tool_spec is not None:
            result = ts.build_from_spec(tool_spec, code, options)
        else:
            assert task is not None
            result = ts.build(task, options)
    emit(result, as_json, lambda: render_result(result))
    require_success(result)


DEMO_TASK = "Parse a human duration like '1h30m' into seconds"
DEMO_CALLS = ("1h30m", "2d 4h", "90 minutes")


def demo(
    registry: RegistryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A whole build with a scripted model (no API key): design, fail, fix, sign, publish, call."""
    from toolsmith.errors import ToolCallError
    from toolsmith.llm import LLMConfig, OpenAILLM
    from toolsmith.pipeline import BuildOptions, Toolsmith, require_success
    from toolsmith.testing import ScriptedLLMServer

    script = resources.files("toolsmith").joinpath("data/demo_script.yaml")
    with tempfile.TemporaryDirectory(prefix="toolsmith-demo-") as tmp:
        reg = Registry(registry or str(Path(tmp) / "registry"))
        if not as_json:
            console.print(
                Panel(
                    "This demo uses a [bold]scripted model[/bold]: a local server speaking the "
                    "OpenAI API replays canned answers. Everything else is real: the sandbox, "
                    "the tests, signing, the registry and the call.",
                    title="toolsmith demo",
                )
            )
        with ScriptedLLMServer(str(script)) as server:
            llm = OpenAILLM(LLMConfig(base_url=server.base_url, model=server.script.model))
            with _progress(not as_json) as show, Toolsmith(reg, llm, on_progress=show) as ts:
                result = ts.build(DEMO_TASK, BuildOptions(force=True))
        if not as_json:
            render_result(result)
            explain_fixes(result)
        require_success(result)
        assert result.ref is not None
        calls = []
        with reg.load(result.ref, runtime="docker", actor="toolsmith demo") as tool:
            for text in DEMO_CALLS:
                try:
                    calls.append({"args": {"text": text}, "result": tool(text=text)})
                except ToolCallError as e:
                    calls.append({"args": {"text": text}, "error": str(e)})
        if as_json:
            emit({"build": result, "calls": calls}, True, lambda: None)
            return
        if result.code:
            console.print(Syntax(result.code, "python", line_numbers=False))
        table = Table(
            title=f"agent calls to {escape(tool.ref)} (docker runtime, verified {tool.digest[:12]})"
        )
        table.add_column("args")
        table.add_column("outcome")
        for call in calls:
            outcome = (
                escape(repr(call["result"]))
                if "result" in call
                else f"[red]{escape(call['error'])}[/red]"
            )
            table.add_row(escape(repr(call["args"])), outcome)
        console.print(table)
