"""`toolsmith eval` end to end against a real local model; metacognition learns across passes.

The model is a real OpenAI-compatible server: by default the llama.cpp server that
`../shared/tools/real_llm.sh` builds and starts (SmolLM2-135M-Instruct, Q4_1), found with
`real_llm.sh status`; any other endpoint works with --base-url/--model. The suite runs --passes
times in one fresh TOOLSMITH_HOME, so the second pass predicts from the first pass's outcomes.

Per pass it prints: tasks, published, hidden checks passed, builds that raised (answers that
never validated), median tokens and wall seconds per task, the mean prediction, and the Brier
score of the predictions against the hidden checks next to the baseline measured on the same
outcomes: a constant 0.5 (what the predictor says with no history), whose Brier is always 0.25.

Usage: python bench/eval.py [--tasks clamp,median] [--passes 2] [--base-url URL --model NAME]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pydantic import SecretStr

from toolsmith.evaluation import EvalTask, TaskResult, compare, load_suite, run_suite, save_run
from toolsmith.llm import LLMConfig, OpenAILLM
from toolsmith.metacognition import Metacognition, calibrate
from toolsmith.pipeline import BuildOptions
from toolsmith.sandbox import Sandbox

REAL_LLM = Path(__file__).resolve().parents[2] / "shared" / "tools" / "real_llm.sh"


def local_model_url() -> str:
    try:
        out = subprocess.run(
            ["bash", str(REAL_LLM), "status"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        sys.exit(f"no local model answering: start it with `bash {REAL_LLM}` or pass --base-url")
    return out.stdout.strip().splitlines()[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="core")
    ap.add_argument("--tasks", default="", help="comma-separated task ids (default: all)")
    ap.add_argument("--passes", type=int, default=2)
    ap.add_argument("--base-url", default=None)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--max-attempts", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=1024)
    ap.add_argument("--timeout", type=float, default=300.0)
    args = ap.parse_args()

    suite = load_suite(args.suite)
    if args.tasks:
        suite = suite.select(t for t in args.tasks.split(",") if t)
    base_url = args.base_url or local_model_url()
    home = Path(tempfile.mkdtemp(prefix="toolsmith-bench-eval-"))
    os.environ["TOOLSMITH_HOME"] = str(home)
    llm = OpenAILLM(
        LLMConfig(
            base_url=base_url,
            model=args.model,
            api_key=SecretStr(os.environ.get("OPENAI_API_KEY", "local")),
            timeout_s=args.timeout,
            max_tokens=args.max_tokens,
            max_retries=0,
        )
    )
    options = BuildOptions(max_attempts=args.max_attempts, max_examples=50, mutants=0)
    meta = Metacognition()
    print(f"model {args.model} at {base_url}; suite {suite.name}, {len(suite.tasks)} tasks")
    runs = []
    with Sandbox(pool_size=1) as sandbox:
        for n in range(1, args.passes + 1):
            t0 = time.monotonic()

            def show(task: EvalTask, r: TaskResult, n: int = n) -> None:
                error = f", {r.error[:100]}" if r.error else ""
                print(f"  pass {n} {r.id}: {r.status}, hidden {r.hidden}{error}", flush=True)

            run = run_suite(
                suite, llm, options=options, sandbox=sandbox, metacognition=meta, on_task=show
            )
            run.run_id += f"-pass{n}"
            path = save_run(run)
            runs.append((run, time.monotonic() - t0, path))

    print()
    print(
        "| pass | tasks | published | hidden passed | raised | tokens/task p50 | "
        "s/task p50 | mean predicted | Brier | Brier, constant 0.5 |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, (run, _, _) in enumerate(runs, 1):
        t = run.totals
        cal = run.calibration
        base = calibrate((0.5, r.success) for r in run.results)
        print(
            f"| {n} | {t.tasks} | {t.published} | {t.hidden_passed} | "
            f"{sum(r.status == 'error' for r in run.results)} | "
            f"{statistics.median(r.tokens for r in run.results):.0f} | "
            f"{statistics.median(r.wall_s for r in run.results):.1f} | "
            f"{t.mean_predicted or 0:.3f} | {cal.brier or 0:.3f} | {base.brier or 0:.3f} |"
        )
    if len(runs) >= 2:
        changed = [r for r in compare(runs[0][0], runs[-1][0]) if r.change != "same"]
        print(
            f"\ntasks whose outcome changed between pass 1 and {len(runs)}: "
            + (", ".join(f"{r.id} ({r.change})" for r in changed) or "none")
        )
    print(
        f"\nmetacognition log: {len(meta.history())} builds, "
        f"verifies: {meta.log.verify().ok}; runs saved in {home / 'evals'}"
    )
    for _run, seconds, path in runs:
        print(f"  {path} ({seconds:.0f} s)")


if __name__ == "__main__":
    main()
