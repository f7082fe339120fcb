"""Name resolution: what a name or attribute chain in a tool's module refers to.

Imports, ``as`` aliases, plain assignments, ``getattr`` and ``operator.attrgetter`` with constant
names, ``__import__`` and ``importlib.import_module`` of constant strings are followed, so
``s = __import__("so" + "cket")`` reads as ``socket``. The result is a list of ``Use``.
"""

from __future__ import annotations

import ast
import builtins
from typing import Literal, NamedTuple

from toolsmith.analysis._capabilities import capability_of, os_name

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
    module, and being conservative here only ever adds findings.
    """

    def __init__(self, tree: ast.Module) -> None:
        self.aliases: dict[str, str] = {}
        self.imported: list[Use] = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    self.imported.append(_use("import", a.name, node))
                    if a.asname:
                        self.aliases[a.asname] = a.name
                    else:
                        top = a.name.split(".")[0]
                        self.aliases[top] = top
            elif isinstance(node, ast.ImportFrom):
                base = "." * node.level + (node.module or "")
                for a in node.names:
                    self.imported.append(_use("import", f"{base}.{a.name}", node))
                    if a.name != "*":
                        self.aliases[a.asname or a.name] = f"{base}.{a.name}"
        # Plain assignments of a resolvable name (``s = socket``; ``run = os.system``) are
        # aliases too; two passes reach aliases of aliases.
        for _ in range(2):
            for node in ast.walk(tree):
                if isinstance(node, ast.Assign) and len(node.targets) == 1:
                    target = node.targets[0]
                    resolved = self.resolve(node.value)
                    if isinstance(target, ast.Name) and resolved is not None:
                        self.aliases[target.id] = resolved

    def resolve(self, node: ast.AST) -> str | None:
        if isinstance(node, ast.Name):
            if node.id in self.aliases:
                return self.aliases[node.id]
            return f"builtins.{node.id}" if node.id in _BUILTIN_NAMES else None
        if isinstance(node, ast.Attribute):
            base = self.resolve(node.value)
            return None if base is None else f"{base}.{node.attr}"
        if isinstance(node, ast.Call):
            func = self.resolve(node.func)
            first = fold_str(node.args[0]) if node.args else None
            if func in ("builtins.__import__", "importlib.import_module") and first:
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
        if self.resolve(node.func.func) != reader:
            return None
        base, attr = self.resolve(node.args[0]), fold_str(node.func.args[0])
        return None if base is None or attr is None else f"{base}.{attr}"


def _use(kind: Literal["import", "call", "attribute"], name: str, node: ast.AST) -> Use:
    return Use(kind, name, getattr(node, "lineno", 0), getattr(node, "col_offset", 0))


def collect_uses(tree: ast.Module, resolver: Resolver) -> list[Use]:
    """Every outermost resolvable reference, calls with their folded arguments."""
    parents: dict[ast.AST, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    uses: list[Use] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = resolver.resolve(node.func)
            if name is not None:
                args = tuple(fold_str(a) for a in node.args)
                if os_name(name) == "os.open" and len(node.args) > 1:
                    args = (args[0], _os_open_flags(node, resolver), *args[2:])
                keywords = tuple(k.arg or "**" for k in node.keywords)
                uses.append(Use("call", name, node.lineno, node.col_offset, args, keywords))
            called = resolver.by_name(node, "operator.methodcaller")
            if called is not None and isinstance(node.func, ast.Call):
                args = tuple(fold_str(a) for a in node.func.args[1:])
                uses.append(Use("call", called, node.lineno, node.col_offset, args))
            fetched = resolver.by_name(node, "operator.attrgetter")
            parent = parents.get(node)
            if fetched is not None and not (isinstance(parent, ast.Call) and parent.func is node):
                uses.append(Use("attribute", fetched, node.lineno, node.col_offset))
            # ``__import__("os")`` and ``importlib.import_module("so" + "cket")`` import too.
            target = resolver.resolve(node)
            if target is not None and name in ("builtins.__import__", "importlib.import_module"):
                uses.append(Use("import", target, node.lineno, node.col_offset))
        elif isinstance(node, ast.Name | ast.Attribute) and isinstance(node.ctx, ast.Load):
            parent = parents.get(node)
            if isinstance(parent, ast.Attribute) and parent.value is node:
                continue
            if isinstance(parent, ast.Call) and parent.func is node:
                continue
            name = resolver.resolve(node)
            if name is None or (name.startswith("builtins.") and capability_of(name) is None):
                continue
            # ``os.environ["HOME"]`` names its variable like ``os.getenv("HOME")`` does.
            key = parent.slice if isinstance(parent, ast.Subscript) else None
            args = (fold_str(key),) if key is not None else ()
            uses.append(Use("attribute", name, node.lineno, node.col_offset, args))
    return uses


def _os_open_flags(node: ast.Call, resolver: Resolver) -> str | None:
    """``os.open``'s flags as the mode string _fs_kind understands: "r" for O_RDONLY alone."""
    flags = node.args[1]
    if isinstance(flags, ast.Constant) and flags.value == 0:
        return "r"
    name = resolver.resolve(flags)
    return "r" if name is not None and os_name(name) == "os.O_RDONLY" else None
