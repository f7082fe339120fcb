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
import sys
import tempfile
import time
import types
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from unconfined import unconfined

from toolsmith.sandbox import Sandbox, SandboxJob, ensure_image

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


def _llm_sandbox(tag: str, n: int) -> list[float]:
    from llm_sandbox import SandboxSession

    files = _peer_files()

    def once() -> None:
        with SandboxSession(lang="python", image=tag, keep_template=True, verbose=False) as s:
            for name, data in files.items():
                with tempfile.NamedTemporaryFile(suffix=name) as f:
                    f.write(data)
                    f.flush()
                    s.copy_to_runtime(f.name, f"/tmp/job/{name}")
            result = s.execute_command("python3 main.py", workdir="/tmp/job")
            if result.exit_code != 0:
                raise RuntimeError(f"llm-sandbox job failed: {result.stdout} {result.stderr}")

    return _timed(once, n)


def _epicbox(tag: str, n: int) -> list[float]:
    import epicbox

    epicbox.configure(profiles=[epicbox.Profile("python", tag, user="10001")])
    files = [{"name": k, "content": v} for k, v in _peer_files().items()]

    def once() -> None:
        result = epicbox.run(
            "python", "python3 main.py", files=files, limits={"cputime": 30, "memory": 256}
        )
        if result["exit_code"] != 0:
            raise RuntimeError(f"epicbox job failed: {result}")

    return _timed(once, n)


def _passes(sb: Sandbox) -> None:
    report = sb.run(JOB)
    if not report.passed:
        raise RuntimeError(report.failure_text())


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--fresh-n", type=int, default=8)
    parser.add_argument("--barriers-only", action="store_true")
    args = parser.parse_args()
    if args.barriers_only:
        barriers(args.n)
        return
    image = ensure_image()
    rows: dict[str, list[float]] = {}
    notes: list[str] = []

    _floor_once()
    rows["floor (host pytest)"] = _timed(_floor_once, args.n)
    rows["floor, no plugin autoload"] = _timed(lambda: _floor_once(lean=True), args.n)

    def run(sb: Sandbox) -> Callable[[], None]:
        def once() -> None:
            report = sb.run(JOB)
            if not report.passed:
                raise RuntimeError(report.failure_text())

        return once

    with Sandbox(pool_size=0, image=image) as cold:
        run(cold)()
        rows["fresh container"] = _timed(run(cold), args.fresh_n)
    with Sandbox(pool_size=2, image=image) as warm:
        pool = warm.backend.pool_for(JOB)  # type: ignore[attr-defined]
        pool.wait_ready()

        def refilled() -> None:
            pool.wait_ready()
            time.sleep(0.5)

        rows["warm pool (refilled)"] = _timed(run(warm), args.n, before=refilled)
        pool.wait_ready()
        rows["warm pool (back-to-back)"] = _timed(run(warm), args.n)
    for name, fn in (("llm-sandbox", _llm_sandbox), ("epicbox", _epicbox)):
        try:
            fn(image.tag, 1)
            rows[name] = fn(image.tag, args.fresh_n)
        except Exception as e:
            notes.append(f"{name}: could not run here: {type(e).__name__}: {str(e)[:300]}")

    floor = statistics.median(rows["floor (host pytest)"])
    fresh = statistics.median(rows["fresh container"])
    print(f"image {image.tag}, runtime {warm.backend.runtime}")  # type: ignore[attr-defined]
    print(
        f"{'run':28} {'n':>3} {'p50 ms':>9} {'p99 ms':>9} {'p50-floor':>10} {'x floor':>8} "
        f"{'fresh/x':>8}"
    )
    for name, xs in rows.items():
        p50 = statistics.median(xs)
        print(
            f"{name:28} {len(xs):3d} {p50 * 1e3:9.1f} {_pctl(xs, 0.99) * 1e3:9.1f} "
            f"{(p50 - floor) * 1e3:10.1f} {p50 / floor:8.2f} {fresh / p50:8.2f}"
        )
    for note in notes:
        print(note)
    barriers(args.n)


if __name__ == "__main__":
    main()
