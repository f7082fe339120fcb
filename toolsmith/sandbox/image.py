"""The sandbox image: built offline, tagged by a digest of its inputs, never rebuilt unchanged.

Two ways to a base, one runner on top:

* by default, a Debian root filesystem made by ``mmdebstrap`` from ``sandbox_images/rootfs.json``
  and ``docker import``-ed, because the engine may have no images and no way to pull (air-gapped);
  it carries python3 and libseccomp's binding (python3-seccomp), which the run-time barriers need;
* a local image named with ``--base`` (a plain ``FROM``): it must offer both for its ``python3``,
  or the runner refuses to run tools (fail closed).

The test stack (``sandbox_images/requirements.txt``, fully pinned) is installed from wheels on the
host into a cached directory and copied in, so the image build needs no network either.
"""

from __future__ import annotations

import hashlib
import io
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

import platformdirs
from pydantic import BaseModel, ConfigDict

from toolsmith.errors import ImageError
from toolsmith.sandbox.engine import Engine, docker_errors, shared_engine
from toolsmith.settings import Settings

IMAGE_REPO = "toolsmith-sandbox"
BASE_REPO = "toolsmith-sandbox-base"
INPUTS_LABEL = "toolsmith.sandbox.inputs"
SANDBOX_UID = 10001
_INPUT_FILES = ("Dockerfile", "requirements.txt", "rootfs.json")

Progress = Callable[[str], None]


