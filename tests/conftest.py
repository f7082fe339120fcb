"""Shared fixtures.

Tests marked ``docker`` talk to the real Docker engine. Without an engine they skip locally, saying
so; under ``CI=true`` they fail instead, because a skipped sandbox suite is not a green build.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from typing import Any

import pytest


@functools.cache
def _engine_problem() -> str | None:
    try:
        import docker

        docker.from_env(timeout=5).ping()
    except Exception as e:
        return f"no Docker engine reachable ({type(e).__name__}: {e})"
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("docker") is None:
        return
    problem = _engine_problem()
    if problem is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{problem}: under CI=true the sandbox tests must run", pytrace=False)
    pytest.skip(f"{problem}; start Docker to run the sandbox tests")


@pytest.fixture(autouse=True)
def _own_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own TOOLSMITH_HOME (keys, consumer state with its pinned roots, its
    audit log), so no test trusts a registry because another one did."""
    monkeypatch.setenv("TOOLSMITH_HOME", str(tmp_path_factory.mktemp("home")))
    for name in ("TOOLSMITH_STATE", "TOOLSMITH_REGISTRY", "TOOLSMITH_POLICY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def sandbox_image() -> Any:
    """The runner image for the current inputs, built once (offline) if missing."""
    from toolsmith.sandbox import ensure_image

    return ensure_image()


@pytest.fixture(scope="session")
def sandbox(sandbox_image: Any) -> Iterator[Any]:
    """One warm-pool Sandbox shared by the session's Docker tests."""
    from toolsmith.sandbox import Sandbox

    with Sandbox(pool_size=1, image=sandbox_image) as sb:
        yield sb


@pytest.fixture(autouse=True)
def _no_mutation_gate_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Builds in tests run without the mutation gate (a sandbox job and, for designed specs, a
    designer round each) unless they ask for it with BuildOptions(mutants=N): the gate's own
    tests do, in tests/test_mutation.py, and the CI budget covers them rather than every build."""
    monkeypatch.setenv("TOOLSMITH_MUTANTS", "0")
