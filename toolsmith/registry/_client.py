"""The consumer's side of a registry: a pinned root and python-tuf's ngclient.

Each consumer (this user: library, CLI and MCP server alike) keeps, per registry location, its own
trusted metadata under ``$TOOLSMITH_STATE`` (default ``$TOOLSMITH_HOME/state``, else the per-user
state dir): ``registries/<sha256 of the location>/metadata`` (the pinned root's history and the
last timestamp, snapshot, targets, approvers, tools and bins it trusted) and ``targets`` (a cache
of a served registry's target files). Nothing in the registry directory can change what is
trusted: the root moves only by TUF's rotation rules (each new root signed by the old root's
threshold), and ngclient refuses rollback, freeze and mix-and-match against the versions kept
here.

A local registry is read through ``_LocalFetcher`` (from its storage, with the same size-capped
reads as the writer), a served one over HTTP by ngclient's own fetcher; both go through the same
``Updater``.
Every python-tuf exception is mapped here to toolsmith's errors, naming the attack and the fix.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlparse

import urllib3
from tuf.api import exceptions as tuf_exc
from tuf.api.metadata import Metadata, Root, SuccinctRoles, TargetFile, Targets
from tuf.ngclient import FetcherInterface, Updater, UpdaterConfig, Urllib3Fetcher

from toolsmith.errors import (
    CorruptRegistryError,
    FreezeError,
    MetadataTooLargeError,
    MixAndMatchError,
    RegistryError,
    RegistryUnavailableError,
    RollbackError,
    SignatureError,
    ToolsmithError,
    TrustError,
    UntrustedRegistryError,
)
from toolsmith.files import atomic_write
from toolsmith.registry._models import VersionRecord
from toolsmith.registry._repository import MAX_METADATA, TOOLS, bin_of, tool_name
from toolsmith.registry._storage import RegistryStorage
from toolsmith.settings import Settings

DEADLINE_ENV = "TOOLSMITH_DOWNLOAD_DEADLINE_S"  # the knob's variable, named in the error
MAX_TARGET = 64 * 1024 * 1024
# A served file's overall deadline: this much, plus its size cap at this rate (a 512 kB root
# gets 30 s, a 16 kB timestamp 20 s); [registry] download_deadline_s sets one total instead.
DEADLINE_FLOOR_S = 20.0
MIN_RATE_BYTES_S = 50_000
_LOCAL_SCHEME = "toolsmith-local"


def state_root() -> Path:
    """``$TOOLSMITH_STATE``, else ``$TOOLSMITH_HOME/state``, else the per-user state dir."""
    return Settings.load().paths.state_root


def is_url(location: str | os.PathLike[str]) -> bool:
    return isinstance(location, str) and location.startswith(("http://", "https://"))


def fingerprint(root_bytes: bytes) -> str:
    """A registry's fingerprint: sha256 of its first root metadata (``metadata/1.root.json``)."""
    return hashlib.sha256(root_bytes).hexdigest()


class _LocalFetcher(FetcherInterface):
    """ngclient's downloads served from a local registry's storage (a directory: never
    following a link)."""

    def __init__(self, repo: RegistryStorage) -> None:
        self._repo = repo

    def _fetch(self, url: str) -> Iterator[bytes]:
        rel = unquote(urlparse(url).path).lstrip("/")
        role = rel.rsplit("/", 1)[-1].rsplit(".", 2)[-2] if rel.startswith("metadata/") else ""
        cap = MAX_METADATA.get(role, MAX_METADATA["targets"]) if role else MAX_TARGET
        try:
            data = self._repo.read(rel, cap)
        except MetadataTooLargeError as e:
            raise tuf_exc.DownloadLengthMismatchError(e.message) from e
        if data is None:
            raise tuf_exc.DownloadHTTPError(f"{rel} not found", 404)
        return iter((data,))


