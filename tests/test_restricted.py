"""The restricted runtime: pure tools run in-process, escapes and runaway code are stopped."""

from __future__ import annotations

import collections.abc
import gc
import inspect
import json
import subprocess
import sys
import urllib.request  # noqa: F401  (loaded in the host, so the runtime must withhold it)
from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st
from RestrictedPython import compile_restricted_exec

from toolsmith.errors import (
    PolicyError,
    ToolArgumentsError,
    ToolExecutionError,
    ToolRaisedError,
    ToolTimeoutError,
)
from toolsmith.runtimes import RestrictedRuntime, RestrictedTool, load_restricted
from toolsmith.runtimes.restricted import _TickingTransformer
from toolsmith.spec import ToolSpec
from toolsmith.validation import fast_validator


def make_spec(name: str = "tool", **fields: Any) -> ToolSpec:
    base: dict[str, Any] = {
        "name": name,
        "description": "A tool under test.",
        "parameters": {"type": "object", "properties": {"x": {}}},
        "returns": {},
    }
    return ToolSpec.parse(base | fields)


def unchecked(code: str, *, timeout_s: float = 0.3) -> RestrictedTool:
    """Load without the policy gate, to test the runtime's own guards behind it."""
    compiled = compile_restricted_exec(code, policy=_TickingTransformer)
    assert compiled.code is not None, compiled.errors
    return RestrictedTool(make_spec(), compiled.code, timeout_s=timeout_s, max_output_bytes=10_000)


SLUGIFY = """\
import re
import unicodedata


class EmptyText(ValueError):
    pass


def slugify(text, sep="-"):
    if not text.strip():
        raise EmptyText("text is empty")
    plain = unicodedata.normalize("NFKD", text)
    plain = "".join([c for c in plain if not unicodedata.combining(c)])
    return sep.join(re.findall(r"[a-z0-9]+", plain.lower()))
"""

SLUGIFY_SPEC = make_spec(
    "slugify",
    parameters={
        "type": "object",
        "properties": {"text": {"type": "string"}, "sep": {"type": "string", "maxLength": 1}},
        "required": ["text"],
        "additionalProperties": False,
    },
    returns={"type": "string"},
    raises=["ValueError"],
)

NORMALISE = """\
import json
import re


def normalise(document):
    data = json.loads(document)

    def clean(value):
        if isinstance(value, str):
            return re.sub(r"\\s+", " ", value).strip()
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, dict):
            out = {}
            for key, item in sorted(value.items()):
                out[key.strip().lower()] = clean(item)
            return out
        return value

    return json.dumps(clean(data), sort_keys=True, separators=(",", ":"))
"""


def test_slugify_tool_runs() -> None:
    """A slugify tool with re and unicodedata gives the expected slug."""
    slugify = load_restricted(SLUGIFY_SPEC, SLUGIFY)
    assert slugify(text="Héllo, Wörld!") == "hello-world"
    assert slugify(text="a b", sep="_") == "a_b"


def test_declared_exception_subclass_maps_to_tool_raised_error() -> None:
    """A tool's own ValueError subclass surfaces as ToolRaisedError('ValueError', message)."""
    slugify = load_restricted(SLUGIFY_SPEC, SLUGIFY)
    with pytest.raises(ToolRaisedError, match="ValueError: text is empty") as info:
        slugify(text="   ")
    assert info.value.type_name == "ValueError"
    assert info.value.tool_message == "text is empty"


def test_json_normaliser_runs() -> None:
    """A JSON normaliser using json and re normalises keys, order and whitespace."""
    spec = make_spec(
        "normalise",
        parameters={
            "type": "object",
            "properties": {"document": {"type": "string"}},
            "required": ["document"],
        },
        returns={"type": "string"},
    )
    normalise = load_restricted(spec, NORMALISE)
    doc = json.dumps({"B ": ["  a\n b "], "a": {"Z": "x   y"}})
    assert normalise(document=doc) == '{"a":{"z":"x y"},"b":["a b"]}'


def test_bad_arguments_get_the_schema_error() -> None:
    """Arguments failing the parameter schema raise ToolArgumentsError naming the problem."""
    slugify = load_restricted(SLUGIFY_SPEC, SLUGIFY)
    with pytest.raises(ToolArgumentsError, match="text: 3 is not of type 'string'"):
        slugify(text=3)
    with pytest.raises(ToolArgumentsError, match="'text' is a required property"):
        slugify()
    with pytest.raises(ToolArgumentsError, match="Additional properties"):
        slugify(text="a", colour="red")


