"""The registry's records: what the index stores and what resolution hands out."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from toolsmith.report import Provenance, TestReport
from toolsmith.spec import ToolSpec


class VersionStatus(StrEnum):
    """Lifecycle of a version; only PUBLISHED versions are ever resolved.

    PENDING versions wait for a person's decision (``Registry.approve``/``reject``), which moves
    them to PUBLISHED or REJECTED; REJECTED is final.
    """

    PUBLISHED = "published"
    PENDING = "pending"
    REJECTED = "rejected"


class VersionRecord(BaseModel):
    """One version in a tool's index. Only ``yanked``/``yank_reason``/``status``/``approval``
    change later; ``status`` alone proves nothing, ``approval`` names the signed decision."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    digest: str = Field(description="sha256 of the signed in-toto statement: the version's id")
    envelope: str = Field(description="sha256 of the DSSE envelope blob")
    parts: dict[str, str] = Field(description="sha256 of the code, spec, report, provenance blobs")
    status: VersionStatus = VersionStatus.PUBLISHED
    approval: str | None = Field(
        default=None, description="sha256 of the DSSE envelope of the approval or rejection"
    )
    yanked: bool = False
    yank_reason: str | None = None
    published_at: str
    signers: list[str] = Field(default_factory=list)
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    capabilities: list[str] = Field(default_factory=list)


class ToolIndex(BaseModel):
    """The document stored per tool, signed whole: every version ever published, in publish
    order; ``serial`` counts the index's signed revisions."""

    name: str
    serial: int = 0
    records: list[VersionRecord] = Field(default_factory=list)


class VerifiedTool(BaseModel):
    """A version whose digests and signatures were checked; the only thing ``resolve`` returns."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    digest: str
    spec: ToolSpec
    code: str
    report: TestReport
    provenance: Provenance
    signers: tuple[str, ...]
    approvers: tuple[str, ...] = ()
    yanked: bool = False
    yank_reason: str | None = None


class VerifyResult(BaseModel):
    name: str
    version: str
    digest: str = ""
    status: VersionStatus = VersionStatus.PUBLISHED
    ok: bool
    error: str | None = None
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
    unreferenced: list[str] = Field(description="sha256 of every blob no index names")
    freed_bytes: int
    kept: int = Field(description="blobs still named by some version")
    leftovers: int = Field(description="temporary files of killed writes")
