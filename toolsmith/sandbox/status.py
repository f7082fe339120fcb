"""What warm pools are doing, across processes: each pool writes its ``PoolStatus`` to a file.

A pool lives in the process that runs jobs (a build, an MCP server, a benchmark), while
``toolsmith sandbox status`` is another process; so every pool keeps
``<state dir>/sandbox/pools/<id>.json`` current (written by its own thread, never on a job's
path) and removes it when closed. ``pool_statuses`` reads them back, dropping files whose owner
process is gone. The state dir is the settings' (``$TOOLSMITH_STATE``, else
``$TOOLSMITH_HOME/state``, else the per-user state directory), as the registry client's.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from toolsmith.files import atomic_write
from toolsmith.sandbox.cleanup import owner_alive
from toolsmith.settings import Settings


class PoolStatus(BaseModel):
    """One warm pool's sizes, counts and container start times (seconds) at ``updated``."""

    id: str = Field(description="the pool's id, its containers' toolsmith.sandbox.pool label")
    owner: str = Field(description="host:pid:start-time of the process holding it")
    image: str
    memory_mb: int = Field(description="the memory limit of its containers")
    size: int = Field(description="containers kept ready while in use")
    max_size: int = Field(description="the most it grows to on a burst")
    parallel: int = Field(description="containers started at once")
    target: int = Field(description="containers wanted ready or in use now (0: idle, stopped)")
    ready: int
    starting: int
    in_use: int
    jobs: int = Field(description="jobs served")
    cold_jobs: int = Field(description="jobs that found no ready container")
    start_s_p50: float | None = Field(description="warm container start to ready, recent median")
    cold_start_s_p50: float | None = Field(
        description="container started for a waiting job (no warm-up), recent median"
    )
    idle_s: float = Field(description="seconds since the last job was handed a container")
    updated: datetime


def pools_dir() -> Path:
    """Where pools write their status."""
    return Settings.load().paths.state_root / "sandbox" / "pools"


def write_pool_status(status: PoolStatus) -> None:
    """Replace the pool's status file atomically; OSError if the state dir is not writable."""
    folder = pools_dir()
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / f"{status.id}.json", status.model_dump_json().encode())


def remove_pool_status(pool_id: str) -> None:
    (pools_dir() / f"{pool_id}.json").unlink(missing_ok=True)


def pool_statuses() -> list[PoolStatus]:
    """The status of every live pool on this host (files of dead owners are removed)."""
    found: list[PoolStatus] = []
    folder = pools_dir()
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            status = PoolStatus.model_validate_json(path.read_bytes())
        except (OSError, ValidationError):
            continue
        if owner_alive(status.owner):
            found.append(status)
        else:
            with contextlib.suppress(OSError):
                path.unlink()
    return found
