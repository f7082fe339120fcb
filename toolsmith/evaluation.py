"""`toolsmith eval`: measure the engine on a suite of tasks with hidden acceptance checks.

A suite (YAML, ``Suite``) is a list of tasks. Each task has the text the engine is given and a
hidden check the engine never sees: a reference implementation with a set of inputs (the tool must
return what the reference returns, or raise the exception type it raises, on every input), or a
pytest file calling the tool through ``toolsmith_harness``. The checks run in the same Docker
sandbox as a build's own tests, against the code the build produced, so a tool that passes the
tests it wrote for itself but not the task's intent reads as a failure here.

A run builds every task from scratch (``force``, into a registry of the run's own, so no task
reuses another's tool or inherits its regression tests) and records, per task and in total:
published, hidden checks passed, attempts, spec revisions, tokens, wall time and the predicted
probability of success (``toolsmith.metacognition``). Runs are saved as JSON (``EvalRun``) under
``$TOOLSMITH_HOME/evals`` (else the per-user data dir) so two can be compared.
"""

from __future__ import annotations

import ast
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import platformdirs
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from toolsmith.errors import ToolsmithError, UsageError
from toolsmith.files import atomic_write
from toolsmith.metacognition import Calibration, Metacognition, calibrate
from toolsmith.models import PublicModel, describe
from toolsmith.settings import Settings

if TYPE_CHECKING:
    from toolsmith.llm import LLM
    from toolsmith.pipeline import BuildOptions, BuildResult
    from toolsmith.prompts import PromptSet
    from toolsmith.registry import Registry
    from toolsmith.report import TestReport
    from toolsmith.sandbox import Sandbox

_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
HIDDEN_FILE = "test_hidden_acceptance.py"


class HiddenCheck(BaseModel):
    """What a task's tool must do, unseen by the engine: exactly one of ``reference`` (Python
    source defining a function named as the task's ``tool``) with ``inputs`` (keyword arguments
    for each call), or ``pytest`` (a test file; ``from toolsmith_harness import call, invoke``)."""

    model_config = ConfigDict(extra="forbid")

    reference: str | None = None
    inputs: list[dict[str, Any]] = Field(default_factory=list)
    pytest: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> HiddenCheck:
        if (self.reference is None) == (self.pytest is None):
            raise ValueError(
                "a hidden check needs exactly one of reference (with inputs) or pytest"
            )
        if self.reference is not None and not self.inputs:
            raise ValueError("a reference check needs at least one input")
        source = self.reference if self.reference is not None else self.pytest
        try:
            ast.parse(source or "")
        except SyntaxError as e:
            raise ValueError(f"the check's source does not parse: {e}") from None
        return self


class EvalTask(PublicModel):
    """One task: the text the engine gets, the function name it asks for, and the hidden check."""

    model_config = ConfigDict(extra="forbid")

    id: str
    task: str = Field(min_length=1)
    tool: str = Field(description="the function name the task asks for (the reference's name)")
    tags: list[str] = Field(default_factory=list)
    check: HiddenCheck

    @model_validator(mode="after")
    def _reference_named(self) -> EvalTask:
        if not _ID.fullmatch(self.id):
            raise ValueError(f"task id {self.id!r} is not a lowercase identifier")
        if self.check.reference is not None:
            names = {
                n.name
                for n in ast.parse(self.check.reference).body
                if isinstance(n, ast.FunctionDef)
            }
            if self.tool not in names:
                raise ValueError(f"task {self.id}: the reference defines no function {self.tool}")
        return self


