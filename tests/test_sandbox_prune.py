"""`sandbox prune`: images older builds left behind go; the current image and any image a
container still uses stay."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import docker
import pytest

from toolsmith.sandbox import prune_images
from toolsmith.sandbox.image import BASE_REPO, IMAGE_REPO
from toolsmith.sandbox.layer import LAYER_REPO, RUNNER_LABEL

pytestmark = pytest.mark.docker

OLD = f"{IMAGE_REPO}:00000000deadbeef"
OLD_BASE = f"{BASE_REPO}:00000000deadbeef"
OLD_LAYER = f"{LAYER_REPO}:00000000deadbeef"
LAYER = f"{LAYER_REPO}:00000000cafef00d"


@pytest.fixture
def client() -> Iterator[docker.DockerClient]:
    c = docker.from_env()
    yield c
    for tag in (OLD, OLD_BASE, OLD_LAYER, LAYER):
        with contextlib.suppress(docker.errors.ImageNotFound):
            c.images.remove(tag)
    c.close()


def tags(client: docker.DockerClient) -> set[str]:
    return {t for image in client.images.list() for t in image.tags}


def old_build(client: docker.DockerClient, sandbox_image: Any) -> str:
    """An image of its own (a distinct id, as a real older build has) tagged like an old one."""
    dockerfile = f"FROM {sandbox_image.tag}\nLABEL toolsmith.test=old-build\n".encode()
    image, _ = client.images.build(fileobj=io.BytesIO(dockerfile), tag=OLD, rm=True)
    assert image.id != sandbox_image.image_id
    return str(image.id)


def test_prune_removes_old_builds_and_keeps_the_current_image(
    client: docker.DockerClient, sandbox_image: Any
) -> None:
    """A dry run lists the old tags and removes nothing; prune removes them; the current image
    is untouched."""
    old_build(client, sandbox_image)
    client.images.get(sandbox_image.image_id).tag(OLD_BASE)
    dry = prune_images(dry_run=True)
    assert {OLD, OLD_BASE} <= set(dry.removed) and sandbox_image.tag not in dry.removed
    assert {OLD, OLD_BASE} <= tags(client)
    done = prune_images()
    assert {OLD, OLD_BASE} <= set(done.removed) and done.current == sandbox_image.tag
    left = tags(client)
    assert OLD not in left and OLD_BASE not in left and sandbox_image.tag in left


def test_dependency_layers_on_another_runner_image_go(
    client: docker.DockerClient, sandbox_image: Any
) -> None:
    """A dependency layer built on a superseded runner image is pruned (it is rebuilt from its
    lock when next used); one on the current runner image stays."""
    for tag, runner in ((OLD_LAYER, "0" * 64), (LAYER, sandbox_image.inputs_digest)):
        dockerfile = f"FROM {sandbox_image.tag}\nLABEL {RUNNER_LABEL}={runner}\n".encode()
        client.images.build(fileobj=io.BytesIO(dockerfile), tag=tag, rm=True)
    dry = prune_images(dry_run=True)
    assert OLD_LAYER in dry.removed and LAYER not in dry.removed
    assert {OLD_LAYER, LAYER} <= tags(client)


def test_an_image_a_container_uses_is_kept(client: docker.DockerClient, sandbox_image: Any) -> None:
    """Removing an image under a container fails in the engine; prune reports it as in use and
    goes on, and removes it once the container is gone."""
    old_build(client, sandbox_image)
    container = client.containers.create(OLD, command=["true"], network_disabled=True)
    try:
        report = prune_images()
        assert OLD in report.in_use and OLD not in report.removed
        assert OLD in tags(client)
    finally:
        container.remove(force=True)
    assert OLD in prune_images().removed


def test_cli_prune_json(client: docker.DockerClient, sandbox_image: Any) -> None:
    """`toolsmith sandbox prune --dry-run --json` reports the current tag and what would go."""
    old_build(client, sandbox_image)
    cli = [sys.executable, "-c", "from toolsmith.cli import main; main()"]
    result = subprocess.run(
        [*cli, "sandbox", "prune", "--dry-run", "--json"],
        capture_output=True,
        text=True,
        env=os.environ,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["current"] == sandbox_image.tag and OLD in data["removed"]
    assert OLD in tags(client)
