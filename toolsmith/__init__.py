"""toolsmith: a sandboxed tool-synthesis engine.

The public API is what this module exports; everything else is private to the package::

    from toolsmith import Registry, Toolsmith

    tool = Registry().load("slugify@^1")          # verified before any byte of it runs
    tool(text="Hello World")                       # -> "hello-world", in the Docker sandbox

    ts = Toolsmith(llm=OpenAILLM(LLMConfig.resolve()))
    ts.get_or_build("parse ISO 8601 durations")    # reuse a fitting tool, else build one

Only the errors load with the package; every other name loads on first use (PEP 562), so
``import toolsmith`` pulls in neither pydantic nor the Docker, openai or MCP SDK, and
``toolsmith --version`` starts about as fast as Python itself.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from toolsmith.errors import (
    ApprovalRequiredError,
    AuditError,
    BuildError,
    CapabilityDeniedError,
    ConfinementError,
    CorruptRegistryError,
    DependencyError,
    DigestMismatchError,
    EngineUnavailableError,
    FreezeError,
    ImageError,
    IndexUnavailableError,
    KeyStoreError,
    LLMError,
    LLMNotConfiguredError,
    LLMResponseError,
    LLMTruncatedError,
    LLMUnavailableError,
    MetadataTooLargeError,
    MixAndMatchError,
    NoWheelError,
    PolicyError,
    PublishRefusedError,
    RegistryError,
    RegistryUnavailableError,
    RollbackError,
    SandboxError,
    SignatureError,
    SpecError,
    ToolArgumentsError,
    ToolCallError,
    ToolExecutionError,
    ToolNotFoundError,
    ToolRaisedError,
    ToolsmithError,
    ToolTimeoutError,
    TrustError,
    UnsafePathError,
    UntrustedRegistryError,
    UsageError,
    VersionConflictError,
)

__version__ = "0.1.0"

_LAZY = {
    "AuditLog": "toolsmith.audit",
    "BuildOptions": "toolsmith.pipeline",
    "BuildResult": "toolsmith.pipeline",
    "BuildStatus": "toolsmith.pipeline",
    "CapabilityPolicy": "toolsmith.policy",
    "Constitution": "toolsmith.constitution",
    "Example": "toolsmith.spec",
    "Grants": "toolsmith.sandbox.grants",
    "KeyRole": "toolsmith.registry",
    "KeyStore": "toolsmith.keys",
    "LLMConfig": "toolsmith.llm",
    "Lesson": "toolsmith.lessons",
    "LessonMemory": "toolsmith.lessons",
    "Lock": "toolsmith.dependencies",
    "LockedPackage": "toolsmith.dependencies",
    "Limits": "toolsmith.sandbox",
    "LocalBackend": "toolsmith.testing",
    "MemoryStorage": "toolsmith.testing",
    "MutantResult": "toolsmith.report",
    "MutationReport": "toolsmith.report",
    "OpenAILLM": "toolsmith.llm",
    "Outcome": "toolsmith.report",
    "Property": "toolsmith.spec",
    "Provenance": "toolsmith.report",
    "Registry": "toolsmith.registry",
    "RegistryStorage": "toolsmith.registry",
    "trust_registry": "toolsmith.registry",
    "Sandbox": "toolsmith.sandbox",
    "SandboxJob": "toolsmith.sandbox",
    "ScriptedLLMServer": "toolsmith.testing",
    "Settings": "toolsmith.settings",
    "TestCase": "toolsmith.report",
    "TestReport": "toolsmith.report",
    "Tool": "toolsmith.loader",
    "ToolSpec": "toolsmith.spec",
    "Toolsmith": "toolsmith.pipeline",
    "Verdict": "toolsmith.report",
    "VerifiedTool": "toolsmith.registry",
    "VersionRecord": "toolsmith.registry",
    "VersionStatus": "toolsmith.registry",
    "analyze": "toolsmith.analysis",
    "build_server": "toolsmith.mcp",
    "export_spec": "toolsmith.export",
    "load_constitution": "toolsmith.constitution",
    "load_policy": "toolsmith.policy",
    "load_tool": "toolsmith.loader",
    "run_mutants": "toolsmith.mutation",
    "seed_arguments": "toolsmith.seeds",
    "EvalRun": "toolsmith.evaluation",
    "EvalTask": "toolsmith.evaluation",
    "Suite": "toolsmith.evaluation",
    "TaskResult": "toolsmith.evaluation",
    "load_suite": "toolsmith.evaluation",
    "run_suite": "toolsmith.evaluation",
    "Calibration": "toolsmith.metacognition",
    "Metacognition": "toolsmith.metacognition",
    "Prediction": "toolsmith.metacognition",
    "Strategy": "toolsmith.metacognition",
    "calibrate": "toolsmith.metacognition",
}

if TYPE_CHECKING:
    from toolsmith.analysis import analyze
    from toolsmith.audit import AuditLog
    from toolsmith.constitution import Constitution, load_constitution
    from toolsmith.dependencies import Lock, LockedPackage
    from toolsmith.evaluation import EvalRun, EvalTask, Suite, TaskResult, load_suite, run_suite
    from toolsmith.export import export_spec
    from toolsmith.keys import KeyStore
    from toolsmith.lessons import Lesson, LessonMemory
    from toolsmith.llm import LLMConfig, OpenAILLM
    from toolsmith.loader import Tool, load_tool
    from toolsmith.mcp import build_server
    from toolsmith.metacognition import Calibration, Metacognition, Prediction, Strategy, calibrate
    from toolsmith.mutation import run_mutants
    from toolsmith.pipeline import BuildOptions, BuildResult, BuildStatus, Toolsmith
    from toolsmith.policy import CapabilityPolicy, load_policy
    from toolsmith.registry import (
        KeyRole,
        Registry,
        RegistryStorage,
        VerifiedTool,
        VersionRecord,
        VersionStatus,
        trust_registry,
    )
    from toolsmith.report import (
        MutantResult,
        MutationReport,
        Outcome,
        Provenance,
        TestCase,
        TestReport,
        Verdict,
    )
    from toolsmith.sandbox import Limits, Sandbox, SandboxJob
    from toolsmith.sandbox.grants import Grants
    from toolsmith.seeds import seed_arguments
    from toolsmith.settings import Settings
    from toolsmith.spec import Example, Property, ToolSpec
    from toolsmith.testing import LocalBackend, MemoryStorage, ScriptedLLMServer


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'toolsmith' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "ApprovalRequiredError",
    "AuditError",
    "AuditLog",
    "BuildError",
    "BuildOptions",
    "BuildResult",
    "BuildStatus",
    "Calibration",
    "CapabilityDeniedError",
    "CapabilityPolicy",
    "ConfinementError",
    "Constitution",
    "CorruptRegistryError",
    "DependencyError",
    "DigestMismatchError",
    "EngineUnavailableError",
    "EvalRun",
    "EvalTask",
    "Example",
    "FreezeError",
    "Grants",
    "ImageError",
    "IndexUnavailableError",
    "KeyRole",
    "KeyStore",
    "KeyStoreError",
    "LLMConfig",
    "LLMError",
    "LLMNotConfiguredError",
    "LLMResponseError",
    "LLMTruncatedError",
    "LLMUnavailableError",
    "Lesson",
    "LessonMemory",
    "Limits",
    "LocalBackend",
    "Lock",
    "LockedPackage",
    "MemoryStorage",
    "Metacognition",
    "MetadataTooLargeError",
    "MixAndMatchError",
    "MutantResult",
    "MutationReport",
    "NoWheelError",
    "OpenAILLM",
    "Outcome",
    "PolicyError",
    "Prediction",
    "Property",
    "Provenance",
    "PublishRefusedError",
    "Registry",
    "RegistryError",
    "RegistryStorage",
    "RegistryUnavailableError",
    "RollbackError",
    "Sandbox",
    "SandboxError",
    "SandboxJob",
    "ScriptedLLMServer",
    "Settings",
    "SignatureError",
    "SpecError",
    "Strategy",
    "Suite",
    "TaskResult",
    "TestCase",
    "TestReport",
    "Tool",
    "ToolArgumentsError",
    "ToolCallError",
    "ToolExecutionError",
    "ToolNotFoundError",
    "ToolRaisedError",
    "ToolSpec",
    "ToolTimeoutError",
    "Toolsmith",
    "ToolsmithError",
    "TrustError",
    "UnsafePathError",
    "UntrustedRegistryError",
    "UsageError",
    "Verdict",
    "VerifiedTool",
    "VersionConflictError",
    "VersionRecord",
    "VersionStatus",
    "__version__",
    "analyze",
    "build_server",
    "calibrate",
    "export_spec",
    "load_constitution",
    "load_policy",
    "load_suite",
    "load_tool",
    "run_mutants",
    "run_suite",
    "seed_arguments",
    "trust_registry",
]