def download_deadline_s(max_length: int) -> float:
    """Seconds a served file of at most ``max_length`` bytes may take in all: the floor plus the
    cap at the minimum rate, or ``[registry] download_deadline_s``
    (``$TOOLSMITH_DOWNLOAD_DEADLINE_S``) when set."""
    configured = Settings.load().registry.download_deadline_s
    if configured is None:
        return DEADLINE_FLOOR_S + max_length / MIN_RATE_BYTES_S
    return configured


class _Deadline:
    """One download's overall deadline: when it passes, the sockets the download uses are shut
    down, so a read blocked on a server that drips bytes (never idle long enough for the
    per-read timeout: a slow-retrieval attack) returns at once."""

    current = threading.local()

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def watch(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            if not self.expired:
                return
        self._shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    def start(self) -> None:
        self._timer.start()

    def cancel(self) -> None:
        self._timer.cancel()


class _Watched:
    """A connection whose socket the running download's deadline can shut down."""

    def getresponse(self) -> Any:
        deadline = getattr(_Deadline.current, "deadline", None)
        if deadline is not None:
            deadline.watch(self.sock)  # type: ignore[attr-defined]
        return super().getresponse()  # type: ignore[misc]


class _WatchedHTTP(_Watched, urllib3.HTTPConnectionPool.ConnectionCls):  # type: ignore[misc,valid-type]
    pass


class _WatchedHTTPS(_Watched, urllib3.HTTPSConnectionPool.ConnectionCls):  # type: ignore[misc,valid-type]
    pass


class _WatchedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTP


class _WatchedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPS


class DeadlineFetcher(Urllib3Fetcher):
    """ngclient's urllib3 fetcher with an overall deadline per file (``download_deadline_s`` of
    the size cap), not only urllib3's gap between two reads: TUF's slow-retrieval attack.
    Past it: ``SlowRetrievalError``, which toolsmith reports as RegistryUnavailableError."""

    def __init__(self) -> None:
        super().__init__()
        self._max_length = threading.local()
        manager = self._proxy_env.get_pool_manager
        classes = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}

        def watched_manager(scheme: str | None, host: str | None) -> Any:
            pools = manager(scheme, host)
            pools.pool_classes_by_scheme = classes
            return pools

        self._proxy_env.get_pool_manager = watched_manager  # type: ignore[method-assign]

    @contextlib.contextmanager
    def download_file(self, url: str, max_length: int) -> Iterator[IO[bytes]]:
        self._max_length.value = max_length
        with super().download_file(url, max_length) as f:
            yield f

    def _fetch(self, url: str) -> Iterator[bytes]:
        seconds = download_deadline_s(getattr(self._max_length, "value", MAX_TARGET))
        deadline = _Deadline(seconds)
        deadline.start()
        _Deadline.current.deadline = deadline
        try:
            chunks = super()._fetch(url)
        except BaseException as e:
            deadline.cancel()
            if deadline.expired:
                raise self._too_slow(url, seconds) from e
            raise
        finally:
            _Deadline.current.deadline = None
        return self._bounded(chunks, deadline, url)

    def _bounded(self, chunks: Iterator[bytes], deadline: _Deadline, url: str) -> Iterator[bytes]:
        try:
            yield from chunks
        except Exception as e:
            if deadline.expired:
                raise self._too_slow(url, deadline.seconds) from e
            raise
        finally:
            deadline.cancel()
        if deadline.expired:  # a shut socket can read as a clean end of the body
            raise self._too_slow(url, deadline.seconds)

    @staticmethod
    def _too_slow(url: str, seconds: float) -> tuf_exc.SlowRetrievalError:
        return tuf_exc.SlowRetrievalError(
            f"{url} did not arrive within {seconds:g} s (slow-retrieval attack, or a very slow "
            f"link; ${DEADLINE_ENV} or [registry] download_deadline_s sets the deadline)"
        )