def test_result_not_matching_returns_is_an_execution_error() -> None:
    """A result outside the returns schema is a ToolExecutionError naming the mismatch."""
    spec = make_spec(returns={"type": "integer"})
    tool = load_restricted(spec, "def tool(x=None):\n    return 'seven'\n")
    with pytest.raises(ToolExecutionError, match="does not match the returns schema"):
        tool()


def test_undeclared_exception_is_an_execution_error() -> None:
    """An exception the spec does not declare becomes ToolExecutionError with its type."""
    tool = load_restricted(
        make_spec(raises=["ValueError"]), "def tool(x=None):\n    return 1 / 0\n"
    )
    with pytest.raises(ToolExecutionError, match="ZeroDivisionError: division by zero"):
        tool()


def test_tool_classes_may_keep_their_own_state() -> None:
    """Instances of classes the tool defines accept attribute writes; stdlib objects do not."""
    code = (
        "class Counter:\n    def __init__(self):\n        self.n = 0\n\n"
        "def tool(x=None):\n    c = Counter()\n    for i in range(5):\n        c.n = c.n + i\n"
        "    return c.n\n"
    )
    assert load_restricted(make_spec(), code)() == 10


def test_spec_with_capabilities_is_refused_with_the_reason() -> None:
    """A tool that declares capabilities cannot use the restricted runtime."""
    spec = make_spec(capabilities=["network:api.example.com"])
    with pytest.raises(PolicyError, match=r"declares capabilities \(network:api.example.com\)"):
        load_restricted(spec, "def tool(x=None):\n    return 1\n")


def test_policy_findings_are_the_refusal_reason() -> None:
    """Code the policy flags is refused with the finding's message."""
    with pytest.raises(PolicyError, match="line 2: imports os, which the restricted runtime"):
        load_restricted(make_spec(), "def tool(x=None):\n    import os\n    return 1\n")


# Escape attempts. Each is refused by load_restricted (policy or compile) or fails at run time;
# the ``unchecked`` variants show the runtime's own guards hold even without the policy gate.

REFUSED_AT_LOAD = {
    "subclass walk": "def tool(x=None):\n    return ().__class__.__base__.__subclasses__()\n",
    "built dunder name": "def tool(x=None):\n    return getattr(x, '__cl' + 'ass__')\n",
    "ctypes": "import ctypes\n\ndef tool(x=None):\n    return 1\n",
    "__import__": "def tool(x=None):\n    return __import__('os').getcwd()\n",
    "try/except*": (
        "def tool(x=None):\n    try:\n        raise ValueError(1)\n"
        "    except* ValueError as g:\n        return 1\n"
    ),
    "generator frame": (
        "def tool(x=None):\n    g = (i for i in [1])\n    return g.gi_frame.f_back.f_globals\n"
    ),
    "gi_code": "def tool(x=None):\n    g = (i for i in [1])\n    return g.gi_code\n",
    "mro": "def tool(x=None):\n    return type(x).__mro__\n",
    "object subclasses": "def tool(x=None):\n    return object.__subclasses__()\n",
    "vars": "def tool(x=None):\n    return vars()\n",
    "globals": "def tool(x=None):\n    return globals()\n",
    "breakpoint": "def tool(x=None):\n    breakpoint()\n",
    "open": "def tool(x=None):\n    return open('/etc/passwd').read()\n",
    "exec": "def tool(x=None):\n    exec('import os')\n",
    "eval": "def tool(x=None):\n    return eval('1')\n",
    "compile": "def tool(x=None):\n    return compile('1', 'f', 'eval')\n",
    "frame-capturing decorator": (
        "def grab(f):\n    return f.__code__\n\n@grab\ndef tool(x=None):\n    return 1\n"
    ),
    "module dict": "import functools\n\ndef tool(x=None):\n    return functools.__dict__\n",
    "typing": "import typing\n\ndef tool(x=None):\n    return typing.sys.modules\n",
}


