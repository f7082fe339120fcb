"""What a tool's container may use at run time: exactly what its spec declares, nothing more.

``Grants.from_capabilities`` is pure (no disk, no Docker): it parses the capabilities and refuses
the ones no container should ever get, with a ``PolicyError`` naming the capability and the fix.
``containers.create_attached`` turns grants into container settings, the same way for sandbox jobs
and for docker-runtime workers:

- ``network:<host>[:<port>]``: an egress proxy that forwards only to the declared host and ports
  (443 and 80 when none is given); the tool's container sits on an internal network with no route
  out, so the proxy is the only way off it. Without the capability: ``network_mode=none``.
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
    """One host and port the egress proxy forwards to."""

    host: str
    port: int

    def __str__(self) -> str:
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
    host, _, port_text = rest.partition(":")
    host = host.lower().rstrip(".")
    labels = host.split(".")
    bad_label = any(not _LABEL.fullmatch(label) for label in labels)
    if not host or bad_label or (port_text and not port_text.isdigit()):
        raise PolicyError(
            f"capability {cap!r} does not name a valid host",
            hint="declare network:<host> or network:<host>:<port>, e.g. network:api.example.com",
        )
    if not port_text:
        return [Endpoint(host, port) for port in DEFAULT_PORTS]
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise PolicyError(
            f"capability {cap!r} names port {port}, outside 1-65535", hint="declare a real port"
        )
    return [Endpoint(host, port)]


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
