"""A tool's third-party dependencies: resolved on the host into a lock, fetched into a wheel cache
addressed by sha256, verified, and installed offline into a directory the sandbox layer carries.

The resolver is pip's own (``pip install --dry-run --report``, a subprocess of the interpreter
toolsmith runs in), asked for the sandbox's interpreter and platform rather than the host's: the
Debian image's CPython (``sandbox_images/rootfs.json``'s ``python``) on glibc ``manylinux``
tags. pip reads the user's index and configuration as it always does (``PIP_INDEX_URL``,
``PIP_EXTRA_INDEX_URL``, ``pip.conf``, proxies, certificates). Wheels only
(``--only-binary=:all:``): building a source distribution runs its code on the host, so a
dependency without a wheel is refused by name.

A ``Lock`` names every distribution, transitive ones included, with its exact version, file
name and sha256. Its ``digest`` addresses the sandbox layer (``toolsmith.sandbox.layer``); the
lock itself travels inside the signed test report, so a consumer rebuilds the same layer from it
and every wheel is checked against the signed hash before it is installed (``fetch`` and then
pip's ``--require-hashes``).

Errors: ``DependencyError`` and its branches (``IndexUnavailableError``, ``NoWheelError``) for
resolving and fetching; ``DigestMismatchError`` for a wheel whose bytes are not the locked ones.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from pydantic import ConfigDict, Field

from toolsmith.errors import (
    DependencyError,
    DigestMismatchError,
    IndexUnavailableError,
    NoWheelError,
)
from toolsmith.models import PublicModel
from toolsmith.settings import Settings

# glibc of the sandbox's Debian release (bookworm: 2.36); wheels for older glibc run on it.
GLIBC_MINOR = 36
PIP_TIMEOUT_S = 600
_HEX64 = re.compile(r"[0-9a-f]{64}")
# What pip prints when it cannot reach the index (urllib3 and requests wording).
_UNREACHABLE = (
    "Failed to establish a new connection",
    "Max retries exceeded",
    "Could not fetch URL",
    "ProxyError",
    "ConnectTimeoutError",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Connection refused",
    "SSLError",
)
_NOT_FOUND = re.compile(
    r"(?:Could not find a version that satisfies the requirement|"
    r"No matching distribution found for) ([^\s(]+)"
)


_ARCHIVE = re.compile(r"\.(whl|zip|tar|tgz|tbz|txz|gz|bz2|xz|egg)$", re.IGNORECASE)


class LockedPackage(PublicModel):
    """One distribution of a lock: exactly this wheel file, with this hash."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Strict shapes: these fields are written into a pip requirements file at load, so a newline
    # or option smuggled into a published lock must never parse.
    name: str = Field(
        pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", description="canonical distribution name (PEP 503)"
    )
    version: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9.+!_-]*$", description="PEP 440 version")
    filename: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._+!-]*\.whl$", description="the wheel's file name"
    )
    url: str = Field(description="where the resolver found it (informational)")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Lock(PublicModel):
    """Every distribution a tool's declared ``requirements`` need, transitive ones included,
    resolved for one interpreter (``python``, e.g. ``3.11``) and its ``platforms`` (wheel tags)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requirements: list[str] = Field(description="the spec's dependencies, as declared")
    python: str = Field(pattern=r"^3\.\d+$")
    platforms: list[str]
    packages: list[LockedPackage]

    @property
    def digest(self) -> str:
        """sha256 of the canonical JSON of the lock: what the sandbox layer is addressed by."""
        data = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(data.encode()).hexdigest()

    def names(self) -> list[str]:
        """Canonical names of every locked distribution."""
        return [p.name for p in self.packages]

    def requirements_text(self) -> str:
        """A pip requirements file pinning each locked distribution to its version and hash."""
        return _pins(self.packages)


def requirement_problem(req: str) -> str | None:
    """Why ``req`` cannot be a dependency, or None: it must be a PEP 508 requirement naming a
    distribution on the index. A direct reference (``name @ URL``) or a name that reads as an
    archive file would make pip fetch and build that project on the host."""
    try:
        parsed = Requirement(req)
    except InvalidRequirement as e:
        return f"is not a PEP 508 requirement: {e}"
    if parsed.url is not None:
        return "is a direct reference (a URL or file); only names on the index are allowed"
    if _ARCHIVE.search(parsed.name):
        return "names an archive file; only names on the index are allowed"
    return None


def _pins(packages: Sequence[LockedPackage]) -> str:
    return "".join(f"{p.name}=={p.version} --hash=sha256:{p.sha256}\n" for p in packages)


def sandbox_platforms(architecture: str) -> list[str]:
    """The wheel platform tags the sandbox's glibc accepts, newest first (``manylinux_2_N``,
    PEP 600, with the legacy aliases of 2_17, 2_12 and 2_5)."""
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(architecture, architecture)
    tags = [f"manylinux_2_{v}_{arch}" for v in range(GLIBC_MINOR, 16, -1)]
    return tags + [f"manylinux{alias}_{arch}" for alias in ("2014", "2010", "1")]


def cache_dir() -> Path:
    """Where verified wheels are kept (``Settings.paths.wheels``: ``$TOOLSMITH_CACHE/wheels``,
    else the per-user cache dir's)."""
    return Settings.load().paths.wheels


def _pip(args: list[str], what: str, names: Sequence[str]) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args]
    try:
        # pip runs in an empty directory: it reads a requirement naming an existing file or
        # directory as a local project, and would build that project here, on the host.
        with tempfile.TemporaryDirectory(prefix="toolsmith-pip-") as empty:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, check=False, timeout=PIP_TIMEOUT_S, cwd=empty
            )
    except FileNotFoundError as e:  # pragma: no cover - the interpreter itself is missing
        raise DependencyError(f"{what}: cannot run pip: {e}", hint="install pip") from None
    except subprocess.TimeoutExpired:
        raise IndexUnavailableError(
            f"{what}: pip did not finish within {PIP_TIMEOUT_S} s",
            hint="check that the package index (PIP_INDEX_URL or pip.conf) is reachable",
        ) from None
    if proc.returncode == 0:
        return proc
    # pip reports an unreachable index only in its verbose log (stdout); its errors go to stderr.
    err, log = proc.stderr, proc.stdout
    if "No module named pip" in err:
        raise DependencyError(
            f"{what}: pip is not installed in {sys.executable}",
            hint="install pip into the environment toolsmith runs in",
        )
    unreachable = [line for line in log.splitlines() if any(m in line for m in _UNREACHABLE)]
    if unreachable or any(marker in err for marker in _UNREACHABLE):
        raise IndexUnavailableError(
            f"{what}: the package index is unreachable: {_tail(unreachable[-1:] or err)}",
            hint="make the index reachable, or point PIP_INDEX_URL (or pip.conf) at a mirror "
            "this host can reach",
        )
    missing = _NOT_FOUND.search(err)
    if missing:
        name = missing.group(1)
        raise NoWheelError(
            f"{what}: no wheel of {name} for CPython {names[0]} on {names[1]} is on the index: "
            "it has only a source distribution (or no such release), and building one would "
            "run its code on this host",
            hint=f"choose a version or an alternative of {name} that publishes wheels, or "
            "build its wheel yourself and serve it from your own index (PIP_EXTRA_INDEX_URL)",
        )
    raise DependencyError(f"{what}: pip failed: {_tail(err)}", hint="see pip's message above")