class Suite(PublicModel):
    """A named set of tasks (``toolsmith/data/eval/<name>.yaml`` for the packaged ones)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    tasks: list[EvalTask] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Suite:
        ids = [t.id for t in self.tasks]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"task ids appear twice: {', '.join(twice)}")
        return self

    def select(self, ids: Iterable[str]) -> Suite:
        """The tasks named in ``ids``, in suite order; an unknown id is a UsageError."""
        wanted = list(ids)
        known = {t.id for t in self.tasks}
        unknown = [i for i in wanted if i not in known]
        if unknown:
            raise UsageError(
                f"suite {self.name} has no task {', '.join(unknown)}",
                hint=f"pick from: {', '.join(sorted(known))}",
            )
        return self.model_copy(update={"tasks": [t for t in self.tasks if t.id in wanted]})


def packaged_suites() -> list[str]:
    """Names of the suites shipped in the package (``toolsmith eval NAME``)."""
    root = resources.files("toolsmith").joinpath("data/eval")
    return sorted(p.name.removesuffix(".yaml") for p in root.iterdir() if p.name.endswith(".yaml"))


def load_suite(name_or_path: str | os.PathLike[str]) -> Suite:
    """A packaged suite by name, or a suite YAML file by path; problems are UsageErrors."""
    path = Path(name_or_path)
    if isinstance(name_or_path, str) and name_or_path in packaged_suites():
        text = resources.files("toolsmith").joinpath(f"data/eval/{name_or_path}.yaml").read_text()
    else:
        try:
            text = path.read_text()
        except OSError as e:
            raise UsageError(
                f"no suite {name_or_path}: {e.strerror or e}",
                hint=f"name a packaged suite ({', '.join(packaged_suites())}) or a suite YAML file",
            ) from None
    try:
        return Suite.model_validate(yaml.safe_load(text))
    except yaml.YAMLError as e:
        raise UsageError(f"suite {name_or_path} is not YAML: {e}", hint="fix the file") from None
    except ValidationError as e:
        raise UsageError(
            f"suite {name_or_path} is not a valid suite: {describe(e)}",
            hint="fix the fields named (see toolsmith.evaluation.Suite)",
        ) from None


_REFERENCE_HEAD = '''\
"""Hidden acceptance checks (toolsmith eval): the tool against a reference implementation."""
import copy
import json
import math

from toolsmith_harness import invoke

INPUTS = json.loads({inputs!r})


def same(a, b):
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def check(i):
    args = INPUTS[i]
    try:
        # Results cross a JSON boundary from the tool's worker: compare like with like.
        expected, raised = json.loads(json.dumps(REFERENCE(**copy.deepcopy(args)))), None
    except Exception as e:
        expected, raised = None, type(e).__name__
    inv = invoke(copy.deepcopy(args))
    got = repr(inv.value) if inv.ok else f"raised {{inv.error_type}}: {{inv.error_message}}"
    if raised is not None:
        assert not inv.ok and inv.error_type == raised, (
            f"with {{args!r}} expected {{raised}} to be raised, got {{got}}"
        )
    else:
        assert inv.ok and same(inv.value, expected), (
            f"with {{args!r}} expected {{expected!r}}, got {{got}}"
        )


# The reference, run here in the test process, never in the tool's worker.
{reference}

REFERENCE = {tool}
'''


def hidden_test_files(task: EvalTask) -> tuple[dict[str, str], int]:
    """The hidden check as sandbox test files, and how many tests they must yield."""
    check = task.check
    if check.pytest is not None:
        tree = ast.parse(check.pytest)
        count = sum(isinstance(n, ast.FunctionDef) and n.name.startswith("test") for n in tree.body)
        return {HIDDEN_FILE: check.pytest}, max(count, 1)
    assert check.reference is not None
    source = _REFERENCE_HEAD.format(
        inputs=json.dumps(check.inputs), reference=check.reference.strip(), tool=task.tool
    )
    for i, args in enumerate(check.inputs):
        shown = json.dumps(args)[:60].replace('"""', "'''").replace("\\", "\\\\")
        source += f'\n\ndef test_hidden_{i}():\n    """Input {i}: {shown}"""\n    check({i})\n'
    return {HIDDEN_FILE: source}, len(check.inputs)


HiddenOutcome = Literal["passed", "failed", "not_run"]


class TaskResult(PublicModel):
    """One task's outcome in a run."""

    id: str
    status: str = Field(description="the build's status, or 'error' when the build raised")
    published: bool = False
    hidden: HiddenOutcome = "not_run"
    hidden_summary: str = ""
    tool: str | None = Field(default=None, description="name@version of the published tool")
    attempts: int = 0
    spec_revisions: int = 0
    tokens: int = Field(default=0, description="prompt plus completion tokens")
    wall_s: float = Field(default=0.0, description="seconds the build took")
    predicted: float | None = Field(default=None, description="predicted P(success), 0..1")
    strategy: str | None = None
    error: str | None = None

    @property
    def success(self) -> bool:
        """What the prediction is scored against: published and passing the hidden checks."""
        return self.published and self.hidden == "passed"


