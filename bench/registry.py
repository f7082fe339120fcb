"""Registry benchmark: resolve+verify, list and search on a local TUF registry, and the first load
from a registry served over HTTP, each against a raw-read baseline measured in the same run,
interleaved with it.

    python bench/registry.py [--dir DIR] [--versions 2]

Publishes ``--versions`` versions of each of 200 tools through ``Registry.publish`` (in-toto
statement signed with DSSE, five targets, new targets/snapshot/timestamp metadata, fsync), then
times, in this process:
- resolve+verify of one version (warm: the consumer has verified the current metadata) vs.
  reading the same five target files and hashing them (no signature, no metadata, no parsing);
- ``list()`` of 200 tools vs. reading and ``json.loads``-ing the metadata listing the versions
  (the targets metadata and every hashed bin);
- ``search()`` warm vs. a substring scan of the same descriptions held in memory;
- over HTTP (a loopback ``http.server``): the first resolve by a consumer with an empty cache
  (pin root, fetch timestamp, snapshot, targets, five target files) and by one whose cache is
  warm (fetch timestamp, read the rest from the cache), vs. fetching the five target files raw.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from toolsmith.registry import Registry, trust_registry
from toolsmith.report import Outcome, Provenance, TestCase, TestReport
from toolsmith.signing import SigningKey
from toolsmith.spec import ToolSpec

WORDS = [
    "parse",
    "format",
    "convert",
    "validate",
    "extract",
    "count",
    "sort",
    "merge",
    "split",
    "filter",
    "normalise",
    "hash",
    "encode",
    "decode",
    "compress",
    "summarise",
    "rank",
    "score",
    "match",
    "search",
    "date",
    "time",
    "timezone",
    "duration",
    "csv",
    "json",
    "yaml",
    "xml",
    "html",
    "markdown",
    "url",
    "email",
    "phone",
    "address",
    "currency",
    "number",
    "integer",
    "float",
    "fraction",
    "percent",
    "matrix",
    "vector",
    "graph",
    "tree",
    "list",
    "string",
    "text",
    "word",
    "sentence",
    "token",
    "unicode",
    "ascii",
    "bytes",
    "base64",
    "checksum",
    "uuid",
    "semver",
    "version",
    "range",
    "interval",
    "calendar",
    "week",
    "month",
    "year",
    "temperature",
    "distance",
    "weight",
    "colour",
    "image",
    "pixel",
    "table",
    "column",
    "row",
    "header",
    "cell",
    "key",
    "value",
    "record",
    "field",
    "schema",
]
TOOLS = 200


def make_spec(i: int, rng: random.Random) -> ToolSpec:
    verb, noun = rng.choice(WORDS[:20]), rng.choice(WORDS[20:])
    return ToolSpec(
        name=f"{verb}_{noun}_{i}",
        description=" ".join(rng.choices(WORDS, k=14)).capitalize() + ".",
        parameters={"type": "object", "properties": {"text": {"type": "string"}}},
        returns={"type": "string"},
        tags=rng.sample(WORDS, 2),
    )


def interleaved(
    fn: Callable[[], object], base: Callable[[], object] | None, n: int
) -> tuple[list[float], list[float]]:
    """``n`` timings of ``fn`` and of ``base``, alternating, so drift hits both alike."""
    got: list[float] = []
    ref: list[float] = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        got.append(time.perf_counter() - t)
        if base is not None:
            t = time.perf_counter()
            base()
            ref.append(time.perf_counter() - t)
    return got, ref


def p(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[int(q) - 1] * 1000


def row(name: str, got: list[float], base: list[float], rows: list[list[str]]) -> None:
    med = statistics.median(got) * 1000
    ratio = f"{med / (statistics.median(base) * 1000):.2f}x" if base else "-"
    base_med = f"{statistics.median(base) * 1000:.3f}" if base else "-"
    rows.append([name, f"{med:.3f}", f"{p(got, 99):.3f}", base_med, ratio, str(len(got))])


def target_paths(reg: Registry, name: str, version: str) -> list[str]:
    """The registry-relative paths of a version's five target files."""
    rec = reg.find(f"{name}@{version}")
    digests = [rec.envelope, *rec.parts.values()]
    assert isinstance(reg.path, Path)
    found = [
        str(p.relative_to(reg.path))
        for d in digests
        for p in (reg.path / "targets" / "tools" / name / version).glob(f"{d}.*")
    ]
    assert len(found) == 5, found
    return found


