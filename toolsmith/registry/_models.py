"""The registry's records, as its verified TUF metadata describes them."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from toolsmith.models import PublicModel


class VersionStatus(StrEnum):
    """Lifecycle of a version; only PUBLISHED versions are ever resolved.

    PENDING versions wait for a person's decision (``Registry.approve``/``reject``), which moves
    them to PUBLISHED or REJECTED; REJECTED is final.
    """

    PUBLISHED = "published"
    PENDING = "pending"
    REJECTED = "rejected"


class VersionRecord(PublicModel):
    """One version as the registry's verified TUF metadata describes it (the custom fields of
    its statement target). ``yanked``/``yank_reason`` change only by a new signed targets
    version, ``status``/``approval`` only by a signed decision in the approvers role."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    digest: str = Field(description="sha256 of the signed in-toto statement: the version's id")
    envelope: str = Field(description="sha256 of the DSSE envelope (a TUF target)")
    parts: dict[str, str] = Field(description="sha256 of the code, spec, report, provenance")
    status: VersionStatus = VersionStatus.PUBLISHED
    approval: str | None = Field(
        default=None, description="sha256 of the DSSE envelope of the approval or rejection"
    )
    approval_required: bool = Field(
        default=False, description="the publisher's signed statement asks for a person's approval"
    )
    yanked: bool = False
    yank_reason: str | None = None
    published_at: str
    signers: list[str] = Field(default_factory=list)
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    capabilities: list[str] = Field(default_factory=list)


class KeyRole(StrEnum):
    """A key's role in a registry: ``publisher`` keys hold TUF's targets role (they sign
    versions and yanks), ``approver`` keys the delegated ``approvers`` role (they sign decisions
    on pending versions)."""

    PUBLISHER = "publisher"
    APPROVER = "approver"


class TrustedKey(BaseModel):
    """A public key the registry's signed metadata lists, with every role it holds (TUF role
    names: root, targets, snapshot, timestamp, approvers)."""

    key_id: str
    name: str = ""
    roles: list[str] = Field(default_factory=list)


class VerifyResult(BaseModel):
    name: str
    version: str
    digest: str = ""
    status: VersionStatus = VersionStatus.PUBLISHED
    ok: bool
    error: str | None = None
    exit_code: int = Field(default=0, description="the failing error family's exit code")
    signers: list[str] = Field(default_factory=list)
    yanked: bool = False


class SearchHit(BaseModel):
    name: str
    version: str
    digest: str
    description: str
    tags: list[str]
    score: float


class GarbageReport(BaseModel):
    """What ``Registry.gc`` removed (or, on a dry run, would remove)."""

    dry_run: bool
    unreferenced: list[str] = Field(description="registry paths of target files no metadata names")
    freed_bytes: int
    kept: int = Field(description="target files still named by the metadata")
    leftovers: int = Field(description="temporary files of killed writes")
