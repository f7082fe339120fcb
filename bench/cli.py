"""CLI start-up benchmark: wall time of `toolsmith` commands against `python -c pass`, each a fresh
process, measured interleaved round-robin in the same run.

    python bench/cli.py [--rounds 30]

Rows (each the median over ``--rounds`` runs; the ratio is against the median of the baseline's
runs, interleaved with them):
- ``python -c pass``: the baseline, an interpreter of the same venv starting and exiting;
- ``import typer, rich``: what any command that goes through the typer app pays at least;
- ``toolsmith --version``: the console script, answered before typer, rich or pydantic load;
- ``toolsmith --log-level warning --version``: the same answer through the whole typer app (every
  command group imported), which is what ``--version`` cost before the fast path;
- ``toolsmith --help``, ``registry list`` and ``registry show slugify`` on a copy of the curated
  registry pinned in a home of its own.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def toolsmith_command() -> list[str]:
    """The installed console script beside this interpreter, as a user runs it."""
    script = Path(sys.executable).parent / "toolsmith"
    if not script.exists():
        sys.exit(f"no console script at {script}: pip install -e . into this interpreter's venv")
    return [str(script)]


def pinned_curated_copy(home: Path) -> Path:
    """A copy of the curated registry, its root pinned (README's fingerprint) in ``home``."""
    dest = home / "registry"
    shutil.copytree(
        ROOT / "registry", dest, ignore=shutil.ignore_patterns("sources", "*.py", ".lock")
    )
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"toolsmith registry trust registry --root ([0-9a-f]{64})", readme)
    if match is None:
        sys.exit("README.md does not pin the curated registry's root")
    subprocess.run(
        [*toolsmith_command(), "registry", "trust", str(dest), "--root", match.group(1)],
        check=True,
        capture_output=True,
        env={**os.environ, "TOOLSMITH_HOME": str(home)},
    )
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()

    ts = toolsmith_command()
    py = [sys.executable]
    rows: dict[str, list[str]] = {
        "python -c pass": [*py, "-c", "pass"],
        "import typer, rich": [*py, "-c", "import typer, rich.console"],
        "toolsmith --version": [*ts, "--version"],
        "toolsmith --log-level warning --version": [*ts, "--log-level", "warning", "--version"],
        "toolsmith --help": [*ts, "--help"],
        "toolsmith registry list": [*ts, "registry", "list"],
        "toolsmith registry show slugify": [*ts, "registry", "show", "slugify"],
    }
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        home = Path(tmp)
        env = {
            **os.environ,
            "TOOLSMITH_HOME": str(home),
            "TOOLSMITH_REGISTRY": str(pinned_curated_copy(home)),
            "COLUMNS": "120",
        }
        samples: dict[str, list[float]] = {name: [] for name in rows}
        for cmd in rows.values():  # one untimed run each: page cache, .pyc files
            subprocess.run(cmd, check=True, capture_output=True, env=env)
        for _ in range(args.rounds):
            for name, cmd in rows.items():
                start = time.perf_counter()
                subprocess.run(cmd, check=True, capture_output=True, env=env)
                samples[name].append(time.perf_counter() - start)

    base = statistics.median(samples["python -c pass"])
    python = sys.version.split()[0]
    print(f"{args.rounds} rounds, interleaved; Python {python}, {os.cpu_count()} cpus")
    print(f"{'command':<42} {'p50 ms':>8} {'min ms':>8} {'x pass':>7}")
    for name, times in samples.items():
        p50 = statistics.median(times)
        print(f"{name:<42} {p50 * 1000:8.1f} {min(times) * 1000:8.1f} {p50 / base:6.1f}x")


if __name__ == "__main__":
    main()