@pytest.mark.parametrize("code", REFUSED_AT_LOAD.values(), ids=REFUSED_AT_LOAD.keys())
def test_escape_attempt_is_refused_at_load(code: str) -> None:
    """The policy gate and RestrictedPython refuse the escape before any of it runs."""
    with pytest.raises(PolicyError, match="cannot run in the restricted runtime"):
        load_restricted(make_spec(), code)


GUARDED_AT_RUN = {
    "built dunder name": (
        "def tool(x=None):\n    return getattr(x, '__cl' + 'ass__')\n",
        '"__class__" is not accessible',
    ),
    "computed gi_frame": (
        "def tool(x=None):\n    g = (i for i in [1])\n    return getattr(g, 'gi_' + 'frame')\n",
        '"gi_frame" is not accessible',
    ),
    "ctypes": ("import ctypes\n\ndef tool(x=None):\n    return 1\n", "ctypes"),
    "typing.sys": ("import typing\n\ndef tool(x=None):\n    return 1\n", "typing"),
    "vars": ("def tool(x=None):\n    return vars()\n", "vars"),
    "open": ("def tool(x=None):\n    return open('/etc/passwd').read()\n", "open"),
    "compile": ("def tool(x=None):\n    return compile('1', 'f', 'eval')\n", "compile"),
    "SystemExit": ("def tool(x=None):\n    raise SystemExit(3)\n", "SystemExit"),
    "json.codecs": ("import json\n\ndef tool(x=None):\n    return json.codecs\n", "module"),
    "from json import codecs": (
        "from json import codecs\n\ndef tool(x=None):\n    return 1\n",
        "json.codecs is a module the restricted runtime withholds",
    ),
    "re.enum": ("import re\n\ndef tool(x=None):\n    return re.enum\n", "module"),
    "from urllib import request": (
        "from urllib import request\n\ndef tool(x=None):\n    return 1\n",
        "'urllib' is not available",
    ),
    "urllib.request via urllib.parse": (
        "import urllib.parse\n\ndef tool(x=None):\n    return urllib.request\n",
        "urllib.request is a module the restricted runtime withholds",
    ),
    "attrgetter": (
        "import operator\n\ndef tool(x=None):\n    return operator.attrgetter('__class__')(1)\n",
        "attrgetter",
    ),
}


@pytest.mark.parametrize(("code", "needle"), GUARDED_AT_RUN.values(), ids=GUARDED_AT_RUN.keys())
def test_runtime_guards_hold_without_the_policy_gate(code: str, needle: str) -> None:
    """With the policy bypassed, the runtime's guards still stop the escape with an error."""
    with pytest.raises(ToolExecutionError, match=needle):
        unchecked(code)()


# functools.update_wrapper reads ``wrapped.<name>`` for each name in ``updated`` without the
# attribute guard; a namedtuple field named like the attribute hands the value to the tool.
UPDATE_WRAPPER_ESCAPE = """\
import collections
import functools


class Sink:
    def __init__(self):
        self.got = []

    def update(self, value):
        self.got.append(value)


def grab(obj, name):
    sink = Sink()
    holder = collections.namedtuple("Holder", [name])(sink)
    try:
        functools.update_wrapper(holder, obj, assigned=(), updated=(name,))
    except AttributeError:
        pass
    return sink.got[0]


def frames():
    yield 1


def tool(x=None):
    frame = grab(frames(), "gi" + "_frame")
    return str(grab(frame, "f" + "_globals").keys())
"""

WRAPS_ESCAPE = UPDATE_WRAPPER_ESCAPE.replace(
    "functools.update_wrapper(holder, obj, assigned=(), updated=(name,))",
    "functools.wraps(obj, assigned=(), updated=(name,))(holder)",
)


