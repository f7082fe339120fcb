"""Re-publish the curated registry from ``registry/sources`` through the same gate as any tool.

    python registry/publish.py [--keys DIR] [--max-examples N]

Every ``sources/<name>/spec.yaml`` + ``impl.py`` is built with toolsmith's pipeline (example,
property and generic tests in the Docker sandbox, the constitution, the capability policy) and
published as version 1.0.0 into a fresh TUF repository at ``registry/`` (its ``metadata/``,
``targets/`` and audit log are replaced; ``sources/`` and ``README.md`` are kept).

Keys: the registry's root, publisher (targets) and online (snapshot and timestamp) keys are read
from ``--keys DIR`` (else ``$TOOLSMITH_CURATED_KEYS``); a directory without them gets a fresh set.
Keep that directory OUT of the repository: whoever holds it can publish as the curated registry.
Rerunning with the same keys keeps the fingerprint; new keys give a new one, which this script
writes into README.md's quick start (the ``registry trust`` line) and prints.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from pathlib import Path

from toolsmith.keys import KeyStore
from toolsmith.pipeline import BuildOptions, BuildStatus, Toolsmith, require_success
from toolsmith.policy import PolicySection, load_policy
from toolsmith.registry import Registry
from toolsmith.spec import ToolSpec

HERE = Path(__file__).resolve().parent
README = HERE.parent / "README.md"
ROLES = {"root": "root", "default": "targets", "online": "snapshot and timestamp"}
# Distributions the curated tools' locks install, reviewed by the maintainers: allowed here (the
# shipped policy holds every dependency for a person's approval), whatever else stays as shipped.
REVIEWED_DEPENDENCIES = ["python-dateutil", "six", "tzdata"]
FINGERPRINT_LINE = re.compile(r"(toolsmith registry trust registry --root )[0-9a-f]{64}")


def keys_in(path: Path) -> KeyStore:
    """The curated registry's keys in ``path``, generated there when missing."""
    store = KeyStore(path)
    have = {k.name for k in store.list()}
    for name in ROLES:
        if name not in have:
            store.generate(name)
            print(f"generated the {ROLES[name]} key in {path}", file=sys.stderr)
    return store


def publish(keys_dir: Path, max_examples: int) -> str:
    """Rebuild ``registry/`` from its sources; returns the new root fingerprint."""
    store = keys_in(keys_dir)
    for leftover in ("metadata", "targets"):
        shutil.rmtree(HERE / leftover, ignore_errors=True)
    for leftover in ("audit.jsonl", "audit.jsonl.head", ".lock"):
        (HERE / leftover).unlink(missing_ok=True)
    registry = Registry(HERE, keys=store)
    online = [store.load("online")]
    fingerprint = registry.init(
        root=[store.load("root")],
        targets=[store.load("default")],
        snapshot=online,
        timestamp=online,
        # The curated registry is a local, rarely-touched one: it must load years from now.
        expiry_days={"root": 3650, "targets": 3650, "snapshot": 3650, "timestamp": 3650},
    )
    options = BuildOptions(version="1.0.0", max_examples=max_examples, max_attempts=1)
    shipped = load_policy()
    policy = shipped.model_copy(
        update={
            "dependencies": PolicySection(allow=REVIEWED_DEPENDENCIES, default="needs_approval"),
            "source": "<shipped policy, curated dependencies reviewed>",
        }
    )
    with Toolsmith(registry, policy=policy) as ts:
        for source in sorted(p for p in (HERE / "sources").iterdir() if p.is_dir()):
            spec = ToolSpec.from_file(source / "spec.yaml")
            result = ts.build_from_spec(spec, (source / "impl.py").read_text(), options)
            require_success(result)
            if result.status != BuildStatus.PUBLISHED:
                raise SystemExit(f"{spec.name} was not published: {result.status.value}")
            print(f"published {result.ref}", file=sys.stderr)
    return fingerprint


def pin_in_readme(fingerprint: str) -> None:
    text = README.read_text()
    updated, count = FINGERPRINT_LINE.subn(rf"\g<1>{fingerprint}", text)
    if count == 0:
        print("README.md has no `registry trust registry --root` line to update", file=sys.stderr)
    README.write_text(updated)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=Path, default=os.environ.get("TOOLSMITH_CURATED_KEYS"))
    parser.add_argument("--max-examples", type=int, default=200)
    args = parser.parse_args()
    if args.keys is None:
        parser.error("pass --keys DIR (or set TOOLSMITH_CURATED_KEYS), a directory outside git")
    keys_dir = args.keys.resolve()
    if keys_dir.is_relative_to(HERE.parent):
        parser.error(f"{keys_dir} is inside the repository; keep the registry's keys outside it")
    fingerprint = publish(keys_dir, args.max_examples)
    pin_in_readme(fingerprint)
    print(fingerprint)


if __name__ == "__main__":
    main()
