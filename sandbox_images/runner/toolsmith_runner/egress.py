"""The egress proxy, run as ``python3 -P -s -m toolsmith_runner.egress ARGS``.

ARGS: ``SUBNET [--refuse=IP]... HOST:PORT...``. Runs in its own hardened container, attached to
the tool's internal network (no route out) and to one upstream network. It is the only way off
the internal network, and it forwards only to the HOST:PORT pairs on its command line: HTTP
CONNECT (for HTTPS) and absolute-URI HTTP requests. Everything else gets ``403`` and a
``refused`` line on stderr. It serves only clients from SUBNET (the internal network), not others
on the upstream side. Ready once it prints READY.

Where a connection goes is decided here, at connect time, and the address checked is the address
connected to (never resolved twice, so a DNS answer that changes in between, "DNS rebinding",
gains nothing):

- a granted *name* is resolved by the proxy, and every address it resolves to must be public
  (``addresses.refusal``); one private, loopback, link-local, shared-NAT or otherwise non-public
  answer refuses the request, naming the address and the IP-literal grant that would allow it;
- a granted *IP literal* (``10.0.0.5``, ``fd00::1``) is connected to as written, unless it is the
  proxy's own machine (``addresses.host_self``), one of the ``--refuse`` addresses (the Docker
  networks' gateways, i.e. the Docker host) or the proxy's own address.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import sys
from urllib.parse import urlsplit

from toolsmith_runner import READY
from toolsmith_runner.addresses import Address, host_self, refusal, unwrap
from toolsmith_runner.imports import lock

PORT = 3128
HEAD_LIMIT = 64 * 1024
CONNECT_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = 300.0


def note(*words: object) -> None:
    print("egress", *words, file=sys.stderr, flush=True)


class Refused(Exception):
    """A declared destination this proxy still never connects to; the message says why."""


def literal(host: str) -> Address | None:
    """``host`` (brackets stripped) as an IP address, or None for a name."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def canonical(host: str) -> str:
    """The one spelling a grant and a request are compared in: an IP address compressed, a name
    lower-cased without its trailing dot."""
    ip = literal(host)
    return str(ip) if ip is not None else host.lower().rstrip(".")


def grant_for(ip: Address, port: int) -> str:
    return f"network:[{ip}]:{port}" if ip.version == 6 else f"network:{ip}:{port}"


