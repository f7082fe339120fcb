"""``VerifiedTool``: a tool version that came out of the registry's verifier, and nothing else.

The loader runs tool code only from a ``VerifiedTool``, so the type must not be forgeable: calling
the class, subclassing it, copying or unpickling one raises ``TrustError``. Only
``toolsmith.registry``'s verifier holds the seal that issues one, and ``is_issued`` tells an issued
instance from an object assembled by other means (``object.__new__`` and attribute writes), so
``load_tool`` refuses a hand-made one.
"""

from __future__ import annotations

import weakref
from typing import Any, NoReturn

from toolsmith.errors import TrustError
from toolsmith.report import Provenance, TestReport
from toolsmith.spec import ToolSpec

_SEAL = object()
_ISSUED: weakref.WeakSet[VerifiedTool] = weakref.WeakSet()
_FIELDS = (
    "name",
    "version",
    "digest",
    "spec",
    "code",
    "report",
    "provenance",
    "signers",
    "approvers",
    "yanked",
    "yank_reason",
)


def _forged(*_: Any, **__: Any) -> NoReturn:
    raise TrustError(
        "a VerifiedTool can only come out of the registry's verifier",
        hint="get one from Registry.resolve(ref) (or load the tool with Registry.load(ref))",
    )


class VerifiedTool:
    """A version whose signatures, metadata and digests were checked; read-only.

    ``digest`` is the sha256 of its signed in-toto statement, ``signers`` the publisher key ids
    that signed it, ``approvers`` the key ids of the approval the consumer trusted (empty when
    none was needed).
    """

    __slots__ = ("__weakref__", *_FIELDS)

    name: str
    version: str
    digest: str
    spec: ToolSpec
    code: str
    report: TestReport
    provenance: Provenance
    signers: tuple[str, ...]
    approvers: tuple[str, ...]
    yanked: bool
    yank_reason: str | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _forged()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        _forged()

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"VerifiedTool is read-only ({name})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"VerifiedTool is read-only ({name})")

    __copy__ = _forged
    __deepcopy__ = _forged
    __reduce__ = _forged
    __reduce_ex__ = _forged

    def __repr__(self) -> str:
        return f"<VerifiedTool {self.name}@{self.version} sha256:{self.digest[:16]}>"


def is_issued(tool: object) -> bool:
    """Whether ``tool`` is a ``VerifiedTool`` the verifier issued (not assembled by hand)."""
    return type(tool) is VerifiedTool and tool in _ISSUED


def _issue(seal: object, **fields: Any) -> VerifiedTool:
    """Used only by the registry's verifier, after every check passed."""
    if seal is not _SEAL or set(fields) != set(_FIELDS):
        _forged()
    tool = object.__new__(VerifiedTool)
    for key, value in fields.items():
        object.__setattr__(tool, key, value)
    _ISSUED.add(tool)
    return tool
