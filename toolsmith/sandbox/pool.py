"""The warm pool: containers started ahead of time, each used for exactly one job, sized by demand.

A ready container has its runner running with pytest and hypothesis imported, one throwaway
session run and a worker interpreter pre-spawned, blocked reading stdin: all of that happens
before it counts as ready, so no job waits for it. ``acquire`` hands out the oldest ready one;
when none is ready it starts one on the spot *without* the warm-up (a plain ``docker run`` of
pytest would not warm up either), so an empty pool costs a job no more than a fresh container.
After its job a container is killed and removed, never reused, so no writable state or process
survives between jobs.

Sizing: the pool wants ``target`` containers ready or in use. ``target`` starts at ``size``,
grows to the number of jobs seen in flight at once (a burst), bounded by ``max_size`` and by the
memory the host has free for containers of this pool's memory limit, and steps back down to the
largest burst of the last ``shrink_after_s`` window. Replacements start when a job releases its
container (not at ``acquire``: a start would steal the running job's CPU), up to ``parallel`` at
a time (default: the core count). After ``idle_expiry_s`` without a job the pool stops its
containers; the next ``acquire`` starts again. Its state (``PoolStatus``) is logged on every
change of size and written to the state directory, where ``toolsmith sandbox status`` reads it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import statistics
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from toolsmith.errors import UsageError
from toolsmith.log import get_logger
from toolsmith.sandbox import cleanup
from toolsmith.sandbox.containers import RunnerContainer, owner_id
from toolsmith.sandbox.engine import Engine, shared_engine
from toolsmith.sandbox.image import ImageInfo, ensure_image
from toolsmith.sandbox.job import Limits
from toolsmith.sandbox.status import PoolStatus, remove_pool_status, write_pool_status

log = get_logger("toolsmith.sandbox")

# Container start times kept for the status' medians.
_TIMES_KEPT = 20
# After a container failed to start, wait this long before the next try (seconds).
_BACKOFF_S = 5.0


def memory_room(memory_mb: int) -> int | None:
    """How many more containers limited to ``memory_mb`` the host's available memory holds
    (``MemAvailable`` of /proc/meminfo); None where that is not known."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) // (memory_mb * 1024)
    except (OSError, ValueError, IndexError):
        pass
    return None


