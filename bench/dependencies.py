"""What a tool's dependencies cost a build, against a build without any.

Three builds, interleaved round by round (hand-written code, no model; the same options):
  none       a stdlib-only curated tool (days_between): the baseline measured in the same run
  first      parse_date (below; python-dateutil) with a new lock: an empty wheel cache and no
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

import yaml

from toolsmith.pipeline import BuildOptions, BuildStatus, Toolsmith
from toolsmith.policy import CapabilityPolicy
from toolsmith.registry import Registry
from toolsmith.sandbox import Sandbox
from toolsmith.sandbox.layer import layer_tag
from toolsmith.spec import ToolSpec

SOURCES = Path(__file__).resolve().parents[1] / "registry" / "sources"
# A tool with one real dependency (python-dateutil, pure Python, with its own dependencies).
PARSE_DATE_SPEC = """\
name: parse_date
description: Parse a date written in a common human format into an ISO 8601 date (YYYY-MM-DD).
parameters:
  type: object
  properties:
    text: {type: string, minLength: 1, maxLength: 40, pattern: "^[0-9A-Za-z ,./:-]+$"}
  required: [text]
  additionalProperties: false
returns: {type: string, pattern: "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}
raises: [ValueError]
examples:
  - {args: {text: "5 March 2024"}, returns: "2024-03-05"}
  - {args: {text: "2024-03-05"}, returns: "2024-03-05"}
  - {args: {text: "March 5, 2024"}, returns: "2024-03-05"}
  - {args: {text: "03/05/2024"}, returns: "2024-03-05"}
  - {args: {text: "Tue, 5 Mar 2024 10:30"}, returns: "2024-03-05"}
  - {args: {text: "Dec 31 1999"}, returns: "1999-12-31"}
  - {args: {text: "5 March"}, returns: "2000-03-05"}
  - {args: {text: "not a date"}, raises: ValueError}
  - {args: {text: "2024-02-30"}, raises: ValueError}
properties:
  - name: iso_dates_parse_to_themselves
    source: |
      def check(args, result, tool):
          assert tool(text=result) == result
tags: [dates, parsing, time]
dependencies: ["python-dateutil>=2.8"]
"""
PARSE_DATE_CODE = '''\
import datetime

from dateutil import parser

# Parts the text leaves out (the year of "5 March", the day of "March 2024") come from here, so
# the same text always gives the same date.
DEFAULT = datetime.datetime(2000, 1, 1)


def parse_date(text):
    """A date written the way people write them, as ISO 8601 (YYYY-MM-DD); month before day
    when the order is ambiguous (03/05/2024 is March 5)."""
    try:
        parsed = parser.parse(text, default=DEFAULT, ignoretz=True)  # a date has no zone
    except (ValueError, OverflowError) as e:
        raise ValueError(f"not a date: {text!r} ({e})") from None
    return parsed.date().isoformat()
'''
TRUSTING = CapabilityPolicy.from_toml('[dependencies]\ndefault = "allow"\n')


def _source(name: str) -> tuple[ToolSpec, str]:
    if name == "parse_date":
        return ToolSpec.parse(yaml.safe_load(PARSE_DATE_SPEC)), PARSE_DATE_CODE
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
