"""Per-call latency of a loaded tool, by runtime, against a plain in-process call.

Two tools from the repo's curated registry: ``to_roman`` (trivial) and ``json_canonicalize`` on a
~10 KB document (moderate). For each, in one process:
  plain          the verified code exec'd here and the function called directly (the floor)
  restricted     ``load_tool(..., "restricted")``: RestrictedPython in-process, schema checks
  docker warm    ``load_tool(..., "docker")``: calls back to back, and spaced 20 ms apart
                 (back to back, each call also waits for the previous call's clean-up and the
                 fork of its own process; spaced, those happen between calls, as with an agent)
  docker exec    ``docker exec`` of ``python3 -I -c <tool + call>`` into one running container
  docker run     a fresh hardened container per call (create, attach, start, wait, logs, remove)
plus the one-off costs: ``Registry.resolve`` (verify) and ``load_tool`` per runtime, and the
cost of the run-time barriers: two warm docker tools, one with its barriers and one without
(``bench/unconfined.py``), called alternately (ABBA order), back to back and 20 ms apart.

Then the peers, one call of ``to_roman`` each, interleaved round-robin (every row once per round,
in rotated order): toolsmith's warm docker call, hardened ``docker exec`` and ``docker run
--rm`` (the CLI, ``peers.py``), llm-sandbox with a session per call and from its container pool,
and epicbox, each peer in its own venv on the runner image with a normal entrypoint.

Usage: python bench/calls.py [--n 1000] [--slow-n 10] [--peer-rounds 5] [--barriers-only]
[--peers-only]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import peers
from unconfined import unconfined

from toolsmith.loader import load_tool
from toolsmith.registry import Registry, trust_registry
from toolsmith.sandbox import Limits, connect, ensure_image
from toolsmith.sandbox.containers import ENVIRONMENT, host_config
from toolsmith.sandbox.image import SANDBOX_UID

CURATED = Path(__file__).resolve().parent.parent / "registry"
RUNNER = "\nimport json, sys\nprint(json.dumps({name}(**json.loads(sys.argv[1]))))\n"


def document(size: int = 10_000) -> str:
    rng = random.Random(7)
    items = []
    while len(json.dumps(items)) < size:
        items.append(
            {
                "id": rng.randrange(10**6),
                "name": " ".join(rng.choice(["alpha", "beta", "gamma", "delta"]) for _ in range(3)),
                "tags": [rng.choice("xyz") * rng.randrange(1, 4) for _ in range(3)],
                "score": round(rng.random() * 100, 3),
                "ok": rng.random() > 0.5,
            }
        )
    return json.dumps({"z": items, "a": {"nested": {"k": [1, 2, 3]}}}, indent=2)


def timed(fn: Callable[[], Any], n: int, gap_s: float = 0.0) -> list[float]:
    """Milliseconds per call, after 5 warm-up calls."""
    for _ in range(min(5, n)):
        fn()
    samples = []
    for _ in range(n):
        if gap_s:
            time.sleep(gap_s)
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def p50(samples: list[float]) -> float:
    return statistics.median(samples)


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98] if len(samples) >= 20 else max(samples)


class Containers:
    """``docker exec`` and ``docker run`` per call, hardened like the docker runtime's worker."""

    def __init__(self) -> None:
        self.engine = connect()
        self.image = ensure_image(self.engine)
        self.api = self.engine.api
        self.long_lived = self._create(["python3", "-c", "import time; time.sleep(3600)"])
        self.api.start(self.long_lived)

    def _create(self, command: list[str]) -> str:
        config = self.api.create_container_config(
            self.image.tag,
            command=command,
            user=f"{SANDBOX_UID}:{SANDBOX_UID}",
            environment=ENVIRONMENT,
            working_dir="/work",
            network_disabled=True,
            labels={"toolsmith.bench": "calls"},
            host_config=host_config(self.engine, Limits()),
        )
        return str(self.api.create_container_from_config(config)["Id"])

    def exec_call(self, code: str, name: str, args: dict[str, Any]) -> Any:
        command = ["python3", "-I", "-c", code + RUNNER.format(name=name), json.dumps(args)]
        exec_id = self.api.exec_create(self.long_lived, command, user=f"{SANDBOX_UID}")["Id"]
        return json.loads(self.api.exec_start(exec_id))

    def run_call(self, code: str, name: str, args: dict[str, Any]) -> Any:
        command = ["python3", "-I", "-c", code + RUNNER.format(name=name), json.dumps(args)]
        cid = self._create(command)
        try:
            raw = self.api.attach_socket(cid, params={"stdout": 1, "stream": 1})
            sock = getattr(raw, "_sock", raw)
            self.api.start(cid)
            stream = b""
            while chunk := sock.recv(1 << 20):
                stream += chunk
            raw.close()
            self.api.wait(cid, timeout=60)
            out = b""
            while len(stream) >= 8:  # Docker's multiplexed stream: 8-byte headers
                size = int.from_bytes(stream[4:8], "big")
                out += stream[8 : 8 + size]
                stream = stream[8 + size :]
            return json.loads(out)
        finally:
            self.api.remove_container(cid, force=True)

    def close(self) -> None:
        self.api.remove_container(self.long_lived, force=True)


