"""The restricted runtime's allowlist: the modules and names it offers, and the advisory rules
that decide whether a tool may run in process (``PolicyReport.restricted_eligible``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from RestrictedPython import compile_restricted_exec

from toolsmith.analysis._rules import Analysis, Hit, Rule, describe_use

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
