"""Sandbox latency: one job = a 3-test pytest file with one 100-example hypothesis property.

Runs, in one process and on the same payload:
  floor        pytest in-process on the host, the tool called directly (no isolation at all);
               also with plugin autoload off, since the host's many plugins cost ~200 ms
  fresh        a fresh hardened container per job (create, start, imports, job, remove)
  warm         the warm pool, each job after the pool has refilled (refill happens off the clock)
  warm-b2b     the warm pool, jobs back to back (refill competes with the next job)
  llm-sandbox  the same payload through llm-sandbox, on the same image
  epicbox      the same payload through epicbox, on the same image
and prints p50/p99 per job and ratios; then the cost of the run-time barriers per job: warm-pool
jobs with and without them (``bench/unconfined.py``), alternated (ABBA), each after the pool
refilled. Usage: python bench/sandbox.py [--n 20] [--barriers-only]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import peers
import pytest
from unconfined import unconfined

from toolsmith.sandbox import ImageInfo, Sandbox, SandboxJob, ensure_image

TOOL = "def add(a, b):\n    return a + b\n"
TESTS = """
from hypothesis import given, settings, strategies as st
from toolsmith_harness import call

def test_example():
    assert call(a=1, b=2) == 3

def test_strings():
    assert call(a="x", b="y") == "xy"

@settings(max_examples=100)
@given(st.integers(), st.integers())
def test_property(a, b):
    assert call(a=a, b=b) == a + b
