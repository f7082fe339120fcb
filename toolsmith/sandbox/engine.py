"""The Docker engine boundary: one client, one place where docker-py errors become ours."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import docker
import docker.errors
import requests.exceptions

from toolsmith.errors import EngineUnavailableError, ImageError, SandboxError
from toolsmith.settings import Settings

ENGINE_HINT = "start Docker / set DOCKER_HOST"


@contextmanager
def docker_errors(doing: str) -> Iterator[None]:
    """Translate docker-py / requests / socket errors raised while ``doing`` into SandboxErrors."""
    try:
        yield
    except SandboxError:
        raise
    except docker.errors.ImageNotFound as e:
        raise ImageError(
            f"{doing}: image not found ({e.explanation})",
            hint="run `toolsmith sandbox build`",
        ) from e
    except docker.errors.BuildError as e:
        raise ImageError(f"{doing}: image build failed: {e.msg}") from e
    except docker.errors.APIError as e:
        raise SandboxError(f"{doing}: Docker engine refused: {e.explanation or e}") from e
    except (requests.exceptions.ConnectionError, ConnectionError, FileNotFoundError) as e:
        raise EngineUnavailableError(
            f"{doing}: Docker engine unreachable ({type(e).__name__}: {e})", hint=ENGINE_HINT
        ) from e
    except (requests.exceptions.RequestException, docker.errors.DockerException, OSError) as e:
        raise EngineUnavailableError(
            f"{doing}: Docker engine error ({type(e).__name__}: {e})", hint=ENGINE_HINT
        ) from e


@dataclass(frozen=True)
class Engine:
    """A connected engine and what we learned about it once."""

    client: docker.DockerClient
    runtime: str
    default_runtime: str
    architecture: str
    server_version: str

    @property
    def api(self) -> docker.APIClient:
        return self.client.api

    @property
    def runtime_option(self) -> str | None:
        """The ``runtime=`` to pass when creating a container (None: the engine's default)."""
        return None if self.runtime == self.default_runtime else self.runtime


def connect(timeout_s: float = 30.0) -> Engine:
    """Connect to the settings' Docker host (``DOCKER_HOST``; TLS from the environment as
    docker-py reads it); prefer gVisor when the engine has it."""
    host = Settings.load().sandbox.docker_host
    if host.startswith("unix://") and not os.path.exists(host.removeprefix("unix://")):
        raise EngineUnavailableError(
            f"connecting to Docker: Docker engine unreachable (no socket at {host})",
            hint=ENGINE_HINT,
        )
    with docker_errors("connecting to Docker"):
        client = docker.from_env(
            timeout=int(timeout_s), environment={**os.environ, "DOCKER_HOST": host}
        )
        info = client.api.info()
    runtimes = info.get("Runtimes") or {}
    default = str(info.get("DefaultRuntime") or "runc")
    return Engine(
        client=client,
        runtime="runsc" if "runsc" in runtimes else default,
        default_runtime=default,
        architecture=str(info.get("Architecture") or "x86_64"),
        server_version=str(info.get("ServerVersion") or ""),
    )


@functools.cache
def shared_engine() -> Engine:
    """One engine per process for pools and sandboxes that are not given one."""
    return connect()
