"""What a tool's dependencies cost a build, against a build without any.

Three builds, interleaved round by round (hand-written code, no model; the same options):
  none       a stdlib-only curated tool (days_between): the baseline measured in the same run
  first      the curated parse_date (python-dateutil) with a new lock: an empty wheel cache and no
             dependency layer, so the build resolves (pip, the real index), downloads, verifies,
             installs and builds the layer before its tests run
  second     the same build again: the lock resolves to the same digest, the wheels and the
             layer are cached (a cache hit; pip's resolution against the index still runs)

Each row gives the median seconds over --n rounds and its ratio to ``none``.

Usage: python bench/dependencies.py [--n 3] [--max-examples 25]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from toolsmith.pipeline import BuildOptions, BuildStatus, Toolsmith
from toolsmith.policy import CapabilityPolicy
from toolsmith.registry import Registry
from toolsmith.sandbox import Sandbox
from toolsmith.sandbox.layer import layer_tag
from toolsmith.spec import ToolSpec

SOURCES = Path(__file__).resolve().parents[1] / "registry" / "sources"
TRUSTING = CapabilityPolicy.from_toml('[dependencies]\ndefault = "allow"\n')


def _source(name: str) -> tuple[ToolSpec, str]:
    folder = SOURCES / name
    return ToolSpec.from_file(folder / "spec.yaml"), (folder / "impl.py").read_text()


def _build(sandbox: Sandbox, name: str, opts: BuildOptions) -> float:
    spec, code = _source(name)
    with tempfile.TemporaryDirectory() as tmp:
        ts = Toolsmith(Registry(Path(tmp) / "registry"), None, sandbox, policy=TRUSTING)
        started = time.perf_counter()
        result = ts.build_from_spec(spec, code, opts)
        elapsed = time.perf_counter() - started
    if result.status != BuildStatus.DRY_RUN:
        raise RuntimeError(f"{name}: {result.status} {result.attempts}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3)
    ap.add_argument("--max-examples", type=int, default=25)
    args = ap.parse_args()
    opts = BuildOptions(max_examples=args.max_examples, max_attempts=1, mutants=0, dry_run=True)
    spec, _ = _source("parse_date")
    times: dict[str, list[float]] = {"none": [], "first": [], "second": []}
    with Sandbox(pool_size=0) as sandbox:  # every job in a fresh container, for all three rows
        runner = sandbox.backend.image  # type: ignore[attr-defined]
        _build(sandbox, "days_between", opts)  # imports and the runner image off the clock
        for i in range(args.n):
            with tempfile.TemporaryDirectory(prefix="bench-wheels-") as cache:
                os.environ["TOOLSMITH_CACHE"] = cache  # an empty wheel cache: a new lock
                tag = layer_tag(runner, sandbox.lock(spec.dependencies))
                engine = sandbox.backend.engine  # type: ignore[attr-defined]
                if engine.api.images(name=tag, quiet=True):
                    engine.api.remove_image(tag, force=True)
                times["none"].append(_build(sandbox, "days_between", opts))
                times["first"].append(_build(sandbox, "parse_date", opts))
                times["second"].append(_build(sandbox, "parse_date", opts))
            print(f"round {i + 1}: " + ", ".join(f"{k} {v[-1]:.1f}s" for k, v in times.items()))
    base = statistics.median(times["none"])
    print(f"\n{'build':<8} {'median s':>9} {'vs none':>8}")
    for name, xs in times.items():
        print(f"{name:<8} {statistics.median(xs):9.1f} {statistics.median(xs) / base:7.2f}x")


if __name__ == "__main__":
    main()
