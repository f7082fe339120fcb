"""The constitution: rules no tool may break, whatever its spec declares or the policy allows.

Rules forbid actions or states, each with an id and a reason:

- actions, checked statically (``import``, ``call``, ``name``, ``capability``, ``source``): they
  become ``analysis.Rule`` objects in the analysis chain (``policy_rules``), so violations are
  findings carrying the rule's id, reusing the analysis' name resolution;
- states, checked in the sandbox (``result-bytes``, ``leftover-files``, ``leftover-processes``):
  they become generated pytest tests (``constitution_tests``) that call the tool through
  ``toolsmith_harness`` and fail with a message starting ``[constitution <id>]``.

The shipped default is ``toolsmith/data/constitution.toml``; a project file (explicit path, else
``$TOOLSMITH_CONSTITUTION``) is merged over it: a rule with a default's id replaces it, and
``enabled = false`` switches one off.
"""

from __future__ import annotations

import ast
import fnmatch
import os
import re
import tomllib
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from toolsmith.analysis import (
    DEFAULT_RULES,
    RESTRICTED_RULES,
    Analysis,
    Hit,
    Rule,
    describe_use,
    required_capabilities,
)
from toolsmith.errors import PolicyError, ToolsmithError
from toolsmith.models import PublicModel
from toolsmith.report import Outcome, TestReport
from toolsmith.settings import Settings
from toolsmith.spec import ToolSpec
from toolsmith.testgen import TestSuite, prelude

CONSTITUTION_ENV = "TOOLSMITH_CONSTITUTION"
STATIC_KINDS = ("import", "call", "name", "capability", "source")
STATE_KINDS = ("result-bytes", "leftover-files", "leftover-processes")
RULE_KINDS = (*STATIC_KINDS, *STATE_KINDS)
RuleKind = Literal[
    "import",
    "call",
    "name",
    "capability",
    "source",
    "result-bytes",
    "leftover-files",
    "leftover-processes",
]
TEST_FILE = "test_constitution.py"
_ID_RE = re.compile(r"^[a-z][a-z0-9-]{0,63}$")
_RESERVED_IDS = frozenset({r.id for r in (*DEFAULT_RULES, *RESTRICTED_RULES)} | {"syntax"})


