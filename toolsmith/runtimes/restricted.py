"""The restricted runtime: RestrictedPython in-process, the fast path for pure tools.

Only tools that ``policy.analyze`` marks ``restricted_eligible`` load here: no capabilities, no
findings, stdlib imports from ``RESTRICTED_MODULES`` only. The code is compiled by a
RestrictedPython transformer that also plants a deadline check (``_tick_``) at the top of every
loop body, function body and comprehension, and runs against guards that refuse private and
introspective attributes, module objects other than allowlisted ones, ``str.format``-style
attribute walks, and writes to anything but plain containers and the tool's own objects.

Limits, by design: this is a fast path, not the security boundary (RestrictedPython has been
escaped before; the Docker sandbox is the boundary). The time bound is cooperative, so work done
inside one C call (``10 ** 10 ** 8``, a catastrophic regex, ``"x" * 10 ** 9``) is not interrupted,
and memory is not bounded beyond what such a deadline gives. Arguments are passed as they are, not
copied.
"""

from __future__ import annotations

import ast
import builtins as builtins_module
import importlib
import json
import operator
import statistics
import threading
import time
from abc import ABCMeta
from collections.abc import Callable, Mapping
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

from toolsmith.errors import (
    PolicyError,
    ToolCallError,
    ToolExecutionError,
    ToolRaisedError,
    ToolTimeoutError,
)
from toolsmith.log import get_logger
from toolsmith.policy import RESTRICTED_MODULES, RESTRICTED_NAMES, analyze
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
# the planted ticks do that. Real ``range``/``list``/``tuple`` replace the ``limited_builtins``
# versions (1000-element ranges, no ``list("abc")``) for the same reason.
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
    "iter": iter,
    "list": list,
    "map": map,
    "max": max,
    "min": min,
    "next": next,
    "property": property,
    "range": range,
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
    "**=": operator.ipow,
    "<<=": operator.ilshift,
    ">>=": operator.irshift,
    "&=": operator.iand,
    "|=": operator.ior,
    "^=": operator.ixor,
    "@=": operator.imatmul,
}
_PLAIN_CONTAINERS = (dict, list, set, bytearray)
_RAISE = object()


class _DeadlineExceeded(BaseException):
    """Raised by ``_tick_`` past the deadline; a BaseException so ``except Exception`` misses it."""


def _guarded_getattr(ob: Any, name: str, default: Any = _RAISE) -> Any:
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
    return value


def _guarded_hasattr(ob: Any, name: str) -> bool:
    try:
        _guarded_getattr(ob, name)
    except AttributeError:
        return False
    return True


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

    def __getattr__(self, name: str) -> Any:
        qualified = f"{self.__module.__name__}.{name}"
        if name not in self.__allowed and qualified not in RESTRICTED_MODULES:
            if isinstance(getattr(self.__module, name, None), ModuleType):
                raise AttributeError(f"{qualified} is a module the restricted runtime withholds")
            raise AttributeError(f"{qualified} is not available in the restricted runtime")
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
    """One view per module per runtime, so repeated imports inside a function stay cheap."""

    def __init__(self) -> None:
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
        self.contract.check_args(kwargs)
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
        try:
            result = thunk()
        except (KeyboardInterrupt, ToolCallError):
            raise  # a ToolCallError comes from this runtime (result or print checks), not the tool
        except BaseException as e:
            error = e
        finally:
            clock.deadline = float("inf")
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
            raise self._map_exception(error, what)
        return result

    def _map_exception(self, error: BaseException, what: str) -> Exception:
        for cls in type(error).__mro__:
            if cls.__name__ in self.spec.raises:
                return ToolRaisedError(cls.__name__, str(error))
        declared = ", ".join(self.spec.raises) or "none"
        return ToolExecutionError(
            f"{self.spec.name}: {what} raised {type(error).__name__}: {error} "
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
        clock = self._clock
        monotonic = time.monotonic
        module_name = self._module_name
        limit = self.max_output_bytes

        def tick() -> bool:
            if monotonic() > clock.deadline:
                clock.expired = True
                raise _DeadlineExceeded
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
            "getattr": _guarded_getattr,
            "hasattr": _guarded_hasattr,
            "__import__": _Views().import_,
        }
        return {
            "__builtins__": builtins,
            "__name__": module_name,
            "__metaclass__": type,
            "_getattr_": _guarded_getattr,
            "_getitem_": operator.getitem,
            "_getiter_": iter,
            "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
            "_unpack_sequence_": guarded_unpack_sequence,
            "_write_": write_guard,
            "_inplacevar_": _inplacevar,
            "_apply_": _apply,
            "_print_": print_collector,
            "_tick_": tick,
        }


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
