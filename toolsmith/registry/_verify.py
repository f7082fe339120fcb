"""Pure verification of one tool version: bytes and verified metadata in, a ``VerifiedTool`` out.

No IO happens here (python-tuf's ``trusted_metadata_set.py`` is the model): the registry fetches
the statement envelope, the four parts and the approval through ngclient (which has already
checked the metadata chain from the consumer's pinned root), then hands the bytes to ``verify``.
It checks, in order: each file's length and sha256 against its TUF target, the DSSE signatures
of the in-toto statement against the targets role's keys and threshold, that the statement names
this version and these parts, the approval (a DSSE decision signed by a key the consumer trusts
as approver), and the consumer's own capability policy. Only then are the parts parsed.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import ValidationError
from tuf.api.exceptions import LengthOrHashMismatchError
from tuf.api.metadata import TargetFile

from toolsmith import signing
from toolsmith.errors import (
    ApprovalRequiredError,
    CorruptRegistryError,
    DigestMismatchError,
    PolicyError,
    SignatureError,
    TrustError,
)
from toolsmith.policy import CapabilityPolicy
from toolsmith.report import Provenance, TestReport
from toolsmith.signing import Decision, TrustPolicy
from toolsmith.spec import STORED, ToolSpec
from toolsmith.verified import _SEAL, VerifiedTool, _issue


@dataclass(frozen=True)
class Approval:
    """A decision target's bytes and the approver keys this consumer trusts."""

    envelope: bytes
    info: TargetFile
    approvers: TrustPolicy


@dataclass(frozen=True)
class Gate:
    """What the consumer requires at load: its capability policy decides which capabilities are
    refused and which need a trusted approval. ``None`` checks signatures and digests only (for
    ``registry verify``)."""

    policy: CapabilityPolicy


def check_target(info: TargetFile, data: bytes, what: str) -> None:
    try:
        info.verify_length_and_hashes(data)
    except LengthOrHashMismatchError:
        raise DigestMismatchError(
            f"{what} does not match the length and sha256 the signed metadata records",
            hint="the file was altered after publishing; do not use this version",
        ) from None


def verify(
    name: str,
    version: str,
    statement_info: TargetFile,
    envelope: bytes,
    part_infos: Mapping[str, TargetFile],
    parts: Mapping[str, bytes],
    publishers: TrustPolicy,
    approval: Approval | None,
    gate: Gate | None,
) -> VerifiedTool:
    """Everything one version must satisfy before any of its bytes is used; raises a
    ``TrustError`` (or ``PolicyError`` for the consumer's policy) naming the first failure."""
    ref = f"{name}@{version}"
    check_target(statement_info, envelope, f"the statement envelope of {ref}")
    statement = signing.verify_envelope(envelope, publishers)
    if (statement.name, statement.version) != (name, version):
        raise SignatureError(
            f"the statement published as {ref} is for {statement.name}@{statement.version}",
            hint="the registry mixes parts of different versions; re-publish from a clean build",
        )
    for part in signing.PARTS:
        info = part_infos.get(part)
        if info is None or info.hashes.get("sha256") != statement.subjects[part]:
            raise DigestMismatchError(
                f"the {part} target of {ref} is not the one its signed statement names",
                hint="the metadata was edited; restore the registry from a copy",
            )
        check_target(info, parts[part], f"{part} of {ref}")
        signing.check_part(statement, part, parts[part])
    approvers = _approval(ref, statement, approval)
    try:
        spec = _load_spec(parts["spec"]).model_copy(deep=True)
        report = TestReport.model_validate_json(parts["report"])
        provenance = Provenance.model_validate_json(parts["provenance"])
        code = parts["code"].decode()
    except (ValidationError, UnicodeDecodeError) as e:
        raise CorruptRegistryError(f"signed parts of {ref} do not load: {e}") from None
    if spec.name != name or not report.passed:
        raise TrustError(
            f"signed content of {ref} is not a passing build of {name} (spec names "
            f"{spec.name!r}, report: {report.summary()})"
        )
    if gate is not None:
        _consumer_gate(ref, spec, report, statement.needs_approval, approvers, gate)
    custom = statement_info.custom if isinstance(statement_info.custom, dict) else {}
    return _issue(
        _SEAL,
        name=name,
        version=version,
        digest=statement.digest,
        spec=spec,
        code=code,
        report=report,
        provenance=provenance,
        signers=statement.signers,
        approvers=approvers,
        yanked=bool(custom.get("yanked")),
        yank_reason=custom.get("yank_reason"),
    )


