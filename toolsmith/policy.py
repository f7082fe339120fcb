"""Static capability analysis of a tool's implementation.

The build runs ``analyze`` before the sandbox: it finds the capabilities the code actually uses
(network, subprocess, files, environment) and compares them with what the spec declares, flags
what cannot be bounded statically (dynamic code, introspection, native code), and decides whether
the tool may use the in-process restricted runtime. It is lint and a fast-path gate, not the
security boundary: the Docker sandbox is.

The checks are a chain of ``Rule`` objects (an id, a reason, a check callable over an ``Analysis``)
so that the constitution can add its own without touching this module. ``analyze`` does no IO.

The capability policy file (TOML; ``load_policy``) says what an installation lets tools have:
``evaluate_policy`` sorts a spec's capabilities, its code's imports and its dependencies into
allow, needs_approval (published pending a person's approval) and deny, naming the rule each time.
"""

from __future__ import annotations

import ast
import builtins
import fnmatch
import os
import posixpath
import re
import sys
import tomllib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal, NamedTuple

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from RestrictedPython import compile_restricted_exec

from toolsmith.errors import PolicyError
from toolsmith.spec import ToolSpec

Severity = Literal["error", "advisory"]

#: Modules the restricted runtime lets a tool import. Pure, deterministic enough, no IO, no host
#: state a tool could change (``random`` and ``decimal``'s context setters are why some are out or
#: filtered by the runtime). ``uuid`` reads the OS; ``typing`` and ``dataclasses`` are out because
#: RestrictedPython refuses annotated assignments anyway and ``typing.get_type_hints`` evaluates
#: strings outside the restrictions.
RESTRICTED_MODULES = frozenset(
    {
        "base64",
        "binascii",
        "bisect",
        "cmath",
        "collections",
        "collections.abc",
        "datetime",
        "decimal",
        "difflib",
        "fractions",
        "functools",
        "hashlib",
        "heapq",
        "html",
        "itertools",
        "json",
        "math",
        "operator",
        "re",
        "statistics",
        "string",
        "textwrap",
        "unicodedata",
        "urllib.parse",
        "zlib",
    }
)


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: What the restricted runtime offers of each module in ``RESTRICTED_MODULES``: an allowlist of
#: vetted names, not everything that is not denied. Left out: whatever reads or writes attributes
#: by a name given at run time (``functools.update_wrapper``/``wraps``, ``operator.attrgetter``/
#: ``methodcaller``), evaluates annotations (``functools.singledispatch``), writes items past the
#: write guard (``operator.setitem``/``delitem``), formats by walking attributes
#: (``string.Formatter``), iterates without end (``itertools.count``/``cycle``/``repeat``), reads
#: or changes host-wide state (decimal's global contexts, ``re.purge``, the mutable lists and sets
#: of ``urllib.parse`` and ``hashlib``), touches files or the process (``base64.main``,
#: ``json.dump``/``load``, ``hashlib.file_digest``), burns CPU unboundedly in one C call
#: (``hashlib.pbkdf2_hmac``/``scrypt``), and other modules' names re-exported.
RESTRICTED_NAMES: dict[str, frozenset[str]] = {
    "base64": _names(
        "a85decode a85encode b16decode b16encode b32decode b32encode b32hexdecode b32hexencode "
        "b64decode b64encode b85decode b85encode decodebytes encodebytes standard_b64decode "
        "standard_b64encode urlsafe_b64decode urlsafe_b64encode MAXBINSIZE MAXLINESIZE"
    ),
    "binascii": _names(
        "Error Incomplete a2b_base64 a2b_hex a2b_qp a2b_uu b2a_base64 b2a_hex b2a_qp b2a_uu "
        "crc32 crc_hqx hexlify unhexlify"
    ),
    "bisect": _names("bisect bisect_left bisect_right insort insort_left insort_right"),
    "cmath": _names(
        "acos acosh asin asinh atan atanh cos cosh e exp inf infj isclose isfinite isinf isnan "
        "log log10 nan nanj phase pi polar rect sin sinh sqrt tan tanh tau"
    ),
    "collections": _names(
        "ChainMap Counter OrderedDict UserDict UserList UserString defaultdict deque namedtuple"
    ),
    "collections.abc": _names(
        "AsyncGenerator AsyncIterable AsyncIterator Awaitable ByteString Callable Collection "
        "Container Coroutine Generator Hashable ItemsView Iterable Iterator KeysView Mapping "
        "MappingView MutableMapping MutableSequence MutableSet Reversible Sequence Set Sized "
        "ValuesView"
    ),
    "datetime": _names("MAXYEAR MINYEAR UTC date datetime time timedelta timezone tzinfo"),
    "decimal": _names(
        "Clamped Context ConversionSyntax Decimal DecimalException DecimalTuple DivisionByZero "
        "DivisionImpossible DivisionUndefined FloatOperation Inexact InvalidContext "
        "InvalidOperation MAX_EMAX MAX_PREC MIN_EMIN MIN_ETINY Overflow ROUND_05UP ROUND_CEILING "
        "ROUND_DOWN ROUND_FLOOR ROUND_HALF_DOWN ROUND_HALF_EVEN ROUND_HALF_UP ROUND_UP Rounded "
        "Subnormal Underflow localcontext"
    ),
    "difflib": _names(
        "Differ HtmlDiff IS_CHARACTER_JUNK IS_LINE_JUNK Match SequenceMatcher context_diff "
        "diff_bytes get_close_matches ndiff restore unified_diff"
    ),
    "fractions": _names("Fraction"),
    "functools": _names(
        "cache cached_property cmp_to_key lru_cache partial partialmethod reduce total_ordering"
    ),
    "hashlib": _names(
        "blake2b blake2s md5 new sha1 sha224 sha256 sha384 sha3_224 sha3_256 sha3_384 sha3_512 "
        "sha512 shake_128 shake_256"
    ),
    "heapq": _names("heapify heappop heappush heappushpop heapreplace merge nlargest nsmallest"),
    "html": _names("escape unescape"),
    "itertools": _names(
        "accumulate chain combinations combinations_with_replacement compress dropwhile "
        "filterfalse groupby islice pairwise permutations product starmap takewhile tee "
        "zip_longest"
    ),
    "json": _names("JSONDecodeError JSONDecoder JSONEncoder dumps loads"),
    "math": _names(
        "acos acosh asin asinh atan atan2 atanh cbrt ceil comb copysign cos cosh degrees dist e "
        "erf erfc exp exp2 expm1 fabs factorial floor fmod frexp fsum gamma gcd hypot inf "
        "isclose isfinite isinf isnan isqrt lcm ldexp lgamma log log10 log1p log2 modf nan "
        "nextafter perm pi pow prod radians remainder sin sinh sqrt tan tanh tau trunc ulp"
    ),
    "operator": _names(
        "abs add and_ call concat contains countOf eq floordiv ge getitem gt iadd iand iconcat "
        "ifloordiv ilshift imatmul imod imul index indexOf inv invert ior ipow irshift is_ "
        "is_not isub itemgetter itruediv ixor le length_hint lshift lt matmul mod mul ne neg "
        "not_ or_ pos pow rshift sub truediv truth xor"
    ),
    "re": _names(
        "A ASCII DOTALL I IGNORECASE L LOCALE M MULTILINE Match NOFLAG Pattern RegexFlag S U "
        "UNICODE VERBOSE X compile error escape findall finditer fullmatch match search split "
        "sub subn"
    ),
    "statistics": _names(
        "LinearRegression NormalDist StatisticsError correlation covariance fmean "
        "geometric_mean harmonic_mean linear_regression mean median median_grouped median_high "
        "median_low mode multimode pstdev pvariance quantiles stdev variance"
    ),
    "string": _names(
        "Template ascii_letters ascii_lowercase ascii_uppercase capwords digits hexdigits "
        "octdigits printable punctuation whitespace"
    ),
    "textwrap": _names("TextWrapper dedent fill indent shorten wrap"),
    "unicodedata": _names(
        "bidirectional category combining decimal decomposition digit east_asian_width "
        "is_normalized lookup mirrored name normalize numeric unidata_version"
    ),
    "urllib.parse": _names(
        "DefragResult DefragResultBytes ParseResult ParseResultBytes SplitResult "
        "SplitResultBytes parse_qs parse_qsl quote quote_from_bytes quote_plus unquote "
        "unquote_plus unquote_to_bytes urldefrag urlencode urljoin urlparse urlsplit "
        "urlunparse urlunsplit"
    ),
    "zlib": _names(
        "DEFLATED DEF_BUF_SIZE DEF_MEM_LEVEL MAX_WBITS ZLIB_RUNTIME_VERSION ZLIB_VERSION "
        "Z_BEST_COMPRESSION Z_BEST_SPEED Z_BLOCK Z_DEFAULT_COMPRESSION Z_DEFAULT_STRATEGY "
        "Z_FILTERED Z_FINISH Z_FIXED Z_FULL_FLUSH Z_HUFFMAN_ONLY Z_NO_COMPRESSION Z_NO_FLUSH "
        "Z_PARTIAL_FLUSH Z_RLE Z_SYNC_FLUSH Z_TREES adler32 compress compressobj crc32 "
        "decompress decompressobj error"
    ),
}

