"""The docker runtime: every call runs in a warm, hardened container, in a process of its own.

Loading a tool starts one container for it, hardened exactly like a sandbox job (``host_config``:
no network, read-only rootfs, capped tmpfs, no capabilities, no-new-privileges, non-root, pids,
memory and CPU limits, scrubbed environment, no mounts, gVisor when the engine has it), and
granted exactly what the spec declares, as a sandbox job is (``create_attached``). Inside,
``toolsmith_runner.serve`` (PID 1) keeps a zygote that has compiled the tool and imported the
stdlib modules it names; each call forks a fresh child that runs the module body and the call, then
exits. After every call serve kills leftover processes and wipes /tmp, /work, /dev/shm,
/dev/mqueue and SysV IPC objects, so no call sees what an earlier one left. The zygote never runs
tool code: module-level code runs again in every call's child, the price of a clean parent.

The hot path is: arguments checked against the spec here, one write on the container's attach
socket, one framed answer back, the result checked here. Answers count only in frames carrying a
per-container nonce that only this process and serve know; tool processes never hold serve's
stdout (their stdout and stderr are /dev/null), so a printed "result" is just discarded output.

Calls on one tool are serialized (one container per tool, one call at a time); load the tool twice
for parallel calls. A call past its timeout is killed inside the container; if the container does
not answer by then plus a grace period it is removed, and the next call starts a new one.
"""

from __future__ import annotations

import json
import threading
import time
import weakref
from typing import Any

from toolsmith.dependencies import Lock
from toolsmith.errors import (
    CapabilityDeniedError,
    ConfinementError,
    PolicyError,
    SandboxError,
    ToolExecutionError,
    ToolRaisedError,
    ToolTimeoutError,
    UsageError,
)
from toolsmith.log import get_logger
from toolsmith.sandbox import cleanup
from toolsmith.sandbox.barriers import plan
from toolsmith.sandbox.containers import AttachedContainer, Egress, new_nonce, ready_allowance
from toolsmith.sandbox.engine import Engine, docker_errors, shared_engine
from toolsmith.sandbox.grants import Grants
from toolsmith.sandbox.image import ImageInfo, ensure_image
from toolsmith.sandbox.job import Limits
from toolsmith.sandbox.layer import ensure_layer
from toolsmith.spec import ToolSpec
from toolsmith.validation import Contract

log = get_logger(__name__)

TOOL_LABEL = "toolsmith.runtime.tool"
GRACE_S = 2.0
START_TIMEOUT_S = 60.0
# How long a started worker may take to run the tool's module body and say "loaded".
LOAD_TIMEOUT_S = 60.0
FRAME = b"TOOLSMITH"
STDERR_TAIL = 4096

_swept = False
_sweep_lock = threading.Lock()


def _not_json(name: str) -> Any:
    """``json.loads`` accepts NaN, Infinity and -Infinity, which JSON does not have: refused, as
    the tool side's ``allow_nan=False`` would (a tool may write its own answer frame)."""
    raise ValueError(f"{name} is not JSON")


class _Broken(Exception):
    """The container stopped answering, died, or broke the protocol: discard it."""


