"""Run-time grants on the real engine: a container gets exactly what its spec declares.

No traffic leaves this machine: the "internet" is an internal Docker network made here, holding two
HTTP servers of the runner image (aliases api.test and www.example.com for one, other.test for the
other); the egress proxy's upstream side is on that network. Those addresses are private, so a
tool reaches them only through IP-literal grants (``network:<ip>:8000``); the names, resolved by
the proxy through Docker's own DNS, are refused like any name resolving to a private address.
"""

from __future__ import annotations

import http.server
import secrets
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
    """An internal network with HTTP servers api.test (also www.example.com) and other.test;
    yields the network's name and gateway and each server's IP under its first alias."""
    api = engine.api
    name = f"toolsmith-test-upstream-{secrets.token_hex(4)}"
    api.create_network(name, driver="bridge", internal=True)
    servers: list[str] = []
    found = {"network": name}
    found["gateway"] = api.inspect_network(name)["IPAM"]["Config"][0]["Gateway"]
    try:
        for aliases in (["api.test", "www.example.com"], ["other.test"]):
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
                    {name: api.create_endpoint_config(aliases=aliases)}
                ),
            )["Id"]
            servers.append(cid)
            api.start(cid)
            networks = api.inspect_container(cid)["NetworkSettings"]["Networks"]
            found[aliases[0]] = networks[name]["IPAddress"]
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
    """A docker-runtime tool declaring api.test's address (port 8000), env:GRANT_CANARY and one
    read path."""
    caps = [
        f"network:{upstream['api.test']}:8000",
        "env:GRANT_CANARY",
        f"fs:read:{data_dirs['declared']}",
    ]
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


def test_declared_host_is_reached_through_the_proxy(
    granted: DockerTool, upstream: dict[str, str]
) -> None:
    """An HTTP client honouring HTTP_PROXY reaches the declared private address (an IP-literal
    grant), port 8000."""
    got = granted(action="get", arg=f"http://{upstream['api.test']}:8000/")
    assert got["status"] == 200 and "runner" in got["body"]


def test_declared_host_is_reached_through_a_connect_tunnel(
    granted: DockerTool, upstream: dict[str, str]
) -> None:
    """CONNECT (what HTTPS uses) to the declared address:port is tunnelled end to end."""
    got = granted(action="tunnel", arg=f"{upstream['api.test']}:8000")
    assert " 200 " in got["connect"] and got["inner"].startswith("HTTP/1.0 200")


def test_undeclared_host_and_port_are_refused_by_the_proxy(
    granted: DockerTool, upstream: dict[str, str]
) -> None:
    """other.test's address, the declared address on an undeclared port, and the declared
    server's name (not what was granted) get 403 from the proxy."""
    other, api = upstream["other.test"], upstream["api.test"]
    got = granted(action="get", arg=f"http://{other}:8000/")
    assert got["status"] == 403 and f"{other}:8000 is not declared" in got["body"]
    assert granted(action="tunnel", arg=f"{other}:8000")["connect"].endswith("403 Forbidden")
    assert granted(action="get", arg=f"http://{api}:80/")["status"] == 403
    assert granted(action="get", arg="http://api.test:8000/")["status"] == 403


def test_direct_connections_have_no_route_out(
    engine: Engine, granted: DockerTool, upstream: dict[str, str]
) -> None:
    """Bypassing the proxy with a raw socket fails: the servers' names and addresses, and the
    Docker host itself through the internal network's gateway, the upstream network's gateway
    and the default bridge's 172.17.0.1, are all unreachable."""
    worker = granted._slot.worker
    assert worker is not None and worker.egress is not None
    network = engine.api.inspect_network(worker.egress.network)
    gateway = network["IPAM"]["Config"][0]["Gateway"]
    with socket.create_server(("0.0.0.0", 0)) as listener:
        port = listener.getsockname()[1]
        for host in (gateway, upstream["gateway"], _bridge_gateway(port)):
            assert granted(action="direct", arg=f"{host}:{port}").startswith("failed"), host
    assert granted(action="direct", arg=f"{upstream['api.test']}:8000").startswith("failed")
    assert granted(action="direct", arg="api.test:8000").startswith("failed")


def _bridge_gateway(port: int) -> str:
    """172.17.0.1 (the default bridge's gateway), checked to be this host: a listener of this
    process on ``port`` answers there."""
    socket.create_connection(("172.17.0.1", port), timeout=5).close()
    return "172.17.0.1"


@pytest.fixture(scope="module")
def named(sandbox_image: ImageInfo, upstream: dict[str, str]) -> Iterator[DockerTool]:
    """The probe granted names that resolve, through the proxy's own resolver, to private or
    loopback addresses: api.test and www.example.com (Docker DNS: the api server),
    ip6-localhost (the proxy's /etc/hosts: ::1) and sandbox (its own hostname)."""
    names = ["api.test", "www.example.com", "ip6-localhost", "sandbox"]
    tool = load_docker(
        probe_spec([f"network:{name}:8000" for name in names]),
        PROBE,
        image=sandbox_image,
        egress_network=upstream["network"],
    )
    yield tool
    tool.close()