@pytest.mark.parametrize(
    "code", [UPDATE_WRAPPER_ESCAPE, WRAPS_ESCAPE], ids=["update_wrapper", "wraps"]
)
def test_attribute_reads_by_name_in_functools_are_withheld(code: str) -> None:
    """Neither the policy gate nor the runtime lets a tool read attributes through functools."""
    with pytest.raises(PolicyError, match="cannot run in the restricted runtime"):
        load_restricted(make_spec(), code)
    with pytest.raises(ToolExecutionError):  # the tool swallows the refusal, then finds nothing
        unchecked(code)()


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("operator", "attrgetter"),
        ("operator", "methodcaller"),
        ("operator", "setitem"),
        ("functools", "singledispatch"),
        ("functools", "RLock"),
        ("statistics", "repeat"),
        ("base64", "main"),
        ("decimal", "DefaultContext"),
        ("hashlib", "algorithms_available"),
        ("urllib.parse", "uses_netloc"),
        ("re", "purge"),
        ("collections.abc", "sys"),
    ],
)
def test_only_vetted_module_names_are_offered(module: str, name: str) -> None:
    """Each module offers an allowlist of vetted names, not everything that is not denied."""
    code = f"import {module}\n\ndef tool(x=None):\n    return {module}.{name}\n"
    with pytest.raises(PolicyError, match="cannot run in the restricted runtime"):
        load_restricted(make_spec(), code)
    with pytest.raises(ToolExecutionError, match=rf"{module}\.{name} is (not available|a module)"):
        unchecked(code)()


def test_abstract_base_classes_cannot_be_registered_with() -> None:
    """ABC registration is process-wide: a tool must not make int a Mapping for the host."""
    code = (
        "import collections.abc\n\nclass Mine(collections.abc.Mapping):\n    pass\n\n"
        "def tool(x=None):\n    Mine.register(int)\n    return 1\n"
    )
    with pytest.raises(ToolExecutionError, match='"register" is not accessible'):
        load_restricted(make_spec(), code)()
    assert not isinstance(1, collections.abc.Mapping)


@pytest.mark.parametrize(
    "expression",
    [
        "'{0.__class__}'.format(x)",
        "'{0.__globals__}'.format(tool)",
        "'{0.__class__}'.format_map({'a': x})",
        "str.format('{0.__class__}', x)",
    ],
)
def test_str_format_attribute_walk_is_blocked(expression: str) -> None:
    """str.format and format_map, which walk attributes in replacement fields, are unavailable;
    the analysis refuses such a template first."""
    code = f"def tool(x=None):\n    return {expression}\n"
    with pytest.raises(PolicyError, match=r"walks into \.__(class|globals)__"):
        load_restricted(make_spec(), code)
    with pytest.raises(ToolExecutionError, match=r'"format(_map)?" is not accessible'):
        unchecked(code)(x=1)


def test_userstring_format_is_blocked() -> None:
    """format on a str look-alike (collections.UserString) is blocked too."""
    code = (
        "import collections\n\ndef tool(x=None):\n"
        "    return collections.UserString('{0.__class__}').format(x)\n"
    )
    with pytest.raises(PolicyError, match=r"walks into \.__class__"):
        load_restricted(make_spec(), code)
    with pytest.raises(ToolExecutionError, match='"format" is not accessible'):
        unchecked(code)(x=1)


def test_string_formatter_is_withheld() -> None:
    """string.Formatter cannot be imported from the restricted runtime."""
    code = "from string import Formatter\n\ndef tool(x=None):\n    return 1\n"
    with pytest.raises(PolicyError, match=r"does not offer string\.Formatter"):
        load_restricted(make_spec(), code)
    with pytest.raises(ToolExecutionError, match=r"string\.Formatter is not available"):
        unchecked(code)


def test_module_objects_cannot_be_modified() -> None:
    """Assigning to an imported module's attribute fails and leaves the host's module intact."""
    code = "import json\n\ndef tool(x=None):\n    json.loads = None\n    return 1\n"
    with pytest.raises(ToolExecutionError, match="TypeError"):
        load_restricted(make_spec(), code)()
    assert json.loads("[1]") == [1]


def test_decimal_context_is_withheld() -> None:
    """decimal.getcontext is unavailable, so a tool cannot change the host's decimal context."""
    code = "import decimal\n\ndef tool(x=None):\n    decimal.getcontext().prec = 1\n    return 1\n"
    with pytest.raises(PolicyError, match=r"does not offer decimal\.getcontext"):
        load_restricted(make_spec(), code)
    with pytest.raises(ToolExecutionError, match=r"decimal\.getcontext is not available"):
        unchecked(code)()