class _Worker:
    """One tool's container running serve (``AttachedContainer``) and serve's framing on it."""

    def __init__(
        self,
        engine: Engine,
        image: ImageInfo,
        limits: Limits,
        tool: str,
        grants: Grants,
        egress_network: str,
    ) -> None:
        self.tool = tool
        self.nonce = new_nonce()
        self.container = AttachedContainer(
            engine,
            image,
            limits,
            command=["python3", "-P", "-s", "-m", "toolsmith_runner.serve"],
            labels={TOOL_LABEL: tool},
            grants=grants,
            egress_network=egress_network,
            stdout_cap=1 << 62,  # frames are bounded one by one (``receive``'s cap)
        )

    @property
    def id(self) -> str:
        return self.container.id

    @property
    def egress(self) -> Egress | None:
        return self.container.egress

    def start(self, load: dict[str, Any]) -> bytes:
        """Start the container, send the tool; return serve's "loaded" payload."""
        self.container.start(START_TIMEOUT_S)
        allowed = ready_allowance(LOAD_TIMEOUT_S)
        deadline = time.monotonic() + allowed
        try:
            self.send(json.dumps({"nonce": self.nonce, **load}).encode())
            kind, payload = self.receive(deadline)
        except TimeoutError:
            self.discard()
            raise ToolTimeoutError(
                f"{self.tool}: the tool did not load within {allowed:.0f} s (its module "
                "body was still running, or its container stopped answering); it was stopped",
                hint="move slow set-up out of the module body into the first call, or retry "
                "when the machine is less busy",
            ) from None
        except _Broken as e:
            detail = self.container.frames.stderr.decode("utf-8", "replace")[-2000:].strip()
            self.discard()
            raise SandboxError(
                f"the worker container for {self.tool} did not start: {e}"
                + (f"\n{detail}" if detail else ""),
                hint="rebuild the image with `toolsmith sandbox build`",
            ) from None
        except BaseException:
            self.discard()
            raise
        if kind != "loaded":
            self.discard()
            raise SandboxError(f"the worker for {self.tool} answered {kind!r} instead of loading")
        return payload

    def send(self, body: bytes) -> None:
        try:
            self.container.send(b"%d\n" % len(body) + body)
        except OSError as e:
            raise _Broken(f"its stdin is closed ({e})") from None

    def receive(self, deadline: float, cap: int = 1 << 30) -> tuple[str, bytes]:
        """The next frame ``(kind, payload)``; anything on stdout that is not one is fatal."""
        prefix = FRAME + b" " + self.nonce.encode() + b" "
        out = self.container.frames.stdout
        while True:
            newline = out.find(b"\n")
            if newline >= 0:
                header = bytes(out[:newline])
                if not header.startswith(prefix):
                    raise _Broken("it wrote something that is not a frame")
                kind, _, size_text = header[len(prefix) :].partition(b" ")
                if not size_text.isdigit() or int(size_text) > cap:
                    raise _Broken(f"it announced an answer over the {cap}-byte limit")
                end = newline + 1 + int(size_text)
                if len(out) >= end:
                    payload = bytes(out[newline + 1 : end])
                    del out[:end]
                    return kind.decode("ascii", "replace"), payload
            elif len(out) > len(prefix) + 64:
                raise _Broken("it wrote something that is not a frame")
            if self.container.eof:
                raise _Broken("the container exited")
            if not self.container.pump(deadline):
                raise TimeoutError

    def oom_killed(self) -> bool:
        return self.container.oom_killed()

    def discard(self) -> None:
        """Kill and remove; idempotent, never raises for a container that is already gone."""
        self.container.discard()


class _Slot:
    """Holds the current worker; the tool's finalizer closes it without keeping the tool alive."""

    def __init__(self) -> None:
        self.worker: _Worker | None = None

    def discard(self) -> None:
        worker, self.worker = self.worker, None
        if worker is not None:
            worker.discard()


