"""What a tool's container may use at run time: exactly what its spec declares, nothing more.

``Grants.from_capabilities`` is pure (no disk, no Docker): it parses the capabilities and refuses
the ones no container should ever get, with a ``PolicyError`` naming the capability and the fix.
``containers.create_attached`` turns grants into container settings, the same way for sandbox jobs
and for docker-runtime workers:

- ``network:<host>[:<port>]``: an egress proxy that forwards only to the declared host and ports
  (443 and 80 when none is given); the tool's container sits on an internal network with no route
  out, so the proxy is the only way off it. Without the capability: ``network_mode=none``.
  Where the proxy may connect (enforced by the proxy at connect time, on the address it connects
  to, so DNS rebinding gains nothing; see ``toolsmith_runner.egress``):

  - a *name* (``network:api.example.com``) reaches public addresses only. If it resolves to any
    private (RFC 1918, unique-local), loopback, link-local (169.254.169.254, the cloud metadata
    service), shared-NAT (100.64/10), reserved or multicast address, or to an IPv6 form embedding
    one (IPv4-mapped, IPv4-compatible, 6to4, NAT64, Teredo), the request is refused with a 403
    naming the address.
  - a private destination is reachable only when granted as an *IP literal*
    (``network:10.0.0.5:8080``, ``network:[fd00::1]:443``): a deliberate, visible choice in the
    spec that, like every network capability, goes through the policy's approval.
  - the Docker host itself is never reachable, granted or not: literals naming it are refused
    here with a PolicyError (``127.0.0.0/8``, ``::1``, ``0.0.0.0``, ``::``, multicast and
    broadcast, the name ``localhost``), by ``containers.Egress.open`` (the gateway of any Docker
    network, e.g. ``172.17.0.1``, is an address of the host) and by the proxy (those again and
    its own address). IPv6 literals embedding an IPv4 address are refused too: grant the IPv4
    address itself.
- ``fs:read:<path>``: the host path bind-mounted read-only at the same path. System paths of the
  host (the Docker socket's directories, /proc, /sys, /dev) and of the image are refused, and so
  is a path someone other than root or this user could swap before the daemon mounts it
  (``containers.held_read_path``).
- ``fs:write:<path>``: only inside the container's own tmpfs (/tmp, /work); host paths are never
  mounted writable.
- ``env:<NAME>``: that one variable from the host environment, if set; the rest stays scrubbed.
- ``subprocess``: needs no container setting (the pids limit still applies).
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from toolsmith.errors import PolicyError

DEFAULT_PORTS = (443, 80)
_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
# Host places whose files are handles on the machine itself: a socket on a read-only mount still
# accepts connect(), so neither these nor any directory above them may be mounted.
HOST_RESERVED = (
    "/proc",
    "/sys",
    "/dev",
    "/run",
    "/var/run",
    "/var/lib/docker",
    "/var/lib/containerd",
    "/etc/docker",
)
# Places of the image the runner and interpreter live in: a mount there would replace them.
IMAGE_RESERVED = ("/opt/toolsmith", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc")
TMPFS = ("/tmp", "/work")
# Variables the container's own set-up owns; a grant must not override them.
ENV_RESERVED = frozenset(
    {"PATH", "HOME", "LANG", "TMPDIR", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"}
)
ENV_RESERVED_PREFIXES = ("PYTHON", "LD_", "TOOLSMITH_", "HYPOTHESIS_")


@dataclass(frozen=True, order=True)
class Endpoint:
    """One host and port the egress proxy forwards to; ``host`` is a lower-case DNS name or an IP
    address in its compressed form (``fd00::1``, no brackets)."""

    host: str
    port: int

    @property
    def address(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        """The IP address when the host was granted as a literal, else None (a name)."""
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None

    def __str__(self) -> str:
        """``host:port``, an IPv6 host in brackets (``[fd00::1]:443``)."""
        if ":" in self.host:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Grants:
    """The run-time grants of one tool; the default grants nothing."""

    egress: tuple[Endpoint, ...] = ()
    read_paths: tuple[str, ...] = ()
    write_paths: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    subprocess: bool = False

    @classmethod
    def from_capabilities(cls, capabilities: Iterable[str]) -> Grants:
        """Grants for ``capabilities`` (ToolSpec syntax); PolicyError for one we never grant."""
        egress: set[Endpoint] = set()
        reads: set[str] = set()
        writes: set[str] = set()
        env: set[str] = set()
        subprocess = False
        for cap in capabilities:
            kind, _, rest = cap.partition(":")
            if kind == "network":
                egress.update(_endpoints(cap, rest))
            elif kind == "fs" and rest.startswith("read:"):
                reads.add(check_read_path(cap, rest.removeprefix("read:")))
            elif kind == "fs" and rest.startswith("write:"):
                writes.add(_write_path(cap, rest.removeprefix("write:")))
            elif kind == "env":
                env.add(_env_name(cap, rest))
            elif cap == "subprocess":
                subprocess = True
            else:
                raise PolicyError(
                    f"capability {cap!r} is not recognised, so it cannot be granted",
                    hint="use network:<host>[:<port>], fs:read:<path>, fs:write:<path>, "
                    "env:<NAME> or subprocess",
                )
        return cls(
            egress=tuple(sorted(egress)),
            read_paths=tuple(sorted(reads)),
            write_paths=tuple(sorted(writes)),
            env=tuple(sorted(env)),
            subprocess=subprocess,
        )

    @property
    def shapes_container(self) -> bool:
        """True when the container must be made for these grants (a warm one will not do)."""
        return bool(self.egress or self.read_paths or self.env)

    def environment(self, host_env: Mapping[str, str]) -> dict[str, str]:
        """The granted variables that are set in ``host_env``."""
        return {name: host_env[name] for name in self.env if name in host_env}


def _endpoints(cap: str, rest: str) -> list[Endpoint]:
    if rest.startswith("["):
        inside, bracket, after = rest[1:].partition("]")
        good = bracket and (not after or after.startswith(":"))
        host = _ipv6_literal(cap, inside) if good else ""
        port_text = after[1:]
    else:
        host, _, port_text = rest.partition(":")
        host = _host(cap, host.lower().rstrip("."))
    if not host or (port_text and not port_text.isdigit()):
        raise PolicyError(
            f"capability {cap!r} does not name a valid host",
            hint="declare network:<host>[:<port>], e.g. network:api.example.com or "
            "network:10.0.0.5:8080; an IPv6 address goes in brackets: network:[fd00::1]:443",
        )
    if not port_text:
        return [Endpoint(host, port) for port in DEFAULT_PORTS]
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise PolicyError(
            f"capability {cap!r} names port {port}, outside 1-65535", hint="declare a real port"
        )
    return [Endpoint(host, port)]


def _host(cap: str, host: str) -> str:
    """A DNS name or a dotted-quad IPv4 literal, checked; "" when it is neither."""
    labels = host.split(".")
    if not host or any(not _LABEL.fullmatch(label) for label in labels):
        return ""
    if host == "localhost" or host.endswith(".localhost"):
        raise PolicyError(
            f"capability {cap!r} names the Docker host itself (localhost, RFC 6761), which is "
            "never reachable",
            hint="run the service the tool needs elsewhere and grant its address or name",
        )
    if not all(label.isdigit() for label in labels):
        return host
    # All-numeric: resolvers read 127.1 or 2130706433 as 127.0.0.1, so only the canonical
    # dotted quad is a literal, and it is checked as one.
    try:
        return _checked_literal(cap, ipaddress.IPv4Address(host))
    except ipaddress.AddressValueError:
        raise PolicyError(
            f"capability {cap!r} names {host!r}, a number that is not a dotted-quad IPv4 address",
            hint="write the IPv4 address as four decimal numbers, e.g. network:10.0.0.5:8080",
        ) from None


def _ipv6_literal(cap: str, text: str) -> str:
    try:
        ip = ipaddress.IPv6Address(text)
    except ipaddress.AddressValueError:
        return ""
    if ip.scope_id:
        raise PolicyError(
            f"capability {cap!r} names a scoped (link-local) IPv6 address",
            hint="grant a global or unique-local address of the service, without %zone",
        )
    v4 = _embedded_ipv4(ip)
    if v4 is not None:
        _checked_literal(cap, v4)
        raise PolicyError(
            f"capability {cap!r} names {ip}, an IPv6 form of the IPv4 address {v4} "
            "(IPv4-mapped, IPv4-compatible, 6to4, NAT64 or Teredo), which hides which host it "
            "reaches",
            hint=f"grant the IPv4 address itself, e.g. network:{v4}",
        )
    return _checked_literal(cap, ip)


# IPv6 prefixes whose low 32 bits are an IPv4 address: NAT64 (RFC 6052, RFC 8215), SIIT
# IPv4-translated (RFC 2765) and the deprecated IPv4-compatible form (RFC 4291; :: and ::1 aside).
_EMBEDDING = tuple(
    ipaddress.IPv6Network(net) for net in ("64:ff9b::/96", "64:ff9b:1::/48", "::ffff:0:0:0/96")
)
_COMPATIBLE = ipaddress.IPv6Network("::/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 literal carries (mapped, 6to4, Teredo client, NAT64...), if any;
    the proxy's ``toolsmith_runner.addresses.embedded`` knows the same forms."""
    if ip.ipv4_mapped is not None or ip.sixtofour is not None:
        return ip.ipv4_mapped or ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if any(ip in net for net in _EMBEDDING) or (ip in _COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _checked_literal(cap: str, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """``ip`` compressed, unless it is the host itself or no single host (PolicyError)."""
    if ip.is_loopback or ip.is_unspecified:
        what = "the Docker host itself (loopback or unspecified: the proxy's own machine)"
    elif ip.is_multicast or ip == ipaddress.IPv4Address("255.255.255.255"):
        what = "no single host (multicast or broadcast)"
    else:
        return str(ip)
    raise PolicyError(
        f"capability {cap!r} names {what}, which is never reachable",
        hint="a tool never reaches the machine it runs on; run the service it needs elsewhere "
        "(e.g. a container on the egress network) and grant that address",
    )


def _normal(cap: str, path: str) -> str:
    normal = posixpath.normpath(path)
    if not path.startswith("/") or normal != (path.rstrip("/") or "/") or "//" in path:
        raise PolicyError(
            f"capability {cap!r} names {path!r}, which is not a normalised absolute path",
            hint=f"declare the path without '.', '..' or repeated slashes, e.g. {normal!r}",
        )
    return normal


def _within(path: str, place: str) -> bool:
    return path == place or path.startswith(place.rstrip("/") + "/")


def check_read_path(cap: str, path: str) -> str:
    """``path`` if it may be mounted read-only for ``cap``, else PolicyError saying why."""
    path = _normal(cap, path)
    for place in HOST_RESERVED:
        if _within(path, place) or _within(place, path):
            raise PolicyError(
                f"capability {cap!r} would expose {place} of the host (the Docker socket, "
                "devices or kernel state); it is never granted",
                hint="declare a narrower path that holds only the tool's data",
            )
    for place in IMAGE_RESERVED + TMPFS:
        if _within(place, path) or (place not in TMPFS and _within(path, place)):
            raise PolicyError(
                f"capability {cap!r} would mount over {place} of the sandbox image",
                hint="declare a data directory outside /usr, /etc, /lib, /bin, /opt/toolsmith "
                "(a subdirectory of /tmp or /work is fine)",
            )
    return path


def _write_path(cap: str, path: str) -> str:
    path = _normal(cap, path)
    if not any(_within(path, place) for place in TMPFS):
        raise PolicyError(
            f"capability {cap!r} asks to write {path} on the host; host paths are never "
            "mounted writable",
            hint="write under /tmp or /work (the container's own tmpfs) and return the data",
        )
    return path


def _env_name(cap: str, name: str) -> str:
    if name in ENV_RESERVED or name.startswith(ENV_RESERVED_PREFIXES):
        raise PolicyError(
            f"capability {cap!r} names a variable the sandbox sets itself",
            hint="pass the value under another name, e.g. env:MY_TOOL_" + name,
        )
    return name
