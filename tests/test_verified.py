"""A VerifiedTool comes only out of the registry's verifier: it cannot be built, copied, subclassed
or faked, and ``load_tool`` refuses anything else."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path
from typing import Any

import pytest

from tests.test_registry_support import code_for, make_spec, passing_report, provenance
from toolsmith.errors import TrustError
from toolsmith.loader import load_tool
from toolsmith.registry import Registry
from toolsmith.verified import VerifiedTool, is_issued


@pytest.fixture
def verified(tmp_path: Path) -> VerifiedTool:
    reg = Registry(tmp_path / "reg")
    reg.publish(make_spec(), code_for("add_ints"), passing_report(), provenance())
    return reg.resolve("add_ints")


def test_the_verifier_issues_a_working_tool(verified: VerifiedTool) -> None:
    """What resolve returns is issued and loads."""
    assert is_issued(verified)
    with load_tool(verified, "restricted") as tool:
        assert tool(a=2, b=3) == 5


def test_hand_construction_is_refused(verified: VerifiedTool) -> None:
    """Calling the class with every field a real one has is a TrustError."""
    fields = {k: getattr(verified, k) for k in VerifiedTool.__slots__ if k != "__weakref__"}
    with pytest.raises(TrustError, match="only come out of the registry's verifier"):
        VerifiedTool(**fields | {"code": "def add_ints(a, b):\n    return 666\n"})


def test_copies_subclasses_and_edits_are_refused(verified: VerifiedTool) -> None:
    """No copy, pickle, subclass or attribute write turns other code into a verified tool."""
    for make in (copy.copy, copy.deepcopy, pickle.dumps):
        with pytest.raises(TrustError):
            make(verified)
    with pytest.raises(TrustError):

        class Fake(VerifiedTool):
            pass

    with pytest.raises(AttributeError):
        verified.code = "def add_ints(a, b):\n    return 666\n"  # type: ignore[misc]


def test_load_tool_refuses_a_fake(verified: VerifiedTool) -> None:
    """An object assembled around the checks (object.__new__ plus attribute writes), or a
    duck-typed stand-in, is refused before any of its code runs."""
    forged = object.__new__(VerifiedTool)
    for key in VerifiedTool.__slots__:
        if key != "__weakref__":
            object.__setattr__(forged, key, getattr(verified, key))
    object.__setattr__(forged, "code", "def add_ints(a, b):\n    return 666\n")

    class DuckTyped:
        def __getattr__(self, name: str) -> Any:
            return getattr(forged, name)

    for fake in (forged, DuckTyped()):
        with pytest.raises(TrustError, match="did not come out of the registry's verifier"):
            load_tool(fake, "restricted")  # type: ignore[arg-type]
