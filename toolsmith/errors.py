"""The one error hierarchy of toolsmith.

Every error a caller can see is a ``ToolsmithError``. Each carries a message naming the problem and,
where there is one, a ``hint`` naming the fix. The CLI prints ``TypeName: message``, the hint, and
exits with ``exit_code``; library callers catch the branch they care about.

Exit codes are one per family (a direct subclass of ``ToolsmithError`` and everything under it), so
the same fault exits the same way from every command; ``EXIT_CODES`` is the table README.md shows.

    ToolsmithError
    ├── UsageError                    caller mistakes: bad argument, bad option combination
    ├── SpecError                     a ToolSpec that does not validate
    ├── RegistryError
    │   ├── ToolNotFoundError         no such tool / no version matches
    │   ├── VersionConflictError      publishing a version that already exists
    │   ├── PublishRefusedError       e.g. a test report that is not a pass
    │   ├── CorruptRegistryError      metadata or a target that cannot be read
    │   ├── UnsafePathError           a symlink, hard link or non-file inside the registry
    │   └── RegistryUnavailableError  a served registry that cannot be reached
    ├── TrustError                    verification failed: never run such a tool
    │   ├── DigestMismatchError
    │   ├── SignatureError            missing, malformed, untrusted, below threshold
    │   ├── ApprovalRequiredError     a pending or rejected version, or no trusted approval
    │   ├── UntrustedRegistryError    no root of this registry is pinned by this consumer
    │   ├── RollbackError             metadata older than the consumer last trusted (TUF)
    │   ├── FreezeError               expired metadata: the registry stopped moving (TUF)
    │   ├── MixAndMatchError          metadata of different registry states combined (TUF)
    │   └── MetadataTooLargeError     metadata over its size cap (endless-data attack)
    ├── KeyStoreError                 signing keys: missing, unsafe permissions
    ├── SandboxError
    │   ├── EngineUnavailableError    no Docker engine reachable
    │   ├── ImageError                sandbox image missing or failing to build
    │   └── ConfinementError          an isolation property is missing
    ├── LLMError
    │   ├── LLMNotConfiguredError
    │   ├── LLMUnavailableError       endpoint dead, timing out, or refusing
    │   ├── LLMResponseError          answers that never parse or validate
    │   └── LLMTruncatedError         an answer cut off at the completion budget
    ├── BuildError                    a build that did not produce a passing tool
    ├── PolicyError                   capability policy or constitution violations
    ├── DependencyError               a tool's third-party dependencies cannot be locked or fetched
    │   ├── IndexUnavailableError     the package index cannot be reached
    │   └── NoWheelError              a dependency publishes no wheel for the sandbox
    ├── AuditError                    an audit log that fails its hash chain
    └── ToolCallError                 calling a loaded tool
        ├── ToolArgumentsError        arguments fail the parameter schema
        ├── ToolRaisedError           the tool raised one of its declared exceptions
        ├── ToolExecutionError        undeclared failure, bad output, crash
        ├── CapabilityDeniedError     a run-time barrier stopped an undeclared capability
        └── ToolTimeoutError
"""

from __future__ import annotations


def one_line(text: str) -> str:
    """``text`` with every character that is not printable (line breaks, terminal escapes, other
    control and format characters such as bidi overrides) written as its Python escape
    (``\\x1b``, ``\\n``, ``\\u202e``): one line that moves no cursor and colours nothing. For
    text a tool or a registry wrote, before it reaches a person."""
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text
    )


