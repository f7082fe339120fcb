"""Name resolution: what a name or attribute chain in a tool's module refers to.

Imports, ``as`` aliases, plain assignments, ``getattr`` and ``operator.attrgetter`` with constant
names, ``__import__`` and ``importlib.import_module`` of constant strings are followed, so
``s = __import__("so" + "cket")`` reads as ``socket``. The result is a list of ``Use``.
"""

from __future__ import annotations

import ast
import builtins
import sys
from collections.abc import Iterator
from typing import Literal, NamedTuple

from toolsmith.analysis._capabilities import (
    GOVERNED_MODULES,
    NAME_READERS,
    REFLECTIVE_BUILTINS,
    WRAPPER_HELPERS,
    canonical,
    capability_of,
)

_BUILTIN_NAMES = frozenset(dir(builtins))


class Use(NamedTuple):
    """A reference to a module-level name, resolved through imports and aliases.

    ``name`` is dotted and fully qualified ("os.environ.get", "builtins.open"); ``args`` holds the
    call's positional arguments folded to strings where they are constant, else None.
    """

    kind: Literal["import", "call", "attribute"]
    name: str
    line: int
    col: int
    args: tuple[str | None, ...] = ()
    keywords: tuple[str, ...] = ()


def fold_str(node: ast.AST | None) -> str | None:
    """Evaluate string-building expressions made only of constants ("so" + "cket", f-strings)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = fold_str(node.left), fold_str(node.right)
        return None if left is None or right is None else left + right
    if (
        isinstance(node, ast.FormattedValue)
        and node.conversion in (-1, 115)
        and not node.format_spec
    ):
        return fold_str(node.value)  # f"{'tem'}" and f"{'tem'!s}" are "tem"
    if isinstance(node, ast.JoinedStr):
        parts = [fold_str(v) for v in node.values]
        return None if None in parts else "".join(p for p in parts if p is not None)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "join"
        and len(node.args) == 1
        and isinstance(node.args[0], ast.List | ast.Tuple)
    ):
        sep = fold_str(node.func.value)
        parts = [fold_str(e) for e in node.args[0].elts]
        if sep is None or None in parts:
            return None
        return sep.join(p for p in parts if p is not None)
    return None


class Resolver:
    """Maps names and attribute chains to fully qualified module paths.

    Aliases are collected over the whole module without regard to scope: a tool is one small
    module, and being conservative here only ever adds findings. Names a star import may have
    brought in resolve to that module's member when the table knows the member.
    """

    def __init__(self, tree: ast.Module) -> None:
        self.aliases: dict[str, str] = {}
        self.imported: list[Use] = []
        #: Dotted names that are modules: what ``import`` statements bind, packages included.
        self.modules: set[str] = set()
        self.stars: list[str] = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    self.imported.append(_use("import", a.name, node))
                    parts = a.name.split(".")
                    self.modules.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
                    if a.asname:
                        self.aliases[a.asname] = a.name
                    else:
                        self.aliases[parts[0]] = parts[0]
            elif isinstance(node, ast.ImportFrom):
                base = "." * node.level + (node.module or "")
                for a in node.names:
                    self.imported.append(_use("import", f"{base}.{a.name}", node))
                    if a.name == "*":
                        self.stars.append(base)
                    else:
                        self.aliases[a.asname or a.name] = f"{base}.{a.name}"
        # Bindings of a resolvable value (``s = socket``; ``run = os.system``; ``a, b = os, sys``;
        # ``(r := os.system)``) are aliases too, followed until nothing changes.
        bindings = list(_bindings(tree))
        for _ in range(len(bindings) + 1):
            changed = False
            for name, value in bindings:
                resolved = self.resolve(value)
                if resolved is not None and self.aliases.get(name) != resolved:
                    self.aliases[name] = resolved
                    changed = True
            if not changed:
                break

    def resolve(self, node: ast.AST) -> str | None:
        if isinstance(node, ast.Name):
            if node.id in self.aliases:
                return self.aliases[node.id]
            for module in reversed(self.stars):
                member = f"{module}.{node.id}"
                if _table_knows(member):
                    return member
            return f"builtins.{node.id}" if node.id in _BUILTIN_NAMES else None
        if isinstance(node, ast.Attribute):
            base = self.resolve(node.value)
            return None if base is None else f"{base}.{node.attr}"
        if isinstance(node, ast.Call):
            func = self.resolve(node.func)
            func = None if func is None else canonical(func)
            first = fold_str(node.args[0]) if node.args else None
            if func in IMPORTERS and first:
                # ``__import__("os.path")`` hands back ``os`` unless a fromlist is given.
                fromlist = len(node.args) > 3 or any(k.arg == "fromlist" for k in node.keywords)
                if func != "importlib.import_module" and not fromlist:
                    return first.split(".")[0]
                return first
            if func == "builtins.getattr" and len(node.args) >= 2:
                base, attr = self.resolve(node.args[0]), fold_str(node.args[1])
                if base is not None and attr is not None:
                    return f"{base}.{attr}"
            return self.by_name(node, "operator.attrgetter")
        return None

    def by_name(self, node: ast.Call, reader: str) -> str | None:
        """``operator.attrgetter("popen")(os)`` is ``os.popen``; likewise the method that
        ``operator.methodcaller("system", ...)(os)`` calls."""
        if not (isinstance(node.func, ast.Call) and len(node.args) == 1 and node.func.args):
            return None
        reads = self.resolve(node.func.func)
        if reads is None or canonical(reads) != reader:
            return None
        base, attr = self.resolve(node.args[0]), fold_str(node.func.args[0])
        return None if base is None or attr is None else f"{base}.{attr}"

    def is_module(self, name: str) -> bool:
        """Does ``name`` (resolved) name a module rather than something inside one?"""
        return (
            name in self.modules
            or canonical(name) in GOVERNED_MODULES
            or ("." not in name and name in sys.stdlib_module_names)
        )


#: Callables that import the module a string names.
IMPORTERS = frozenset({"builtins.__import__", "importlib.__import__", "importlib.import_module"})


def _table_knows(name: str) -> bool:
    return capability_of(name) is not None or canonical(name) in _KNOWN


_KNOWN = GOVERNED_MODULES | {*NAME_READERS, *WRAPPER_HELPERS}


def _bindings(tree: ast.Module) -> Iterator[tuple[str, ast.expr]]:
    """(name, value) for each simple binding: assignments, tuple assignments element by
    element, annotated assignments and ``:=``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                yield from _pairs(target, node.value)
        elif isinstance(node, ast.AnnAssign | ast.NamedExpr) and node.value is not None:
            yield from _pairs(node.target, node.value)