# Longest dotted prefix wins; ``None`` marks a pure corner of an otherwise capable module.
# Filesystem entries say "read" or "write"; a declared fs:write covers reading the same path.
_CAPABILITIES: dict[str, str | None] = {
    **dict.fromkeys(
        [
            "socket",
            "ssl",
            "http",
            "urllib",
            "urllib3",
            "requests",
            "httpx",
            "aiohttp",
            "websocket",
            "websockets",
            "ftplib",
            "smtplib",
            "poplib",
            "imaplib",
            "nntplib",
            "telnetlib",
            "xmlrpc",
            "socketserver",
            "asyncio.open_connection",
            "asyncio.start_server",
            "asyncio.open_unix_connection",
            "asyncio.start_unix_server",
            "_socket",
            "_ssl",
            "paramiko",
        ],
        "network",
    ),
    "urllib.parse": None,
    **dict.fromkeys(
        [
            "subprocess",
            "pty",
            "multiprocessing",
            "_multiprocessing",
            "_posixsubprocess",
            "concurrent.futures.ProcessPoolExecutor",
            "concurrent.futures.process",
            "asyncio.create_subprocess_exec",
            "asyncio.create_subprocess_shell",
            "asyncio.subprocess",
            "pydoc",
            "webbrowser",
            "pexpect",
            "os.system",
            "os.popen",
            "os.exec*",
            "os.spawn*",
            "os.posix_spawn*",
            "os.fork*",
            "os.kill*",
            "os.startfile",
        ],
        "subprocess",
    ),
    **dict.fromkeys(
        [
            "builtins.open",
            "io.open",
            "io.open_code",
            "io.FileIO",
            "_io.open",
            "_io.open_code",
            "_io.FileIO",
            "codecs.open",
            "os.open",
            "os.read",
            "os.pread",
            "linecache",
            "os.listdir",
            "os.scandir",
            "os.walk",
            "os.stat",
            "os.lstat",
            "os.access",
            "os.readlink",
            "os.getcwd",
            "os.path.exists",
            "os.path.isfile",
            "os.path.isdir",
            "os.path.getsize",
            "os.path.realpath",
            "glob",
            "fileinput",
            "shutil.which",
            "shutil.disk_usage",
        ],
        "fs:read",
    ),
    **dict.fromkeys(
        [
            "os.remove",
            "os.unlink",
            "os.rename",
            "os.renames",
            "os.replace",
            "os.mkdir",
            "os.makedirs",
            "os.rmdir",
            "os.removedirs",
            "os.chmod",
            "os.chown",
            "os.link",
            "os.symlink",
            "os.truncate",
            "os.ftruncate",
            "os.utime",
            "os.write",
            "os.pwrite",
            "os.mkfifo",
            "os.mknod",
            "os.lchown",
            "os.lchmod",
            "os.fchmod",
            "os.fchown",
            "logging.FileHandler",
            "logging.handlers",
            "py_compile",
            "compileall",
            "shutil",
            "tempfile",
            "sqlite3",
            "shelve",
            "dbm",
            "zipfile.ZipFile",
            "tarfile.open",
            "tarfile.TarFile",
            "gzip.open",
            "bz2.open",
            "lzma.open",
        ],
        "fs:write",
    ),
    **dict.fromkeys(
        ["os.environ", "os.environb", "os.getenv", "os.getenvb", "os.putenv", "os.unsetenv"], "env"
    ),
    **dict.fromkeys(["ctypes", "_ctypes", "cffi", "mmap"], "native"),
    **dict.fromkeys(
        [
            "builtins.eval",
            "builtins.exec",
            "builtins.compile",
            "builtins.__import__",
            "builtins.globals",
            "builtins.locals",
            "builtins.vars",
            "builtins.breakpoint",
            "importlib",
            "imp",
            "pkgutil",
            "runpy",
            "code",
            "codeop",
            "inspect",
            "gc",
            "marshal",
            "pickle",
            "dill",
            "types.FunctionType",
            "types.CodeType",
            "types.LambdaType",
            "types.FrameType",
            "sys._getframe",
            "sys.modules",
            "sys.settrace",
            "sys.setprofile",
            "sys.addaudithook",
            "typing.get_type_hints",
            # They import or evaluate what a string names.
            "pydoc.locate",
            "pydoc.safeimport",
            "pydoc.importfile",
            "logging.config",
            "unittest.mock",
            "timeit",
            "doctest",
            "pdb",
            "trace",
            "profile",
            "cProfile",
            "site",
            "zipimport",
        ],
        "dynamic",
    ),
}

