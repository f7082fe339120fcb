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
from toolsmith.registry import Registry
from toolsmith.registry._storage import RepoDir

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
    # SIGKILL inside RepoDir.write at one step of a publish; "half" first leaves half the bytes
    # in the write's temporary file, as a kill mid-write would.
    "half_written_target": ("targets/", True),
    # The first metadata a publish writes is the tool's hashed bin.
    "after_targets_before_metadata": (".tools-bin-", False),
    "half_written_targets_metadata": (".tools-bin-", True),
    "before_timestamp_commit": ("metadata/timestamp.json", False),
    "half_written_timestamp": ("metadata/timestamp.json", True),
}
KILLER = """
write = RepoDir.write
def killing_write(self, rel, data):
    if {prefix!r} in rel:
        if {half!r}:
            d, _, name = rel.rpartition("/")
            (self.root / d).mkdir(parents=True, exist_ok=True)
            (self.root / d / f".{{name}}.killed.tmp").write_bytes(data[: len(data) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    write(self, rel, data)
RepoDir.write = killing_write
"""


def metadata_files(reg: Registry) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (reg.path / "metadata").glob("*.json")}


@pytest.mark.parametrize("stage", sorted(KILLERS))
def test_publisher_killed_mid_publish_leaves_registry_consistent(
    seeded: Registry, tmp_path: Path, stage: str
) -> None:
    """SIGKILL at a chosen point of a publish: the committed metadata is intact, readers see the
    registry as it was, and the publish can be redone."""
    prefix, half = KILLERS[stage]
    timestamp = (seeded.path / "metadata" / "timestamp.json").read_bytes()
    script = KILLER.format(prefix=prefix, half=half) + textwrap.dedent("""
        reg = Registry(Path(os.environ["REG"]))
        publish(reg, version="1.1.0", body="a - -b")
    """)
    child = run_child(script, seeded.path, tmp_path / "home")
    _, err = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL, err
    assert (seeded.path / "metadata" / "timestamp.json").read_bytes() == timestamp
    fresh = Registry(seeded.path)
    assert [r.version for r in fresh.versions("add_ints")] == ["1.0.0"]
    assert_consistent(fresh)
    retry = fresh.publish(
        make_spec(), code_for("add_ints", "a - -b"), passing_report(), provenance(), version="1.1.0"
    )
    assert fresh.resolve("add_ints").digest == retry.digest
    if half:
        assert fresh.gc().leftovers >= 1, "the kill should leave a partial temp file for gc"
    assert_consistent(Registry(seeded.path))


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
