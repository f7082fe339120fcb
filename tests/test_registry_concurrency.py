"""Real processes against one registry: concurrent publishers, and publishers killed mid-way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.test_registry_support import code_for, make_spec, passing_report, provenance
from toolsmith.registry import Registry

ROOT = Path(__file__).resolve().parents[1]

PRELUDE = """
import os, signal, sys, tempfile, time
from pathlib import Path
from tests.test_registry_support import code_for, make_spec, passing_report, provenance
from toolsmith.registry import FileStorage, Registry

def publish(reg, version=None, body="a + b"):
    return reg.publish(make_spec(), code_for("add_ints", body), passing_report(), provenance(),
                       version=version)
"""


def run_child(script: str, reg_path: Path, home: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "TOOLSMITH_HOME": str(home), "REG": str(reg_path)}
    return subprocess.Popen(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(script)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Registry:
    """A registry with add_ints 1.0.0, so the default key is made and trusted up front."""
    monkeypatch.setenv("TOOLSMITH_HOME", str(tmp_path / "home"))
    reg = Registry(tmp_path / "reg")
    reg.publish(make_spec(), code_for("add_ints"), passing_report(), provenance(), version="1.0.0")
    return reg


def assert_consistent(reg: Registry) -> None:
    results = reg.verify()
    assert results and all(r.ok for r in results), [r.error for r in results if not r.ok]


def test_two_processes_publishing_at_once_lose_nothing(seeded: Registry, tmp_path: Path) -> None:
    """Two publishers racing on one tool each get distinct versions and every record survives."""
    go = tmp_path / "go"
    script = f"""
    reg = Registry(Path(os.environ["REG"]))
    while not Path({str(go)!r}).exists():
        time.sleep(0.001)
    for i in range(12):
        print(publish(reg, body=f"a + b + 0 * {{os.getpid()}} * {{i}}").version)
    """
    children = [run_child(script, seeded.path, tmp_path / "home") for _ in range(2)]
    time.sleep(0.5)
    go.touch()
    outputs = [c.communicate(timeout=120) for c in children]
    assert [c.returncode for c in children] == [0, 0], [err for _, err in outputs]
    published = [v for out, _ in outputs for v in out.split()]
    assert len(published) == len(set(published)) == 24
    versions = [r.version for r in seeded.versions("add_ints")]
    assert versions == ["1.0.0", *[f"1.0.{i}" for i in range(1, 25)]]
    assert_consistent(seeded)


KILLERS = {
    "half_written_blob": """
    class Storage(FileStorage):
        def _atomic_write(self, target, data):
            if target.parent.name == "sha256" and not target.exists():
                fd, _ = tempfile.mkstemp(dir=self._tmp, prefix=target.name, suffix=".tmp")
                os.write(fd, data[: len(data) // 2])
                os.kill(os.getpid(), signal.SIGKILL)
            super()._atomic_write(target, data)
    """,
    "after_blobs_before_index": """
    class Storage(FileStorage):
        def write_index(self, name, data):
            os.kill(os.getpid(), signal.SIGKILL)
    """,
    "half_written_index": """
    class Storage(FileStorage):
        def _atomic_write(self, target, data):
            if target.parent.name == "index":
                fd, _ = tempfile.mkstemp(dir=self._tmp, prefix=target.name, suffix=".tmp")
                os.write(fd, data[: len(data) // 2])
                os.kill(os.getpid(), signal.SIGKILL)
            super()._atomic_write(target, data)
    """,
}


@pytest.mark.parametrize("stage", sorted(KILLERS))
def test_publisher_killed_mid_publish_leaves_registry_consistent(
    seeded: Registry, tmp_path: Path, stage: str
) -> None:
    """SIGKILL at a chosen point of a publish: the index is intact and the publish can be redone."""
    index_before = (seeded.path / "index" / "add_ints.json").read_bytes()
    script = (
        KILLERS[stage]
        + """
    reg = Registry(Path(os.environ["REG"]), storage=Storage(Path(os.environ["REG"])))
    publish(reg, version="1.1.0", body="a - -b")
    """
    )
    child = run_child(script, seeded.path, tmp_path / "home")
    _, err = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL, err
    assert (seeded.path / "index" / "add_ints.json").read_bytes() == index_before
    assert [r.version for r in seeded.versions("add_ints")] == ["1.0.0"]
    assert_consistent(seeded)
    if stage != "after_blobs_before_index":
        assert list((seeded.path / "tmp").iterdir()), "the kill should leave a partial temp file"
    retry = seeded.publish(
        make_spec(), code_for("add_ints", "a - -b"), passing_report(), provenance(), version="1.1.0"
    )
    assert seeded.resolve("add_ints").digest == retry.digest


@pytest.mark.parametrize("delay", [0.4, 0.7, 1.0])
def test_publisher_killed_at_a_random_moment(
    seeded: Registry, tmp_path: Path, delay: float
) -> None:
    """A publisher looping with large blobs, killed whenever: what is indexed always verifies."""
    script = """
    reg = Registry(Path(os.environ["REG"]))
    pad = "#" * 2_000_000
    i = 0
    while True:
        i += 1
        publish(reg, body=f"a + b  # {i}\\n{pad}")
    """
    child = run_child(script, seeded.path, tmp_path / "home")
    time.sleep(delay)
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL
    assert_consistent(seeded)
