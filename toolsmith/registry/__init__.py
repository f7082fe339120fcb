"""The signed, versioned tool registry (local files by default; storage is pluggable)."""

from toolsmith.registry._models import (
    GarbageReport,
    SearchHit,
    ToolIndex,
    VerifiedTool,
    VerifyResult,
    VersionRecord,
    VersionStatus,
)
from toolsmith.registry._registry import Registry, parse_ref
from toolsmith.registry._storage import FileStorage, Storage
from toolsmith.registry._trust import KeyRole, TrustedKey, TrustStore

__all__ = [
    "FileStorage",
    "GarbageReport",
    "KeyRole",
    "Registry",
    "SearchHit",
    "Storage",
    "ToolIndex",
    "TrustStore",
    "TrustedKey",
    "VerifiedTool",
    "VerifyResult",
    "VersionRecord",
    "VersionStatus",
    "parse_ref",
]
