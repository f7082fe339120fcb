"""structlog set-up: readable on a terminal, JSON lines for machines.

Context such as ``build_id`` and ``tool`` is bound with ``bound(...)`` and carried through every
stage by contextvars, so a log line always says which build and tool it belongs to.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog

_configured = False


def configure(*, json: bool | None = None, level: str = "WARNING") -> None:
    """Configure once per process; ``json=None`` picks JSON when stderr is not a TTY."""
    global _configured
    use_json = (not sys.stderr.isatty()) if json is None else json
    renderer: Any = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    )
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


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    if not _configured:
        configure()
    return structlog.get_logger(name)  # type: ignore[no-any-return]


@contextmanager
def bound(**context: Any) -> Iterator[None]:
    """Bind context (build_id, tool, version, ...) for everything logged inside the block."""
    with structlog.contextvars.bound_contextvars(**context):
        yield