@pytest.mark.parametrize(
    "body",
    [
        "    while True:\n        pass\n",
        "    n = 0\n    for i in range(10 ** 12):\n        n = n + i\n",
        "    return sum(1 for i in iter(int, 1))\n",
        "    while True:\n        try:\n            while True:\n                pass\n"
        "        except BaseException:\n            pass\n",
        "    def spin():\n        try:\n            spin()\n        except BaseException:\n"
        "            spin()\n    spin()\n",
    ],
    ids=["while", "for", "generator", "catching the timeout", "recursive catch"],
)
def test_runaway_loops_time_out(body: str) -> None:
    """Loops, generators and timeout-swallowing code are stopped with ToolTimeoutError."""
    tool = load_restricted(make_spec(), "def tool(x=None):\n" + body, timeout_s=0.2)
    with pytest.raises(ToolTimeoutError, match=r"did not finish within 0.2 s"):
        tool()


# Loops that run inside one C call: no planted tick is reached and the GIL is never released, so
# a regression freezes the whole process. Each runs in a child process, killed if it hangs.
C_LEVEL_LOOPS = {
    "iter(callable, sentinel)": "    return any(iter(int, 1))\n",
    "sum over a huge range": "    return sum(range(10 ** 18))\n",
    "reversed huge range": "    return max(reversed(range(10 ** 18)))\n",
    "float in a huge range": "    return 1.5 in range(10 ** 18)\n",
    "itertools.product": (
        "    import itertools\n    return max(itertools.product(range(10), repeat=30))\n"
    ),
    "itertools.permutations": (
        "    import itertools\n    return max(itertools.permutations(range(30)))\n"
    ),
    "Counter.elements": (
        "    import collections\n    return sum(collections.Counter({1: 10 ** 18}).elements())\n"
    ),
    "lambda called from C": (
        "    seen = [0]\n    return any(map(lambda v: seen.append(v), seen))\n"
    ),
}

_HANG_PROBE = """
import sys
from toolsmith.errors import ToolsmithError
from toolsmith.runtimes.restricted import load_restricted
from toolsmith.spec import ToolSpec

spec = ToolSpec.parse({"name": "tool", "description": "d", "returns": {},
                       "parameters": {"type": "object", "properties": {}}})
try:
    load_restricted(spec, sys.argv[1], timeout_s=0.3)()
except ToolsmithError as e:
    print(type(e).__name__, e)
else:
    print("returned")
"""


def _call_in_a_child(code: str) -> str:
    """What calling ``code``'s tool (0.3 s deadline) gives, in a child process that a regression
    would freeze: it is killed after 30 s."""
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _HANG_PROBE, code],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the call froze its process past the deadline")
    return proc.stdout + proc.stderr


@pytest.mark.parametrize("body", C_LEVEL_LOOPS.values(), ids=C_LEVEL_LOOPS.keys())
def test_loops_inside_one_c_call_still_stop_at_the_deadline(body: str) -> None:
    """Endless or astronomically long C-level iteration is fed through ticking code."""
    outcome = _call_in_a_child("def tool():\n" + body)
    assert outcome.startswith("ToolTimeoutError"), outcome


@pytest.mark.parametrize(
    "expression",
    [
        "10 ** 10 ** 9",
        "pow(7, 10 ** 9)",
        "1 << 10 ** 12",
        "math.factorial(10 ** 8)",
        "math.comb(10 ** 9, 10 ** 8)",
        "operator.pow(3, 10 ** 9)",
    ],
)
def test_single_huge_integer_operations_are_refused(expression: str) -> None:
    """Big-number operations that would take minutes inside one C call are refused up front."""
    code = f"import math\nimport operator\n\ndef tool():\n    return {expression}\n"
    outcome = _call_in_a_child(code)
    assert outcome.startswith("ToolExecutionError") and "bits" in outcome, outcome


@pytest.mark.parametrize(
    "call",
    [
        "re.compile('a+', 128)",
        "re.search('a', 'a', re.RegexFlag(128))",
        "re.sub('a', 'b', 'a', flags=128)",
    ],
)
def test_re_debug_cannot_print_to_the_host(call: str, capsys: pytest.CaptureFixture[str]) -> None:
    """re.DEBUG prints the parsed pattern to the host's stdout (an MCP server's channel)."""
    code = f"import re\n\ndef tool(x=None):\n    {call}\n    return 1\n"
    with pytest.raises(ToolExecutionError, match=r"re\.DEBUG is not available"):
        load_restricted(make_spec(), code)()
    assert capsys.readouterr().out == ""


