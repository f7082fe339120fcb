"""Options and output shared by every command: the CLI parses and prints, nothing more."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape as escape_markup
from rich.text import Text

from toolsmith import log
from toolsmith.errors import ToolsmithError, UsageError, one_line
from toolsmith.settings import check_base_url

console = Console()
err_console = Console(stderr=True)


def _json_logs(value: bool) -> bool:
    if value:
        log.machine_output()
    return value


JsonOpt = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print machine-readable JSON (and log JSON lines, unless --log-format says).",
        callback=_json_logs,
    ),
]
ModelOpt = Annotated[str | None, typer.Option(help="Model name (else $TOOLSMITH_MODEL).")]


def _base_url(value: str | None) -> str | None:
    """``--base-url`` checked as it is parsed, whether or not the command asks a model."""
    if value:
        try:
            check_base_url(value)
        except ValueError as e:
            raise UsageError(
                f"--base-url {value!r} is {e}", hint="pass the endpoint's http(s) URL to --base-url"
            ) from None
    return value


BaseUrlOpt = Annotated[
    str | None,
    typer.Option(help="OpenAI-compatible endpoint (else $OPENAI_BASE_URL).", callback=_base_url),
]
ApiKeyOpt = Annotated[str | None, typer.Option(help="API key (else $OPENAI_API_KEY).")]
LLMTimeoutOpt = Annotated[
    float | None,
    typer.Option(help="Seconds to wait for one answer (else $TOOLSMITH_LLM_TIMEOUT; 120)."),
]
LLMRetriesOpt = Annotated[
    int | None,
    typer.Option(help="Retries of 429, 5xx and timeouts (else $TOOLSMITH_LLM_RETRIES; 3)."),
]
MaxTokensOpt = Annotated[
    int | None,
    typer.Option(help="Completion budget per answer (else $TOOLSMITH_LLM_MAX_TOKENS; 4096)."),
]
# The [build] knobs: left out, each takes its setting (environment, config file, default) through
# BuildOptions, so every command that builds reads them the same way.
MaxAttemptsOpt = Annotated[
    int | None,
    typer.Option(min=1, max=20, help="Fix-loop bound (else $TOOLSMITH_MAX_ATTEMPTS; 4)."),
]
MaxExamplesOpt = Annotated[
    int | None,
    typer.Option(
        min=1, max=10_000, help="Hypothesis examples per test (else $TOOLSMITH_MAX_EXAMPLES; 100)."
    ),
]
MutantsOpt = Annotated[
    int | None,
    typer.Option(
        min=0,
        max=1000,
        help="Mutants the mutation gate runs once the tests pass; 0 turns it off "
        "(else $TOOLSMITH_MUTANTS; 12).",
    ),
]
MutationTimeOpt = Annotated[
    float | None,
    typer.Option(
        min=1,
        max=3600,
        help="Seconds the mutation gate may start mutants (else $TOOLSMITH_MUTATION_TIME; 60).",
    ),
]
RegistryOpt = Annotated[
    str | None,
    typer.Option(
        "--registry",
        envvar="TOOLSMITH_REGISTRY",
        help="Registry directory or http(s) URL (default: $TOOLSMITH_REGISTRY, else "
        "$TOOLSMITH_HOME/registry, else a per-user data dir).",
        show_default=False,
    ),
]


def to_jsonable(data: Any) -> Any:
    if isinstance(data, BaseModel):
        return data.model_dump(mode="json")
    if isinstance(data, list | tuple):
        return [to_jsonable(d) for d in data]
    if isinstance(data, dict):
        return {k: to_jsonable(v) for k, v in data.items()}
    return data


def safe(text: str, indent: str = "") -> str:
    """``text`` for the terminal: every control character escaped (``one_line``) but line
    breaks, each continuation line starting with ``indent``. Tools and registries author much of
    what is shown, and must not move the cursor, erase lines or colour anything."""
    return ("\n" + indent).join(one_line(line) for line in text.split("\n"))


def escape(text: str) -> str:
    """``text`` to put into rich markup: its ``[`` not markup, its control characters escaped
    (``safe``). Every command uses this, not rich's own ``escape``."""
    return escape_markup(safe(text))


def plain(value: object) -> Text:
    """Data (names, descriptions, reasons, messages) as literal text: a ``[`` in it is not rich
    markup and a control character is escaped, so it can neither crash the output nor hide or
    rewrite the text around it."""
    return Text(safe(str(value)))


def print_error(e: ToolsmithError, prefix: str = "") -> None:
    """One line naming the error, and one with the fix when there is one. Lines the message
    goes on to are indented, so none of them can pass for the fix line or a new error."""
    err_console.print(
        Text.assemble(prefix, (type(e).__name__, "bold red"), ": ", safe(e.message, "  ")),
        highlight=False,
        soft_wrap=True,
    )
    if e.hint:
        err_console.print(
            Text.assemble(("fix", "yellow"), ": ", safe(e.hint, "  ")),
            highlight=False,
            soft_wrap=True,
        )


def emit(data: Any, as_json: bool, render: Callable[[], None]) -> None:
    """Print ``data`` as JSON for scripts, or call ``render`` for people."""
    if as_json:
        sys.stdout.write(json.dumps(to_jsonable(data), indent=2, sort_keys=True) + "\n")
    else:
        render()


def build_flags(
    max_attempts: int | None,
    max_examples: int | None,
    mutants: int | None,
    mutation_time: float | None,
) -> dict[str, Any]:
    """The ``[build]`` flags given, as ``BuildOptions`` fields; those left out are absent, so
    ``BuildOptions`` takes their settings."""
    given = {
        "max_attempts": max_attempts,
        "max_examples": max_examples,
        "mutants": mutants,
        "mutation_time_s": mutation_time,
    }
    return {k: v for k, v in given.items() if v is not None}
