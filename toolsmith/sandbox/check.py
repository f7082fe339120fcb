"""The confinement self-test: probes run as a tool inside a real sandbox job.

Each probe tries something the sandbox must forbid (or reads a setting it must have) from the
worker process, where generated code runs. Any probe that does not come back ok, or does not come
back at all, is a missing isolation property: the check fails closed.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

from toolsmith.errors import ConfinementError, ToolsmithError
from toolsmith.report import Outcome
from toolsmith.sandbox.job import Limits, SandboxJob
from toolsmith.sandbox.sandbox import Sandbox

PROBE_LIMITS = Limits(timeout_s=60, memory_mb=256, pids=128, tmpfs_mb=64, call_timeout_s=20)

PROBE_CODE = r"""
import ctypes, json, os, platform, socket, subprocess, threading

ALWAYS, SUBPROCESS, NETWORK = 3001, 3002, 3003  # toolsmith.sandbox.barriers
# keyctl and bpf have no C library wrapper: their numbers, per architecture.
RAW_SYSCALLS = {"x86_64": {"keyctl": 250, "bpf": 321}, "aarch64": {"keyctl": 219, "bpf": 280}}

ALLOWED_ENV = {"PATH", "HOME", "LANG", "PYTHONDONTWRITEBYTECODE", "LC_CTYPE"}
STANDARD_BINDS = {"/etc/resolv.conf", "/etc/hostname", "/etc/hosts"}
V1 = "/sys/fs/cgroup/"


def _fails(fn):
    try:
        fn()
    except Exception as e:
        return True, f"{type(e).__name__}: {e}"
    return False, "succeeded"


def _status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return line.split()[1]
    return None


def _mounts():
    with open("/proc/self/mounts") as f:
        return [line.split() for line in f]


def _cgroup_value(*paths):
    for p in paths:
        try:
            with open(p) as f:
                return f.read().strip()
        except OSError:
            continue
    return None


def _errno_of(fn):
    try:
        fn()
    except OSError as e:
        return e.errno
    return None


def _libc_errno(call, *args):
    libc = ctypes.CDLL(None, use_errno=True)
    ctypes.set_errno(0)
    result = getattr(libc, call)(*args)
    return ctypes.get_errno() if result == -1 else None


def _barrier(expected, attempts):
    got = {what: fn() for what, fn in attempts.items()}
    bad = {what: e for what, e in got.items() if e != expected}
    return {"ok": not bad, "detail": f"errno {expected} expected, got {bad}" if bad else "denied"}