Row = tuple[str, str, list[float], float | None]


def curated_copy(tmp: Path) -> Registry:
    """The curated registry copied under ``tmp``, pinned (by the checkout's own root) in a
    TOOLSMITH_HOME there, so the bench leaves the user's trust store alone."""
    os.environ["TOOLSMITH_HOME"] = str(tmp / "home")
    copy = tmp / "registry"
    shutil.copytree(CURATED, copy, ignore=shutil.ignore_patterns("sources", "tmp", ".lock", "*.py"))
    trust_registry(copy, Registry(CURATED).fingerprint())
    return Registry(copy)


def interleaved(
    a: Callable[[], Any], b: Callable[[], Any], n: int, gap_s: float = 0.0
) -> tuple[list[float], list[float]]:
    """Milliseconds per call of ``a`` and ``b``, alternated ABBA so drift hits both alike."""
    for _ in range(5):
        a(), b()
    samples: tuple[list[float], list[float]] = ([], [])
    for i in range(n):
        order = ((0, a), (1, b)) if i % 2 == 0 else ((1, b), (0, a))
        for which, fn in order:
            if gap_s:
                time.sleep(gap_s)
            start = time.perf_counter()
            fn()
            samples[which].append((time.perf_counter() - start) * 1000)
    return samples


def bench_barriers(registry: Registry, name: str, args: dict[str, Any], n: int) -> list[Row]:
    """A warm docker call with its barriers against the same call without them."""
    verified = registry.resolve(name)
    rows: list[Row] = []
    with load_tool(verified, "docker") as confined:
        with unconfined():
            baseline_tool = load_tool(verified, "docker")
        with baseline_tool:
            assert confined(**args) == baseline_tool(**args)
            for label, count, gap in (
                ("back to back", n, 0.0),
                ("20 ms apart", max(50, n // 5), 0.02),
            ):
                with_b, without = interleaved(
                    partial(confined, **args), partial(baseline_tool, **args), count, gap
                )
                base = p50(without)
                rows.append((name, f"warm, no barriers, {label}", without, base))
                rows.append((name, f"warm, barriers, {label}", with_b, base))
    return rows


def bench_tool(
    registry: Registry, containers: Containers, name: str, args: dict[str, Any], n: int, slow_n: int
) -> list[Row]:
    verified = registry.resolve(name)
    namespace: dict[str, Any] = {}
    exec(compile(verified.code, name, "exec"), namespace)
    fn = namespace[name]
    expected = fn(**args)
    floor = timed(partial(fn, **args), n)
    base = p50(floor)
    rows: list[Row] = [(name, "plain call (floor)", floor, base)]
    with load_tool(verified, "restricted") as tool:
        assert tool(**args) == expected
        rows.append((name, "restricted", timed(partial(tool, **args), n), base))
    with load_tool(verified, "docker") as tool:
        assert tool(**args) == expected
        rows.append((name, "docker warm, back to back", timed(partial(tool, **args), n), base))
        spaced = timed(partial(tool, **args), max(50, n // 5), gap_s=0.02)
        rows.append((name, "docker warm, 20 ms apart", spaced, base))
    call = partial(containers.exec_call, verified.code, name, args)
    assert call() == expected
    rows.append((name, "docker exec per call", timed(call, slow_n), base))
    call = partial(containers.run_call, verified.code, name, args)
    rows.append((name, "docker run per call", timed(call, slow_n), base))
    return rows


def bench_peers(registry: Registry, rounds: int) -> list[Row]:
    """One call of to_roman per row and round, rows in rotated order; seconds become ms."""
    name, args = "to_roman", {"number": 1994}
    verified = registry.resolve(name)
    script = verified.code + RUNNER.format(name=name)
    files = {"call.py": script}
    command = f"python3 call.py {shlex.quote(json.dumps(args))}"
    image = ensure_image()
    closers: list[Callable[[], Any]] = []
    rows: dict[str, Callable[[], float]] = {}

    def timed_ms(fn: Callable[[], Any]) -> Callable[[], float]:
        def once() -> float:
            start = time.perf_counter()
            fn()
            return (time.perf_counter() - start) * 1000

        return once

    tool = load_tool(verified, "docker")
    closers.append(tool.close)

    def spaced_call() -> float:
        time.sleep(0.02)
        return timed_ms(partial(tool, **args))()

    rows["toolsmith docker warm, 20 ms apart"] = spaced_call
    exec_target = peers.start_exec_target(image.tag)
    closers.append(
        partial(subprocess.run, ["docker", "rm", "-f", exec_target], capture_output=True)
    )
    exec_cmd = ["docker", "exec", exec_target, "python3", "-I", "-c", script, json.dumps(args)]
    rows["docker exec (CLI)"] = timed_ms(
        partial(subprocess.run, exec_cmd, check=True, capture_output=True)
    )
    run_cmd = peers.docker_run_cmd(image.tag)
    main_py = {"main.py": script.replace("sys.argv[1]", repr(json.dumps(args)))}
    rows["docker run --rm (CLI, hardened)"] = timed_ms(partial(peers.run_job_cmd, run_cmd, main_py))
    tag = peers.peer_image(image.tag)
    for kind, label in (
        ("llm-sandbox", "llm-sandbox, session per call"),
        ("llm-sandbox-pool", "llm-sandbox, its container pool"),
        ("epicbox", "epicbox"),
    ):
        try:
            peer = peers.Peer(kind, tag)
            peer.run(files, command)
        except Exception as e:
            print(f"skip {label}: {type(e).__name__}: {str(e)[:300]}")
            continue
        closers.append(peer.close)
        rows[label] = lambda peer=peer: peer.run(files, command) * 1000
    samples: dict[str, list[float]] = {label: [] for label in rows}
    try:
        for label in rows:
            rows[label]()
        for r in range(rounds):
            order = list(rows)[r % len(rows) :] + list(rows)[: r % len(rows)]
            for label in order:
                samples[label].append(rows[label]())
    finally:
        for close in reversed(closers):
            close()
    base = p50(samples["docker exec (CLI)"])
    return [(name, label, xs, base) for label, xs in samples.items()]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000, help="calls per in-process/warm row")
    parser.add_argument("--slow-n", type=int, default=10, help="calls per exec / run row")
    parser.add_argument(
        "--barriers-only", action="store_true", help="only the with/without barriers rows"
    )
    parser.add_argument("--peer-rounds", type=int, default=5, help="rounds of the peer rows")
    parser.add_argument("--peers-only", action="store_true", help="only the peer rows")
    opts = parser.parse_args()
    if opts.peers_only or (opts.peer_rounds and not opts.barriers_only):
        with tempfile.TemporaryDirectory() as tmp:
            rows = bench_peers(curated_copy(Path(tmp)), opts.peer_rounds)
        print_rows(rows, f"peers, interleaved round-robin, {opts.peer_rounds} rounds", "x exec")
        if opts.peers_only:
            return
    if opts.barriers_only:
        with tempfile.TemporaryDirectory() as tmp:
            registry = curated_copy(Path(tmp))
            rows = bench_barriers(registry, "to_roman", {"number": 1994}, opts.n)
            rows += bench_barriers(registry, "json_canonicalize", {"document": document()}, opts.n)
        print_rows(rows, f"barriers only; n={opts.n}", "x no barr")
        return

    with tempfile.TemporaryDirectory() as tmp:
        registry = curated_copy(Path(tmp))
        containers = Containers()
        rows: list[Row] = []
        try:
            rows += bench_tool(
                registry, containers, "to_roman", {"number": 1994}, opts.n, opts.slow_n
            )
            rows += bench_tool(
                registry,
                containers,
                "json_canonicalize",
                {"document": document()},
                opts.n,
                opts.slow_n,
            )
            rows += bench_barriers(registry, "to_roman", {"number": 1994}, opts.n)
            rows.append(
                (
                    "to_roman",
                    "Registry.resolve (verify)",
                    timed(partial(registry.resolve, "to_roman"), 50),
                    None,
                )
            )
            verified = registry.resolve("to_roman")
            rows.append(
                (
                    "to_roman",
                    "load_tool restricted",
                    timed(lambda: load_tool(verified, "restricted").close(), 50),
                    None,
                )
            )
            rows.append(
                (
                    "to_roman",
                    "load_tool docker (start worker)",
                    timed(lambda: load_tool(verified, "docker").close(), opts.slow_n),
                    None,
                )
            )
        finally:
            containers.close()

    title = f"engine runtime: {containers.engine.runtime}; n={opts.n}, slow n={opts.slow_n}"
    print_rows(rows, title + " (barrier rows: ratio against no barriers)", "x base")


def print_rows(rows: list[Row], title: str, against: str) -> None:
    """The table; the ratio column is the p50 against the row's baseline (floor or no barriers)."""
    print(title)
    print(f"| {'tool':<17} | {'path':<32} | {'p50 ms':>9} | {'p99 ms':>9} | {against:>9} |")
    print(f"|{'-' * 19}|{'-' * 34}|{'-' * 10}:|{'-' * 10}:|{'-' * 10}:|")
    for tool_name, path, samples, base in rows:
        ratio = f"{p50(samples) / base:9.3f}" if base else f"{'-':>9}"
        median, tail = p50(samples), p99(samples)
        print(f"| {tool_name:<17} | {path:<32} | {median:9.3f} | {tail:9.3f} | {ratio} |")


if __name__ == "__main__":
    main()
