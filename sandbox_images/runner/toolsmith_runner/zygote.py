"""The call zygote: a fresh interpreter that forks the process each tool call runs in.

Started by ``serve`` as ``python3 -I zygote.py`` with /dev/null on fds 0-2 (nothing a tool prints
reaches any channel), a control socket on fd 3 and the load message on fd 4. It never runs tool
code: it compiles the module and imports the stdlib modules the code names (stdlib code, not the
tool's), then on request forks a spare child holding only the two pipe ends serve passed along with
the request. The spare installs the tool's barriers (``toolsmith_runner.barriers``: seccomp,
Landlock, a scrubbed environment; built once here, applied in each child), waits for its one
argument message, runs the module body in a fresh namespace and the call, writes one answer and
exits. Forking ahead keeps fork off the call's path;
the zygote's control socket is off it too, since serve talks to the spare's pipes directly.
Pipe messages are ``<length>\\n<bytes>``; an empty argument message asks for a load probe.
"""

import ast
import builtins
import contextlib
import ctypes
import gc
import importlib
import json
import linecache
import os
import signal
import socket
import sys
import traceback
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the read-only runner tree

from toolsmith_runner.barriers import BarrierError, Barriers, message

TEXT_LIMIT = 4000
# Stdlib modules whose import does something visible (opens a browser, prints, starts a GUI):
# never imported ahead in the zygote; a tool that imports them pays for it in its own child.
NO_PREIMPORT = frozenset(
    {"antigravity", "this", "__hello__", "__phello__", "idlelib", "tkinter", "turtle", "turtledemo"}
)
CONTROL_FD = 3
LOAD_FD = 4
PR_SET_DUMPABLE = 4