def probe(name, limit=0):
    if name == "barrier_subprocess":
        return _barrier(SUBPROCESS, {
            "fork": lambda: _errno_of(lambda: os.fork() == 0 and os._exit(0)),
            "posix_spawn": lambda: _errno_of(lambda: os.posix_spawn("/bin/true", ["true"], {})),
            "execv": lambda: _errno_of(lambda: os.execv("/bin/true", ["true"])),
        })
    if name == "barrier_threads_allowed":
        out = []
        t = threading.Thread(target=lambda: out.append(1))
        t.start()
        t.join()
        return {"ok": out == [1], "detail": "a thread ran" if out else "threads are denied"}
    if name == "barrier_network":
        return _barrier(NETWORK, {
            "inet": lambda: _errno_of(lambda: socket.socket(socket.AF_INET)),
            "inet6": lambda: _errno_of(lambda: socket.socket(socket.AF_INET6)),
            "netlink": lambda: _errno_of(lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW)),
            "socketpair": lambda: _errno_of(lambda: socket.socketpair(socket.AF_INET)),
        })
    if name == "barrier_fs_write":
        return _barrier(13, {
            "/work": lambda: _errno_of(lambda: open("/work/probe", "w")),
            "/dev/shm": lambda: _errno_of(lambda: open("/dev/shm/probe", "w")),
        })
    if name == "barrier_fs_read":
        return _barrier(13, {
            "/var": lambda: _errno_of(lambda: os.listdir("/var")),
            "/": lambda: _errno_of(lambda: os.listdir("/")),
        })
    if name == "barrier_env":
        try:
            os.environ["TOOLSMITH_PASS_ENV"]
            denied = False
        except KeyError as e:
            denied = "not declared" in str(e)
        extra = sorted(set(os.environ) - {"PATH", "HOME", "LANG", "TMPDIR"})
        return {"ok": denied and not extra, "detail": f"variables {extra}, lookup named: {denied}"}
    if name == "barrier_always":
        ts = (ctypes.c_long * 2)(0, 0)
        raw = RAW_SYSCALLS.get(platform.machine(), {})
        attempts = {
            "ptrace": lambda: _libc_errno("ptrace", 16, 1, None, None),
            "unshare": lambda: _libc_errno("unshare", 0x10000000),
            "mount": lambda: _libc_errno("mount", b"none", b"/tmp", b"tmpfs", 0, None),
            "clock_settime": lambda: _libc_errno("clock_settime", 0, ctypes.byref(ts)),
        }
        for call, number in raw.items():
            attempts[call] = lambda number=number: _libc_errno("syscall", number, 0, 0, 0)
        return _barrier(ALWAYS, attempts)
    if name == "landlock_abi":
        libc = ctypes.CDLL(None, use_errno=True)
        abi = libc.syscall(444, None, 0, 1)
        return {"ok": abi >= 1, "detail": f"Landlock ABI {abi}"}

    if name == "non_root":
        return {"ok": os.getuid() != 0 and os.getgid() != 0, "detail": f"uid={os.getuid()}"}
    if name == "no_network":
        ok, why = _fails(lambda: socket.create_connection(("1.1.1.1", 53), timeout=2))
        return {"ok": ok, "detail": why}
    if name == "no_dns":
        ok, why = _fails(lambda: socket.getaddrinfo("example.com", 443))
        return {"ok": ok, "detail": why}
    if name == "loopback_only":
        nets = sorted(os.listdir("/sys/class/net"))
        return {"ok": nets in ([], ["lo"]), "detail": f"interfaces: {nets}"}
    if name == "rootfs_read_only":
        ok, why = _fails(lambda: open("/opt/toolsmith/probe", "w"))
        ok2, why2 = _fails(lambda: open("/etc/probe", "w"))
        return {"ok": ok and ok2, "detail": f"{why}; {why2}"}
    if name == "no_capabilities":
        eff, bnd = _status("CapEff"), _status("CapBnd")
        ok = int(eff, 16) == 0 and int(bnd, 16) == 0
        return {"ok": ok, "detail": f"CapEff={eff} CapBnd={bnd}"}
    if name == "no_new_privileges":
        v = _status("NoNewPrivs")
        return {"ok": v == "1", "detail": f"NoNewPrivs={v}"}
    if name == "tmpfs_capped":
        found = {m[1]: m for m in _mounts() if m[1] in ("/tmp", "/work")}
        bad = []
        for path in ("/tmp", "/work"):
            m = found.get(path)
            if m is None or m[2] != "tmpfs" or "noexec" not in m[3].split(","):
                bad.append(f"{path}: {m}")
                continue
            st = os.statvfs(path)
            if st.f_blocks * st.f_frsize > limit * 1024 * 1024:
                bad.append(f"{path}: {st.f_blocks * st.f_frsize} bytes")
        return {"ok": not bad, "detail": "; ".join(bad) or "tmpfs, noexec, size-capped"}
    if name == "memory_limited":
        v = _cgroup_value(V1 + "memory/memory.limit_in_bytes", V1 + "memory.max")
        sw = _cgroup_value(V1 + "memory/memory.memsw.limit_in_bytes", V1 + "memory.swap.max")
        ok = v is not None and v.isdigit() and int(v) <= limit * 1024 * 1024
        ok = ok and (sw is None or sw in ("0", v))
        return {"ok": ok, "detail": f"memory limit {v}, memory+swap {sw}"}
    if name == "pids_limited":
        v = _cgroup_value("/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max")
        return {"ok": v is not None and v.isdigit() and int(v) <= limit, "detail": f"pids.max={v}"}
    if name == "scrubbed_env":
        extra = sorted(set(os.environ) - ALLOWED_ENV)
        return {"ok": not extra, "detail": f"unexpected variables: {extra}"}
    if name == "runner_protected":
        ok1, why1 = _fails(lambda: open("/proc/1/mem", "rb").read(1))
        ok2, why2 = _fails(lambda: os.listdir("/proc/1/fd"))
        ok3, why3 = _fails(lambda: open("/proc/1/environ", "rb").read())
        return {"ok": ok1 and ok2 and ok3, "detail": f"{why1}; {why2}; {why3}"}
    if name == "tests_hidden":
        left = [os.path.join(r, f) for r, _, fs in os.walk("/work") for f in fs]
        return {"ok": not left, "detail": f"files under /work: {left[:5]}"}
    if name == "no_docker_socket":
        socks = [p for p in ("/var/run/docker.sock", "/run/docker.sock") if os.path.exists(p)]
        return {"ok": not socks, "detail": f"found {socks}" if socks else "absent"}
    if name == "no_host_mounts":
        virtual = {"proc", "tmpfs", "devpts", "sysfs", "cgroup", "cgroup2", "mqueue"}
        odd = [
            m[1]
            for m in _mounts()
            if m[1] != "/" and m[2] not in virtual and m[1] not in STANDARD_BINDS
        ]
        return {"ok": not odd, "detail": f"host mounts: {odd}" if odd else "none"}
    raise ValueError(f"unknown probe {name}")
