"""The Docker sandbox: hardened one-job containers, a warm pool, and an unforgeable test report.

Public API::

    ensure_image(...) -> ImageInfo          build (offline) or find the runner image
    Sandbox(...).run(SandboxJob) -> TestReport
    WarmPool(size, max_size=..., idle_expiry_s=..., image=...)   sized by demand
    pool_statuses() -> list[PoolStatus]     what the warm pools of this host's processes hold
    check_confinement(...) -> list[Probe]   the isolation self-test, run-time barriers included
    BARRIERS, plan(Grants) -> BarrierPlan   what the kernel denies a tool that did not declare it
    prune_images(...) -> PrunedImages       drop images older builds left behind
    SandboxJob(lock=...)                     a job in its dependency layer (``layer``: the
                                             runner image plus one lock's wheels, built offline)

The Docker layer under both test jobs and docker-runtime calls is public too: ``engine``
(``connect``, ``docker_errors``), ``containers`` (``AttachedContainer``, the worker API: create
granted exactly a tool's grants, attach, start, ``send``/``pump``/``discard``; one ``Frames``
parser for the attach stream) and ``cleanup`` (close at exit, sweep what dead owners left).
"""

from toolsmith.sandbox.barriers import BARRIERS, Barrier, BarrierPlan, plan
from toolsmith.sandbox.check import Probe, check_confinement
from toolsmith.sandbox.containers import AttachedContainer, Frames
from toolsmith.sandbox.engine import Engine, connect
from toolsmith.sandbox.image import ImageInfo, ensure_image, find_image
from toolsmith.sandbox.job import Limits, SandboxJob
from toolsmith.sandbox.pool import WarmPool
from toolsmith.sandbox.prune import PrunedImages, prune_images
from toolsmith.sandbox.sandbox import DockerBackend, Sandbox, SandboxBackend
from toolsmith.sandbox.status import PoolStatus, pool_statuses

__all__ = [
    "BARRIERS",
    "AttachedContainer",
    "Barrier",
    "BarrierPlan",
    "DockerBackend",
    "Engine",
    "Frames",
    "ImageInfo",
    "Limits",
    "PoolStatus",
    "Probe",
    "PrunedImages",
    "Sandbox",
    "SandboxBackend",
    "SandboxJob",
    "WarmPool",
    "check_confinement",
    "connect",
    "ensure_image",
    "find_image",
    "plan",
    "pool_statuses",
    "prune_images",
]
