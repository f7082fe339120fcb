"""What the tests of the curated tools catch, and what the mutation gate costs.

For each curated tool (``registry/sources``), in one process:

1. Every mutant of its implementation the gate's operators make (``toolsmith.mutation``: mutmut's
   node operators plus forced branches, return None and statement deletion) runs against the
   spec's examples alone, as it was before this work (``--baseline`` revision). The mutants that
   pass every example are the pool: wrong tools the examples cannot tell apart.
2. Mutants judged equivalent by hand (``EQUIVALENT`` below: no valid input tells them from the
   original, each with its reason) leave the pool.
3. The pool runs against the tests as generated before (baseline spec, no seeded inputs) and
   as generated now (the strengthened spec, seeded inputs, properties that call the tool).
   Kill rate = killed / pool, both suites on the same mutants.
4. False rejections: each correct tool is built through the whole gate (tests, constitution,
   mutation gate at the default budget) and must pass.
5. Build time: ``build_from_spec`` (dry run) without the gate and with it at the default budget,
   interleaved, ``--reps`` times per tool; medians and their ratio.

Usage: python bench/mutation.py [--tools a,b] [--reps 3] [--baseline REV] [--max-examples 100]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from toolsmith.mutation import Mutant, generate_mutants, mutants_job, operator_names
from toolsmith.pipeline import BuildOptions, Toolsmith
from toolsmith.registry import Registry
from toolsmith.sandbox import Sandbox
from toolsmith.spec import ToolSpec
from toolsmith.testgen import TestSuite, generate_tests

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "registry" / "sources"
BASELINE = "10802c7"  # the curated specs as they were before being strengthened

# Equivalent mutants, decided by reading each survivor of the strengthened suite: (tool,
# operator, a fragment of the mutated line as it reads in the mutant, why no valid input tells
# it from the original).
KIND_KEY = "the kind's name is only a dictionary key, looked up through kind_of() itself"
CODEC = "codec names are case-insensitive"
TOLERANCE = (
    "the factor changes by one part in 1e9 (1e12) of itself, inside the relative tolerance "
    "(1e-9) every float result is compared with"
)
EQUIVALENT: list[tuple[str, str, str, str]] = [
    (
        "semver_compare",
        "number",
        "else (1, 1, identifier)",
        "every alphanumeric identifier gets the same middle value, so their order is unchanged",
    ),
    (
        "semver_compare",
        "string",
        'return (0, int(identifier), "XXXX")',
        "numeric identifiers all get the same third value, so their order is unchanged",
    ),
    (
        "semver_compare",
        "number",
        "else (2, 0, identifier)",
        "alphanumeric identifiers still sort after numeric ones (2 > 0 as 1 > 0)",
    ),
    (
        "semver_compare",
        "swap_op",
        "return -1 if kx <= ky else 1",
        "reached only when kx != ky, where <= and < agree",
    ),
    (
        "semver_compare",
        "swap_op",
        "return -1 if core_a <= core_b else 1",
        "reached only when core_a != core_b, where <= and < agree",
    ),
    (
        "slugify",
        "if_exp",
        'if ("-" in cut) or True else',
        "without a hyphen rfind is -1, and cut[:-1] is slug[:max_length]",
    ),
    ("checksum", "string", 'text.encode("UTF-8")', CODEC),
    ("slugify", "string", '.encode("ASCII", "ignore")', CODEC),
    ("slugify", "string", '.decode("ASCII")', CODEC),
    (
        "slugify",
        "arg_removal",
        "slug = slug.strip(None)",
        "a cut slug never starts or ends with a hyphen (nor whitespace): the strip is a no-op",
    ),
    (
        "slugify",
        "string",
        'slug = slug.strip("XX-XX")',
        "a cut slug never ends in a hyphen and never holds an upper-case X",
    ),
    (
        "json_canonicalize",
        "arg_removal",
        "ensure_ascii=None)",
        "None is falsy, as False is",
    ),
    ("convert_units", "number", '"GB": 1000000001.0', TOLERANCE),
    ("convert_units", "number", '"TB": 1000000000001.0', TOLERANCE),
    ("convert_units", "string", '"XXlengthXX": {', KIND_KEY),
    ("convert_units", "string", '"LENGTH": {', KIND_KEY),
    ("convert_units", "string", '"XXmassXX": {', KIND_KEY),
    ("convert_units", "string", '"MASS": {', KIND_KEY),
    ("convert_units", "string", '"XXdataXX": {', KIND_KEY),
    ("convert_units", "string", '"DATA": {', KIND_KEY),
]


def equivalent_reason(tool: str, mutant: Mutant) -> str | None:
    line = changed_line(mutant)
    for name, operator, fragment, reason in EQUIVALENT:
        if name == tool and operator == mutant.operator and fragment in line:
            return reason
    return None


def changed_line(mutant: Mutant) -> str:
    added = [
        ln[1:].strip()
        for ln in mutant.diff.splitlines()
        if ln.startswith("+") and not ln.startswith("+++")
    ]
    return added[0] if added else ""


def baseline_spec(name: str, rev: str) -> ToolSpec:
    text = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:registry/sources/{name}/spec.yaml"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return ToolSpec.from_text(text, source=f"{rev}:{name}")


def survivors(
    sandbox: Sandbox, spec: ToolSpec, code: str, suite: TestSuite, mutants: list[Mutant]
) -> set[str]:
    """Ids of the mutants that pass every test of ``suite`` (one sandbox job)."""
    if not mutants:
        return set()
    report = sandbox.run(mutants_job(spec, code, suite, mutants, time_s=3000))
    if not report.passed:  # a suite the original fails would "kill" every mutant
        raise SystemExit(f"{spec.name}: the original fails its own tests: {report.failure_text()}")
    done = {v.id: v for v in report.variants or []}
    missing = [m.id for m in mutants if m.id not in done]
    if missing:
        raise SystemExit(f"{spec.name}: the job never reached {missing[:5]}: {report.summary()}")
    return {m.id for m in mutants if done[m.id].passed(suite.expected)}


def kill_rates(sandbox: Sandbox, name: str, rev: str, max_examples: int) -> dict[str, object]:
    spec = ToolSpec.from_file(SOURCES / name / "spec.yaml")
    old = baseline_spec(name, rev)
    code = (SOURCES / name / "impl.py").read_text()
    made = generate_mutants(code)
    examples_only = old.model_copy(update={"properties": []})
    examples = generate_tests(examples_only, generic=False, seeds=False)
    pool_ids = survivors(sandbox, old, code, examples, made)
    pool = [m for m in made if m.id in pool_ids]
    equivalent = [m for m in pool if equivalent_reason(name, m) is not None]
    counted = [m for m in pool if m not in equivalent]
    before = generate_tests(old, max_examples=max_examples, seeds=False)
    after = generate_tests(spec, max_examples=max_examples)
    left_before = survivors(sandbox, old, code, before, counted)
    left_after = survivors(sandbox, spec, code, after, counted)
    for m in counted:
        if m.id in left_after:
            print(f"  {name} survivor {m.id} {m.operator}: {changed_line(m)}", file=sys.stderr)
    return {
        "tool": name,
        "generated": len(made),
        "pool": len(pool),
        "equivalent": len(equivalent),
        "counted": len(counted),
        "killed_before": len(counted) - len(left_before),
        "killed_after": len(counted) - len(left_after),
    }


def build_times(
    sandbox: Sandbox, name: str, reps: int, max_examples: int
) -> tuple[list[float], list[float], int, float | None]:
    """(seconds without the gate, with it, false rejections, last mutation score)."""
    spec = ToolSpec.from_file(SOURCES / name / "spec.yaml")
    code = (SOURCES / name / "impl.py").read_text()
    without: list[float] = []
    with_gate: list[float] = []
    rejected = 0
    score = None
    with tempfile.TemporaryDirectory() as tmp:
        ts = Toolsmith(Registry(Path(tmp) / "registry"), None, sandbox)
        for _ in range(reps):
            for mutants, times in ((0, without), (12, with_gate)):
                options = BuildOptions(dry_run=True, mutants=mutants, max_examples=max_examples)
                t0 = time.perf_counter()
                result = ts.build_from_spec(spec, code, options)
                times.append(time.perf_counter() - t0)
                if not result.ok:
                    rejected += 1
                    print(f"  FALSE REJECTION {name}: {result.attempts[-1].summary}")
                elif mutants and result.report and result.report.mutation:
                    score = result.report.mutation.score
    return without, with_gate, rejected, score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tools", default="", help="comma-separated; default: every curated tool")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--max-examples", type=int, default=100)
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--skip-kill", action="store_true", help="time the builds only")
    args = parser.parse_args()
    names = args.tools.split(",") if args.tools else sorted(p.name for p in SOURCES.iterdir())
    print(
        f"operators: {', '.join(operator_names())}; equivalents decided by hand: {len(EQUIVALENT)}"
    )
    rows = []
    timing = []
    with Sandbox(pool_size=2) as sandbox:
        for name in names if not args.skip_kill else []:
            rows.append(kill_rates(sandbox, name, args.baseline, args.max_examples))
            print(rows[-1], flush=True)
        if not args.skip_timing:
            for name in names:
                timing.append((name, *build_times(sandbox, name, args.reps, args.max_examples)))
                print(timing[-1][0], flush=True)
    print()
    print("| tool | mutants | pass every example | equivalent | killed before | killed now |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['tool']} | {r['generated']} | {r['pool']} | {r['equivalent']} | "
            f"{r['killed_before']}/{r['counted']} | {r['killed_after']}/{r['counted']} |"
        )
    counted = sum(int(r["counted"]) for r in rows)  # type: ignore[call-overload]
    before = sum(int(r["killed_before"]) for r in rows)  # type: ignore[call-overload]
    after = sum(int(r["killed_after"]) for r in rows)  # type: ignore[call-overload]
    if counted:
        print(
            f"| **all** | | | | {before}/{counted} ({before / counted:.0%}) | "
            f"{after}/{counted} ({after / counted:.0%}) |"
        )
    if timing:
        print()
        print("| tool | build s, no gate | build s, gate | ratio | score | false rejections |")
        print("|---|---:|---:|---:|---:|---:|")
        ratios = []
        rejected = 0
        for name, without, with_gate, rej, score in timing:
            ratio = statistics.median(with_gate) / statistics.median(without)
            ratios.append(ratio)
            rejected += rej
            shown = "-" if score is None else f"{score:.0%}"
            print(
                f"| {name} | {statistics.median(without):.2f} | {statistics.median(with_gate):.2f}"
                f" | {ratio:.2f}x | {shown} | {rej} |"
            )
        print(
            f"median ratio {statistics.median(ratios):.2f}x; false rejections {rejected} "
            f"of {len(timing) * args.reps * 2} builds"
        )


if __name__ == "__main__":
    main()
