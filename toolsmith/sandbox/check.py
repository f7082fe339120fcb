"""The confinement self-test: probes run as a tool inside a real sandbox job.

Each probe tries something the sandbox must forbid (or reads a setting it must have) from the
worker process, where generated code runs. Any probe that does not come back ok, or does not come
back at all, is a missing isolation property: the check fails closed.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

from toolsmith.errors import ConfinementError
from toolsmith.report import Outcome
from toolsmith.sandbox.job import Limits, SandboxJob
from toolsmith.sandbox.sandbox import Sandbox

PROBE_LIMITS = Limits(timeout_s=60, memory_mb=256, pids=128, tmpfs_mb=64, call_timeout_s=20)

PROBE_CODE = r"""
import ctypes, json, os, socket, subprocess

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


def probe(name, limit=0):
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
}
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


def check_confinement(sandbox: Sandbox | None = None) -> list[Probe]:
    """Run every probe in the sandbox; raise ConfinementError if the job itself did not run."""
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
    return [
        by_name.get(n) or Probe(name=n, description=d, ok=False, detail="probe did not report")
        for n, d in sorted(PROBES.items())
    ]