class ToolsmithError(Exception):
    """Base of every error toolsmith raises on purpose."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} (fix: {self.hint})"
        return self.message


class UsageError(ToolsmithError):
    exit_code = 2


class SpecError(ToolsmithError):
    exit_code = 2


class RegistryError(ToolsmithError):
    exit_code = 3


class ToolNotFoundError(RegistryError):
    pass


class VersionConflictError(RegistryError):
    pass


class PublishRefusedError(RegistryError):
    pass


class CorruptRegistryError(RegistryError):
    pass


class UnsafePathError(RegistryError):
    """A symlink, hard link or special file where the registry keeps a file: never followed."""


class RegistryUnavailableError(RegistryError):
    """A served registry that did not answer (network, HTTP error)."""


class TrustError(ToolsmithError):
    exit_code = 4


class DigestMismatchError(TrustError):
    pass


class SignatureError(TrustError):
    pass


class KeyStoreError(ToolsmithError):
    exit_code = 10


class SandboxError(ToolsmithError):
    exit_code = 5


class EngineUnavailableError(SandboxError):
    pass


class ImageError(SandboxError):
    pass


class ConfinementError(SandboxError):
    pass


class LLMError(ToolsmithError):
    exit_code = 6


class LLMNotConfiguredError(LLMError):
    pass


class LLMUnavailableError(LLMError):
    pass


class LLMResponseError(LLMError):
    pass


class LLMTruncatedError(LLMError):
    """The model stopped at the completion budget (finish reason ``length``): its answer is cut
    off, not malformed. ``partial`` keeps the text it did send."""

    def __init__(self, message: str, *, hint: str | None = None, partial: str = "") -> None:
        super().__init__(message, hint=hint)
        self.partial = partial


class BuildError(ToolsmithError):
    exit_code = 7


class PolicyError(ToolsmithError):
    exit_code = 8


class DependencyError(ToolsmithError):
    exit_code = 12


class IndexUnavailableError(DependencyError):
    pass


class NoWheelError(DependencyError):
    pass


class ToolCallError(ToolsmithError):
    exit_code = 11


class ToolArgumentsError(ToolCallError):
    pass


class ToolRaisedError(ToolCallError):
    """The tool raised one of the exceptions its spec declares; ``type_name`` names it.

    The message shows the tool's text on one line, escaped (``one_line``): the tool wrote it, so it
    may carry line breaks and terminal escapes; ``tool_message`` keeps it as the tool wrote it."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(
            f"{one_line(type_name)}: {one_line(message)}",
            hint="the tool refused these arguments, as its spec allows it to: change them (the "
            "spec's parameters, examples and raises say what it accepts)",
        )
        self.type_name = type_name
        self.tool_message = message


class ToolExecutionError(ToolCallError):
    pass


class ToolTimeoutError(ToolCallError):
    pass


class CapabilityDeniedError(ToolCallError):
    """The kernel stopped the tool doing what it did not declare (``toolsmith.sandbox.barriers``).

    ``capability`` is what it lacked: ``subprocess``, ``network``, ``fs:read:<path>``,
    ``fs:write:<path>``, ``env:<NAME>``, or ``""`` for a call no capability grants (ptrace,
    mount, ...).
    """

    def __init__(self, tool: str, capability: str) -> None:
        if capability == "network":
            super().__init__(
                f"{tool}: capability `network` not declared, so the sandbox denied a socket",
                hint="declare network:<host> in the spec's capabilities for each host it needs",
            )
        elif capability:
            super().__init__(
                f"{tool}: capability `{capability}` not declared, so the sandbox denied it",
                hint=f"declare `{capability}` in the spec's capabilities if the tool needs it",
            )
        else:
            super().__init__(
                f"{tool}: the tool made a system call the sandbox never allows",
                hint="remove it from the tool: no capability grants ptrace, mount, namespaces, "
                "keyrings, bpf, kernel modules or clock changes",
            )
        self.tool = tool
        self.capability = capability


class AuditError(ToolsmithError):
    """An audit log that cannot be appended to or read: edited, truncated, or unreadable."""

    exit_code = 9


class ApprovalRequiredError(TrustError):
    """A version no person has approved (pending) or one that was rejected: never load it."""


class UntrustedRegistryError(TrustError):
    """This consumer has no pinned root for the registry: it was neither created here nor
    trusted with ``toolsmith registry trust``."""


class RollbackError(TrustError):
    """A metadata version lower than the one this consumer already trusted (TUF rollback)."""


class FreezeError(TrustError):
    """Expired metadata: someone may be serving an old registry state forever (TUF freeze)."""


class MixAndMatchError(TrustError):
    """Metadata files from different registry states served together (TUF mix-and-match)."""


class MetadataTooLargeError(TrustError):
    """A metadata file over its size cap (TUF endless-data attack)."""


# Family -> (exit code, what it means); tests hold README.md's table and every subclass to it.
EXIT_CODES: dict[type[ToolsmithError], tuple[int, str]] = {
    ToolsmithError: (1, "any other toolsmith error"),
    UsageError: (2, "a bad argument, option or combination"),
    SpecError: (2, "a ToolSpec that does not validate"),
    RegistryError: (3, "registry: no such tool or version, a version conflict, a refused publish, "
                    "a corrupt or unreadable registry"),
    TrustError: (4, "verification failed: digests, signatures, approval"),
    SandboxError: (5, "the Docker sandbox: engine, image, confinement"),
    LLMError: (6, "the model: not configured, unavailable, invalid or truncated answers"),
    BuildError: (7, "a build that produced no passing tool"),
    PolicyError: (8, "the capability policy or constitution refused"),
    AuditError: (9, "the audit log fails its hash chain or cannot be written"),
    KeyStoreError: (10, "signing keys: missing, unreadable, unsafe permissions"),
    ToolCallError: (11, "calling a tool: bad arguments, a raised error, a crash, a timeout"),
    DependencyError: (12, "dependencies: no resolution, no wheel, an unreachable index"),
}  # fmt: skip
