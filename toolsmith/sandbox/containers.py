"""Hardened containers, the one Docker layer under sandbox jobs and docker-runtime calls alike.

``AttachedContainer`` is the small worker API both use: create (granted exactly a tool's
``Grants``), attach, start, wait for ``READY``, then ``send`` / ``pump`` / ``discard``, with one
``Frames`` parser for Docker's attach stream. ``RunnerContainer`` runs one test job on it; the
docker runtime keeps one per loaded tool. ``Egress`` is a tool's proxy and internal network.

Every isolation setting is explicit here rather than left to the engine's defaults, and every
container and network carries labels naming its owner process so a crashed owner's leftovers can
be swept. ``create_attached`` is the one place a tool's ``Grants`` become container settings, for
sandbox jobs and docker-runtime workers alike.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import select
import socket
import stat
import struct
import time
from dataclasses import dataclass
from typing import Any, Self

import docker.errors
import requests.exceptions
from docker.types import LogConfig, Ulimit

from toolsmith.errors import PolicyError, SandboxError
from toolsmith.log import get_logger
from toolsmith.sandbox.engine import Engine, docker_errors
from toolsmith.sandbox.grants import Endpoint, Grants, check_read_path
from toolsmith.sandbox.image import SANDBOX_UID, ImageInfo
from toolsmith.sandbox.job import Limits

log = get_logger("toolsmith.sandbox")

LABEL = "toolsmith.sandbox"
OWNER_LABEL = "toolsmith.sandbox.owner"
POOL_LABEL = "toolsmith.sandbox.pool"
EGRESS_LABEL = "toolsmith.sandbox.egress"
READY = b"TOOLSMITH-READY\n"
REPORT_CAP = 16 * 1024 * 1024
STDERR_CAP = 64 * 1024
ENVIRONMENT = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/tmp",
    "LANG": "C.UTF-8",
    "PYTHONPATH": "/opt/toolsmith/runner:/opt/toolsmith/site-packages",
    "PYTHONDONTWRITEBYTECODE": "1",
    "HYPOTHESIS_STORAGE_DIRECTORY": "/opt/toolsmith/hypothesis",  # read-only: see the Dockerfile
}
# Names of the granted variables; the runner passes exactly these on to the tool's processes.
PASS_ENV = "TOOLSMITH_PASS_ENV"
PROXY_PORT = 3128
PROXY_LIMITS = Limits(memory_mb=64, pids=64, cpus=0.5, tmpfs_mb=1)
# On an internal network Docker's resolver forwards unknown names from the container's namespace
# when a server is configured; one there is no route to (TEST-NET-1) means no lookup leaves, on
# engines older than 26 too (which otherwise forward from the host: CVE-2024-29018). The tool
# needs no lookups: it names the proxy by address, and the proxy resolves the declared hosts.
NOWHERE_DNS = "192.0.2.1"


def _process_start_time(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return "0"


def owner_id(pid: int | None = None) -> str:
    """host:pid:start-time, so a recycled pid is not mistaken for a live owner."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_process_start_time(pid)}"


def host_config(
    engine: Engine,
    limits: Limits,
    *,
    network: str = "none",
    mounts: list[dict[str, Any]] | None = None,
    egress: bool = False,
) -> dict[str, Any]:
    """Hardened settings; ``egress``: on an internal network, where name lookups must fail fast."""
    mb = limits.tmpfs_mb
    opts = "rw,noexec,nosuid,nodev"
    return engine.api.create_host_config(
        network_mode=network,
        mounts=mounts,
        dns=[NOWHERE_DNS] if egress else None,
        dns_opt=["timeout:1", "attempts:1"] if egress else None,
        read_only=True,
        tmpfs={
            "/tmp": f"{opts},size={mb}m,mode=1777",
            "/work": f"{opts},size={mb}m,uid={SANDBOX_UID},gid={SANDBOX_UID},mode=0700",
        },
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        pids_limit=limits.pids,
        mem_limit=f"{limits.memory_mb}m",
        memswap_limit=f"{limits.memory_mb}m",
        nano_cpus=int(limits.cpus * 1e9),
        ulimits=[Ulimit(name="core", soft=0, hard=0), Ulimit(name="nofile", soft=256, hard=256)],
        ipc_mode="private",
        log_config=LogConfig(type=LogConfig.types.NONE),
        runtime=engine.runtime_option,
        init=False,
        privileged=False,
    )


