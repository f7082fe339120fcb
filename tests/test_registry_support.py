"""Builders shared by the registry, signing and CLI tests (no tests of its own).

A passing TestReport is just data here: the registry signs and stores what the sandbox proved.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

from toolsmith.keys import default_signing_key
from toolsmith.registry import KeyRole, Registry, trust_registry
from toolsmith.report import Outcome, Provenance, TestCase, TestReport
from toolsmith.signing import SigningKey, public_pem
from toolsmith.spec import ToolSpec


def make_spec(
    name: str = "add_ints", description: str = "Add two integers.", **extra: object
) -> ToolSpec:
    return ToolSpec.model_validate(
        {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                "required": ["a", "b"],
            },
            "returns": {"type": "integer"},
            "examples": [{"args": {"a": 1, "b": 2}, "returns": 3}],
            **extra,
        }
    )


def code_for(name: str, body: str = "a + b") -> str:
    return f"def {name}(a: int, b: int) -> int:\n    return {body}\n"


def passing_report() -> TestReport:
    return TestReport(tests=[TestCase(nodeid="t", outcome=Outcome.PASSED)], expected=1, collected=1)


def failing_report() -> TestReport:
    return TestReport(
        tests=[TestCase(nodeid="t", outcome=Outcome.FAILED, failure="assert 4 == 3")],
        expected=1,
        collected=1,
    )


def provenance() -> Provenance:
    return Provenance(source="hand-written", task="add numbers")


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` with its sha256: to assert that nothing changed."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def flip_byte(path: Path, offset: int = 0) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def registry_with_roles(path: Path, publisher: SigningKey, approver: SigningKey) -> Registry:
    """A registry whose root and targets (publisher) role ``publisher`` holds, with ``approver``
    as an approver named alice; the online roles (snapshot, timestamp) are held by the key
    store's default key, as on a maintainer's machine."""
    online = [default_signing_key()]
    reg = Registry(path)
    reg.init(root=[publisher], targets=[publisher], snapshot=online, timestamp=online)
    reg.trust_key(public_pem(approver.public_key), "alice", KeyRole.APPROVER, signer=publisher)
    return reg


def edit_version(
    reg: Registry, name: str, version: str, signers: dict[str, list[SigningKey]], **custom: object
) -> None:
    """Re-sign ``name@version``'s statement target with changed custom fields, as a holder of
    the targets keys could (the registry's own commit path, so the metadata chain is valid)."""
    with reg._edit() as state:
        info = state.tool_targets(name)[f"tools/{name}/{version}/statement"]
        info.unrecognized_fields["custom"] = {**info.custom, **custom}
        state.touch(name)
        reg._commit(
            state, dict(signers), "publish", subject=name, actor="test", reason=None, data={}
        )


def plant_decision(
    reg: Registry, name: str, version: str, envelope: bytes, approver: SigningKey
) -> None:
    """Record ``envelope`` as the decision on ``name@version`` in the approvers role, signed by
    ``approver`` (what a holder of an approver key could do)."""
    from tuf.api.metadata import Metadata, Targets

    assert reg._repo is not None
    with reg._edit() as state:
        info = reg._repo.put_target(
            f"approvals/{name}/{version}", envelope, {"decision": "approved", "digest": "x"}
        )
        if state.approvers is None:
            state.approvers = Metadata(Targets())
        state.approvers.signed.targets[info.path] = info
        state.changed.add("approvers")
        reg._commit(
            state,
            {"approvers": [approver]},
            "approve",
            subject=name,
            actor="t",
            reason=None,
            data={},
        )


def holder_files(reg: Registry, name: str = "add_ints") -> tuple[str, list[Path]]:
    """The role whose metadata lists ``name``'s versions (its hashed bin, or targets in the flat
    layout), and that role's metadata files in the registry, oldest first."""
    assert reg._repo is not None and isinstance(reg.path, Path)
    role = reg._repo.load().holder(name)[0]
    files = (reg.path / "metadata").glob(f"*.{role}.json")
    return role, sorted(files, key=lambda p: int(p.name.split(".")[0]))


def target_file(reg: Registry, sha256: str) -> Path:
    """The stored file of the target whose sha256 is ``sha256``."""
    [path] = [p for p in (reg.path / "targets").rglob(f"{sha256}.*")]
    return path


CURATED = Path(__file__).resolve().parent.parent / "registry"


def curated_fingerprint() -> str:
    """The curated registry's root fingerprint, as README.md's quick start pins it."""
    readme = (CURATED.parent / "README.md").read_text()
    match = re.search(r"toolsmith registry trust registry --root ([0-9a-f]{64})", readme)
    assert match is not None, "README.md must pin the curated registry's root"
    return match.group(1)


def curated_copy(dest: Path) -> Path:
    """A copy of the curated registry at ``dest``, trusted by the README's fingerprint (a copy
    is another location, so it is pinned like any registry a user is given)."""
    shutil.copytree(CURATED, dest, ignore=shutil.ignore_patterns("sources", "*.py", ".lock"))
    trust_registry(dest, curated_fingerprint())
    return dest