def _tail(text: str | list[str]) -> str:
    lines = text.strip().splitlines() if isinstance(text, str) else text
    lines = [line for line in lines if line.strip()]
    return " | ".join(lines[-4:])[-1500:]


def _arch(platforms: Sequence[str]) -> str:
    """``x86_64`` of ``manylinux_2_36_x86_64`` (or of ``manylinux2014_x86_64``)."""
    found = re.fullmatch(r"manylinux(?:_\d+_\d+|\d+)_(\w+)", platforms[0]) if platforms else None
    return found.group(1) if found else "?"


def _target_args(python: str, platforms: Sequence[str]) -> list[str]:
    args = ["--only-binary=:all:", "--implementation", "cp", "--python-version", python]
    for plat in platforms:
        args += ["--platform", plat]
    return args


def resolve(requirements: Sequence[str], *, python: str, platforms: Sequence[str]) -> Lock:
    """Resolve ``requirements`` (PEP 508 strings) with pip's resolver for the sandbox's
    ``python`` and wheel ``platforms``; the lock lists every distribution installed.

    Raises ``NoWheelError`` (a dependency with no usable wheel), ``IndexUnavailableError``,
    ``DependencyError`` (anything else pip refuses, e.g. conflicting requirements)."""
    reqs = list(requirements)
    for req in reqs:
        problem = requirement_problem(req)
        if problem:
            raise DependencyError(
                f"dependency {req!r} {problem}", hint='write it like "python-dateutil>=2.8"'
            )
    arch = _arch(platforms)
    with tempfile.TemporaryDirectory(prefix="toolsmith-lock-") as tmp:
        report = Path(tmp) / "report.json"
        args = ["install", "--dry-run", "-vv", "--ignore-installed", "--report", str(report)]
        args += ["--target", str(Path(tmp) / "target"), *_target_args(python, platforms), *reqs]
        _pip(args, f"resolving {', '.join(reqs)}", (python, f"manylinux {arch}"))
        data = json.loads(report.read_text())
    packages = []
    for item in data.get("install", []):
        meta, info = item["metadata"], item["download_info"]
        sha = (info.get("archive_info") or {}).get("hashes", {}).get("sha256", "")
        url = str(info["url"])
        filename = url.rsplit("/", 1)[-1].split("#", 1)[0]
        if not filename.endswith(".whl") or not _HEX64.fullmatch(sha):
            raise DependencyError(
                f"the resolver chose {url}, which is not a wheel with a sha256 on the index",
                hint="use an index that serves wheels with their hashes (PEP 503)",
            )
        packages.append(
            LockedPackage(
                name=canonicalize_name(meta["name"]),
                version=str(meta["version"]),
                filename=filename,
                url=url,
                sha256=sha,
            )
        )
    packages.sort(key=lambda p: p.name)
    return Lock(requirements=reqs, python=python, platforms=list(platforms), packages=packages)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def cached_wheel(pkg: LockedPackage) -> Path:
    """Where ``pkg``'s wheel is kept once fetched (it may not be there yet)."""
    return cache_dir() / pkg.sha256 / pkg.filename


