"""The lessons memory and bounded prompt optimisation, end to end against a real model.

Any OpenAI-compatible endpoint: ``OPENAI_BASE_URL``, ``TOOLSMITH_MODEL`` (``OPENAI_API_KEY`` if it
needs one). ``../shared/tools/real_llm.sh`` starts a local llama.cpp server with
SmolLM2-135M-Instruct; that model is far too weak to build tools, but every path below runs
through it for real: its answers are parsed, refused, fed back, reflected on and audited.

1. ``lessons``: the curated tools' specs (``registry/sources``) are given and the model writes
   the code (a small model cannot design a valid spec, so the design step would end every build
   before an attempt). Each spec is built twice in a row, alternating which goes first: with the
   lessons memory off (baseline) and on, each into a registry of its own (the memory grows over
   the run, as in use). Per arm: builds published, median attempts, tokens and seconds, lessons
   kept and builds given a lesson; ratios on vs off.
2. ``prompts`` (needs ``toolsmith.evaluation``): ``improve_prompts`` over a few tasks of a packaged
   suite, one round, and what became of the proposal (kept, refused for its bounds, no gain...).

Usage: OPENAI_BASE_URL=$(bash ../shared/tools/real_llm.sh | tail -1) OPENAI_API_KEY=x \\
       TOOLSMITH_MODEL=smollm2-135m-instruct python bench/learning.py [--part lessons|prompts|all]
       [--tasks N] [--max-attempts 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from toolsmith.errors import ToolsmithError
from toolsmith.lessons import LessonMemory
from toolsmith.llm import LLMConfig, OpenAILLM
from toolsmith.pipeline import BuildOptions, Toolsmith
from toolsmith.registry import Registry
from toolsmith.spec import ToolSpec

SOURCES = Path(__file__).resolve().parent.parent / "registry" / "sources"
TOOLS = ["slugify", "text_stats", "to_roman", "days_between", "checksum", "semver_compare"]


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def bench_lessons(llm: OpenAILLM, tools: list[str], max_attempts: int) -> None:
    rows: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory(prefix="bench-learning-") as tmp:
        registries = {arm: Registry(Path(tmp) / arm) for arm in rows}
        engines = {arm: Toolsmith(registries[arm], llm) for arm in rows}
        try:
            for i, tool in enumerate(tools):
                spec = ToolSpec.from_file(SOURCES / tool / "spec.yaml")
                order = ["off", "on"] if i % 2 == 0 else ["on", "off"]
                for arm in order:
                    opts = BuildOptions(
                        max_attempts=max_attempts, max_examples=25, lessons=arm == "on"
                    )
                    t0 = time.monotonic()
                    try:
                        result = engines[arm].build_from_spec(spec, None, opts)
                        row = {
                            "status": result.status.value,
                            "attempts": len(result.attempts),
                            "tokens": sum(
                                result.tokens.get(k, 0)
                                for k in ("prompt_tokens", "completion_tokens")
                            ),
                            "used": len(result.lessons),
                            "kept": result.lesson is not None,
                        }
                    except ToolsmithError as e:
                        row = {
                            "status": f"error: {type(e).__name__}",
                            "attempts": 0,
                            "tokens": 0,
                            "used": 0,
                            "kept": False,
                            "error": e.message[:120],
                        }
                    row["seconds"] = time.monotonic() - t0
                    rows[arm].append(row)
                    print(
                        f"  [{arm}] {tool:16} {row['status']:22} attempts "
                        f"{row['attempts']} used {row['used']} kept {row['kept']}"
                        + (f"  ({row['error']})" if "error" in row else ""),
                        flush=True,
                    )
            memory = LessonMemory(registries["on"])
            kept = memory.all()
        finally:
            for engine in engines.values():
                engine.close()
    print()
    print(
        "| arm | builds | published | median attempts | median tokens | median s "
        "| lessons kept | builds given a lesson |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    med: dict[str, tuple[float, float, float]] = {}
    for arm, rs in rows.items():
        published = sum(r["status"] in ("published", "pending_approval") for r in rs)
        m = (
            _median([r["attempts"] for r in rs]),
            _median([r["tokens"] for r in rs]),
            _median([r["seconds"] for r in rs]),
        )
        med[arm] = m
        print(
            f"| lessons {arm} | {len(rs)} | {published} | {m[0]:.1f} | {m[1]:.0f} | "
            f"{m[2]:.1f} | {sum(r['kept'] for r in rs)} | {sum(r['used'] > 0 for r in rs)} |"
        )
    ratios = [a / b if b else float("nan") for a, b in zip(med["on"], med["off"], strict=True)]
    print(f"| on / off | | | {ratios[0]:.2f}x | {ratios[1]:.2f}x | {ratios[2]:.2f}x | | |")
    print(f"\nlessons kept in the 'on' registry: {len(kept)}")
    for lesson in kept:
        print(
            f"  {lesson.id} ({lesson.outcome}, audited {lesson.audited}, uses "
            f"{len(lesson.uses)}): {lesson.reflection.went_wrong[:100]}"
        )


def bench_prompts(llm: OpenAILLM, n: int, max_attempts: int) -> None:
    from toolsmith.evaluation import load_suite
    from toolsmith.prompts import PromptStore, improve_prompts

    suite = load_suite("core")
    suite = suite.select([t.id for t in suite.tasks[:n]])
    with tempfile.TemporaryDirectory(prefix="bench-prompts-") as tmp:
        os.environ["TOOLSMITH_STATE"] = str(Path(tmp) / "state")  # a prompt store of its own
        t0 = time.monotonic()
        report = improve_prompts(
            suite, llm, options=BuildOptions(max_attempts=max_attempts, max_examples=25)
        )
        seconds = time.monotonic() - t0
        active = PromptStore().active().version
    print(
        f"improve prompts over {n} tasks of core: seen {report.seen}, held out "
        f"{report.held_out}, {seconds:.0f} s"
    )
    for r in report.rounds:
        print(
            f"  round {r.round}: {r.outcome}: held-out {r.held_out_before:.2f} -> "
            f"{r.held_out_after if r.held_out_after is not None else '-'}; {r.reason[:200]}"
        )
    print(f"  active prompt set afterwards: v{active}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["lessons", "prompts", "all"], default="all")
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--max-attempts", type=int, default=2)
    args = parser.parse_args()
    llm = OpenAILLM(LLMConfig.resolve())
    print(f"model {llm.model} at {os.environ.get('OPENAI_BASE_URL', '(config)')}", flush=True)
    if args.part in ("lessons", "all"):
        bench_lessons(llm, TOOLS[: args.tasks], args.max_attempts)
    if args.part in ("prompts", "all"):
        bench_prompts(llm, args.tasks, args.max_attempts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