def serve(root: Path) -> tuple[ThreadingHTTPServer, str]:
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", type=Path, help="where to build the registry (default: a temp dir)")
    ap.add_argument("--versions", type=int, default=2, help="versions published per tool")
    args = ap.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="toolsmith-bench-"))
    os.environ["TOOLSMITH_HOME"] = str(base / "home")
    rng = random.Random(7)
    specs = [make_spec(i, rng) for i in range(TOOLS)]
    key = SigningKey.generate("bench")
    reg = Registry(base / "registry")
    report = TestReport(
        tests=[TestCase(nodeid="t", outcome=Outcome.PASSED)], expected=1, collected=1
    )
    prov = Provenance(source="hand-written", task="bench")
    rows: list[list[str]] = []

    pub: list[float] = []
    t0 = time.perf_counter()
    for n in range(TOOLS * args.versions):
        spec = specs[n % TOOLS]
        code = f"def {spec.name}(text: str) -> str:\n    return text  # {n}\n"
        t = time.perf_counter()
        reg.publish(spec, code, report, prov, signer=key)
        pub.append(time.perf_counter() - t)
    total = TOOLS * args.versions
    print(f"published {total} versions in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    row(f"publish (1 version, at up to {total})", pub, [], rows)

    name, version = specs[17].name, "0.1.0"
    assert isinstance(reg.path, Path)
    files = [reg.path / rel for rel in target_paths(reg, name, version)]

    def raw_read() -> None:
        for f in files:
            hashlib.sha256(f.read_bytes()).hexdigest()

    reg.resolve(f"{name}@{version}")
    row(
        "resolve+verify 1 version (local, warm)",
        *interleaved(lambda: reg.resolve(f"{name}@{version}"), raw_read, 3000),
        rows,
    )
    row(
        "resolve+verify by range ^0.1 (local, warm)",
        *interleaved(lambda: reg.resolve(f"{name}@^0.1"), raw_read, 3000),
        rows,
    )
    meta = reg.path / "metadata"
    newest: dict[str, Path] = {}  # the metadata listing versions: targets and every bin
    for f in [*meta.glob("*.targets.json"), *meta.glob("*.tools-bin-*.json")]:
        role = f.name.split(".", 1)[1]
        if role not in newest or int(f.name.split(".")[0]) > int(newest[role].name.split(".")[0]):
            newest[role] = f
    listing = list(newest.values())
    row(
        f"list ({TOOLS} tools, {total} versions)",
        *interleaved(reg.list, lambda: [json.loads(f.read_bytes()) for f in listing], 100),
        rows,
    )
    texts = [f"{r.name} {r.description} {' '.join(r.tags)}".lower() for r in reg.list()]
    queries = iter([" ".join(rng.sample(WORDS, 2)) for _ in range(2000)])

    def scan() -> None:
        words = next(queries).split()
        sorted(t for t in texts if all(w in t for w in words))

    reg.search("warm up")
    row("search warm", *interleaved(lambda: reg.search(next(queries)), scan, 400), rows)

    server, url = serve(reg.path)
    fingerprint = reg.fingerprint()
    rels = target_paths(reg, name, version)

    def raw_http() -> None:
        for rel in rels:
            with urllib.request.urlopen(f"{url}/{rel}") as r:
                hashlib.sha256(r.read()).hexdigest()

    state = base / "http-home"

    def cold() -> None:
        shutil.rmtree(state, ignore_errors=True)
        os.environ["TOOLSMITH_HOME"] = str(state)
        trust_registry(url, fingerprint)
        Registry(url).resolve(f"{name}@{version}")

    def warm() -> None:
        Registry(url).resolve(f"{name}@{version}")

    cold()
    row("HTTP first load, empty cache", *interleaved(cold, raw_http, 30), rows)
    cold()
    row("HTTP first load, warm cache", *interleaved(warm, raw_http, 100), rows)
    server.shutdown()

    head = ["operation", "p50 ms", "p99 ms", "baseline p50 ms", "ratio", "n"]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    print(f"registry at {reg.path} ({sys.platform}, python {sys.version.split()[0]})")
    for r in [head, ["-" * w for w in widths], *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    print(
        "baselines: resolve = read the 5 target files + sha256, nothing verified or parsed; "
        "list = read + json.loads the targets metadata and bins; search = substring scan; "
        "HTTP = GET the 5 target files + sha256"
    )


if __name__ == "__main__":
    main()
