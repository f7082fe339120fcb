"""``Sandbox``: run a job, get a TestReport. The Docker backend is one implementation of it."""

from __future__ import annotations

import json
import threading
from abc import ABC, abstractmethod
from types import TracebackType

from toolsmith.dependencies import Lock
from toolsmith.errors import DependencyError, SandboxError, ToolsmithError
from toolsmith.log import get_logger
from toolsmith.report import TestReport
from toolsmith.sandbox import cleanup
from toolsmith.sandbox._protocol import judge, marker
from toolsmith.sandbox.barriers import plan, property_plan
from toolsmith.sandbox.containers import RunnerContainer, new_nonce
from toolsmith.sandbox.engine import Engine, docker_errors, shared_engine
from toolsmith.sandbox.image import ImageInfo, ensure_image
from toolsmith.sandbox.job import SandboxJob
from toolsmith.sandbox.layer import ensure_layer, lock_for
from toolsmith.sandbox.pool import WarmPool

log = get_logger("toolsmith.sandbox")


class SandboxBackend(ABC):
    """What a sandbox backend implements; ``Sandbox`` guarantees which errors escape."""

    @abstractmethod
    def run(self, job: SandboxJob) -> TestReport: ...

    def lock(self, requirements: list[str]) -> Lock:
        """Resolve ``requirements`` for this backend's interpreter and platform; a backend that
        cannot install dependencies raises DependencyError."""
        raise DependencyError(
            f"the {type(self).__name__} sandbox backend cannot install dependencies",
            hint="build with the Docker sandbox, or declare no dependencies",
        )

    def close(self) -> None:  # noqa: B027  (optional hook: stateless backends need nothing)
        """Release containers, pools and connections."""


class DockerBackend(SandboxBackend):
    """Each job in a fresh hardened container: from the warm pool when one fits, else cold.

    A job is granted exactly its capabilities (``toolsmith.sandbox.grants``). Warm containers are
    made before any job is known, so they are granted nothing; a job whose grants shape the
    container (egress, read mounts, variables) always gets a fresh one made for it, slower but
    never more open than declared. Its declared hosts are reached through an egress proxy whose
    upstream side is on the Docker network ``egress_network``.
    """

    def __init__(
        self,
        *,
        pool_size: int = 2,
        pool_max: int | None = None,
        idle_expiry_s: float = 300.0,
        image: ImageInfo | None = None,
        engine: Engine | None = None,
        egress_network: str = "bridge",
    ) -> None:
        self.engine = engine or shared_engine()
        self.egress_network = egress_network
        self.image = image or ensure_image(self.engine)
        self._pool_size = pool_size
        self._pool_max = pool_max
        self._idle_expiry_s = idle_expiry_s
        self._pools: dict[tuple[str, tuple[int, int, float, int]], WarmPool] = {}
        self._lock = threading.Lock()

    @property
    def runtime(self) -> str:
        return self.engine.runtime

    @property
    def pool_ids(self) -> list[str]:
        """Ids of this backend's warm pools (the ``toolsmith.sandbox.pool`` label)."""
        with self._lock:
            return [p.id for p in self._pools.values()]

    def lock(self, requirements: list[str]) -> Lock:
        return lock_for(self.engine, self.image, requirements)

    def image_for(self, job: SandboxJob) -> ImageInfo:
        """The runner image, or its dependency layer for the job's lock (built once per lock)."""
        return ensure_layer(self.engine, self.image, job.lock) if job.lock else self.image

    def pool_for(self, job: SandboxJob, image: ImageInfo | None = None) -> WarmPool | None:
        """The pool for the job's image and container-level limits, made on first use (None:
        pool off)."""
        if self._pool_size == 0:
            return None
        image = image or self.image
        key = (image.tag, job.limits.container_key())
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                pool = WarmPool(
                    self._pool_size,
                    max_size=self._pool_max,
                    idle_expiry_s=self._idle_expiry_s,
                    image=image,
                    limits=job.limits,
                    engine=self.engine,
                )
                self._pools[key] = pool
            return pool

    def run(self, job: SandboxJob) -> TestReport:
        grants = job.grants
        image = self.image_for(job)
        pool = None if grants.shapes_container else self.pool_for(job, image)
        container = (
            pool.acquire()
            if pool
            else RunnerContainer(
                self.engine,
                image,
                job.limits,
                grants=grants,
                egress_network=self.egress_network,
                warm_up=False,
            ).start()
        )
        nonce = new_nonce()
        payload = json.dumps(
            {
                "nonce": nonce,
                "tool_name": job.tool_name,
                "code": job.code,
                "test_files": job.test_files,
                "expected_tests": job.expected_tests,
                "call_timeout_s": job.limits.call_timeout_s,
                "output_bytes": job.limits.output_bytes,
                "barriers": plan(grants).model_dump(mode="json"),
                "property_barriers": property_plan().model_dump(mode="json"),
                "variants": job.variants,
                "variant_time_s": job.variant_time_s,
            }
        ).encode()
        try:
            out = container.run(payload, marker(nonce, "done"), job.limits.timeout_s)
        finally:
            if pool:
                pool.release(container)
            else:
                container.discard()
        report = judge(
            out.stdout,
            nonce,
            expected=job.expected_tests,
            timed_out=out.timed_out,
            capped=out.stdout_capped,
            oom_killed=out.oom_killed,
            exit_code=out.exit_code,
            stderr=out.stderr,
            timeout_s=job.limits.timeout_s,
            duration_s=out.duration_s,
            image_digest=image.image_id,
            runtime=self.runtime,
        )
        report.lock = job.lock
        log.info("sandbox job finished", tool=job.tool_name, summary=report.summary())
        return report

    def close(self) -> None:
        with self._lock:
            pools = list(self._pools.values())
            self._pools.clear()
        for pool in pools:
            pool.close()


class Sandbox:
    """Runs jobs; ``run`` returns a TestReport or raises a SandboxError, nothing else.

    With no backend given, jobs run in Docker: a warm pool per limit set keeps ``pool_size``
    containers ready and grows on bursts up to ``pool_max`` (default ``max(pool_size, 8)``;
    ``pool_size=0`` turns pools off: a fresh container per job); ``egress_network`` is where
    declared hosts are reached from, see ``DockerBackend``.
    """

    def __init__(
        self,
        backend: SandboxBackend | None = None,
        *,
        pool_size: int = 2,
        pool_max: int | None = None,
        idle_expiry_s: float = 300.0,
        image: ImageInfo | None = None,
        egress_network: str = "bridge",
    ) -> None:
        with docker_errors("opening the sandbox"):
            self.backend = backend or DockerBackend(
                pool_size=pool_size,
                pool_max=pool_max,
                idle_expiry_s=idle_expiry_s,
                image=image,
                egress_network=egress_network,
            )
        cleanup.register(self)

    def lock(self, requirements: list[str]) -> Lock:
        """Resolve a tool's dependencies for the sandbox's interpreter and platform (on the
        host, with the user's package index); DependencyError and its branches on failure."""
        with docker_errors("resolving dependencies for the sandbox"):
            return self.backend.lock(requirements)

    def run(self, job: SandboxJob) -> TestReport:
        try:
            with docker_errors(f"running {job.tool_name} in the sandbox"):
                return self.backend.run(job)
        except ToolsmithError:
            raise
        except Exception as e:
            raise SandboxError(f"sandbox backend failed: {type(e).__name__}: {e}") from e

    def close(self) -> None:
        cleanup.unregister(self)
        self.backend.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
