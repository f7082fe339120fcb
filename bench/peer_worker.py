"""Runs one peer sandbox inside that peer's own virtual environment (started by ``peers.py``).

Usage: ``<peer venv>/bin/python peer_worker.py KIND IMAGE`` with KIND one of ``llm-sandbox``
(a new session per job), ``llm-sandbox-pool`` (sessions from llm-sandbox's container pool),
``epicbox``. It reads one JSON request per line on stdin and answers one JSON line on stdout:
``{"files": {name: text}, "command": "python3 main.py"}`` runs a job (files written into the work
directory, then the command), ``{"close": true}`` ends. The answer is ``{"s": seconds}`` timed
here around the peer's own API call (setup and teardown included, as its user pays them), or
``{"error": "..."}``. Only the standard library and the peer are imported.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from typing import Any


class LlmSandbox:
    """llm-sandbox: ``SandboxSession`` per job, or ``PooledSandboxSession`` from its pool."""

    def __init__(self, image: str, pooled: bool) -> None:
        self.image = image
        self.pool: Any = None
        if pooled:
            from llm_sandbox.pool import PoolConfig, create_pool_manager

            self.pool = create_pool_manager(
                backend="docker",
                config=PoolConfig(min_pool_size=2, max_pool_size=4),
                lang="python",
                image=image,
                skip_environment_setup=True,
            )

    def session(self) -> Any:
        if self.pool is not None:
            from llm_sandbox.pool import PooledSandboxSession

            return PooledSandboxSession(pool_manager=self.pool)
        from llm_sandbox import SandboxSession

        return SandboxSession(
            lang="python", image=self.image, keep_template=True, skip_environment_setup=True
        )

    def run(self, files: dict[str, str], command: str) -> None:
        with self.session() as s, tempfile.TemporaryDirectory() as tmp:
            job = f"/sandbox/job-{os.urandom(6).hex()}"
            for name, text in files.items():
                path = os.path.join(tmp, name)
                with open(path, "w") as f:
                    f.write(text)
                s.copy_to_runtime(path, f"{job}/{name}")
            result = s.execute_command(command, workdir=job)
            if result.exit_code != 0:
                raise RuntimeError(f"job failed: {result.stdout[-500:]} {result.stderr[-500:]}")

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()


class Epicbox:
    """epicbox: ``epicbox.run`` per job (create, copy in, start, wait, remove)."""

    def __init__(self, image: str) -> None:
        import epicbox

        self.epicbox = epicbox
        epicbox.configure(profiles=[epicbox.Profile("python", image, user="10001")])

    def run(self, files: dict[str, str], command: str) -> None:
        result = self.epicbox.run(
            "python",
            command,
            files=[{"name": k, "content": v.encode()} for k, v in files.items()],
            limits={"cputime": 60, "realtime": 120, "memory": 256},
        )
        if result["exit_code"] != 0:
            raise RuntimeError(f"job failed: {str(result)[-800:]}")

    def close(self) -> None:
        pass


def main() -> None:
    kind, image = sys.argv[1], sys.argv[2]
    peer: Any
    if kind == "epicbox":
        peer = Epicbox(image)
    else:
        peer = LlmSandbox(image, pooled=kind == "llm-sandbox-pool")
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("close"):
            break
        started = time.perf_counter()
        try:
            peer.run(request["files"], request["command"])
        except Exception as e:  # reported to the bench, which prints it as a skip line
            print(json.dumps({"error": f"{type(e).__name__}: {e}"[:1500]}), flush=True)
            continue
        print(json.dumps({"s": time.perf_counter() - started}), flush=True)
    peer.close()


if __name__ == "__main__":
    main()
