"""The restricted runtime: RestrictedPython in-process, the fast path for pure tools.

Only tools that ``analysis.analyze`` marks ``restricted_eligible`` load here: no capabilities, no
findings, stdlib imports from ``RESTRICTED_MODULES`` only. The code is compiled by a
RestrictedPython transformer that also plants a deadline check (``_tick_``) at the top of every
loop body, function body and comprehension, and runs against guards that refuse private and
introspective attributes, module objects other than allowlisted ones, ``str.format``-style
attribute walks, and writes to anything but plain containers and the tool's own objects.

Loops inside one C call (``sum``, ``any``, ``max`` over an iterator) reach no tick and never
release the GIL, so what could feed them for long iterates through ticking code instead:
``iter(callable, sentinel)``, ranges over 100,000 items, itertools' combinatorics and
``Counter.elements``; lambdas tick when called. ``**``, ``<<``, ``pow`` and ``math.factorial``/
``comb``/``perm`` refuse an exact result of over 2**22 bits up front.

Limits, by design: this is a fast path, not the security boundary (RestrictedPython has been
escaped before; the Docker sandbox is the boundary). The time bound is cooperative, so other work
done inside one C call is not interrupted: a catastrophic regex, multiplying integers already made
huge (``int.from_bytes`` of a long buffer), ``"x" * 10 ** 10``, big numbers made inside the stdlib
(``Fraction("1e99999999")``), a C loop over a list that grows as it goes (it ends when memory runs
out). Stdlib code written in Python (``difflib`` on long inputs) does not tick either. Memory is not
bounded beyond what the deadline gives. Arguments are passed as they are, not copied.
"""

from __future__ import annotations

import ast
import builtins as builtins_module
import gc
import importlib
import itertools
import json
import math
import operator
import re
import statistics
import threading
import time
from abc import ABCMeta
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from fractions import Fraction
from types import CodeType, ModuleType
from typing import Any, NamedTuple, cast

from RestrictedPython import compile_restricted_exec, safe_builtins
from RestrictedPython.Guards import (
    full_write_guard,
    guarded_iter_unpack_sequence,
    guarded_unpack_sequence,
)
from RestrictedPython.PrintCollector import PrintCollector
from RestrictedPython.transformer import INSPECT_ATTRIBUTES, RestrictingNodeTransformer

from toolsmith.analysis import RESTRICTED_MODULES, RESTRICTED_NAMES, analyze
from toolsmith.errors import (
    PolicyError,
    ToolCallError,
    ToolExecutionError,
    ToolRaisedError,
    ToolTimeoutError,
)
from toolsmith.log import get_logger
from toolsmith.spec import ToolSpec
from toolsmith.validation import Contract

log = get_logger(__name__)

# Attribute names refused on every object: frame and code access, and the formatting methods
# whose replacement fields walk attributes (``"{0.__class__}".format(x)``) outside any guard.
_BLOCKED_ATTRS = INSPECT_ATTRIBUTES | frozenset(
    {"format", "format_map", "vformat", "get_field", "get_value", "mro"}
)

# Builtins offered beyond RestrictedPython's ``safe_builtins``. The C-level iterating ones are
# left out upstream because Zope's ``_getiter_`` does security checks; ours only keeps time, and
# the planted ticks do that. Real ``list``/``tuple`` (and per-tool ``range``/``iter``, see
# ``_Ticker``) replace the ``limited_builtins`` versions (1000-element ranges, no ``list("abc")``).
_EXTRA_BUILTINS: dict[str, Any] = {
    "all": all,
    "any": any,
    "bytes": bytes,
    "classmethod": classmethod,
    "dict": dict,
    "enumerate": enumerate,
    "filter": filter,
    "format": format,
    "frozenset": frozenset,
    "list": list,
    "map": map,
    "max": max,
    "min": min,
    "next": next,
    "property": property,
    "reversed": reversed,
    "set": set,
    "sorted": sorted,
    "staticmethod": staticmethod,
    "sum": sum,
    "tuple": tuple,
    "zip": zip,
}
# Exceptions whose meaning to the host is "stop the process", not "the tool failed".
_WITHHELD_BUILTINS = frozenset({"SystemExit", "KeyboardInterrupt", "GeneratorExit"})
# Every other builtin exception class, so ``except RecursionError:`` works as in plain Python;
# exception groups stay out with ``except*``.
_EXCEPTIONS: dict[str, Any] = {
    name: value
    for name, value in vars(builtins_module).items()
    if isinstance(value, type)
    and issubclass(value, BaseException)
    and not issubclass(value, BaseExceptionGroup)
    and name not in _WITHHELD_BUILTINS
}

