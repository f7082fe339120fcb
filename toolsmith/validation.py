"""Fast, exact JSON Schema checks for tool calls.

Every call crosses two schemas (arguments in, result out). jsonschema costs ~30 us for a two-field
object, which is most of the restricted runtime's budget; ``fast_validator`` compiles the common
subset of JSON Schema into plain closures that agree with jsonschema exactly (a hypothesis test
compares them), and falls back to jsonschema for anything else. Error messages always come from
jsonschema, which only runs once a check has already failed.
"""

from __future__ import annotations

import json
import numbers
import operator
from collections.abc import Callable, Iterator
from typing import Any, cast

from toolsmith import patterns
from toolsmith.errors import ToolArgumentsError, ToolExecutionError
from toolsmith.spec import ToolSpec, schema_errors

_ANNOTATIONS = frozenset({"description", "title", "default", "examples", "$comment", "format"})
_TYPE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "string": lambda x: isinstance(x, str),
    "integer": lambda x: (
        (isinstance(x, int) and not isinstance(x, bool))
        or (isinstance(x, float) and x.is_integer())
    ),
    "number": lambda x: isinstance(x, numbers.Number) and not isinstance(x, bool),
    "boolean": lambda x: isinstance(x, bool),
    "null": lambda x: x is None,
    "array": lambda x: isinstance(x, list),
    "object": lambda x: isinstance(x, dict),
}
_Check = Callable[[Any], bool]


def fast_validator(schema: Any) -> _Check | None:
    """A quick validity check for the common subset of JSON Schema, or None outside it."""
    if schema is True or schema == {}:
        return lambda x: True
    if not isinstance(schema, dict):
        return None
    checks: list[_Check] = []
    for key, value in schema.items():
        check = _keyword_check(key, value, schema)
        if check is None:
            return None
        checks.append(check)
    checks = [c for c in checks if c is not _always]
    return lambda x: all(c(x) for c in checks)


def _always(x: Any) -> bool:
    return True


def _is_num(x: Any) -> bool:
    return isinstance(x, numbers.Number) and not isinstance(x, bool)


def _keyword_check(key: str, value: Any, schema: dict[str, Any]) -> _Check | None:
    if key in _ANNOTATIONS:
        return _always
    if key == "type":
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or any(n not in _TYPE_CHECKS for n in names):
            return None
        tests = [_TYPE_CHECKS[n] for n in names]
        return lambda x: any(t(x) for t in tests)
    if key == "properties" and isinstance(value, dict):
        subs = {k: fast_validator(v) for k, v in value.items()}
        if any(v is None for v in subs.values()):
            return None
        items = [(k, cast(_Check, v)) for k, v in subs.items()]
        return lambda x: not isinstance(x, dict) or all(k not in x or v(x[k]) for k, v in items)
    if key == "required" and isinstance(value, list):
        names = list(value)
        return lambda x: not isinstance(x, dict) or all(n in x for n in names)
    if key == "additionalProperties":
        known = set(schema.get("properties", {}))
        if "patternProperties" in schema:
            return None
        if value is False:
            return lambda x: not isinstance(x, dict) or all(k in known for k in x)
        extra = fast_validator(value)
        if extra is None:
            return None
        return lambda x: (
            not isinstance(x, dict) or all(k in known or extra(v) for k, v in x.items())
        )
    if key == "items" and "prefixItems" not in schema:
        each = fast_validator(value)
        if each is None:
            return None
        return lambda x: not isinstance(x, list) or all(each(v) for v in x)
    if key == "enum" and isinstance(value, list) and all(isinstance(v, str) for v in value):
        allowed = frozenset(value)
        return lambda x: isinstance(x, str) and x in allowed
    if key in ("minLength", "maxLength", "minItems", "maxItems") and type(value) is int:
        kind = str if key.endswith("Length") else list
        bound = value
        if key.startswith("min"):
            return lambda x: not isinstance(x, kind) or len(x) >= bound
        return lambda x: not isinstance(x, kind) or len(x) <= bound
    if key in _NUMERIC_BOUNDS and _is_num(value):
        compare = _NUMERIC_BOUNDS[key]
        limit = value
        return lambda x: not _is_num(x) or compare(x, limit)
    if key == "pattern" and isinstance(value, str):
        if patterns.pattern_problem(value) is not None:
            return None
        return lambda x: not isinstance(x, str) or patterns.search(value, x)
    return None


_NUMERIC_BOUNDS: dict[str, Callable[[Any, Any], bool]] = {
    "minimum": operator.ge,
    "maximum": operator.le,
    "exclusiveMinimum": operator.gt,
    "exclusiveMaximum": operator.lt,
}


