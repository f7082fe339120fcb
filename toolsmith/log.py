"""structlog set-up: short lines for people, JSON lines for machines.

``configure(log_format=...)``: ``"human"`` writes ``level: event (key=value, ...)``, one line,
control characters escaped, no timestamp, so it reads beside the CLI's own ``Error: ...`` and
``fix:`` lines; ``"json"`` writes one JSON object per line with an ISO timestamp, for log
collectors and ``--json`` scripts; ``"auto"`` picks JSON when stderr is not a terminal. The CLI
takes the format and level from ``--log-format``/``--log-level``, ``$TOOLSMITH_LOG_FORMAT``/
``$TOOLSMITH_LOG_LEVEL`` or ``[log]`` (``toolsmith.settings``), and a command's ``--json`` asks
for JSON lines unless a format was chosen.

Context such as ``build_id`` and ``tool`` is bound with ``bound(...)`` and carried through every
stage by contextvars, so a log line always says which build and tool it belongs to.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import structlog

from toolsmith.errors import one_line

LogFormat = Literal["auto", "human", "json"]
_configured = False
_chosen: tuple[LogFormat, str] = ("auto", "WARNING")


def configure(*, log_format: LogFormat = "auto", level: str = "WARNING") -> None:
    """Set the format (``"auto"``: JSON when stderr is not a terminal) and the lowest level
    logged (debug, info, warning, error); may be called again to change them."""
    global _configured, _chosen
    _chosen = (log_format, level)
    use_json = log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())
    renderer: Any = structlog.processors.JSONRenderer() if use_json else _human
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        # Looked up per logger, not once: sys.stderr may be swapped (pytest, daemons) after this.
        logger_factory=lambda *_: structlog.PrintLogger(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    _configured = True


def machine_output() -> None:
    """A command is printing JSON for a script (``--json``): write JSON log lines too, unless
    a format was chosen (``"human"`` or ``"json"`` rather than ``"auto"``)."""
    log_format, level = _chosen
    if log_format == "auto":
        configure(log_format="json", level=level)


def _human(_logger: Any, _method: str, event: dict[str, Any]) -> str:
    """``level: event (key=value, ...)`` on one line (a traceback, if any, on the lines after)."""
    level = event.pop("level", "info")
    message = event.pop("event", "")
    event.pop("timestamp", None)
    trace = event.pop("exception", None)
    context = ", ".join(f"{k}={v}" for k, v in event.items())
    line = one_line(f"{level}: {message}" + (f" ({context})" if context else ""))
    return line + (f"\n{trace}" if trace else "")


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    if not _configured:
        configure()
    return structlog.get_logger(name)  # type: ignore[no-any-return]


@contextmanager
def bound(**context: Any) -> Iterator[None]:
    """Bind context (build_id, tool, version, ...) for everything logged inside the block."""
    with structlog.contextvars.bound_contextvars(**context):
        yield