_INPLACE_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "+=": operator.iadd,
    "-=": operator.isub,
    "*=": operator.imul,
    "/=": operator.itruediv,
    "//=": operator.ifloordiv,
    "%=": operator.imod,
    "**=": lambda a, b: _checked_pow(a, b, inplace=True),
    "<<=": lambda a, b: _checked_lshift(a, b, inplace=True),
    ">>=": operator.irshift,
    "&=": operator.iand,
    "|=": operator.ior,
    "^=": operator.ixor,
    "@=": operator.imatmul,
}
_PLAIN_CONTAINERS = (dict, list, set, bytearray)
_RAISE = object()
# Items a C loop (``sum``, ``any``, ``max`` ...) may take from a range without a deadline check:
# a few milliseconds' worth. Longer ranges hand their items out through ticking code.
_LONG_ITERATION = 100_000
# The largest integer, in bits, one operation may make: about 0.2 s inside one C call.
_MAX_INT_BITS = 1 << 22
_LOG2_E = 1 / math.log(2)
# How much of a tool's exception message reaches the caller.
_TEXT_LIMIT = 4000
# Position of the ``flags`` argument of the ``re`` functions: ``re.DEBUG`` prints the parsed
# pattern to the host's stdout (an MCP server's protocol channel), so it is refused.
_RE_FLAGS_AT = {
    "compile": 1,
    "search": 2,
    "match": 2,
    "fullmatch": 2,
    "findall": 2,
    "finditer": 2,
    "split": 3,
    "sub": 4,
    "subn": 4,
}


class _DeadlineExceeded(BaseException):
    """Raised by ``_tick_`` past the deadline; a BaseException so ``except Exception`` misses it."""


def _log2(x: Any) -> float:
    """log2 of the magnitude of an int or Fraction (the larger of its two parts); else 0."""
    if isinstance(x, Fraction):
        return max(_log2(x.numerator), _log2(x.denominator))
    if isinstance(x, int) and x:
        return math.log2(abs(x))
    return 0.0


def _integral(x: Any) -> int | None:
    if isinstance(x, int):
        return int(x)
    if isinstance(x, Fraction) and x.denominator == 1:
        return x.numerator
    return None


def _check_bits(bits: float, what: str) -> None:
    if bits > _MAX_INT_BITS:
        raise ValueError(
            f"{what} would make a number of about {bits:.3g} bits; the restricted runtime allows "
            f"{_MAX_INT_BITS} bits in one operation"
        )


def _pow(base: Any, exp: Any) -> Any:
    """``base ** exp`` as the tool wrote it; the common small cases skip the full check."""
    kind = type(exp)
    if kind is float or type(base) is float:
        return base**exp
    if kind is int and type(base) is int and (exp <= 0 or base.bit_length() * exp <= _MAX_INT_BITS):
        return base**exp
    return _checked_pow(base, exp)


def _checked_pow(base: Any, exp: Any, mod: Any = None, *, inplace: bool = False) -> Any:
    """``base ** exp``, refused up front when an exact result would be huge (minutes in C)."""
    n = _integral(exp)
    if mod is None and n is not None and n > 0:
        _check_bits(_log2(base) * n, "this power")
    if inplace:
        return operator.ipow(base, exp)
    return pow(base, exp) if mod is None else pow(base, exp, mod)