def validator(schema: Any) -> _Check:
    """The fast check where it applies, else jsonschema's."""
    return fast_validator(schema) or patterns.Validator(schema).is_valid


def integer_only(schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    kinds = [kind] if isinstance(kind, str) else kind if isinstance(kind, list) else []
    return "integer" in kinds and "number" not in kinds


def floats_at_integers(schema: Any, value: Any, path: str = "") -> Iterator[tuple[str, float]]:
    """Each float in ``value`` that sits where ``schema`` allows integers and not other numbers,
    with its path (through properties, additionalProperties, prefixItems and items)."""
    if not isinstance(schema, dict):
        return
    if isinstance(value, float) and integer_only(schema):
        yield path or "(root)", value
    elif isinstance(value, dict):
        props, extra = schema.get("properties", {}), schema.get("additionalProperties")
        for key, item in value.items():
            yield from floats_at_integers(props.get(key, extra), item, f"{path}/{key}")
    elif isinstance(value, list):
        prefix, items = schema.get("prefixItems", []), schema.get("items")
        for i, item in enumerate(value):
            sub = prefix[i] if i < len(prefix) else items
            yield from floats_at_integers(sub, item, f"{path}/{i}")


def _integral(schema: Any, value: Any) -> Any:
    """``value`` with each integral float where ``schema`` allows only integers made an int."""
    if not isinstance(schema, dict):
        return value
    if isinstance(value, float) and value.is_integer() and integer_only(schema):
        return int(value)
    if isinstance(value, dict):
        props, extra = schema.get("properties", {}), schema.get("additionalProperties")
        return {k: _integral(props.get(k, extra), v) for k, v in value.items()}
    if isinstance(value, list):
        prefix, items = schema.get("prefixItems", []), schema.get("items")
        return [_integral(prefix[i] if i < len(prefix) else items, v) for i, v in enumerate(value)]
    return value


class Contract:
    """A spec's two schemas as call-time gates, with errors a caller can act on.

    One contract for JSON numbers in every runtime and the MCP server: JSON Schema counts
    ``1994.0`` as an integer, so an integral float where the parameters allow only integers is
    passed to the tool as the int it equals (a tool doing ``range(n)`` must not crash and be
    blamed), while a result must hold a real int wherever ``returns`` allows only integers (a
    Python caller would otherwise hold ``5400.0``). A null argument for an optional parameter
    whose schema refuses null means the parameter was left out, as OpenAI's strict mode sends it.
    """

    def __init__(self, spec: ToolSpec) -> None:
        self.spec = spec
        self._args_ok = validator(spec.parameters)
        self._result_ok = validator(spec.returns)
        props = spec.parameters.get("properties", {})
        required = set(spec.parameters.get("required", []))
        self._null_means_absent = {
            k for k, sub in props.items() if k not in required and not validator(sub)(None)
        }
        self._integers_in = '"integer"' in json.dumps(spec.parameters)
        self._integers_out = '"integer"' in json.dumps(spec.returns)

    def check_args(self, args: dict[str, Any]) -> dict[str, Any]:
        """The arguments the tool receives: ``args`` checked and normalised as described above;
        ToolArgumentsError naming each problem otherwise."""
        if self._null_means_absent:
            args = {
                k: v for k, v in args.items() if v is not None or k not in self._null_means_absent
            }
        if not self._args_ok(args):
            problems = "; ".join(schema_errors(self.spec.parameters, args))
            raise ToolArgumentsError(
                f"arguments for {self.spec.name} do not match its parameters: {problems}",
                hint="pass keyword arguments that match the spec's parameters schema",
            )
        if self._integers_in:
            args = _integral(self.spec.parameters, args)
        return args

    def check_result(self, result: Any) -> None:
        """ToolExecutionError if ``result`` breaks ``returns`` or holds a float where it allows
        only integers."""
        if not self._result_ok(result):
            problems = "; ".join(schema_errors(self.spec.returns, result))
            raise ToolExecutionError(
                f"{self.spec.name}: the result does not match the returns schema: {problems}",
                hint="fix the tool or its spec's returns schema",
            )
        if self._integers_out:
            floats = [f"{v!r} at {at}" for at, v in floats_at_integers(self.spec.returns, result)]
            if floats:
                raise ToolExecutionError(
                    f"{self.spec.name}: the result holds floats where returns allows only "
                    f"integers: {', '.join(floats[:5])}",
                    hint="return ints there (int(x)), or declare the type number",
                )
