"""Grants: the pure mapping from declared capabilities to what a container may use."""

from __future__ import annotations

import pytest

from toolsmith.errors import PolicyError
from toolsmith.sandbox.grants import Endpoint, Grants
from toolsmith.sandbox.job import SandboxJob


def test_no_capabilities_grant_nothing() -> None:
    """A pure tool gets no egress, mounts or variables, so it may use a warm container."""
    grants = Grants.from_capabilities([])
    assert grants == Grants()
    assert not grants.shapes_container


def test_network_without_port_allows_https_and_http_only() -> None:
    """network:<host> opens 443 and 80 of that host (lower-cased), no other port or host."""
    grants = Grants.from_capabilities(["network:API.Example.com"])
    assert grants.egress == (Endpoint("api.example.com", 80), Endpoint("api.example.com", 443))
    assert grants.shapes_container


def test_network_with_port_allows_that_port_only() -> None:
    """network:<host>:<port> opens exactly that pair; duplicates collapse."""
    grants = Grants.from_capabilities(["network:api.test:8000", "network:api.test:8000"])
    assert grants.egress == (Endpoint("api.test", 8000),)
    assert str(grants.egress[0]) == "api.test:8000"


@pytest.mark.parametrize(
    "cap",
    [
        "network:-bad.test",
        "network:a..b",
        "network:x:0",
        "network:fd00::1",
        "network:[fd00::1",
        "network:[fd00::1]x",
        "network:[not-v6]:443",
    ],
)
def test_bad_network_capability_is_refused(cap: str) -> None:
    """A host that is not a DNS name or an IP literal (IPv6 in brackets), or a port outside
    1-65535, is refused by name."""
    with pytest.raises(PolicyError, match="network:"):
        Grants.from_capabilities([cap])


def test_ip_literals_are_granted_in_canonical_form() -> None:
    """network:10.0.0.5:8080 and network:[FD00:0::1]:443 are granted, IPv6 compressed and shown
    in brackets; they are literals, not names."""
    grants = Grants.from_capabilities(["network:10.0.0.5:8080", "network:[FD00:0::1]:443"])
    assert grants.egress == (Endpoint("10.0.0.5", 8080), Endpoint("fd00::1", 443))
    assert [str(e) for e in grants.egress] == ["10.0.0.5:8080", "[fd00::1]:443"]
    assert str(grants.egress[1].address) == "fd00::1"
    assert Endpoint("api.example.com", 443).address is None


@pytest.mark.parametrize(
    "cap",
    [
        "network:127.0.0.1:80",
        "network:127.9.9.9",
        "network:0.0.0.0:8080",
        "network:[::1]:80",
        "network:[::]:80",
        "network:[::ffff:127.0.0.1]:80",
        "network:localhost:8080",
        "network:db.localhost",
    ],
)
def test_grants_naming_the_docker_host_itself_are_refused(cap: str) -> None:
    """Loopback, unspecified and localhost literals are the proxy's own machine: never granted."""
    with pytest.raises(PolicyError, match="the Docker host itself") as raised:
        Grants.from_capabilities([cap])
    assert "run the service" in (raised.value.hint or "")


@pytest.mark.parametrize("cap", ["network:224.0.0.1:5353", "network:[ff02::1]:80"])
def test_multicast_and_broadcast_literals_are_refused(cap: str) -> None:
    """A multicast or broadcast literal names no single host."""
    with pytest.raises(PolicyError, match="no single host"):
        Grants.from_capabilities([cap])


@pytest.mark.parametrize(
    ("cap", "ipv4"),
    [
        ("network:[::ffff:10.0.0.1]:80", "10.0.0.1"),
        ("network:[64:ff9b::a00:1]:80", "10.0.0.1"),
        ("network:[2002:a00:1::]:80", "10.0.0.1"),
        ("network:[::a00:1]:80", "10.0.0.1"),
    ],
)
def test_ipv6_forms_embedding_ipv4_are_refused_naming_the_ipv4(cap: str, ipv4: str) -> None:
    """IPv4-mapped, NAT64, 6to4 and IPv4-compatible literals hide their host: grant the IPv4."""
    with pytest.raises(PolicyError, match="an IPv6 form of the IPv4 address") as raised:
        Grants.from_capabilities([cap])
    assert f"network:{ipv4}" in (raised.value.hint or "")