def test_long_ranges_still_act_like_ranges() -> None:
    """A range too long for C loops still has len, indexing, slicing, membership and equality."""
    code = (
        "def tool(x=None):\n    r = range(0, 10 ** 18, 3)\n"
        "    return [len(r), r[5], r[-1], 9 in r, 10 in r, r.index(12), r.count(3),\n"
        "            len(r[::2]), r == range(0, 10 ** 18, 3), r.start, r.stop, r.step,\n"
        "            list(r[:4]), list(reversed(r[:3])), bool(r), repr(r)]\n"
    )
    r = range(0, 10**18, 3)
    expected = [len(r), 15, r[-1], True, False, 4, 1, len(r[::2]), True, 0, 10**18, 3]
    expected += [[0, 3, 6, 9], [6, 3, 0], True, repr(r)]
    assert load_restricted(make_spec(), code)() == expected


def test_host_finalizers_never_run_on_the_tools_stack() -> None:
    """Collecting the host's cyclic garbage inside a tool that recursed to the limit would run
    host __del__ methods with no stack left (they fail, "Exception ignored"); collection waits
    until the call is over."""
    depths: list[int] = []

    class HostObject:
        def __del__(self) -> None:
            depths.append(len(inspect.stack(0)))

    spin = (
        "def tool(x=None):\n    def spin():\n        try:\n            spin()\n"
        "        except BaseException:\n            spin()\n    spin()\n"
    )
    tool = load_restricted(make_spec(), spin, timeout_s=0.3)
    here = len(inspect.stack(0))
    threshold = gc.get_threshold()
    gc.collect()
    gc.set_threshold(1_000_000)
    try:
        for _ in range(50):
            cycle = [HostObject()]
            cycle.append(cycle)  # type: ignore[arg-type]
        del cycle
        gc.set_threshold(gc.get_count()[0] + 2000)  # due a little way into the call
        with pytest.raises(ToolTimeoutError):
            tool()
    finally:
        gc.set_threshold(*threshold)
    gc.collect()
    assert len(depths) == 50, "host finalizers failed inside the tool's call"
    assert max(depths) < here + 50, (here, max(depths))


def test_timed_out_tool_stays_usable() -> None:
    """After a timeout the next call gets a fresh deadline."""
    code = "def tool(x=0):\n    n = 0\n    while n < x:\n        n = n + 1\n    return n\n"
    tool = load_restricted(make_spec(), code, timeout_s=0.2)
    with pytest.raises(ToolTimeoutError):
        tool(x=10**12)
    assert tool(x=3) == 3


def test_runaway_module_body_times_out() -> None:
    """Top-level code that never ends is stopped at load time."""
    code = "while True:\n    pass\n\ndef tool(x=None):\n    return 1\n"
    with pytest.raises(ToolTimeoutError, match="its module body did not finish"):
        load_restricted(make_spec(), code, timeout_s=0.2)


def test_infinite_recursion_is_a_clean_execution_error() -> None:
    """Unbounded recursion is reported as ToolExecutionError, not a crash."""
    code = "def tool(x=None):\n    return tool(x)\n"
    with pytest.raises(ToolExecutionError, match="recursed too deep"):
        load_restricted(make_spec(), code)()


def test_swallowed_deadline_still_reads_as_timeout() -> None:
    """A tool that catches the deadline and raises its own exception is still timed out."""
    code = (
        "def tool(x=None):\n    try:\n        while True:\n            pass\n"
        "    except BaseException:\n        raise ValueError('not a timeout')\n"
    )
    spec = make_spec(raises=["ValueError"])
    with pytest.raises(ToolTimeoutError, match="did not finish"):
        load_restricted(spec, code, timeout_s=0.2)()


@pytest.mark.parametrize(
    "code",
    [
        "def tool(x=None):\n    return tool(x)\n",
        "def tool(x=None):\n    try:\n        return tool(x)\n"
        "    except RecursionError:\n        return tool(x)\n",
    ],
    ids=["plain", "catching its own overflow"],
)
def test_runtime_errors_carry_no_exception_chain(code: str) -> None:
    """The tool's exceptions (a chain up to ~1000 deep when it catches its own overflow) stay
    inside the runtime: the caller's error has no context to walk."""
    with pytest.raises((ToolExecutionError, ToolTimeoutError)) as info:
        load_restricted(make_spec(), code, timeout_s=0.5)()
    assert info.value.__context__ is None
    assert info.value.__cause__ is None


