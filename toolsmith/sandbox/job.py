"""The job protocol: what the host sends into one sandbox container."""

from __future__ import annotations

import re

from pydantic import ConfigDict, Field, field_validator

from toolsmith.dependencies import Lock
from toolsmith.models import PublicModel
from toolsmith.sandbox.grants import Grants

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TEST_FILE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\.py")


class Limits(PublicModel):
    """Resource limits of one job; container-level ones also decide which warm pool fits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: float = Field(default=60.0, gt=0, le=3600, description="wall clock, whole job")
    memory_mb: int = Field(default=256, ge=64, le=65536, description="memory, swap equal")
    pids: int = Field(default=128, ge=16, le=65536)
    cpus: float = Field(default=1.0, gt=0, le=64)
    output_bytes: int = Field(default=1 << 20, ge=1024, description="what the tool may print")
    tmpfs_mb: int = Field(default=64, ge=1, le=4096, description="size of /tmp and the work dir")
    call_timeout_s: float = Field(default=10.0, gt=0, le=3600, description="per tool call")

    def container_key(self) -> tuple[int, int, float, int]:
        """The limits fixed when a container is created (the rest travel with the job)."""
        return (self.memory_mb, self.pids, self.cpus, self.tmpfs_mb)


class SandboxJob(PublicModel):
    """One implementation and its tests; the tests import ``toolsmith_harness`` to call the tool."""

    model_config = ConfigDict(extra="forbid")

    tool_name: str = Field(description="the function the module defines; also the module name")
    code: str = Field(description="source of the implementation module")
    test_files: dict[str, str] = Field(description="file name -> pytest source")
    expected_tests: int = Field(ge=1, description="tests the files must yield once collected")
    limits: Limits = Field(default_factory=Limits)
    capabilities: list[str] = Field(
        default_factory=list, description="the spec's capabilities: what the container is granted"
    )
    variants: dict[str, str] = Field(
        default_factory=dict,
        description="id -> code of variants (mutants) the same tests run against after the "
        "tool, each in a fresh worker, each stopped at its first failing test",
    )
    variant_time_s: float = Field(
        default=60.0, gt=0, le=3600, description="no variant starts after this many seconds"
    )
    lock: Lock | None = Field(
        default=None,
        description="third-party wheels the job's container carries (its dependency layer); "
        "None: stdlib only",
    )

    @field_validator("tool_name")
    @classmethod
    def _identifier(cls, v: str) -> str:
        if not _IDENT.fullmatch(v):
            raise ValueError(f"tool_name {v!r} is not a Python identifier")
        return v

    @field_validator("capabilities")
    @classmethod
    def _grantable(cls, v: list[str]) -> list[str]:
        Grants.from_capabilities(v)
        return v

    @property
    def grants(self) -> Grants:
        """What the job's container may use; a job with grants never runs in a warm container."""
        return Grants.from_capabilities(self.capabilities)

    @field_validator("test_files")
    @classmethod
    def _file_names(cls, v: dict[str, str]) -> dict[str, str]:
        if not v:
            raise ValueError("test_files is empty: a job needs at least one test file")
        for name in v:
            if not _TEST_FILE.fullmatch(name):
                raise ValueError(
                    f"test file name {name!r} must be a plain module file name like test_x.py"
                )
        return v