"""

PROBES: dict[str, str] = {
    "non_root": "runs as a non-root uid and gid",
    "no_network": "cannot open a TCP connection",
    "no_dns": "cannot resolve a host name",
    "loopback_only": "has no network interface but loopback",
    "rootfs_read_only": "cannot write the root filesystem",
    "no_capabilities": "holds no Linux capabilities (effective and bounding)",
    "no_new_privileges": "cannot gain privileges (no_new_privs)",
    "tmpfs_capped": "/tmp and the work dir are size-capped noexec tmpfs",
    "memory_limited": "memory limited, swap equal to memory",
    "pids_limited": "process count limited",
    "scrubbed_env": "sees only allowlisted environment variables",
    "runner_protected": "cannot read the runner's memory, fds or environment",
    "tests_hidden": "cannot read the test files",
    "no_docker_socket": "has no Docker socket",
    "no_host_mounts": "sees no host directory mounts",
    "landlock_abi": "the kernel offers Landlock to the tool's process",
    "barrier_subprocess": "without `subprocess`: fork, posix_spawn and exec are denied",
    "barrier_threads_allowed": "without `subprocess`: threads still run",
    "barrier_network": "without `network:`: no inet, inet6 or netlink socket",
    "barrier_fs_write": "without `fs:write:`: nothing outside the private /tmp is writable",
    "barrier_fs_read": "without `fs:read:`: nothing outside the interpreter's trees is readable",
    "barrier_env": "without `env:`: only PATH, HOME, LANG and TMPDIR; lookups name the capability",
    "barrier_always": "ptrace, unshare, mount, clock_settime, keyctl and bpf are denied",
}
# The probes of the run-time barriers, run again in the docker runtime (its own install path).
BARRIER_PROBES = ("landlock_abi", *sorted(n for n in PROBES if n.startswith("barrier_")))
_LIMIT_ARG = {
    "tmpfs_capped": PROBE_LIMITS.tmpfs_mb,
    "memory_limited": PROBE_LIMITS.memory_mb,
    "pids_limited": PROBE_LIMITS.pids,
}


class Probe(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str
    ok: bool
    detail: str


def probe_job() -> SandboxJob:
    test = (
        "import pytest\nfrom toolsmith_harness import call\n\n"
        f"LIMITS = {_LIMIT_ARG!r}\n\n"
        f"@pytest.mark.parametrize('name', {sorted(PROBES)!r})\n"
        "def test_probe(name):\n"
        "    result = call(name=name, limit=LIMITS.get(name, 0))\n"
        "    assert result['ok'], result['detail']\n"
    )
    return SandboxJob(
        tool_name="probe",
        code=PROBE_CODE,
        test_files={"test_confinement.py": test},
        expected_tests=len(PROBES),
        limits=PROBE_LIMITS,
    )


def check_confinement(sandbox: Sandbox | None = None, *, runtime: bool = True) -> list[Probe]:
    """Run every probe in a sandbox job, and (``runtime``) the barrier probes again in a docker
    runtime tool, whose barriers are installed by another path (the zygote's call children).

    Raises ConfinementError if the job itself did not run; a probe that did not report is a
    missing property (fails closed).
    """
    own = sandbox is None
    sandbox = sandbox or Sandbox(pool_size=0)
    try:
        report = sandbox.run(probe_job())
    finally:
        if own:
            sandbox.close()
    by_name: dict[str, Probe] = {}
    for case in report.tests:
        m = re.search(r"\[(\w+)\]$", case.nodeid)
        if not m or m.group(1) not in PROBES:
            continue
        name = m.group(1)
        lines = (case.failure or "").strip().splitlines()
        detail = [ln[1:].strip() for ln in lines if ln.startswith("E ")] or lines
        by_name[name] = Probe(
            name=name,
            description=PROBES[name],
            ok=case.outcome == Outcome.PASSED,
            detail="ok" if case.outcome == Outcome.PASSED else (detail[0] if detail else ""),
        )
    if report.error and not by_name:
        raise ConfinementError(
            f"the confinement probes did not run: {report.error[:500]}",
            hint="rebuild the image with `toolsmith sandbox build`",
        )
    probes = [
        by_name.get(n) or Probe(name=n, description=d, ok=False, detail="probe did not report")
        for n, d in sorted(PROBES.items())
    ]
    return probes + (runtime_barrier_probes() if runtime else [])


def runtime_barrier_probes() -> list[Probe]:
    """The barrier probes as calls of a tool loaded into the docker runtime (``runtime_*``)."""
    from toolsmith.runtimes.docker import load_docker
    from toolsmith.spec import ToolSpec

    spec = ToolSpec.parse(
        {
            "name": "probe",
            "description": "Probes one isolation property from inside the sandbox.",
            "parameters": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "limit": {"type": "integer"}},
                "required": ["name"],
            },
            "returns": {"type": "object"},
        }
    )
    found: list[Probe] = []
    tool = load_docker(spec, PROBE_CODE, timeout_s=20)
    try:
        for name in BARRIER_PROBES:
            description = f"docker runtime: {PROBES[name]}"
            try:
                result = tool(name=name)
                ok, detail = result.get("ok") is True, str(result.get("detail", ""))
            except ToolsmithError as e:
                ok, detail = False, f"{type(e).__name__}: {e}"
            found.append(
                Probe(name=f"runtime_{name}", description=description, ok=ok, detail=detail)
            )
    finally:
        tool.close()
    return found
