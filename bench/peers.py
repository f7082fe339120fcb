"""The peers a user would pick instead of toolsmith, set up so any machine can rerun the benches.

- ``docker_run_cmd`` / ``docker_exec_cmd``: the plain Docker baselines, through the docker CLI
  with the same hardening flags toolsmith's containers get (network none, read-only root, capped
  tmpfs, all capabilities dropped, no-new-privileges, pids/memory/CPU limits, non-root user).
- ``Peer``: llm-sandbox (a session per job, or its container pool) and epicbox, each in a virtual
  environment of its own (epicbox needs ``urllib3<2``, which conflicts with toolsmith's), driven
  through ``peer_worker.py``. They run on ``peer_image``: the runner image with a normal
  entrypoint (an idle process that exits on SIGTERM, so a stop does not wait out Docker's 10 s
  timeout) and a writable ``/sandbox``, built locally; nothing is pulled.

``ensure_venv`` creates a missing venv with pip from the package index; when that fails the bench
prints a skip line naming the command to run. ``BENCH_VENVS`` (default ``/work/venvs``) is where
the venvs live.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import docker

from toolsmith.sandbox.image import SANDBOX_UID

HERE = Path(__file__).resolve().parent
VENVS = Path(os.environ.get("BENCH_VENVS", "/work/venvs"))
PEER_VENVS = {
    "llm-sandbox": ("llmsandbox", ["llm-sandbox[docker]"]),
    "llm-sandbox-pool": ("llmsandbox", ["llm-sandbox[docker]"]),
    "epicbox": ("epicbox", ["epicbox", "urllib3<2"]),
}
PEER_DOCKERFILE = """FROM {base}
USER root
RUN ["/bin/sh", "-c", "mkdir -p /sandbox && chown {uid}:{uid} /sandbox && \\
ln -sf /usr/bin/python3 /usr/local/bin/python"]
WORKDIR /sandbox
CMD ["python3", "-c", "import signal, sys; \\
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0)); signal.pause()"]
"""
HARDENING = [
    "--network=none",
    "--read-only",
    "--tmpfs=/tmp:rw,noexec,nosuid,nodev,size=64m,mode=1777",
    f"--tmpfs=/work:rw,nosuid,nodev,size=64m,uid={SANDBOX_UID},gid={SANDBOX_UID},mode=0700",
    "--cap-drop=ALL",
    "--security-opt=no-new-privileges",
    "--pids-limit=128",
    "--memory=256m",
    "--memory-swap=256m",
    "--cpus=1",
    "--ulimit=core=0",
    "--ulimit=nofile=256:256",
    "--ipc=private",
    "--log-driver=none",
    f"--user={SANDBOX_UID}:{SANDBOX_UID}",
]
# Reads the job's files as JSON on stdin into /work, then runs its main.py there.
UNPACK = (
    "import json, os, runpy, sys; d = json.load(sys.stdin); os.chdir('/work'); "
    "[open(k, 'w').write(v) for k, v in d.items()]; sys.path.insert(0, '/work'); "
    "runpy.run_path('main.py', run_name='__main__')"
)


def docker_run_cmd(image: str) -> list[str]:
    """``docker run --rm`` of one job, hardened like toolsmith's containers; files on stdin."""
    return ["docker", "run", "--rm", "-i", *HARDENING, image, "python3", "-c", UNPACK]


def start_exec_target(image: str) -> str:
    """A long-lived hardened container to ``docker exec`` jobs into; remove it after."""
    sleep = ["python3", "-c", "import time; time.sleep(86400)"]
    out = subprocess.run(
        ["docker", "run", "-d", *HARDENING, "--label", "toolsmith.bench=exec", image, *sleep],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def docker_exec_cmd(container: str, job_dir: str) -> list[str]:
    """``docker exec`` of one job into ``container``, in a fresh directory ``job_dir``."""
    unpack = UNPACK.replace("'/work'", repr(job_dir)).replace(
        "os.chdir(", f"os.makedirs({job_dir!r}); os.chdir("
    )
    return ["docker", "exec", "-i", container, "python3", "-c", unpack]


def run_job_cmd(cmd: list[str], files: dict[str, str]) -> None:
    proc = subprocess.run(cmd, input=json.dumps(files).encode(), capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed: {proc.stdout[-400:]!r} {proc.stderr[-400:]!r}")


def peer_image(base: str) -> str:
    """The runner image with a normal entrypoint and a writable /sandbox, built once."""
    tag = f"toolsmith-bench-peer:{base.rpartition(':')[2]}"
    client = docker.from_env()
    if client.images.list(name=tag):
        return tag
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        data = PEER_DOCKERFILE.format(base=base, uid=SANDBOX_UID).encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    client.images.build(fileobj=context, custom_context=True, tag=tag, pull=False, rm=True)
    return tag


def ensure_venv(kind: str) -> Path:
    """The peer's venv python, created with pip if missing; RuntimeError naming the fix."""
    name, packages = PEER_VENVS[kind]
    venv = VENVS / name
    python = venv / "bin" / "python"
    fix = f"python3 -m venv {venv} && {python} -m pip install " + " ".join(
        repr(p) for p in packages
    )
    if not python.exists():
        made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True)
        if made.returncode == 0:
            made = subprocess.run(
                [str(python), "-m", "pip", "install", "-q", *packages], capture_output=True
            )
        if made.returncode != 0:
            raise RuntimeError(f"could not create {venv}; run: {fix}")
    return python


class Peer:
    """One peer sandbox driven in its own venv; ``run`` returns the seconds it took."""

    def __init__(self, kind: str, image: str) -> None:
        self.kind = kind
        python = ensure_venv(kind)
        self.proc = subprocess.Popen(
            [str(python), str(HERE / "peer_worker.py"), kind, image],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._answer()

    def _answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.kind} worker exited ({self.proc.wait()})")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"{self.kind}: {answer['error']}")
        return answer

    def run(self, files: dict[str, str], command: str) -> float:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"files": files, "command": command}) + "\n")
        self.proc.stdin.flush()
        return float(self._answer()["s"])

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps({"close": True}) + "\n")
            self.proc.stdin.flush()
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
