"""The benchmarks' baseline: the same Docker paths with the run-time barriers left out.

Inside ``unconfined()``, sandbox jobs and docker-runtime loads send the runner
``UNCONFINED_BASELINE`` instead of the tool's barrier plan, so a bench can time both in one run,
interleaved. Only the benchmarks do this; toolsmith itself always sends a plan.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import toolsmith.runtimes.docker as runtime
import toolsmith.sandbox.sandbox as sandbox
from toolsmith.sandbox.barriers import UNCONFINED_BASELINE


class _Baseline:
    def model_dump(self, mode: str = "json") -> dict[str, bool]:
        return dict(UNCONFINED_BASELINE)


@contextlib.contextmanager
def unconfined() -> Iterator[None]:
    """Jobs run and tools loaded in this block get no barriers (calls keep what they loaded)."""
    saved: tuple[Any, Any, Any] = (runtime.plan, sandbox.plan, sandbox.property_plan)
    runtime.plan = sandbox.plan = lambda grants: _Baseline()  # type: ignore[assignment]
    sandbox.property_plan = lambda: _Baseline()  # type: ignore[assignment]
    try:
        yield
    finally:
        runtime.plan, sandbox.plan, sandbox.property_plan = saved