# Path methods that read or write whatever a Path object points at; only counted when the module
# imports pathlib, since names such as ``open`` are common on other objects.
_PATH_METHODS: dict[str, str] = {
    **dict.fromkeys(["read_text", "read_bytes", "iterdir", "glob", "rglob", "open"], "fs:read"),
    **dict.fromkeys(
        ["write_text", "write_bytes", "mkdir", "unlink", "rmdir", "touch", "symlink_to", "chmod"],
        "fs:write",
    ),
}

# Event-loop methods that start processes or open connections, counted when asyncio is imported.
_LOOP_METHODS: dict[str, str] = {
    **dict.fromkeys(["subprocess_exec", "subprocess_shell"], "subprocess"),
    **dict.fromkeys(
        [
            "create_connection",
            "create_server",
            "create_datagram_endpoint",
            "create_unix_connection",
            "create_unix_server",
            "sock_connect",
            "getaddrinfo",
            "getnameinfo",
        ],
        "network",
    ),
}

# The os module under its platform names: ``posix.system`` is ``os.system``.
_OS_ALIASES = ("posix", "nt")

# Callables that read attributes named by strings: like getattr, a computed or internal name is
# dynamic. Value: how many leading arguments are names (None: all of them).
_NAME_READERS: dict[str, int | None] = {"operator.attrgetter": None, "operator.methodcaller": 1}
# functools helpers that read (and write) the attributes named in ``assigned``/``updated``;
# with the defaults they are ordinary decorators. Value: positional arguments before those.
_WRAPPER_HELPERS: dict[str, int] = {"functools.update_wrapper": 2, "functools.wraps": 1}

# Dunders that are harmless to read; every other dunder attribute is a walk towards the
# interpreter's internals (``__class__``, ``__subclasses__``, ``__globals__``, ``__code__`` ...).
_HARMLESS_DUNDERS = frozenset({"__init__", "__name__", "__qualname__", "__doc__", "__module__"})

# Frame, code and traceback attributes without underscores that reach interpreter state.
_INTROSPECTION_ATTRS = frozenset(
    {
        "gi_frame",
        "gi_code",
        "gi_yieldfrom",
        "cr_frame",
        "cr_code",
        "cr_await",
        "cr_origin",
        "ag_frame",
        "ag_code",
        "ag_await",
        "tb_frame",
        "tb_next",
        "f_back",
        "f_builtins",
        "f_code",
        "f_globals",
        "f_locals",
        "f_trace",
        "co_code",
    }
)

_REFLECTIVE_BUILTINS = frozenset(
    {"builtins.getattr", "builtins.setattr", "builtins.delattr", "builtins.hasattr"}
)
_URL_HOST_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://(?:[^@/]*@)?(\[[^\]]+\]|[^/:?#]+)")
_BUILTIN_NAMES = frozenset(dir(builtins))


class Finding(BaseModel):
    """One thing the analysis found; ``capability`` says what it needs, if that can be declared."""

    model_config = ConfigDict(frozen=True)

    rule: str
    capability: str | None
    line: int
    col: int
    message: str
    severity: Severity = "error"


class PolicyReport(BaseModel):
    """What the code uses and what of that blocks the build.

    ``findings`` holds everything; only ``error`` findings block (``advisory`` ones, such as
    RestrictedPython compile errors, only decide ``restricted_eligible``). ``undeclared`` is the
    subset of findings that a declaration in the spec would resolve.
    """

    model_config = ConfigDict(frozen=True)

    findings: list[Finding]
    used_capabilities: list[str]
    undeclared: list[Finding]
    restricted_eligible: bool
    imports: list[str] = Field(
        default_factory=list, description="modules imported, statically or via importlib"
    )

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def passed(self) -> bool:
        return not self.errors

    def failure_text(self) -> str:
        """The blocking findings, phrased like a failed test so the fix loop can send them on."""
        errors = self.errors
        if not errors:
            return ""
        lines = [f"FAILED policy check: {len(errors)} finding(s) in the implementation"]
        lines += [f"  [{f.rule}] {f.message}" for f in errors]
        lines.append(
            "Fix: declare the capabilities the tool needs in the spec, or change the code so it "
            "does not use them; dynamic code and introspection are never accepted."
        )
        return "\n".join(lines)


class Use(NamedTuple):
    """A reference to a module-level name, resolved through imports and aliases.

    ``name`` is dotted and fully qualified ("os.environ.get", "builtins.open"); ``args`` holds the
    call's positional arguments folded to strings where they are constant, else None.
    """

    kind: Literal["import", "call", "attribute"]
    name: str
    line: int
    col: int
    args: tuple[str | None, ...] = ()
    keywords: tuple[str, ...] = ()