def _attack(e: Exception, where: str) -> ToolsmithError:
    """python-tuf's verdict as toolsmith's error: which attack it looks like and what to do."""
    fix_state = (
        "do not use this registry copy; ask its maintainer, or point at a good copy (the "
        "consumer state kept the last good metadata and is unchanged)"
    )
    msg = str(e)
    if isinstance(e, tuf_exc.DownloadLengthMismatchError):
        return MetadataTooLargeError(
            f"{where}: metadata is over its size cap (endless-data attack?): {msg}", hint=fix_state
        )
    if isinstance(e, tuf_exc.ExpiredMetadataError):
        return FreezeError(
            f"{where}: {msg} (freeze attack: an old registry state is being served, or its "
            "maintainer has not refreshed it)",
            hint="ask the maintainer to run `toolsmith registry refresh`, or use a current copy",
        )
    # "must be >= N" (timestamp, snapshot) and "Expected targets.json version N, got M."
    # (a snapshot naming an older targets than the trusted one) are rollbacks; other version
    # mismatches are states mixed together.
    if isinstance(e, tuf_exc.BadVersionNumberError) and (
        "must be >=" in msg or re.fullmatch(r"Expected \S+\.json version \d+, got \d+\.", msg)
    ):
        return RollbackError(
            f"{where}: {msg} (rollback attack: older metadata than this consumer already trusted)",
            hint=fix_state,
        )
    if isinstance(e, tuf_exc.BadVersionNumberError | tuf_exc.LengthOrHashMismatchError) or (
        isinstance(e, tuf_exc.RepositoryError) and "missing info" in msg
    ):
        return MixAndMatchError(
            f"{where}: {msg} (mix-and-match: metadata of different registry states served "
            "together, or a file was altered)",
            hint=fix_state,
        )
    if isinstance(e, tuf_exc.UnsignedMetadataError):
        return SignatureError(
            f"{where}: {msg} (metadata not signed by the keys the pinned root trusts)",
            hint=fix_state,
        )
    if isinstance(e, tuf_exc.DownloadError):
        cause = e.__cause__
        if isinstance(cause, ToolsmithError):
            return cause
        return RegistryUnavailableError(
            f"{where}: {msg}" + (f" ({cause})" if cause else ""),
            hint="check the registry URL and the network, then try again",
        )
    if isinstance(e, tuf_exc.RepositoryError):
        return TrustError(f"{where}: metadata does not verify: {msg}", hint=fix_state)
    if isinstance(e, OSError):
        return RegistryError(
            f"{where}: cannot use the consumer state: {e.strerror or e}",
            hint=f"check {state_root()} and its permissions",
        )
    return CorruptRegistryError(f"{where}: {type(e).__name__}: {msg}", hint=fix_state)


