"""`toolsmith eval SUITE` and `toolsmith eval --compare A B`: tables for people, JSON for
scripts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

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
    build_flags,
    console,
    emit,
    err_console,
    plain,
)
from toolsmith.errors import UsageError

if TYPE_CHECKING:
    from toolsmith.evaluation import EvalRun, TaskResult
    from toolsmith.metacognition import Calibration


def _pct(p: float | None) -> str:
    return "-" if p is None else f"{p:.0%}"


def _hidden(r: TaskResult) -> str:
    colour = {"passed": "green", "failed": "red"}.get(r.hidden, "dim")
    return f"[{colour}]{r.hidden}[/{colour}]"


def render_run(run: EvalRun, saved: Path | None) -> None:
    table = Table(title=f"eval {run.suite} with {run.model} ({run.run_id})")
    for col in (
        "task",
        "status",
        "published",
        "hidden checks",
        "attempts",
        "spec rev.",
        "tokens",
        "seconds",
        "predicted",
        "strategy",
    ):
        table.add_column(col)
    for r in run.results:
        table.add_row(
            plain(r.id),
            plain(r.status),
            "yes" if r.published else "no",
            _hidden(r),
            str(r.attempts),
            str(r.spec_revisions),
            str(r.tokens),
            f"{r.wall_s:.1f}",
            _pct(r.predicted),
            plain(r.strategy or "-"),
        )
    t = run.totals
    table.add_section()
    table.add_row(
        "total",
        f"{t.tasks} tasks",
        f"{t.published}/{t.tasks}",
        f"{t.hidden_passed}/{t.tasks}",
        str(t.attempts),
        str(t.spec_revisions),
        str(t.tokens),
        f"{t.wall_s:.1f}",
        _pct(t.mean_predicted),
        "",
    )
    console.print(table)
    for r in run.results:
        if r.error or (r.hidden == "failed" and r.hidden_summary):
            console.print(plain(f"{r.id}: {r.error or r.hidden_summary}"))
    render_calibration(run.calibration, "calibration of this run (success: hidden checks pass)")
    if saved is not None:
        err_console.print(plain(f"saved {saved}"))


def render_calibration(cal: Calibration, title: str) -> None:
    if cal.brier is None:
        console.print(plain(f"{title}: no predictions"))
        return
    table = Table(title=f"{title}: Brier {cal.brier:.3f} over {cal.count}")
    for col in ("predicted", "builds", "mean predicted", "observed"):
        table.add_column(col)
    for b in cal.bins:
        table.add_row(
            f"{b.low:.1f}-{b.high:.1f}", str(b.count), _pct(b.mean_predicted), _pct(b.observed)
        )
    console.print(table)


def render_compare(a: EvalRun, b: EvalRun) -> None:
    from toolsmith.evaluation import compare

    table = Table(title=f"A {a.run_id} ({a.model})  vs  B {b.run_id} ({b.model})")
    for col in ("task", "A hidden", "B hidden", "A attempts", "B attempts", "A tokens", "B tokens"):
        table.add_column(col)
    table.add_column("change")
    for row in compare(a, b):
        table.add_row(
            plain(row.id),
            _hidden(row.a) if row.a else "-",
            _hidden(row.b) if row.b else "-",
            str(row.a.attempts) if row.a else "-",
            str(row.b.attempts) if row.b else "-",
            str(row.a.tokens) if row.a else "-",
            str(row.b.tokens) if row.b else "-",
            plain(row.change),
        )
    ta, tb = a.totals, b.totals
    table.add_section()
    table.add_row(
        "total",
        f"{ta.hidden_passed}/{ta.tasks}",
        f"{tb.hidden_passed}/{tb.tasks}",
        str(ta.attempts),
        str(tb.attempts),
        str(ta.tokens),
        str(tb.tokens),
        "",
    )
    console.print(table)
    ca, cb = a.calibration, b.calibration
    console.print(
        plain(
            "Brier: A "
            + ("-" if ca.brier is None else f"{ca.brier:.3f}")
            + ", B "
            + ("-" if cb.brier is None else f"{cb.brier:.3f}")
        )
    )


def eval_suite(
    suite: Annotated[
        str | None,
        typer.Argument(help="A packaged suite's name (e.g. core) or a suite YAML file."),
    ] = None,
    tasks: Annotated[str | None, typer.Option(help="Only these task ids, comma-separated.")] = None,
    compare_runs: Annotated[
        tuple[str, str] | None,
        typer.Option(
            "--compare",
            help="Show two saved runs (ids or JSON paths) side by side instead of running.",
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Save the run here (default $TOOLSMITH_HOME/evals).")
    ] = None,
    max_attempts: MaxAttemptsOpt = None,
    max_examples: MaxExamplesOpt = None,
    mutants: MutantsOpt = None,
    mutation_time: MutationTimeOpt = None,
    adapt: Annotated[
        bool,
        typer.Option(help="Predict each build's success and let it choose the budget."),
    ] = True,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    llm_timeout: LLMTimeoutOpt = None,
    llm_retries: LLMRetriesOpt = None,
    max_tokens: MaxTokensOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Build every task of a suite and check each tool against the task's hidden checks."""
    from toolsmith.evaluation import load_run, load_suite, run_suite, save_run

    if compare_runs is not None:
        if suite is not None:
            raise UsageError("give either a SUITE or --compare A B", hint="drop one of them")
        a, b = (load_run(r) for r in compare_runs)
        emit({"a": a.summary(), "b": b.summary()}, as_json, lambda: render_compare(a, b))
        return
    if suite is None:
        raise UsageError(
            "name a suite to run, or --compare two runs", hint="toolsmith eval core --tasks clamp"
        )
    loaded = load_suite(suite)
    if tasks:
        loaded = loaded.select(t.strip() for t in tasks.split(",") if t.strip())
    from toolsmith.llm import LLMConfig, OpenAILLM
    from toolsmith.metacognition import Metacognition
    from toolsmith.pipeline import BuildOptions

    options = BuildOptions(**build_flags(max_attempts, max_examples, mutants, mutation_time))
    llm = OpenAILLM(
        LLMConfig.resolve(
            base_url=base_url,
            model=model,
            api_key=api_key,
            timeout_s=llm_timeout,
            max_retries=llm_retries,
            max_tokens=max_tokens,
        )
    )
    total = len(loaded.tasks)
    done: list[Any] = []

    def show(task: Any, result: TaskResult) -> None:
        done.append(task)
        if not as_json:
            err_console.print(
                plain(f"  [{len(done)}/{total}] {task.id}: {result.status}, hidden {result.hidden}")
            )

    meta = Metacognition() if adapt else None
    run = run_suite(loaded, llm, options=options, metacognition=meta, on_task=show)
    saved = save_run(run, out)
    history = meta.calibration() if meta is not None else None

    def render() -> None:
        render_run(run, saved)
        if history is not None:
            render_calibration(history, "calibration of every recorded build (success: published)")

    data = run.summary()
    if history is not None:
        data["history_calibration"] = history.model_dump(mode="json")
    emit(data, as_json, render)
