"""`toolsmith prompts list|show|rollback` and `toolsmith improve prompts --suite S`: the versioned
designer and codegen prompts (``toolsmith.prompts``) and their bounded self-optimisation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

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
    plain,
)

if TYPE_CHECKING:
    from toolsmith.prompts import Improvement

app = typer.Typer(
    help="The designer and codegen prompt sets: versions, the active one, rollback.",
    no_args_is_help=True,
)
improve_app = typer.Typer(help="Bounded self-improvement.", no_args_is_help=True)


@app.command("list")
def list_(as_json: JsonOpt = False) -> None:
    """Every prompt set version (0: shipped), marking the active one."""
    from toolsmith.prompts import PromptStore

    store = PromptStore()
    versions, active = store.versions(), store.active().version
    rows = [
        {
            "version": p.version,
            "active": p.version == active,
            "digest": p.digest,
            "parent": p.parent,
            "created_at": p.created_at,
            "reason": p.reason,
            "scores": p.scores,
        }
        for p in versions
    ]

    def render() -> None:
        table = Table(title=f"prompt sets in {store.root}")
        for col in ("version", "active", "digest", "from", "why"):
            table.add_column(col)
        for r in rows:
            table.add_row(
                plain(f"v{r['version']}"),
                "yes" if r["active"] else "",
                plain(str(r["digest"])[:19]),
                plain("-" if r["parent"] is None else f"v{r['parent']}"),
                plain(r["reason"]),
            )
        console.print(table)

    emit(rows, as_json, render)


@app.command("show")
def show(
    version: Annotated[
        int | None, typer.Argument(help="A version (default: the active one).", min=0)
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """One prompt set's designer and codegen prompts."""
    from toolsmith.prompts import PromptStore

    store = PromptStore()
    prompts = store.active() if version is None else store.get(version)

    def render() -> None:
        console.print(plain(f"prompt set {prompts.label}: {prompts.reason}"), soft_wrap=True)
        console.print(plain(f"--- designer ---\n{prompts.designer}"), soft_wrap=True)
        console.print(plain(f"--- codegen ---\n{prompts.codegen}"), soft_wrap=True)

    emit(prompts, as_json, render)


@app.command("rollback")
def rollback(
    version: Annotated[int, typer.Argument(help="The version builds should use again.", min=0)],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")] = "rollback",
    as_json: JsonOpt = False,
) -> None:
    """Make an earlier prompt set the active one (audited); 0 is the shipped set."""
    from toolsmith.prompts import PromptStore

    chosen = PromptStore().activate(version, reason)
    emit(chosen, as_json, lambda: console.print(plain(f"active prompt set: {chosen.label}")))


def _render_improvement(report: Improvement) -> None:
    console.print(
        plain(
            f"suite {report.suite}: proposals see {', '.join(report.seen)}; held out "
            f"{', '.join(report.held_out)}"
        ),
        soft_wrap=True,
    )
    table = Table(title=f"prompt revisions (v{report.started_from} -> v{report.active})")
    for col in ("round", "outcome", "held-out before", "after", "why"):
        table.add_column(col)
    for r in report.rounds:
        after = "-" if r.held_out_after is None else f"{r.held_out_after:.0%}"
        table.add_row(
            str(r.round), plain(r.outcome), f"{r.held_out_before:.0%}", after, plain(r.reason)
        )
    console.print(table)


@improve_app.command("prompts")
def improve_prompts_cmd(
    suite: Annotated[str, typer.Option(help="A packaged suite's name or a suite YAML file.")],
    tasks: Annotated[str | None, typer.Option(help="Only these task ids, comma-separated.")] = None,
    rounds: Annotated[int, typer.Option(min=1, max=10, help="Proposals to try.")] = 1,
    holdout: Annotated[
        float, typer.Option(min=0.1, max=0.9, help="Share of tasks the proposals never see.")
    ] = 0.5,
    seed: Annotated[int, typer.Option(help="Seed of the split.")] = 0,
    max_attempts: MaxAttemptsOpt = None,
    max_examples: MaxExamplesOpt = None,
    mutants: MutantsOpt = None,
    mutation_time: MutationTimeOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    llm_timeout: LLMTimeoutOpt = None,
    llm_retries: LLMRetriesOpt = None,
    max_tokens: MaxTokensOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Propose revised designer and codegen prompts from a suite's failures; keep one only if
    the held-out split's score rises and no task that passed now fails (audited)."""
    from toolsmith.evaluation import load_suite
    from toolsmith.llm import LLMConfig, OpenAILLM
    from toolsmith.pipeline import BuildOptions
    from toolsmith.prompts import improve_prompts

    loaded = load_suite(suite)
    if tasks:
        loaded = loaded.select(t.strip() for t in tasks.split(",") if t.strip())
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
    report = improve_prompts(
        loaded, llm, options=options, rounds=rounds, holdout=holdout, seed=seed
    )
    emit(report, as_json, lambda: _render_improvement(report))
