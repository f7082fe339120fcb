"""Seeded inputs: argument objects near the spec's examples and on its schema's boundaries.

Random schema-valid draws rarely reach a tool's domain: of a hundred strings drawn for a semantic
version, none parses. A wrong implementation usually differs from a right one only there, so the
generated tests also run inputs made from what the spec already says is typical:

- each example with one argument changed a little: a string edited (a character dropped, doubled
  or case-flipped, a digit moved by one, cut or repeated to its ``minLength``/``maxLength``), a
  number moved to its neighbours, a list reversed, shortened, emptied, cut to one element or with
  an item repeated, an optional argument dropped;
- each argument set to its schema's boundary values (``minimum``/``maximum``, exclusive bounds,
  every ``enum`` member, ``const``, ``default`` and ``examples``);
- each argument set equal to another of the same type (``compare(v, v)``, ``distance(p, p)``).

Only objects valid against the drawing schema under Draft 2020-12 are kept, so the generic contract
(declared exceptions only) still holds for every seed. Pure and deterministic: the same spec gives
the same seeds, so a build and its mutants are proved on the same inputs.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import re
from collections.abc import Iterator
from typing import Any

from toolsmith import patterns
from toolsmith.spec import ToolSpec, json_problem

SEED_LIMIT = 64
_DIGITS = re.compile(r"\d+")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _string_edits(text: str) -> Iterator[str]:
    """Small edits of ``text``: each one keeps most of it, so most stay in the domain."""
    middle = len(text) // 2
    for match in itertools.islice(_DIGITS.finditer(text), 4):
        number = int(match.group())
        for neighbour in (number + 1, number - 1, 0):
            if neighbour >= 0:
                yield text[: match.start()] + str(neighbour) + text[match.end() :]
    yield text[1:]
    yield text[:-1]
    yield text[:middle] + text[middle + 1 :]
    yield text[:middle] + text[middle : middle + 1] + text[middle:]
    yield text + text[-1:]
    yield text.upper()
    yield text.lower()
    yield text.swapcase()
    yield " " + text + " "
    yield text + text
    yield text[::-1]
    yield text[:1]
    yield ""


def _number_edits(value: int | float) -> Iterator[Any]:
    yield value + 1
    yield value - 1
    yield -value
    yield 0 if _is_int(value) else 0.0
    yield value * 2
    if isinstance(value, float):
        yield value / 2
        yield float(round(value))


def _list_edits(items: list[Any]) -> Iterator[list[Any]]:
    yield items[::-1]
    yield items + items[:1]
    yield items[:1] + items
    yield items[1:]
    yield items[:-1]
    yield items[:1]
    yield []
    try:
        ordered: list[Any] | None = sorted(items)
    except TypeError:  # items of kinds that do not compare
        ordered = None
    if ordered is not None:
        yield ordered


def _resized(value: Any, length: int) -> Any:
    """``value`` (a string or list) cut or repeated to exactly ``length`` items."""
    if length < 0 or not isinstance(value, str | list):
        return None
    if not value:
        return "a" * length if isinstance(value, str) else None
    repeats = length // len(value) + 1
    return (value * repeats)[:length]


def _boundaries(schema: dict[str, Any], value: Any) -> Iterator[Any]:
    """The values a schema singles out, and ``value`` cut to the lengths it allows."""
    yield from schema.get("enum", [])
    if "const" in schema:
        yield schema["const"]
    if "default" in schema:
        yield schema["default"]
    yield from schema.get("examples", []) if isinstance(schema.get("examples"), list) else []
    integer = schema.get("type") == "integer" or _is_int(value)
    for key, step in (("minimum", 0), ("maximum", 0), ("exclusiveMinimum", 1)):
        bound = schema.get(key)
        if isinstance(bound, int | float) and not isinstance(bound, bool):
            delta = step if integer else step * 1e-9
            yield bound + delta
            if key == "minimum":
                yield bound + 1
    bound = schema.get("exclusiveMaximum")
    if isinstance(bound, int | float) and not isinstance(bound, bool):
        yield bound - (1 if integer else 1e-9)
    maximum = schema.get("maximum")
    if isinstance(maximum, int | float) and not isinstance(maximum, bool):
        yield maximum - 1
    for low, high in (("minLength", "maxLength"), ("minItems", "maxItems")):
        for key in (low, high):
            length = schema.get(key)
            if isinstance(length, int) and not isinstance(length, bool):
                yield _resized(value, length)
                if key == high:
                    yield _resized(value, length + 1)  # kept only if the schema allows it
                else:
                    yield _resized(value, length - 1)


def _variations(value: Any, schema: dict[str, Any]) -> Iterator[Any]:
    yield from _boundaries(schema, value)
    if isinstance(value, bool):
        yield not value
    elif isinstance(value, int | float):
        yield from _number_edits(value)
    elif isinstance(value, str):
        yield from _string_edits(value)
    elif isinstance(value, list):
        yield from _list_edits(value)
    elif isinstance(value, dict):
        for key in value:
            yield {k: v for k, v in value.items() if k != key}


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def seed_arguments(
    spec: ToolSpec, parameters: dict[str, Any], *, limit: int = SEED_LIMIT
) -> list[dict[str, Any]]:
    """Up to ``limit`` argument objects near ``spec``'s examples, valid against ``parameters``
    (the drawing schema, Draft 2020-12), none equal to an example's own arguments.

    Variations are taken in turn from each (example, argument) pair, so a cut keeps every
    argument of every example represented.
    """
    validator = patterns.Validator(parameters)
    props = parameters.get("properties", {})
    required = set(parameters.get("required", []))
    bases = [ex.args for ex in spec.examples]
    if not bases:
        return []
    groups: list[Iterator[dict[str, Any]]] = []
    for base in bases:
        names = list(dict.fromkeys([*base, *props]))
        for name in names:
            schema = props.get(name) if isinstance(props.get(name), dict) else {}
            groups.append(_changed(base, name, schema, required, names))
    seen = {json.dumps(args, sort_keys=True) for args in bases}
    out: list[dict[str, Any]] = []
    for candidate in _round_robin(groups):
        if len(out) >= limit:
            break
        if json_problem(candidate) is not None:
            continue
        key = json.dumps(candidate, sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        if validator.is_valid(candidate):
            out.append(candidate)
    return out


def _changed(
    base: dict[str, Any],
    name: str,
    schema: dict[str, Any],
    required: set[str],
    names: list[str],
) -> Iterator[dict[str, Any]]:
    """``base`` with argument ``name`` varied, set to a boundary, dropped, or copied from a
    sibling argument of the same kind."""
    if name in base:
        value = base[name]
        for other in names:
            if other != name and other in base and _kind(base[other]) == _kind(value):
                yield {**base, name: copy.deepcopy(base[other])}
        if name not in required:
            yield {k: v for k, v in base.items() if k != name}
        for changed in _variations(value, schema):
            if changed is None or (isinstance(changed, float) and not math.isfinite(changed)):
                continue
            yield {**base, name: changed}
    else:
        for changed in _boundaries(schema, None):
            if changed is not None:
                yield {**base, name: changed}


def _round_robin(groups: list[Iterator[dict[str, Any]]]) -> Iterator[dict[str, Any]]:
    live = list(groups)
    while live:
        still = []
        for group in live:
            item = next(group, None)
            if item is not None:
                yield item
                still.append(group)
        live = still