class ImageInfo(BaseModel):
    """A runner image present in the engine."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tag: str
    image_id: str
    inputs_digest: str
    base: str
    built: bool = False


def images_dir() -> Path:
    """The sandbox image sources: ``$TOOLSMITH_SANDBOX_IMAGES``, else the package's
    ``_sandbox_images`` (in a checkout a link to the top-level ``sandbox_images/``, in a wheel a
    copy of it), so an installed wheel builds the same image, with the same digest."""
    override = Settings.load().sandbox.images
    path = override or Path(__file__).resolve().parents[1] / "_sandbox_images"
    if not (path / "Dockerfile").is_file():
        raise ImageError(
            f"sandbox image sources not found at {path}",
            hint="set TOOLSMITH_SANDBOX_IMAGES to the sandbox_images/ directory of toolsmith",
        )
    return path


def _input_files(src: Path) -> list[Path]:
    runner = sorted(
        p for p in (src / "runner").rglob("*.py") if "__pycache__" not in p.parts and p.is_file()
    )
    return [src / name for name in _INPUT_FILES] + runner


def inputs_digest(base_ref: str, src: Path | None = None) -> str:
    """sha256 over the base reference and every file that goes into the image."""
    src = src or images_dir()
    h = hashlib.sha256(f"base\0{base_ref}\0".encode())
    for path in _input_files(src):
        h.update(f"{path.relative_to(src).as_posix()}\0".encode())
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


class RootfsRecipe(BaseModel):
    """``sandbox_images/rootfs.json``: what mmdebstrap puts into the base root filesystem."""

    model_config = ConfigDict(extra="ignore")

    suite: str
    variant: str = "minbase"
    include: list[str]
    mirror: str
    python: str
    exclude_paths: list[str] = []


def rootfs_recipe(src: Path) -> RootfsRecipe:
    """The parsed ``rootfs.json`` of ``src``; ImageError if it does not validate."""
    try:
        return RootfsRecipe.model_validate_json((src / "rootfs.json").read_text())
    except ValueError as e:
        raise ImageError(f"{src / 'rootfs.json'} is not a valid recipe: {e}") from e


def _local_base(engine: Engine, base: str | None) -> tuple[str, str] | None:
    """(name, image id) of the local image to build FROM, when one is named (``--base``).

    Never guessed from what the engine holds: the runner needs libseccomp's Python binding for
    the interpreter it runs (Debian's python3-seccomp in the recipe's root filesystem), which a
    ``python:3.x-slim`` image lacks, so its runner would refuse every tool (fail closed).
    """
    if not base:
        return None
    with docker_errors(f"looking up base image {base}"):
        found = engine.api.images(name=base, quiet=True)
    if not found:
        raise ImageError(
            f"base image {base!r} is not present in the Docker engine",
            hint=f"`docker load` or pull {base}, or omit --base to build from Debian packages",
        )
    return base, found[0]


def _base_ref(engine: Engine, src: Path, base: str | None) -> tuple[str, str | None]:
    """(reference for the inputs digest, local base image name or None for mmdebstrap)."""
    local = _local_base(engine, base)
    if local:
        return f"image:{local[0]}@{local[1]}", local[0]
    recipe = (src / "rootfs.json").read_bytes()
    return f"mmdebstrap:{hashlib.sha256(recipe).hexdigest()}", None


def current_tags(engine: Engine | None = None, *, base: str | None = None) -> set[str]:
    """The tags the current inputs use: the runner image, and the Debian base of the recipe."""
    engine = engine or shared_engine()
    src = images_dir()
    ref, _ = _base_ref(engine, src, base)
    recipe = hashlib.sha256((src / "rootfs.json").read_bytes()).hexdigest()
    return {f"{IMAGE_REPO}:{inputs_digest(ref, src)[:16]}", f"{BASE_REPO}:{recipe[:16]}"}


def find_image(engine: Engine | None = None, *, base: str | None = None) -> ImageInfo | None:
    """The image the current inputs would produce, if it is already built."""
    engine = engine or shared_engine()
    src = images_dir()
    ref, base_name = _base_ref(engine, src, base)
    digest = inputs_digest(ref, src)
    tag = f"{IMAGE_REPO}:{digest[:16]}"
    with docker_errors("looking up the sandbox image"):
        found = engine.api.images(name=tag, quiet=True)
    if not found:
        return None
    return ImageInfo(tag=tag, image_id=found[0], inputs_digest=digest, base=base_name or ref)


def ensure_image(
    engine: Engine | None = None,
    *,
    base: str | None = None,
    progress: Progress | None = None,
) -> ImageInfo:
    """Return the runner image for the current inputs, building it (offline) only if missing."""
    engine = engine or shared_engine()
    say = progress or (lambda _msg: None)
    src = images_dir()
    ref, base_name = _base_ref(engine, src, base)
    digest = inputs_digest(ref, src)
    tag = f"{IMAGE_REPO}:{digest[:16]}"
    with docker_errors("looking up the sandbox image"):
        found = engine.api.images(name=tag, quiet=True)
    if found:
        return ImageInfo(tag=tag, image_id=found[0], inputs_digest=digest, base=base_name or ref)
    if base_name is None:
        base_name = _debian_base(engine, src, say)
        python = rootfs_recipe(src).python
    else:
        python = python_version(engine, base_name)
    site = _site_dir(src / "requirements.txt", python, engine.architecture, say)
    say(f"building {tag} on {base_name}")
    image_id = _build(engine, src, site, base_name, tag, digest)
    return ImageInfo(tag=tag, image_id=image_id, inputs_digest=digest, base=base_name, built=True)


def _debian_base(engine: Engine, src: Path, say: Progress) -> str:
    recipe = rootfs_recipe(src)
    digest = hashlib.sha256((src / "rootfs.json").read_bytes()).hexdigest()
    tag = f"{BASE_REPO}:{digest[:16]}"
    with docker_errors("looking up the base image"):
        if engine.api.images(name=tag, quiet=True):
            return tag
    mmdebstrap = shutil.which("mmdebstrap")
    if mmdebstrap is None:
        raise ImageError(
            "mmdebstrap is not installed, so the sandbox base root filesystem cannot be built",
            hint="apt-get install mmdebstrap",
        )
    mirror = Settings.load().sandbox.debian_mirror or recipe.mirror
    excludes = [f"--dpkgopt=path-exclude={p}" for p in recipe.exclude_paths]
    with tempfile.TemporaryDirectory(prefix="toolsmith-rootfs-") as tmp:
        out = Path(tmp) / "rootfs.tar"
        cmd = [
            mmdebstrap,
            f"--variant={recipe.variant}",
            f"--include={','.join(recipe.include)}",
            *excludes,
            recipe.suite,
            str(out),
            mirror,
        ]
        say(f"building the base root filesystem with mmdebstrap ({recipe.suite})")
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise ImageError(
                f"mmdebstrap failed with status {proc.returncode}: {proc.stderr[-2000:]}",
                hint="check that the Debian mirror is reachable (TOOLSMITH_DEBIAN_MIRROR)",
            )
        say(f"importing the root filesystem as {tag}")
        with docker_errors("importing the base root filesystem"):
            engine.api.import_image_from_file(str(out), repository=BASE_REPO, tag=digest[:16])
    return tag


def python_version(engine: Engine, base: str) -> str:
    """``major.minor`` of the ``python3`` in image ``base`` (run once, with no network)."""
    with docker_errors(f"asking {base} for its python version"):
        out = engine.client.containers.run(
            base,
            ["python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            network_mode="none",
            remove=True,
            stdout=True,
            stderr=False,
        )
    return bytes(out).decode().strip()


def _wheel_platforms(architecture: str) -> list[str]:
    arch = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}.get(
        architecture, platform.machine()
    )
    return [f"manylinux_2_{v}_{arch}" for v in (17, 28, 34)]


def _site_dir(requirements: Path, python: str, architecture: str, say: Progress) -> Path:
    """Wheels for the image's python, unpacked into a directory cached by what decides them."""
    platforms = _wheel_platforms(architecture)
    key = hashlib.sha256(
        requirements.read_bytes() + f"\0{python}\0{','.join(platforms)}".encode()
    ).hexdigest()[:16]
    cache = Path(platformdirs.user_cache_dir("toolsmith")) / "sandbox"
    site = cache / f"site-{key}"
    if site.is_dir():
        return site
    cache.mkdir(parents=True, exist_ok=True)
    say(f"fetching the pinned test stack for python {python} (pip)")
    tmp = Path(tempfile.mkdtemp(prefix="site-", dir=cache))
    cmd = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--no-deps", "--only-binary=:all:", "--implementation", "cp",
        "--python-version", python, "--target", str(tmp), "-r", str(requirements),
    ]  # fmt: skip
    for plat in platforms:
        cmd += ["--platform", plat]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ImageError(
            f"could not fetch the sandbox's Python packages: {proc.stderr[-2000:]}",
            hint="make PyPI or a mirror (PIP_INDEX_URL) reachable from this host",
        )
    shutil.rmtree(tmp / "bin", ignore_errors=True)
    os.replace(tmp, site)
    return site