@dataclass
class Outcome:
    """What came out of the container for one job, before it is judged."""

    stdout: bytes = b""
    stderr: bytes = b""
    timed_out: bool = False
    stdout_capped: bool = False
    ended: bool = False
    exit_code: int | None = None
    oom_killed: bool = False
    duration_s: float = 0.0


class Frames:
    """Docker's multiplexed attach stream (8-byte frame headers), split into the container's
    stdout (up to ``stdout_cap`` bytes, then ``capped``) and the tail of its stderr."""

    def __init__(self, stdout_cap: int = REPORT_CAP, stderr_cap: int = STDERR_CAP) -> None:
        self.stdout = bytearray()
        self.stderr = b""
        self.capped = False
        self._stdout_cap = stdout_cap
        self._stderr_cap = stderr_cap
        self._buf = bytearray()

    def feed(self, chunk: bytes) -> None:
        self._buf += chunk
        while len(self._buf) >= 8:
            kind, size = struct.unpack(">BxxxL", self._buf[:8])
            if len(self._buf) < 8 + size:
                return
            payload = bytes(self._buf[8 : 8 + size])
            del self._buf[: 8 + size]
            if kind == 2:
                self.stderr = (self.stderr + payload)[-self._stderr_cap :]
            elif len(self.stdout) + len(payload) > self._stdout_cap:
                self.capped = True
                self.stdout += payload[: self._stdout_cap - len(self.stdout)]
            else:
                self.stdout += payload


def read_attached(sock: socket.socket, frames: Frames, deadline: float) -> bool | None:
    """Read what is available on an attach socket into ``frames`` until ``deadline``: True when
    something came, None at EOF, False when the deadline passed first."""
    left = deadline - time.monotonic()
    if left <= 0:
        return False
    ready, _, _ = select.select([sock], [], [], left)
    if not ready:
        return False
    chunk = sock.recv(1 << 20)
    if not chunk:
        return None
    frames.feed(chunk)
    return True


