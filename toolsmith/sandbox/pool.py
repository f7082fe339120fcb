"""The warm pool: containers started ahead of time, each used for exactly one job.

A ready container has its runner running with pytest and hypothesis imported and a worker
interpreter pre-spawned, blocked reading stdin. ``acquire`` hands one out (or starts one on the spot
when none is ready); after its job it is killed and removed, and a background filler starts a
replacement. Nothing is ever reused, so no writable state or process survives between jobs.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from toolsmith.errors import UsageError
from toolsmith.log import get_logger
from toolsmith.sandbox import cleanup
from toolsmith.sandbox.containers import RunnerContainer
from toolsmith.sandbox.engine import Engine, shared_engine
from toolsmith.sandbox.image import ImageInfo, ensure_image
from toolsmith.sandbox.job import Limits

log = get_logger("toolsmith.sandbox")


class WarmPool:
    """``size`` ready containers for jobs with ``limits``' container-level settings.

    Its containers carry the label ``toolsmith.sandbox.pool=<id>`` besides the owner label.

    After ``idle_expiry_s`` without an ``acquire`` the pool stops its containers; the next
    ``acquire`` starts them again. ``close()`` (also run at exit and on SIGTERM) removes all.
    """

    def __init__(
        self,
        size: int = 2,
        *,
        idle_expiry_s: float = 300.0,
        image: ImageInfo | None = None,
        limits: Limits | None = None,
        engine: Engine | None = None,
    ) -> None:
        if size < 0:
            raise UsageError(f"pool size must be >= 0, got {size}", hint="use 0 to disable")
        self.size = size
        self.id = secrets.token_hex(8)
        self.idle_expiry_s = idle_expiry_s
        self.engine = engine or shared_engine()
        self.image = image or ensure_image(self.engine)
        self.limits = limits or Limits()
        self._ready: deque[RunnerContainer] = deque()
        self._starting = 0
        self._in_use = 0
        self._cond = threading.Condition()
        self._closed = False
        self._last_used = time.monotonic()
        self._discarder = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sandbox-discard")
        cleanup.sweep_stale(self.engine)
        cleanup.register(self)
        self._filler = threading.Thread(target=self._fill, name="sandbox-pool", daemon=True)
        self._filler.start()

    def _new(self) -> RunnerContainer:
        return RunnerContainer(self.engine, self.image, self.limits, pool_id=self.id).start()

    def acquire(self) -> RunnerContainer:
        """A ready container for one job; started on the spot if the pool is empty."""
        with self._cond:
            if self._closed:
                raise UsageError("this WarmPool is closed")
            self._last_used = time.monotonic()
            container = self._ready.popleft() if self._ready else None
            self._in_use += 1
        try:
            return container or self._new()
        except BaseException:
            self._done_with_one()
            raise

    def _done_with_one(self) -> None:
        with self._cond:
            self._in_use -= 1
            self._cond.notify_all()

    def release(self, container: RunnerContainer) -> None:
        """Discard a used container in the background (never back into the pool).

        The replacement starts only now, not at ``acquire``: starting a container while a job
        runs would steal that job's CPU.
        """
        self._done_with_one()
        try:
            self._discarder.submit(container.discard)
        except RuntimeError:
            container.discard()

    def _fill(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not self._wants_more():
                    self._expire_idle()
                    self._cond.wait(timeout=self._idle_wait())
                if self._closed:
                    return
                self._starting += 1
            container: RunnerContainer | None = None
            try:
                container = self._new()
            except Exception as e:
                log.warning("warm pool could not start a container", error=str(e))
                with self._cond:
                    self._cond.wait(timeout=5.0)
            finally:
                with self._cond:
                    self._starting -= 1
                    if container is not None and not self._closed:
                        self._ready.append(container)
                        container = None
            if container is not None:
                container.discard()

    def _wants_more(self) -> bool:
        idle = time.monotonic() - self._last_used > self.idle_expiry_s
        return not idle and len(self._ready) + self._starting + self._in_use < self.size

    def _idle_wait(self) -> float:
        return max(0.05, self.idle_expiry_s - (time.monotonic() - self._last_used))

    def _expire_idle(self) -> None:
        if self._ready and time.monotonic() - self._last_used > self.idle_expiry_s:
            log.info("warm pool idle, stopping its containers", count=len(self._ready))
            while self._ready:
                c = self._ready.popleft()
                self._discarder.submit(c.discard)

    @property
    def ready_count(self) -> int:
        with self._cond:
            return len(self._ready)

    def wait_ready(self, timeout_s: float = 60.0) -> bool:
        """Block until the pool is full (for benchmarks and tests); False on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.ready_count >= self.size:
                return True
            time.sleep(0.01)
        return False

    def close(self) -> None:
        """Stop filling and remove every container this pool started; idempotent."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            leftovers = list(self._ready)
            self._ready.clear()
            self._cond.notify_all()
        for c in leftovers:
            with contextlib.suppress(Exception):
                c.discard()
        self._filler.join(timeout=30)
        self._discarder.shutdown(wait=True)
        cleanup.unregister(self)

    def __enter__(self) -> WarmPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
