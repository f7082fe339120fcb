"""Confined property checks: what running a spec's properties outside the test process costs.

The demo spec's passing attempt (its two properties checked on every one of 200 hypothesis
inputs) runs as one sandbox job, two ways, interleaved on warm pools of one container each:
  before   --before-ref's test generator and image: properties exec'd in the test process
  after    this tree: properties in a confined checker process, one round trip per input
Rows: job wall time p50/p99 and the ratio after/before.

Usage: python bench/properties.py [--before-ref main] [--n 10]
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import os
import statistics
import subprocess
import tarfile
import tempfile
import time
from importlib import resources
from pathlib import Path
from types import ModuleType

import yaml

import toolsmith.testgen as current_testgen
from toolsmith.sandbox import Sandbox, SandboxJob, ensure_image
from toolsmith.spec import ToolSpec

SCRIPT = yaml.safe_load(resources.files("toolsmith").joinpath("data/demo_script.yaml").read_text())
SPEC = ToolSpec.parse(SCRIPT["steps"][0]["json"]["spec"])
CODE = SCRIPT["steps"][2]["reply"].split("```python\n", 1)[1].split("```", 1)[0]
REPO = Path(__file__).resolve().parents[1]


def _git(*args: str) -> bytes:
    return subprocess.run(["git", "-C", str(REPO), *args], check=True, capture_output=True).stdout


def _before(ref: str, tmp: Path) -> tuple[ModuleType, object]:
    """``ref``'s testgen module and its sandbox image (built if missing)."""
    path = tmp / "testgen_before.py"
    path.write_bytes(_git("show", f"{ref}:toolsmith/testgen.py"))
    spec = importlib.util.spec_from_file_location("testgen_before", path)
    assert spec and spec.loader
    testgen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(testgen)
    with tarfile.open(fileobj=io.BytesIO(_git("archive", ref, "sandbox_images"))) as tar:
        tar.extractall(tmp, filter="data")
    os.environ["TOOLSMITH_SANDBOX_IMAGES"] = str(tmp / "sandbox_images")
    try:
        image = ensure_image()
    finally:
        del os.environ["TOOLSMITH_SANDBOX_IMAGES"]
    return testgen, image


def _job(testgen: ModuleType) -> SandboxJob:
    suite = testgen.generate_tests(SPEC, max_examples=200)
    return SandboxJob(
        tool_name=SPEC.name, code=CODE, test_files=suite.files, expected_tests=suite.expected
    )


def _pct(xs: list[float], q: float) -> float:
    return sorted(xs)[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before-ref", default="main")
    parser.add_argument("--n", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old_testgen, old_image = _before(args.before_ref, Path(tmp))
        jobs = {"before": _job(old_testgen), "after": _job(current_testgen)}
        images = {"before": old_image, "after": ensure_image()}
        samples: dict[str, list[float]] = {"before": [], "after": []}
        sandboxes = {k: Sandbox(pool_size=1, image=images[k]) for k in jobs}
        try:
            for i in range(args.n + 1):
                for k in ("before", "after") if i % 2 == 0 else ("after", "before"):
                    sandboxes[k].backend.pool_for(jobs[k]).wait_ready()  # type: ignore[attr-defined]
                    t = time.perf_counter()
                    report = sandboxes[k].run(jobs[k])
                    elapsed = time.perf_counter() - t
                    if not report.passed:
                        raise RuntimeError(f"{k}: {report.failure_text()}")
                    if i:  # the first round warms both pools, off the clock
                        samples[k].append(elapsed)
        finally:
            for sb in sandboxes.values():
                sb.close()
    base = statistics.median(samples["before"])
    print(f"demo spec, passing attempt, 200 examples x 2 properties, n={args.n} each, alternated")
    for k, label in (("before", f"before ({args.before_ref})"), ("after", "after (confined)")):
        p50 = statistics.median(samples[k])
        print(
            f"{label:28}{p50 * 1e3:9.0f} ms p50{_pct(samples[k], 0.99) * 1e3:9.0f} ms p99"
            f"   x{p50 / base:.2f}"
        )


if __name__ == "__main__":
    main()
