"""Recursive parameter schemas: a tree of nodes (a ``$ref`` back to its own definition) is drawn
with bounded depth, so such a spec builds, and its drawn trees are deep enough to catch a tool
that only looks one level down. A schema that truly cannot be drawn is refused naming the keyword
and why. The builds use hand-written code (``--spec --impl``: no model) in the real sandbox.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from toolsmith.errors import SpecError
from toolsmith.pipeline import AttemptVerdict, BuildOptions, BuildStatus, Toolsmith
from toolsmith.registry import Registry
from toolsmith.sandbox import Sandbox
from toolsmith.spec import ToolSpec
from toolsmith.testgen import REF_DEPTH, bounded_refs, check_drawable

TREE_SPEC: dict[str, Any] = {
    "name": "tree_sum",
    "description": "Sum the values of every node of a tree of nodes.",
    "parameters": {
        "type": "object",
        "properties": {"tree": {"$ref": "#/$defs/node"}},
        "required": ["tree"],
        "additionalProperties": False,
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "value": {"type": "integer", "minimum": -1000, "maximum": 1000},
                    "children": {
                        "type": "array",
                        "items": {"$ref": "#/$defs/node"},
                        "maxItems": 2,
                    },
                },
                "required": ["value"],
                "additionalProperties": False,
            }
        },
    },
    "returns": {"type": "integer"},
    # No example is deeper than two levels: only drawn trees go deeper.
    "examples": [
        {"args": {"tree": {"value": 1}}, "returns": 1},
        {"args": {"tree": {"value": 1, "children": [{"value": 2}, {"value": 3}]}}, "returns": 6},
    ],
    "properties": [
        {
            "name": "a_node_is_its_value_plus_its_subtrees",
            "source": (
                "def check(args, result, tool):\n"
                "    tree = args['tree']\n"
                "    subtrees = [tool(tree=child) for child in tree.get('children', [])]\n"
                "    assert result == tree['value'] + sum(subtrees)\n"
            ),
        }
    ],
}

TREE_SUM = '''\
def tree_sum(tree):
    """The sum of the values of ``tree`` and all its descendants."""
    return tree["value"] + sum(tree_sum(child) for child in tree.get("children", []))
'''

# Right on every tree of at most two levels, wrong on deeper ones.
ONE_LEVEL_DOWN = '''\
def tree_sum(tree):
    """The node's value and its children's, ignoring grandchildren."""
    return tree["value"] + sum(child["value"] for child in tree.get("children", []))
'''


def depth(node: dict[str, Any]) -> int:
    return 1 + max((depth(c) for c in node.get("children", [])), default=0)


def test_a_tree_of_nodes_is_drawable_to_a_bounded_depth() -> None:
    """The spec passes the drawability check, and the drawing schema expands the node's $ref
    REF_DEPTH times and then admits no deeper node, so draws stop there."""
    spec = ToolSpec.parse(TREE_SPEC)
    check_drawable(spec)
    cut: list[str] = []
    bounded = bounded_refs(spec.parameters, cut=cut)
    assert cut and set(cut) == {"#/$defs/node"}
    assert "$defs" not in bounded and "$ref" not in str(bounded)
    node = bounded["properties"]["tree"]
    for _ in range(REF_DEPTH - 1):
        node = node["properties"]["children"]["items"]
    assert node["properties"]["children"]["items"] == {"not": {}}


def test_a_recursion_that_never_stops_is_refused_naming_the_ref() -> None:
    """Nodes that must each have at least one child describe no finite tree: refused with the
    $ref, the reason, and how to let the recursion stop (not "make the parameters
    satisfiable")."""
    endless = copy.deepcopy(TREE_SPEC)
    node = endless["parameters"]["$defs"]["node"]
    node["required"] = ["value", "children"]
    node["properties"]["children"]["minItems"] = 1
    endless["examples"] = []
    with pytest.raises(SpecError) as e:
        check_drawable(ToolSpec.parse(endless))
    assert "$ref '#/$defs/node' recurses" in e.value.message
    assert "no finite value" in e.value.message
    assert e.value.hint is not None and "minItems 0" in e.value.hint


def test_a_ref_outside_the_spec_is_refused_naming_it() -> None:
    """A $ref to another document cannot be drawn from: the message names it, the fix says
    where to put the schema."""
    remote = copy.deepcopy(TREE_SPEC)
    remote["parameters"]["properties"]["tree"] = {"$ref": "https://example.com/node.json"}
    remote["examples"] = []
    with pytest.raises(SpecError, match=r"\$ref 'https://example.com/node.json' points outside"):
        check_drawable(ToolSpec.parse(remote))


@pytest.mark.docker
def test_a_tree_spec_builds_and_its_drawn_trees_catch_a_shallow_tool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox
) -> None:
    """In the sandbox, the correct code passes and is published; code that looks only one level
    down passes every example but fails the property on a drawn tree deeper than any example."""
    monkeypatch.setenv("TOOLSMITH_HOME", str(tmp_path / "home"))
    spec = ToolSpec.parse(TREE_SPEC)
    assert max(depth(ex.args["tree"]) for ex in spec.examples) == 2
    ts = Toolsmith(Registry(tmp_path / "registry"), None, sandbox)
    opts = BuildOptions(max_examples=25)
    good = ts.build_from_spec(spec, TREE_SUM, opts)
    assert good.status == BuildStatus.PUBLISHED, good.attempts
    assert good.report is not None and good.report.passed
    shallow = ts.build_from_spec(spec, ONE_LEVEL_DOWN, opts.model_copy(update={"dry_run": True}))
    assert [a.verdict for a in shallow.attempts] == [AttemptVerdict.FAILED]
    assert shallow.report is not None
    # The spec's own examples; the published version's ride along as the regression guard.
    examples = [
        t
        for t in shallow.report.tests
        if "test_example" in t.nodeid and not t.nodeid.startswith("test_regression")
    ]
    assert len(examples) == 2 and all(t.outcome == "passed" for t in examples)
    # Only a drawn tree three levels deep tells this code apart: the property fails on one, or,
    # on a loaded machine, the job reaches its wall-clock limit while hypothesis shrinks that
    # tree (the correct code passed the same tests just above).
    failure = shallow.attempts[0].failure
    assert "a_node_is_its_value_plus_its_subtrees" in failure or "wall-clock limit" in failure


@pytest.mark.docker
def test_cli_build_of_a_tree_spec_with_its_impl(tmp_path: Path) -> None:
    """`toolsmith build --spec --impl` (no model) publishes the tree spec: it is no longer
    refused with "make the parameters satisfiable"."""
    spec, impl = tmp_path / "tree.yaml", tmp_path / "impl.py"
    spec.write_text(yaml.safe_dump(TREE_SPEC))
    impl.write_text(TREE_SUM)
    env = {**os.environ, "TOOLSMITH_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    r = subprocess.run(
        [sys.executable, "-c", "from toolsmith.cli import main; main()", "build",
         "--spec", str(spec), "--impl", str(impl), "--registry", str(tmp_path / "registry"),
         "--max-examples", "25"],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "published" in r.stdout and "tree_sum@" in r.stdout
    assert "satisfiable" not in r.stderr
