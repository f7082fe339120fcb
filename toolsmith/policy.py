"""The capability policy file: what an installation lets tools have, and its evaluation.

Analysis (``toolsmith.analysis``) says what a tool uses; the policy (TOML; ``load_policy``) says
what the installation lets tools use. ``evaluate_policy`` sorts a spec's capabilities, its code's
imports and its dependencies into allow (auto-approved), needs_approval (published pending until a
person approves) and deny (never built), naming the rule each time. It does no IO:
``load_policy`` reads.
"""

from __future__ import annotations

import contextlib
import fnmatch
import ipaddress
import os
import posixpath
import re
import tomllib
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import ClassVar, Literal

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from toolsmith.analysis import PolicyReport
from toolsmith.dependencies import Lock
from toolsmith.errors import PolicyError, ToolsmithError
from toolsmith.models import PublicModel
from toolsmith.settings import Settings
from toolsmith.spec import ToolSpec

Decision = Literal["allow", "needs_approval", "deny"]
_DECISION_ORDER: dict[Decision, int] = {"allow": 0, "needs_approval": 1, "deny": 2}
_CAPABILITY_KINDS = ("network", "fs", "env", "subprocess")
POLICY_ENV = "TOOLSMITH_POLICY"


class PolicySection(BaseModel):
    """fnmatch patterns per decision; deny beats allow beats needs_approval, else ``default``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allow: list[str] = Field(default_factory=list)
    needs_approval: list[str] = Field(default_factory=list)
    deny: list[str] = Field(default_factory=list)
    default: Decision = "needs_approval"

    def classify(self, candidates: Sequence[str]) -> tuple[Decision, str, str | None]:
        """The decision for a name given as its candidate spellings, the key and the pattern."""
        for key in ("deny", "allow", "needs_approval"):
            for pattern in getattr(self, key):
                if any(fnmatch.fnmatchcase(c, pattern) for c in candidates):
                    return key, key, pattern
        return self.default, "default", None


class TestsSection(BaseModel):
    """What a tool's tests must show beyond passing."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    __test__ = False

    min_mutation_score: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="least share of counted mutants the tests must kill (0 to 1), at build and "
        "at load; unset: none",
    )


class CapabilityPolicy(PublicModel):
    """Which capabilities, imports and dependencies tools may have, which need a person, and
    what their tests must show (``tests``)."""

    invalid: ClassVar[type[ToolsmithError]] = PolicyError

    model_config = ConfigDict(extra="forbid", frozen=True)

    capabilities: PolicySection = Field(default_factory=PolicySection)
    imports: PolicySection = Field(default_factory=lambda: PolicySection(default="allow"))
    dependencies: PolicySection = Field(default_factory=PolicySection)
    tests: TestsSection = Field(default_factory=TestsSection)
    source: str = Field(default="<policy>", exclude=True, description="where it was loaded from")

    @field_validator("capabilities")
    @classmethod
    def _capability_patterns(cls, v: PolicySection) -> PolicySection:
        for key in ("allow", "needs_approval", "deny"):
            for i, pattern in enumerate(getattr(v, key)):
                kind = pattern.split(":")[0]
                if kind not in _CAPABILITY_KINDS and not _is_wildcard(kind):
                    raise ValueError(
                        f"{key}[{i}]: {pattern!r} matches no capability; patterns look like "
                        "network:<host>, fs:read:<path>, fs:write:<path>, env:<NAME> or subprocess"
                    )
        return v

    @field_validator("dependencies")
    @classmethod
    def _dependency_patterns(cls, v: PolicySection) -> PolicySection:
        return v.model_copy(
            update={
                key: [_canonical_pattern(p) for p in getattr(v, key)]
                for key in ("allow", "needs_approval", "deny")
            }
        )

    @classmethod
    def from_toml(cls, text: str, *, source: str = "<policy>") -> CapabilityPolicy:
        """Parse policy TOML; every mistake becomes a PolicyError naming the key and the fix."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise PolicyError(
                f"policy {source} is not valid TOML: {e}", hint="fix the TOML syntax"
            ) from None
        if "imports" in data and isinstance(data["imports"], dict):
            data["imports"] = {"default": "allow", **data["imports"]}
        try:
            return cls.model_validate({**data, "source": source})
        except ValidationError as e:
            err = e.errors()[0]
            key = ".".join(str(p) for p in err["loc"]) or "(top level)"
            raise PolicyError(
                f"policy {source}: {key}: {err['msg'].removeprefix('Value error, ')}",
                hint="sections are [capabilities], [imports] and [dependencies], each with "
                "allow / needs_approval / deny lists of patterns and default = "
                '"allow" | "needs_approval" | "deny", and [tests] with min_mutation_score '
                "= a number from 0 to 1",
            ) from None


def _is_wildcard(text: str) -> bool:
    return any(c in text for c in "*?[")


def _canonical_pattern(pattern: str) -> str:
    return re.sub(r"[-_.]+", "-", pattern).lower()


def load_policy(path: str | os.PathLike[str] | None = None) -> CapabilityPolicy:
    """The policy at ``path``, else at ``$TOOLSMITH_POLICY``, else the shipped default."""
    settings = Settings.load()
    chosen = path if path is not None else settings.paths.policy
    if chosen is None:
        default = resources.files("toolsmith").joinpath("data/policy.toml")
        return CapabilityPolicy.from_toml(default.read_text("utf-8"), source="<default policy>")
    p = Path(chosen)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        source = settings.sources.get("paths.policy", "")
        origin = "" if path is not None else f" (from {source})"
        raise PolicyError(
            f"cannot read policy file {p}{origin}: {e.strerror}",
            hint=f"check the path{'' if path is not None else ' in ' + source}, or unset it "
            "to use the shipped default",
        ) from None
    return CapabilityPolicy.from_toml(text, source=str(p))


class PolicyReason(BaseModel):
    """Why one thing the tool asks for got its decision, naming the policy rule that decided."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["capability", "import", "dependency", "finding"]
    subject: str
    decision: Decision
    rule: str
    message: str


