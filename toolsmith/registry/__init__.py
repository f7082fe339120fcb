"""The signed, versioned tool registry: a TUF repository (python-tuf), local or served."""

from toolsmith.registry._models import (
    GarbageReport,
    KeyRole,
    SearchHit,
    TrustedKey,
    VerifyResult,
    VersionRecord,
    VersionStatus,
)
from toolsmith.registry._registry import Registry, consumer_audit, parse_ref, trust_registry
from toolsmith.registry._storage import RegistryStorage
from toolsmith.verified import VerifiedTool

__all__ = [
    "GarbageReport",
    "KeyRole",
    "Registry",
    "RegistryStorage",
    "SearchHit",
    "TrustedKey",
    "VerifiedTool",
    "VerifyResult",
    "VersionRecord",
    "VersionStatus",
    "consumer_audit",
    "parse_ref",
    "trust_registry",
]
