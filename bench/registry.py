"""Registry benchmark: publish, resolve+verify, list and search, each against a raw baseline.

    python bench/registry.py [--dir DIR] [--big 10000]

Publishes 1,000 versions across 200 tools through ``Registry.publish`` (signing, blobs, fsync,
index), then times, in this process:
- resolve+verify of one version vs. reading the same 6 files and hashing them (no signature check,
  no parsing): the cost of the trust gate over raw IO;
- resolve+verify of a version that went through the approval gate vs. one that did not: the cost
  of checking the signed approval;
- ``list()`` vs. reading every index file raw;
- ``search()`` warm (cached bm25 index) and cold (first query after a change rebuilds it) vs. a
  substring scan of the same descriptions held in memory;
then grows the registry to ``--big`` versions through the same publish path and times search again.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from toolsmith.registry import KeyRole, Registry, VersionStatus
from toolsmith.report import Outcome, Provenance, TestCase, TestReport
from toolsmith.signing import SigningKey, public_pem
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


def timed(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def p(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[int(q) - 1] * 1000


def row(name: str, got: list[float], base: list[float] | None, rows: list[list[str]]) -> None:
    med = statistics.median(got) * 1000
    ratio = f"{med / (statistics.median(base) * 1000):.2f}x" if base else "-"
    base_med = f"{statistics.median(base) * 1000:.3f}" if base else "-"
    rows.append([name, f"{med:.3f}", f"{p(got, 99):.3f}", base_med, ratio, str(len(got))])


def publish_many(reg: Registry, specs: list[ToolSpec], total: int, key: SigningKey) -> list[float]:
    report = TestReport(
        tests=[TestCase(nodeid="t", outcome=Outcome.PASSED)], expected=1, collected=1
    )
    prov = Provenance(source="hand-written", task="bench")
    times = []
    for n in range(total):
        spec = specs[n % len(specs)]
        code = f"def {spec.name}(text: str) -> str:\n    return text  # {n}\n"
        t = time.perf_counter()
        reg.publish(spec, code, report, prov, signer=key)
        times.append(time.perf_counter() - t)
    return times


def raw_read(reg: Registry, name: str, version: str) -> None:
    """Baseline: the same bytes resolve reads, hashed and the index parsed, nothing verified."""
    envelope = json.loads((reg.path / "index" / f"{name}.json").read_bytes())
    doc = json.loads(base64.b64decode(envelope["payload"]))["predicate"]["index"]
    rec = next(r for r in doc["records"] if r["version"] == version)
    for digest in [rec["envelope"], *rec["parts"].values()]:
        hashlib.sha256((reg.path / "blobs" / "sha256" / digest).read_bytes()).hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", type=Path, help="where to build the registry (default: a temp dir)")
    ap.add_argument("--big", type=int, default=10_000, help="versions for the large search run")
    args = ap.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="toolsmith-bench-"))
    os.environ["TOOLSMITH_HOME"] = str(base / "home")
    rng = random.Random(7)
    specs = [make_spec(i, rng) for i in range(TOOLS)]
    key = SigningKey.generate("bench")
    reg = Registry(base / "registry")
    rows: list[list[str]] = []

    t0 = time.perf_counter()
    pub = publish_many(reg, specs, 1000, key)
    print(
        f"published 1,000 versions of {TOOLS} tools in {time.perf_counter() - t0:.1f} s",
        file=sys.stderr,
    )
    row("publish (1 version, fsync)", pub, None, rows)

    name, version = specs[17].name, "0.1.3"
    reg.resolve(f"{name}@{version}")
    row(
        "resolve+verify 1 version",
        timed(lambda: reg.resolve(f"{name}@{version}"), 2000),
        timed(lambda: raw_read(reg, name, version), 2000),
        rows,
    )
    row(
        "resolve+verify by range ^0.1",
        timed(lambda: reg.resolve(f"{name}@^0.1"), 2000),
        timed(lambda: raw_read(reg, name, version), 2000),
        rows,
    )
    approver = SigningKey.generate("approver")
    reg.trust.trust(public_pem(approver.public_key), "approver", KeyRole.APPROVER)
    gated = specs[18]
    pending = reg.publish(
        gated,
        f"def {gated.name}(text: str) -> str:\n    return text  # gated\n",
        TestReport(tests=[TestCase(nodeid="t", outcome=Outcome.PASSED)], expected=1, collected=1),
        Provenance(source="hand-written", task="bench"),
        version="9.0.0",
        signer=key,
        status=VersionStatus.PENDING,
    )
    reg.approve(f"{gated.name}@{pending.version}", approver)
    row(
        "resolve+verify 1 approved version",
        timed(lambda: reg.resolve(f"{gated.name}@9.0.0"), 2000),
        timed(lambda: reg.resolve(f"{name}@{version}"), 2000),
        rows,
    )
    index_dir = reg.path / "index"
    row(
        f"list ({TOOLS} tools, 1,000 versions)",
        timed(reg.list, 50),
        timed(lambda: [json.loads(p.read_bytes()) for p in index_dir.glob("*.json")], 50),
        rows,
    )

    def search_rows(label: str) -> None:
        records = [r for t in reg.list() for r in reg.versions(t.name)]
        texts = [f"{r.name} {r.description} {' '.join(r.tags)}".lower() for r in records]
        queries = [" ".join(rng.sample(WORDS, 2)) for _ in range(200)]
        it = iter(queries * 10)

        def scan() -> None:
            words = next(it).split()
            hits = [t for t in texts if all(w in t for w in words)]
            hits.sort()

        def query() -> None:
            reg.search(next(it))

        baseline = timed(scan, 400)

        def cold_query() -> None:
            Registry(reg.path).search(next(it))  # a fresh Registry has no cached index

        cold = timed(cold_query, 5)
        warm = timed(query, 400)
        row(f"search warm ({label})", warm, baseline, rows)
        row(f"search cold: rebuild + query ({label})", cold, baseline, rows)

    search_rows("1,000 versions")
    big_note = ""
    if args.big > 1000:
        t0 = time.perf_counter()
        publish_many(reg, specs, args.big - 1000, key)
        took = time.perf_counter() - t0
        big_note = f"grew to {args.big:,} versions via Registry.publish in {took:.0f} s"
        print(big_note, file=sys.stderr)
        search_rows(f"{args.big:,} versions")
        name = specs[17].name
        row(
            f"resolve+verify 1 version ({args.big:,})",
            timed(lambda: reg.resolve(f"{name}@0.1.3"), 2000),
            timed(lambda: raw_read(reg, name, "0.1.3"), 2000),
            rows,
        )

    head = ["operation", "p50 ms", "p99 ms", "baseline p50 ms", "ratio", "n"]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    print(f"registry at {reg.path} ({sys.platform}, python {sys.version.split()[0]})")
    if big_note:
        print(big_note)
    for r in [head, ["-" * w for w in widths], *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    print(
        "baselines: resolve = read index + 6 blobs + sha256, no signature/parsing; approved = "
        "resolve+verify of a version without approval; list = read+json.loads every index file; "
        "search = substring scan of in-memory texts"
    )


if __name__ == "__main__":
    main()