class PolicyDecision(BaseModel):
    """The policy's verdict on one tool: the strictest of its reasons' decisions."""

    model_config = ConfigDict(frozen=True)

    decision: Decision
    reasons: list[PolicyReason]
    policy: str

    @property
    def deciding(self) -> list[PolicyReason]:
        """The reasons that made the decision what it is."""
        return [r for r in self.reasons if r.decision == self.decision]

    def text(self) -> str:
        head = {
            "allow": "allowed",
            "needs_approval": "needs approval",
            "deny": "denied",
        }[self.decision]
        lines = [f"policy {self.policy}: {head}"]
        lines += [f"  [{r.rule}] {r.message}" for r in self.deciding]
        return "\n".join(lines)


_VERB: dict[Decision, str] = {
    "allow": "allowed",
    "needs_approval": "needs approval",
    "deny": "prohibited",
}


def _normal_capability(cap: str) -> str:
    """Paths normalised (``/tmp/../etc`` is ``/etc``), hosts as the sandbox's grants read them
    (lower-cased without a trailing dot, so ``network:C2.evil.test.`` meets a deny of
    ``network:*.evil.test``; IPv6 literals compressed, ``network:[FD00:0::1]`` is
    ``network:[fd00::1]``) before matching."""
    kind, _, target = cap.partition(":")
    if kind == "fs":
        mode, _, path = target.partition(":")
        return f"fs:{mode}:{posixpath.normpath(path)}" if path else cap
    if kind == "network" and target.startswith("["):
        inside, _, after = target[1:].partition("]")
        with contextlib.suppress(ValueError):
            return f"network:[{ipaddress.IPv6Address(inside)}]{after}"
    if kind == "network":
        host, colon, port = target.partition(":")
        return f"network:{host.lower().rstrip('.')}{colon}{port}"
    return cap


def dependency_guidance(policy: CapabilityPolicy) -> str:
    """What the designer is told about declaring third-party dependencies under ``policy``."""
    section = policy.dependencies
    text = (
        "Dependencies: declare third-party PyPI distributions in `dependencies` (PEP 508, e.g. "
        '"python-dateutil>=2.8") only when the standard library cannot do the task well; they '
        "must publish wheels, and the code may import nothing else third-party."
    )
    if section.allow:
        text += f" Allowed without review: {', '.join(section.allow)}."
    if section.deny:
        text += f" Denied (never declare these): {', '.join(section.deny)}."
    verdict = {
        "allow": "allowed",
        "needs_approval": "held for approval",
        "deny": "denied",
    }
    return text + f" Any other distribution is {verdict[section.default]}."


def evaluate_policy(
    spec: ToolSpec,
    code_report: PolicyReport,
    policy: CapabilityPolicy,
    lock: Lock | None = None,
) -> PolicyDecision:
    """Decide whether a tool may be published now, only after approval, or not at all.

    Blocking analysis findings deny (the code needs fixing first); otherwise each declared
    capability, each import and each dependency is classified, and the strictest decision wins.
    With the spec's ``lock``, every locked distribution is a dependency too: a denied package
    anywhere in the lock, transitive ones included, denies the tool.
    """
    reasons: list[PolicyReason] = [
        PolicyReason(
            kind="finding",
            subject=f.rule,
            decision="deny",
            rule=f"analysis:{f.rule}",
            message=f.message,
        )
        for f in code_report.errors
    ]
    for cap in spec.capabilities:
        normal = _normal_capability(cap)
        decision, key, pattern = policy.capabilities.classify([normal])
        reasons.append(_reason("capability", cap, decision, f"capabilities.{key}", pattern))
    for module in code_report.imports:
        parts = module.split(".")
        prefixes = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
        decision, key, pattern = policy.imports.classify(prefixes)
        if decision != "allow" or key != "default":
            reasons.append(_reason("import", module, decision, f"imports.{key}", pattern))
    declared: set[str] = set()
    for dep in spec.dependencies:
        name = canonicalize_name(Requirement(dep).name)
        declared.add(name)
        decision, key, pattern = policy.dependencies.classify([name])
        reasons.append(_reason("dependency", dep, decision, f"dependencies.{key}", pattern))
    for pkg in lock.packages if lock is not None else ():
        if pkg.name not in declared:
            decision, key, pattern = policy.dependencies.classify([pkg.name])
            subject = f"{pkg.name}=={pkg.version} (in the lock, required by a declared one)"
            reasons.append(_reason("dependency", subject, decision, f"dependencies.{key}", pattern))
    reasons.sort(key=lambda r: -_DECISION_ORDER[r.decision])
    overall: Decision = reasons[0].decision if reasons else "allow"
    return PolicyDecision(decision=overall, reasons=reasons, policy=policy.source)


def _reason(
    kind: Literal["capability", "import", "dependency"],
    subject: str,
    decision: Decision,
    rule: str,
    pattern: str | None,
) -> PolicyReason:
    by = f"{rule} pattern {pattern!r}" if pattern is not None else f"{rule} (no pattern matches)"
    return PolicyReason(
        kind=kind,
        subject=subject,
        decision=decision,
        rule=rule,
        message=f"{kind} {subject} {_VERB[decision]} by {by}",
    )
