"""A first build, seen by a person: the sandbox image is built in front of them (a note, then its
steps), outside attempt 1, and the demo says what the failing attempt got wrong and how the fix
answered it.

A machine's first build is made real by pointing ``TOOLSMITH_SANDBOX_IMAGES`` at a copy of
``sandbox_images/`` with one more comment line in its Dockerfile: new inputs, so a new image tag
that no engine has yet (the base root filesystem and the test stack's wheels are reused from the
caches the suite's own image filled). Each test removes the image it made. No model is involved
(``--spec --impl``), except in the last test, which only renders a finished build.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from toolsmith.cli import build as build_cli
from toolsmith.cli._image import NOTE
from toolsmith.pipeline import (
    AttemptRecord,
    AttemptVerdict,
    BuildOptions,
    BuildResult,
    BuildStatus,
    Progress,
    Toolsmith,
)
from toolsmith.registry import Registry
from toolsmith.spec import ToolSpec

ROOT = Path(__file__).resolve().parent.parent
DEMO = yaml.safe_load((ROOT / "toolsmith/data/demo_script.yaml").read_text())
SPEC = ToolSpec.parse(DEMO["steps"][0]["json"]["spec"])


def _code(step: int) -> str:
    return str(DEMO["steps"][step]["reply"]).split("```python\n", 1)[1].split("```", 1)[0]


BUGGY, FIXED = _code(1), _code(2)


@pytest.fixture
def fresh_image_inputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox_image: object
) -> Iterator[Path]:
    """Image sources no engine has built yet (the suite's image is built first, so its base
    and wheels are cached); the image they make is removed afterwards."""
    src = tmp_path / "sandbox_images"
    shutil.copytree(ROOT / "sandbox_images", src, ignore=shutil.ignore_patterns("__pycache__"))
    with (src / "Dockerfile").open("a") as f:
        f.write(f"\n# a first run of tests/test_first_run.py: {uuid.uuid4().hex}\n")
    monkeypatch.setenv("TOOLSMITH_SANDBOX_IMAGES", str(src))
    from toolsmith.sandbox import find_image
    from toolsmith.sandbox.engine import shared_engine

    assert find_image() is None
    yield src
    found = find_image()
    if found is not None:
        shared_engine().api.remove_image(found.tag, force=True)


@pytest.mark.docker
def test_the_image_build_is_reported_and_outside_attempt_1(
    tmp_path: Path, fresh_image_inputs: Path
) -> None:
    """With the image missing, the build reports each image step and then the image, all before
    attempt 1 starts, so attempt 1's time cannot include the image build."""
    events: list[tuple[float, Progress]] = []
    with Toolsmith(
        Registry(tmp_path / "registry"),
        None,
        on_progress=lambda p: events.append((time.monotonic(), p)),
    ) as ts:
        result = ts.build_from_spec(SPEC, FIXED, BuildOptions(max_examples=20, dry_run=True))
    finished = time.monotonic()
    assert result.status == BuildStatus.DRY_RUN, result.attempts
    stages = [p.stage for _, p in events]
    assert "image" in stages and "image ready" in stages, stages
    ready = stages.index("image ready")
    assert stages.index("generate") > ready
    assert set(stages[: stages.index("image ready")]) == {"image"}
    assert any(p.detail.startswith("building toolsmith-sandbox:") for _, p in events)
    assert events[ready][1].detail.startswith("toolsmith-sandbox:")
    # Attempt 1's clock started after the image was ready.
    assert result.attempts[0].duration_s <= finished - events[ready][0]
    events.clear()  # the next build finds the image: nothing about it is reported
    with Toolsmith(
        Registry(tmp_path / "registry"), None, on_progress=lambda p: events.append((0.0, p))
    ) as ts:
        again = ts.build_from_spec(SPEC, FIXED, BuildOptions(max_examples=20, dry_run=True))
    assert again.status == BuildStatus.DRY_RUN
    assert not {"image", "image ready"} & {p.stage for _, p in events}


@pytest.mark.docker
def test_the_cli_shows_the_note_and_the_image_steps_once(
    tmp_path: Path, fresh_image_inputs: Path
) -> None:
    """`toolsmith build --spec --impl` on a machine without the image prints the one-time note,
    the image's build steps and how long the image took, then the build's result."""
    spec, impl = tmp_path / "spec.yaml", tmp_path / "impl.py"
    spec.write_text(SPEC.to_yaml())
    impl.write_text(FIXED)
    args = ["--spec", str(spec), "--impl", str(impl), "--registry", str(tmp_path / "registry")]
    r = subprocess.run(
        [sys.executable, "-c", "from toolsmith.cli import main; main()", "build", *args,
         "--max-examples", "20", "--dry-run"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=1200,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert NOTE in " ".join(r.stderr.split())
    assert "building toolsmith-sandbox:" in r.stderr
    assert re.search(r"sandbox image toolsmith-sandbox:[0-9a-f]{16} ready in \d+ s", r.stderr)
    assert "passed" in r.stdout and "dry run" in r.stdout


def test_the_demo_explains_the_failed_attempt_and_the_fix() -> None:
    """For a failed attempt followed by a passing one, the output names the failing test and
    its message, and shows the fix as a diff of the two codes."""
    failure = (
        "test_tool.py::test_example_2: failed\n"
        "/work/job-1/test_tool.py:165: in test_example_2\n"
        "    assert inv.ok\n"
        "E   AssertionError: with args {'text': '2d 4h'} the tool raised ValueError: cannot "
        "parse '2d 4h' at position 0\n"
        "E   assert False\n"
    )
    result = BuildResult(
        build_id="b",
        status=BuildStatus.PUBLISHED,
        code=FIXED,
        attempts=[
            AttemptRecord(
                number=1,
                verdict=AttemptVerdict.FAILED,
                summary="9/10 passed, 1 failed",
                failure=failure,
                code=BUGGY,
            ),
            AttemptRecord(
                number=2, verdict=AttemptVerdict.PASSED, summary="10/10 passed", code=FIXED
            ),
        ],
    )
    console = Console(record=True, width=200)
    build_cli.console, saved = console, build_cli.console
    try:
        build_cli.explain_fixes(result)
    finally:
        build_cli.console = saved
    text = console.export_text()
    assert "attempt 1 failed (9/10 passed, 1 failed): test_example_2: with args" in text
    assert "the tool raised ValueError: cannot parse '2d 4h' at position 0" in text
    assert "attempt 2, made this change and passed" in text
    assert '+_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}' in text
    assert '-_UNITS = {"h": 3600, "m": 60, "s": 1}' in text
