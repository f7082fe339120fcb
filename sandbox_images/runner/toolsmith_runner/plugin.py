"""The pytest plugin that turns a session into nonce-framed records."""

from __future__ import annotations

import linecache
import os
import shutil
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest
import toolsmith_harness
from _pytest.runner import runtestprotocol

FAILURE_LIMIT = 4000
# How hypothesis words the note it attaches to a failing test's exception, across versions.
EXAMPLE_NOTES = ("Falsifying example", "Falsifying explicit example", "Failing test case")

Emit = Callable[[str, dict[str, Any]], None]


def truncate(text: str, limit: int = FAILURE_LIMIT) -> str:
    """Keep the head (what failed) and the longer tail (where), dropping the middle."""
    if len(text) <= limit:
        return text
    head = limit // 4
    tail = limit - head
    return f"{text[:head]}\n... ({len(text) - limit} characters cut) ...\n{text[-tail:]}"


class Variants:
    """Other versions of the tool (mutants) to run the same collected tests against, after the
    tool itself, each in a fresh worker: ``switch(code)`` makes the harness call that code."""

    def __init__(self, codes: dict[str, str], switch: Callable[[str], None], time_s: float) -> None:
        self.codes = codes
        self.switch = switch
        self.time_s = time_s


class Recorder:
    """Records collection and per-test outcomes; removes the tests from disk once collected.

    With ``variants``, the collected tests then run again for each variant, in order, stopping a
    variant at its first failing test and starting none after ``variants.time_s`` seconds. Each
    gets a ``variant_start`` record before it runs and a ``variant`` record (its failing test, or
    none) after; one that ends the job on its way has a start and no result.
    """

    def __init__(
        self,
        emit: Emit,
        testdir: Path,
        on_collected: Callable[[], None],
        variants: Variants | None = None,
    ) -> None:
        self._emit = emit
        self._testdir = testdir
        self._on_collected = on_collected
        self._variants = variants
        self._phases: dict[str, list[pytest.TestReport]] = {}
        self._falsifying: dict[str, str] = {}
        self.collected: list[str] = []
        self.collect_errors: list[dict[str, str]] = []

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collect_errors.append(
                {"nodeid": report.nodeid, "failure": truncate(report.longreprtext)}
            )

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.collected = [item.nodeid for item in session.items]
        self._hide_tests()
        self._emit("collected", {"nodeids": self.collected, "errors": self.collect_errors})
        self._on_collected()

    def _hide_tests(self) -> None:
        """Keep sources in linecache (mtime None: never revalidated) and delete the files."""
        for root, _, files in os.walk(self._testdir):
            for name in files:
                path = os.path.join(root, name)
                with open(path, encoding="utf-8", errors="replace") as f:
                    lines = f.readlines()
                linecache.cache[path] = (sum(map(len, lines)), None, lines, path)
        shutil.rmtree(self._testdir, ignore_errors=True)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if call.excinfo is not None:
            notes = getattr(call.excinfo.value, "__notes__", None) or []
            examples = [n for n in notes if isinstance(n, str) and n.startswith(EXAMPLE_NOTES)]
            if examples:
                self._falsifying[item.nodeid] = truncate("\n".join(examples), 2000)
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._phases.setdefault(report.nodeid, []).append(report)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        result = yield
        if self._variants is not None:
            self._run_variants(session, self._variants)
        return result

    def _run_variants(self, session: pytest.Session, variants: Variants) -> None:
        started = time.monotonic()
        # Fail fast: plain tests (the examples) first, then hypothesis tests, the constitution's
        # state checks last (a mutant seldom leaves a forbidden state behind).
        items = sorted(
            session.items,
            key=lambda it: (
                getattr(getattr(it, "obj", None), "is_hypothesis_test", False),
                "constitution" in it.nodeid,
            ),
        )
        for name, code in variants.codes.items():
            if time.monotonic() - started > variants.time_s:
                break
            self._emit("variant_start", {"id": name})
            variants.switch(code)
            t0 = time.monotonic()
            failed: str | None = None
            ran = 0
            for i, item in enumerate(items):
                nextitem = items[i + 1] if i + 1 < len(items) else None
                reports = runtestprotocol(item, nextitem=nextitem, log=False)
                ran += 1
                if any(r.failed for r in reports) or not any(
                    r.when == "call" and r.passed for r in reports
                ):
                    failed = item.nodeid
                    # Torn down for the next item, not for a new pass: finish the teardown.
                    session._setupstate.teardown_exact(None)
                    break
            toolsmith_harness.take_tally()
            self._falsifying.clear()
            self._emit(
                "variant",
                {
                    "id": name,
                    "ran": ran,
                    "failed": failed,
                    "duration_s": round(time.monotonic() - t0, 6),
                },
            )

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        toolsmith_harness.take_tally()

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        accepted, inputs = toolsmith_harness.take_tally()
        phases = self._phases.pop(nodeid, [])
        outcome = "passed"
        failure = None
        for rep in phases:
            if rep.failed:
                outcome = "failed" if rep.when == "call" else "error"
                failure = truncate(rep.longreprtext)
                break
            if rep.skipped:
                outcome = "skipped"
                failure = truncate(rep.longreprtext)
        if not phases:
            outcome, failure = "error", "no report recorded for this test"
        self._emit(
            "test",
            {
                "nodeid": nodeid,
                "outcome": outcome,
                "duration_s": round(sum(r.duration for r in phases), 6),
                "failure": failure,
                "falsifying_example": self._falsifying.pop(nodeid, None),
                "inputs": inputs or None,
                "accepted": accepted if inputs else None,
            },
        )
