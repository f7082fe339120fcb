"""The run-time barriers, installed in the process that runs tool code before any of it loads.

The host sends a plan (``toolsmith.sandbox.barriers.BarrierPlan`` as JSON): the syscalls a seccomp
filter answers with a barrier's errno, the trees Landlock lets the process read and write, and the
environment variables it keeps. ``Barriers(plan)`` checks the kernel, has libseccomp (its own
binding, Debian's python3-seccomp) compile the filter and builds the Landlock ruleset, once per
tool (in the zygote, or the job's worker); ``apply()`` installs both in the calling process, for
good, with a few system calls: Landlock first, then the environment, then seccomp (threads and
children started later inherit all of it). Anything missing raises ``BarrierError``: no barrier,
no tool code.

``denied(exc)`` names the capability an exception stands for, so the host can say which one to
declare instead of reporting a bare OSError.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
from typing import Any

try:  # imported ahead (the worker and the zygote start before any job), used per tool
    import seccomp
except ImportError as missing:
    seccomp = None
    MISSING = str(missing)

SYS_LANDLOCK_CREATE_RULESET = 444  # the same number on every architecture
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2

EXECUTE = 1 << 0
WRITE_FILE = 1 << 1
READ_FILE = 1 << 2
READ_DIR = 1 << 3
REMOVE_DIR = 1 << 4
REMOVE_FILE = 1 << 5
MAKE_CHAR = 1 << 6
MAKE_DIR = 1 << 7
MAKE_REG = 1 << 8
MAKE_SOCK = 1 << 9
MAKE_FIFO = 1 << 10
MAKE_BLOCK = 1 << 11
MAKE_SYM = 1 << 12
REFER = 1 << 13  # ABI 2
TRUNCATE = 1 << 14  # ABI 3
FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE
READ = READ_FILE | READ_DIR
SCOPE_ABSTRACT_UNIX_SOCKET = 1  # ABI 6: no connecting to abstract sockets outside the domain
SCOPE_SIGNAL = 2  # ABI 6: no signals to processes outside the domain (serve, the runner)

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


class BarrierError(Exception):
    """A barrier could not be installed; the tool must not run."""


class EnvNotDeclared(KeyError):
    """A variable the tool did not declare (``env:<NAME>``) was looked up."""

    def __init__(self, name: str) -> None:
        super().__init__(f"capability `env:{name}` not declared")
        self.name = name


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 when it has none (or a filter hides it)."""
    abi = libc.syscall(SYS_LANDLOCK_CREATE_RULESET, None, 0, LANDLOCK_CREATE_RULESET_VERSION)
    return max(int(abi), 0)


def _handled(abi: int) -> int:
    rights = (1 << 13) - 1
    if abi >= 2:
        rights |= REFER
    if abi >= 3:
        rights |= TRUNCATE
    return rights