class ConstitutionRule(BaseModel):
    """One forbidden action or state."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str
    reason: str = Field(min_length=1)
    kind: RuleKind
    match: list[str] = Field(
        default_factory=list, description="fnmatch patterns; regexes for source"
    )
    except_: list[str] = Field(default_factory=list, alias="except")
    limit: int | None = Field(default=None, ge=1, description="bytes, for result-bytes")
    unless_declared: list[str] = Field(
        default_factory=list, description="the rule does not apply to specs declaring a match"
    )
    enabled: bool = True

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _ID_RE.match(v):
            raise ValueError(
                f"rule id {v!r} must be lowercase letters, digits and '-', starting with a letter"
            )
        if v in _RESERVED_IDS:
            raise ValueError(f"rule id {v!r} is taken by a built-in analysis rule; rename it")
        return v

    @model_validator(mode="after")
    def _fields_fit_kind(self) -> ConstitutionRule:
        static = self.kind in STATIC_KINDS
        if static and not self.match:
            raise ValueError(f"a {self.kind} rule needs a non-empty 'match' list")
        if not static and (self.match or self.except_):
            raise ValueError(f"a {self.kind} rule takes no 'match' or 'except'")
        if (self.kind == "result-bytes") != (self.limit is not None):
            raise ValueError("'limit' (bytes) is required by result-bytes rules and only by them")
        if self.kind == "source":
            for pattern in self.match:
                try:
                    re.compile(pattern)
                except re.error as e:
                    raise ValueError(f"match pattern {pattern!r} is not a regex: {e}") from None
        return self

    @property
    def is_static(self) -> bool:
        return self.kind in STATIC_KINDS

    def applies_to(self, spec: ToolSpec) -> bool:
        return self.enabled and not any(
            fnmatch.fnmatchcase(cap, p) for cap in spec.capabilities for p in self.unless_declared
        )

    def _matches(self, *names: str) -> bool:
        def hit(patterns: list[str]) -> bool:
            return any(fnmatch.fnmatchcase(n, p) for n in names for p in patterns)

        return hit(self.match) and not hit(self.except_)

    def check(self, analysis: Analysis) -> Iterator[Hit]:
        """The static check behind this rule's ``analysis.Rule``."""
        if not self.applies_to(analysis.spec):
            return
        forbidden = f"forbidden by the constitution: {self.reason}"
        if self.kind == "capability":
            for cap in analysis.spec.capabilities:
                if self._matches(cap):
                    yield Hit(0, 0, cap, f"declares {cap}, {forbidden}")
            for use in [*analysis.imported, *analysis.uses]:
                for cap in required_capabilities(use):
                    if self._matches(cap):
                        yield Hit(
                            use.line, use.col, cap, f"{describe_use(use)} ({cap}), {forbidden}"
                        )
        elif self.kind == "source":
            for number, line in enumerate(analysis.code.splitlines(), 1):
                for pattern in self.match:
                    if found := re.search(pattern, line):
                        yield Hit(number, found.start(), None, f"contains {pattern!r}, {forbidden}")
        elif self.kind == "import":
            for use in [*analysis.imported, *analysis.uses]:
                if use.kind == "import" and self._matches(*_prefixes(use.name)):
                    yield Hit(use.line, use.col, None, f"{describe_use(use)}, {forbidden}")
        elif self.kind == "call":
            for use in analysis.uses:
                if use.kind == "call" and self._matches(
                    use.name, use.name.removeprefix("builtins.")
                ):
                    yield Hit(use.line, use.col, None, f"{describe_use(use)}, {forbidden}")
        else:
            yield from self._check_names(analysis, forbidden)

    def _check_names(self, analysis: Analysis, forbidden: str) -> Iterator[Hit]:
        """Resolved names of any use, and bare identifiers the resolver cannot place."""
        for use in [*analysis.imported, *analysis.uses]:
            if self._matches(use.name, use.name.removeprefix("builtins.")):
                yield Hit(use.line, use.col, None, f"{describe_use(use)}, {forbidden}")
        for node in ast.walk(analysis.tree):
            if isinstance(node, ast.Name | ast.Attribute):
                ident = node.id if isinstance(node, ast.Name) else node.attr
                if self._matches(ident):
                    yield Hit(node.lineno, node.col_offset, None, f"uses {ident}, {forbidden}")


def _prefixes(dotted: str) -> list[str]:
    parts = dotted.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rule: list[ConstitutionRule] = Field(default_factory=list)


class Constitution(PublicModel):
    """The merged rules and the files they came from, later files overriding by id."""

    invalid: ClassVar[type[ToolsmithError]] = PolicyError

    model_config = ConfigDict(frozen=True)

    rules: list[ConstitutionRule]
    sources: list[str]

    @property
    def static_rules(self) -> list[ConstitutionRule]:
        return [r for r in self.rules if r.enabled and r.is_static]

    @property
    def state_rules(self) -> list[ConstitutionRule]:
        return [r for r in self.rules if r.enabled and not r.is_static]

    def merged(self, other: Constitution) -> Constitution:
        """``other``'s rules over these: same id replaces, new ids are added at the end."""
        theirs = {r.id: r for r in other.rules}
        rules = [theirs.pop(r.id, r) for r in self.rules] + list(theirs.values())
        return Constitution(rules=rules, sources=[*self.sources, *other.sources])

    @classmethod
    def from_toml(cls, text: str, *, source: str = "<constitution>") -> Constitution:
        """Parse one constitution file; mistakes are PolicyErrors naming the rule and key."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise PolicyError(
                f"constitution {source} is not valid TOML: {e}", hint="fix the TOML syntax"
            ) from None
        try:
            parsed = _File.model_validate(data)
        except ValidationError as e:
            err = e.errors()[0]
            loc = list(err["loc"])
            where = ".".join(str(p) for p in loc) or "(top level)"
            if len(loc) >= 2 and loc[0] == "rule" and isinstance(loc[1], int):
                rule_id = (data.get("rule") or [{}])[loc[1]].get("id", "?")
                where = f"rule {loc[1]} (id {rule_id!r})" + "".join(f".{p}" for p in loc[2:])
            raise PolicyError(
                f"constitution {source}: {where}: {err['msg'].removeprefix('Value error, ')}",
                hint=f"each [[rule]] needs id, reason and kind ({', '.join(RULE_KINDS)}); "
                "static kinds take match (and except), result-bytes takes limit",
            ) from None
        ids = [r.id for r in parsed.rule]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise PolicyError(
                f"constitution {source}: rule id {duplicates[0]!r} is used twice",
                hint="give every rule its own id",
            )
        return cls(rules=parsed.rule, sources=[source])


def default_constitution() -> Constitution:
    text = resources.files("toolsmith").joinpath("data/constitution.toml").read_text("utf-8")
    return Constitution.from_toml(text, source="<default constitution>")


def load_constitution(path: str | os.PathLike[str] | None = None) -> Constitution:
    """The default constitution with the project's (``path``, else ``$TOOLSMITH_CONSTITUTION``)
    merged over it."""
    base = default_constitution()
    settings = Settings.load()
    chosen = path if path is not None else settings.paths.constitution
    if chosen is None:
        return base
    p = Path(chosen)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        source = settings.sources.get("paths.constitution", "")
        origin = "" if path is not None else f" (from {source})"
        raise PolicyError(
            f"cannot read constitution file {p}{origin}: {e.strerror}",
            hint=f"check the path{'' if path is not None else ' in ' + source}, or unset it "
            "to use only the default",
        ) from None
    return base.merged(Constitution.from_toml(text, source=str(p)))


def policy_rules(constitution: Constitution) -> tuple[Rule, ...]:
    """The analysis rule chain with the constitution's static rules added: pass to ``analyze``."""
    return (
        *DEFAULT_RULES,
        *(Rule(r.id, r.reason, r.check) for r in constitution.static_rules),
    )