class WarmPool:
    """Ready containers for jobs with ``limits``' container-level settings, sized by demand.

    ``size``: containers kept ready while the pool is in use (0 keeps none ready until a burst is
    seen); ``max_size``: the most it grows to (default ``max(size, 8)``); ``parallel``: containers
    started at once (default: the core count); ``shrink_after_s``: how long a grown size is kept
    without a burst that needs it; ``idle_expiry_s``: without any ``acquire`` for this long the pool
    stops every container until the next one. Its containers carry the label
    ``toolsmith.sandbox.pool=<id>`` besides the owner label. ``close()`` (also run at exit and on
    SIGTERM) removes all. UsageError for sizes out of range.
    """

    def __init__(
        self,
        size: int = 2,
        *,
        max_size: int | None = None,
        parallel: int | None = None,
        shrink_after_s: float = 60.0,
        idle_expiry_s: float = 300.0,
        image: ImageInfo | None = None,
        limits: Limits | None = None,
        engine: Engine | None = None,
    ) -> None:
        max_size = max(size, 8) if max_size is None else max_size
        parallel = parallel or os.cpu_count() or 1
        if size < 0 or max_size < size or parallel < 1:
            raise UsageError(
                f"pool sizes must satisfy 0 <= size <= max_size and parallel >= 1, got "
                f"size={size}, max_size={max_size}, parallel={parallel}",
                hint="use size=0 to keep no container ready",
            )
        self.size = size
        self.max_size = max_size
        self.parallel = parallel
        self.shrink_after_s = shrink_after_s
        self.id = secrets.token_hex(8)
        self.idle_expiry_s = idle_expiry_s
        self.engine = engine or shared_engine()
        self.image = image or ensure_image(self.engine)
        self.limits = limits or Limits()
        self._ready: deque[RunnerContainer] = deque()
        self._starting = 0
        self._in_use = 0
        self._target = size
        self._window_peak = 0
        self._window_start = time.monotonic()
        self._jobs = 0
        self._cold_jobs = 0
        self._start_times: deque[float] = deque(maxlen=_TIMES_KEPT)
        self._cold_start_times: deque[float] = deque(maxlen=_TIMES_KEPT)
        self._backoff_until = 0.0
        self._dirty = True
        self._cond = threading.Condition()
        self._closed = False
        self._last_used = time.monotonic()
        self._discarder = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sandbox-discard")
        self._starter = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="sandbox-start")
        cleanup.sweep_stale(self.engine)
        cleanup.register(self)
        self._filler = threading.Thread(target=self._fill, name="sandbox-pool", daemon=True)
        self._filler.start()

    def acquire(self) -> RunnerContainer:
        """A ready container for one job; when none is, one started on the spot without warm-up
        (the pool's own starts under way warm up before they are ready, which the job would
        wait for)."""
        with self._cond:
            if self._closed:
                raise UsageError("this WarmPool is closed")
            now = time.monotonic()
            self._last_used = now
            container = self._ready.popleft() if self._ready else None
            self._in_use += 1
            self._jobs += 1
            self._cold_jobs += container is None
            self._grow(now)
            self._dirty = True
            self._cond.notify_all()
        if container is not None:
            return container
        started = time.monotonic()
        try:
            container = RunnerContainer(
                self.engine, self.image, self.limits, pool_id=self.id, warm_up=False
            ).start()
        except BaseException:
            self._done_with_one()
            raise
        with self._cond:
            self._cold_start_times.append(time.monotonic() - started)
        return container

    def _grow(self, now: float) -> None:
        """Follow the burst: as many containers as jobs in flight, within max_size and memory."""
        demand = self._in_use
        self._window_peak = max(self._window_peak, demand)
        if demand <= self._target:
            return
        want = min(demand, self.max_size)
        room = memory_room(self.limits.memory_mb)
        if room is not None:
            want = min(want, len(self._ready) + self._starting + self._in_use + room)
        if want > self._target:
            log.info("sandbox pool grew", pool=self.id, frm=self._target, to=want, demand=demand)
            self._target = want

    def _done_with_one(self) -> None:
        with self._cond:
            self._in_use -= 1
            self._dirty = True
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
        """The pool's own thread: shrink or expire, start replacements, publish the status."""
        while True:
            with self._cond:
                if self._closed:
                    return
                surplus = self._trim(time.monotonic())
                starts = 0
                while self._starting < self.parallel and self._wants_more():
                    self._starting += 1
                    starts += 1
                dirty, self._dirty = self._dirty, False
                if not (surplus or starts or dirty):
                    self._cond.wait(timeout=self._tick())
                    continue
                status = self._status()
            try:
                for c in surplus:
                    self._discarder.submit(c.discard)
                for _ in range(starts):
                    self._starter.submit(self._start_one)
                    starts -= 1
            except RuntimeError:  # interpreter shutdown: the atexit close() removes the rest
                with self._cond:
                    self._starting -= starts
                for c in surplus:
                    c.discard()
                return
            with contextlib.suppress(OSError):
                write_pool_status(status)

    def _start_one(self) -> None:
        started = time.monotonic()
        container: RunnerContainer | None = None
        try:
            container = RunnerContainer(self.engine, self.image, self.limits, pool_id=self.id)
            container.start()
        except Exception as e:
            log.warning("warm pool could not start a container", pool=self.id, error=str(e))
            container = None
            with self._cond:
                self._backoff_until = time.monotonic() + _BACKOFF_S
        with self._cond:
            self._starting -= 1
            if container is not None and not self._closed:
                self._ready.append(container)
                self._start_times.append(time.monotonic() - started)
                container = None
            self._dirty = True
            self._cond.notify_all()
        if container is not None:
            container.discard()

    def _idle(self, now: float) -> bool:
        return now - self._last_used > self.idle_expiry_s

    def _wants_more(self) -> bool:
        now = time.monotonic()
        if self._idle(now) or now < self._backoff_until:
            return False
        return len(self._ready) + self._starting + self._in_use < self._target

    def _tick(self) -> float:
        """Seconds until the next shrink or expiry could be due."""
        now = time.monotonic()
        until = [self.idle_expiry_s - (now - self._last_used)]
        if self._target > self.size:
            until.append(self.shrink_after_s - (now - self._window_start))
        if now < self._backoff_until:
            until.append(self._backoff_until - now)
        return max(0.05, min(until))

    def _trim(self, now: float) -> list[RunnerContainer]:
        """Step the target down to the last window's largest burst; stop all when idle. Returns
        the ready containers beyond it (to discard)."""
        if now - self._window_start >= self.shrink_after_s:
            shrunk = max(self.size, min(self._target, self._window_peak))
            if shrunk < self._target:
                log.info(
                    "sandbox pool shrank",
                    pool=self.id,
                    frm=self._target,
                    to=shrunk,
                    peak=self._window_peak,
                )
                self._target = shrunk
                self._dirty = True
            self._window_start, self._window_peak = now, self._in_use
        keep = 0 if self._idle(now) else self._target - self._in_use - self._starting
        surplus: list[RunnerContainer] = []
        while len(self._ready) > max(0, keep):
            surplus.append(self._ready.pop())
        if surplus:
            log.info(
                "sandbox pool stopping containers",
                pool=self.id,
                count=len(surplus),
                idle=self._idle(now),
            )
            self._dirty = True
        return surplus

    def _status(self) -> PoolStatus:
        def median(xs: deque[float]) -> float | None:
            return round(statistics.median(xs), 3) if xs else None

        now = time.monotonic()
        return PoolStatus(
            id=self.id,
            owner=owner_id(),
            image=self.image.tag,
            memory_mb=self.limits.memory_mb,
            size=self.size,
            max_size=self.max_size,
            parallel=self.parallel,
            target=0 if self._idle(now) else self._target,
            ready=len(self._ready),
            starting=self._starting,
            in_use=self._in_use,
            jobs=self._jobs,
            cold_jobs=self._cold_jobs,
            start_s_p50=median(self._start_times),
            cold_start_s_p50=median(self._cold_start_times),
            idle_s=round(now - self._last_used, 3),
            updated=datetime.now(UTC),
        )

    def status(self) -> PoolStatus:
        """Sizes, counts and start times now."""
        with self._cond:
            return self._status()

    @property
    def ready_count(self) -> int:
        with self._cond:
            return len(self._ready)

    @property
    def target(self) -> int:
        """Containers the pool wants ready or in use now (0 while expired for idleness)."""
        with self._cond:
            return 0 if self._idle(time.monotonic()) else self._target

    def wait_ready(self, timeout_s: float = 60.0) -> bool:
        """Block until the pool holds its target of ready containers (for benchmarks and tests);
        False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while len(self._ready) < self._target:
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    return False
                self._cond.wait(timeout=left)
            return True

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
        self._starter.shutdown(wait=True, cancel_futures=True)
        self._discarder.shutdown(wait=True)
        with contextlib.suppress(OSError):
            remove_pool_status(self.id)
        cleanup.unregister(self)

    def __enter__(self) -> WarmPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
