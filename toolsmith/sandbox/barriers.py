"""The run-time barriers: what the kernel denies a tool that did not declare a capability.

The table (``BARRIERS``) is data: for each capability, the system calls a seccomp filter answers
with that barrier's own errno, or the Landlock access it withholds. ``plan(grants)`` turns one
tool's ``Grants`` into a ``BarrierPlan``, the JSON the in-container runner
(``toolsmith_runner.barriers``) installs in the process that runs tool code, before any of it
loads: libseccomp builds the filter (no hand-assembled BPF) and Landlock (ABI >= 1) confines the
file system; the runner fails closed when either is missing. Pure: no Docker, no disk.

The errnos are outside the kernel's range of real error numbers, so a denial can be told from any
ordinary failure and reported as the capability it stands for (``CapabilityDeniedError`` from the
docker runtime; ``PermissionError: capability `subprocess` not declared`` in a sandbox report).
Landlock always answers EACCES; the runner tells those apart by the path.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from toolsmith.sandbox.grants import Grants

ALWAYS_ERRNO = 3001
SUBPROCESS_ERRNO = 3002
NETWORK_ERRNO = 3003
ENOSYS = 38
CLONE_THREAD = 0x00010000
WORD = 0xFFFFFFFF  # compare an int argument's low 32 bits: the kernel ignores the rest
AF_UNIX, AF_INET, AF_INET6, AF_NETLINK = 1, 2, 10, 16
AF_LIMIT = 64  # every address family a kernel may know (46 in 6.18) and then some

# What the interpreter itself needs to read: code, libraries, configuration, devices, /proc.
INTERPRETER_READS = (
    "/usr",
    "/lib",
    "/lib64",
    "/bin",
    "/etc",
    "/opt/toolsmith",
    "/proc",
    "/sys",
    "/dev/urandom",
    "/dev/random",
    "/dev/zero",
)
# The tool's own private tmp (a tmpfs of its container) and the device everyone writes to.
PRIVATE_WRITES = ("/tmp", "/dev/null")
# The variables of the container's own set-up (not the host's): kept whatever is declared.
FIXED_ENV = ("PATH", "HOME", "LANG", "TMPDIR")
# What points a tool's HTTP clients at its egress proxy (set only when it declares a host).
PROXY_ENV = ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy")

ALWAYS_DENIED = (
    # debugging other processes and reading their memory
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    # mounts and the root directory
    "mount", "umount2", "pivot_root", "chroot", "open_tree", "move_mount", "fsopen", "fsconfig",
    "fsmount", "fspick", "mount_setattr",
    # namespaces
    "unshare", "setns",
    # kernel keyrings, eBPF, modules, kexec
    "keyctl", "add_key", "request_key", "bpf", "init_module", "finit_module", "delete_module",
    "kexec_load", "kexec_file_load",
    # clocks
    "clock_settime", "clock_adjtime", "settimeofday", "adjtimex",
    # io_uring runs socket and file operations this filter never sees
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    # the rest of the host-facing surface
    "perf_event_open", "userfaultfd", "acct", "swapon", "swapoff", "reboot", "quotactl",
    "quotactl_fd", "syslog", "lookup_dcookie", "name_to_handle_at", "open_by_handle_at",
    "fanotify_init", "vhangup", "iopl", "ioperm", "uselib", "sethostname", "setdomainname",
)  # fmt: skip


class Barrier(BaseModel):
    """One row of the table: what stays denied until ``capability`` is declared."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="the barrier's name, as `toolsmith sandbox check` reports it")
    capability: str = Field(description="what to declare to lift it; empty: nothing lifts it")
    denies: str = Field(description="what the tool cannot do without it")
    mechanism: str = Field(description="seccomp (errno below) or Landlock (EACCES)")
    errno: int | None = None


