"""Registry scale benchmark: what one more publish, a consumer's refresh, a resolve and a list cost
as the registry grows, with the 200-version registry of the same run as the baseline.

    python bench/registry_scale.py [--dir DIR] [--sizes 200,1000,5000] [--rounds 5] [--flat]

New registries keep their versions in hashed bins; ``--flat`` makes them in the layout of
registries made before bins (every version in the one top-level targets metadata).

For each size N it makes a registry of N tool versions (200 tool names, versions 0.1.0, 0.1.1,
...): the first version through ``Registry.publish``, the other N-1 by a fast path that signs the
same in-toto statement and lists the same five targets with the same custom fields as ``publish``,
then commits them as one metadata change through ``Registry._commit`` (the target files of those
filler versions are not written: only the one measured below are read). Each registry is served by
its own loopback ``http.server`` that counts the bytes it sends, and trusted by one consumer.

Then, in ``--rounds`` rounds that visit the sizes in turn (so drift hits all of them alike):
- publish one more version through ``Registry.publish`` (sign, write five targets, new metadata,
  fsync), the bytes of the metadata files it wrote, and of the biggest metadata that lists
  versions (targets, or the biggest bin);
- two consumers over HTTP, after that publish, each with its metadata cache warm from the
  previous round: one refreshes and resolves+verifies one tool, the other refreshes and lists
  every tool (each a fresh ``Registry(url)``), bytes fetched and time;
- local: resolve+verify one version (warm ``Registry``), and ``list()`` from a fresh ``Registry``.

A size whose registry does not work (the targets metadata over its 5,000,000-byte cap:
``MetadataTooLargeError``, or the writer's refusal to commit it) is reported as refused, with the
error. With ``--flat``, the version count at which the targets metadata reaches the cap is
computed from the measured bytes per version (and checked by building a registry on each side).
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tuf.api.metadata import TargetFile

from registry import TOOLS, make_spec  # bench/registry.py: same names and descriptions
from toolsmith import signing
from toolsmith.errors import ToolsmithError
from toolsmith.registry import Registry, trust_registry
from toolsmith.registry._registry import _tool_path, report_bytes
from toolsmith.registry._repository import MAX_METADATA
from toolsmith.report import Outcome, Provenance, TestCase, TestReport
from toolsmith.signing import SigningKey
from toolsmith.spec import ToolSpec, canonical_json

REPORT = TestReport(tests=[TestCase(nodeid="t", outcome=Outcome.PASSED)], expected=1, collected=1)
PROV = Provenance(source="hand-written", task="bench")


class Counted(SimpleHTTPRequestHandler):
    """Serves a directory quietly and adds the body bytes it sends to its server's counter."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def copyfile(self, source: Any, outputfile: Any) -> None:
        data = source.read()
        self.server.sent += len(data)  # type: ignore[attr-defined]
        outputfile.write(data)


def serve(root: Path) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Counted, directory=str(root)))
    server.sent = 0  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def code_for(spec: ToolSpec, n: int) -> str:
    return f"def {spec.name}(text: str) -> str:\n    return text  # {n}\n"


def populate(reg: Registry, specs: list[ToolSpec], start: int, count: int, key: SigningKey) -> None:
    """Versions ``start`` .. ``start+count-1`` (version i is tool ``i % TOOLS``, patch ``i //
    TOOLS``) as one commit: the statement, parts and custom fields ``publish`` makes, files not
    written."""
    with reg._edit() as state:
        for i in range(start, start + count):
            spec = specs[i % TOOLS]
            version = f"0.1.{i // TOOLS}"
            parts = {
                "code": code_for(spec, i).encode(),
                "spec": spec.canonical_json(),
                "report": report_bytes(REPORT),
                "provenance": canonical_json(PROV.model_dump(mode="json")),
            }
            statement = signing.build_statement(spec.name, version, parts, needs_approval=False)
            envelope = signing.sign_envelope(statement, [key])
            infos = {
                p: TargetFile.from_data(_tool_path(spec.name, version, p), data, ["sha256"])
                for p, data in parts.items()
            }
            custom = {
                "name": spec.name,
                "version": version,
                "digest": signing.sha256_hex(statement),
                "status": "published",
                "approval_required": False,
                "yanked": False,
                "yank_reason": None,
                "published_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "signers": [key.key_id],
                "description": spec.description,
                "tags": spec.tags,
                "capabilities": spec.capabilities,
                "parts": {p: info.hashes["sha256"] for p, info in infos.items()},
            }
            infos["statement"] = TargetFile.from_data(
                _tool_path(spec.name, version, "statement"), envelope, ["sha256"]
            )
            infos["statement"].unrecognized_fields["custom"] = custom
            for info in infos.values():
                state.add_target(info)
        reg._commit(
            state,
            {"targets": [key]},
            "publish",
            subject="bench fill",
            actor="bench",
            reason=None,
            data={},
        )


