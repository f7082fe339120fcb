"""Test helpers that toolsmith ships to its users, like ``structlog.testing``.

``ScriptedLLMServer`` is a real HTTP server on loopback speaking the OpenAI chat completions API and
answering from a script. It stands in for a paid model in tests and in ``toolsmith demo``: every
byte goes through the real openai SDK, HTTP and JSON paths; only the model's words are scripted.
Like a real server it keeps to the request's completion budget (``max_tokens`` or
``max_completion_tokens``, counted as four characters a token): a longer answer is cut there and
finishes with ``length``.

``LocalBackend`` is a sandbox stand-in (no Docker, no barrier) and ``MemoryStorage`` an in-memory
registry storage (``Registry(storage=MemoryStorage())``): a registry that signs, verifies and
audits as a directory one does, without a disk, held to the same contract as the directory
storage by toolsmith's own tests.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from toolsmith.errors import RegistryError, UnsafePathError, UsageError
from toolsmith.registry._storage import RegistryStorage, check_rel, too_large
from toolsmith.report import Outcome, TestCase, TestReport, VariantResult
from toolsmith.sandbox import SandboxJob
from toolsmith.sandbox.sandbox import SandboxBackend


class Step(BaseModel):
    """One scripted answer: content (``reply`` text or ``json``), an HTTP error, or a hang."""

    model_config = ConfigDict(extra="forbid")

    label: str = ""
    when: str | None = Field(default=None, description="substring the last user message must hold")
    reply: str | None = None
    json_reply: Any = Field(default=None, alias="json")
    status: int | None = None
    retry_after: float | None = None
    message: str | None = Field(default=None, description="error message for a status step")
    hang_s: float | None = None
    finish_reason: Literal["stop", "length"] = Field(
        default="stop", description="'length' scripts an answer cut off at the budget"
    )
    times: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        kinds = [self.reply is not None, self.json_reply is not None, self.status is not None]
        if sum(kinds) + (self.hang_s is not None) != 1:
            raise ValueError("a step needs exactly one of reply, json, status or hang_s")
        return self

    def content(self) -> str:
        if self.json_reply is not None:
            return json.dumps(self.json_reply)
        return self.reply or ""


class Script(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = "scripted"
    steps: list[Step]

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Script:
        try:
            return cls.model_validate(yaml.safe_load(Path(path).read_text()))
        except (OSError, yaml.YAMLError, ValueError) as e:
            raise UsageError(f"cannot load LLM script {path}: {e}") from None


class ScriptedLLMServer:
    """Serve ``script`` at ``http://127.0.0.1:<port>/v1`` until closed; steps answer in order."""

    def __init__(self, script: Script | dict[str, Any] | str | os.PathLike[str]) -> None:
        if isinstance(script, str | os.PathLike):
            script = Script.load(script)
        elif isinstance(script, dict):
            script = Script.model_validate(script)
        self.script = script
        self.requests: list[dict[str, Any]] = []
        self._queue = [s for s in script.steps for _ in range(s.times)]
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    @property
    def remaining(self) -> int:
        return len(self._queue)

    def __enter__(self) -> ScriptedLLMServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> ScriptedLLMServer:
        return self.__enter__()

    def close(self) -> None:
        if self._thread.is_alive():
            self._httpd.shutdown()
        self._httpd.server_close()

    def _next_step(self, body: dict[str, Any]) -> Step | str:
        with self._lock:
            self.requests.append(body)
            if not self._queue:
                return f"script exhausted after {len(self.requests) - 1} requests"
            step = self._queue[0]
            last_user = next(
                (
                    m.get("content", "")
                    for m in reversed(body.get("messages", []))
                    if m.get("role") == "user"
                ),
                "",
            )
            if step.when is not None and step.when not in str(last_user):
                return f"script step {step.label or '?'} expects a message containing {step.when!r}"
            self._queue.pop(0)
            return step

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, code: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    model = {"id": server.script.model, "object": "model", "owned_by": "script"}
                    self._send(200, {"object": "list", "data": [model]}, {})
                else:
                    self._send(404, {"error": {"message": "not found"}}, {})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except json.JSONDecodeError:
                    self._send(400, {"error": {"message": "request body is not JSON"}}, {})
                    return
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}"}}, {})
                    return
                step = server._next_step(body)
                if isinstance(step, str):
                    self._send(400, {"error": {"message": step, "type": "script_error"}}, {})
                    return
                if step.hang_s is not None:
                    time.sleep(step.hang_s)
                    self._send(504, {"error": {"message": "scripted hang ended"}}, {})
                    return
                if step.status is not None:
                    headers = {}
                    if step.retry_after is not None:
                        headers["Retry-After"] = str(step.retry_after)
                    err = {"error": {"message": step.message or f"scripted HTTP {step.status}"}}
                    self._send(step.status, err, headers)
                    return
                content, finish = step.content(), step.finish_reason
                budget = body.get("max_tokens") or body.get("max_completion_tokens")
                if isinstance(budget, int) and len(content) > 4 * budget:
                    content, finish = content[: 4 * budget], "length"
                prompt_chars = sum(len(str(m.get("content", ""))) for m in body["messages"])
                usage = {
                    "prompt_tokens": prompt_chars // 4,
                    "completion_tokens": len(content) // 4,
                    "total_tokens": prompt_chars // 4 + len(content) // 4,
                }
                choice = {
                    "index": 0,
                    "finish_reason": finish,
                    "message": {"role": "assistant", "content": content},
                }
                self._send(
                    200,
                    {
                        "id": f"chatcmpl-scripted-{len(server.requests)}",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": body.get("model", server.script.model),
                        "choices": [choice],
                        "usage": usage,
                    },
                    {},
                )

        return Handler


