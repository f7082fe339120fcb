"""Run-time grants on the real engine: a container gets exactly what its spec declares.

No traffic leaves this machine: the "internet" is an internal Docker network made here, holding two
HTTP servers of the runner image under the aliases api.test and other.test; the egress proxy's
upstream side is on that network.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import docker.errors
import pytest

from toolsmith.errors import PolicyError
from toolsmith.runtimes.docker import DockerTool, load_docker
from toolsmith.sandbox import ImageInfo, Sandbox, SandboxJob, connect
from toolsmith.sandbox.cleanup import sweep_stale
from toolsmith.sandbox.containers import OWNER_LABEL
from toolsmith.sandbox.engine import Engine
from toolsmith.spec import ToolSpec

pytestmark = pytest.mark.docker

PROBE = """\
import os
import socket
import urllib.error
import urllib.request


def probe(action, arg=""):
    if action == "get":
        try:
            with urllib.request.urlopen(arg, timeout=10) as r:
                return {"status": r.status, "body": r.read(2000).decode("latin-1")}
        except urllib.error.HTTPError as e:
            return {"status": e.code, "body": e.read(2000).decode("latin-1")}
        except OSError as e:
            return {"error": type(e).__name__}
    if action == "tunnel":
        host, port = os.environ["HTTPS_PROXY"].removeprefix("http://").rsplit(":", 1)
        s = socket.create_connection((host, int(port)), timeout=10)
        s.sendall(("CONNECT " + arg + " HTTP/1.1\\r\\nHost: " + arg + "\\r\\n\\r\\n").encode())
        head = s.recv(4096).split(b"\\r\\n")[0].decode()
        if " 200 " not in head:
            return {"connect": head}
        s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
        return {"connect": head, "inner": data.split(b"\\r\\n")[0].decode()}
    if action == "direct":
        host, port = arg.rsplit(":", 1)
        try:
            socket.create_connection((host, int(port)), timeout=3).close()
            return "connected"
        except OSError as e:
            return "failed: " + type(e).__name__
    if action == "interfaces":
        with open("/proc/net/dev") as f:
            return sorted(line.split(":")[0].strip() for line in f.readlines()[2:])
    if action == "env":
        return {name: os.environ.get(name) for name in arg.split(",")}
    if action == "read":
        try:
            with open(arg) as f:
                return f.read()
        except OSError as e:
            return "failed: " + type(e).__name__
    if action == "write":
        try:
            with open(arg, "w") as f:
                f.write("overwritten")
            return "written"
        except OSError as e:
            return "failed: errno " + str(e.errno)
    if action == "exists":
        return os.path.exists(arg)
    raise ValueError(action)
"""


def probe_spec(capabilities: list[str]) -> ToolSpec:
    return ToolSpec.parse(
        {
            "name": "probe",
            "description": "Reports what its container lets it reach.",
            "parameters": {
                "type": "object",
                "properties": {"action": {"type": "string"}, "arg": {"type": "string"}},
                "required": ["action"],
            },
            "returns": {},
            "raises": ["ValueError"],
            "capabilities": capabilities,
        }
    )


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    engine = connect()
    yield engine
    engine.client.close()


@pytest.fixture(scope="module")
def upstream(engine: Engine, sandbox_image: ImageInfo) -> Iterator[dict[str, str]]:
    """An internal network with HTTP servers api.test and other.test; yields name and IPs."""
    api = engine.api
    name = f"toolsmith-test-upstream-{secrets.token_hex(4)}"
    api.create_network(name, driver="bridge", internal=True)
    servers: list[str] = []
    found = {"network": name}
    try:
        for alias in ("api.test", "other.test"):
            cid = api.create_container(
                sandbox_image.tag,
                command=["python3", "-m", "http.server", "8000", "--directory", "/opt/toolsmith"],
                user="10001:10001",
                host_config=api.create_host_config(
                    network_mode=name,
                    read_only=True,
                    cap_drop=["ALL"],
                    security_opt=["no-new-privileges"],
                ),
                networking_config=api.create_networking_config(
                    {name: api.create_endpoint_config(aliases=[alias])}
                ),
            )["Id"]
            servers.append(cid)
            api.start(cid)
            networks = api.inspect_container(cid)["NetworkSettings"]["Networks"]
            found[alias] = networks[name]["IPAddress"]
        yield found
    finally:
        for cid in servers:
            api.remove_container(cid, force=True)
        api.remove_network(name)


@pytest.fixture(scope="module")
def data_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A declared data directory and an undeclared one, both writable by anyone on the host."""
    dirs = {}
    for name in ("declared", "undeclared"):
        d = tmp_path_factory.mktemp(name)
        (d / "data.txt").write_text(f"{name} data")
        d.chmod(0o777)
        (d / "data.txt").chmod(0o666)
        dirs[name] = d
    return dirs