"""
JOB = SandboxJob(tool_name="add", code=TOOL, test_files={"test_add.py": TESTS}, expected_tests=3)
# For peers: the tool and tests in one directory, run by pytest in the container.
PEER_HARNESS = "import add as _m\n\ndef call(**kw):\n    return _m.add(**kw)\n"
PEER_MAIN = (
    "import sys, pytest\nsys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', 'test_add.py']))\n"
)


def _floor_once(lean: bool = False) -> None:
    ns: dict[str, object] = {}
    exec(compile(TOOL, "add.py", "exec"), ns)
    harness = types.ModuleType("toolsmith_harness")
    harness.call = lambda **kw: ns["add"](**kw)  # type: ignore[attr-defined, operator]
    sys.modules["toolsmith_harness"] = harness
    with tempfile.TemporaryDirectory() as tmp:
        name = f"test_add_{uuid.uuid4().hex}"
        (Path(tmp) / f"{name}.py").write_text(TESTS)
        argv = [tmp, "-q", "-p", "no:cacheprovider", "-o", "addopts="]
        if lean:
            os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                code = pytest.main(argv)
        finally:
            os.environ.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)
        sys.modules.pop(name, None)
    if code != 0:
        raise RuntimeError(f"floor run failed with {code}")


def _timed(fn: Callable[[], None], n: int, before: Callable[[], None] | None = None) -> list[float]:
    out = []
    for _ in range(n):
        if before:
            before()
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def _pctl(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def _peer_files() -> dict[str, bytes]:
    return {
        "add.py": TOOL.encode(),
        "toolsmith_harness.py": PEER_HARNESS.encode(),
        "test_add.py": TESTS.encode(),
        "main.py": PEER_MAIN.encode(),
    }


FAILURES: list[str] = []


def _passes(sb: Sandbox) -> None:
    report = sb.run(JOB)
    if not report.passed:
        raise RuntimeError(report.failure_text())


def _counted(sb: Sandbox) -> None:
    """A job whose failure is counted and printed at the end rather than ending the run."""
    try:
        _passes(sb)
    except RuntimeError as e:
        FAILURES.append(str(e).splitlines()[0])


def barriers(n: int) -> None:
    """Warm-pool jobs with and without the run-time barriers, alternated, pool refilled first."""
    image = ensure_image()
    samples: dict[bool, list[float]] = {True: [], False: []}
    with Sandbox(pool_size=2, image=image) as warm:
        pool = warm.backend.pool_for(JOB)  # type: ignore[attr-defined]
        for confined in (True, False, True, False):  # warm-up, both ways
            pool.wait_ready()
            with contextlib.nullcontext() if confined else unconfined():
                _passes(warm)
        for i in range(n):
            for confined in (True, False) if i % 2 == 0 else (False, True):
                pool.wait_ready()
                time.sleep(0.5)
                with contextlib.nullcontext() if confined else unconfined():
                    t = time.perf_counter()
                    _passes(warm)
                    samples[confined].append(time.perf_counter() - t)
    base = statistics.median(samples[False])
    print(f"image {image.tag}; warm pool (refilled), n={n} each, alternated")
    for confined, label in ((False, "no barriers"), (True, "barriers")):
        xs = samples[confined]
        p50 = statistics.median(xs)
        print(
            f"{label:28} {p50 * 1e3:9.1f} ms p50 {_pctl(xs, 0.99) * 1e3:9.1f} ms p99 "
            f"x{p50 / base:.3f}"
        )


def _rotated(items: list[Any], k: int) -> list[Any]:
    k %= len(items)
    return items[k:] + items[:k]


def _row(name: str, xs: list[float], base: float, base_name: str, note: str = "") -> None:
    p50 = statistics.median(xs)
    print(
        f"| {name:40} | {len(xs):3d} | {p50:8.2f} | {_pctl(xs, 0.99):8.2f} | "
        f"{p50 / base:7.2f} | {note}"
    )


def _header(base_name: str) -> None:
    print(f"| {'run':40} | {'n':>3} | {'p50 s':>8} | {'p99 s':>8} | {'x ' + base_name:>7} |")
    print(f"|{'-' * 42}|{'-' * 4}:|{'-' * 9}:|{'-' * 9}:|{'-' * 8}:|")


def single_jobs(rounds: int, image: ImageInfo, peers_wanted: bool) -> dict[str, list[float]]:
    """One job at a time, every row once per round in rotated order; before each sample the warm
    pool is full again, so no refill runs during any row's sample."""
    files = {k: v.decode() for k, v in _peer_files().items()}
    rows: dict[str, Callable[[], float]] = {}
    closers: list[Callable[[], None]] = []

    def timed(fn: Callable[[], object]) -> Callable[[], float]:
        def once() -> float:
            t = time.perf_counter()
            fn()
            return time.perf_counter() - t

        return once

    warm = Sandbox(image=image)
    closers.append(warm.close)
    pool = warm.backend.pool_for(JOB)  # type: ignore[attr-defined]
    fresh = Sandbox(pool_size=0, image=image)
    closers.append(fresh.close)
    rows["floor (host pytest, in-process)"] = timed(_floor_once)
    rows["toolsmith, warm pool (refilled)"] = timed(lambda: _passes(warm))
    rows["toolsmith, pool off (fresh container)"] = timed(lambda: _passes(fresh))
    run_cmd = peers.docker_run_cmd(image.tag)
    rows["docker run --rm (hardened)"] = timed(lambda: peers.run_job_cmd(run_cmd, files))
    target = peers.start_exec_target(image.tag)
    closers.append(lambda: subprocess.run(["docker", "rm", "-f", target], capture_output=True))
    counter = iter(range(1 << 30))
    rows["docker exec (hardened, running container)"] = timed(
        lambda: peers.run_job_cmd(peers.docker_exec_cmd(target, f"/work/j{next(counter)}"), files)
    )
    if peers_wanted:
        tag = peers.peer_image(image.tag)
        for kind, label in (
            ("llm-sandbox", "llm-sandbox, session per job"),
            ("llm-sandbox-pool", "llm-sandbox, its container pool"),
            ("epicbox", "epicbox"),
        ):
            try:
                peer = peers.Peer(kind, tag)
                peer.run(files, "python3 main.py")
            except Exception as e:
                print(f"skip {label}: {type(e).__name__}: {str(e)[:300]}")
                continue
            closers.append(peer.close)
            rows[label] = partial(peer.run, files, "python3 main.py")
    samples: dict[str, list[float]] = {name: [] for name in rows}
    try:
        pool.wait_ready(600)
        _passes(warm), _passes(fresh), _floor_once()
        for r in range(rounds):
            for name in _rotated(list(rows), r):
                pool.wait_ready(600)
                time.sleep(0.5)
                samples[name].append(rows[name]())
    finally:
        for close in reversed(closers):
            close()
    return samples


def back_to_back(n: int, image: ImageInfo) -> tuple[list[float], list[bool]]:
    """Jobs back to back on a default Sandbox: each job's seconds and whether it found the pool
    empty."""
    times, empty = [], []
    with Sandbox(image=image) as sb:
        pool = sb.backend.pool_for(JOB)  # type: ignore[attr-defined]
        pool.wait_ready(600)
        for _ in range(n):
            cold = pool.status().cold_jobs
            t = time.perf_counter()
            _counted(sb)
            times.append(time.perf_counter() - t)
            empty.append(pool.status().cold_jobs > cold)
    return times, empty


def _concurrently(fns: list[Callable[[], object]]) -> list[float]:
    def one(fn: Callable[[], object]) -> float:
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    with ThreadPoolExecutor(len(fns)) as ex:
        return list(ex.map(one, fns))


