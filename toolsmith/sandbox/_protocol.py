"""Judging a job: nonce-framed records in, a TestReport out.

Pure (no IO), so every forgery case can be tested on bytes. Only lines that start with
``TOOLSMITH <nonce> `` count; the verdict is recomputed here from the records rather than taken
from the runner's exit code, and anything missing (no done record, a collected test that never
reported, a count that does not match) reads as failure.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from toolsmith.report import TestCase, TestReport, VariantResult, Verdict

FRAME = "TOOLSMITH"


def marker(nonce: str, kind: str) -> bytes:
    return f"{FRAME} {nonce} {kind} ".encode()


def records(stdout: bytes, nonce: str) -> list[tuple[str, dict[str, Any]]]:
    prefix = f"{FRAME} {nonce} ".encode()
    found: list[tuple[str, dict[str, Any]]] = []
    for line in stdout.split(b"\n"):
        if not line.startswith(prefix):
            continue
        kind, _, body = line[len(prefix) :].partition(b" ")
        try:
            doc = json.loads(body)
        except ValueError:
            continue
        if isinstance(doc, dict):
            found.append((kind.decode("ascii", "replace"), doc))
    return found


def judge(
    stdout: bytes,
    nonce: str,
    *,
    expected: int,
    timed_out: bool = False,
    capped: bool = False,
    oom_killed: bool = False,
    exit_code: int | None = None,
    stderr: bytes = b"",
    timeout_s: float = 0.0,
    duration_s: float = 0.0,
    image_digest: str = "",
    runtime: str = "",
) -> TestReport:
    """Build the report from what the runner said, trusting nothing it did not say in frame."""
    errors: list[str] = []
    verdicts: list[Verdict] = []
    tests: dict[str, TestCase] = {}
    collected: list[str] | None = None
    done: dict[str, Any] | None = None
    variants: dict[str, VariantResult] = {}
    for kind, doc in records(stdout, nonce):
        if kind == "collected" and collected is None:
            collected = [str(n) for n in doc.get("nodeids", [])]
            errors.extend(
                f"collecting {e.get('nodeid', '?')} failed:\n{e.get('failure', '')}"
                for e in doc.get("errors", [])
            )
        elif kind == "test":
            try:
                case = TestCase.model_validate(doc)
            except ValidationError as e:
                errors.append(f"malformed test record: {e.errors()[0]['msg']}")
                continue
            if case.nodeid in tests:
                errors.append(f"test {case.nodeid} reported twice")
            tests[case.nodeid] = case
        elif kind == "variant_start" and isinstance(doc.get("id"), str):
            variants.setdefault(doc["id"], VariantResult(id=doc["id"], finished=False))
        elif kind == "variant" and doc.get("id") in variants:
            try:
                variants[doc["id"]] = VariantResult.model_validate({**doc, "finished": True})
            except ValidationError as e:
                errors.append(f"malformed variant record: {e.errors()[0]['msg']}")
        elif kind == "done" and done is None:
            done = doc
    if timed_out:
        verdicts.append(Verdict.TIMEOUT)
        errors.append(f"the job exceeded its wall-clock limit of {timeout_s:g} s and was killed")
    if capped:
        verdicts.append(Verdict.OUTPUT_TRUNCATED)
        errors.append("the runner's output exceeded its cap")
    if done is not None:
        if done.get("output_truncated"):
            verdicts.append(Verdict.OUTPUT_TRUNCATED)
        if int(done.get("oom_kills", 0) or 0) > 0:
            verdicts.append(Verdict.OOM)
        if done.get("exit_code") not in (0, 1):
            errors.append(f"pytest ended with exit code {done.get('exit_code')}")
    elif not timed_out and not capped:
        if oom_killed or exit_code == 137:
            verdicts.append(Verdict.OOM)
        else:
            verdicts.append(Verdict.CRASHED)
        tail = stderr.decode("utf-8", "replace")[-2000:].strip()
        errors.append(
            f"the runner ended without a report (exit code {exit_code})"
            + (f":\n{tail}" if tail else "")
        )
    if collected is None:
        if done is not None or not (timed_out or capped):
            errors.append("the runner never reported its collection")
        count = 0
    else:
        count = len(collected)
        missing = [n for n in collected if n not in tests]
        if missing and done is not None:
            errors.append(f"{len(missing)} collected test(s) never reported: {missing[:5]}")
        stray = [n for n in tests if n not in collected]
        if stray:
            errors.append(f"results for tests that were never collected: {stray[:5]}")
    if done is not None and int(done.get("collected", -1)) != count:
        errors.append("the runner's collection count is inconsistent")
    return TestReport(
        tests=list(tests.values()),
        expected=expected,
        collected=count,
        verdicts=list(dict.fromkeys(verdicts)),
        error="\n".join(errors) or None,
        duration_s=round(duration_s, 6),
        image_digest=image_digest,
        runtime=runtime,
        variants=list(variants.values()) or None,
    )