class AttachedContainer:
    """The worker API both Docker paths use: a hardened container granted exactly ``grants``,
    started with its stdio attached, announcing ``READY`` before it is handed out.

    ``send`` writes to its stdin; ``pump`` reads what arrived (into ``frames``) until a deadline;
    ``exit_status`` asks the engine how it ended; ``discard`` removes it and its egress.
    """

    def __init__(
        self,
        engine: Engine,
        image: ImageInfo,
        limits: Limits,
        *,
        command: list[str],
        labels: dict[str, str],
        grants: Grants | None = None,
        egress_network: str = "bridge",
        stdin_once: bool = False,
        stdout_cap: int = REPORT_CAP,
    ) -> None:
        self.engine = engine
        self.image = image
        self.limits = limits
        self.grants = grants or Grants()
        self.egress_network = egress_network
        self.egress: Egress | None = None
        self.frames = Frames(stdout_cap)
        self.eof = False
        self.id = ""
        self._command = command
        self._labels = labels
        self._stdin_once = stdin_once
        self._raw: Any = None
        self._sock: socket.socket | None = None

    def start(self, ready_timeout_s: float = 60.0) -> Self:
        """Create, attach, start and wait for ``READY``; SandboxError (container removed) if it
        never comes. Returns self."""
        with docker_errors("starting a sandbox container"):
            self.id, self._raw, self.egress = create_attached(
                self.engine,
                self.image,
                self.limits,
                command=self._command,
                labels=self._labels,
                stdin_once=self._stdin_once,
                grants=self.grants,
                egress_network=self.egress_network,
            )
            try:
                self._sock = getattr(self._raw, "_sock", self._raw)
                self.engine.api.start(self.id)
            except BaseException:
                self.discard()
                raise
        try:
            self._wait_ready(time.monotonic(), ready_timeout_s)
        except BaseException:
            self.discard()
            raise
        return self

    def _wait_ready(self, started: float, timeout_s: float) -> None:
        out = self.frames.stdout
        while not out.startswith(READY):
            if self.eof or len(out) >= len(READY):
                raise SandboxError(
                    "the sandbox runner did not start: "
                    + bytes(self.frames.stderr or out).decode("utf-8", "replace")[-2000:],
                    hint="rebuild the image with `toolsmith sandbox build`",
                )
            if self.pump(started + ready_allowance(timeout_s)):
                continue
            # Asked again at expiry: the load may have risen while waiting (a start slowed by a
            # busy machine waits, a stuck one does not wait for ever).
            allowed = ready_allowance(timeout_s)
            if time.monotonic() - started < allowed:
                continue
            load, cores = busy()
            raise SandboxError(
                f"the sandbox runner did not become ready within {allowed:.0f} s "
                f"(load average {load:.1f} on {cores} cores)",
                hint="retry when the machine is less busy (fewer builds or containers at once), "
                "or check `docker ps` for containers stuck starting",
            )
        del out[: len(READY)]

    def send(self, data: bytes) -> None:
        """Write to the container's stdin; OSError if it is gone."""
        assert self._sock is not None
        self._sock.sendall(data)

    def close_stdin(self) -> None:
        assert self._sock is not None
        self._sock.shutdown(socket.SHUT_WR)

    def pump(self, deadline: float) -> bool:
        """Read what is available until ``deadline``; False when the deadline passed first.
        At EOF ``eof`` turns true (and pumping again returns True at once)."""
        if self.eof:
            return True
        assert self._sock is not None
        got = read_attached(self._sock, self.frames, deadline)
        self.eof = got is None
        return got is not False

    def exit_status(self) -> tuple[int | None, bool]:
        """``(exit code or None if it has not ended, OOM-killed)`` as the engine saw it."""
        api = self.engine.api
        with docker_errors("inspecting a finished sandbox container"):
            try:
                code = int(api.wait(self.id, timeout=5).get("StatusCode", -1))
            except requests.exceptions.ReadTimeout:
                return None, False
            return code, self.oom_killed()

    def oom_killed(self) -> bool:
        with contextlib.suppress(docker.errors.APIError, requests.exceptions.RequestException):
            state = self.engine.api.inspect_container(self.id)["State"]
            return bool(state.get("OOMKilled"))
        return False

    def discard(self) -> None:
        """Kill and remove it, then its egress; idempotent, never raises for one already gone."""
        with contextlib.suppress(docker.errors.APIError):
            remove_container(self.engine, self.id, (self._raw, self._sock))
        self._raw = self._sock = None
        self.id = ""
        egress, self.egress = self.egress, None
        if egress is not None:
            with contextlib.suppress(docker.errors.APIError):
                egress.close()


class RunnerContainer(AttachedContainer):
    """A started test runner (``toolsmith_runner``) waiting for one job; discard it after.

    ``warm_up``: run a throwaway session before announcing ``READY`` (a warm-pool container,
    idle meanwhile); False for a container a job is already waiting for, which would only delay it.
    """

    def __init__(
        self,
        engine: Engine,
        image: ImageInfo,
        limits: Limits,
        *,
        pool_id: str = "",
        grants: Grants | None = None,
        egress_network: str = "bridge",
        warm_up: bool = True,
    ) -> None:
        super().__init__(
            engine,
            image,
            limits,
            command=["python3", "-P", "-s", "-m", "toolsmith_runner"]
            + ([] if warm_up else ["--no-warm-up"]),
            labels={POOL_LABEL: pool_id},
            grants=grants,
            egress_network=egress_network,
            stdin_once=True,
        )
        self.pool_id = pool_id
        self.ready_at = 0.0

    def start(self, ready_timeout_s: float = 60.0) -> Self:
        super().start(ready_timeout_s)
        self.ready_at = time.monotonic()
        return self

    def run(self, payload: bytes, done_marker: bytes, timeout_s: float) -> Outcome:
        """Send the job, read records until the done record, EOF, the cap or the deadline."""
        out = Outcome()
        started = time.monotonic()
        deadline = started + timeout_s
        try:
            self.send(b"%d\n" % len(payload) + payload)
            self.close_stdin()
        except OSError:
            out.ended = True
        stdout = self.frames.stdout
        while not out.ended and not self.frames.capped:
            if done_marker in stdout and stdout.endswith(b"\n"):
                break
            if not self.pump(deadline):
                out.timed_out = True
                break
            out.ended = self.eof
        out.stdout, out.stderr = bytes(stdout), self.frames.stderr
        out.stdout_capped = self.frames.capped
        out.duration_s = time.monotonic() - started
        if out.ended and done_marker not in stdout:
            out.exit_code, out.oom_killed = self.exit_status()
        return out


