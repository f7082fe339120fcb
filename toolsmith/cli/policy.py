"""`toolsmith policy`: show the capability policy and constitution, check a tool against them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from toolsmith.analysis import analyze
from toolsmith.cli._common import JsonOpt, console, emit, escape
from toolsmith.constitution import load_constitution, policy_rules
from toolsmith.errors import PolicyError
from toolsmith.policy import evaluate_policy, load_policy
from toolsmith.spec import ToolSpec, read_text

app = typer.Typer(help="Show the capability policy and constitution; check a tool.")

PolicyOpt = Annotated[
    Path | None,
    typer.Option(
        "--policy",
        help="Policy TOML (default: $TOOLSMITH_POLICY, else the shipped default).",
        show_default=False,
    ),
]
ConstitutionOpt = Annotated[
    Path | None,
    typer.Option(
        "--constitution",
        help="Project constitution merged over the default (default: $TOOLSMITH_CONSTITUTION).",
        show_default=False,
    ),
]


@app.command("show")
def show(policy: PolicyOpt = None, as_json: JsonOpt = False) -> None:
    """Print the effective capability policy."""
    loaded = load_policy(policy)

    def render() -> None:
        table = Table(title=f"capability policy {escape(str(loaded.source))}")
        for col in ("section", "allow", "needs_approval", "deny", "default"):
            table.add_column(col)
        for name in ("capabilities", "imports", "dependencies"):
            section = getattr(loaded, name)
            table.add_row(
                name,
                escape("\n".join(section.allow)),
                escape("\n".join(section.needs_approval)),
                escape("\n".join(section.deny)),
                escape(section.default),
            )
        console.print(table)
        minimum = loaded.tests.min_mutation_score
        console.print(
            "tests: min_mutation_score "
            + ("unset (measured, not required)" if minimum is None else f"{minimum:g}")
        )

    emit(loaded, as_json, render)


@app.command("constitution")
def constitution(constitution: ConstitutionOpt = None, as_json: JsonOpt = False) -> None:
    """List the constitution's rules, the default merged with the project's."""
    loaded = load_constitution(constitution)

    def render() -> None:
        table = Table(title=f"constitution from {escape(', '.join(loaded.sources))}")
        for col in ("id", "kind", "enabled", "reason"):
            table.add_column(col)
        for r in loaded.rules:
            table.add_row(
                escape(r.id), escape(r.kind), "yes" if r.enabled else "no", escape(r.reason)
            )
        console.print(table)

    emit(loaded, as_json, render)


@app.command("check")
def check(
    spec: Annotated[Path, typer.Argument(help="Spec file (YAML or JSON).")],
    code: Annotated[Path, typer.Argument(help="Implementation module (.py).")],
    policy: PolicyOpt = None,
    constitution: ConstitutionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Analyse an implementation and decide: allow, needs_approval or deny (exit 8)."""
    tool = ToolSpec.from_file(spec)
    source = read_text(code, "code file")
    rules = policy_rules(load_constitution(constitution))
    decision = evaluate_policy(tool, analyze(source, tool, rules=rules), load_policy(policy))
    if decision.decision == "deny" and not as_json:
        raise PolicyError(decision.text(), hint="fix the code or the spec, or change the policy")
    emit(decision, as_json, lambda: console.print(decision.text(), soft_wrap=True, markup=False))
    if decision.decision == "deny":
        raise typer.Exit(PolicyError.exit_code)
