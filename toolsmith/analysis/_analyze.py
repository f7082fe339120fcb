"""``analyze``: parse the code, resolve its names, run the rule chain, report."""

from __future__ import annotations

import ast
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from toolsmith.analysis._capabilities import capability_of
from toolsmith.analysis._resolver import Resolver, collect_uses, module_values
from toolsmith.analysis._restricted import RESTRICTED_RULES
from toolsmith.analysis._rules import DEFAULT_RULES, Analysis, Finding, Rule, required_capabilities
from toolsmith.spec import ToolSpec


class PolicyReport(BaseModel):
    """What the code uses and what of that blocks the build.

    ``findings`` holds everything; only ``error`` findings block (``advisory`` ones, such as
    RestrictedPython compile errors, only decide ``restricted_eligible``). ``undeclared`` is the
    subset of findings that a declaration in the spec would resolve.
    """

    model_config = ConfigDict(frozen=True)

    findings: list[Finding]
    used_capabilities: list[str]
    undeclared: list[Finding]
    restricted_eligible: bool
    imports: list[str] = Field(
        default_factory=list, description="modules imported, statically or via importlib"
    )

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def passed(self) -> bool:
        return not self.errors

    def failure_text(self) -> str:
        """The blocking findings, phrased like a failed test so the fix loop can send them on."""
        errors = self.errors
        if not errors:
            return ""
        lines = [f"FAILED policy check: {len(errors)} finding(s) in the implementation"]
        lines += [f"  [{f.rule}] {f.message}" for f in errors]
        lines.append(
            "Fix: declare the capabilities the tool needs in the spec, or change the code so it "
            "does not use them; dynamic code and introspection are never accepted."
        )
        return "\n".join(lines)


def analyze(code: str, spec: ToolSpec, rules: Sequence[Rule] = DEFAULT_RULES) -> PolicyReport:
    """Find the capabilities ``code`` uses and what of that the spec does not allow."""
    try:
        tree = ast.parse(code)
    except SyntaxError as e:
        line, col = e.lineno or 0, (e.offset or 1) - 1
        finding = Finding(
            rule="syntax",
            capability=None,
            line=line,
            col=col,
            message=f"line {line}: the code does not parse: {e.msg}",
        )
        return PolicyReport(
            findings=[finding], used_capabilities=[], undeclared=[], restricted_eligible=False
        )
    _inline_string_annotations(tree)
    resolver = Resolver(tree)
    analysis = Analysis(
        code,
        spec,
        tree,
        collect_uses(tree, resolver),
        resolver.imported,
        module_values(tree, resolver),
    )
    findings: list[Finding] = []
    undeclared: list[Finding] = []
    seen: set[tuple[str, int, str]] = set()
    for rule in [*rules, *RESTRICTED_RULES]:
        for finding, is_undeclared in rule(analysis):
            key = (finding.rule, finding.line, finding.message)
            if key in seen:
                continue
            seen.add(key)
            findings.append(finding)
            if is_undeclared:
                undeclared.append(finding)
    used = sorted(
        {r for u in [*analysis.imported, *analysis.uses] for r in required_capabilities(u)}
        | {
            cap
            for u in [*analysis.imported, *analysis.uses]
            if (cap := capability_of(u.name)) in ("dynamic", "native")
        }
        | {f.capability for f in findings if f.capability}
    )
    eligible = spec.is_pure and not findings
    imports = {u.name for u in analysis.imported} | {
        u.name for u in analysis.uses if u.kind == "import"
    }
    return PolicyReport(
        findings=findings,
        used_capabilities=used,
        undeclared=undeclared,
        restricted_eligible=eligible,
        imports=sorted(imports),
    )


def _inline_string_annotations(tree: ast.Module) -> None:
    """Replace each string annotation by the expression it holds, so the rules see it.

    ``x: "__import__('os').system('id')"`` is code for whatever evaluates annotations
    (``typing.get_type_hints``, pydantic, dataclass helpers); an annotation that does not parse
    as an expression stays a string.
    """
    for node in ast.walk(tree):
        if isinstance(node, ast.arg | ast.AnnAssign) and node.annotation is not None:
            node.annotation = _parsed(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns:
            node.returns = _parsed(node.returns)


def _parsed(annotation: ast.expr) -> ast.expr:
    if not (isinstance(annotation, ast.Constant) and isinstance(annotation.value, str)):
        return annotation
    try:
        expression = ast.parse(annotation.value.strip(), mode="eval").body
    except SyntaxError:
        return annotation
    return ast.increment_lineno(expression, annotation.lineno - 1)