def metadata_files(path: Path) -> dict[str, tuple[int, int]]:
    """Every metadata file: name -> (size, mtime in ns)."""
    return {
        f.name: (st.st_size, st.st_mtime_ns)
        for f in (path / "metadata").glob("*.json")
        for st in [f.stat()]
    }


def tool_metadata(sizes: dict[str, int]) -> int:
    """Bytes of the biggest metadata that lists versions: targets (flat) or a bin."""
    return max(v for r, v in sizes.items() if r == "targets" or r.startswith("tools-bin-"))


def metadata_bytes(path: Path) -> dict[str, int]:
    """Bytes of the newest version of each metadata role in ``path/metadata``."""
    newest: dict[str, tuple[int, int]] = {}
    for f in (path / "metadata").glob("*.json"):
        head, _, role = f.name.partition(".")
        if not head.isdigit():
            role, version = f.name.removesuffix(".json"), 0
        else:
            role, version = role.removesuffix(".json"), int(head)
        if role not in newest or version > newest[role][0]:
            newest[role] = (version, f.stat().st_size)
    return {role: size for role, (_, size) in newest.items()}


class Size:
    """One registry of ``n`` versions, its server, and the samples measured on it."""

    def __init__(
        self, base: Path, n: int, specs: list[ToolSpec], key: SigningKey, flat: bool
    ) -> None:
        self.n = n
        self.specs = specs
        self.key = key
        self.reg = Registry(base / f"registry-{n}")
        self.next = n
        self.error: str | None = None
        self.samples: dict[str, list[float]] = {}
        self.server: ThreadingHTTPServer | None = None
        t = time.perf_counter()
        try:
            if flat:
                self.reg.init(
                    root=[key], targets=[key], snapshot=[key], timestamp=[key], bin_bits=None
                )
            self.reg.publish(specs[0], code_for(specs[0], 0), REPORT, PROV, signer=key)
            if n > 1:
                populate(self.reg, specs, 1, n - 1, key)
            assert isinstance(self.reg.path, Path)
            self.server, self.url = serve(self.reg.path)
            # Two consumers (their state is kept per location): one resolves, one lists.
            self.url2 = self.url.replace("127.0.0.1", "localhost")
            for url in (self.url, self.url2):
                trust_registry(url, self.reg.fingerprint())
                Registry(url).list()
        except ToolsmithError as e:
            self.error = f"{type(e).__name__}: {e.message[:160]}"
        print(
            f"{n} versions built in {time.perf_counter() - t:.1f} s"
            + (f" (refused: {self.error})" if self.error else ""),
            file=sys.stderr,
        )

    def add(self, name: str, value: float) -> None:
        self.samples.setdefault(name, []).append(value)

    def timed(self, name: str, fn: Callable[[], object]) -> None:
        t = time.perf_counter()
        fn()
        self.add(name, (time.perf_counter() - t) * 1000)

    def over_http(self, name: str, fn: Callable[[], object]) -> None:
        assert self.server is not None
        before = self.server.sent  # type: ignore[attr-defined]
        self.timed(f"{name} ms", fn)
        self.add(f"{name} kB", (self.server.sent - before) / 1000)  # type: ignore[attr-defined]

    def round(self) -> None:
        if self.error is not None:
            return
        i = self.next
        self.next += 1
        spec = self.specs[i % TOOLS]
        assert isinstance(self.reg.path, Path)
        before = metadata_files(self.reg.path)
        self.timed(
            "publish 1 version ms",
            lambda: self.reg.publish(
                spec, code_for(spec, i), REPORT, PROV, version=f"0.1.{i // TOOLS}", signer=self.key
            ),
        )
        after = metadata_files(self.reg.path)
        written = sum(size for n, (size, _) in after.items() if before.get(n) != after[n])
        self.add("metadata written by publish kB", written / 1000)
        largest = tool_metadata(metadata_bytes(self.reg.path))
        self.add("largest targets/bin metadata kB", largest / 1000)
        ref = f"{spec.name}@0.1.{i // TOOLS}"
        self.over_http(
            "HTTP refresh+resolve after publish", lambda: Registry(self.url).resolve(ref)
        )
        self.over_http("HTTP list after publish", lambda: Registry(self.url2).list())
        self.reg.resolve(ref)
        for _ in range(20):
            self.timed("resolve+verify local warm ms", lambda: self.reg.resolve(ref))
        self.timed("list local fresh Registry ms", lambda: Registry(self.reg.path).list())