def docker_host_addresses(
    engine: Engine,
) -> frozenset[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The gateway address of every network the engine has: each is an address of the Docker host
    (``172.17.0.1`` for the default bridge, whose listing names only its subnet: Docker gives a
    bridge the subnet's first address). The host's other addresses (its LAN one) are not known to
    the engine; a name never reaches them (they are private), a literal is the approver's call."""
    found: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    for network in engine.api.networks():
        for config in (network.get("IPAM") or {}).get("Config") or []:
            if config.get("Gateway"):
                found.add(ipaddress.ip_address(config["Gateway"].partition("/")[0]))
            elif network.get("Driver") == "bridge" and config.get("Subnet"):
                first = next(ipaddress.ip_network(config["Subnet"], strict=False).hosts())
                found.add(ipaddress.ip_address(str(first)))
    return frozenset(found)


def refuse_docker_host(
    endpoints: tuple[Endpoint, ...],
    host: frozenset[ipaddress.IPv4Address | ipaddress.IPv6Address],
) -> None:
    """PolicyError if an IP-literal endpoint is one of ``host`` (the Docker host's addresses)."""
    for endpoint in endpoints:
        if endpoint.address in host:
            raise PolicyError(
                f"capability 'network:{endpoint}' names {endpoint.address}, the gateway of a "
                "Docker network, i.e. the Docker host itself, which a tool never reaches",
                hint="run the service the tool needs in a container on the egress network "
                "(or on another machine) and grant that address",
            )


class Egress:
    """A tool's only way out: an internal network (no route off it) and a proxy container on it
    that forwards to the declared endpoints alone. One per tool container; close it after.

    IP-literal endpoints naming the Docker host (any Docker network's gateway) are refused with a
    PolicyError before anything is made, and the proxy is told those addresses so it refuses them
    too (with loopback, unspecified and its own address; see ``toolsmith_runner.egress``)."""

    def __init__(self, engine: Engine, network: str) -> None:
        self.engine = engine
        self.network = network
        self.proxy_id = ""
        self.proxy_url = ""
        self.refusals: list[str] = []
        self._raw: Any = None
        self._sock: socket.socket | None = None
        self._frames = Frames()

    @classmethod
    def open(
        cls, engine: Engine, image: ImageInfo, endpoints: tuple[Endpoint, ...], upstream: str
    ) -> Egress:
        """Create the network and start the proxy, its upstream side on ``upstream``; PolicyError
        for an endpoint that is the Docker host."""
        api = engine.api
        host = docker_host_addresses(engine)
        refuse_docker_host(endpoints, host)
        name = f"toolsmith-egress-{secrets.token_hex(6)}"
        api.create_network(
            name,
            driver="bridge",
            internal=True,
            # No address on the host's side of the bridge: an internal network still routes to
            # the host (its gateway), and so to every service the host listens with.
            options={"com.docker.network.bridge.inhibit_ipv4": "true"},
            labels={LABEL: "1", OWNER_LABEL: owner_id(), EGRESS_LABEL: "1"},
        )
        egress = cls(engine, name)
        try:
            egress._start_proxy(image, endpoints, upstream, host)
        except BaseException:
            egress.close()
            raise
        return egress

    def _start_proxy(
        self,
        image: ImageInfo,
        endpoints: tuple[Endpoint, ...],
        upstream: str,
        host: frozenset[ipaddress.IPv4Address | ipaddress.IPv6Address],
    ) -> None:
        api = self.engine.api
        config = api.inspect_network(self.network)["IPAM"]["Config"][0]
        subnet = config["Subnet"]
        if config.get("Gateway"):
            host |= {ipaddress.ip_address(config["Gateway"])}
        self.proxy_id, self._raw = _create_and_attach(
            self.engine,
            image,
            PROXY_LIMITS,
            command=["python3", "-P", "-s", "-m", "toolsmith_runner.egress", subnet]
            + [f"--refuse={address}" for address in sorted(host, key=str)]
            + [str(e) for e in endpoints],
            labels={EGRESS_LABEL: self.network},
            environment=ENVIRONMENT,
            network=upstream,
        )
        self._sock = getattr(self._raw, "_sock", self._raw)
        api.connect_container_to_network(self.proxy_id, self.network)
        api.start(self.proxy_id)
        deadline = time.monotonic() + 30.0
        while not self._frames.stdout.startswith(READY):
            if not read_attached(self._sock, self._frames, deadline):
                raise SandboxError(
                    "the egress proxy did not start: "
                    + self._frames.stderr.decode("utf-8", "replace")[-2000:],
                    hint="rebuild the image with `toolsmith sandbox build`",
                )
        networks = api.inspect_container(self.proxy_id)["NetworkSettings"]["Networks"]
        self.proxy_url = f"http://{networks[self.network]['IPAddress']}:{PROXY_PORT}"

    def environment(self) -> dict[str, str]:
        """What points the tool's HTTP clients at the proxy."""
        url = self.proxy_url
        return {"HTTPS_PROXY": url, "HTTP_PROXY": url, "https_proxy": url, "http_proxy": url}

    def close(self) -> None:
        """Stop the proxy (logging what it refused), remove it and the network; idempotent."""
        if self.proxy_id and self._sock is not None:
            with contextlib.suppress(docker.errors.APIError):
                self.engine.api.kill(self.proxy_id)
            frames = Frames()
            deadline = time.monotonic() + 1.0
            with contextlib.suppress(OSError):
                while read_attached(self._sock, frames, deadline):
                    pass
            for line in frames.stderr.decode("utf-8", "replace").splitlines():
                if line.startswith("egress refused"):
                    self.refusals.append(line.removeprefix("egress refused ").strip())
                    log.warning("egress refused", network=self.network, detail=self.refusals[-1])
        remove_container(self.engine, self.proxy_id, (self._raw, self._sock))
        self._raw = self._sock = None
        self.proxy_id = ""
        if self.network:
            with contextlib.suppress(docker.errors.NotFound):
                self.engine.api.remove_network(self.network)
            self.network = ""


# A start may wait up to this many times its timeout on a saturated machine.
MAX_LOAD_FACTOR = 10.0


def busy() -> tuple[float, int]:
    """The 1-minute load average and the number of cores it is shared by."""
    return os.getloadavg()[0], os.cpu_count() or 1


def ready_allowance(timeout_s: float) -> float:
    """``timeout_s`` stretched by how oversubscribed the cores are now (load per core, at least 1,
    at most ``MAX_LOAD_FACTOR``): under load 15 on 2 cores a 60 s start may take 450 s."""
    load, cores = busy()
    return timeout_s * min(MAX_LOAD_FACTOR, max(1.0, load / cores))


def read_mounts(grants: Grants) -> list[dict[str, Any]]:
    """Read-only, non-recursive bind mounts of the granted paths, checked again as resolved on
    this host (a symlink must not lead somewhere refused); a missing path is refused, and so is
    one that anyone but root or this user could swap before the Docker daemon mounts it (see
    ``held_read_path``)."""
    return [
        {
            "Type": "bind",
            "Source": held_read_path(f"fs:read:{path}", path),
            "Target": path,
            "ReadOnly": True,
            "BindOptions": {"NonRecursive": True},
        }
        for path in grants.read_paths
    ]


def held_read_path(cap: str, path: str) -> str:
    """The host path ``path`` resolves to, once no one but root or this user can change what it
    resolves to; else PolicyError.

    The daemon resolves a bind mount's source itself, later, so a check of the path is only worth
    what the path's stability is: a local user who could rename an entry on the way (e.g. their own
    directory in /tmp, swapped for a link to /proc with renameat2 RENAME_EXCHANGE) would get
    whatever they point it at mounted. So each component of the resolved path is opened without
    following links (O_PATH|O_NOFOLLOW, one directory fd at a time, so the walk sees one
    consistent chain) and must be a real entry owned by root or this user, in a directory that
    only they can write or that is sticky (only an entry's owner may rename it there) — the
    kernel's own permission checks then keep the path what was checked until the mount
    (the rule OpenSSH's StrictModes applies to authorized_keys)."""
    try:
        real = os.path.realpath(path)
    except OSError as e:  # a link turned into a directory while it was read (EINVAL)
        raise _changed(cap, path, e.strerror or "unreadable") from e
    if not os.path.exists(real):
        raise PolicyError(
            f"capability {cap!r}: {path} does not exist on this host",
            hint="create the path or remove the capability",
        )
    check_read_path(cap, real)
    trusted = {0, os.geteuid()}
    fd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        parent = os.fstat(fd)
        walked = ""
        for part in [p for p in real.split("/") if p]:
            walked += "/" + part
            try:
                child = os.open(part, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            except OSError as e:
                raise _changed(cap, walked, e.strerror or "gone") from e
            os.close(fd)
            fd = child
            st = os.fstat(fd)
            if stat.S_ISLNK(st.st_mode):
                raise _changed(cap, walked, "now a symbolic link")
            if parent.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not (
                parent.st_mode & stat.S_ISVTX
            ):
                raise PolicyError(
                    f"capability {cap!r}: {walked} is in a directory other users can write, "
                    "so they could swap it for a link to /proc or the Docker socket before "
                    "it is mounted",
                    hint="keep the tool's data where only you or root can rename it "
                    "(e.g. under your home directory)",
                )
            if st.st_uid not in trusted:
                raise PolicyError(
                    f"capability {cap!r}: {walked} belongs to uid {st.st_uid}, who could swap "
                    "it for a link to /proc or the Docker socket before it is mounted",
                    hint=f"make {walked} owned by you or root, or copy the data into a "
                    "directory of your own and grant that",
                )
            parent = st
    finally:
        os.close(fd)
    return real


def _changed(cap: str, path: str, what: str) -> PolicyError:
    return PolicyError(
        f"capability {cap!r}: {path} changed while it was checked ({what})",
        hint="make sure nothing renames or relinks the granted path, then retry",
    )


def create_attached(
    engine: Engine,
    image: ImageInfo,
    limits: Limits,
    *,
    command: list[str],
    labels: dict[str, str],
    stdin_once: bool = False,
    grants: Grants | None = None,
    egress_network: str = "bridge",
) -> tuple[str, Any, Egress | None]:
    """Create a hardened container granted exactly ``grants`` and attach to its stdio before it
    starts, so nothing it says is lost; returns its id, the raw attach socket and its egress
    (None without network grants: then it has no network at all). The caller starts it, and
    closes the egress after removing the container."""
    grants = grants or Grants()
    mounts = read_mounts(grants)
    environment = {**ENVIRONMENT, **grants.environment(os.environ)}
    egress = Egress.open(engine, image, grants.egress, egress_network) if grants.egress else None
    try:
        if egress is not None:
            environment.update(egress.environment())
        granted = sorted(set(environment) - set(ENVIRONMENT))
        if granted:
            environment[PASS_ENV] = ",".join(granted)
        return (
            *_create_and_attach(
                engine,
                image,
                limits,
                command=command,
                labels=labels,
                environment=environment,
                network=egress.network if egress else "none",
                mounts=mounts or None,
                egress=egress is not None,
                stdin_once=stdin_once,
            ),
            egress,
        )
    except BaseException:
        if egress is not None:
            egress.close()
        raise


def _create_and_attach(
    engine: Engine,
    image: ImageInfo,
    limits: Limits,
    *,
    command: list[str],
    labels: dict[str, str],
    environment: dict[str, str],
    network: str,
    mounts: list[dict[str, Any]] | None = None,
    egress: bool = False,
    stdin_once: bool = False,
) -> tuple[str, Any]:
    api = engine.api
    config = api.create_container_config(
        image.tag,
        command=command,
        user=f"{SANDBOX_UID}:{SANDBOX_UID}",
        stdin_open=True,
        tty=False,
        environment=environment,
        working_dir="/",
        hostname="sandbox",
        labels={LABEL: "1", OWNER_LABEL: owner_id(), **labels},
        network_disabled=network == "none",
        host_config=host_config(engine, limits, network=network, mounts=mounts, egress=egress),
    )
    if stdin_once:
        config["StdinOnce"] = True
    container_id = api.create_container_from_config(config)["Id"]
    try:
        raw = api.attach_socket(
            container_id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
        )
    except BaseException:
        remove_container(engine, container_id, ())
        raise
    return container_id, raw


def remove_container(engine: Engine, container_id: str, streams: tuple[Any, ...]) -> None:
    """Close our ends, then kill and remove; never raises for a container already gone."""
    for stream in streams:
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
    if not container_id:
        return
    try:
        engine.api.remove_container(container_id, force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as e:
        if e.status_code != 409:
            raise


def new_nonce() -> str:
    return secrets.token_hex(16)