def bursts(
    count: int, size: int, image: ImageInfo
) -> tuple[list[list[float]], list[int], list[list[float]]]:
    """``count`` bursts of ``size`` concurrent jobs on a new default Sandbox, each after its pool
    refilled, alternated with bursts of as many concurrent hardened ``docker run --rm``; returns
    per-burst job seconds, how many found the pool empty, and the docker-run bursts."""
    files = {k: v.decode() for k, v in _peer_files().items()}
    run_cmd = peers.docker_run_cmd(image.tag)
    ours: list[list[float]] = []
    empties: list[int] = []
    theirs: list[list[float]] = []
    with Sandbox(image=image) as sb:
        pool = sb.backend.pool_for(JOB)  # type: ignore[attr-defined]
        for i in range(count):
            for which in (0, 1) if i % 2 == 0 else (1, 0):
                pool.wait_ready(600)
                time.sleep(1.0)
                if which == 0:
                    cold = pool.status().cold_jobs
                    ours.append(_concurrently([partial(_counted, sb)] * size))
                    empties.append(pool.status().cold_jobs - cold)
                else:
                    theirs.append(
                        _concurrently([partial(peers.run_job_cmd, run_cmd, files)] * size)
                    )
    return ours, empties, theirs


def throughput(jobs: int, image: ImageInfo) -> dict[int, list[float]]:
    """Jobs per second running ``jobs`` jobs 1 at a time and 4 at a time on one default Sandbox,
    alternated (1, 4, 4, 1)."""
    out: dict[int, list[float]] = {1: [], 4: []}
    with Sandbox(image=image) as sb:
        pool = sb.backend.pool_for(JOB)  # type: ignore[attr-defined]
        for width in (1, 4, 4, 1):
            pool.wait_ready(600)
            time.sleep(1.0)
            t = time.perf_counter()
            with ThreadPoolExecutor(width) as ex:
                list(ex.map(lambda _: _counted(sb), range(jobs)))
            out[width].append(jobs / (time.perf_counter() - t))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5, help="samples per single-job row")
    parser.add_argument("--b2b", type=int, default=8, help="back-to-back jobs")
    parser.add_argument("--bursts", type=int, default=4, help="bursts of 4 (and docker-run bursts)")
    parser.add_argument("--jobs", type=int, default=8, help="jobs per throughput run")
    parser.add_argument("--no-peers", action="store_true", help="skip llm-sandbox and epicbox")
    parser.add_argument(
        "--run-p50", type=float, help="skip the single-job rows; docker run p50 (s) to compare to"
    )
    parser.add_argument("--barriers-only", action="store_true")
    parser.add_argument("--n", type=int, default=20, help="samples per barriers row")
    args = parser.parse_args()
    if args.barriers_only:
        barriers(args.n)
        return
    image = ensure_image()
    print(f"image {image.tag}; {os.cpu_count()} cores; load {os.getloadavg()[0]:.1f}")
    if args.run_p50:
        run_p50 = args.run_p50
    else:
        single = single_jobs(args.rounds, image, not args.no_peers)
        run_p50 = statistics.median(single["docker run --rm (hardened)"])
        floor = statistics.median(single["floor (host pytest, in-process)"])
        print("\nsingle jobs, interleaved round-robin, pool refilled before every sample")
        _header("run")
        for name, xs in single.items():
            _row(name, xs, run_p50, "run", f"x floor {statistics.median(xs) / floor:.2f}")

    times, empty = back_to_back(args.b2b, image)
    print(f"\nback to back on the default pool ({sum(empty)} of {len(empty)} found it empty)")
    _header("run")
    _row("toolsmith, back to back", times, run_p50, "run")
    warm = [t for t, e in zip(times, empty, strict=True) if not e]
    cold = [t for t, e in zip(times, empty, strict=True) if e]
    for label, xs in (
        ("  of which found a ready container", warm),
        ("  of which found none", cold),
    ):
        if xs:
            _row(label, xs, run_p50, "run")

    ours, empties, theirs = bursts(args.bursts, 4, image)
    print(
        "\nbursts of 4 concurrent jobs on the default pool (2 ready, grows on demand), each "
        "after a refill, alternated with bursts of 4 concurrent docker run --rm"
    )
    _header("run")
    for i, (xs, e) in enumerate(zip(ours, empties, strict=True)):
        _row(
            f"toolsmith burst {i + 1} ({e} of 4 found it empty)",
            xs,
            run_p50,
            "run",
            f"max {max(xs):.2f} s",
        )
    later = [x for xs in ours[1:] for x in xs]
    if later:
        _row("toolsmith, every job of bursts 2..", later, run_p50, "run", f"max {max(later):.2f} s")
    _row("docker run --rm, 4 at once", [x for xs in theirs for x in xs], run_p50, "run")

    rates = throughput(args.jobs, image)
    one, four = statistics.median(rates[1]), statistics.median(rates[4])
    for failure in FAILURES:
        print(f"failed job: {failure}")
    print(
        f"\nthroughput, {args.jobs} jobs, default Sandbox(): 1 at a time {one:.3f} jobs/s, "
        f"4 at a time {four:.3f} jobs/s: x{four / one:.2f}"
    )


if __name__ == "__main__":
    main()