# --- state rules: generated tests that run in the sandbox --------------------------------------

_IMPORTS = """
import os
import shutil
import signal
import time

from hypothesis import Phase

# A state rule needs the first failing call, not the smallest: each call that leaves a process
# costs the grace period, and shrinking would make hundreds of them.
STATE_SETTINGS = settings(HYPOTHESIS, phases=[Phase.explicit, Phase.reuse, Phase.generate])
"""

_RESULT_BYTES = '''

REASON_{fn} = {reason!r}


@HYPOTHESIS
@with_examples
@given(args=ARGS)
def test_constitution_{fn}(args):
    """Constitution {id}: a result is at most {limit} bytes of JSON."""
    inv = invoke(copy.deepcopy(args))
    if inv.ok:
        size = len(json.dumps(inv.value, ensure_ascii=False).encode())
        assert size <= {limit}, (
            f"[constitution {id}] with args {{short(args)}} the result is {{size}} bytes of JSON; "
            f"the limit is {limit} ({{REASON_{fn}}})"
        )
'''

_FILES_HELPERS = '''

def writable_roots():
    """Every writable mount but / (read-only in the sandbox), /proc, /sys and /dev; and /tmp."""
    roots = {"/tmp"}
    with open("/proc/self/mounts") as mounts:
        for line in mounts:
            fields = line.split()
            point, options = fields[1].replace("\\\\040", " "), fields[3].split(",")
            system = point.startswith(("/proc", "/sys", "/dev")) and point != "/dev/shm"
            if "rw" in options and point != "/" and not system and os.path.isdir(point):
                roots.add(point)
    return sorted(roots)


ROOTS = writable_roots()


def files_now():
    """Everything under the writable roots. Nothing is skipped: during a call only the tool
    writes (hypothesis and pytest write between calls), and any skipped place is a hiding place."""
    found = set()
    for root in ROOTS:
        for dirpath, dirnames, filenames in os.walk(root):
            found.update(os.path.join(dirpath, n) for n in dirnames + filenames)
    return found


# Taken at collection, before the job's first call: one job shares one tool process and one tmp
# across its tests, so a per-call baseline would adopt whatever an earlier call left.
FILES_BEFORE_JOB = files_now()


def remove(paths):
    """Undo what a failing call left, so hypothesis sees the same failure when it replays."""
    for path in sorted(paths, key=len, reverse=True):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            os.unlink(path)
'''