class DockerTool:
    """A tool loaded into its own warm worker container; calls are serialized per tool."""

    runtime = "docker"

    def __init__(
        self,
        spec: ToolSpec,
        code: str,
        *,
        timeout_s: float,
        max_output_bytes: int,
        limits: Limits,
        image: ImageInfo,
        engine: Engine,
        egress_network: str = "bridge",
    ) -> None:
        self.spec = spec
        self.grants = Grants.from_capabilities(spec.capabilities)
        self.egress_network = egress_network
        self.timeout_s = timeout_s
        self.max_output_bytes = max_output_bytes
        self.limits = limits
        self.image = image
        self.engine = engine
        self.contract = Contract(spec)
        self._load = {
            "tool_name": spec.name,
            "code": code,
            "timeout_s": timeout_s,
            "max_output_bytes": max_output_bytes,
            "barriers": plan(self.grants).model_dump(mode="json"),
        }
        self._lock = threading.Lock()
        self._slot = _Slot()
        self._closed = False
        weakref.finalize(self, self._slot.discard)
        cleanup.register(self)
        with self._lock:
            self._worker()

    @property
    def container_id(self) -> str | None:
        """The current worker container's id (None between a failure and the next call)."""
        worker = self._slot.worker
        return worker.id if worker is not None else None

    def __call__(self, /, **kwargs: Any) -> Any:
        kwargs = self.contract.check_args(kwargs)
        try:
            body = json.dumps(kwargs, allow_nan=False).encode()
        except ValueError as e:
            raise ToolExecutionError(f"{self.spec.name}: arguments are not JSON data: {e}") from e
        result = self._answer(*self._exchange(body))
        self.contract.check_result(result)
        return result

    def _worker(self) -> _Worker:
        if self._closed:
            raise UsageError(
                f"{self.spec.name}: this tool was closed", hint="load the tool again to call it"
            )
        worker = self._slot.worker
        if worker is not None:
            return worker
        worker = _Worker(
            self.engine, self.image, self.limits, self.spec.name, self.grants, self.egress_network
        )
        loaded = worker.start(self._load)
        self._slot.worker = worker
        self._check_loaded(loaded)
        log.debug("docker worker ready", tool=self.spec.name, container=worker.id[:12])
        return worker

    def _check_loaded(self, payload: bytes) -> None:
        try:
            doc = self._parse(payload, "its module body")
            if doc["ok"]:
                return
            name = self.spec.name
            if "missing" in doc:
                raise PolicyError(
                    f"{name}: the module defines no function {name}()",
                    hint=f"define a top-level function named {name}",
                )
            if "fatal" in doc:
                fatal = self._text(doc, "fatal", "its module body")
                raise ToolExecutionError(
                    f"{name}: the code does not compile: {fatal}", hint="fix the tool's code"
                )
            raise self._failure(doc, "its module body")
        except BaseException:
            self.close()
            raise

    def _exchange(self, body: bytes) -> tuple[str, bytes]:
        with self._lock:
            worker = self._worker()
            deadline = time.monotonic() + self.timeout_s + GRACE_S
            try:
                worker.send(body)
                return worker.receive(deadline, self.max_output_bytes + 65536)
            except TimeoutError:
                self._slot.discard()
                raise ToolTimeoutError(
                    f"{self.spec.name}: the call did not finish within {self.timeout_s:g} s and "
                    "its container stopped answering; it was replaced",
                    hint="make the tool faster or raise its timeout",
                ) from None
            except _Broken as e:
                oom = worker.oom_killed()
                self._slot.discard()
                what = f"ran out of memory ({self.limits.memory_mb} MB)" if oom else str(e)
                raise ToolExecutionError(
                    f"{self.spec.name}: the worker container failed during the call: {what}",
                    hint="the next call starts a new worker",
                ) from None

    def _answer(self, kind: str, payload: bytes) -> Any:
        name = self.spec.name
        if kind == "timeout":
            raise ToolTimeoutError(
                f"{name}: the call did not finish within {self.timeout_s:g} s and was killed",
                hint="make the tool faster or raise its timeout",
            )
        doc = self._parse(payload, "the call")
        if doc["ok"]:
            return doc.get("value")
        if kind == "oom":
            raise ToolExecutionError(
                f"{name}: the call ran out of memory (limit {self.limits.memory_mb} MB) "
                "and was killed",
                hint="use less memory or load the tool with a larger Limits.memory_mb",
            )
        raise self._failure(doc, "the call")

    def _parse(self, payload: bytes, what: str) -> dict[str, Any]:
        """The answer as a dict with a boolean "ok": the call's process can write any bytes to
        the pipe serve reads, so anything else is a malformed answer, not a crash here."""
        try:
            doc = json.loads(payload, parse_constant=_not_json)
        except (ValueError, RecursionError):
            raise self._malformed(what, "it is not JSON (NaN and infinities are not)") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("ok"), bool):
            raise self._malformed(what, 'it is not an object with a boolean "ok"')
        return doc

    def _malformed(self, what: str, why: str) -> ToolExecutionError:
        return ToolExecutionError(
            f"{self.spec.name}: {what} sent a malformed answer ({why})",
            hint="fix the tool: it wrote to the channel its answer comes back on",
        )

    def _text(self, doc: dict[str, Any], key: str, what: str) -> str:
        value = doc.get(key)
        if not isinstance(value, str):
            raise self._malformed(what, f"{key!r} is not a string")
        return value

    def _failure(self, doc: dict[str, Any], what: str) -> Exception:
        name = self.spec.name
        if "capability" in doc:
            return CapabilityDeniedError(name, self._text(doc, "capability", what))
        if "barrier" in doc:
            return ConfinementError(
                f"{name}: the run-time barriers could not be installed, so the tool did not run: "
                + self._text(doc, "barrier", what),
                hint="run `toolsmith sandbox check`; rebuild the image with "
                "`toolsmith sandbox build`",
            )
        if "crash" in doc:
            crash = self._text(doc, "crash", what)
            return ToolExecutionError(f"{name}: {what} {crash}", hint="fix the tool")
        if "missing" in doc:
            return ToolExecutionError(f"{name}: the module no longer defines {name}()")
        if "not_json" in doc:
            detail = self._text(doc, "not_json", what)
            return ToolExecutionError(
                f"{name}: the result is not JSON data ({detail})",
                hint="return JSON-compatible values (dict, list, str, int, float, bool, None)",
            )
        if "too_big" in doc:
            size = doc["too_big"]
            if type(size) is not int:
                raise self._malformed(what, "'too_big' is not an integer")
            return ToolExecutionError(
                f"{name}: the result is {size} bytes of JSON; the limit is {self.max_output_bytes}",
                hint="return less data or raise max_output_bytes",
            )
        mro = doc["mro"] if "mro" in doc else [doc.get("error_type", "Exception")]
        if not (isinstance(mro, list) and mro and all(isinstance(n, str) for n in mro)):
            raise self._malformed(what, "the exception's type names are not a list of strings")
        message = self._text(doc, "message", what) if "message" in doc else ""
        if what == "the call":
            for cls_name in mro:
                if cls_name in self.spec.raises:
                    return ToolRaisedError(cls_name, message)
        if mro[0] == "MemoryError":
            return ToolExecutionError(
                f"{name}: {what} ran out of memory (limit {self.limits.memory_mb} MB)",
                hint="use less memory or load the tool with a larger Limits.memory_mb",
            )
        if mro[0] == "RecursionError":
            return ToolExecutionError(
                f"{name}: {what} recursed too deep", hint="bound the recursion or use a loop"
            )
        declared = ", ".join(self.spec.raises) or "none"
        return ToolExecutionError(
            f"{name}: {what} raised {mro[0]}: {message} (declared exceptions: {declared})",
            hint="fix the tool, or declare the exception in the spec's raises if it is bad input",
        )

    def close(self) -> None:
        """Remove the worker container; idempotent. Later calls raise UsageError."""
        self._closed = True
        self._slot.discard()
        cleanup.unregister(self)

    def __repr__(self) -> str:
        return f"<DockerTool {self.spec.name}>"


