"""The rule chain: ``Rule`` objects (an id, a reason, a check over an ``Analysis``) and the
default checks that compare what the code uses with what the spec declares.

The constitution adds rules of its own through the same ``Rule`` type.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict

from toolsmith.analysis._capabilities import (
    HARMLESS_DUNDERS,
    INTROSPECTION_ATTRS,
    LOOP_METHODS,
    NAME_READERS,
    OPENERS,
    PATH_METHODS,
    REFLECTIVE_BUILTINS,
    WRAPPER_HELPERS,
    capability_of,
    os_name,
)
from toolsmith.analysis._resolver import Use
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
    if os_name(use.name) not in OPENERS or use.kind != "call":
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
        var = use.args[0] if use.args else None
        return [f"env:{var}" if var else "env"]
    if cap == "network":
        hosts = [m.group(1) for a in use.args if a and (m := _URL_HOST_RE.match(a))]
        return [f"network:{h}" for h in hosts] or ["network"]
    return [cap]


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
    return target.split(":")[0] in [d.split(":")[0] for d in declared]


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
    allowed = {h.split(":")[0] for h in hosts}
    for node in ast.walk(analysis.tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = _URL_HOST_RE.match(node.value)
            if match and match.group(1) not in allowed:
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
    """Path methods that touch the filesystem count as fs use when pathlib is imported."""
    if not any(u.name.split(".")[0] == "pathlib" for u in analysis.imported):
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
                    f"{kind} capability; declare {kind}:<path> or remove the call",
                    undeclared=True,
                )


def check_dynamic(analysis: Analysis) -> Iterator[Hit]:
    """Dynamic code, reflection and native code cannot be bounded statically."""
    for use in [*analysis.imported, *analysis.uses]:
        cap = capability_of(use.name)
        if use.kind == "import" and use.name.split(".")[0] == "builtins":
            cap = "dynamic"  # the builtins module hands out eval, exec and __import__
        if cap in ("dynamic", "native"):
            yield Hit(
                use.line,
                use.col,
                cap,
                f"{describe_use(use)} ({cap}); {cap} code cannot be checked statically, so it is "
                "never accepted: rewrite without it",
            )
        elif use.name in REFLECTIVE_BUILTINS and use.kind == "call":
            attr = use.args[1] if len(use.args) > 1 else None
            if attr is None or attr.startswith("__") or attr in INTROSPECTION_ATTRS:
                shown = "a computed name" if attr is None else repr(attr)
                yield Hit(
                    use.line,
                    use.col,
                    "dynamic",
                    f"{describe_use(use)} with {shown} (dynamic); use plain attribute access",
                )
        elif use.name in NAME_READERS:
            count = NAME_READERS[use.name]
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
        elif use.name in WRAPPER_HELPERS:
            plain = use.kind == "call" and len(use.args) <= WRAPPER_HELPERS[use.name]
            if not plain or {"assigned", "updated", "**"} & set(use.keywords):
                yield Hit(
                    use.line,
                    use.col,
                    "dynamic",
                    f"{describe_use(use)} with attribute names of its own (dynamic); "
                    "use it with its default assigned and updated, or plain attribute access",
                )
    for node in ast.walk(analysis.tree):
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


def _internal_name(dotted: str) -> bool:
    """A dotted attribute path that reaches a dunder or interpreter internals."""
    return any(p.startswith("__") or p in INTROSPECTION_ATTRS for p in dotted.split("."))


def check_event_loop_io(analysis: Analysis) -> Iterator[Hit]:
    """Event-loop methods that start processes or connect count when asyncio is imported."""
    if not any(u.name.split(".")[0] == "asyncio" for u in analysis.imported):
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