_LEFTOVER_FILES = '''

REASON_{fn} = {reason!r}


@STATE_SETTINGS
@with_examples
@given(args=ARGS)
def test_constitution_{fn}(args):
    """Constitution {id}: a call leaves no new files or directories behind."""
    invoke(copy.deepcopy(args))
    left = sorted(files_now() - FILES_BEFORE_JOB)
    remove(left)
    assert not left, (
        f"[constitution {id}] with args {{short(args)}} the tool left "
        f"{{len(left)}} path(s) behind: {{short(left)}} ({{REASON_{fn}}})"
    )
'''

_PROCESS_HELPERS = '''

import toolsmith_harness


def processes_now():
    """Live processes other than this one and the tool's worker, with commands. The worker is
    known by its pid: a command line, or a parent (orphans are re-parented to us), can be faked."""
    me = os.getpid()
    worker = toolsmith_harness.worker_pid()
    found = {{}}
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in (me, worker):
            continue
        try:
            with open(f"/proc/{{name}}/stat", "rb") as f:
                stat = f.read().decode("utf-8", "replace")
            with open(f"/proc/{{name}}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\\0", b" ").decode("utf-8", "replace").strip()
        except OSError:
            continue
        comm, _, rest = stat.partition("(")[2].rpartition(")")
        if rest.split()[0] in ("Z", "X"):
            continue
        found[int(name)] = cmdline or comm
    return found


PROCESSES_BEFORE_JOB = set(processes_now())  # at collection: see FILES_BEFORE_JOB


def still_running(pids, grace_s={grace_s}):
    """New processes that outlive a short grace period (a tool's own children may be exiting)."""
    deadline = time.monotonic() + grace_s
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive &= set(processes_now())
    return alive
'''

_LEFTOVER_PROCESSES = '''

REASON_{fn} = {reason!r}


@STATE_SETTINGS
@with_examples
@given(args=ARGS)
def test_constitution_{fn}(args):
    """Constitution {id}: a call leaves no processes running behind it."""
    invoke(copy.deepcopy(args))
    after = processes_now()
    new = set(after) - PROCESSES_BEFORE_JOB
    left = {{pid: after[pid] for pid in still_running(new) if pid in after}}
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    assert not left, (
        f"[constitution {id}] with args {{short(args)}} the tool left "
        f"{{len(left)}} process(es) running: {{short(sorted(left.values()))}} ({{REASON_{fn}}})"
    )
'''


def test_name(rule: ConstitutionRule) -> str:
    """The generated test's function name for a state rule."""
    return "test_constitution_" + rule.id.replace("-", "_")


def constitution_tests(
    constitution: Constitution, spec: ToolSpec, *, max_examples: int = 25, grace_s: float = 0.5
) -> TestSuite | None:
    """A pytest file checking the state rules that apply to ``spec``, or None if none do.

    Merge it into the build's suite: ``suite.merged(extra)``; each rule is one test.
    """
    rules = [r for r in constitution.state_rules if r.applies_to(spec)]
    if not rules:
        return None
    parts = [prelude(spec, title="constitution state checks", max_examples=max_examples), _IMPORTS]
    kinds = {r.kind for r in rules}
    if "leftover-files" in kinds:
        parts.append(_FILES_HELPERS)
    if "leftover-processes" in kinds:
        parts.append(_PROCESS_HELPERS.format(grace_s=grace_s))
    for rule in rules:
        template = {
            "result-bytes": _RESULT_BYTES,
            "leftover-files": _LEFTOVER_FILES,
            "leftover-processes": _LEFTOVER_PROCESSES,
        }[rule.kind]
        parts.append(
            template.format(
                fn=rule.id.replace("-", "_"),
                id=rule.id,
                limit=rule.limit,
                reason=rule.reason,
            )
        )
    return TestSuite(files={TEST_FILE: "".join(parts)}, expected=len(rules))


class Violation(BaseModel):
    """A state rule the sandbox run found broken."""

    model_config = ConfigDict(frozen=True)

    rule: str
    reason: str
    failure: str


def state_violations(constitution: Constitution, report: TestReport) -> list[Violation]:
    """Which state rules a sandbox report shows broken, by rule id."""
    by_test = {test_name(r): r for r in constitution.state_rules}
    found: list[Violation] = []
    for case in report.tests:
        name = case.nodeid.rpartition("::")[2].partition("[")[0]
        rule = by_test.get(name)
        if rule is not None and case.outcome is not Outcome.PASSED:
            found.append(Violation(rule=rule.id, reason=rule.reason, failure=case.failure or ""))
    return found