@dataclass
class Analysis:
    """What rules look at: the parsed module, its resolved uses, and the spec."""

    code: str
    spec: ToolSpec
    tree: ast.Module
    uses: list[Use] = field(default_factory=list)
    imported: list[Use] = field(default_factory=list)

    def declared(self, kind: str) -> list[str]:
        """Declared targets of one capability kind ("network" -> hosts, "fs:read" -> paths)."""
        prefix = kind + ":"
        return [c.removeprefix(prefix) for c in self.spec.capabilities if c.startswith(prefix)]


class Hit(NamedTuple):
    """What a rule's check yields; line 0 means the spec rather than a line of code."""

    line: int
    col: int
    capability: str | None
    message: str
    undeclared: bool = False


@dataclass(frozen=True)
class Rule:
    """A named check; the constitution adds more of these."""

    id: str
    reason: str
    check: Callable[[Analysis], Iterable[Hit]]
    severity: Severity = "error"

    def __call__(self, analysis: Analysis) -> Iterator[tuple[Finding, bool]]:
        for hit in self.check(analysis):
            finding = Finding(
                rule=self.id,
                capability=hit.capability,
                line=hit.line,
                col=hit.col,
                message=f"{f'line {hit.line}' if hit.line else 'spec'}: {hit.message}",
                severity=self.severity,
            )
            yield finding, hit.undeclared


def capability_of(name: str) -> str | None:
    """The capability kind a dotted name needs, by longest matching prefix (``os.exec*`` too)."""
    parts = name.split(".")
    if parts[0] in _OS_ALIASES:
        parts[0] = "os"
    for i in range(len(parts), 0, -1):
        prefix = ".".join(parts[:i])
        if prefix in _CAPABILITIES:
            return _CAPABILITIES[prefix]
        for stem, cap in _WILDCARDS:
            if prefix.startswith(stem) and prefix.count(".") == stem.count("."):
                return cap
    return None


_WILDCARDS = [(p.removesuffix("*"), c) for p, c in _CAPABILITIES.items() if p.endswith("*")]


def fold_str(node: ast.AST | None) -> str | None:
    """Evaluate string-building expressions made only of constants ("so" + "cket", f-strings)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = fold_str(node.left), fold_str(node.right)
        return None if left is None or right is None else left + right
    if isinstance(node, ast.JoinedStr):
        parts = [fold_str(v) for v in node.values]
        return None if None in parts else "".join(p for p in parts if p is not None)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "join"
        and len(node.args) == 1
        and isinstance(node.args[0], ast.List | ast.Tuple)
    ):
        sep = fold_str(node.func.value)
        parts = [fold_str(e) for e in node.args[0].elts]
        if sep is None or None in parts:
            return None
        return sep.join(p for p in parts if p is not None)
    return None


class _Resolver:
    """Maps names and attribute chains to fully qualified module paths.

    Aliases are collected over the whole module without regard to scope: a tool is one small
    module, and being conservative here only ever adds findings.
    """

    def __init__(self, tree: ast.Module) -> None:
        self.aliases: dict[str, str] = {}
        self.imported: list[Use] = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    self.imported.append(_use("import", a.name, node))
                    if a.asname:
                        self.aliases[a.asname] = a.name
                    else:
                        top = a.name.split(".")[0]
                        self.aliases[top] = top
            elif isinstance(node, ast.ImportFrom):
                base = "." * node.level + (node.module or "")
                for a in node.names:
                    self.imported.append(_use("import", f"{base}.{a.name}", node))
                    if a.name != "*":
                        self.aliases[a.asname or a.name] = f"{base}.{a.name}"
        # Plain assignments of a resolvable name (``s = socket``; ``run = os.system``) are
        # aliases too; two passes reach aliases of aliases.
        for _ in range(2):
            for node in ast.walk(tree):
                if isinstance(node, ast.Assign) and len(node.targets) == 1:
                    target = node.targets[0]
                    resolved = self.resolve(node.value)
                    if isinstance(target, ast.Name) and resolved is not None:
                        self.aliases[target.id] = resolved

    def resolve(self, node: ast.AST) -> str | None:
        if isinstance(node, ast.Name):
            if node.id in self.aliases:
                return self.aliases[node.id]
            return f"builtins.{node.id}" if node.id in _BUILTIN_NAMES else None
        if isinstance(node, ast.Attribute):
            base = self.resolve(node.value)
            return None if base is None else f"{base}.{node.attr}"
        if isinstance(node, ast.Call):
            func = self.resolve(node.func)
            first = fold_str(node.args[0]) if node.args else None
            if func in ("builtins.__import__", "importlib.import_module") and first:
                return first
            if func == "builtins.getattr" and len(node.args) >= 2:
                base, attr = self.resolve(node.args[0]), fold_str(node.args[1])
                if base is not None and attr is not None:
                    return f"{base}.{attr}"
            return self.by_name(node, "operator.attrgetter")
        return None

    def by_name(self, node: ast.Call, reader: str) -> str | None:
        """``operator.attrgetter("popen")(os)`` is ``os.popen``; likewise the method that
        ``operator.methodcaller("system", ...)(os)`` calls."""
        if not (isinstance(node.func, ast.Call) and len(node.args) == 1 and node.func.args):
            return None
        if self.resolve(node.func.func) != reader:
            return None
        base, attr = self.resolve(node.args[0]), fold_str(node.func.args[0])
        return None if base is None or attr is None else f"{base}.{attr}"


def _use(kind: Literal["import", "call", "attribute"], name: str, node: ast.AST) -> Use:
    return Use(kind, name, getattr(node, "lineno", 0), getattr(node, "col_offset", 0))


def _collect_uses(tree: ast.Module, resolver: _Resolver) -> list[Use]:
    """Every outermost resolvable reference, calls with their folded arguments."""
    parents: dict[ast.AST, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    uses: list[Use] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = resolver.resolve(node.func)
            if name is not None:
                args = tuple(fold_str(a) for a in node.args)
                if _os_name(name) == "os.open" and len(node.args) > 1:
                    args = (args[0], _os_open_flags(node, resolver), *args[2:])
                keywords = tuple(k.arg or "**" for k in node.keywords)
                uses.append(Use("call", name, node.lineno, node.col_offset, args, keywords))
            called = resolver.by_name(node, "operator.methodcaller")
            if called is not None and isinstance(node.func, ast.Call):
                args = tuple(fold_str(a) for a in node.func.args[1:])
                uses.append(Use("call", called, node.lineno, node.col_offset, args))
            fetched = resolver.by_name(node, "operator.attrgetter")
            parent = parents.get(node)
            if fetched is not None and not (isinstance(parent, ast.Call) and parent.func is node):
                uses.append(Use("attribute", fetched, node.lineno, node.col_offset))
            # ``__import__("os")`` and ``importlib.import_module("so" + "cket")`` import too.
            target = resolver.resolve(node)
            if target is not None and name in ("builtins.__import__", "importlib.import_module"):
                uses.append(Use("import", target, node.lineno, node.col_offset))
        elif isinstance(node, ast.Name | ast.Attribute) and isinstance(node.ctx, ast.Load):
            parent = parents.get(node)
            if isinstance(parent, ast.Attribute) and parent.value is node:
                continue
            if isinstance(parent, ast.Call) and parent.func is node:
                continue
            name = resolver.resolve(node)
            if name is None or (name.startswith("builtins.") and capability_of(name) is None):
                continue
            # ``os.environ["HOME"]`` names its variable like ``os.getenv("HOME")`` does.
            key = parent.slice if isinstance(parent, ast.Subscript) else None
            args = (fold_str(key),) if key is not None else ()
            uses.append(Use("attribute", name, node.lineno, node.col_offset, args))
    return uses


def describe_use(use: Use) -> str:
    """How a use reads in a finding: "imports socket", "calls eval()", "uses os.environ"."""
    if use.kind == "import":
        module, _, member = use.name.rpartition(".")
        if member == "*":
            return f"imports * from {module}"
        return f"imports {use.name}"
    if use.kind == "call":
        return f"calls {use.name.removeprefix('builtins.')}()"
    return f"uses {use.name.removeprefix('builtins.')}"


_OPENERS = frozenset(
    {"builtins.open", "io.open", "io.FileIO", "_io.open", "_io.FileIO", "codecs.open", "os.open"}
)


def _fs_kind(use: Use, cap: str) -> str:
    """open() is a write when its mode (second argument) writes, or when the mode is not known
    (a computed or keyword mode); ``os.open`` reads only with ``os.O_RDONLY`` as its flags."""
    if _os_name(use.name) not in _OPENERS or use.kind != "call":
        return cap
    if {"mode", "flags", "**"} & set(use.keywords):
        return "fs:write"
    mode = use.args[1] if len(use.args) > 1 else "r"
    if mode is None or any(c in mode for c in "wax+"):
        return "fs:write"
    return "fs:read"


def _os_name(name: str) -> str:
    """``posix.open`` and ``nt.open`` are ``os.open``."""
    head, dot, rest = name.partition(".")
    return f"os{dot}{rest}" if head in _OS_ALIASES else name


def _os_open_flags(node: ast.Call, resolver: _Resolver) -> str | None:
    """``os.open``'s flags as the mode string _fs_kind understands: "r" for O_RDONLY alone."""
    flags = node.args[1]
    if isinstance(flags, ast.Constant) and flags.value == 0:
        return "r"
    name = resolver.resolve(flags)
    return "r" if name is not None and _os_name(name) == "os.O_RDONLY" else None