def _context(src: Path, site: Path) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(src / "Dockerfile", arcname="Dockerfile")
        tar.add(site, arcname="site", filter=_no_cache)
        tar.add(src / "runner", arcname="runner", filter=_no_cache)
    buf.seek(0)
    return buf


def _no_cache(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    if "__pycache__" in info.name.split("/"):
        return None
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mode = 0o755 if info.isdir() else 0o644
    return info


def _build(engine: Engine, src: Path, site: Path, base: str, tag: str, digest: str) -> str:
    return build_context(
        engine,
        _context(src, site),
        tag,
        base=base,
        labels={INPUTS_LABEL: digest},
        hint="see the build log above; the inputs are in sandbox_images/",
    )


def build_context(
    engine: Engine, context: io.BytesIO, tag: str, *, base: str, labels: dict[str, str], hint: str
) -> str:
    """Build the Dockerfile in the tar ``context`` FROM ``base`` (build arg ``BASE``) as ``tag``,
    with no network; returns the image id. ImageError with the build log's tail on failure,
    ``hint`` as its fix."""
    log: list[str] = []
    with docker_errors(f"building {tag}"):
        for chunk in engine.api.build(
            fileobj=context,
            custom_context=True,
            tag=tag,
            buildargs={"BASE": base},
            labels=labels,
            network_mode="none",
            rm=True,
            forcerm=True,
            decode=True,
        ):
            if "error" in chunk:
                raise ImageError(
                    f"building {tag} failed: {chunk['error']}\n{''.join(log[-20:])}", hint=hint
                )
            if "stream" in chunk:
                log.append(str(chunk["stream"]))
        found = engine.api.images(name=tag, quiet=True)
    if not found:
        raise ImageError(f"the build of {tag} finished but the image is missing")
    return str(found[0])