def _approval(
    ref: str, statement: signing.VerifiedStatement, approval: Approval | None
) -> tuple[str, ...]:
    """The approvers' key ids (empty when there is no decision); a rejection raises."""
    if approval is None:
        return ()
    check_target(approval.info, approval.envelope, f"the decision on {ref}")
    decision = signing.verify_decision(approval.envelope, approval.approvers)
    if (f"{decision.name}@{decision.version}", decision.subject) != (ref, statement.digest):
        raise SignatureError(
            f"the decision recorded for {ref} is about {decision.name}@{decision.version} "
            f"({decision.subject[:16]}...)",
            hint="the approvers metadata was edited; restore the registry from a copy",
        )
    if decision.decision == Decision.REJECTED:
        raise ApprovalRequiredError(
            f"{ref} was rejected by an approver and can never be loaded"
            + (f" ({decision.reason})" if decision.reason else ""),
            hint=f"`toolsmith registry verify {ref}` shows it; publish a fixed version for review",
        )
    return decision.signers


def _consumer_gate(
    ref: str,
    spec: ToolSpec,
    report: TestReport,
    publisher_wants: bool,
    approvers: tuple[str, ...],
    gate: Gate,
) -> None:
    """The consumer's own rules, whatever the publisher decided: a denied capability refuses
    the tool; one needing approval (or a publisher's "approval required") needs a trusted one;
    a signed mutation score below the consumer's ``[tests] min_mutation_score`` refuses it."""
    minimum = gate.policy.tests.min_mutation_score
    score = report.mutation.score if report.mutation is not None else None
    if minimum is not None and (score is None or score < minimum):
        shown = "not measured" if score is None else f"{score:.0%}"
        raise PolicyError(
            f"{ref}'s signed mutation score is {shown}, below the {minimum:.0%} your policy "
            f"{gate.policy.source} requires ([tests] min_mutation_score)",
            hint="use another tool or version, or lower min_mutation_score in your policy",
        )
    needs = publisher_wants
    for cap in spec.capabilities:
        decision, key, pattern = gate.policy.capabilities.classify([cap])
        if decision == "deny":
            raise PolicyError(
                f"{ref} declares capability {cap!r}, which your policy {gate.policy.source} "
                f"denies ({key}" + (f" {pattern!r})" if pattern else ")"),
                hint="use another tool, or change your policy (TOOLSMITH_POLICY) if you mean it",
            )
        needs = needs or decision == "needs_approval"
    if needs and not approvers:
        if publisher_wants:
            problem = f"{ref} is pending approval: it cannot be loaded until a person approves it"
        else:
            problem = (
                f"{ref} needs approval under your policy {gate.policy.source} (capabilities "
                f"{', '.join(spec.capabilities)}) and no key you trust as approver approved it"
            )
        raise ApprovalRequiredError(
            problem,
            hint=f"a trusted approver runs `toolsmith approve {ref}` (or `toolsmith reject "
            f"{ref} --reason ...`)",
        )


@functools.lru_cache(maxsize=1024)
def _load_spec(data: bytes) -> ToolSpec:
    """Validating a spec runs jsonschema meta-validation (~3 ms); verified bytes parse the same
    every time, so the result is memoised on the bytes (callers get a deep copy)."""
    return ToolSpec.model_validate_json(data, context=STORED)
