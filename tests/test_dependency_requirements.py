"""A spec's dependencies and a published lock are data that reach pip on the host: nothing in them
may make pip fetch or build a project (direct references, local archives) or smuggle lines and
options into the requirements file written at load. No network: every refusal happens first."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tests.specs import ADD_INTS
from toolsmith.dependencies import LockedPackage, resolve, sandbox_platforms
from toolsmith.errors import DependencyError
from toolsmith.spec import ToolSpec

HOSTILE = [
    "evilpkg @ http://127.0.0.1:9/evil-1.0.tar.gz",
    "evilpkg @ file:///tmp/evil",
    "evil.tar.gz",
    "evil-1.0.zip",
    "evil-1.0-py3-none-any.whl",
]


@pytest.mark.parametrize("dep", HOSTILE)
def test_spec_refuses_direct_references_and_archives(dep: str) -> None:
    """A dependency pip would fetch or build from a URL or file is refused when the spec is read."""
    with pytest.raises(ValidationError, match="only names on the index are allowed"):
        ToolSpec.model_validate({**ADD_INTS, "dependencies": [dep]})


@pytest.mark.parametrize("dep", HOSTILE)
def test_resolver_refuses_them_before_running_pip(dep: str) -> None:
    """The lock step refuses them too (defence in depth: it is public API), before pip runs."""
    with pytest.raises(DependencyError, match="only names on the index are allowed"):
        resolve([dep], python="3.11", platforms=sandbox_platforms("x86_64"))


def test_ordinary_requirements_still_validate() -> None:
    """Names with dots, extras, specifiers and markers stay valid dependencies."""
    deps = [
        "python-dateutil>=2.8",
        "zope.interface",
        "requests[socks]<3",
        "tomli; python_version<'3.11'",
    ]
    assert ToolSpec.model_validate({**ADD_INTS, "dependencies": deps}).dependencies == deps


GOOD: dict[str, Any] = {
    "name": "six",
    "version": "1.16.0",
    "filename": "six-1.16.0-py2.py3-none-any.whl",
    "url": "https://files.example/six-1.16.0-py2.py3-none-any.whl",
    "sha256": "0" * 64,
}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("version", "1.16.0\nevil @ http://127.0.0.1:9/evil.tar.gz"),
        ("version", "1.16.0 --index-url http://127.0.0.1:9"),
        ("name", "six\n--extra-index-url=http://127.0.0.1:9"),
        ("name", "Six_Pkg"),
        ("filename", "six-1.16.0.tar.gz"),
        ("filename", "../../six-1.16.0-py3-none-any.whl"),
        ("filename", "x.whl\n-e /tmp/evil"),
    ],
)
def test_lock_fields_cannot_smuggle_requirement_lines(field: str, value: str) -> None:
    """A published lock whose fields carry newlines, options, paths or non-canonical names is
    refused as data, before any requirements file is written."""
    assert LockedPackage.model_validate(GOOD).name == "six"
    with pytest.raises(ValidationError):
        LockedPackage.model_validate({**GOOD, field: value})
