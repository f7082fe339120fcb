"""The dependency layer: a runner image plus one lock's wheels, built offline, tagged by both.

``ensure_layer(engine, runner, lock)`` installs the locked wheels on the host
(``toolsmith.dependencies.install``: every wheel's sha256 checked against the lock, cached or
downloaded, then pip ``--no-index --require-hashes``) into a directory that becomes
``/opt/toolsmith/deps`` of an image built ``FROM`` the runner image with no network. A ``.pth``
file in the interpreter's system site directory puts it on ``sys.path``, so the worker (run with
``-I``) and the call zygote find it without any runner change; it is read-only like the rest of
the root filesystem, readable under Landlock with the other interpreter trees (``/opt/toolsmith``
in ``barriers.INTERPRETER_READS``), and a compiled extension there loads as any shared library does
(Landlock governs ``execve``, not ``mmap``). Containers keep ``--network none``: nothing is
installed at run time.

Test jobs and docker-runtime calls use the same layer; it is built once per (runner image, lock)
and removed by ``toolsmith sandbox prune`` once its runner image is superseded.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import tempfile
import threading
from pathlib import Path

from toolsmith.dependencies import Lock, install, resolve, sandbox_platforms
from toolsmith.sandbox.engine import Engine, docker_errors
from toolsmith.sandbox.image import (
    BASE_REPO,
    INPUTS_LABEL,
    SANDBOX_UID,
    ImageInfo,
    build_context,
    images_dir,
    python_version,
    rootfs_recipe,
)

LAYER_REPO = "toolsmith-sandbox-deps"
LOCK_LABEL = "toolsmith.sandbox.lock"
RUNNER_LABEL = "toolsmith.sandbox.runner"
DEPS_DIR = "/opt/toolsmith/deps"
_DOCKERFILE = f"""\
ARG BASE
FROM ${{BASE}}
USER 0:0
COPY deps {DEPS_DIR}
RUN ["python3", "-c", "import os, site; d = site.getsitepackages()[0]; os.makedirs(d, \\
exist_ok=True); open(os.path.join(d, 'toolsmith-deps.pth'), 'w').write('{DEPS_DIR}\\\\n')"]
RUN ["python3", "-m", "compileall", "-q", "{DEPS_DIR}"]
RUN ["chmod", "-R", "a+rX,go-w", "{DEPS_DIR}"]
USER {SANDBOX_UID}:{SANDBOX_UID}
"""
_pythons: dict[str, str] = {}
_building = threading.Lock()


def sandbox_python(engine: Engine, runner: ImageInfo) -> str:
    """The runner image's ``major.minor``: the recipe's for the Debian base, else asked once."""
    if runner.base.startswith(f"{BASE_REPO}:") or runner.base.startswith("mmdebstrap:"):
        return rootfs_recipe(images_dir()).python
    if runner.image_id not in _pythons:
        _pythons[runner.image_id] = python_version(engine, runner.tag)
    return _pythons[runner.image_id]


def lock_for(engine: Engine, runner: ImageInfo, requirements: list[str]) -> Lock:
    """Resolve ``requirements`` for the interpreter and platform of ``runner`` (not the host's)."""
    return resolve(
        requirements,
        python=sandbox_python(engine, runner),
        platforms=sandbox_platforms(engine.architecture),
    )


def layer_tag(runner: ImageInfo, lock: Lock) -> str:
    """Addressed by the runner image, the lock and the recipe that joins them."""
    key = f"{runner.inputs_digest}\0{lock.digest}\0{_DOCKERFILE}"
    key = hashlib.sha256(key.encode()).hexdigest()
    return f"{LAYER_REPO}:{key[:16]}"


def ensure_layer(engine: Engine, runner: ImageInfo, lock: Lock) -> ImageInfo:
    """The runner image with ``lock`` installed, built (offline, hashes verified) if missing."""
    tag = layer_tag(runner, lock)
    with _building:
        with docker_errors("looking up a dependency layer"):
            found = engine.api.images(name=tag, quiet=True)
        if not found:
            found = [_build(engine, runner, lock, tag)]
    return ImageInfo(
        tag=tag, image_id=str(found[0]), inputs_digest=runner.inputs_digest, base=runner.tag
    )


def _build(engine: Engine, runner: ImageInfo, lock: Lock, tag: str) -> str:
    with tempfile.TemporaryDirectory(prefix="toolsmith-deps-") as tmp:
        deps = Path(tmp) / "deps"
        install(lock, deps)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            dockerfile = _DOCKERFILE.encode()
            info = tarfile.TarInfo("Dockerfile")
            info.size = len(dockerfile)
            tar.addfile(info, io.BytesIO(dockerfile))
            tar.add(deps, arcname="deps", filter=_owned_by_root)
        buf.seek(0)
        return build_context(
            engine,
            buf,
            tag,
            base=runner.tag,
            labels={
                INPUTS_LABEL: runner.inputs_digest,
                RUNNER_LABEL: runner.inputs_digest,
                LOCK_LABEL: lock.digest,
            },
            hint="see the build log above",
        )


def _owned_by_root(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    if "__pycache__" in info.name.split("/"):
        return None
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info
