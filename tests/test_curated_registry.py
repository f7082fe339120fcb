"""The repository's curated registry: a fresh clone can browse, verify and call its tools."""

from __future__ import annotations

import pytest

from tests.test_registry_support import CURATED, curated_copy
from toolsmith.errors import ToolRaisedError
from toolsmith.loader import Tool, load_tool
from toolsmith.registry import Registry


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    copy = tmp_path_factory.mktemp("curated") / "registry"
    curated_copy(copy)
    return Registry(copy)


def test_every_version_verifies(registry: Registry) -> None:
    """At least eight tools, every one signed by the key in the repo and untampered."""
    results = registry.verify()
    assert len(results) >= 8
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]


def test_sources_match_what_was_published(registry: Registry) -> None:
    """The published code is exactly the reviewed source under registry/sources."""
    for record in registry.list():
        tool = registry.resolve(record.name)
        source = CURATED / "sources" / record.name / "impl.py"
        assert tool.code == source.read_text(), record.name
        assert tool.report.passed and tool.provenance.source == "hand-written"


def _examples_hold(tool: Tool, name: str) -> None:
    for example in tool.spec.examples:
        if example.raises:
            with pytest.raises(ToolRaisedError) as raised:
                tool(**example.args)
            assert raised.value.type_name == example.raises
        elif isinstance(example.returns, float):
            assert tool(**example.args) == pytest.approx(example.returns), name
        else:
            assert tool(**example.args) == example.returns, name


def test_examples_run_in_the_restricted_runtime(registry: Registry) -> None:
    """Every example of every stdlib-only curated tool holds when the verified tool is called."""
    for record in registry.list():
        verified = registry.resolve(record.name)
        if not verified.spec.dependencies:
            _examples_hold(load_tool(verified, "restricted"), record.name)


@pytest.mark.docker
def test_a_curated_tool_with_a_dependency_runs_in_docker(registry: Registry) -> None:
    """parse_date (python-dateutil) carries its signed lock and its examples hold in Docker,
    in the dependency layer built from that lock."""
    verified = registry.resolve("parse_date")
    assert verified.report.lock is not None
    assert "python-dateutil" in verified.report.lock.names()
    with load_tool(verified) as tool:
        _examples_hold(tool, "parse_date")
