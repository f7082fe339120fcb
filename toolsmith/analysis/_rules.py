"""The rule chain: ``Rule`` objects (an id, a reason, a check over an ``Analysis``) and the
default checks that compare what the code uses with what the spec declares.

The constitution adds rules of its own through the same ``Rule`` type.
"""

from __future__ import annotations

import ast
import ipaddress
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict

from toolsmith.analysis._capabilities import (
    ENV_READERS,
    HARMLESS_DUNDERS,
    INTROSPECTION_ATTRS,
    LOOP_METHODS,
    NAME_READERS,
    OPENERS,
    PATH_METHODS,
    REFLECTIVE_BUILTINS,
    WRAPPER_HELPERS,
    canonical,
    capability_of,
)
from toolsmith.analysis._resolver import Use, fold_str, parents_of
from toolsmith.spec import ToolSpec

Severity = Literal["error", "advisory"]
_URL_HOST_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://(?:[^@/]*@)?(\[[^\]]+\]|[^/:?#]+)")


class Finding(BaseModel):
    """One thing the analysis found; ``capability`` says what it needs, if that can be declared."""

    model_config = ConfigDict(frozen=True)

    rule: str
    capability: str | None
    line: int
    col: int
    message: str
    severity: Severity = "error"


@dataclass
class Analysis:
    """What rules look at: the parsed module, its resolved uses, and the spec."""

    code: str
    spec: ToolSpec
    tree: ast.Module
    uses: list[Use] = field(default_factory=list)
    imported: list[Use] = field(default_factory=list)
    module_values: list[Use] = field(default_factory=list)

    def declared(self, kind: str) -> list[str]:
        """Declared targets of one capability kind ("network" -> hosts, "fs:read" -> paths)."""
        prefix = kind + ":"
        return [c.removeprefix(prefix) for c in self.spec.capabilities if c.startswith(prefix)]


class Hit(NamedTuple):
    """What a rule's check yields; line 0 means the spec rather than a line of code."""

    line: int
    col: int
    capability: str | None
    message: str
    undeclared: bool = False


@dataclass(frozen=True)
class Rule:
    """A named check; the constitution adds more of these."""

    id: str
    reason: str
    check: Callable[[Analysis], Iterable[Hit]]
    severity: Severity = "error"

    def __call__(self, analysis: Analysis) -> Iterator[tuple[Finding, bool]]:
        for hit in self.check(analysis):
            finding = Finding(
                rule=self.id,
                capability=hit.capability,
                line=hit.line,
                col=hit.col,
                message=f"{f'line {hit.line}' if hit.line else 'spec'}: {hit.message}",
                severity=self.severity,
            )
            yield finding, hit.undeclared


def describe_use(use: Use) -> str:
    """How a use reads in a finding: "imports socket", "calls eval()", "uses os.environ"."""
    if use.kind == "import":
        module, _, member = use.name.rpartition(".")
        if member == "*":
            return f"imports * from {module}"
        return f"imports {use.name}"
    if use.kind == "call":
        return f"calls {use.name.removeprefix('builtins.')}()"
    return f"uses {use.name.removeprefix('builtins.')}"


def _fs_kind(use: Use, cap: str) -> str:
    """open() is a write when its mode (second argument) writes, or when the mode is not known
    (a computed or keyword mode); ``os.open`` reads only with ``os.O_RDONLY`` as its flags."""
    if canonical(use.name) not in OPENERS or use.kind != "call":
        return cap
    if {"mode", "flags", "**"} & set(use.keywords):
        return "fs:write"
    mode = use.args[1] if len(use.args) > 1 else "r"
    if mode is None or any(c in mode for c in "wax+"):
        return "fs:write"
    return "fs:read"


def required_capabilities(use: Use) -> list[str]:
    """Concrete capability strings a use needs: "network:<host>" if a host is visible, else kind."""
    cap = capability_of(use.name)
    if cap is None or cap in ("dynamic", "native"):
        return []
    if cap.startswith("fs:"):
        kind = _fs_kind(use, cap)
        path = use.args[0] if use.args else None
        return [f"{kind}:{path}" if path and path.startswith("/") else kind]
    if cap == "env":
        return [f"env:{var}" for var in _env_variables(use)] or ["env"]
    if cap == "network":
        hosts = [m.group(1) for a in use.args if a and (m := _URL_HOST_RE.match(a))]
        return [f"network:{h}" for h in hosts] or ["network"]
    return [cap]