class Totals(BaseModel):
    tasks: int
    published: int
    hidden_passed: int
    attempts: int
    spec_revisions: int
    tokens: int
    wall_s: float
    mean_predicted: float | None


class EvalRun(PublicModel):
    """A saved run: which suite, which model, every task's result, totals and calibration."""

    run_id: str
    suite: str
    model: str
    started_at: str
    options: dict[str, Any] = Field(default_factory=dict)
    results: list[TaskResult] = Field(default_factory=list)

    @property
    def totals(self) -> Totals:
        rs = self.results
        predicted = [r.predicted for r in rs if r.predicted is not None]
        return Totals(
            tasks=len(rs),
            published=sum(r.published for r in rs),
            hidden_passed=sum(r.success for r in rs),
            attempts=sum(r.attempts for r in rs),
            spec_revisions=sum(r.spec_revisions for r in rs),
            tokens=sum(r.tokens for r in rs),
            wall_s=round(sum(r.wall_s for r in rs), 3),
            mean_predicted=sum(predicted) / len(predicted) if predicted else None,
        )

    @property
    def calibration(self) -> Calibration:
        pairs = [(r.predicted, r.success) for r in self.results if r.predicted is not None]
        return calibrate(pairs)

    def summary(self) -> dict[str, Any]:
        """The run as JSON data, with totals and calibration (what ``--json`` prints)."""
        return {
            **self.model_dump(mode="json"),
            "totals": self.totals.model_dump(mode="json"),
            "calibration": self.calibration.model_dump(mode="json"),
        }


def runs_dir() -> Path:
    """Where runs are saved: ``$TOOLSMITH_HOME/evals`` (``[paths] home``), else the per-user
    data dir's."""
    home = Settings.load().paths.home
    if home is not None:
        return home / "evals"
    return Path(platformdirs.user_data_dir("toolsmith")) / "evals"


def save_run(run: EvalRun, out: str | os.PathLike[str] | None = None) -> Path:
    """Write ``run`` as JSON to ``out``, else to ``runs_dir()/<run_id>.json``; returns the path."""
    path = Path(out) if out is not None else runs_dir() / f"{run.run_id}.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, (json.dumps(run.summary(), indent=2, sort_keys=True) + "\n").encode())
    except OSError as e:
        raise UsageError(
            f"cannot save the eval run to {path}: {e.strerror or e}",
            hint="pass --out with a writable path, or point TOOLSMITH_HOME at a writable directory",
        ) from None
    return path


def load_run(ref: str | os.PathLike[str]) -> EvalRun:
    """A saved run by path, or by run id under ``runs_dir()``."""
    path = Path(ref)
    if not path.is_file():
        path = runs_dir() / f"{ref}.json"
    try:
        data = json.loads(path.read_text())
    except OSError:
        saved = sorted(p.stem for p in runs_dir().glob("*.json")) if runs_dir().is_dir() else []
        raise UsageError(
            f"no eval run {ref}",
            hint="give a run's JSON path or one of the saved run ids: "
            + (", ".join(saved[-5:]) or "none saved yet"),
        ) from None
    except json.JSONDecodeError as e:
        raise UsageError(f"eval run {path} is not JSON: {e}", hint="point at a saved run") from None
    for key in ("totals", "calibration"):
        data.pop(key, None)
    try:
        return EvalRun.model_validate(data)
    except ValidationError as e:
        raise UsageError(
            f"eval run {path} is not a saved run: {describe(e)}", hint="point at a saved run"
        ) from None


class CompareRow(BaseModel):
    id: str
    a: TaskResult | None
    b: TaskResult | None

    @property
    def change(self) -> str:
        """'fixed', 'broke', 'same', or 'only in A/B'."""
        if self.a is None or self.b is None:
            return "only in B" if self.a is None else "only in A"
        if self.a.success == self.b.success:
            return "same"
        return "fixed" if self.b.success else "broke"


def compare(a: EvalRun, b: EvalRun) -> list[CompareRow]:
    """Task-by-task rows of two runs, in A's order then B's new tasks."""
    by_a = {r.id: r for r in a.results}
    by_b = {r.id: r for r in b.results}
    order = [r.id for r in a.results] + [r.id for r in b.results if r.id not in by_a]
    return [CompareRow(id=i, a=by_a.get(i), b=by_b.get(i)) for i in order]


