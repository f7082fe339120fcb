"""The warm pool against the real Docker engine: sized by demand, visible in status, no leaks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from toolsmith.sandbox import WarmPool, pool_statuses
from toolsmith.sandbox.containers import OWNER_LABEL, POOL_LABEL

pytestmark = pytest.mark.docker

# Generous: under load a container start takes tens of seconds; nothing is asserted about time.
PATIENCE_S = 600.0


@pytest.fixture(autouse=True)
def _own_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pool status files go to this test's own state dir."""
    monkeypatch.setenv("TOOLSMITH_STATE", str(tmp_path / "state"))


def _eventually(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + PATIENCE_S
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def _pool_containers(pool_id: str) -> list[dict[str, Any]]:
    api = docker.from_env().api
    return list(api.containers(all=True, filters={"label": f"{POOL_LABEL}={pool_id}"}))


@pytest.fixture
def pool(sandbox_image: Any) -> Iterator[WarmPool]:
    with WarmPool(1, max_size=3, shrink_after_s=3600.0, image=sandbox_image) as p:
        yield p


def test_pool_grows_to_a_burst_and_refills_after_it(pool: WarmPool) -> None:
    """Three jobs in flight at once grow the pool to three, refilled ready once they finish."""
    assert pool.target == 1
    held = [pool.acquire() for _ in range(3)]
    assert pool.target == 3
    status = pool.status()
    assert status.in_use == 3 and status.jobs == 3 and status.cold_jobs >= 2
    for c in held:
        pool.release(c)
    assert _eventually(lambda: pool.ready_count == 3)
    assert pool.status().start_s_p50 is not None


def test_pool_growth_is_bounded_by_its_maximum(pool: WarmPool) -> None:
    """Four jobs in flight do not grow a pool of max_size 3 beyond three."""
    held = [pool.acquire() for _ in range(4)]
    try:
        assert pool.target == 3
    finally:
        for c in held:
            pool.release(c)


def test_pool_shrinks_back_when_the_burst_is_over(sandbox_image: Any) -> None:
    """Without another burst, the grown pool steps back to its size and stops the extra
    containers."""
    with WarmPool(1, max_size=3, shrink_after_s=2.0, image=sandbox_image) as pool:
        held = [pool.acquire() for _ in range(3)]
        assert pool.target == 3
        for c in held:
            pool.release(c)
        assert _eventually(lambda: pool.target == 1 and pool.status().ready <= 1)
        assert _eventually(lambda: len(_pool_containers(pool.id)) <= 1)


def test_idle_pool_stops_every_container(sandbox_image: Any) -> None:
    """After idle_expiry_s without a job the pool holds no container; a job still gets one."""
    with WarmPool(1, idle_expiry_s=1.0, image=sandbox_image) as pool:
        assert _eventually(lambda: pool.target == 0 and not _pool_containers(pool.id))
        container = pool.acquire()
        assert container.id
        pool.release(container)


def test_a_cold_container_skips_the_warm_up(sandbox_image: Any) -> None:
    """A container started for a waiting job runs the runner with --no-warm-up; the pool's own
    containers warm up."""
    with WarmPool(0, image=sandbox_image) as pool:
        cold = pool.acquire()
        try:
            api = docker.from_env().api
            assert api.inspect_container(cold.id)["Config"]["Cmd"][-1] == "--no-warm-up"
        finally:
            pool.release(cold)
        assert pool.target == 1
        assert _eventually(lambda: pool.ready_count == 1)
        warm = pool.acquire()
        try:
            assert "--no-warm-up" not in api.inspect_container(warm.id)["Config"]["Cmd"]
        finally:
            pool.release(warm)


def test_status_command_shows_the_pool(pool: WarmPool) -> None:
    """`toolsmith sandbox status --json` lists a running pool with its sizes and counts."""
    from typer.testing import CliRunner

    from toolsmith.cli import app

    held = pool.acquire()
    try:
        assert _eventually(lambda: any(p.in_use == 1 for p in pool_statuses()))
        result = CliRunner().invoke(app, ["sandbox", "status", "--json"])
        assert result.exit_code == 0, result.output
        (shown,) = [p for p in json.loads(result.stdout)["pools"] if p["id"] == pool.id]
        assert shown["in_use"] == 1 and shown["size"] == 1 and shown["max_size"] == 3
        assert shown["jobs"] == 1
        plain = CliRunner().invoke(app, ["sandbox", "status"])
        assert pool.id in plain.stdout
    finally:
        pool.release(held)
    pool.close()
    assert all(p.id != pool.id for p in pool_statuses())


def test_closing_a_grown_pool_leaves_no_container(sandbox_image: Any) -> None:
    """close() removes every container the pool started, ready or still starting."""
    pool = WarmPool(2, max_size=4, image=sandbox_image)
    held = [pool.acquire() for _ in range(4)]
    for c in held:
        pool.release(c)
    assert _eventually(lambda: pool.status().starting > 0 or pool.ready_count > 0)
    pool.close()
    assert _pool_containers(pool.id) == []


EXIT_SCRIPT = """
from toolsmith.sandbox import WarmPool
pool = WarmPool(2)
held = [pool.acquire() for _ in range(3)]
for c in held:
    pool.release(c)
print(pool.id, flush=True)
"""


def test_a_process_exiting_with_a_grown_pool_leaves_no_container(sandbox_image: Any) -> None:
    """A process that exits without closing its pool (refills under way) leaves nothing."""
    out = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        timeout=PATIENCE_S,
    )
    pool_id = out.stdout.strip()
    assert pool_id
    api = docker.from_env().api
    left = api.containers(all=True, filters={"label": f"{POOL_LABEL}={pool_id}"})
    assert [c["Labels"][OWNER_LABEL] for c in left] == []
