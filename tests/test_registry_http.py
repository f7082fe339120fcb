"""A registry served over HTTP: a real ``http.server`` on loopback serving the registry directory as
static files (as any web server or object store would), read through python-tuf's ngclient with a
local cache; including a server that serves old, mixed or oversized metadata."""

from __future__ import annotations

import functools
import shutil
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.test_registry_support import (
    code_for,
    holder_files,
    make_spec,
    passing_report,
    provenance,
)
from toolsmith.errors import (
    MetadataTooLargeError,
    MixAndMatchError,
    RegistryUnavailableError,
    RollbackError,
    UntrustedRegistryError,
    UsageError,
)
from toolsmith.registry import Registry, trust_registry
from toolsmith.registry._client import DEADLINE_ENV, download_deadline_s


class Handler(SimpleHTTPRequestHandler):
    """Static files, except paths the test overrides (what a hostile server sends instead)."""

    overrides: dict[str, bytes] = {}  # noqa: RUF012  (set per server class below)
    requests: list[str] = []  # noqa: RUF012
    drips: set[str] = set()  # noqa: RUF012

    def do_GET(self) -> None:
        self.requests.append(self.path)
        if self.path in self.drips:
            self._drip()
            return
        body = self.overrides.get(self.path)
        if body is None:
            super().do_GET()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _drip(self) -> None:
        """200, then one byte every 0.2 s until the client goes: never idle long enough for a
        per-read timeout, never over a size cap (the slow-retrieval attack)."""
        import time

        self.send_response(200)
        self.end_headers()
        try:
            while True:
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.2)
        except OSError:
            pass

    def log_message(self, format: str, *args: object) -> None:
        pass


class Served:
    def __init__(self, root: Path) -> None:
        handler = type("H", (Handler,), {"overrides": {}, "requests": [], "drips": set()})
        self.handler = handler
        self.server = ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(handler, directory=str(root))
        )
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def override(self, path: str, body: bytes) -> None:
        self.handler.overrides[path] = body

    def drip(self, path: str) -> None:
        self.handler.drips.add(path)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def origin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Registry:
    """The maintainer's registry (in a home of its own), with add_ints 1.0.0."""
    monkeypatch.setenv("TOOLSMITH_HOME", str(tmp_path / "maintainer"))
    reg = Registry(tmp_path / "origin")
    reg.publish(make_spec(), code_for("add_ints"), passing_report(), provenance(), version="1.0.0")
    monkeypatch.setenv("TOOLSMITH_HOME", str(tmp_path / "consumer"))
    return reg


@pytest.fixture
def served(origin: Registry) -> Iterator[Served]:
    assert isinstance(origin.path, Path)
    s = Served(origin.path)
    yield s
    s.close()