def _env_variables(use: Use) -> list[str]:
    """The variables an env use reads, where the code shows them: the name it is given
    (``os.getenv("HOME")``, ``os.environ["HOME"]``), the ``$NAME`` in ``os.path.expandvars``'
    argument, or the fixed ones a helper reads (``getpass.getuser``: LOGNAME, USER ...)."""
    name = canonical(use.name)
    if name in ENV_READERS:
        return list(ENV_READERS[name])
    first = use.args[0] if use.args else None
    if first is None:
        return []
    if name == "os.path.expandvars":
        return [a or b for a, b in _ENV_REFERENCE_RE.findall(first)]
    return [first]


_ENV_REFERENCE_RE = re.compile(r"\$(?:\{([^}]*)\}|(\w+))")


def _covered(required: str, analysis: Analysis) -> bool:
    """Is a required capability inside the declared set? A bare kind needs any declaration."""
    kind, _, target = required.partition(":")
    if kind == "fs":
        mode, _, path = target.partition(":")
        allowed = analysis.declared("fs:write") + (
            analysis.declared("fs:read") if mode == "read" else []
        )
        if not path:
            return bool(allowed)
        return any(path == p or path.startswith(p.rstrip("/") + "/") for p in allowed)
    if kind == "subprocess":
        return "subprocess" in analysis.spec.capabilities
    declared = analysis.declared(kind)
    if not target:
        return bool(declared)
    if kind == "network":
        return network_host(target) in [network_host(d) for d in declared]
    return target.split(":")[0] in [d.split(":")[0] for d in declared]


def network_host(target: str) -> str:
    """The host of ``<host>[:<port>]`` as grants compare it: lower-cased, an IPv6 literal in
    brackets and compressed (``[FD00:0::1]:443`` is ``[fd00::1]``)."""
    if target.startswith("["):
        inside = target[1:].partition("]")[0]
        try:
            return f"[{ipaddress.IPv6Address(inside)}]"
        except ValueError:
            return f"[{inside.lower()}]"
    return target.split(":")[0].lower().rstrip(".")


def _suggestion(required: str) -> str:
    kind, _, target = required.partition(":")
    if kind == "fs":
        mode, _, path = target.partition(":")
        return f"fs:{mode}:{path or '<path>'}"
    if kind == "network":
        return f"network:{target or '<host>'}"
    if kind == "env":
        return f"env:{target or '<NAME>'}"
    return required


def check_declared_capabilities(analysis: Analysis) -> Iterator[Hit]:
    """Each use of a capability must be inside what the spec declares."""
    for use in [*analysis.imported, *analysis.uses]:
        for required in required_capabilities(use):
            if _covered(required, analysis):
                continue
            kind = required.split(":")[0]
            declared = [c for c in analysis.spec.capabilities if c.split(":")[0] == kind]
            have = (
                f"declares only {', '.join(declared)}"
                if declared
                else f"declares no {kind} capability"
            )
            remove = {"import": "the import", "call": "the call"}.get(use.kind, "the use")
            yield Hit(
                use.line,
                use.col,
                required,
                f"{describe_use(use)} ({required}) but the spec {have}; "
                f"declare {_suggestion(required)} or remove {remove}",
                undeclared=True,
            )


