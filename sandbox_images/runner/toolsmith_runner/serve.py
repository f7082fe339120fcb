"""The warm tool worker: ``python3 -P -s -m toolsmith_runner.serve``, PID 1 of a hardened container.

Process layout (one container per loaded tool, many calls)::

    serve (PID 1, non-dumpable)    holds the nonce and the container stdout; enforces the per-call
      │                            timeout; after every call kills stray processes and wipes the
      │                            writable places (/tmp, /work, /dev/shm, /dev/mqueue, SysV IPC)
      └── zygote (fresh -I interp) compiled tool, stdlib imports done; forks one child per call
            └── call child         runs the module body and the call, answers on its own pipe

The host sends ``<length>\\n<json>`` messages on stdin: first the load (nonce, code, limits), then
one argument object per call. serve answers only in frames ``TOOLSMITH <nonce> <kind> <length>\\n``
followed by the payload; no other process holds the stdout it writes them to, and being PID 1 of
its namespace, it cannot be killed by the tool's processes.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import shutil
import signal
import socket
import sys
import time
from pathlib import Path

from toolsmith_runner import FRAME, READY
from toolsmith_runner.grants import passed_env
from toolsmith_runner.imports import lock

PR_SET_DUMPABLE = 4
IPC_RMID = 0
ZYGOTE = Path(__file__).with_name("zygote.py")
ZYGOTE_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
}
WIPED = ("/tmp", "/work", "/dev/shm", "/dev/mqueue")
LOAD_TIMEOUT_S = 60.0
FORK_TIMEOUT_S = 5.0
SWEEP_ROUNDS = 200
MAX_MESSAGE = 64 * 1024 * 1024

libc = ctypes.CDLL(None, use_errno=True)


class Stdin:
    """Length-prefixed messages from the host, read with plain ``os.read`` (no buffering games)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = bytearray()

    def message(self) -> bytes | None:
        while True:
            head, sep, _ = self.buf.partition(b"\n")
            if sep:
                size = int(head)
                if not 0 <= size <= MAX_MESSAGE:
                    raise ValueError(f"message of {size} bytes is out of range")
                end = len(head) + 1 + size
                if len(self.buf) >= end:
                    body = bytes(self.buf[len(head) + 1 : end])
                    del self.buf[:end]
                    return body
            chunk = os.read(self.fd, 1 << 20)
            if not chunk:
                return None
            self.buf += chunk


class Zygote:
    """The zygote process and its control socket; replaced whole if it stops answering."""

    def __init__(self, load: bytes) -> None:
        self.control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        load_r, load_w = os.pipe()
        devnull = os.open(os.devnull, os.O_RDWR)
        try:
            self.pid = os.posix_spawn(
                sys.executable,
                [sys.executable, "-I", str(ZYGOTE)],
                {**ZYGOTE_ENV, **passed_env()},
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, devnull, 0),
                    (os.POSIX_SPAWN_DUP2, devnull, 1),
                    (os.POSIX_SPAWN_DUP2, devnull, 2),
                    (os.POSIX_SPAWN_DUP2, theirs.fileno(), 3),
                    (os.POSIX_SPAWN_DUP2, load_r, 4),
                ],
            )
            write_message(load_w, load)
        finally:
            theirs.close()
            for fd in (load_r, load_w, devnull):
                os.close(fd)
        self.alive = True

    def request(self, msg: bytes, deadline: float, fds: list[int] | None = None) -> bytes | None:
        """Send a control message and wait for the reply; None if none came in time."""
        try:
            if fds:
                socket.send_fds(self.control, [msg], fds)
            elif msg:
                self.control.send(msg)
            ready, _, _ = select.select([self.control], [], [], max(0.0, deadline - now()))
            return self.control.recv(65536) if ready else None
        except OSError:
            return None

    def close(self) -> None:
        self.control.close()


class Spare:
    """A forked child waiting for its arguments, and serve's ends of its two pipes."""

    def __init__(self, pid: int, args: int, answer: int) -> None:
        self.pid = pid
        self.args = args
        self.answer = answer
        self.pidfd: int | None = None
        with contextlib.suppress(OSError, AttributeError):
            self.pidfd = os.pidfd_open(pid)

    def read_answer(self, deadline: float, cap: int) -> bytes | str | None:
        """The answer; None past the deadline; a str saying why there is none."""
        buf = bytearray()
        watch = [self.answer] if self.pidfd is None else [self.answer, self.pidfd]
        exited = False
        while True:
            head, sep, rest = buf.partition(b"\n")
            if sep:
                if not head.isdigit() or int(head) > cap:
                    return f"sent an answer that is malformed or over {cap} bytes"
                if len(rest) >= int(head):
                    return bytes(rest[: int(head)])
            elif len(buf) > 20:
                return "sent an answer that is malformed"
            if not exited:
                left = deadline - now()
                ready = select.select(watch, [], [], left)[0] if left > 0 else []
                if not ready:
                    return None
                if self.pidfd in ready:
                    exited = True
                    os.set_blocking(self.answer, False)
            try:
                chunk = os.read(self.answer, 1 << 20)
            except BlockingIOError:
                chunk = b""
            if not chunk:
                return ""
            buf += chunk

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)
        for fd in (self.args, self.answer, self.pidfd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)