def as_maintainer(origin: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLSMITH_HOME", str(tmp_path / "maintainer"))


def test_load_from_a_served_registry_end_to_end(
    origin: Registry, served: Served, tmp_path: Path
) -> None:
    """Untrusted until pinned by fingerprint; then listed, resolved and called; a second
    consumer object reads the targets from the local cache, not the server."""
    with pytest.raises(UntrustedRegistryError, match="registry trust"):
        Registry(served.url).list()
    trust_registry(served.url, origin.fingerprint())
    reg = Registry(served.url)
    assert [r.name for r in reg.list()] == ["add_ints"]
    with reg.load("add_ints@^1", runtime="restricted") as tool:
        assert tool(a=2, b=40) == 42
    fetched = [p for p in served.handler.requests if p.startswith("/targets/")]
    assert len(fetched) == 5  # the statement and its four parts, once
    Registry(served.url).resolve("add_ints")
    assert [p for p in served.handler.requests if p.startswith("/targets/")] == fetched
    assert not (tmp_path / "origin" / "audit.jsonl").read_text().count('"load"')


def test_a_served_registry_is_read_only(origin: Registry, served: Served) -> None:
    trust_registry(served.url, origin.fingerprint())
    with pytest.raises(UsageError, match="read-only"):
        Registry(served.url).yank("add_ints@1.0.0", "no")


def test_updates_and_yanks_reach_the_consumer(
    origin: Registry, served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trust_registry(served.url, origin.fingerprint())
    assert Registry(served.url).resolve("add_ints").version == "1.0.0"
    monkeypatch.setenv("TOOLSMITH_HOME", str(tmp_path / "maintainer"))
    origin.publish(
        make_spec(), code_for("add_ints", "b + a"), passing_report(), provenance(), version="1.1.0"
    )
    origin.yank("add_ints@1.0.0", "superseded")
    monkeypatch.setenv("TOOLSMITH_HOME", str(tmp_path / "consumer"))
    reg = Registry(served.url)
    assert reg.resolve("add_ints").version == "1.1.0"
    assert reg.find("add_ints@1.0.0").yanked


def test_a_server_serving_an_old_state_is_a_rollback(
    origin: Registry, served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server keeps handing out yesterday's timestamp (hiding a yank): refused."""
    assert isinstance(origin.path, Path)
    old = (origin.path / "metadata" / "timestamp.json").read_bytes()
    monkeypatch.setenv("TOOLSMITH_HOME", str(tmp_path / "maintainer"))
    origin.yank("add_ints@1.0.0", "vulnerable")
    monkeypatch.setenv("TOOLSMITH_HOME", str(tmp_path / "consumer"))
    trust_registry(served.url, origin.fingerprint())
    assert Registry(served.url).find("add_ints@1.0.0").yanked
    served.override("/metadata/timestamp.json", old)
    with pytest.raises(RollbackError, match="rollback"):
        Registry(served.url).find("add_ints@1.0.0")


def test_a_server_mixing_states_is_refused(
    origin: Registry, served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The current snapshot served with the previous bin's content under the new name."""
    assert isinstance(origin.path, Path)
    monkeypatch.setenv("TOOLSMITH_HOME", str(tmp_path / "maintainer"))
    origin.yank("add_ints@1.0.0", "vulnerable")
    monkeypatch.setenv("TOOLSMITH_HOME", str(tmp_path / "consumer"))
    _, files = holder_files(origin)
    served.override(f"/metadata/{files[-1].name}", files[-2].read_bytes())
    trust_registry(served.url, origin.fingerprint())
    with pytest.raises(MixAndMatchError, match="mix-and-match"):
        Registry(served.url).list()


@pytest.mark.parametrize("role", ["timestamp", "snapshot"])
def test_a_server_sending_endless_metadata_is_cut_off(
    origin: Registry, served: Served, role: str
) -> None:
    """Megabytes where a small metadata file should be: the download stops at the cap."""
    import json

    assert isinstance(origin.path, Path)
    timestamp = json.loads((origin.path / "metadata" / "timestamp.json").read_bytes())
    version = timestamp["signed"]["meta"]["snapshot.json"]["version"]
    name = "timestamp.json" if role == "timestamp" else f"{version}.snapshot.json"
    trust_registry(served.url, origin.fingerprint())
    served.override(f"/metadata/{name}", b"{" + b" " * 3_000_000)
    with pytest.raises(MetadataTooLargeError, match="size cap"):
        Registry(served.url).list()


def test_a_server_dripping_metadata_hits_the_download_deadline(
    origin: Registry, served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slow retrieval: timestamp.json one byte at a time, forever. The refresh gives up at the
    overall deadline (made short here) naming the URL and the setting, not at the gap timeout."""
    trust_registry(served.url, origin.fingerprint())
    monkeypatch.setenv(DEADLINE_ENV, "1.5")
    served.drip("/metadata/timestamp.json")
    with pytest.raises(RegistryUnavailableError, match=r"did not arrive within 1\.5 s") as raised:
        Registry(served.url).list()
    assert f"{served.url}/metadata/timestamp.json" in raised.value.message
    assert DEADLINE_ENV in raised.value.message


def test_trusting_a_dripping_server_hits_the_download_deadline(
    origin: Registry, served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`registry trust URL`'s first fetch (metadata/1.root.json) is bounded the same way."""
    monkeypatch.setenv(DEADLINE_ENV, "1.5")
    served.drip("/metadata/1.root.json")
    with pytest.raises(RegistryUnavailableError, match="slow-retrieval"):
        trust_registry(served.url, origin.fingerprint())


def test_the_download_deadline_follows_the_size_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEADLINE_ENV, raising=False)
    assert download_deadline_s(16_384) < download_deadline_s(512_000) < 60
    monkeypatch.setenv(DEADLINE_ENV, "soon")
    with pytest.raises(UsageError, match=DEADLINE_ENV):
        download_deadline_s(16_384)


def test_an_unreachable_registry_is_a_clear_error(origin: Registry, served: Served) -> None:
    trust_registry(served.url, origin.fingerprint())
    Registry(served.url).list()
    served.close()
    with pytest.raises(RegistryUnavailableError, match="check the registry URL"):
        Registry(served.url).list()


def test_cli_runs_a_tool_from_a_served_registry(
    origin: Registry, served: Served, tmp_path: Path
) -> None:
    """`toolsmith registry trust URL --root FP` then `toolsmith run NAME --registry URL`."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "TOOLSMITH_HOME": str(tmp_path / "cli")}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", "from toolsmith.cli import main; main()", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )

    trusted = cli("registry", "trust", served.url, "--root", origin.fingerprint())
    assert trusted.returncode == 0, trusted.stderr
    ran = cli(
        "run",
        "add_ints",
        "--args-json",
        '{"a": 1, "b": 2}',
        "--registry",
        served.url,
        "--runtime",
        "restricted",
        "--json",
    )
    assert ran.returncode == 0, ran.stderr
    assert "3" in ran.stdout
    shutil.rmtree(tmp_path / "cli" / "state" / "registries")
    again = cli("registry", "list", "--registry", served.url)
    assert again.returncode == 4 and "UntrustedRegistryError" in again.stderr


def test_mcp_server_serves_a_served_registry(
    origin: Registry, served: Served, tmp_path: Path
) -> None:
    """`toolsmith mcp serve --registry URL` lists and calls the served registry's tools (a real
    MCP client over stdio)."""
    import os
    import sys

    import anyio
    from mcp.client.client import Client
    from mcp.client.stdio import StdioServerParameters, stdio_client

    trust_registry(served.url, origin.fingerprint())
    params = StdioServerParameters(
        command=sys.executable,
        args=[
            "-c",
            "from toolsmith.cli.mcp import app; app()",
            "serve",
            "--registry",
            served.url,
            "--runtime",
            "restricted",
        ],
        env={"TOOLSMITH_HOME": os.environ["TOOLSMITH_HOME"]},
    )

    async def main() -> tuple[list[str], str]:
        with open(os.devnull, "w") as err:
            async with Client(stdio_client(params, errlog=err), read_timeout_seconds=60) as client:
                listed = await client.list_tools()
                result = await client.call_tool("add_ints", {"a": 20, "b": 22})
                return [t.name for t in listed.tools], result.content[0].text  # type: ignore[union-attr]

    assert anyio.run(main) == (["add_ints"], "42")