def run_hidden(
    sandbox: Sandbox, task: EvalTask, tool_name: str, code: str, caps: Sequence[str]
) -> TestReport:
    """Run ``task``'s hidden check against ``code`` (defining ``tool_name``) in the sandbox."""
    from toolsmith.sandbox import SandboxJob

    files, expected = hidden_test_files(task)
    return sandbox.run(
        SandboxJob(
            tool_name=tool_name,
            code=code,
            test_files=files,
            expected_tests=expected,
            capabilities=list(caps),
        )
    )


TaskCallback = Callable[[EvalTask, TaskResult], None]


def run_suite(
    suite: Suite,
    llm: LLM,
    *,
    options: BuildOptions | None = None,
    sandbox: Sandbox | None = None,
    registry: Registry | None = None,
    metacognition: Metacognition | None = None,
    prompts: PromptSet | None = None,
    on_task: TaskCallback | None = None,
) -> EvalRun:
    """Build every task of ``suite`` with ``llm`` and check each tool against its hidden check.

    Builds publish into ``registry``, else a fresh registry in a temporary directory removed
    afterwards. ``prompts`` is the prompt set the builds use (default: the active one). A build
    that raises (a model whose answers never validate, say) is recorded as
    ``status='error'`` with the message, and the run goes on. Sandbox and LLM configuration errors
    are not per-task faults and propagate.
    """
    from toolsmith.errors import LLMNotConfiguredError, SandboxError
    from toolsmith.pipeline import BuildOptions, Toolsmith
    from toolsmith.registry import Registry

    opts = (options or BuildOptions()).model_copy(update={"force": True})
    started_at = datetime.now(UTC)
    run = EvalRun(
        run_id=f"{started_at.strftime('%Y%m%dT%H%M%S')}-{suite.name}-{os.getpid()}",
        suite=suite.name,
        model=llm.model,
        started_at=started_at.isoformat(timespec="seconds"),
        options=opts.model_dump(mode="json"),
    )
    with tempfile.TemporaryDirectory(prefix="toolsmith-eval-") as tmp:
        reg = registry if registry is not None else Registry(Path(tmp) / "registry")
        with Toolsmith(reg, llm, sandbox, metacognition=metacognition, prompts=prompts) as ts:
            for task in suite.tasks:
                t0 = time.monotonic()
                try:
                    result: BuildResult | None = ts.build(task.task, opts)
                    error = None
                except (LLMNotConfiguredError, SandboxError):
                    raise
                except ToolsmithError as e:
                    result, error = None, f"{type(e).__name__}: {e.message}"
                wall = time.monotonic() - t0
                outcome = _task_result(task, result, error, wall)
                if result is None and metacognition is not None:
                    # The build raised after predicting; its record is the one just appended.
                    last = metacognition.history()[-1]
                    outcome.predicted, outcome.strategy = last.probability, last.strategy
                if result is not None and result.ok and result.code and result.spec is not None:
                    report = run_hidden(
                        ts.sandbox, task, result.spec.name, result.code, result.spec.capabilities
                    )
                    outcome.hidden = "passed" if report.passed else "failed"
                    outcome.hidden_summary = _hidden_summary(report)
                run.results.append(outcome)
                if on_task is not None:
                    on_task(task, outcome)
    return run


def _hidden_summary(report: TestReport) -> str:
    """The counts, and for a failure the first failing check's assertion (it names the input)."""
    from toolsmith.report import Outcome, failure_line

    failing = [t for t in report.tests if t.outcome != Outcome.PASSED]
    if report.passed or not failing:
        return report.summary()
    return f"{report.summary()}; {failing[0].nodeid.rpartition('::')[2]}: " + failure_line(
        failing[0].failure
    )


def _task_result(
    task: EvalTask, result: BuildResult | None, error: str | None, wall: float
) -> TaskResult:
    if result is None:
        return TaskResult(id=task.id, status="error", error=error, wall_s=round(wall, 3))
    prediction = result.prediction
    return TaskResult(
        id=task.id,
        status=result.status.value,
        published=result.status.value in ("published", "pending_approval"),
        tool=result.ref,
        attempts=len(result.attempts),
        spec_revisions=result.spec_revisions,
        tokens=result.tokens.get("prompt_tokens", 0) + result.tokens.get("completion_tokens", 0),
        wall_s=round(wall, 3),
        predicted=prediction.probability if prediction is not None else None,
        strategy=prediction.strategy.name if prediction is not None else None,
    )