# -- a sandbox stand-in -------------------------------------------------------------------------

# The ``toolsmith_harness`` the generated tests import, for LocalBackend: the tool is imported and
# called in the test's own process, with arguments and results sent through JSON as in the
# sandbox, so a tool that passes here meets the same data contract. Nothing here is a barrier.
_LOCAL_HARNESS = """\
from __future__ import annotations

import copy
import importlib
import json
import os
import traceback
from dataclasses import dataclass
from typing import Any

TOOL = os.environ["TOOLSMITH_LOCAL_TOOL"]
_tally = [0, 0]


class ToolRaised(Exception):
    def __init__(self, type_name: str, message: str, traceback: str = "") -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message
        self.traceback = traceback


class ToolCrashed(Exception):
    pass


@dataclass(frozen=True)
class Invocation:
    ok: bool
    value: Any
    error_type: str | None
    error_message: str | None
    args_after: dict[str, Any]
    traceback: str = ""


def invoke(args: dict[str, Any]) -> Invocation:
    fn = getattr(importlib.import_module(TOOL), TOOL)
    sent = json.loads(json.dumps(args))
    try:
        value = fn(**copy.deepcopy(sent))
    except Exception as e:  # the tool's own exception is part of the invocation
        return Invocation(False, None, type(e).__name__, str(e), sent, traceback.format_exc())
    try:
        value = json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as e:
        return Invocation(False, None, "ResultNotJSON", str(e), sent)
    return Invocation(True, value, None, None, sent)


def tally(accepted: bool) -> None:
    _tally[0] += bool(accepted)
    _tally[1] += 1


def take_tally() -> tuple[int, int]:
    counted = (_tally[0], _tally[1])
    _tally[:] = [0, 0]
    return counted


def worker_pid() -> int | None:
    return None


def call(**kwargs: Any) -> Any:
    inv = invoke(kwargs)
    if inv.ok:
        return inv.value
    raise ToolRaised(inv.error_type or "Exception", inv.error_message or "", inv.traceback)


def _tool(**kwargs: Any) -> Any:
    return call(**copy.deepcopy(kwargs))


def check_properties(
    properties: list[dict[str, str]], args: Any, result: Any
) -> tuple[str, str] | None:
    # The sandbox runs these in a confined checker process; here they run in this one, with the
    # checker's semantics (own namespace, own copy of args, optional tool handle).
    for prop in properties:
        namespace: dict[str, Any] = {"ToolRaised": ToolRaised, "ToolCrashed": ToolCrashed}
        exec(compile(prop["source"], f"<property {prop['name']}>", "exec"), namespace)
        check = namespace["check"]
        copied = json.loads(json.dumps(args))
        try:
            if check.__code__.co_argcount == 3:
                check(copied, result, _tool)
            else:
                check(copied, result)
        except BaseException as e:
            return f"property {prop['name']} fails", f"{type(e).__name__}: {e}"
    return None
"""