def _checked_lshift(value: Any, shift: Any, *, inplace: bool = False) -> Any:
    if isinstance(value, int) and value and isinstance(shift, int) and shift > 0:
        _check_bits(_log2(value) + shift, "this shift")
    return operator.ilshift(value, shift) if inplace else value << shift


def _lgamma_bits(*terms: tuple[int, int]) -> float:
    return sum(sign * math.lgamma(n + 1) for sign, n in terms) * _LOG2_E


def _checked_factorial(n: Any) -> int:
    if isinstance(n, int) and n > 0:
        _check_bits(_lgamma_bits((1, n)), "this factorial")
    return math.factorial(n)


def _checked_comb(n: Any, k: Any) -> int:
    if isinstance(n, int) and isinstance(k, int) and 0 <= k <= n:
        _check_bits(_lgamma_bits((1, n), (-1, k), (-1, n - k)), "this binomial coefficient")
    return math.comb(n, k)


def _checked_perm(n: Any, k: Any = None) -> int:
    if isinstance(n, int) and n > 0 and (k is None or (isinstance(k, int) and 0 <= k <= n)):
        _check_bits(_lgamma_bits((1, n), (-1, n - (n if k is None else k))), "this permutation")
    return math.perm(n, k)


def _without_re_debug(func: Callable[..., Any], at: int) -> Callable[..., Any]:
    def checked(*args: Any, **kwargs: Any) -> Any:
        flags = args[at] if len(args) > at else kwargs.get("flags", 0)
        if isinstance(flags, int) and flags & re.DEBUG:
            raise ValueError("re.DEBUG is not available in the restricted runtime")
        return func(*args, **kwargs)

    checked.__name__ = checked.__qualname__ = func.__name__
    checked.__doc__ = func.__doc__
    return checked


# Stand-ins for allowlisted names whose real version could work unboundedly inside one C call or
# write to the host's stdout. The itertools ones depend on the tool's deadline (``_Ticker``).
_STATIC_ADAPTERS: dict[str, dict[str, Any]] = {
    "math": {"factorial": _checked_factorial, "comb": _checked_comb, "perm": _checked_perm},
    "operator": {
        "pow": lambda a, b: _checked_pow(a, b),
        "ipow": lambda a, b: _checked_pow(a, b, inplace=True),
        "lshift": lambda a, b: _checked_lshift(a, b),
        "ilshift": lambda a, b: _checked_lshift(a, b, inplace=True),
    },
    "re": {name: _without_re_debug(getattr(re, name), at) for name, at in _RE_FLAGS_AT.items()},
}
_TICKING_ITERTOOLS = ("product", "permutations", "combinations", "combinations_with_replacement")