@pytest.mark.parametrize("name", ["api.test", "www.example.com"])
def test_a_name_resolving_to_a_private_address_is_refused(
    named: DockerTool, upstream: dict[str, str], name: str
) -> None:
    """A granted name (even a public-looking one) that resolves to a private address is refused
    at connect time, over HTTP and CONNECT, naming the address and the IP-literal grant."""
    api = upstream["api.test"]
    got = named(action="get", arg=f"http://{name}:8000/")
    assert got["status"] == 403, got
    assert f"{name} resolves to {api}: private" in got["body"]
    assert f"network:{api}:8000" in got["body"]
    assert named(action="tunnel", arg=f"{name}:8000")["connect"].endswith("403 Forbidden")


@pytest.mark.parametrize(("name", "kind"), [("ip6-localhost", "::1: loopback"), ("sandbox", "")])
def test_a_name_resolving_to_the_proxys_own_machine_is_refused(
    named: DockerTool, name: str, kind: str
) -> None:
    """ip6-localhost (::1) and the proxy's own hostname resolve to the proxy itself: refused."""
    got = named(action="get", arg=f"http://{name}:8000/")
    assert got["status"] == 403 and f"{name} resolves to {kind}" in got["body"], got


def test_ip_literal_grants_of_the_docker_host_are_refused_before_any_container(
    engine: Engine, sandbox_image: ImageInfo, upstream: dict[str, str]
) -> None:
    """A literal naming a Docker network's gateway (this host: the default bridge's 172.17.0.1,
    the upstream network's) is a PolicyError; no network or container is left behind."""
    before = len(engine.api.networks())
    with socket.create_server(("0.0.0.0", 0)) as listener:
        port = listener.getsockname()[1]
        for host in (_bridge_gateway(port), upstream["gateway"]):
            spec = probe_spec([f"network:{host}:{port}"])
            with pytest.raises(PolicyError, match=f"names {host}, the gateway of a Docker"):
                load_docker(spec, PROBE, image=sandbox_image, egress_network=upstream["network"])
    assert len(engine.api.networks()) == before


