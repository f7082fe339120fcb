"""The built wheel works outside the checkout: it carries the sandbox image sources, builds the
same image (same inputs digest) and runs the demo from another directory.

Kept cheap: the wheel is built once, installed without dependencies into a fresh virtual
environment that borrows this environment's installed dependencies (a ``.pth`` line) rather than
downloading them again, and the image it asks for is the one the session already built.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.docker
def test_wheel_in_a_fresh_venv_builds_the_image_and_runs_the_demo(
    tmp_path: Path, sandbox_image: Any
) -> None:
    """From a wheel, in a fresh venv, run from another directory: `toolsmith sandbox build`
    finds the image of this checkout's inputs and `toolsmith demo` builds, publishes and calls."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = tmp_path.glob("toolsmith-*.whl")
    sources = sorted(
        str(p.relative_to(ROOT))
        for p in (ROOT / "sandbox_images").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )
    with zipfile.ZipFile(wheel) as z:
        packaged = {n.removeprefix("toolsmith/_") for n in z.namelist() if "_sandbox_images/" in n}
        assert set(sources) <= packaged
        assert (
            z.read("toolsmith/_sandbox_images/Dockerfile")
            == (ROOT / "sandbox_images/Dockerfile").read_bytes()
        )

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    site = next(env_dir.glob("lib/python*/site-packages"))
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    python = env_dir / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {
        k: v for k, v in os.environ.items() if k not in ("TOOLSMITH_SANDBOX_IMAGES", "PYTHONPATH")
    }
    env |= {"TOOLSMITH_HOME": str(tmp_path / "home"), "TOOLSMITH_REGISTRY": ""}

    def toolsmith(*args: str) -> Any:
        proc = subprocess.run(
            [env_dir / "bin" / "toolsmith", *args, "--json"],
            capture_output=True,
            text=True,
            cwd=elsewhere,
            env=env,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    where = subprocess.run(
        [python, "-c", "import toolsmith; print(toolsmith.__file__)"],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env=env,
        check=True,
    )
    assert where.stdout.startswith(str(env_dir))  # the wheel, not this checkout
    image = toolsmith("sandbox", "build")
    assert image["inputs_digest"] == sandbox_image.inputs_digest and not image["built"]
    demo = toolsmith("demo")
    assert demo["build"]["status"] == "published"
    assert [c.get("result") for c in demo["calls"][:2]] == [5400, 187200]  # 1h30m, 2d 4h
    assert "cannot parse duration" in demo["calls"][2]["error"]  # "90 minutes", by design