# A pytest plugin that writes each test's outcome to a JSON file LocalBackend reads back.
_LOCAL_PLUGIN = """\
from __future__ import annotations

import json
import os
from typing import Any

_results: list[dict[str, Any]] = []
_collected = [0]


def pytest_collection_modifyitems(items: list[Any]) -> None:
    _collected[0] = len(items)


def pytest_runtest_logreport(report: Any) -> None:
    if report.when == "call" or (report.when == "setup" and not report.passed):
        outcome = report.outcome if report.when == "call" else "error"
        if report.skipped:
            outcome = "skipped"
        failure = str(report.longrepr)[-4000:] if report.failed else None
        _results.append(
            {
                "nodeid": report.nodeid,
                "outcome": outcome,
                "duration_s": report.duration,
                "failure": failure,
            }
        )


def pytest_sessionfinish() -> None:
    with open(os.environ["TOOLSMITH_LOCAL_REPORT"], "w") as f:
        json.dump({"collected": _collected[0], "tests": _results}, f)
"""


class LocalBackend(SandboxBackend):
    """A sandbox backend that runs a job's tests with pytest in a plain subprocess on this host.

    **Not a security boundary**: the code under test runs with your user's rights, your network
    and your files, with none of the sandbox's barriers, limits or verdicts beyond a wall-clock
    timeout (``Limits.timeout_s``, reported as a failed job). Use it only for code you trust, in
    unit tests of code that drives toolsmith, where Docker is unavailable or too slow:
    ``Toolsmith(registry, llm, Sandbox(LocalBackend()))``. The tests see the same
    ``toolsmith_harness`` API, with the tool called in the test's own process (``worker_pid()``
    is None) and its arguments and results sent through JSON. Variants (mutants) run the same
    tests one at a time, each stopped at its first failure. ``jobs`` keeps every job run. The
    constitution's state checks measure the sandbox container (its files and processes), so on
    a shared host they fail: build through it with a constitution of static rules only.
    """

    def __init__(self, python: str = sys.executable) -> None:
        self.python = python
        self.jobs: list[SandboxJob] = []

    def run(self, job: SandboxJob) -> TestReport:
        self.jobs.append(job)
        started = time.monotonic()
        outcome = self._pytest(job, job.code, stop_first=False)
        if isinstance(outcome, str):
            return TestReport(expected=job.expected_tests, collected=0, error=outcome)
        collected, tests = outcome
        report = TestReport(
            tests=tests,
            expected=job.expected_tests,
            collected=collected,
            duration_s=time.monotonic() - started,
            runtime="local",
        )
        if job.variants:
            report.variants = [self._variant(job, vid, code) for vid, code in job.variants.items()]
        return report

    def _variant(self, job: SandboxJob, vid: str, code: str) -> VariantResult:
        started = time.monotonic()
        outcome = self._pytest(job, code, stop_first=True)
        if isinstance(outcome, str):
            return VariantResult(id=vid, finished=True, failed=outcome[:200])
        _, tests = outcome
        failed = next((t.nodeid for t in tests if t.outcome != Outcome.PASSED), None)
        ran = sum(1 for t in tests if t.outcome == Outcome.PASSED)
        return VariantResult(
            id=vid, finished=True, ran=ran, failed=failed, duration_s=time.monotonic() - started
        )

    def _pytest(
        self, job: SandboxJob, code: str, *, stop_first: bool
    ) -> tuple[int, list[TestCase]] | str:
        """(collected, tests), or the reason there is no report."""
        with tempfile.TemporaryDirectory(prefix="toolsmith-local-") as tmp:
            work = Path(tmp)
            (work / f"{job.tool_name}.py").write_text(code)
            (work / "toolsmith_harness.py").write_text(_LOCAL_HARNESS)
            (work / "toolsmith_local_plugin.py").write_text(_LOCAL_PLUGIN)
            for name, text in job.test_files.items():
                (work / name).write_text(text)
            env = {
                **os.environ,
                "PYTHONPATH": tmp,
                "TOOLSMITH_LOCAL_TOOL": job.tool_name,
                "TOOLSMITH_LOCAL_REPORT": str(work / "report.json"),
                "PYTHONDONTWRITEBYTECODE": "1",
            }
            cmd = [self.python, "-m", "pytest", "-q", "-p", "toolsmith_local_plugin"]
            cmd += ["-p", "no:cacheprovider", "--rootdir", tmp, *(["-x"] if stop_first else [])]
            try:
                subprocess.run(
                    [*cmd, *sorted(job.test_files)],
                    cwd=tmp,
                    env=env,
                    capture_output=True,
                    timeout=job.limits.timeout_s,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                return f"the job ran over its {job.limits.timeout_s:g} s timeout"
            try:
                data = json.loads((work / "report.json").read_text())
            except (OSError, ValueError):
                return "pytest wrote no report (the tests or the tool ended the process)"
        tests = [TestCase.model_validate(t) for t in data["tests"]]
        return int(data["collected"]), tests


class MemoryStorage(RegistryStorage):
    """A registry storage in memory, for tests of code that publishes to or loads from a
    registry: ``Registry(storage=MemoryStorage())``.

    It keeps the contract ``RepoDir`` keeps on disk (``tests/test_registry_storage.py`` runs the
    same tests on both): reads over their cap raise ``MetadataTooLargeError``; a write replaces
    the whole file at once; a path that names a directory where a file belongs (or the reverse)
    is an ``UnsafePathError``; other failures are ``RegistryError``; the registry lock and each
    log's lock are exclusive (the lock is not reentrant, like ``flock`` on a second open file).
    Everything is verified as on disk: the registry checks every byte against its signed
    metadata, so ``write`` on a target or metadata file is how a test tampers with a registry.
    What is not modelled: links, permissions, a full disk and killed writers (they need a disk;
    use a directory registry to test them), and directories outlive their last file only on
    disk. ``location`` (``memory:NAME``, a random name by default; messages name files
    ``memory:NAME/PATH``) keys this user's trust in the registry like a directory's path does,
    so two storages never share a pinned root.
    """

    def __init__(self, name: str | None = None) -> None:
        self.location = f"memory:{name or uuid.uuid4().hex[:16]}"
        self._blobs: dict[str, bytes] = {}
        self._state = threading.Lock()  # guards _blobs and _log_locks
        self._registry_lock = threading.Lock()
        self._log_locks: dict[str, threading.Lock] = {}

    def snapshot(self) -> dict[str, bytes]:
        """A copy of every file (path -> bytes): compare two to assert nothing changed."""
        with self._state:
            return dict(self._blobs)

    def _unsafe(self, rel: str, why: str) -> UnsafePathError:
        return UnsafePathError(f"refusing {self.location}/{rel}: {why}")

    def _is_dir(self, rel: str) -> bool:
        return any(p.startswith(rel + "/") for p in self._blobs)

    def _checked(self, rel: str) -> str:
        """``rel``, after refusing a path whose parent is a file (on disk: not a directory)."""
        parts = check_rel(rel)
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent in self._blobs:
                raise self._unsafe(parent, "not a directory (a symlink or a file)")
        return rel

    def _file(self, rel: str) -> bytes | None:
        """The bytes at ``rel``, None if nothing is there; a directory there is refused."""
        data = self._blobs.get(self._checked(rel))
        if data is None and self._is_dir(rel):
            raise self._unsafe(rel, "not a regular file")
        return data

    def _read(self, rel: str, limit: int) -> bytes | None:
        with self._state:
            data = self._file(rel)
        if data is not None and len(data) > limit:
            raise too_large(f"{self.location}/{rel}", limit)
        return data

    def _write(self, rel: str, data: bytes) -> None:
        with self._state:
            if self._is_dir(self._checked(rel)):
                raise RegistryError(f"cannot write {self.location}/{rel}: Is a directory")
            self._blobs[rel] = bytes(data)

    def _delete(self, rel: str) -> None:
        with self._state:
            if self._is_dir(self._checked(rel)):
                raise RegistryError(f"cannot delete {self.location}/{rel}: Is a directory")
            self._blobs.pop(rel, None)

    def _exists(self, rel: str) -> bool:
        with self._state:
            return self._checked(rel) in self._blobs or self._is_dir(rel)

    def _children(self, rel_dir: str) -> tuple[set[str], set[str]]:
        """(files, directories) directly in ``rel_dir``."""
        with self._state:
            if self._checked(rel_dir) in self._blobs:
                raise self._unsafe(rel_dir, "not a directory (a symlink or a file)")
            files: set[str] = set()
            dirs: set[str] = set()
            for path in self._blobs:
                if path.startswith(rel_dir + "/"):
                    head, sep, _ = path[len(rel_dir) + 1 :].partition("/")
                    (dirs if sep else files).add(head)
            return files, dirs

    def _files(self, rel_dir: str) -> list[str]:
        return sorted(self._children(rel_dir)[0])

    def _dirs(self, rel_dir: str) -> list[str]:
        return sorted(self._children(rel_dir)[1])

    def _size(self, rel: str) -> int:
        with self._state:
            data = self._file(rel)
        if data is None:
            raise RegistryError(f"cannot size {self.location}/{rel}: no such file")
        return len(data)

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        with self._registry_lock:
            yield

    @contextlib.contextmanager
    def _open_log(self, rel: str, *, append: bool, cap: int) -> Iterator[IO[bytes]]:
        with self._state:
            lock = self._log_locks.setdefault(self._checked(rel), threading.Lock())
        with lock:
            with self._state:
                data = self._file(rel)
                if data is None and append:
                    self._blobs[rel] = data = b""
            if data is not None and len(data) > cap:
                raise too_large(f"{self.location}/{rel}", cap)

            def commit(content: bytes) -> None:
                with self._state:
                    self._blobs[rel] = content

            with _MemoryLog(data or b"", commit if append else None) as f:
                yield f
                f.flush()


class _MemoryLog(io.BytesIO):
    """A log opened from ``MemoryStorage``: every write lands at the end (``O_APPEND``), and
    ``flush()`` stores the log whole; without ``commit`` it is read-only."""

    def __init__(self, data: bytes, commit: Callable[[bytes], None] | None) -> None:
        super().__init__(data)
        self._commit = commit

    def writable(self) -> bool:
        return self._commit is not None

    def write(self, buffer: Any, /) -> int:  # (any bytes-like object, as BytesIO takes)
        if self._commit is None:
            raise io.UnsupportedOperation("write: the log was opened for reading")
        self.seek(0, io.SEEK_END)
        return super().write(buffer)

    def flush(self) -> None:
        super().flush()
        if self._commit is not None and not self.closed:
            self._commit(self.getvalue())