@pytest.fixture(scope="module")
def granted(
    sandbox_image: ImageInfo, upstream: dict[str, str], data_dirs: dict[str, Path]
) -> Iterator[DockerTool]:
    """A docker-runtime tool declaring api.test:8000, env:GRANT_CANARY and one read path."""
    caps = ["network:api.test:8000", "env:GRANT_CANARY", f"fs:read:{data_dirs['declared']}"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRANT_CANARY", "seen")
        mp.setenv("GRANT_OTHER", "hidden")
        tool = load_docker(
            probe_spec(caps), PROBE, image=sandbox_image, egress_network=upstream["network"]
        )
    yield tool
    tool.close()


@pytest.fixture(scope="module")
def pure(sandbox_image: ImageInfo) -> Iterator[DockerTool]:
    """The same probe declaring nothing."""
    tool = load_docker(probe_spec([]), PROBE, image=sandbox_image)
    yield tool
    tool.close()


def test_declared_host_is_reached_through_the_proxy(granted: DockerTool) -> None:
    """An HTTP client honouring HTTP_PROXY reaches the declared api.test:8000."""
    got = granted(action="get", arg="http://api.test:8000/")
    assert got["status"] == 200 and "runner" in got["body"]


def test_declared_host_is_reached_through_a_connect_tunnel(granted: DockerTool) -> None:
    """CONNECT (what HTTPS uses) to the declared host:port is tunnelled end to end."""
    got = granted(action="tunnel", arg="api.test:8000")
    assert " 200 " in got["connect"] and got["inner"].startswith("HTTP/1.0 200")


def test_undeclared_host_and_port_are_refused_by_the_proxy(granted: DockerTool) -> None:
    """other.test:8000, and api.test on an undeclared port, get 403 from the proxy."""
    other = granted(action="get", arg="http://other.test:8000/")
    assert other["status"] == 403 and "other.test:8000 is not declared" in other["body"]
    assert granted(action="tunnel", arg="other.test:8000")["connect"].endswith("403 Forbidden")
    assert granted(action="get", arg="http://api.test:80/")["status"] == 403


def test_direct_connections_have_no_route_out(
    engine: Engine, granted: DockerTool, upstream: dict[str, str]
) -> None:
    """Bypassing the proxy fails: the servers' names and addresses, and the host itself through
    the internal network's gateway, are all unreachable."""
    worker = granted._slot.worker
    assert worker is not None and worker.egress is not None
    network = engine.api.inspect_network(worker.egress.network)
    gateway = network["IPAM"]["Config"][0]["Gateway"]
    with socket.create_server(("0.0.0.0", 0)) as listener:
        port = listener.getsockname()[1]
        assert granted(action="direct", arg=f"{gateway}:{port}").startswith("failed")
    assert granted(action="direct", arg=f"{upstream['api.test']}:8000").startswith("failed")
    assert granted(action="direct", arg="api.test:8000").startswith("failed")


def test_a_tool_declaring_no_network_has_only_loopback(pure: DockerTool) -> None:
    """Without network:<host> the container keeps network_mode=none: loopback only, no proxy."""
    assert pure(action="interfaces") == ["lo"]
    assert pure(action="env", arg="HTTPS_PROXY,HTTP_PROXY") == {
        "HTTPS_PROXY": None,
        "HTTP_PROXY": None,
    }


def test_env_grant_passes_only_the_declared_variable(granted: DockerTool, pure: DockerTool) -> None:
    """env:GRANT_CANARY reaches the tool; GRANT_OTHER, set but undeclared, does not."""
    names = "GRANT_CANARY,GRANT_OTHER"
    assert granted(action="env", arg=names) == {"GRANT_CANARY": "seen", "GRANT_OTHER": None}
    assert pure(action="env", arg=names) == {"GRANT_CANARY": None, "GRANT_OTHER": None}


def test_fs_read_grant_is_readable_but_not_writable(
    granted: DockerTool, data_dirs: dict[str, Path]
) -> None:
    """The declared directory is readable at its host path, read-only (EROFS) despite 0666."""
    declared = data_dirs["declared"] / "data.txt"
    assert granted(action="read", arg=str(declared)) == "declared data"
    assert granted(action="write", arg=str(declared)) == "failed: errno 30"
    assert declared.read_text() == "declared data"


def test_undeclared_paths_are_absent(
    granted: DockerTool, pure: DockerTool, data_dirs: dict[str, Path]
) -> None:
    """A path no capability names does not exist in the container."""
    undeclared = str(data_dirs["undeclared"] / "data.txt")
    assert granted(action="exists", arg=undeclared) is False
    assert pure(action="exists", arg=str(data_dirs["declared"] / "data.txt")) is False


def test_sandbox_job_gets_the_same_grants(
    sandbox_image: ImageInfo, upstream: dict[str, str], data_dirs: dict[str, Path]
) -> None:
    """A SandboxJob's tests see the declared host, variable and path, and nothing undeclared."""
    declared = data_dirs["declared"] / "data.txt"
    tests = textwrap.dedent(
        f"""
        from toolsmith_harness import call

        def test_declared_host():
            assert call(action="get", arg="http://api.test:8000/")["status"] == 200

        def test_undeclared_host():
            assert call(action="get", arg="http://other.test:8000/")["status"] == 403

        def test_env():
            assert call(action="env", arg="GRANT_CANARY,GRANT_OTHER") == {{
                "GRANT_CANARY": "seen", "GRANT_OTHER": None}}

        def test_read_only():
            assert call(action="read", arg={str(declared)!r}) == "declared data"
            assert call(action="write", arg={str(declared)!r}) == "failed: errno 30"
        """
    )
    job = SandboxJob(
        tool_name="probe",
        code=PROBE,
        test_files={"test_probe.py": tests},
        expected_tests=4,
        capabilities=["network:api.test:8000", "env:GRANT_CANARY", f"fs:read:{declared.parent}"],
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRANT_CANARY", "seen")
        mp.setenv("GRANT_OTHER", "hidden")
        with Sandbox(pool_size=1, image=sandbox_image, egress_network=upstream["network"]) as sb:
            report = sb.run(job)
    assert report.passed, report.failure_text()


def test_close_removes_the_proxy_and_network(
    engine: Engine, sandbox_image: ImageInfo, upstream: dict[str, str]
) -> None:
    """Closing a networked tool removes its container, its proxy and its internal network,
    and the proxy's refusals are kept for the log."""
    tool = load_docker(
        probe_spec(["network:api.test:8000"]),
        PROBE,
        image=sandbox_image,
        egress_network=upstream["network"],
    )
    worker = tool._slot.worker
    assert worker is not None and worker.egress is not None
    egress = worker.egress
    container, proxy, network = worker.id, egress.proxy_id, egress.network
    assert tool(action="get", arg="http://other.test:8000/")["status"] == 403
    tool.close()
    assert egress.refusals == ["403 other.test:8000 is not declared"]
    for cid in (container, proxy):
        with pytest.raises(docker.errors.NotFound):
            engine.api.inspect_container(cid)
    with pytest.raises(docker.errors.NotFound):
        engine.api.inspect_network(network)


OWNER_SCRIPT = """
import os, signal, sys
sys.path.insert(0, {root!r})
from tests.test_grants_docker import PROBE, probe_spec
from toolsmith.runtimes.docker import load_docker
from toolsmith.sandbox import find_image
from toolsmith.sandbox.containers import owner_id
tool = load_docker(probe_spec(["network:api.test:8000"]), PROBE, image=find_image(),
                   egress_network={network!r})
print(owner_id(), flush=True)
if {stop!r}:
    os.kill(os.getpid(), signal.SIGSTOP)
"""


def _owned(engine: Engine, owner: str) -> tuple[int, int]:
    selector = {"label": f"{OWNER_LABEL}={owner}"}
    return (
        len(engine.api.containers(all=True, filters=selector)),
        len(engine.api.networks(filters=selector)),
    )


def _owner_script(upstream: dict[str, str], *, stop: bool) -> list[str]:
    root = str(Path(__file__).resolve().parent.parent)
    code = OWNER_SCRIPT.format(root=root, network=upstream["network"], stop=stop)
    return [sys.executable, "-c", code]


def test_process_exit_removes_the_proxy_and_network(
    engine: Engine, upstream: dict[str, str]
) -> None:
    """A process that exits with a networked tool still loaded leaves no container or network."""
    done = subprocess.run(
        _owner_script(upstream, stop=False), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert _owned(engine, done.stdout.strip()) == (0, 0)


def test_leftovers_of_a_killed_owner_are_swept(engine: Engine, upstream: dict[str, str]) -> None:
    """A process killed with a networked tool loaded leaves its worker, proxy and network; the
    stale sweep removes them all."""
    proc = subprocess.Popen(
        _owner_script(upstream, stop=True), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        owner = proc.stdout.readline().decode().strip()
        assert owner, proc.stderr.read().decode() if proc.stderr else ""
        assert _owned(engine, owner) == (2, 1)
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    sweep_stale(engine)
    assert _owned(engine, owner) == (0, 0)


def test_write_grant_for_a_host_path_is_refused_before_any_container(
    sandbox_image: ImageInfo,
) -> None:
    """fs:write on a host path is refused with a PolicyError; nothing is started."""
    with pytest.raises(PolicyError, match="never mounted writable"):
        load_docker(probe_spec(["fs:write:/srv/out"]), PROBE, image=sandbox_image)


def test_read_grant_through_a_symlink_to_the_docker_socket_is_refused(
    sandbox_image: ImageInfo, tmp_path: Path
) -> None:
    """A declared path that resolves to /var/run/docker.sock is refused as resolved."""
    link = tmp_path / "innocent"
    link.symlink_to("/var/run/docker.sock")
    with pytest.raises(PolicyError, match="never granted"):
        load_docker(probe_spec([f"fs:read:{link}"]), PROBE, image=sandbox_image)


def test_read_grant_of_a_missing_path_is_refused(sandbox_image: ImageInfo, tmp_path: Path) -> None:
    """A declared path that does not exist is refused (Docker would create it as root)."""
    spec = probe_spec([f"fs:read:{tmp_path / 'missing'}"])
    with pytest.raises(PolicyError, match="does not exist on this host"):
        load_docker(spec, PROBE, image=sandbox_image)
