"""The runner's side of the worker: spawn, call with a deadline, kill, respawn."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolsmith_runner.grants import passed_env
from toolsmith_runner.serve import SWEEP_ROUNDS, WIPED, remove_ipc, strays, wipe

WORKER = Path(__file__).with_name("worker.py")
CHECKER = Path(__file__).with_name("checker.py")
WORKER_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/tmp",
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
}
MAX_ANSWER_BYTES = 16 * 1024 * 1024


class WorkerFailure(Exception):
    """The worker died, timed out or broke the protocol; the message says which."""


@dataclass
class OutputSink:
    """Counts what the tool printed, keeping only a short tail for crash messages."""

    cap: int
    total: int = 0
    tail: bytes = b""
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def truncated(self) -> bool:
        return self.total > self.cap

    def drain(self, fd: int) -> None:
        with os.fdopen(fd, "rb", buffering=0) as pipe:
            while chunk := pipe.read(65536):
                with self.lock:
                    self.total += len(chunk)
                    self.tail = (self.tail + chunk)[-2048:]


class _Worker:
    """A worker process (``script`` is worker.py, or checker.py for a spec's properties, whose
    output is dropped: ``sink`` None)."""

    def __init__(self, sink: OutputSink | None, script: Path = WORKER) -> None:
        req_r, self._req_w = os.pipe()
        self._ans_r, ans_w = os.pipe()
        out_r, out_w = os.pipe() if sink else (-1, os.open(os.devnull, os.O_WRONLY))
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", str(script), str(req_r), str(ans_w)],
                stdin=subprocess.DEVNULL,
                stdout=out_w,
                stderr=out_w,
                pass_fds=(req_r, ans_w),
                close_fds=True,
                env={**WORKER_ENV, **passed_env()},
                cwd="/tmp",
                start_new_session=True,
            )
        finally:
            for fd in (req_r, ans_w, out_w):
                os.close(fd)
        if sink:
            threading.Thread(target=sink.drain, args=(out_r,), daemon=True).start()
        self._buf = bytearray()
        self.loaded = False

    def send(self, doc: dict[str, Any]) -> None:
        try:
            os.write(self._req_w, (json.dumps(doc) + "\n").encode())
        except OSError as e:
            raise WorkerFailure(f"worker stopped reading its requests ({e.strerror})") from None

    def receive(self, deadline: float, timeout_s: float) -> dict[str, Any]:
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WorkerFailure(f"tool call timed out after {timeout_s:g} s")
            ready, _, _ = select.select([self._ans_r], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._ans_r, 1 << 20)
            if not chunk:
                raise WorkerFailure(self._death())
            self._buf += chunk
            if len(self._buf) > MAX_ANSWER_BYTES:
                raise WorkerFailure(f"tool result exceeds {MAX_ANSWER_BYTES} bytes")
        line, _, rest = bytes(self._buf).partition(b"\n")
        self._buf = bytearray(rest)
        try:
            doc = json.loads(line)
        except ValueError:
            raise WorkerFailure("worker broke the protocol (answer is not JSON)") from None
        if not isinstance(doc, dict):
            raise WorkerFailure("worker broke the protocol (answer is not an object)")
        return doc

    def _death(self) -> str:
        try:
            code = self.proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            return "worker closed its answer channel"
        if code < 0:
            return f"worker process died from signal {signal.Signals(-code).name}"
        return f"worker process exited with status {code}"

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        for fd in (self._req_w, self._ans_r):
            with contextlib.suppress(OSError):
                os.close(fd)


class WorkerClient:
    """Calls the tool in a worker process; a failed worker is replaced before the next call."""

    def __init__(self, output_cap: int) -> None:
        self.sink = OutputSink(cap=output_cap)
        self._worker: _Worker | None = None
        self._tool: dict[str, Any] | None = None
        # One checker per set of properties (each test file has its spec's), plus a spare.
        self._checkers: dict[str, _Worker] = {}
        self._spare_checker: _Worker | None = None
        self._property_barriers: dict[str, Any] | None = None
        self.call_timeout_s = 10.0
        self.calls_open = False
        self._keep: set[str] = set()

    def prespawn(self) -> None:
        self._worker = _Worker(self.sink)
        self._spare_checker = _Worker(None, CHECKER)

    @property
    def worker_pid(self) -> int | None:
        return None if self._worker is None else self._worker.proc.pid

    def configure(
        self,
        tool_name: str,
        code: str,
        call_timeout_s: float,
        output_cap: int,
        barriers: dict[str, Any] | None,
        property_barriers: dict[str, Any] | None = None,
    ) -> None:
        self._tool = {"tool_name": tool_name, "code": code, "barriers": barriers}
        self._property_barriers = property_barriers
        # Declared writable directories in /work are named by inode in the worker's Landlock
        # ruleset: emptied between variants, never removed (as serve does).
        writes = barriers.get("write", []) if isinstance(barriers, dict) else []
        self._keep = {str(p) for p in writes if str(p).startswith("/work/")}
        self.call_timeout_s = call_timeout_s
        self.sink.cap = output_cap

    def switch(self, code: str) -> None:
        """Call ``code`` from now on, in a fresh worker process (a variant of the tool)."""
        if self._tool is None:
            raise WorkerFailure("switch before configure")
        self._tool = {**self._tool, "code": code}
        self._discard()
        self._clean_slate()

    def _clean_slate(self) -> None:
        """Leave the next variant nothing of the last one, as serve does between calls: its
        stray processes, files in the writable places, SysV IPC objects. Otherwise a candidate
        that marks /tmp on its first call and fails in any later worker "kills" every mutant of
        itself, and the signed mutation score is the candidate's to choose."""
        # The property checkers run the spec's code, not the variant's: they stay.
        checkers = [*self._checkers.values(), self._spare_checker]
        keep = {1, os.getpid(), *(c.proc.pid for c in checkers if c is not None)}
        for _ in range(SWEEP_ROUNDS):
            found = strays(keep)
            if not found:
                break
            for pid in found:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                while os.waitpid(-1, os.WNOHANG)[0]:
                    pass
        for place in WIPED:
            wipe(place, self._keep)
        remove_ipc()

    def call(self, args: dict[str, Any]) -> dict[str, Any]:
        if not self.calls_open or self._tool is None:
            raise WorkerFailure("the tool may only be called from inside a test")
        deadline = time.monotonic() + self.call_timeout_s
        try:
            worker = self._ready_worker()
            worker.send({"args": args} if worker.loaded else self._tool)
            if not worker.loaded:
                # A worker refusing the load (no barriers, say) answers why and exits, maybe
                # before it reads the arguments: its answer says more than the broken pipe.
                with contextlib.suppress(WorkerFailure):
                    worker.send({"args": args})
                self._expect_loaded(worker.receive(deadline, self.call_timeout_s))
                worker.loaded = True
            answer = worker.receive(deadline, self.call_timeout_s)
        except WorkerFailure as e:
            self._discard()
            raise WorkerFailure(self._with_output(str(e))) from None
        if "ok" not in answer:
            self._discard()
            raise WorkerFailure("worker broke the protocol (answer without 'ok')")
        return answer

    def check(self, properties: list[dict[str, str]], args: Any, result: Any) -> dict[str, Any]:
        """The first of ``properties`` failing on (``args``, ``result``), run in a confined
        checker process: ``{"failed": name or None, "error": text}``. A checker that dies, times
        out (``call_timeout_s`` between messages) or breaks the protocol raises WorkerFailure."""
        if not self.calls_open or self._tool is None:
            raise WorkerFailure("properties may only be checked from inside a test")
        key = json.dumps(properties, sort_keys=True)
        try:
            checker = self._checkers.get(key) or self._load_checker(key, properties)
            checker.send({"args": args, "result": result})
            while True:
                deadline = time.monotonic() + self.call_timeout_s
                doc = checker.receive(deadline, self.call_timeout_s)
                if "call" not in doc:
                    break
                checker.send(self._nested(doc["call"]))
        except WorkerFailure as e:
            self._drop_checker(key)
            raise WorkerFailure(f"property checker: {e}") from None
        if "failed" not in doc:
            self._drop_checker(key)
            raise WorkerFailure("property checker broke the protocol (answer without 'failed')")
        return doc

    def _load_checker(self, key: str, properties: list[dict[str, str]]) -> _Worker:
        checker, self._spare_checker = self._spare_checker, None
        if checker is None:
            try:
                checker = _Worker(None, CHECKER)
            except OSError as e:
                raise WorkerFailure(f"could not start a checker process: {e}") from None
        self._checkers[key] = checker
        checker.send({"properties": properties, "barriers": self._property_barriers})
        deadline = time.monotonic() + self.call_timeout_s
        self._expect_loaded(checker.receive(deadline, self.call_timeout_s))
        return checker

    def _nested(self, kwargs: Any) -> dict[str, Any]:
        """A property's ``tool(**kwargs)``: the tool's answer, or why it has none."""
        if not isinstance(kwargs, dict):
            return {"crashed": "tool() takes keyword arguments only"}
        try:
            answer = self.call(kwargs)
        except WorkerFailure as e:
            return {"crashed": str(e)}
        return {
            "ok": answer["ok"] is True,
            "value": answer.get("value"),
            "error_type": answer.get("error_type"),
            "error_message": answer.get("error_message"),
        }

    def _drop_checker(self, key: str) -> None:
        checker = self._checkers.pop(key, None)
        if checker is not None:
            checker.kill()

    def _ready_worker(self) -> _Worker:
        if self._worker is None:
            try:
                self._worker = _Worker(self.sink)
            except OSError as e:
                raise WorkerFailure(f"could not start a worker process: {e}") from None
        return self._worker

    @staticmethod
    def _expect_loaded(doc: dict[str, Any]) -> None:
        if "fatal" in doc:
            raise WorkerFailure(f"{doc['fatal']}\n{doc.get('traceback', '')}".rstrip())
        if doc.get("loaded") is not True:
            raise WorkerFailure("worker broke the protocol (no load acknowledgement)")

    def _with_output(self, message: str) -> str:
        with self.sink.lock:
            tail = self.sink.tail.decode("utf-8", "replace")
        return f"{message}\n--- tool output (tail) ---\n{tail}" if tail.strip() else message

    def _discard(self) -> None:
        if self._worker is not None:
            self._worker.kill()
            self._worker = None

    def close(self) -> None:
        self.calls_open = False
        self._discard()
        for key in list(self._checkers):
            self._drop_checker(key)
        if self._spare_checker is not None:
            self._spare_checker.kill()
            self._spare_checker = None