class _Ticker:
    """One tool's deadline check, and what makes long loops inside one C call reach it.

    ``sum``, ``any``, ``max``, ``sorted`` and friends loop in C: they never reach a planted tick
    and never release the GIL, so an endless or astronomically long iterator under them would
    freeze the whole process. Whatever hands out such iterators (``iter(callable, sentinel)``,
    long ranges, itertools' combinatorics, ``Counter.elements``) goes through ``iterate``.
    """

    __slots__ = ("tick",)

    def __init__(self, clock: _Clock) -> None:
        monotonic = time.monotonic

        def tick() -> bool:  # a closure over locals: it runs on every loop turn and call
            if monotonic() > clock.deadline:
                clock.expired = True
                raise _DeadlineExceeded
            return True

        self.tick = tick

    def iterate(self, iterable: Iterable[Any]) -> Iterator[Any]:
        """The items of ``iterable`` through Python code that checks the deadline now and then."""
        n = 0
        for item in iterable:
            n += 1
            if n == 1024:
                n = 0
                self.tick()
            yield item

    def iter(self, obj: Any, *sentinel: Any) -> Iterator[Any]:
        """``iter``; the two-argument form (endless while the callable misses the sentinel)
        iterates ticking."""
        if not sentinel:
            return iter(obj)
        return self.iterate(iter(obj, *sentinel))

    def range(self, *args: Any) -> range | _LongRange:
        whole = range(*args)
        try:
            short = len(whole) <= _LONG_ITERATION
        except OverflowError:
            short = False
        return whole if short else _LongRange(whole, self)

    def ticking(self, make: Callable[..., Iterable[Any]]) -> Callable[..., Iterator[Any]]:
        def ticking(*args: Any, **kwargs: Any) -> Iterator[Any]:
            return self.iterate(make(*args, **kwargs))

        ticking.__name__ = ticking.__qualname__ = getattr(make, "__name__", "ticking")
        ticking.__doc__ = make.__doc__
        return ticking

    def adapters(self) -> dict[str, dict[str, Any]]:
        ticking = {name: self.ticking(getattr(itertools, name)) for name in _TICKING_ITERTOOLS}
        return {**_STATIC_ADAPTERS, "itertools": ticking}

    def getattr(self) -> Callable[..., Any]:
        """The attribute guard: no private, introspective or module-valued attributes, no ABC
        registration (process-wide), and ``Counter.elements`` iterating ticking."""
        iterate = self.iterate

        def guarded_getattr(ob: Any, name: str, default: Any = _RAISE) -> Any:
            if type(name) is not str:
                raise TypeError("attribute name must be a str")
            if (
                name[:1] == "_"
                or name in _BLOCKED_ATTRS
                or (name == "register" and isinstance(ob, ABCMeta))
            ):
                raise AttributeError(f'"{name}" is not accessible in the restricted runtime')
            value = getattr(ob, name) if default is _RAISE else getattr(ob, name, default)
            if isinstance(value, ModuleType):
                raise AttributeError(f'"{name}" is a module; import it instead, if it is allowed')
            if name == "elements":
                if value is Counter.elements:
                    return lambda counter: iterate(Counter.elements(counter))
                if getattr(value, "__func__", None) is Counter.elements:
                    return lambda: iterate(value())
            return value

        return guarded_getattr


class _LongRange:
    """A range too long to hand to a C loop: iterating it ticks; otherwise it acts as the range
    does (len, indexing, slicing, ``in``, ``index``, ``count``, equality, start/stop/step)."""

    __slots__ = ("_range", "_ticker")

    def __init__(self, whole: range, ticker: _Ticker) -> None:
        self._range = whole
        self._ticker = ticker

    start = property(lambda self: self._range.start)
    stop = property(lambda self: self._range.stop)
    step = property(lambda self: self._range.step)

    def __iter__(self) -> Iterator[int]:
        return self._ticker.iterate(self._range)

    def __reversed__(self) -> Iterator[int]:
        return self._ticker.iterate(reversed(self._range))

    def __len__(self) -> int:
        return len(self._range)

    def __bool__(self) -> bool:
        return bool(self._range)

    def __getitem__(self, key: Any) -> Any:
        item = self._range[key]
        return self._ticker.range(item.start, item.stop, item.step) if type(item) is range else item

    def __contains__(self, value: Any) -> bool:
        if type(value) in (int, bool):
            return value in self._range  # constant time; anything else is compared item by item
        return any(item == value for item in self)

    def index(self, value: Any) -> int:
        if type(value) in (int, bool):
            return self._range.index(value)
        for i, item in enumerate(self):
            if item == value:
                return i
        raise ValueError(f"{value!r} is not in range")

    def count(self, value: Any) -> int:
        if type(value) in (int, bool):
            return self._range.count(value)
        return sum(1 for item in self if item == value)

    def __eq__(self, other: object) -> bool:
        return self._range == (other._range if isinstance(other, _LongRange) else other)

    def __hash__(self) -> int:
        return hash(self._range)

    def __repr__(self) -> str:
        return repr(self._range)


