"""Builders shared by the registry, signing and CLI tests (no tests of its own).

A passing TestReport is just data here: the registry signs and stores what the sandbox proved.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from toolsmith.registry import KeyRole, Registry
from toolsmith.report import Outcome, Provenance, TestCase, TestReport
from toolsmith.signing import SigningKey, build_index, public_pem, sign_envelope
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
    """A registry trusting ``publisher``, and ``approver`` as an approver named alice."""
    reg = Registry(path)
    reg.trust.trust(public_pem(publisher.public_key), "publisher")
    reg.trust.trust(public_pem(approver.public_key), "alice", KeyRole.APPROVER)
    return reg


def read_index_doc(reg: Registry, name: str) -> dict[str, Any]:
    """The index document inside ``name``'s signed index file."""
    envelope = json.loads((reg.path / "index" / f"{name}.json").read_bytes())
    return json.loads(base64.b64decode(envelope["payload"]))["predicate"]["index"]


def write_index_doc(
    reg: Registry, name: str, doc: dict[str, Any], signer: SigningKey | None
) -> None:
    """Store an edited index document: re-signed by ``signer``, or with ``None`` under the old
    signatures, which is all an attacker without a trusted key can do."""
    path = reg.path / "index" / f"{name}.json"
    statement = build_index(doc["name"], doc)
    if signer is not None:
        path.write_bytes(sign_envelope(statement, [signer]))
        return
    envelope = json.loads(path.read_bytes())
    envelope["payload"] = base64.b64encode(statement).decode()
    path.write_text(json.dumps(envelope))


def edit_record(
    reg: Registry, name: str, version: str, signer: SigningKey | None, **changes: object
) -> None:
    """Change fields of one version's record in ``name``'s index (see ``write_index_doc``)."""
    doc = read_index_doc(reg, name)
    for rec in doc["records"]:
        if rec["version"] == version:
            rec.update(changes)
    write_index_doc(reg, name, doc, signer)
