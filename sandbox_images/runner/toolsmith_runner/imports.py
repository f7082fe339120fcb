"""Imports come only from the image's read-only trees, never from where a tool can write.

A tool's processes run as the same uid as the runner, serve and the proxy, so whatever they can
write (/work, /tmp, /dev/shm) is theirs. A lazy import in one of those (hypothesis imports libcst
after every failing ``@given`` test, and tries again each time since it is not installed) must not
find a module there. The entry points run with ``-P`` (no working directory on ``sys.path``);
``lock()`` also drops every ``sys.path`` entry that is not on a read-only filesystem and puts a
finder first that refuses any module whose file lies outside those entries. The runner opens it
for its test directory while pytest collects, before the tool has run at all.
"""

from __future__ import annotations

import importlib.abc
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType


def _read_only_dir(path: str) -> bool:
    try:
        return os.path.isdir(path) and bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _under(path: str, roots: Sequence[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


class ImportGuard(importlib.abc.MetaPathFinder):
    """The first finder: asks the others, and refuses what they found in an untrusted place."""

    def __init__(self, roots: Sequence[str]) -> None:
        self.roots = tuple(roots)
        self.opened: tuple[str, ...] = ()

    def trusted(self, path: str) -> bool:
        return _under(os.path.realpath(path), self.roots + self.opened)

    def open(self, directory: str) -> None:
        """Trust ``directory`` until ``close()``: only while no tool code can have run."""
        self.opened = (os.path.realpath(directory),)

    def close(self) -> None:
        """Trust the read-only roots alone again, drop anything else from ``sys.path``, and be
        first in ``sys.meta_path`` again (pytest puts its assertion rewriter in front)."""
        self.opened = ()
        sys.path[:] = [p for p in sys.path if isinstance(p, str) and self.trusted(p)]
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        sys.meta_path.insert(0, self)

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        for finder in list(sys.meta_path):
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec = find(fullname, path, target)
            if spec is None:
                continue
            places = [str(p) for p in spec.submodule_search_locations or ()]
            if spec.has_location and spec.origin:
                places.append(spec.origin)
            for place in places:
                if not self.trusted(place):
                    raise ModuleNotFoundError(
                        f"import of {fullname!r} refused: {place} is not read-only",
                        name=fullname,
                    )
            return spec
        return None


def lock() -> ImportGuard:
    """Keep only read-only ``sys.path`` entries and install the guard in front; idempotent."""
    for finder in sys.meta_path:
        if isinstance(finder, ImportGuard):
            finder.close()
            return finder
    roots = [os.path.realpath(p) for p in sys.path if isinstance(p, str) and _read_only_dir(p)]
    guard = ImportGuard(roots)
    guard.close()
    return guard
