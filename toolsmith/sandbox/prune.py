"""Removing what older builds and dead processes left in the engine: superseded images (every
rebuild tags a new ``toolsmith-sandbox:<digest>`` and leaves the old one), the dependency layers
built on them (``toolsmith-sandbox-deps:<digest>``; rebuilt from the lock on next use) and stale
containers."""

from __future__ import annotations

import docker.errors
from pydantic import BaseModel, ConfigDict, Field

from toolsmith.sandbox.cleanup import sweep_stale
from toolsmith.sandbox.engine import Engine, docker_errors, shared_engine
from toolsmith.sandbox.image import BASE_REPO, IMAGE_REPO, current_tags
from toolsmith.sandbox.layer import LAYER_REPO, RUNNER_LABEL


class PrunedImages(BaseModel):
    """What ``prune_images`` removed (or would remove), and what it kept."""

    model_config = ConfigDict(extra="forbid")

    dry_run: bool
    current: str | None = Field(description="the tag the current inputs build; never removed")
    removed: list[str] = Field(default_factory=list)
    in_use: list[str] = Field(default_factory=list, description="old tags a container still uses")
    stale_containers: int = 0


def prune_images(
    engine: Engine | None = None, *, base: str | None = None, dry_run: bool = False
) -> PrunedImages:
    """Untag every sandbox and base image except the ones the current inputs use (each rebuild
    leaves its predecessor behind), and every dependency layer built on another runner image,
    after sweeping containers whose owner process is gone. An image a container still uses is
    kept and reported."""
    engine = engine or shared_engine()
    keep = current_tags(engine, base=base)
    current = next(t for t in keep if t.startswith(f"{IMAGE_REPO}:"))
    stale = 0 if dry_run else sweep_stale(engine)
    with docker_errors("listing sandbox images"):
        tags = sorted(
            t
            for repo in (IMAGE_REPO, BASE_REPO)
            for image in engine.api.images(name=repo)
            for t in image.get("RepoTags") or []
            if t.split(":", 1)[0] == repo and t not in keep
        )
        runner = current.split(":", 1)[1]
        tags += sorted(
            t
            for image in engine.api.images(name=LAYER_REPO)
            if not str((image.get("Labels") or {}).get(RUNNER_LABEL, "")).startswith(runner)
            for t in image.get("RepoTags") or []
            if t.split(":", 1)[0] == LAYER_REPO
        )
    with docker_errors("looking up the sandbox image"):
        present = bool(engine.api.images(name=current, quiet=True))
    report = PrunedImages(
        dry_run=dry_run, current=current if present else None, stale_containers=stale
    )
    for tag in tags:
        if dry_run:
            report.removed.append(tag)
            continue
        with docker_errors(f"removing image {tag}"):
            try:
                engine.api.remove_image(tag)
            except docker.errors.APIError as e:
                if e.status_code != 409:
                    raise
                report.in_use.append(tag)
                continue
        report.removed.append(tag)
    return report