class _HostService(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"host secret"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _CountingServer(http.server.ThreadingHTTPServer):
    """Counts the connections it accepts, whatever is sent on them."""

    accepted = 0

    def get_request(self) -> tuple[socket.socket, Any]:
        self.accepted += 1
        return super().get_request()


# A DNS server (UDP, A records only) answering PUBLIC to the first A query and REBOUND to every
# later one: a rebinding attacker's name server.
REBINDING_DNS = """
import socket, struct, sys
public, rebound = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 53))
asked = 0
while True:
    query, peer = s.recvfrom(1500)
    end = query.index(b"\\0", 12) + 5
    answer = b""
    if struct.unpack(">H", query[end - 4 : end - 2])[0] == 1:
        asked += 1
        address = public if asked == 1 else rebound
        answer = b"\\xc0\\x0c" + struct.pack(">HHIH", 1, 1, 0, 4) + socket.inet_aton(address)
    head = query[:2] + b"\\x81\\x80" + struct.pack(">HHHH", 1, 1 if answer else 0, 0, 0)
    s.sendto(head + query[12:end] + answer, peer)
"""
PUBLIC = "93.184.216.34"


def _hardened(api: Any, network: str, **extra: Any) -> Any:
    return api.create_host_config(
        network_mode=network,
        read_only=True,
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        **extra,
    )


@pytest.fixture(scope="module")
def host_proxy(engine: Engine, sandbox_image: ImageInfo) -> Iterator[dict[str, Any]]:
    """A service of this host (HTTP on all its addresses) and an egress proxy of the image on an
    internal bridge network (no route out, but the host's gateway address), granted:
    gw.test and mapped.test, mapped by its /etc/hosts (extra_hosts) to the gateway (this host)
    and its IPv4-mapped IPv6 form; rebind.test, resolved through Docker's DNS by a rebinding name
    server (``REBINDING_DNS``) on the same network; and the gateway as a literal, told as
    ``--refuse``. This process is the proxy's client: it connects from the gateway, inside the
    proxy's client subnet."""
    server = _CountingServer(("0.0.0.0", 0), _HostService)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    api = engine.api
    name = f"toolsmith-test-hostproxy-{secrets.token_hex(4)}"
    api.create_network(name, driver="bridge", internal=True)
    containers: list[str] = []
    try:
        config = api.inspect_network(name)["IPAM"]["Config"][0]
        gateway = config["Gateway"]
        dns = api.create_container(
            sandbox_image.tag,
            command=["python3", "-c", REBINDING_DNS, PUBLIC, gateway],
            user="10001:10001",
            host_config=_hardened(api, name, sysctls={"net.ipv4.ip_unprivileged_port_start": "0"}),
        )["Id"]
        containers.append(dns)
        api.start(dns)
        dns_ip = api.inspect_container(dns)["NetworkSettings"]["Networks"][name]["IPAddress"]
        granted = [f"gw.test:{port}", f"mapped.test:{port}", f"rebind.test:{port}"]
        cid = api.create_container(
            sandbox_image.tag,
            command=[
                *["python3", "-P", "-s", "-m", "toolsmith_runner.egress", config["Subnet"]],
                *[f"--refuse={gateway}", *granted, f"{gateway}:{port}"],
            ],
            user="10001:10001",
            host_config=_hardened(
                api,
                name,
                extra_hosts={"gw.test": gateway, "mapped.test": f"::ffff:{gateway}"},
                dns=[dns_ip],
            ),
        )["Id"]
        containers.append(cid)
        api.start(cid)
        deadline = time.monotonic() + 60
        while b"READY" not in api.logs(cid, stdout=True, stderr=False):
            assert time.monotonic() < deadline, api.logs(cid).decode()
            time.sleep(0.2)
        ip = api.inspect_container(cid)["NetworkSettings"]["Networks"][name]["IPAddress"]
        yield {"proxy": ip, "gateway": gateway, "port": str(port), "service": server}
    finally:
        for cid in containers:
            api.remove_container(cid, force=True)
        api.remove_network(name)
        server.shutdown()
        server.server_close()


def _connect_via(proxy: str, target: str) -> bytes:
    with socket.create_connection((proxy, 3128), timeout=15) as s:
        s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        return s.recv(4096)


def test_names_resolving_to_the_docker_host_are_refused(host_proxy: dict[str, Any]) -> None:
    """gw.test (the gateway) and mapped.test (::ffff:<gateway>), resolved by the proxy through
    its /etc/hosts, are refused, naming the host's address; the host's service stays unreached.
    """
    gateway, port = host_proxy["gateway"], host_proxy["port"]
    for name in ("gw.test", "mapped.test"):
        answer = _connect_via(host_proxy["proxy"], f"{name}:{port}")
        assert answer.startswith(b"HTTP/1.1 403"), answer
        assert f"{name} resolves to {gateway}: private".encode() in answer, answer


def test_a_literal_grant_of_a_refused_address_is_refused_at_connect_time(
    host_proxy: dict[str, Any],
) -> None:
    """The proxy itself refuses a literal it was told is the Docker host, however written
    (IPv4, IPv4-mapped IPv6 in brackets is not the granted spelling: not declared)."""
    gateway, port = host_proxy["gateway"], host_proxy["port"]
    answer = _connect_via(host_proxy["proxy"], f"{gateway}:{port}")
    assert answer.startswith(b"HTTP/1.1 403") and b"the Docker host itself" in answer, answer
    answer = _connect_via(host_proxy["proxy"], f"[::ffff:{gateway}]:{port}")
    assert answer.startswith(b"HTTP/1.1 403") and b"is not declared" in answer, answer


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
    api, other = upstream["api.test"], upstream["other.test"]
    tests = textwrap.dedent(
        f"""
        from toolsmith_harness import call

        def test_declared_host():
            assert call(action="get", arg="http://{api}:8000/")["status"] == 200

        def test_undeclared_host():
            assert call(action="get", arg="http://{other}:8000/")["status"] == 403

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
        capabilities=[
            f"network:{api}:8000",
            "env:GRANT_CANARY",
            f"fs:read:{declared.parent}",
        ],
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
        probe_spec([f"network:{upstream['api.test']}:8000"]),
        PROBE,
        image=sandbox_image,
        egress_network=upstream["network"],
    )
    worker = tool._slot.worker
    assert worker is not None and worker.egress is not None
    egress = worker.egress
    container, proxy, network = worker.id, egress.proxy_id, egress.network
    other = upstream["other.test"]
    assert tool(action="get", arg=f"http://{other}:8000/")["status"] == 403
    tool.close()
    assert egress.refusals == [f"403 {other}:8000 is not declared"]
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
tool = load_docker(probe_spec([{capability!r}]), PROBE, image=find_image(),
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
    capability = f"network:{upstream['api.test']}:8000"
    code = OWNER_SCRIPT.format(
        root=root, capability=capability, network=upstream["network"], stop=stop
    )
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


def test_dns_rebinding_between_check_and_connect_gains_nothing(host_proxy: dict[str, Any]) -> None:
    """rebind.test resolves to a public address once, then to the Docker host: the proxy
    connects to the public address it checked (no route here: 502), never re-resolving into the
    host; asked again, it refuses the host's address. The host's service accepts nothing."""
    proxy, gateway, port = host_proxy["proxy"], host_proxy["gateway"], host_proxy["port"]
    first = _connect_via(proxy, f"rebind.test:{port}")
    assert first.startswith(b"HTTP/1.1 502") and b"unreachable" in first, first
    second = _connect_via(proxy, f"rebind.test:{port}")
    assert f"rebind.test resolves to {gateway}: private".encode() in second, second
    assert host_proxy["service"].accepted == 0