class Proxy:
    def __init__(
        self,
        clients: ipaddress.IPv4Network,
        allowed: set[tuple[str, int]],
        refused: frozenset[Address] = frozenset(),
    ) -> None:
        self.clients = clients
        self.allowed = allowed
        self.refused = refused

    def permits(self, host: str, port: int) -> bool:
        return (canonical(host), port) in self.allowed

    async def destinations(self, host: str, port: int) -> list[Address]:
        """The addresses to try for a declared ``host``, each checked; Refused (or OSError when
        the name does not resolve) otherwise."""
        ip = literal(host)
        if ip is not None:
            target = unwrap(ip)
            why = host_self(target)
            if why is None and target in self.refused:
                why = f"{target} is a Docker network's gateway, i.e. the Docker host itself"
            if why is not None:
                raise Refused(f"{host}:{port} is never reached: {why}")
            return [target]
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        found: list[Address] = []
        for info in infos:
            address = ipaddress.ip_address(str(info[4][0]).partition("%")[0])
            why = refusal(address)
            if why is not None and host_self(address) is not None:
                raise Refused(f"{host} resolves to {why}; the proxy's own machine is never reached")
            if why is not None:
                raise Refused(
                    f"{host} resolves to {why}; a granted name reaches public addresses only "
                    f"(declare {grant_for(unwrap(address), port)} if that host is meant)"
                )
            if unwrap(address) not in found:
                found.append(unwrap(address))
        return found

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")[0]
        if ipaddress.ip_address(peer) not in self.clients:
            note("refused", "client", peer, "is not on the tool's network")
            writer.close()
            return
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), CONNECT_TIMEOUT_S)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
            writer.close()
            return
        try:
            await self.dispatch(head, reader, writer)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(OSError):
                writer.close()

    async def dispatch(
        self, head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        request_line, _, rest = head.partition(b"\r\n")
        parts = request_line.decode("latin-1").split(" ")
        if len(parts) != 3:
            await self.refuse(writer, 400, "malformed request line")
            return
        method, target, version = parts
        if method == "CONNECT":
            host, _, port_text = target.rpartition(":")
            host = host.strip("[]")
            port = int(port_text) if port_text.isdigit() else 0
            if not self.permits(host, port):
                await self.refuse(writer, 403, f"{host}:{port} is not declared")
                return
            upstream = await self.open(host, port, writer)
            if upstream is None:
                return
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await self.pipe(reader, writer, *upstream)
            return
        url = urlsplit(target)
        if url.scheme != "http" or not url.hostname:
            await self.refuse(writer, 400, f"{method} {target[:200]} is not an absolute http URL")
            return
        port = url.port or 80
        if not self.permits(url.hostname, port):
            await self.refuse(writer, 403, f"{url.hostname}:{port} is not declared")
            return
        upstream = await self.open(url.hostname, port, writer)
        if upstream is None:
            return
        path = url.path or "/"
        if url.query:
            path += "?" + url.query
        headers = [
            line
            for line in rest.split(b"\r\n")
            if line and not line.lower().startswith((b"proxy-", b"connection:"))
        ]
        up_reader, up_writer = upstream
        up_writer.write(
            f"{method} {path} {version}\r\n".encode("latin-1")
            + b"".join(line + b"\r\n" for line in headers)
            + b"Connection: close\r\n\r\n"
        )
        await self.pipe(reader, writer, up_reader, up_writer)

    async def open(
        self, host: str, port: int, writer: asyncio.StreamWriter
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        try:
            targets = await asyncio.wait_for(self.destinations(host, port), CONNECT_TIMEOUT_S)
        except Refused as e:
            await self.refuse(writer, 403, str(e))
            return None
        except (OSError, TimeoutError) as e:
            await self.refuse(writer, 502, f"{host} does not resolve ({type(e).__name__})")
            return None
        failure = "no address"
        for target in targets:
            try:
                up_reader, up_writer = await asyncio.wait_for(
                    asyncio.open_connection(str(target), port), CONNECT_TIMEOUT_S
                )
            except (OSError, TimeoutError) as e:
                failure = type(e).__name__
                continue
            local = ipaddress.ip_address(up_writer.get_extra_info("sockname")[0])
            if unwrap(local) == target:
                up_writer.close()
                await self.refuse(writer, 403, f"{host}:{port} is the egress proxy itself")
                return None
            return up_reader, up_writer
        await self.refuse(writer, 502, f"{host}:{port} unreachable ({failure})")
        return None

    async def refuse(self, writer: asyncio.StreamWriter, status: int, why: str) -> None:
        note("refused" if status == 403 else "failed", status, why)
        body = f"toolsmith egress proxy: {why}\n".encode()
        reason = {400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway"}[status]
        writer.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        with contextlib.suppress(OSError):
            await writer.drain()

    async def pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while chunk := await asyncio.wait_for(src.read(65536), IDLE_TIMEOUT_S):
                    dst.write(chunk)
                    await dst.drain()
            except (OSError, TimeoutError):
                pass
            finally:
                with contextlib.suppress(OSError):
                    dst.close()

        await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))


def parse_allowed(args: list[str]) -> set[tuple[str, int]]:
    allowed = set()
    for arg in args:
        if not arg.startswith("--refuse="):
            host, _, port = arg.rpartition(":")
            allowed.add((canonical(host), int(port)))
    return allowed


def parse_refused(args: list[str]) -> frozenset[Address]:
    return frozenset(
        unwrap(ipaddress.ip_address(arg.removeprefix("--refuse=")))
        for arg in args
        if arg.startswith("--refuse=")
    )


async def main(args: list[str]) -> None:
    proxy = Proxy(ipaddress.IPv4Network(args[0]), parse_allowed(args[1:]), parse_refused(args[1:]))
    server = await asyncio.start_server(proxy.handle, "0.0.0.0", PORT, limit=HEAD_LIMIT)
    note("allowing", *sorted(f"{h}:{p}" for h, p in proxy.allowed))
    sys.stdout.buffer.write(READY)
    sys.stdout.flush()
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    lock()
    asyncio.run(main(sys.argv[1:]))
