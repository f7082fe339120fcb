"""Build pipeline latency and throughput, the model's latency excluded.

A "build" is the demo's two-attempt build: design, a first implementation that fails a real test
in the sandbox, a fix that passes, sign and publish. The model is the scripted loopback server at
zero latency, so what is timed is toolsmith: prompts, parsing, policy, test generation, the
sandbox (200 hypothesis examples per property) and the registry.

Rows, in one process:
  floor      the same two attempts' generated test suites run by pytest in-process on the host,
             the tool called directly (no sandbox, no LLM, no signing): the work itself
  build      the whole two-attempt build, p50/p99 over --n runs
and throughput: builds per minute with 1, 2 and 4 builds in parallel, sharing one Sandbox whose
warm pool holds two containers (one per attempt) per build in flight.

Usage: python bench/pipeline.py [--n 10] [--per-worker 2]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import statistics
import sys
import tempfile
import threading
import time
import types
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from toolsmith.llm import LLMConfig, OpenAILLM
from toolsmith.pipeline import BuildOptions, BuildStatus, Toolsmith
from toolsmith.registry import Registry
from toolsmith.sandbox import Sandbox
from toolsmith.spec import ToolSpec
from toolsmith.testgen import generate_tests
from toolsmith.testing import ScriptedLLMServer

SCRIPT = yaml.safe_load(resources.files("toolsmith").joinpath("data/demo_script.yaml").read_text())
SPEC = ToolSpec.parse(SCRIPT["steps"][0]["json"]["spec"])
CODES = [s["reply"].split("```python\n", 1)[1].split("```", 1)[0] for s in SCRIPT["steps"][1:3]]
OPTIONS = BuildOptions(max_examples=200, force=True)


@dataclass
class Invocation:
    ok: bool
    value: Any = None
    error_type: str | None = None
    error_message: str | None = None
    args_after: Any = None


_CHECKS: dict[str, Any] = {}


def _in_process_properties(
    properties: list[dict[str, str]], args: Any, result: Any
) -> tuple[str, str] | None:
    """The floor's property checks: in this process, unconfined (the sandbox uses a checker)."""
    for prop in properties:
        if prop["source"] not in _CHECKS:
            ns: dict[str, Any] = {}
            exec(compile(prop["source"], f"<property {prop['name']}>", "exec"), ns)
            _CHECKS[prop["source"]] = ns["check"]
        try:
            _CHECKS[prop["source"]](copy.deepcopy(args), result)
        except Exception as e:
            return f"property {prop['name']} fails", f"{type(e).__name__}: {e}"
    return None


def _floor_once() -> None:
    """Both attempts' suites, in-process: the first must fail and the second pass, as in a build."""
    suite = generate_tests(SPEC, max_examples=OPTIONS.max_examples)
    for attempt, code in enumerate(CODES):
        ns: dict[str, Any] = {}
        exec(compile(code, f"{SPEC.name}.py", "exec"), ns)
        fn = ns[SPEC.name]

        def invoke(args: dict[str, Any], fn: Any = fn) -> Invocation:
            try:
                value = json.loads(json.dumps(fn(**args)))
            except Exception as e:
                return Invocation(False, None, type(e).__name__, str(e))
            return Invocation(True, value, None, None, copy.deepcopy(args))

        harness = types.ModuleType("toolsmith_harness")
        harness.invoke = invoke  # type: ignore[attr-defined]
        harness.check_properties = _in_process_properties  # type: ignore[attr-defined]
        sys.modules["toolsmith_harness"] = harness
        with tempfile.TemporaryDirectory() as tmp:
            module = f"test_floor_{uuid.uuid4().hex}"
            (Path(tmp) / f"{module}.py").write_text(next(iter(suite.files.values())))
            argv = [tmp, "-q", "-p", "no:cacheprovider", "-o", "addopts=", "-W", "ignore"]
            with contextlib.redirect_stdout(io.StringIO()):
                code_ = pytest.main(argv)
            sys.modules.pop(module, None)
        if (code_ == 0) != (attempt == 1):
            raise RuntimeError(f"floor attempt {attempt + 1} gave pytest exit {code_}")


def _build_once(sandbox: Sandbox) -> float:
    with tempfile.TemporaryDirectory() as tmp, ScriptedLLMServer(SCRIPT) as server:
        llm = OpenAILLM(LLMConfig(base_url=server.base_url, model="scripted", max_retries=0))
        ts = Toolsmith(Registry(Path(tmp) / "registry"), llm, sandbox)
        started = time.perf_counter()
        result = ts.build("parse durations", OPTIONS)
        elapsed = time.perf_counter() - started
    if result.status != BuildStatus.PUBLISHED or len(result.attempts) != 2:
        raise RuntimeError(f"unexpected build: {result.status} {len(result.attempts)} attempts")
    return elapsed


def _pct(xs: list[float], q: float) -> float:
    return sorted(xs)[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def _throughput(workers: int, per_worker: int) -> float:
    with Sandbox(pool_size=2 * workers) as sandbox:
        _build_once(sandbox)  # warm the pool and the imports off the clock
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for _ in range(per_worker):
                    _build_once(sandbox)
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=work) for _ in range(workers)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return workers * per_worker * 60 / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10, help="timed builds for p50/p99")
    parser.add_argument("--per-worker", type=int, default=2, help="builds per parallel worker")
    args = parser.parse_args()

    _floor_once()  # imports and hypothesis warm-up off the clock
    floor = []
    for _ in range(args.n):
        t0 = time.perf_counter()
        _floor_once()
        floor.append(time.perf_counter() - t0)
    with Sandbox(pool_size=2) as sandbox:
        _build_once(sandbox)
        builds = []
        for _ in range(args.n):
            time.sleep(4.0)  # let the pool refill off the clock, as between real builds
            builds.append(_build_once(sandbox))

    base = statistics.median(floor)
    print(f"two-attempt build, {OPTIONS.max_examples} hypothesis examples, n={args.n}")
    print(f"{'row':<34}{'p50 s':>9}{'p99 s':>9}{'x floor':>9}")
    for name, xs in (
        ("floor (host pytest, no sandbox)", floor),
        ("build (sandbox, sign, publish)", builds),
    ):
        p50 = statistics.median(xs)
        print(f"{name:<34}{p50:>9.2f}{_pct(xs, 0.99):>9.2f}{p50 / base:>9.2f}")

    print(f"\nthroughput, {args.per_worker} builds per worker")
    print(f"{'builds in parallel':<34}{'builds/min':>11}{'x 1':>9}")
    one = None
    for workers in (1, 2, 4):
        rate = _throughput(workers, args.per_worker)
        one = one or rate
        print(f"{workers:<34}{rate:>11.1f}{rate / one:>9.2f}")


if __name__ == "__main__":
    main()
