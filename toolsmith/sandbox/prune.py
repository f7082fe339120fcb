"""Removing what older builds and dead processes left in the engine: superseded images (every
rebuild tags a new ``toolsmith-sandbox:<digest>`` and leaves the old one) and stale containers."""

from __future__ import annotations

import docker.errors
from pydantic import BaseModel, ConfigDict, Field

from toolsmith.sandbox.cleanup import sweep_stale
from toolsmith.sandbox.engine import Engine, docker_errors, shared_engine
from toolsmith.sandbox.image import BASE_REPO, IMAGE_REPO, current_tags


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
    leaves its predecessor behind), after sweeping containers whose owner process is gone. An
    image a container still uses is kept and reported."""
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