def cap_count(base: Path, specs: list[ToolSpec], key: SigningKey, sizes: list[Size]) -> str:
    """The version count at which the targets metadata reaches its cap, from the bytes per
    version between the two smallest working sizes, checked by building both sides of it."""
    ok = [s for s in sizes if s.error is None]
    if len(ok) < 2:
        return "not computed (fewer than two working sizes)"
    a, b = ok[0], ok[1]
    assert isinstance(a.reg.path, Path) and isinstance(b.reg.path, Path)
    sa = tool_metadata(metadata_bytes(a.reg.path))
    sb = tool_metadata(metadata_bytes(b.reg.path))
    per = (sb - sa) / (b.next - a.next)
    predicted = int(a.next + (MAX_METADATA["targets"] - sa) / per)
    checks = []
    for n in (predicted - 25, predicted + 25):
        s = Size(base / "cap", n, specs, key, flat=True)
        checks.append(f"{n}: {'refused' if s.error else 'works'}")
        if s.server is not None:
            s.server.shutdown()
    return (
        f"{per:.0f} bytes per version; the {MAX_METADATA['targets']:,}-byte cap is reached at "
        f"about {predicted:,} versions ({', '.join(checks)})"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", type=Path, help="where to build the registries (default: a temp dir)")
    ap.add_argument("--sizes", default="200,1000,5000", help="registry sizes, in versions")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--no-cap", action="store_true", help="skip building registries at the cap")
    ap.add_argument(
        "--flat",
        action="store_true",
        help="the layout of registries made before hashed bins (every version in targets)",
    )
    args = ap.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="toolsmith-scale-"))
    os.environ["TOOLSMITH_HOME"] = str(base / "home")
    rng = random.Random(7)
    specs = [make_spec(i, rng) for i in range(TOOLS)]
    key = SigningKey.generate("bench")
    sizes = [Size(base, int(n), specs, key, args.flat) for n in args.sizes.split(",")]
    for _ in range(args.rounds):
        for s in sizes:
            s.round()
    baseline = sizes[0]
    names = list(baseline.samples)
    head = ["measure (median)"] + [f"{s.n:,} versions" for s in sizes]
    rows = [head]
    for name in names:
        cells = [name]
        for s in sizes:
            if s.error is not None:
                cells.append("refused")
                continue
            med = statistics.median(s.samples[name])
            ratio = med / statistics.median(baseline.samples[name])
            cells.append(f"{med:.3g}" if s is baseline else f"{med:.3g} ({ratio:.1f}x)")
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    print(
        f"registries under {base} ({sys.platform}, python {sys.version.split()[0]}, "
        f"{args.rounds} rounds)"
    )
    for r in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    for s in sizes:
        if s.error is not None:
            print(f"{s.n:,} versions refused: {s.error}")
    if args.flat and not args.no_cap:
        print("cap:", cap_count(base, specs, key, sizes))
    for s in sizes:
        if s.server is not None:
            s.server.shutdown()


if __name__ == "__main__":
    main()
