"""Every third-party module toolsmith imports is a declared dependency: `pip install -e .` on a
clean machine must give a working `toolsmith`, whatever else happens to be installed here."""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def imported_top_levels() -> set[str]:
    names = set()
    for path in (ROOT / "toolsmith").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"toolsmith", "__future__"}


def test_every_imported_distribution_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {canonicalize_name(Requirement(d).name) for d in project["dependencies"]}
    providers = packages_distributions()
    # Modules that only exist inside the sandbox image, imported by code generated for it.
    in_image_only = {"toolsmith_harness", "toolsmith_runner"}
    missing = {
        module: providers.get(module)
        for module in imported_top_levels() - in_image_only
        if not {canonicalize_name(d) for d in providers.get(module, [])} & declared
    }
    assert not missing, f"imported but not declared in pyproject dependencies: {missing}"