def _sweep_once(engine: Engine) -> None:
    """Remove containers of dead owners once per process, before the first worker starts."""
    global _swept
    with _sweep_lock:
        if _swept:
            return
        _swept = True
    cleanup.sweep_stale(engine)


def load_docker(
    spec: ToolSpec,
    code: str,
    *,
    timeout_s: float = 10.0,
    max_output_bytes: int = 1_000_000,
    limits: Limits | None = None,
    image: ImageInfo | None = None,
    engine: Engine | None = None,
    egress_network: str = "bridge",
    lock: Lock | None = None,
) -> DockerTool:
    """Start ``spec``'s worker container with ``code`` loaded; ``limits`` sizes the container.

    With a ``lock`` (the signed report's), the container runs in that lock's dependency layer,
    built first if missing: every wheel is checked against the lock's sha256 before it is
    installed, and a mismatch raises DigestMismatchError before any tool code runs.

    ``timeout_s`` bounds one call; ``max_output_bytes`` the JSON of one result. The container is
    granted exactly the spec's capabilities (``toolsmith.sandbox.grants``); declared hosts are
    reached through an egress proxy whose upstream side is on ``egress_network``.
    """
    if timeout_s <= 0 or max_output_bytes <= 0:
        raise UsageError(
            "timeout_s and max_output_bytes must be positive",
            hint="pass e.g. timeout_s=10, max_output_bytes=1_000_000",
        )
    with docker_errors(f"loading {spec.name} into the docker runtime"):
        engine = engine or shared_engine()
        _sweep_once(engine)
        image = image or ensure_image(engine)
        if lock is not None:
            image = ensure_layer(engine, image, lock)
    return DockerTool(
        spec,
        code,
        timeout_s=timeout_s,
        max_output_bytes=max_output_bytes,
        limits=limits or Limits(),
        image=image,
        engine=engine,
        egress_network=egress_network,
    )