class Server:
    def __init__(self, channel: int, load: dict[str, object]) -> None:
        self.channel = channel
        self.prefix = f"{FRAME} {load['nonce']} ".encode()
        self.timeout_s = float(str(load["timeout_s"]))
        self.cap = int(str(load["max_output_bytes"])) + 64 * 1024
        self.zygote_load = json.dumps(
            {k: load.get(k) for k in ("tool_name", "code", "max_output_bytes", "barriers")}
        ).encode()
        self.zygote: Zygote | None = None
        self.spare: Spare | None = None
        self.answered: Spare | None = None
        self.oom_baseline = oom_kills()
        # Declared writable directories in /work: the zygote made them and its Landlock ruleset
        # names them by inode, so the clean-up empties them rather than removing them.
        plan = load.get("barriers")
        writes = plan.get("write", []) if isinstance(plan, dict) else []
        self.keep = {str(p) for p in writes if str(p).startswith("/work/")}

    def emit(self, kind: str, payload: bytes) -> None:
        data = self.prefix + b"%s %d\n" % (kind.encode(), len(payload)) + payload
        while data:
            data = data[os.write(self.channel, data) :]

    def load(self) -> bytes:
        """Start the zygote and probe the module body in a child: the "loaded" payload."""
        loaded = self.start_zygote()
        if not loaded.startswith(b'{"ok": true'):
            return loaded
        kind, answer = self.run(b"", now() + LOAD_TIMEOUT_S)
        self.after_call()
        return answer if kind == "answer" else b'{"ok": false, "crash": "did not load in time"}'

    def start_zygote(self) -> bytes:
        """A new zygote with the tool compiled; its reply (``{"ok": true}`` or why not)."""
        self.zygote = Zygote(self.zygote_load)
        reply = self.zygote.request(b"", now() + LOAD_TIMEOUT_S)
        if reply and reply.startswith(b'{"ok": true'):
            return reply
        self.zygote.close()
        self.zygote = None
        return reply or b'{"ok": false, "crash": "did not load in time"}'

    def fork_spare(self) -> Spare | None:
        """A child forked ahead for the next call; after a reset, from a zygote started anew."""
        if self.zygote is None and not self.start_zygote().startswith(b'{"ok": true'):
            return None
        assert self.zygote is not None
        args_r, args_w = os.pipe()
        answer_r, answer_w = os.pipe()
        try:
            reply = self.zygote.request(b"fork", now() + FORK_TIMEOUT_S, [args_r, answer_w])
        finally:
            os.close(args_r)
            os.close(answer_w)
        if not reply or not reply.isdigit():
            for fd in (args_w, answer_r):
                os.close(fd)
            return None
        return Spare(int(reply), args_w, answer_r)

    def run(self, body: bytes, deadline: float) -> tuple[str, bytes]:
        """One call in the spare: ``(frame kind, answer)``."""
        spare, self.spare = self.spare or self.fork_spare(), None
        if spare is None:
            self.reset()
            return "answer", b'{"ok": false, "crash": "could not start a call process"}'
        with contextlib.suppress(OSError):  # a spare that died: read_answer says how
            write_message(spare.args, body)
        answer = spare.read_answer(deadline, self.cap)
        if answer is None:
            spare.kill()
            return "timeout", b"{}"
        if isinstance(answer, bytes):
            self.answered = spare  # killed after the answer is forwarded, off the call's path
            return "answer", answer
        spare.kill()
        crash = answer or self.status(spare.pid)
        kind = "oom" if oom_kills() > self.oom_baseline else "answer"
        return kind, json.dumps({"ok": False, "crash": crash}).encode()

    def status(self, pid: int) -> str:
        if self.zygote is None:
            return "ended without answering"
        reply = self.zygote.request(b"status %d" % pid, now() + 5.0)
        return reply.decode("utf-8", "replace") if reply else "ended without answering"

    def call(self, body: bytes) -> None:
        self.emit(*self.run(body, now() + self.timeout_s))
        self.after_call()

    def after_call(self) -> None:
        """Clean up after the call, then fork the next call's process ahead of time."""
        if self.answered is not None:
            self.answered.kill()
            self.answered = None
        self.clean()
        self.spare = self.fork_spare()
        if self.spare is None:
            self.reset()

    def reset(self) -> None:
        """Kill every process but this one, the zygote too; the next call starts a new one."""
        if self.zygote is not None:
            self.zygote.close()
            self.zygote = None
        for spare in (self.spare, self.answered):
            if spare is not None:
                spare.kill()
        self.spare = self.answered = None
        with contextlib.suppress(OSError):
            os.kill(-1, signal.SIGKILL)
        self.clean()

    def clean(self) -> None:
        """Leave nothing of the last call: processes, files in writable places, IPC objects."""
        keep = {1} if self.zygote is None else {1, self.zygote.pid}
        for _ in range(SWEEP_ROUNDS):
            found = strays(keep)
            for pid in found:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            self.reap()
            if not found:
                break
        else:
            self.reset()
            return
        for place in WIPED:
            wipe(place, self.keep)
        remove_ipc()
        self.oom_baseline = oom_kills()

    def reap(self) -> None:
        """Reap orphans that were re-parented to PID 1; notice if the zygote was among them."""
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.zygote is not None and pid == self.zygote.pid:
                self.zygote.close()
                self.zygote = None