def set_dumpable(on: bool) -> None:
    """Off in the zygote: a call's process (same uid) may then not ptrace it or open its
    /proc/<pid>/mem, so it cannot plant anything the next call's fork would start with."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, int(on), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE) failed")


def read_message(fd: int) -> bytes | None:
    """The one message a pipe carries (its writer sends nothing after it)."""
    buf = bytearray()
    while True:
        head, sep, rest = buf.partition(b"\n")
        if sep and len(rest) >= int(head):
            return bytes(rest[: int(head)])
        if not sep and len(buf) > 20:
            raise ValueError("message header too long")
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return None
        buf += chunk


def write_message(fd: int, body: bytes) -> None:
    data = b"%d\n" % len(body) + body
    while data:
        data = data[os.write(fd, data) :]


def _safe_str(e: BaseException) -> str:
    try:
        return str(e)[:TEXT_LIMIT]
    except BaseException:
        return f"<unprintable {type(e).__name__}>"


def named_modules(tree: ast.AST) -> list[str]:
    """Every absolute import in the code, wherever it appears (``from a import b`` gives a, a.b)."""
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def preimport(tree: ast.AST) -> None:
    for name in named_modules(tree):
        top = name.split(".")[0]
        if top not in sys.stdlib_module_names or top in NO_PREIMPORT:
            continue
        with contextlib.suppress(BaseException):
            importlib.import_module(name)


class Tool:
    def __init__(
        self, tool_name: str, source: str, max_output_bytes: int, barriers: Barriers
    ) -> None:
        self.name = tool_name
        self.barriers = barriers
        self.filename = f"/tool/{tool_name}.py"
        self.max_output_bytes = max_output_bytes
        tree = ast.parse(source, self.filename)
        self.code = compile(tree, self.filename, "exec")
        linecache.cache[self.filename] = (len(source), None, source.splitlines(True), self.filename)
        preimport(tree)

    def spare(self, args_fd: int, answer_fd: int) -> None:
        """In the forked child: wait for the arguments, answer once, exit. Never returns."""
        try:
            keep = sorted({args_fd, answer_fd, self.barriers.ruleset_fd} - {-1})
            for low, high in zip([CONTROL_FD - 1, *keep], [*keep, 1 << 16], strict=True):
                os.closerange(low + 1, high)
            set_dumpable(True)  # /proc/self is ours again; the zygote stays closed to us
            with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as f:
                f.write("1000")
            # Fault in (copy-on-write) the pages every call touches, while no call is waiting.
            json.loads(json.dumps({"ok": True, "value": [1, "x", {"a": 1.5}]}, allow_nan=False))
            try:
                self.barriers.apply()
            except BarrierError as e:
                write_message(answer_fd, json.dumps({"ok": False, "barrier": str(e)}).encode())
                while True:
                    signal.pause()
            body = read_message(args_fd)
            if body is None:
                os._exit(0)
            os.close(args_fd)
            os.chdir("/tmp")
            try:
                answer = self._answer(body)
            except BaseException as e:
                answer = self._error(e)
            write_message(answer_fd, answer)
            while True:  # exiting now would hold the CPU serve needs to forward the answer;
                signal.pause()  # serve kills this process once the answer is out
        finally:
            os._exit(0)

    def _answer(self, body: bytes) -> bytes:
        module = types.ModuleType(self.name)
        module.__file__ = self.filename
        module.__dict__["__builtins__"] = builtins
        sys.modules[self.name] = module
        exec(self.code, module.__dict__)
        fn = module.__dict__.get(self.name)
        if not callable(fn):
            return json.dumps({"ok": False, "missing": self.name}).encode()
        if not body:
            return b'{"ok": true}'
        value = fn(**json.loads(body))
        try:
            encoded = json.dumps({"ok": True, "value": value}, allow_nan=False).encode()
        except (TypeError, ValueError) as e:
            kind = type(value).__name__
            return json.dumps({"ok": False, "not_json": f"{kind}: {_safe_str(e)}"}).encode()
        if len(encoded) > self.max_output_bytes:
            return json.dumps({"ok": False, "too_big": len(encoded)}).encode()
        return encoded

    def _error(self, e: BaseException) -> bytes:
        capability = self.barriers.denied(e)
        if capability is not None:
            return json.dumps(
                {
                    "ok": False,
                    "capability": capability,
                    "message": message(capability),
                    "traceback": traceback.format_exc()[-TEXT_LIMIT:],
                }
            ).encode()
        try:
            mro = [cls.__name__ for cls in type(e).__mro__]
        except BaseException:
            mro = ["BaseException"]
        return json.dumps(
            {
                "ok": False,
                "error_type": mro[0],
                "mro": mro,
                "message": _safe_str(e),
                "traceback": traceback.format_exc()[-TEXT_LIMIT:],
            }
        ).encode()


def describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            return f"was killed by signal {signal.Signals(sig).name}"
        except ValueError:
            return f"was killed by signal {sig}"
    return f"exited with status {os.waitstatus_to_exitcode(status)} without answering"


def reap(statuses: dict[int, int]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        statuses[pid] = status


def serve_forks(tool: Tool, control: socket.socket) -> None:
    statuses: dict[int, int] = {}
    while True:
        msg, fds, _, _ = socket.recv_fds(control, 256, 2)
        if not msg:
            return
        reap(statuses)
        if msg == b"fork" and len(fds) == 2:
            statuses.clear()  # serve asks only about the child of the call it just ran
            pid = os.fork()
            if pid == 0:
                tool.spare(fds[0], fds[1])
            control.send(b"%d" % pid)
        elif msg.startswith(b"status "):
            pid = int(msg.split()[1])
            status = statuses.pop(pid, None)
            if status is None:
                try:
                    _, status = os.waitpid(pid, 0)
                except ChildProcessError:
                    status = None
            crash = "ended without answering" if status is None else describe(status)
            control.send(crash.encode())
        for fd in fds:
            os.close(fd)


def main() -> None:
    control = socket.socket(fileno=CONTROL_FD)
    with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as f:
        f.write("500")
    set_dumpable(False)
    os.chdir("/")
    load = read_message(LOAD_FD)
    os.close(LOAD_FD)
    if load is None:
        return
    spec = json.loads(load)
    try:
        barriers = Barriers(spec.get("barriers"))
    except BarrierError as e:
        control.send(json.dumps({"ok": False, "barrier": str(e)}).encode())
        return
    try:
        tool = Tool(spec["tool_name"], spec["code"], int(spec["max_output_bytes"]), barriers)
    except BaseException as e:
        fatal = {"ok": False, "fatal": f"{type(e).__name__}: {_safe_str(e)}"}
        control.send(json.dumps(fatal).encode())
        return
    gc.collect()
    gc.freeze()  # children then share the zygote's objects without touching their pages
    control.send(b'{"ok": true}')
    serve_forks(tool, control)


if __name__ == "__main__":
    main()