BARRIERS: tuple[Barrier, ...] = (
    Barrier(
        name="subprocess",
        capability="subprocess",
        denies="creating processes (fork, vfork, clone without CLONE_THREAD, clone3) and "
        "executing programs (execve, execveat); threads stay allowed",
        mechanism="seccomp",
        errno=SUBPROCESS_ERRNO,
    ),
    Barrier(
        name="network",
        capability="network:<host>",
        denies="sockets of any family but AF_UNIX (socket, socketpair); with it, AF_INET, "
        "AF_INET6 and AF_NETLINK, on a network whose only way out is the egress proxy",
        mechanism="seccomp",
        errno=NETWORK_ERRNO,
    ),
    Barrier(
        name="fs:write",
        capability="fs:write:<path>",
        denies="writing, creating, removing or renaming anything outside the tool's private "
        "/tmp and the declared paths",
        mechanism="Landlock",
    ),
    Barrier(
        name="fs:read",
        capability="fs:read:<path>",
        denies="reading anything but what the interpreter needs ("
        + ", ".join(INTERPRETER_READS)
        + "), the private /tmp and the declared paths",
        mechanism="Landlock",
    ),
    Barrier(
        name="env",
        capability="env:<NAME>",
        denies="environment variables other than the declared ones and " + ", ".join(FIXED_ENV),
        mechanism="the process environment (scrubbed)",
    ),
    Barrier(
        name="always",
        capability="",
        denies="what no tool needs: ptrace and reading other processes, mounts, namespaces "
        "(unshare, setns), keyrings, bpf, kernel modules, kexec, setting clocks, io_uring, "
        "perf events, userfaultfd (ALWAYS_DENIED lists every call)",
        mechanism="seccomp",
        errno=ALWAYS_ERRNO,
    ),
)


UNCONFINED_BASELINE = {"unconfined_baseline": True}
"""Sent instead of a plan by the benchmarks alone (``bench/``), to time the same path without
barriers; nothing in toolsmith sends it, and a tool's code never reaches the message it is in."""


class SyscallRule(BaseModel):
    """Answer ``syscall`` with ``errno`` (when its argument ``arg`` masked by ``mask`` equals
    ``value``, if ``arg`` is set)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    syscall: str
    errno: int
    arg: int | None = None
    mask: int = WORD
    value: int = 0


class BarrierPlan(BaseModel):
    """The barriers of one tool, as the runner installs them (sent inside the job or load)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: list[SyscallRule]
    read: list[str] = Field(description="Landlock: readable trees (missing ones are skipped)")
    write: list[str] = Field(description="Landlock: writable trees (made as directories)")
    execute: bool = Field(description="Landlock: programs under the read trees may run")
    env: list[str] = Field(description="the variables the tool's process keeps")
    capabilities: dict[int, str] = Field(description="errno -> capability it stands for")


def plan(grants: Grants) -> BarrierPlan:
    """The barriers for a tool granted ``grants``; every undeclared capability stays denied."""
    rules = [SyscallRule(syscall=name, errno=ALWAYS_ERRNO) for name in ALWAYS_DENIED]
    if not grants.subprocess:
        rules += [
            SyscallRule(syscall=name, errno=SUBPROCESS_ERRNO)
            for name in ("fork", "vfork", "execve", "execveat")
        ]
        rules.append(
            SyscallRule(syscall="clone", errno=SUBPROCESS_ERRNO, arg=0, mask=CLONE_THREAD, value=0)
        )
        # clone3 passes its flags in memory a filter cannot read: "not implemented" makes
        # the C library fall back to clone, whose flags the rule above checks.
        rules.append(SyscallRule(syscall="clone3", errno=ENOSYS))
    families = {AF_UNIX} | ({AF_INET, AF_INET6, AF_NETLINK} if grants.egress else set())
    rules += [
        SyscallRule(syscall=call, errno=NETWORK_ERRNO, arg=0, value=family)
        for call in ("socket", "socketpair")
        for family in range(AF_LIMIT)
        if family not in families
    ]
    capabilities = {ALWAYS_ERRNO: "", SUBPROCESS_ERRNO: "subprocess", NETWORK_ERRNO: "network"}
    return BarrierPlan(
        rules=rules,
        read=sorted({*INTERPRETER_READS, *grants.read_paths}),
        write=sorted({*PRIVATE_WRITES, *grants.write_paths}),
        execute=grants.subprocess,
        env=sorted({*FIXED_ENV, *grants.env, *(PROXY_ENV if grants.egress else ())}),
        capabilities=capabilities,
    )


def property_plan() -> BarrierPlan:
    """The barriers of the process that runs a spec's property code (``def check(args,
    result)``): every capability denied, and not even the private /tmp writable, since a
    property only judges values it is handed."""
    return plan(Grants()).model_copy(update={"write": ["/dev/null"]})