def fetch(lock: Lock) -> list[Path]:
    """Each locked wheel from the cache, downloading (pip, the user's index) what is missing;
    every file's sha256 is checked against the lock, cached or not.

    Raises ``DigestMismatchError`` for a wheel whose bytes are not the locked ones (a tampered
    cache or index), ``IndexUnavailableError`` when a missing wheel cannot be downloaded."""
    missing = [p for p in lock.packages if not cached_wheel(p).is_file()]
    if missing:
        cache = cache_dir()
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="download-", dir=cache) as tmp:
            reqs = Path(tmp) / "requirements.txt"
            reqs.write_text(_pins(missing))
            args = ["download", "-vv", "--no-deps", "--require-hashes", "-d", tmp, "-r"]
            args += [str(reqs), *_target_args(lock.python, lock.platforms)]
            where = (lock.python, f"manylinux {_arch(lock.platforms)}")
            _pip(args, "downloading locked wheels", where)
            for pkg in missing:
                got = Path(tmp) / pkg.filename
                _check_wheel(pkg, got, "downloaded")
                dest = cached_wheel(pkg)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(got, dest)
    paths = []
    for pkg in lock.packages:
        path = cached_wheel(pkg)
        _check_wheel(pkg, path, "cached")
        paths.append(path)
    return paths


def _check_wheel(pkg: LockedPackage, path: Path, how: str) -> None:
    if not path.is_file():
        raise DependencyError(
            f"the {how} wheel {pkg.filename} is missing", hint="build again to fetch it"
        )
    got = _sha256_file(path)
    if got != pkg.sha256:
        raise DigestMismatchError(
            f"the {how} wheel {path} has sha256 {got[:16]}..., the signed lock says "
            f"{pkg.sha256[:16]}... for {pkg.name} {pkg.version}",
            hint=f"delete {path.parent} so it is fetched again from the index, and check "
            "who could write to the cache or the index",
        )


def provided_modules(lock: Lock) -> set[str]:
    """Top-level import names the locked wheels install (``yaml`` and ``_yaml`` for PyYAML),
    read from each verified wheel's file list."""
    names: set[str] = set()
    for wheel in fetch(lock):
        with zipfile.ZipFile(wheel) as zf:
            for entry in zf.namelist():
                top, _, rest = entry.partition("/")
                if top.endswith((".dist-info", ".data")):
                    continue
                if rest:
                    names.add(top)
                elif top.endswith((".py", ".so", ".pyd")):
                    names.add(top.split(".", 1)[0])
    return names


def install(lock: Lock, target: Path) -> None:
    """Install the locked wheels (fetched and verified first) into ``target``, offline
    (``--no-index``), pip checking every hash again (``--require-hashes``); scripts dropped."""
    wheels = fetch(lock)
    with tempfile.TemporaryDirectory(prefix="toolsmith-wheels-") as tmp:
        links = Path(tmp) / "wheels"
        links.mkdir()
        for wheel in wheels:
            os.symlink(wheel, links / wheel.name)
        reqs = Path(tmp) / "requirements.txt"
        reqs.write_text(lock.requirements_text())
        args = ["install", "--quiet", "--no-index", "--no-deps", "--require-hashes"]
        args += ["--find-links", str(links), "--no-compile", "--target", str(target)]
        args += ["-r", str(reqs), *_target_args(lock.python, lock.platforms)]
        where = (lock.python, f"manylinux {_arch(lock.platforms)}")
        _pip(args, "installing locked wheels", where)
    shutil.rmtree(target / "bin", ignore_errors=True)