class Consumer:
    """This user's trust in one registry location (a directory or an http(s) URL)."""

    def __init__(self, location: str, repo: RegistryStorage | None) -> None:
        self.location = location
        self._repo = repo
        key = hashlib.sha256(location.encode()).hexdigest()[:32]
        self.dir = state_root() / "registries" / key
        self.metadata_dir = self.dir / "metadata"
        self.targets_dir = self.dir / "targets"

    def pinned(self) -> bool:
        return (self.metadata_dir / "root.json").exists()

    @property
    def _approvers_file(self) -> Path:
        return self.dir / "approvers.json"

    def approvers(self) -> list[str] | None:
        """The key ids this consumer accepts approvals from for this registry (None: the
        registry's approvers role, as its signed metadata names it)."""
        try:
            data = json.loads(self._approvers_file.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise RegistryError(
                f"cannot read {self._approvers_file}: {e}",
                hint="fix or delete it (`toolsmith registry approvers --clear`)",
            ) from None
        if not isinstance(data, list) or not all(isinstance(k, str) for k in data):
            raise RegistryError(
                f"{self._approvers_file} is not a list of key ids",
                hint="fix or delete it (`toolsmith registry approvers --clear`)",
            )
        return data

    def set_approvers(self, key_ids: list[str] | None) -> None:
        if key_ids is None:
            self._approvers_file.unlink(missing_ok=True)
            return
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(self._approvers_file, json.dumps(sorted(set(key_ids))).encode())

    def pin(self, root_bytes: bytes) -> None:
        """Trust ``root_bytes`` as this registry's root from now on (TUF's bootstrap)."""
        try:
            Metadata[Root].from_bytes(root_bytes)
        except Exception as e:
            raise TrustError(f"{self.location}: not a TUF root: {e}") from None
        try:
            self.metadata_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            for old in self.metadata_dir.glob("*.json"):
                old.unlink()
            self.updater(bootstrap=root_bytes)
        except OSError as e:
            raise _attack(e, self.location) from None

    def untrusted(self) -> UntrustedRegistryError:
        return UntrustedRegistryError(
            f"registry {self.location} is not trusted by this user: no root of it is pinned "
            f"(in {state_root()})",
            hint=f"get its fingerprint from its maintainer (`toolsmith registry fingerprint "
            f"--registry {self.location}`) and run `toolsmith registry trust {self.location} "
            "--root SHA256`",
        )

    def fetch_first_root(self) -> bytes:
        """A served registry's ``metadata/1.root.json`` (to compare with a fingerprint)."""
        try:
            return DeadlineFetcher().download_bytes(
                self.location.rstrip("/") + "/metadata/1.root.json", MAX_METADATA["root"]
            )
        except tuf_exc.DownloadError as e:
            raise _attack(e, self.location) from None

    def updater(self, *, bootstrap: bytes | None = None) -> Updater:
        if bootstrap is None and not self.pinned():
            raise self.untrusted()
        if self._repo is not None:
            base = f"{_LOCAL_SCHEME}:///"
            fetcher: FetcherInterface | None = _LocalFetcher(self._repo)
        else:
            base = self.location.rstrip("/") + "/"
            fetcher = DeadlineFetcher()
        config = UpdaterConfig(
            root_max_length=MAX_METADATA["root"],
            timestamp_max_length=MAX_METADATA["timestamp"],
            snapshot_max_length=MAX_METADATA["snapshot"],
            targets_max_length=MAX_METADATA["targets"],
        )
        self.targets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            return Updater(
                str(self.metadata_dir),
                base + "metadata/",
                str(self.targets_dir),
                base + "targets/",
                fetcher,
                config,
                bootstrap=bootstrap,
            )
        except tuf_exc.RepositoryError as e:
            if bootstrap is not None:
                raise _attack(e, self.location) from None
            # Without a bootstrap only this consumer's own pinned root is read here: it is what
            # is damaged, not the registry.
            raise TrustError(
                f"{self.location}: this consumer's pinned root "
                f"({self.metadata_dir / 'root.json'}) is damaged: {e}",
                hint=f"pin the registry again: `toolsmith registry trust {self.location} "
                "--root <its root fingerprint, from the maintainer>`",
            ) from None
        except OSError as e:
            raise _attack(e, self.location) from None


class View:
    """One verified state of a registry, as this consumer's ngclient accepted it."""

    def __init__(self, consumer: Consumer, updater: Updater) -> None:
        self.consumer = consumer
        self.updater = updater
        # Filled by the Registry: every tool's records, and those of tools read one by one.
        self.records: dict[str, list[VersionRecord]] | None = None
        self.tool_records: dict[str, list[VersionRecord]] = {}
        self._checked: dict[str, dict[str, TargetFile]] = {}
        try:
            updater.refresh()
        except Exception as e:
            raise _attack(e, consumer.location) from None
        # ngclient keeps the verified metadata in its trusted set; it offers no listing call,
        # and listing every tool needs the whole targets role.
        self._trusted = updater._trusted_set

    @property
    def root(self) -> Root:
        return self._trusted.root

    @property
    def targets(self) -> Targets:
        return self._trusted.targets

    @property
    def timestamp_version(self) -> int:
        return self._trusted.timestamp.version

    def has_role(self, role: str) -> bool:
        return f"{role}.json" in self._trusted.snapshot.meta

    @functools.cached_property
    def bins(self) -> SuccinctRoles | None:
        """The registry's hashed bins (None: the flat layout, every version in ``targets``)."""
        delegations = self.targets.delegations
        if delegations is None or delegations.roles is None or TOOLS not in delegations.roles:
            return None
        tools = self.delegated(TOOLS)
        succinct = tools.delegations.succinct_roles if tools and tools.delegations else None
        if succinct is None:
            raise TrustError(
                f"{self.consumer.location}: the {TOOLS} role delegates to no hashed bins",
                hint="do not use this registry copy; ask its maintainer",
            )
        return succinct

    def tool_targets(self, name: str) -> dict[str, TargetFile]:
        """Every verified target of tool ``name`` (by path): from its bin alone (fetched on
        first use), or from ``targets`` in the flat layout."""
        prefix = f"tools/{name}/"
        if self.bins is None:
            return {p: t for p, t in self.targets.targets.items() if p.startswith(prefix)}
        return {
            p: t
            for p, t in self.bin_targets(bin_of(self.bins, name)).items()
            if p.startswith(prefix)
        }

    def all_tool_targets(self) -> dict[str, TargetFile]:
        """Every verified tool target of the registry (fetches every bin not cached)."""
        if self.bins is None:
            return {p: t for p, t in self.targets.targets.items() if tool_name(p)}
        out: dict[str, TargetFile] = {}
        for meta in self._trusted.snapshot.meta:  # the bins there are (2**32 could be named)
            role = meta.removesuffix(".json")
            if self.bins.is_delegated_role(role):
                out |= self.bin_targets(role)
        return out

    def bin_targets(self, role: str) -> dict[str, TargetFile]:
        """One bin's targets, verified by ngclient (signed by the publishers' threshold, the
        version the snapshot names) and checked here to hold only its own tools' targets."""
        if role in self._checked:
            return self._checked[role]
        bins = self.bins  # loads the tools role, the bins' delegator
        if bins is None or not bins.is_delegated_role(role):
            raise TrustError(
                f"{self.consumer.location}: {role} is not one of this registry's bins",
                hint="do not use this registry copy; ask its maintainer",
            )
        if self.targets.targets:
            raise TrustError(
                f"{self.consumer.location}: the top-level targets lists "
                f"{next(iter(self.targets.targets))}, but this registry keeps versions in bins",
                hint="do not use this registry copy; ask its maintainer",
            )
        md = self.delegated(role, TOOLS)
        targets = md.targets if md is not None else {}
        placed: dict[str, str] = {}  # a tool's bin, hashed once for its many targets
        for path in targets:
            name = tool_name(path)
            if name is not None and name not in placed:
                placed[name] = bin_of(bins, name)
            if name is None or placed[name] != role:
                raise TrustError(
                    f"{self.consumer.location}: {path} is listed in bin {role}, but "
                    + (
                        f"tool {name}'s targets belong in bin {bin_of(bins, name)}"
                        if name
                        else "it is not a tool target"
                    )
                    + " (a target in the wrong bin: an attack, or a broken publisher)",
                    hint="do not use this registry copy; ask its maintainer",
                )
        self._checked[role] = targets
        return targets

    def delegated(self, role: str, parent: str = "targets") -> Targets | None:
        """A role delegated by ``parent``: its verified metadata (fetched on first use), or
        None if the registry has none yet."""
        if not self.has_role(role):
            return None
        try:
            return self.updater._load_targets(role, parent)
        except Exception as e:
            raise _attack(e, self.consumer.location) from None

    def targetinfo(self, path: str) -> TargetFile | None:
        try:
            return self.updater.get_targetinfo(path)
        except Exception as e:
            raise _attack(e, self.consumer.location) from None

    def download(self, info: TargetFile) -> bytes:
        """A served target's bytes, from the consumer's cache when they are there (ngclient
        checks length and hashes either way)."""
        try:
            path = self.updater.find_cached_target(info)
            if path is None:
                path = self.updater.download_target(info)
            with open(path, "rb") as f:
                return f.read()
        except Exception as e:
            raise _attack(e, self.consumer.location) from None