def required_capabilities(use: Use) -> list[str]:
    """Concrete capability strings a use needs: "network:<host>" if a host is visible, else kind."""
    cap = capability_of(use.name)
    if cap is None or cap in ("dynamic", "native"):
        return []
    if cap.startswith("fs:"):
        kind = _fs_kind(use, cap)
        path = use.args[0] if use.args else None
        return [f"{kind}:{path}" if path and path.startswith("/") else kind]
    if cap == "env":
        var = use.args[0] if use.args else None
        return [f"env:{var}" if var else "env"]
    if cap == "network":
        hosts = [m.group(1) for a in use.args if a and (m := _URL_HOST_RE.match(a))]
        return [f"network:{h}" for h in hosts] or ["network"]
    return [cap]


def _covered(required: str, analysis: Analysis) -> bool:
    """Is a required capability inside the declared set? A bare kind needs any declaration."""
    kind, _, target = required.partition(":")
    if kind == "fs":
        mode, _, path = target.partition(":")
        allowed = analysis.declared("fs:write") + (
            analysis.declared("fs:read") if mode == "read" else []
        )
        if not path:
            return bool(allowed)
        return any(path == p or path.startswith(p.rstrip("/") + "/") for p in allowed)
    if kind == "subprocess":
        return "subprocess" in analysis.spec.capabilities
    declared = analysis.declared(kind)
    if not target:
        return bool(declared)
    return target.split(":")[0] in [d.split(":")[0] for d in declared]


def _suggestion(required: str) -> str:
    kind, _, target = required.partition(":")
    if kind == "fs":
        mode, _, path = target.partition(":")
        return f"fs:{mode}:{path or '<path>'}"
    if kind == "network":
        return f"network:{target or '<host>'}"
    if kind == "env":
        return f"env:{target or '<NAME>'}"
    return required


def check_declared_capabilities(analysis: Analysis) -> Iterator[Hit]:
    """Each use of a capability must be inside what the spec declares."""
    for use in [*analysis.imported, *analysis.uses]:
        for required in required_capabilities(use):
            if _covered(required, analysis):
                continue
            kind = required.split(":")[0]
            declared = [c for c in analysis.spec.capabilities if c.split(":")[0] == kind]
            have = (
                f"declares only {', '.join(declared)}"
                if declared
                else f"declares no {kind} capability"
            )
            remove = {"import": "the import", "call": "the call"}.get(use.kind, "the use")
            yield Hit(
                use.line,
                use.col,
                required,
                f"{describe_use(use)} ({required}) but the spec {have}; "
                f"declare {_suggestion(required)} or remove {remove}",
                undeclared=True,
            )