@pytest.mark.parametrize("cap", ["network:127.1", "network:2130706433:80", "network:10.0.0.256"])
def test_numeric_hosts_must_be_dotted_quads(cap: str) -> None:
    """Resolvers read 127.1 and 2130706433 as 127.0.0.1: a number must be a real dotted quad."""
    with pytest.raises(PolicyError, match="not a dotted-quad IPv4 address"):
        Grants.from_capabilities([cap])


def test_fs_read_grants_a_data_path() -> None:
    """fs:read:<path> of an ordinary data directory is granted as a read path."""
    grants = Grants.from_capabilities(["fs:read:/srv/data", "fs:read:/tmp/pytest-1/in"])
    assert grants.read_paths == ("/srv/data", "/tmp/pytest-1/in")
    assert grants.shapes_container


@pytest.mark.parametrize(
    "path",
    [
        "/var/run/docker.sock",
        "/var/run",
        "/run/docker.sock",
        "/proc/self",
        "/sys",
        "/dev/kmsg",
        "/",
        "/var",
    ],
)
def test_fs_read_of_host_system_places_is_refused(path: str) -> None:
    """The Docker socket, /proc, /sys, /dev, or any directory above them, is never mounted."""
    with pytest.raises(PolicyError, match="never granted"):
        Grants.from_capabilities([f"fs:read:{path}"])


@pytest.mark.parametrize(
    "path", ["/opt/toolsmith/runner", "/usr/lib", "/opt", "/etc/passwd", "/tmp"]
)
def test_fs_read_over_image_places_is_refused(path: str) -> None:
    """A mount that would replace the runner, the interpreter or the tmpfs is refused."""
    with pytest.raises(PolicyError, match="would mount over"):
        Grants.from_capabilities([f"fs:read:{path}"])


@pytest.mark.parametrize("path", ["/srv/../var/run", "/srv//data", "/srv/./data"])
def test_fs_path_must_be_normalised(path: str) -> None:
    """'..', '.' and repeated slashes are refused rather than resolved into a surprise."""
    with pytest.raises(PolicyError, match="normalised absolute path"):
        Grants.from_capabilities([f"fs:read:{path}"])


def test_fs_write_inside_tmpfs_is_granted() -> None:
    """fs:write under /tmp or /work stays inside the container's own tmpfs: granted."""
    grants = Grants.from_capabilities(["fs:write:/tmp", "fs:write:/work/out"])
    assert grants.write_paths == ("/tmp", "/work/out")
    assert not grants.shapes_container


def test_fs_write_to_a_host_path_is_refused() -> None:
    """Host paths are never mounted writable: fs:write:/srv/out is a PolicyError."""
    with pytest.raises(PolicyError, match="never mounted writable"):
        Grants.from_capabilities(["fs:write:/srv/out"])


def test_env_passes_only_declared_and_set_variables() -> None:
    """env:<NAME> passes that variable if the host has it; undeclared ones never pass."""
    grants = Grants.from_capabilities(["env:CANARY", "env:UNSET_ONE"])
    host = {"CANARY": "yes", "OTHER": "secret"}
    assert grants.environment(host) == {"CANARY": "yes"}


@pytest.mark.parametrize("name", ["PATH", "PYTHONPATH", "HTTPS_PROXY", "LD_PRELOAD", "TOOLSMITH_X"])
def test_env_grant_cannot_override_sandbox_variables(name: str) -> None:
    """Variables the sandbox sets itself (PATH, PYTHON*, LD_*, proxies) cannot be granted."""
    with pytest.raises(PolicyError, match="the sandbox sets itself"):
        Grants.from_capabilities([f"env:{name}"])


def test_subprocess_needs_no_container_change() -> None:
    """subprocess is recorded but does not force a fresh container."""
    grants = Grants.from_capabilities(["subprocess"])
    assert grants.subprocess and not grants.shapes_container


def test_unknown_capability_is_refused() -> None:
    """Anything outside the ToolSpec syntax is refused rather than ignored."""
    with pytest.raises(PolicyError, match="not recognised"):
        Grants.from_capabilities(["gpu"])


def test_sandbox_job_carries_its_grants() -> None:
    """A SandboxJob's capabilities become its grants; a refused one fails the job's creation."""
    job = SandboxJob(
        tool_name="t",
        code="def t(): pass\n",
        test_files={"test_t.py": "def test_x(): pass\n"},
        expected_tests=1,
        capabilities=["env:CANARY"],
    )
    assert job.grants.env == ("CANARY",)
    with pytest.raises(PolicyError, match="never mounted writable"):
        SandboxJob(
            tool_name="t",
            code="",
            test_files={"test_t.py": ""},
            expected_tests=1,
            capabilities=["fs:write:/home/x"],
        )