def _apply(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return func(*args, **kwargs)


def _inplacevar(op: str, target: Any, value: Any) -> Any:
    return _INPLACE_OPS[op](target, value)


class _ModuleView:
    """What a tool sees of an allowlisted module: its vetted names (``RESTRICTED_NAMES``) and
    allowlisted submodules, nothing else.

    ``from m import x`` reads attributes without ``_getattr_``, so the view enforces the same
    rules itself. A view of a package that is not itself allowed (``urllib`` for
    ``urllib.parse``) passes through to allowlisted submodules only.
    """

    def __init__(self, module: ModuleType, views: _Views) -> None:
        self.__module = module
        self.__views = views
        self.__allowed = RESTRICTED_NAMES.get(module.__name__, frozenset())
        self.__adapters = views.adapters.get(module.__name__, {})

    def __getattr__(self, name: str) -> Any:
        qualified = f"{self.__module.__name__}.{name}"
        if name not in self.__allowed and qualified not in RESTRICTED_MODULES:
            if isinstance(getattr(self.__module, name, None), ModuleType):
                raise AttributeError(f"{qualified} is a module the restricted runtime withholds")
            raise AttributeError(f"{qualified} is not available in the restricted runtime")
        value = self.__adapters.get(name, _RAISE)
        if value is _RAISE:
            value = getattr(self.__module, name)
        if isinstance(value, ModuleType):
            if value.__name__ != qualified:
                raise AttributeError(f"{qualified} is a module the restricted runtime withholds")
            value = self.__views.get(qualified)
        self.__dict__[name] = value  # later lookups skip __getattr__
        return value

    def __repr__(self) -> str:
        return f"<restricted view of {self.__module.__name__}>"


class _Views:
    """One view per module per tool, so repeated imports inside a function stay cheap."""

    def __init__(self, adapters: dict[str, dict[str, Any]]) -> None:
        self.adapters = adapters
        self._views: dict[str, _ModuleView] = {}

    def get(self, name: str) -> _ModuleView:
        view = self._views.get(name)
        if view is None:
            view = self._views[name] = _ModuleView(importlib.import_module(name), self)
        return view

    def import_(
        self,
        name: str,
        globals: Mapping[str, Any] | None = None,
        locals: Mapping[str, Any] | None = None,
        fromlist: tuple[str, ...] | None = (),
        level: int = 0,
    ) -> _ModuleView:
        if level:
            raise ImportError("relative imports are not available in the restricted runtime")
        wanted = [name] if name in RESTRICTED_MODULES else [f"{name}.{f}" for f in fromlist or ()]
        if not wanted or any(w not in RESTRICTED_MODULES for w in wanted):
            allowed = ", ".join(sorted(RESTRICTED_MODULES))
            raise ImportError(
                f"module {name!r} is not available in the restricted runtime (allowed: {allowed})"
            )
        for module in wanted:
            importlib.import_module(module)
        view = self.get(name if fromlist else name.split(".")[0])
        for item in fromlist or ():
            # Checked here for a clear message; ``from m import x`` would only say "cannot import".
            try:
                getattr(view, item)
            except AttributeError as e:
                raise ImportError(str(e)) from None
        return view


class _TickingTransformer(RestrictingNodeTransformer):
    """RestrictedPython's transformer, plus a ``_tick_()`` wherever code can go round again."""

    def visit_For(self, node: ast.For) -> Any:
        new = cast(ast.For, super().visit_For(node))
        new.body.insert(0, _tick_statement(new))
        return new

    def visit_While(self, node: ast.While) -> Any:
        new = cast(ast.While, super().visit_While(node))
        new.body.insert(0, _tick_statement(new))
        return new

    def visit_FunctionDef(self, node: ast.FunctionDef) -> Any:
        new = cast(ast.FunctionDef, super().visit_FunctionDef(node))
        new.body.insert(0, _tick_statement(new))
        return new

    def visit_comprehension(self, node: ast.comprehension) -> Any:
        new = cast(ast.comprehension, super().visit_comprehension(node))
        call = ast.Call(func=ast.Name("_tick_", ast.Load()), args=[], keywords=[])
        new.ifs.append(ast.fix_missing_locations(ast.copy_location(call, new.iter)))
        return new

    def visit_Lambda(self, node: ast.Lambda) -> Any:
        """``lambda: body`` becomes ``lambda: _tick_() and body``: C loops call lambdas too."""
        new = cast(ast.Lambda, super().visit_Lambda(node))
        call = ast.copy_location(
            ast.Call(func=ast.Name("_tick_", ast.Load()), args=[], keywords=[]), new.body
        )
        body = ast.copy_location(ast.BoolOp(op=ast.And(), values=[call, new.body]), new.body)
        new.body = ast.fix_missing_locations(body)
        return new

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        """``a ** b`` and ``a << b`` go through checks that refuse a huge exact result."""
        new = super().visit_BinOp(node)
        if isinstance(new, ast.BinOp) and isinstance(new.op, ast.Pow | ast.LShift):
            name = "_pow_" if isinstance(new.op, ast.Pow) else "_lshift_"
            call = ast.Call(
                func=ast.Name(name, ast.Load()), args=[new.left, new.right], keywords=[]
            )
            return ast.fix_missing_locations(ast.copy_location(call, new))
        return new


def _tick_statement(node: ast.stmt) -> ast.stmt:
    call = ast.Call(func=ast.Name("_tick_", ast.Load()), args=[], keywords=[])
    return ast.fix_missing_locations(ast.copy_location(ast.Expr(call), node))


class _Clock(threading.local):
    deadline: float = float("inf")
    expired: bool = False


class RestrictedTool:
    """A loaded tool: call it with keyword arguments; errors come out as ``ToolCallError``s."""

    runtime = "restricted"

    def __init__(
        self, spec: ToolSpec, code: CodeType, *, timeout_s: float, max_output_bytes: int
    ) -> None:
        self.spec = spec
        self.timeout_s = timeout_s
        self.max_output_bytes = max_output_bytes
        self.contract = Contract(spec)
        self._clock = _Clock()
        self._module_name = f"toolsmith.restricted.{spec.name}"
        namespace = self._namespace()
        self._run(lambda: exec(code, namespace), "its module body")
        func = namespace.get(spec.name)
        if not callable(func):
            raise PolicyError(
                f"{spec.name}: the module defines no function {spec.name}()",
                hint=f"define a top-level function named {spec.name}",
            )
        self._func: Callable[..., Any] = func

    def __call__(self, /, **kwargs: Any) -> Any:
        kwargs = self.contract.check_args(kwargs)
        result = self.invoke(kwargs)
        self.contract.check_result(result)
        return result

    def invoke(self, args: dict[str, Any]) -> Any:
        """Call the tool with already-validated arguments; the result comes back as plain JSON."""
        return self._run(lambda: self._as_json(self._func(**args)), "the call")

    def __repr__(self) -> str:
        return f"<RestrictedTool {self.spec.name}>"

    def _run(self, thunk: Callable[[], Any], what: str) -> Any:
        clock = self._clock
        clock.expired = False
        clock.deadline = time.monotonic() + self.timeout_s
        name = self.spec.name
        error: BaseException | None = None
        message = ""
        # No cyclic collection during the call: it would run the host's finalizers on the tool's
        # stack, which a tool recursing to the limit leaves without room (they fail "ignored").
        collecting = gc.isenabled()
        gc.disable()
        try:
            result = thunk()
        except (KeyboardInterrupt, ToolCallError):
            raise  # a ToolCallError comes from this runtime (result or print checks), not the tool
        except BaseException as e:
            error = e
            message = _safe_str(e)  # under the deadline still: str() may run the tool's code
        finally:
            clock.deadline = float("inf")
            if collecting:
                gc.enable()
        # Past the deadline the verdict is a timeout whatever escaped: the tool may have caught
        # the deadline and raised something else. The errors are raised outside the handler so
        # they carry no context chain (a tool that catches its own overflow builds one ~1000 deep).
        if clock.expired:
            raise ToolTimeoutError(
                f"{name}: {what} did not finish within {self.timeout_s:g} s",
                hint="make the tool faster or raise its timeout",
            )
        if isinstance(error, RecursionError):
            raise ToolExecutionError(
                f"{name}: {what} recursed too deep", hint="bound the recursion or use a loop"
            )
        if error is not None:
            raise self._map_exception(error, message, what)
        return result

    def _map_exception(self, error: BaseException, message: str, what: str) -> Exception:
        for cls in type(error).__mro__:
            if cls.__name__ in self.spec.raises:
                return ToolRaisedError(cls.__name__, message)
        declared = ", ".join(self.spec.raises) or "none"
        return ToolExecutionError(
            f"{self.spec.name}: {what} raised {type(error).__name__}: {message} "
            f"(declared exceptions: {declared})",
            hint="fix the tool, or declare the exception in the spec's raises if it is bad input",
        )

    def _as_json(self, result: Any) -> Any:
        """The result as plain JSON data, size-checked: what crosses back to the caller.

        Runs under the deadline, because encoding a tool's dict or list subclass calls the
        tool's own methods. The plain copy means no tool code runs after the call returns.
        """
        kind = type(result)
        if result is None or kind is bool or (kind in (int, float) and abs(result) < 10**15):
            return result
        if kind is str and 6 * len(result) + 2 <= self.max_output_bytes:
            return result  # \u00XX escapes are the longest a character gets
        name = self.spec.name
        try:
            text = json.dumps(result, ensure_ascii=False)
        except (TypeError, ValueError) as e:
            raise ToolExecutionError(
                f"{name}: the result is not JSON data ({type(e).__name__}: {e})",
                hint="return JSON-compatible values (dict, list, str, int, float, bool, None)",
            ) from None
        size = len(text.encode())
        if size > self.max_output_bytes:
            raise ToolExecutionError(
                f"{name}: the result is {size} bytes of JSON; the limit is {self.max_output_bytes}",
                hint="return less data or raise max_output_bytes",
            )
        return json.loads(text)

    def _namespace(self) -> dict[str, Any]:
        ticker = _Ticker(self._clock)
        module_name = self._module_name
        limit = self.max_output_bytes
        guarded_getattr = ticker.getattr()

        def guarded_hasattr(ob: Any, name: str) -> bool:
            try:
                guarded_getattr(ob, name)
            except AttributeError:
                return False
            return True

        def write_guard(ob: Any) -> Any:
            # Plain containers and the tool's own classes and instances may be written to;
            # anything else (stdlib objects, module views) gets RestrictedPython's refusing proxy.
            if isinstance(ob, _PLAIN_CONTAINERS) or type(ob).__module__ == module_name:
                return ob
            if isinstance(ob, type) and ob.__module__ == module_name:
                return ob
            return full_write_guard(ob)

        def print_collector(_getattr_: Any = None) -> PrintCollector:
            return _BoundedPrintCollector(limit, _getattr_)

        builtins = {k: v for k, v in safe_builtins.items() if k not in _WITHHELD_BUILTINS}
        builtins |= _EXTRA_BUILTINS | _EXCEPTIONS
        builtins |= {
            "getattr": guarded_getattr,
            "hasattr": guarded_hasattr,
            "iter": ticker.iter,
            "range": ticker.range,
            "pow": _checked_pow,
            "__import__": _Views(ticker.adapters()).import_,
        }
        return {
            "__builtins__": builtins,
            "__name__": module_name,
            "__metaclass__": type,
            "_getattr_": guarded_getattr,
            "_getitem_": operator.getitem,
            "_getiter_": iter,
            "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
            "_unpack_sequence_": guarded_unpack_sequence,
            "_write_": write_guard,
            "_inplacevar_": _inplacevar,
            "_apply_": _apply,
            "_print_": print_collector,
            "_tick_": ticker.tick,
            "_pow_": _pow,
            "_lshift_": _checked_lshift,
        }


def _safe_str(error: BaseException) -> str:
    """``str(error)``, cut to ``_TEXT_LIMIT``; a placeholder if that fails (a 5000-digit int,
    the deadline)."""
    try:
        text = str(error)
    except BaseException:
        return f"<unprintable {type(error).__name__}>"
    return text if len(text) <= _TEXT_LIMIT else text[:_TEXT_LIMIT] + " ... (cut)"


class _BoundedPrintCollector(PrintCollector):
    """``print`` inside a tool collects into ``printed``; keep that from growing without end."""

    def __init__(self, limit: int, _getattr_: Any = None) -> None:
        super().__init__(_getattr_)
        self.limit = limit
        self.size = 0

    def write(self, text: str) -> None:
        self.size += len(text)
        if self.size > self.limit:
            raise ToolExecutionError(f"printed output exceeds {self.limit} characters")
        self.txt.append(text)


def restricted_refusal(spec: ToolSpec, code: str) -> str | None:
    """Why ``code`` may not run in the restricted runtime, or None if it may."""
    if spec.dependencies:
        return (
            f"it depends on third-party packages ({', '.join(spec.dependencies)}), and the "
            "restricted runtime runs the standard library alone, in this process"
        )
    if not spec.is_pure:
        return (
            f"its spec declares capabilities ({', '.join(spec.capabilities)}); only pure tools may"
        )
    report = analyze(code, spec)
    if report.restricted_eligible:
        return None
    reasons = "; ".join(f.message for f in report.findings[:5])
    return "its code is not eligible: " + (reasons or "policy checks failed")


class RestrictedRuntime:
    """Loads eligible tools into the restricted runtime with the given limits."""

    def __init__(self, *, timeout_s: float = 2.0, max_output_bytes: int = 1_000_000) -> None:
        if timeout_s <= 0 or max_output_bytes <= 0:
            raise ValueError("timeout_s and max_output_bytes must be positive")
        self.timeout_s = timeout_s
        self.max_output_bytes = max_output_bytes

    def load(self, spec: ToolSpec, code: str) -> RestrictedTool:
        """Check eligibility, compile and run the module body; refuse with the reason otherwise."""
        reason = restricted_refusal(spec, code)
        if reason is not None:
            raise PolicyError(
                f"{spec.name} cannot run in the restricted runtime: {reason}",
                hint="run it in the docker runtime, which every tool may use",
            )
        compiled = compile_restricted_exec(
            code, filename=f"<tool {spec.name}>", policy=_TickingTransformer
        )
        if compiled.code is None:
            raise PolicyError(
                f"{spec.name} does not compile for the restricted runtime: "
                + "; ".join(compiled.errors),
                hint="run it in the docker runtime",
            )
        log.debug("restricted tool loaded", tool=spec.name)
        return RestrictedTool(
            spec,
            compiled.code,
            timeout_s=self.timeout_s,
            max_output_bytes=self.max_output_bytes,
        )


def load_restricted(
    spec: ToolSpec, code: str, *, timeout_s: float = 2.0, max_output_bytes: int = 1_000_000
) -> RestrictedTool:
    """Load ``code`` for ``spec`` into the restricted runtime (see ``RestrictedRuntime``)."""
    runtime = RestrictedRuntime(timeout_s=timeout_s, max_output_bytes=max_output_bytes)
    return runtime.load(spec, code)


class Overhead(NamedTuple):
    """Per-call timings in microseconds: the plain function (the floor) and the restricted tool."""

    plain_p50_us: float
    plain_p99_us: float
    restricted_p50_us: float
    restricted_p99_us: float

    @property
    def overhead_p50_us(self) -> float:
        return self.restricted_p50_us - self.plain_p50_us


def measure_overhead(
    tool: RestrictedTool, plain: Callable[..., Any], args: Mapping[str, Any], *, calls: int = 5000
) -> Overhead:
    """Time ``plain(**args)`` and ``tool(**args)`` alternately in this process, for benchmarks."""
    plain_us: list[float] = []
    tool_us: list[float] = []
    clock = time.perf_counter_ns
    for _ in range(calls):
        start = clock()
        plain(**args)
        middle = clock()
        tool(**args)
        end = clock()
        plain_us.append((middle - start) / 1000)
        tool_us.append((end - middle) / 1000)

    def p99(samples: list[float]) -> float:
        return statistics.quantiles(samples, n=100)[98]

    return Overhead(
        statistics.median(plain_us), p99(plain_us), statistics.median(tool_us), p99(tool_us)
    )