def now() -> float:
    return time.monotonic()


def write_message(fd: int, body: bytes) -> None:
    data = b"%d\n" % len(body) + body
    while data:
        data = data[os.write(fd, data) :]


def strays(keep: set[int]) -> list[int]:
    """Live (non-zombie) processes of this PID namespace other than ``keep``."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in keep:
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                state = f.read().rpartition(b")")[2].split()[0]
        except (OSError, IndexError):
            continue
        if state not in (b"Z", b"X"):
            found.append(int(name))
    return found


def wipe(place: str, keep: frozenset[str] | set[str] = frozenset()) -> None:
    """Empty ``place``, whatever modes the tool left on what it made there (all of it is ours);
    directories in ``keep`` (and those above them) stay, emptied, with their mode restored."""
    try:
        entries = list(os.scandir(place))
    except OSError:
        return
    for entry in entries:
        with contextlib.suppress(OSError):
            kept = any(k == entry.path or k.startswith(entry.path + "/") for k in keep)
            if kept and entry.is_dir(follow_symlinks=False):
                os.chmod(entry.path, 0o700)
                wipe(entry.path, keep)
                continue
            if entry.is_dir(follow_symlinks=False):
                _remove_tree(entry.path, set())
            else:
                os.unlink(entry.path)


def _remove_tree(path: str, unlocked: set[str]) -> None:
    def unlock(func: object, failed: str, exc: object) -> None:
        if failed in unlocked:
            return
        unlocked.add(failed)
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(failed), 0o700)
        with contextlib.suppress(OSError):
            os.chmod(failed, 0o700)
        with contextlib.suppress(OSError):
            if os.path.isdir(failed) and not os.path.islink(failed):
                _remove_tree(failed, unlocked)
            else:
                os.unlink(failed)

    shutil.rmtree(path, onerror=unlock)


def remove_ipc() -> None:
    """SysV shared memory, message queues and semaphores outlive processes: remove ours."""
    for kind, remove in (
        ("shm", lambda i: libc.shmctl(i, IPC_RMID, None)),
        ("msg", lambda i: libc.msgctl(i, IPC_RMID, None)),
        ("sem", lambda i: libc.semctl(i, 0, IPC_RMID)),
    ):
        try:
            with open(f"/proc/sysvipc/{kind}") as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 1 and fields[1].isdigit():
                remove(int(fields[1]))


def oom_kills() -> int:
    for path in ("/sys/fs/cgroup/memory/memory.oom_control", "/sys/fs/cgroup/memory.events"):
        try:
            with open(path) as f:
                for line in f:
                    name, _, value = line.partition(" ")
                    if name == "oom_kill":
                        return int(value)
        except OSError:
            continue
    return 0


def main() -> int:
    lock()
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")
    channel = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    os.write(channel, READY)
    stdin = Stdin(0)
    load_body = stdin.message()
    if load_body is None:
        return 0
    server = Server(channel, json.loads(load_body))
    server.emit("loaded", server.load())
    while (body := stdin.message()) is not None:
        server.call(body)
    server.reset()
    return 0


if __name__ == "__main__":
    sys.exit(main())