def test_an_unprintable_exception_is_still_an_execution_error() -> None:
    """str() of the tool's exception may fail (a 5000-digit int): the caller still gets a
    ToolExecutionError naming the type."""
    code = "def tool(x=None):\n    raise ValueError(10 ** 5000)\n"
    with pytest.raises(ToolExecutionError, match="raised ValueError: <unprintable ValueError>"):
        load_restricted(make_spec(), code)()


def test_long_exception_messages_are_cut() -> None:
    """A tool's exception message is cut to a few thousand characters."""
    code = "def tool(x=None):\n    raise ValueError('x' * 10 ** 6)\n"
    with pytest.raises(ToolExecutionError) as info:
        load_restricted(make_spec(), code)()
    assert 4000 < len(str(info.value)) < 5000


def test_printing_the_exception_runs_under_the_deadline() -> None:
    """str() of an exception can run the tool's code (a Counter subclass's most_common, via
    Counter.__repr__); it does so before the deadline is lifted, so it cannot loop forever."""
    code = (
        "import collections\n\nclass Loud(collections.Counter):\n"
        "    def most_common(self, n=None):\n        while True:\n            pass\n\n"
        "def tool():\n    raise ValueError(Loud(a=1))\n"
    )
    outcome = _call_in_a_child(code)
    assert outcome.startswith(("ToolTimeoutError", "ToolExecutionError")), outcome


def test_huge_output_is_refused() -> None:
    """A result larger than max_output_bytes as JSON is an execution error."""
    code = "def tool(x=None):\n    return ['x' * 1000 for i in range(100)]\n"
    tool = load_restricted(make_spec(), code, max_output_bytes=50_000)
    with pytest.raises(ToolExecutionError, match="the limit is 50000"):
        tool()


def test_results_cross_as_plain_json() -> None:
    """A result of the tool's own dict subclass comes back as a plain dict, under the deadline."""
    code = (
        "class Sneaky(dict):\n    def items(self):\n        while True:\n            pass\n\n"
        "def tool(x=None):\n    return Sneaky(a=1)\n"
    )
    with pytest.raises(ToolTimeoutError):
        load_restricted(make_spec(), code, timeout_s=0.2)()
    code = "class Plain(dict):\n    pass\n\ndef tool(x=None):\n    return Plain(a=[1])\n"
    result = load_restricted(make_spec(), code)()
    assert type(result) is dict
    assert result == {"a": [1]}


def test_printing_is_bounded() -> None:
    """print collects into a bounded buffer, so printing without end is an error, not a leak."""
    code = "def tool(x=None):\n    while True:\n        print('x' * 1000)\n    return printed\n"
    tool = load_restricted(make_spec(), code, max_output_bytes=10_000)
    with pytest.raises(ToolExecutionError, match="printed output exceeds 10000"):
        tool()


def test_runtime_refuses_nonsense_limits() -> None:
    """Limits must be positive."""
    with pytest.raises(ValueError, match="must be positive"):
        RestrictedRuntime(timeout_s=0)


SCHEMAS: list[dict[str, Any]] = [
    {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
    {
        "type": "object",
        "properties": {"s": {"type": "string", "minLength": 1, "pattern": "^[a-z]+$"}},
        "additionalProperties": False,
    },
    {"type": "array", "items": {"type": ["number", "null"], "minimum": 0}, "maxItems": 3},
    {"type": "string", "enum": ["a", "b"]},
    {"type": "object", "additionalProperties": {"type": "boolean"}},
]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["a", "s", "t"]), inner, max_size=3)
    ),
    max_leaves=8,
)


@pytest.mark.parametrize("schema", SCHEMAS)
@given(instance=JSON)
def test_fast_validator_agrees_with_jsonschema(schema: dict[str, Any], instance: Any) -> None:
    """The fast validity check gives jsonschema's verdict on every instance."""
    fast = fast_validator(schema)
    assert fast is not None
    assert fast(instance) == jsonschema.Draft202012Validator(schema).is_valid(instance)


def test_fast_validator_declines_unknown_keywords() -> None:
    """Schemas outside the supported subset fall back to jsonschema."""
    assert fast_validator({"type": "object", "oneOf": [{"required": ["a"]}]}) is None
