"""Entry point: ``python3 -P -s -m toolsmith_runner [--no-warm-up]`` (the image's CMD).

Start-up does the slow part before any job exists: import pytest and hypothesis, pre-spawn the
worker, then announce readiness and block for exactly one job on stdin. A warm-pool container
also imports hypothesis-jsonschema and runs a throwaway session first, all before it is ready, so
no job ever waits for them; ``--no-warm-up`` (a container started for a job already waiting)
skips both: it pays what a plain ``docker run`` of pytest pays, no more. The job is
``<length>\\n<json>``; the records go to the original stdout as
``TOOLSMITH <nonce> <kind> <json>`` lines. Everything else the runner process would print goes to
/dev/null, and the worker's output goes to a pipe the runner drains and counts.
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO

import hypothesis
import pytest
import toolsmith_harness

from toolsmith_runner import FRAME, READY
from toolsmith_runner.client import WorkerClient
from toolsmith_runner.imports import ImportGuard, lock
from toolsmith_runner.plugin import Recorder, Variants

PR_SET_DUMPABLE = 4
MAX_JOB_BYTES = 64 * 1024 * 1024
TEST_FILE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\.py")
WORKDIR = Path("/work")


def _load_test_stack() -> None:
    """Import what tests use; hypothesis reads its unicode tables from the image (read-only)."""
    importlib.import_module("hypothesis_jsonschema")


def _non_dumpable() -> None:
    """Same-uid processes (the worker) may not ptrace us or open /proc/1/{mem,fd,environ}."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")


def _oom_kills() -> int:
    for path, key in (
        ("/sys/fs/cgroup/memory/memory.oom_control", "oom_kill"),
        ("/sys/fs/cgroup/memory.events", "oom_kill"),
    ):
        try:
            with open(path) as f:
                for line in f:
                    name, _, value = line.partition(" ")
                    if name == key:
                        return int(value)
        except OSError:
            continue
    return 0


def _read_job(stream: BinaryIO) -> dict[str, Any] | None:
    header = stream.readline(32)
    if not header:
        return None
    size = int(header)
    if not 0 < size <= MAX_JOB_BYTES:
        raise ValueError(f"job size {size} out of range")
    body = stream.read(size)
    if len(body) != size:
        raise ValueError("job truncated")
    job = json.loads(body)
    if not isinstance(job, dict):
        raise ValueError("job is not an object")
    return job


class Emitter:
    def __init__(self, fd: int, nonce: str) -> None:
        self._fd = fd
        self._prefix = f"{FRAME} {nonce} "

    def __call__(self, kind: str, doc: dict[str, Any]) -> None:
        data = f"{self._prefix}{kind} {json.dumps(doc)}\n".encode()
        while data:
            data = data[os.write(self._fd, data) :]


def _write_tests(files: dict[str, str]) -> Path:
    testdir = WORKDIR / f"job-{os.urandom(8).hex()}"
    testdir.mkdir(mode=0o700)
    for name, source in files.items():
        if not TEST_FILE.fullmatch(name) or not isinstance(source, str):
            raise ValueError(f"bad test file name {name!r}")
        (testdir / name).write_text(source, encoding="utf-8")
    return testdir


# Strings and hypothesis-jsonschema are in here because the first text draw of a process builds
# hypothesis's unicode interval tables (~3 s on this image); that belongs at start, not in a job.
WARMUP_TEST = """
from hypothesis import given, strategies as st
from hypothesis_jsonschema import from_schema

OBJECT = {"type": "object", "properties": {"s": {"type": "string"}}}

@given(st.integers(), st.text(), from_schema(OBJECT))
def test_warmup(x, s, o):
    assert isinstance(x, int) and isinstance(s, str) and isinstance(o, dict)
"""


def _pytest_args(testdir: Path) -> list[str]:
    return [
        str(testdir),
        "-q",
        "--tb=short",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:stepwise",
        "-p",
        "no:unraisableexception",
        "-p",
        "no:threadexception",
        "-p",
        "no:faulthandler",
        "--rootdir",
        str(testdir),
        "-o",
        "addopts=",
    ]


def _warm_up(guard: ImportGuard) -> None:
    """One throwaway session, so the job's session finds pytest's plugins and paths loaded."""
    testdir = WORKDIR / "warmup"
    testdir.mkdir()
    (testdir / "test_toolsmith_warmup.py").write_text(WARMUP_TEST)
    guard.open(str(testdir))
    pytest.main(_pytest_args(testdir))
    guard.close()
    shutil.rmtree(testdir)
    sys.modules.pop("test_toolsmith_warmup", None)
    gc.collect()
    gc.freeze()


def main(argv: list[str]) -> int:
    warm_up = "--no-warm-up" not in argv
    guard = lock()
    _non_dumpable()
    sys.dont_write_bytecode = True
    report_fd = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    hypothesis.settings.register_profile(
        "toolsmith", database=None, deadline=None, print_blob=False
    )
    hypothesis.settings.load_profile("toolsmith")
    if warm_up:
        _load_test_stack()
        _warm_up(guard)
    client = WorkerClient(output_cap=1 << 20)
    client.prespawn()
    toolsmith_harness.install(client)
    os.write(report_fd, READY)

    job = _read_job(sys.stdin.buffer)
    if job is None:
        return 0
    started = time.monotonic()
    emit = Emitter(report_fd, str(job["nonce"]))
    client.configure(
        str(job["tool_name"]),
        str(job["code"]),
        float(job["call_timeout_s"]),
        int(job["output_bytes"]),
        job.get("barriers"),
        job.get("property_barriers"),
    )
    oom_before = _oom_kills()
    testdir = _write_tests(job["test_files"])

    def open_calls() -> None:
        guard.close()  # the tool may write modules from now on: import none from its places
        client.calls_open = True

    codes = job.get("variants") or {}
    variants = None
    if codes:
        if not isinstance(codes, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in codes.items()
        ):
            raise ValueError("variants must map ids to code")
        variants = Variants(codes, client.switch, float(job.get("variant_time_s") or 60.0))
    recorder = Recorder(emit, testdir, open_calls, variants)
    guard.open(str(testdir))
    exit_code = pytest.main(_pytest_args(testdir), plugins=[recorder])
    client.close()
    emit(
        "done",
        {
            "exit_code": int(exit_code),
            "collected": len(recorder.collected),
            "output_bytes": client.sink.total,
            "output_truncated": client.sink.truncated,
            "oom_kills": _oom_kills() - oom_before,
            "duration_s": round(time.monotonic() - started, 6),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