def check_url_hosts(analysis: Analysis) -> Iterator[Hit]:
    """URLs written in network-using code must point at declared hosts."""
    if not any(capability_of(u.name) == "network" for u in analysis.imported):
        return
    hosts = analysis.declared("network")
    if not hosts:
        return  # the import itself is already reported as undeclared
    allowed = {h.split(":")[0] for h in hosts}
    for node in ast.walk(analysis.tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = _URL_HOST_RE.match(node.value)
            if match and match.group(1) not in allowed:
                host = match.group(1)
                yield Hit(
                    node.lineno,
                    node.col_offset,
                    f"network:{host}",
                    f"refers to {node.value!r} on host {host} but the spec declares only "
                    f"{', '.join('network:' + h for h in hosts)}; declare network:{host} or "
                    "remove the URL",
                    undeclared=True,
                )


def check_pathlib_io(analysis: Analysis) -> Iterator[Hit]:
    """Path methods that touch the filesystem count as fs use when pathlib is imported."""
    if not any(u.name.split(".")[0] == "pathlib" for u in analysis.imported):
        return
    for node in ast.walk(analysis.tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _PATH_METHODS
        ):
            kind = _PATH_METHODS[node.func.attr]
            if not _covered(kind, analysis):
                yield Hit(
                    node.lineno,
                    node.col_offset,
                    kind,
                    f"calls .{node.func.attr}() on a path ({kind}) but the spec declares no "
                    f"{kind} capability; declare {kind}:<path> or remove the call",
                    undeclared=True,
                )


def check_dynamic(analysis: Analysis) -> Iterator[Hit]:
    """Dynamic code, reflection and native code cannot be bounded statically."""
    for use in [*analysis.imported, *analysis.uses]:
        cap = capability_of(use.name)
        if use.kind == "import" and use.name.split(".")[0] == "builtins":
            cap = "dynamic"  # the builtins module hands out eval, exec and __import__
        if cap in ("dynamic", "native"):
            yield Hit(
                use.line,
                use.col,
                cap,
                f"{describe_use(use)} ({cap}); {cap} code cannot be checked statically, so it is "
                "never accepted: rewrite without it",
            )
        elif use.name in _REFLECTIVE_BUILTINS and use.kind == "call":
            attr = use.args[1] if len(use.args) > 1 else None
            if attr is None or attr.startswith("__") or attr in _INTROSPECTION_ATTRS:
                shown = "a computed name" if attr is None else repr(attr)
                yield Hit(
                    use.line,
                    use.col,
                    "dynamic",
                    f"{describe_use(use)} with {shown} (dynamic); use plain attribute access",
                )
        elif use.name in _NAME_READERS:
            count = _NAME_READERS[use.name]
            names = use.args[:count] if use.kind == "call" and not use.keywords else ()
            bad = [n for n in names if n is None or _internal_name(n)]
            if bad or not names:
                shown = "a computed name" if not names or None in bad else repr(bad[0])
                yield Hit(
                    use.line,
                    use.col,
                    "dynamic",
                    f"{describe_use(use)} with {shown} (dynamic); use plain attribute access",
                )
        elif use.name in _WRAPPER_HELPERS:
            plain = use.kind == "call" and len(use.args) <= _WRAPPER_HELPERS[use.name]
            if not plain or {"assigned", "updated", "**"} & set(use.keywords):
                yield Hit(
                    use.line,
                    use.col,
                    "dynamic",
                    f"{describe_use(use)} with attribute names of its own (dynamic); "
                    "use it with its default assigned and updated, or plain attribute access",
                )
    for node in ast.walk(analysis.tree):
        if isinstance(node, ast.Attribute):
            attr = node.attr
            dunder = attr.startswith("__") and attr.endswith("__")
            if (dunder and attr not in _HARMLESS_DUNDERS) or attr in _INTROSPECTION_ATTRS:
                yield Hit(
                    node.lineno,
                    node.col_offset,
                    "dynamic",
                    f"accesses .{attr} (dynamic); interpreter internals are off limits",
                )
        elif isinstance(node, ast.Name) and node.id in ("__builtins__", "__loader__", "__spec__"):
            yield Hit(
                node.lineno,
                node.col_offset,
                "dynamic",
                f"uses {node.id} (dynamic); interpreter internals are off limits",
            )


def _internal_name(dotted: str) -> bool:
    """A dotted attribute path that reaches a dunder or interpreter internals."""
    return any(p.startswith("__") or p in _INTROSPECTION_ATTRS for p in dotted.split("."))


def check_event_loop_io(analysis: Analysis) -> Iterator[Hit]:
    """Event-loop methods that start processes or connect count when asyncio is imported."""
    if not any(u.name.split(".")[0] == "asyncio" for u in analysis.imported):
        return
    for node in ast.walk(analysis.tree):
        if isinstance(node, ast.Attribute) and node.attr in _LOOP_METHODS:
            kind = _LOOP_METHODS[node.attr]
            if not _covered(kind, analysis):
                suggestion = "network:<host>" if kind == "network" else kind
                yield Hit(
                    node.lineno,
                    node.col_offset,
                    kind,
                    f"uses .{node.attr} of an event loop ({kind}) but the spec declares no "
                    f"{kind} capability; declare {suggestion} or remove the use",
                    undeclared=True,
                )


def check_stdlib_only(analysis: Analysis) -> Iterator[Hit]:
    """A spec without dependencies may import only the standard library.

    With dependencies declared nothing is checked here: import names and distribution names
    differ (``yaml`` is PyYAML), and the sandbox installs only what is declared.
    """
    if analysis.spec.dependencies:
        return
    for use in analysis.imported:
        top = use.name.split(".")[0]
        if top and top in sys.stdlib_module_names:
            continue
        shown = use.name if top else f"the relative module {use.name}"
        yield Hit(
            use.line,
            use.col,
            None,
            f"imports {shown}, which is not in the standard library, but the spec declares no "
            "dependencies; use the standard library or declare the dependency",
        )


def check_entrypoint(analysis: Analysis) -> Iterator[Hit]:
    """The module must define a top-level function named after the spec."""
    name = analysis.spec.name
    if not any(isinstance(n, ast.FunctionDef) and n.name == name for n in analysis.tree.body):
        yield Hit(1, 0, None, f"defines no top-level function {name}(); the spec's name is {name}")


_RESTRICTED_LINE_RE = re.compile(r"^Line (\d+): (.*)$", re.DOTALL)


def check_restricted_compile(analysis: Analysis) -> Iterator[Hit]:
    """RestrictedPython must accept the code for it to run in the restricted runtime."""
    for error in compile_restricted_exec(analysis.code).errors:
        match = _RESTRICTED_LINE_RE.match(error)
        line = int(match.group(1)) if match else 0
        message = match.group(2) if match else error
        yield Hit(line, 0, None, f"RestrictedPython refuses this: {message}")


def check_restricted_imports(analysis: Analysis) -> Iterator[Hit]:
    """The restricted runtime can import only its allowlist, and offers only vetted names."""
    for use in analysis.imported:
        if not restricted_module_ok(use.name):
            yield Hit(
                use.line,
                use.col,
                None,
                f"imports {use.name}, which the restricted runtime does not offer",
            )
    for use in [*analysis.imported, *analysis.uses]:
        name = restricted_name_refused(use.name)
        if name is not None:
            yield Hit(
                use.line,
                use.col,
                None,
                f"{describe_use(use)}, but the restricted runtime does not offer {name}",
            )


def restricted_module_ok(name: str) -> bool:
    """Is ``name`` (a module, or a name inside one) within the restricted runtime's allowlist?"""
    parts = name.split(".")
    return any(".".join(parts[:i]) in RESTRICTED_MODULES for i in range(1, len(parts) + 1))


def restricted_name_refused(name: str) -> str | None:
    """The dotted ``module.member`` within ``name`` the restricted runtime withholds, if any."""
    parts = name.split(".")
    for i in range(len(parts) - 1, 0, -1):
        module = ".".join(parts[:i])
        if module in RESTRICTED_MODULES:
            member = parts[i]
            if f"{module}.{member}" in RESTRICTED_MODULES or member in RESTRICTED_NAMES[module]:
                return None
            return f"{module}.{member}"
    return None


DEFAULT_RULES: tuple[Rule, ...] = (
    Rule("entrypoint", "the build calls the function named after the spec", check_entrypoint),
    Rule(
        "capability",
        "a tool may use only the capabilities its spec declares",
        check_declared_capabilities,
    ),
    Rule("url-host", "network use must stay on the declared hosts", check_url_hosts),
    Rule("pathlib", "path objects read and write files too", check_pathlib_io),
    Rule(
        "event-loop",
        "event loops start processes and open connections too",
        check_event_loop_io,
    ),
    Rule("dynamic", "dynamic code and introspection defeat static analysis", check_dynamic),
    Rule("stdlib-only", "undeclared dependencies are not installed", check_stdlib_only),
)

#: Advisory rules: they decide whether the restricted runtime may run the tool, never block it.
RESTRICTED_RULES: tuple[Rule, ...] = (
    Rule(
        "restricted",
        "the restricted runtime runs only code RestrictedPython accepts",
        check_restricted_compile,
        severity="advisory",
    ),
    Rule(
        "restricted-import",
        "the restricted runtime imports only allowlisted modules",
        check_restricted_imports,
        severity="advisory",
    ),
)


def analyze(code: str, spec: ToolSpec, rules: Sequence[Rule] = DEFAULT_RULES) -> PolicyReport:
    """Find the capabilities ``code`` uses and what of that the spec does not allow."""
    try:
        tree = ast.parse(code)
    except SyntaxError as e:
        line, col = e.lineno or 0, (e.offset or 1) - 1
        finding = Finding(
            rule="syntax",
            capability=None,
            line=line,
            col=col,
            message=f"line {line}: the code does not parse: {e.msg}",
        )
        return PolicyReport(
            findings=[finding], used_capabilities=[], undeclared=[], restricted_eligible=False
        )
    resolver = _Resolver(tree)
    analysis = Analysis(code, spec, tree, _collect_uses(tree, resolver), resolver.imported)
    findings: list[Finding] = []
    undeclared: list[Finding] = []
    seen: set[tuple[str, int, str]] = set()
    for rule in [*rules, *RESTRICTED_RULES]:
        for finding, is_undeclared in rule(analysis):
            key = (finding.rule, finding.line, finding.message)
            if key in seen:
                continue
            seen.add(key)
            findings.append(finding)
            if is_undeclared:
                undeclared.append(finding)
    used = sorted(
        {r for u in [*analysis.imported, *analysis.uses] for r in required_capabilities(u)}
        | {
            cap
            for u in [*analysis.imported, *analysis.uses]
            if (cap := capability_of(u.name)) in ("dynamic", "native")
        }
        | {f.capability for f in findings if f.capability}
    )
    eligible = spec.is_pure and not findings
    imports = {u.name for u in analysis.imported} | {
        u.name for u in analysis.uses if u.kind == "import"
    }
    return PolicyReport(
        findings=findings,
        used_capabilities=used,
        undeclared=undeclared,
        restricted_eligible=eligible,
        imports=sorted(imports),
    )


# --- the capability policy file -------------------------------------------------------------
#
# Analysis says what a tool uses; the policy says what the installation lets tools use. Each
# section sorts names into allow (auto-approved), needs_approval (published pending until a
# person approves) and deny (never built). ``evaluate_policy`` does no IO: ``load_policy`` reads.

Decision = Literal["allow", "needs_approval", "deny"]
_DECISION_ORDER: dict[Decision, int] = {"allow": 0, "needs_approval": 1, "deny": 2}
_CAPABILITY_KINDS = ("network", "fs", "env", "subprocess")
POLICY_ENV = "TOOLSMITH_POLICY"


class PolicySection(BaseModel):
    """fnmatch patterns per decision; deny beats allow beats needs_approval, else ``default``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allow: list[str] = Field(default_factory=list)
    needs_approval: list[str] = Field(default_factory=list)
    deny: list[str] = Field(default_factory=list)
    default: Decision = "needs_approval"

    def classify(self, candidates: Sequence[str]) -> tuple[Decision, str, str | None]:
        """The decision for a name given as its candidate spellings, the key and the pattern."""
        for key in ("deny", "allow", "needs_approval"):
            for pattern in getattr(self, key):
                if any(fnmatch.fnmatchcase(c, pattern) for c in candidates):
                    return key, key, pattern
        return self.default, "default", None


class CapabilityPolicy(BaseModel):
    """Which capabilities, imports and dependencies tools may have, and which need a person."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    capabilities: PolicySection = Field(default_factory=PolicySection)
    imports: PolicySection = Field(default_factory=lambda: PolicySection(default="allow"))
    dependencies: PolicySection = Field(default_factory=PolicySection)
    source: str = Field(default="<policy>", exclude=True, description="where it was loaded from")

    @field_validator("capabilities")
    @classmethod
    def _capability_patterns(cls, v: PolicySection) -> PolicySection:
        for key in ("allow", "needs_approval", "deny"):
            for i, pattern in enumerate(getattr(v, key)):
                kind = pattern.split(":")[0]
                if kind not in _CAPABILITY_KINDS and not _is_wildcard(kind):
                    raise ValueError(
                        f"{key}[{i}]: {pattern!r} matches no capability; patterns look like "
                        "network:<host>, fs:read:<path>, fs:write:<path>, env:<NAME> or subprocess"
                    )
        return v

    @field_validator("dependencies")
    @classmethod
    def _dependency_patterns(cls, v: PolicySection) -> PolicySection:
        return v.model_copy(
            update={
                key: [_canonical_pattern(p) for p in getattr(v, key)]
                for key in ("allow", "needs_approval", "deny")
            }
        )

    @classmethod
    def from_toml(cls, text: str, *, source: str = "<policy>") -> CapabilityPolicy:
        """Parse policy TOML; every mistake becomes a PolicyError naming the key and the fix."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise PolicyError(
                f"policy {source} is not valid TOML: {e}", hint="fix the TOML syntax"
            ) from None
        if "imports" in data and isinstance(data["imports"], dict):
            data["imports"] = {"default": "allow", **data["imports"]}
        try:
            return cls.model_validate({**data, "source": source})
        except ValidationError as e:
            err = e.errors()[0]
            key = ".".join(str(p) for p in err["loc"]) or "(top level)"
            raise PolicyError(
                f"policy {source}: {key}: {err['msg'].removeprefix('Value error, ')}",
                hint="sections are [capabilities], [imports] and [dependencies], each with "
                "allow / needs_approval / deny lists of patterns and default = "
                '"allow" | "needs_approval" | "deny"',
            ) from None


def _is_wildcard(text: str) -> bool:
    return any(c in text for c in "*?[")


def _canonical_pattern(pattern: str) -> str:
    return re.sub(r"[-_.]+", "-", pattern).lower()


def load_policy(path: str | Path | None = None) -> CapabilityPolicy:
    """The policy at ``path``, else at ``$TOOLSMITH_POLICY``, else the shipped default."""
    chosen = path if path is not None else os.environ.get(POLICY_ENV) or None
    if chosen is None:
        default = resources.files("toolsmith").joinpath("data/policy.toml")
        return CapabilityPolicy.from_toml(default.read_text("utf-8"), source="<default policy>")
    p = Path(chosen)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        origin = "" if path is not None else f" (from ${POLICY_ENV})"
        raise PolicyError(
            f"cannot read policy file {p}{origin}: {e.strerror}",
            hint=f"check the path, or unset {POLICY_ENV} to use the shipped default",
        ) from None
    return CapabilityPolicy.from_toml(text, source=str(p))


class PolicyReason(BaseModel):
    """Why one thing the tool asks for got its decision, naming the policy rule that decided."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["capability", "import", "dependency", "finding"]
    subject: str
    decision: Decision
    rule: str
    message: str


class PolicyDecision(BaseModel):
    """The policy's verdict on one tool: the strictest of its reasons' decisions."""

    model_config = ConfigDict(frozen=True)

    decision: Decision
    reasons: list[PolicyReason]
    policy: str

    @property
    def deciding(self) -> list[PolicyReason]:
        """The reasons that made the decision what it is."""
        return [r for r in self.reasons if r.decision == self.decision]

    def text(self) -> str:
        head = {
            "allow": "allowed",
            "needs_approval": "needs approval",
            "deny": "denied",
        }[self.decision]
        lines = [f"policy {self.policy}: {head}"]
        lines += [f"  [{r.rule}] {r.message}" for r in self.deciding]
        return "\n".join(lines)


_VERB: dict[Decision, str] = {
    "allow": "allowed",
    "needs_approval": "needs approval",
    "deny": "prohibited",
}


def _normal_capability(cap: str) -> str:
    """Paths normalised (``/tmp/../etc`` is ``/etc``) and hosts lowercased before matching."""
    kind, _, target = cap.partition(":")
    if kind == "fs":
        mode, _, path = target.partition(":")
        return f"fs:{mode}:{posixpath.normpath(path)}" if path else cap
    if kind == "network":
        return cap.lower()
    return cap


def evaluate_policy(
    spec: ToolSpec, code_report: PolicyReport, policy: CapabilityPolicy
) -> PolicyDecision:
    """Decide whether a tool may be published now, only after approval, or not at all.

    Blocking analysis findings deny (the code needs fixing first); otherwise each declared
    capability, each import and each dependency is classified, and the strictest decision wins.
    """
    reasons: list[PolicyReason] = [
        PolicyReason(
            kind="finding",
            subject=f.rule,
            decision="deny",
            rule=f"analysis:{f.rule}",
            message=f.message,
        )
        for f in code_report.errors
    ]
    for cap in spec.capabilities:
        normal = _normal_capability(cap)
        decision, key, pattern = policy.capabilities.classify([normal])
        reasons.append(_reason("capability", cap, decision, f"capabilities.{key}", pattern))
    for module in code_report.imports:
        parts = module.split(".")
        prefixes = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
        decision, key, pattern = policy.imports.classify(prefixes)
        if decision != "allow" or key != "default":
            reasons.append(_reason("import", module, decision, f"imports.{key}", pattern))
    for dep in spec.dependencies:
        name = canonicalize_name(Requirement(dep).name)
        decision, key, pattern = policy.dependencies.classify([name])
        reasons.append(_reason("dependency", dep, decision, f"dependencies.{key}", pattern))
    reasons.sort(key=lambda r: -_DECISION_ORDER[r.decision])
    overall: Decision = reasons[0].decision if reasons else "allow"
    return PolicyDecision(decision=overall, reasons=reasons, policy=policy.source)


def _reason(
    kind: Literal["capability", "import", "dependency"],
    subject: str,
    decision: Decision,
    rule: str,
    pattern: str | None,
) -> PolicyReason:
    by = f"{rule} pattern {pattern!r}" if pattern is not None else f"{rule} (no pattern matches)"
    return PolicyReason(
        kind=kind,
        subject=subject,
        decision=decision,
        rule=rule,
        message=f"{kind} {subject} {_VERB[decision]} by {by}",
    )