def check_url_hosts(analysis: Analysis) -> Iterator[Hit]:
    """URLs written in network-using code must point at declared hosts."""
    if not any(capability_of(u.name) == "network" for u in analysis.imported):
        return
    hosts = analysis.declared("network")
    if not hosts:
        return  # the import itself is already reported as undeclared
    allowed = {network_host(h) for h in hosts}
    for node in ast.walk(analysis.tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = _URL_HOST_RE.match(node.value)
            if match and network_host(match.group(1)) not in allowed:
                host = match.group(1)
                yield Hit(
                    node.lineno,
                    node.col_offset,
                    f"network:{host}",
                    f"refers to {node.value!r} on host {host} but the spec declares only "
                    f"{', '.join('network:' + h for h in hosts)}; declare network:{host} or "
                    "remove the URL",
                    undeclared=True,
                )


def check_pathlib_io(analysis: Analysis) -> Iterator[Hit]:
    """Path methods that touch the filesystem count as fs use when pathlib is reached."""
    if not _reaches(analysis, "pathlib"):
        return
    for node in ast.walk(analysis.tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in PATH_METHODS
        ):
            kind = PATH_METHODS[node.func.attr]
            if not _covered(kind, analysis):
                yield Hit(
                    node.lineno,
                    node.col_offset,
                    kind,
                    f"calls .{node.func.attr}() on a path ({kind}) but the spec declares no "
                    f"{kind} capability; declare {_suggestion(kind)} or remove the call",
                    undeclared=True,
                )


def _reaches(analysis: Analysis, module: str) -> bool:
    """Does the code reach ``module``, by import, re-export or star import?"""
    uses = [*analysis.imported, *analysis.uses]
    return any(canonical(u.name).split(".")[0] == module for u in uses)


def check_dynamic(analysis: Analysis) -> Iterator[Hit]:
    """Dynamic code, reflection and native code cannot be bounded statically."""
    for use in [*analysis.imported, *analysis.uses]:
        name = canonical(use.name)
        cap = capability_of(use.name)
        if use.kind == "import" and name.split(".")[0] == "builtins":
            cap = "dynamic"  # the builtins module hands out eval, exec and __import__
        if cap in ("dynamic", "native"):
            yield Hit(
                use.line,
                use.col,
                cap,
                f"{describe_use(use)} ({cap}); {cap} code cannot be checked statically, so it is "
                "never accepted: rewrite without it",
            )
        elif name in REFLECTIVE_BUILTINS:
            attr = use.args[1] if use.kind == "call" and len(use.args) > 1 else None
            if attr is None or attr.startswith("__") or attr in INTROSPECTION_ATTRS:
                shown = "a computed name" if attr is None else repr(attr)
                if use.kind != "call":
                    shown = "names given at run time"  # getattr handed on, as in map(getattr, ...)
                yield Hit(
                    use.line,
                    use.col,
                    "dynamic",
                    f"{describe_use(use)} with {shown} (dynamic); use plain attribute access",
                )
        elif name in NAME_READERS:
            count = NAME_READERS[name]
            names = use.args[:count] if use.kind == "call" and not use.keywords else ()
            bad = [n for n in names if n is None or _internal_name(n)]
            if bad or not names:
                shown = "a computed name" if not names or None in bad else repr(bad[0])
                yield Hit(
                    use.line,
                    use.col,
                    "dynamic",
                    f"{describe_use(use)} with {shown} (dynamic); use plain attribute access",
                )
        elif name in WRAPPER_HELPERS:
            plain = use.kind == "call" and len(use.args) <= WRAPPER_HELPERS[name]
            if not plain or {"assigned", "updated", "**"} & set(use.keywords):
                yield Hit(
                    use.line,
                    use.col,
                    "dynamic",
                    f"{describe_use(use)} with attribute names of its own (dynamic); "
                    "use it with its default assigned and updated, or plain attribute access",
                )
    for use in analysis.module_values:
        yield Hit(
            use.line,
            use.col,
            "dynamic",
            f"hands the module {use.name} on as a value (dynamic); what is done with it cannot "
            f"be followed: call what you need of {use.name} directly",
        )
    yield from _internals(analysis.tree)
    yield from _format_walks(analysis.tree)


def _internals(tree: ast.Module) -> Iterator[Hit]:
    """Dunder and frame attributes, the interpreter's own names, and the object-reconstruction
    protocol (a ``__reduce__`` hands copy and pickle any callable with any arguments)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            attr = node.attr
            dunder = attr.startswith("__") and attr.endswith("__")
            if (dunder and attr not in HARMLESS_DUNDERS) or attr in INTROSPECTION_ATTRS:
                yield Hit(
                    node.lineno,
                    node.col_offset,
                    "dynamic",
                    f"accesses .{attr} (dynamic); interpreter internals are off limits",
                )
        elif isinstance(node, ast.Name) and node.id in ("__builtins__", "__loader__", "__spec__"):
            yield Hit(
                node.lineno,
                node.col_offset,
                "dynamic",
                f"uses {node.id} (dynamic); interpreter internals are off limits",
            )
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                defined = (
                    [item.name]
                    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
                    else [n.id for n in _assigned_names(item)]
                )
                for method in set(defined) & _RECONSTRUCTION:
                    yield Hit(
                        item.lineno,
                        item.col_offset,
                        "dynamic",
                        f"defines {method} (dynamic); copy and pickle call whatever callable it "
                        "returns: rewrite without it",
                    )


_RECONSTRUCTION = frozenset({"__reduce__", "__reduce_ex__"})


def _assigned_names(node: ast.AST) -> list[ast.Name]:
    if isinstance(node, ast.Assign):
        return [t for t in node.targets if isinstance(t, ast.Name)]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [node.target]
    return []


# A replacement field that walks into a private, dunder or frame attribute: "{0.__class__}",
# "{x._private}", "{0.gi_frame}", also inside a nested format spec ("{0:{1.__class__}}").
_FIELD_WALK_RE = re.compile(r"\{[^}]*?\.\s*(_\w*|" + "|".join(sorted(INTROSPECTION_ATTRS)) + r")\b")


def _format_walks(tree: ast.Module) -> Iterator[Hit]:
    """str.format walks the attributes its replacement fields name, outside any attribute rule:
    a template that names internals, or one not known before run time, is dynamic."""
    constant_names = _constant_string_names(tree)
    parents = parents_of(tree)
    for node in ast.walk(tree):
        if not isinstance(node, ast.expr):
            continue
        text = fold_str(node) if isinstance(node, ast.Constant | ast.BinOp | ast.Call) else None
        match = _FIELD_WALK_RE.search(text) if text is not None else None
        if match is not None:
            yield Hit(
                node.lineno,
                node.col_offset,
                "dynamic",
                f"has a format field that walks into .{match.group(1)} (dynamic); interpreter "
                "internals are off limits",
            )
        if not (isinstance(node, ast.Attribute) and node.attr in ("format", "format_map")):
            continue
        # The template is what .format is read from, or str.format's first argument.
        template: ast.expr | None = node.value
        if isinstance(template, ast.Name) and template.id == "str":
            call = parents.get(node)
            called = isinstance(call, ast.Call) and call.func is node and call.args
            template = call.args[0] if called and isinstance(call, ast.Call) else None
        known = template is not None and (
            fold_str(template) is not None
            or (isinstance(template, ast.Name) and template.id in constant_names)
        )
        if not known:
            yield Hit(
                node.lineno,
                node.col_offset,
                "dynamic",
                f"uses .{node.attr} of a template known only at run time (dynamic); its "
                "fields could walk any attribute ({0.__class__}): use a literal template, an "
                "f-string or string.Template",
            )


def _constant_string_names(tree: ast.Module) -> set[str]:
    """Names bound only by assignments of constant strings (``fmt = "{:.2f}"``)."""
    constant: set[str] = set()
    other: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            folded = fold_str(node.value) is not None
            for name in _assigned_names(node):
                (constant if folded else other).add(name.id)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            if node.id not in constant:
                other.add(node.id)
        elif isinstance(node, ast.arg):
            other.add(node.arg)
        elif isinstance(node, ast.AugAssign | ast.For | ast.comprehension | ast.withitem):
            target = node.optional_vars if isinstance(node, ast.withitem) else node.target
            if target is not None:
                other.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, ast.Global | ast.Nonlocal):
            other.update(node.names)
    return constant - other


def _internal_name(dotted: str) -> bool:
    """A dotted attribute path that reaches a dunder or interpreter internals."""
    return any(p.startswith("__") or p in INTROSPECTION_ATTRS for p in dotted.split("."))


def check_event_loop_io(analysis: Analysis) -> Iterator[Hit]:
    """Event-loop methods that start processes or connect count when asyncio is reached."""
    if not _reaches(analysis, "asyncio"):
        return
    for node in ast.walk(analysis.tree):
        if isinstance(node, ast.Attribute) and node.attr in LOOP_METHODS:
            kind = LOOP_METHODS[node.attr]
            if not _covered(kind, analysis):
                suggestion = "network:<host>" if kind == "network" else kind
                yield Hit(
                    node.lineno,
                    node.col_offset,
                    kind,
                    f"uses .{node.attr} of an event loop ({kind}) but the spec declares no "
                    f"{kind} capability; declare {suggestion} or remove the use",
                    undeclared=True,
                )


def check_stdlib_only(analysis: Analysis) -> Iterator[Hit]:
    """A spec without dependencies may import only the standard library.

    With dependencies declared nothing is checked here: import names and distribution names
    differ (``yaml`` is PyYAML), and the sandbox installs only what is declared.
    """
    if analysis.spec.dependencies:
        return
    for use in analysis.imported:
        top = use.name.split(".")[0]
        if top and top in sys.stdlib_module_names:
            continue
        shown = use.name if top else f"the relative module {use.name}"
        yield Hit(
            use.line,
            use.col,
            None,
            f"imports {shown}, which is not in the standard library, but the spec declares no "
            "dependencies; use the standard library or declare the dependency",
        )


def check_entrypoint(analysis: Analysis) -> Iterator[Hit]:
    """The module must define a top-level function named after the spec."""
    name = analysis.spec.name
    if not any(isinstance(n, ast.FunctionDef) and n.name == name for n in analysis.tree.body):
        yield Hit(1, 0, None, f"defines no top-level function {name}(); the spec's name is {name}")


DEFAULT_RULES: tuple[Rule, ...] = (
    Rule("entrypoint", "the build calls the function named after the spec", check_entrypoint),
    Rule(
        "capability",
        "a tool may use only the capabilities its spec declares",
        check_declared_capabilities,
    ),
    Rule("url-host", "network use must stay on the declared hosts", check_url_hosts),
    Rule("pathlib", "path objects read and write files too", check_pathlib_io),
    Rule(
        "event-loop",
        "event loops start processes and open connections too",
        check_event_loop_io,
    ),
    Rule("dynamic", "dynamic code and introspection defeat static analysis", check_dynamic),
    Rule("stdlib-only", "undeclared dependencies are not installed", check_stdlib_only),
)