def _pairs(target: ast.expr, value: ast.expr) -> Iterator[tuple[str, ast.expr]]:
    if isinstance(target, ast.Name):
        yield target.id, value
    elif (
        isinstance(target, ast.Tuple | ast.List)
        and isinstance(value, ast.Tuple | ast.List)
        and len(target.elts) == len(value.elts)
    ):
        for t, v in zip(target.elts, value.elts, strict=True):
            yield from _pairs(t, v)


def _use(kind: Literal["import", "call", "attribute"], name: str, node: ast.AST) -> Use:
    return Use(kind, name, getattr(node, "lineno", 0), getattr(node, "col_offset", 0))


def parents_of(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    """Each node's parent."""
    parents: dict[ast.AST, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    return parents


def collect_uses(tree: ast.Module, resolver: Resolver) -> list[Use]:
    """Every outermost resolvable reference, calls with their folded arguments."""
    parents = parents_of(tree)
    uses: list[Use] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = resolver.resolve(node.func)
            if name is not None:
                args = tuple(fold_str(a) for a in node.args)
                if canonical(name) == "os.open" and len(node.args) > 1:
                    args = (args[0], _os_open_flags(node, resolver), *args[2:])
                keywords = tuple(k.arg or "**" for k in node.keywords)
                uses.append(Use("call", name, node.lineno, node.col_offset, args, keywords))
            called = resolver.by_name(node, "operator.methodcaller")
            if called is not None and isinstance(node.func, ast.Call):
                args = tuple(fold_str(a) for a in node.func.args[1:])
                uses.append(Use("call", called, node.lineno, node.col_offset, args))
            target = resolver.resolve(node)
            if target is None:
                continue
            if name is not None and canonical(name) in IMPORTERS:
                # ``__import__("os")`` and ``importlib.import_module("so" + "cket")`` import too.
                uses.append(Use("import", target, node.lineno, node.col_offset))
                continue
            # What ``getattr(os, "system")`` or ``attrgetter("system")(os)`` hands back, when it
            # is not called on the spot, is a use of ``os.system`` all the same.
            parent = parents.get(node)
            if not (isinstance(parent, ast.Call) and parent.func is node):
                uses.append(Use("attribute", target, node.lineno, node.col_offset))
        elif isinstance(node, ast.Name | ast.Attribute) and isinstance(node.ctx, ast.Load):
            parent = parents.get(node)
            if isinstance(parent, ast.Attribute) and parent.value is node:
                continue
            if isinstance(parent, ast.Call) and parent.func is node:
                continue
            name = resolver.resolve(node)
            if name is None or (
                name.startswith("builtins.")
                and capability_of(name) is None
                and canonical(name) not in REFLECTIVE_BUILTINS
            ):
                continue
            # ``os.environ["HOME"]`` names its variable like ``os.getenv("HOME")`` does.
            key = parent.slice if isinstance(parent, ast.Subscript) else None
            args = (fold_str(key),) if key is not None else ()
            uses.append(Use("attribute", name, node.lineno, node.col_offset, args))
    return uses


def module_values(tree: ast.Module, resolver: Resolver) -> list[Use]:
    """Modules used as values the resolver cannot follow: passed to a function, stored in a
    container or an attribute, returned, used as a default (``f(os)``, ``[os][0]``,
    ``def f(m=os)``).

    A module reached that way hands out everything it holds, capabilities included, under
    names no rule sees. Its attributes, ``getattr(module, "constant")``, ``attrgetter`` and
    ``methodcaller`` applied to it, and bindings to plain names (``s = os``, ``a, b = os, sys``)
    are followed and so not listed; a class attribute is not (``self.m`` reaches it).
    """
    parents = parents_of(tree)
    found: list[Use] = []
    for node in ast.walk(tree):
        # A call can hand back a module too: getattr(random, "_os").
        if not isinstance(node, ast.Name | ast.Attribute | ast.Call):
            continue
        if not isinstance(node, ast.Call) and not isinstance(node.ctx, ast.Load):
            continue
        parent = parents.get(node)
        if isinstance(parent, ast.Attribute) and parent.value is node:
            continue
        name = resolver.resolve(node)
        if name is None or not resolver.is_module(name) or _followed(node, parents, resolver):
            continue
        found.append(Use("attribute", name, node.lineno, node.col_offset))
    return found


def _followed(node: ast.expr, parents: dict[ast.AST, ast.AST], resolver: Resolver) -> bool:
    """Is ``node`` (a module) somewhere the resolver follows it?"""
    parent = parents.get(node)
    if isinstance(parent, ast.Call):
        if parent.func is node:
            return True
        first = parent.args[0] if parent.args else None
        probe = resolver.resolve(parent.func) == "builtins.hasattr"  # hasattr(os, "fork")
        return first is node and (
            probe
            or resolver.resolve(parent) is not None
            or resolver.by_name(parent, "operator.methodcaller") is not None
        )
    # Only tested or compared, it is handed nowhere: ``if yaml is None``, ``not yaml``.
    if isinstance(parent, ast.Compare | ast.UnaryOp):
        return isinstance(parent, ast.Compare) or isinstance(parent.op, ast.Not)
    if isinstance(parent, ast.If | ast.While | ast.IfExp | ast.Assert) and parent.test is node:
        return True
    if isinstance(parent, ast.Tuple | ast.List):
        holder = parents.get(parent)
        return (
            isinstance(holder, ast.Assign)
            and not isinstance(parents.get(holder), ast.ClassDef)
            and holder.value is parent
            and all(
                isinstance(t, ast.Tuple | ast.List)
                and len(t.elts) == len(parent.elts)
                and all(isinstance(e, ast.Name) for e in t.elts)
                for t in holder.targets
            )
        )
    if isinstance(parent, ast.Expr):
        return True  # the value is dropped
    if parent is None or isinstance(parents.get(parent), ast.ClassDef):
        return False
    if isinstance(parent, ast.Assign):
        return parent.value is node and all(isinstance(t, ast.Name) for t in parent.targets)
    if isinstance(parent, ast.AnnAssign | ast.NamedExpr):
        return parent.value is node and isinstance(parent.target, ast.Name)
    return False


def _os_open_flags(node: ast.Call, resolver: Resolver) -> str | None:
    """``os.open``'s flags as the mode string _fs_kind understands: "r" for O_RDONLY alone."""
    flags = node.args[1]
    if isinstance(flags, ast.Constant) and flags.value == 0:
        return "r"
    name = resolver.resolve(flags)
    return "r" if name is not None and canonical(name) == "os.O_RDONLY" else None