def _covers(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


class _Environ(type(os.environ)):  # type: ignore[misc]
    """``os.environ`` that names the missing capability instead of a bare KeyError."""

    def __getitem__(self, key: str) -> str:
        try:
            return super().__getitem__(key)
        except KeyError:
            raise EnvNotDeclared(str(key)) from None


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class Barriers:
    """One plan, checked and prepared once (the seccomp program compiled by libseccomp, the
    Landlock ruleset built); ``apply()`` in each process that runs tool code then costs a few
    system calls. ``ruleset_fd`` must stay open in that process until it applies."""

    def __init__(self, plan: Any) -> None:
        if not isinstance(plan, dict):
            raise BarrierError("no barrier plan came with the tool")
        # The benchmarks' baseline (bench/), sent only by the host, never reachable by a tool.
        self.unconfined = plan == {"unconfined_baseline": True}
        self.capabilities: dict[int, str] = {}
        self.ruleset_fd = -1
        if self.unconfined:
            return
        if seccomp is None:
            raise BarrierError(
                f"libseccomp's Python binding is missing from the image ({MISSING}); "
                "rebuild it with `toolsmith sandbox build` from Debian packages"
            )
        self.abi = landlock_abi()
        if self.abi < 1:
            raise BarrierError(
                "the kernel offers no Landlock (or the container's seccomp profile hides it)"
            )
        try:
            self.read = [str(p) for p in plan["read"]]
            self.write = [str(p) for p in plan["write"]]
            self.execute = bool(plan["execute"])
            self.env = [str(n) for n in plan["env"]]
            self.capabilities = {int(k): str(v) for k, v in plan["capabilities"].items()}
            rules = list(plan["rules"])
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise BarrierError(f"the barrier plan is malformed: {e!r}") from None
        self.program = self._compile(rules)
        self.ruleset_fd = self._ruleset()

    @staticmethod
    def _compile(rules: list[Any]) -> ctypes.Array[ctypes.c_char]:
        """The filter as libseccomp generates it (binary-tree optimised), ready to load."""
        try:
            program = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
            with contextlib.suppress(AttributeError, ValueError, RuntimeError, OSError):
                program.set_attr(seccomp.Attr.CTL_OPTIMIZE, 2)
            for rule in rules:
                args = []
                if rule.get("arg") is not None:
                    args.append(
                        seccomp.Arg(rule["arg"], seccomp.MASKED_EQ, rule["mask"], rule["value"])
                    )
                program.add_rule(seccomp.ERRNO(int(rule["errno"])), rule["syscall"], *args)
            fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
            with os.fdopen(fd, "w+b") as out:
                program.export_bpf(out)
                out.seek(0)
                code = out.read()
        except (RuntimeError, ValueError, OSError, KeyError, TypeError) as e:
            raise BarrierError(f"the seccomp filter could not be built: {e}") from None
        if not code or len(code) % 8:
            raise BarrierError("libseccomp exported no filter program")
        return ctypes.create_string_buffer(code, len(code))

    def _ruleset(self) -> int:
        handled = _handled(self.abi)
        attr = _RulesetAttr(handled, 0, SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL)
        size = 24 if self.abi >= 6 else 8
        ruleset = int(libc.syscall(SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), size, 0))
        if ruleset < 0:
            raise BarrierError(f"landlock_create_ruleset failed: {os.strerror(ctypes.get_errno())}")
        try:
            read = READ | (EXECUTE if self.execute else 0)
            for path in self.read:
                self._allow(ruleset, path, read)
            write = handled & ~(0 if self.execute else EXECUTE)
            for path in self.write:
                if any(path != root and _covers(path, [root]) for root in self.write):
                    continue  # inside another writable tree (e.g. /tmp/x in /tmp)
                if path.startswith("/work/"):  # a declared place in the work tmpfs: a directory
                    with contextlib.suppress(FileExistsError):
                        os.makedirs(path, mode=0o700)
                self._allow(ruleset, path, write)
        except BaseException:
            os.close(ruleset)
            raise
        return ruleset

    def apply(self) -> None:
        """Confine this process (and every thread and child it starts later) for good:
        Landlock, then the environment, then seccomp. Call it with no other thread running."""
        if self.unconfined:
            return
        try:
            if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
                raise BarrierError("prctl(PR_SET_NO_NEW_PRIVS) failed")
            if libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, self.ruleset_fd, 0) != 0:
                raise BarrierError(
                    f"landlock_restrict_self failed: {os.strerror(ctypes.get_errno())}"
                )
            os.close(self.ruleset_fd)
            self._scrub_env()
            prog = _SockFprog(len(self.program) // 8, ctypes.addressof(self.program))
            if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
                raise BarrierError(f"loading the seccomp filter failed: {ctypes.get_errno()}")
        except BarrierError:
            raise
        except Exception as e:
            raise BarrierError(
                f"a barrier could not be installed: {type(e).__name__}: {e}"
            ) from None

    @staticmethod
    def _allow(ruleset: int, path: str, rights: int) -> None:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except FileNotFoundError:
            return  # nothing there to read or write (e.g. /lib64 on arm64)
        try:
            if not os.path.isdir(path):
                rights &= FILE_RIGHTS
            rule = _PathBeneath(rights, fd)
            added = libc.syscall(
                SYS_LANDLOCK_ADD_RULE, ruleset, LANDLOCK_RULE_PATH_BENEATH, ctypes.byref(rule), 0
            )
            if added != 0:
                raise BarrierError(
                    f"landlock_add_rule({path}) failed: {os.strerror(ctypes.get_errno())}"
                )
        finally:
            os.close(fd)

    def _scrub_env(self) -> None:
        keep = set(self.env)
        for name in [n for n in os.environ if n not in keep]:
            del os.environ[name]
        os.environ.__class__ = _Environ

    def denied(self, exc: BaseException | None) -> str | None:
        """The capability ``exc`` (or an exception it was raised from) stands for: ``subprocess``,
        ``network``, ``fs:read:<path>``, ``fs:write:<path>``, ``env:<NAME>``, or ``""`` for a
        call no capability grants; None when it is not a barrier's."""
        if self.unconfined:
            return None
        seen: set[int] = set()
        while exc is not None and id(exc) not in seen and len(seen) < 32:
            seen.add(id(exc))
            found = self._one(exc)
            if found is not None:
                return found
            exc = exc.__cause__ or exc.__context__
        return None

    def _one(self, exc: BaseException) -> str | None:
        if isinstance(exc, EnvNotDeclared):
            return f"env:{exc.name}"
        if not isinstance(exc, OSError):
            return None
        if exc.errno in self.capabilities:
            return self.capabilities[exc.errno]
        path = exc.filename
        if exc.errno != errno.EACCES or not isinstance(path, str) or not path.startswith("/"):
            return None
        path = os.path.normpath(path)
        if _covers(path, self.write):
            return None
        try:  # reading it now tells a denied read from a denied write
            os.close(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
        except PermissionError:
            return None if _covers(path, self.read) else f"fs:read:{path}"
        except OSError:
            pass
        return f"fs:write:{path}"


def message(capability: str) -> str:
    """What the tool's caller reads for a denial."""
    if capability == "":
        return "a system call the sandbox never allows (no capability grants it)"
    return f"capability `{capability}` not declared"
