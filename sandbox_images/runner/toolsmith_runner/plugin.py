"""The pytest plugin that turns a session into nonce-framed records."""

from __future__ import annotations

import linecache
import os
import shutil
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest
import toolsmith_harness

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


class Recorder:
    """Records collection and per-test outcomes; removes the tests from disk once collected."""

    def __init__(self, emit: Emit, testdir: Path, on_collected: Callable[[], None]) -> None:
        self._emit = emit
        self._testdir = testdir
        self._on_collected = on_collected
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
