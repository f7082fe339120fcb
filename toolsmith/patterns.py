"""The regular expressions of tool schemas (``pattern``, ``patternProperties``), matched in time
linear in the text.

Every argument and result is checked against its schema on the consumer's host, outside the
sandbox and its call deadline. Python's ``re`` backtracks, so a spec carrying
``"pattern": "^(a|aa)*$"`` and a value of ``"a" * 64 + "!"`` spin the host for ever (ReDoS).
RE2 (google-re2) matches in O(pattern x text) whatever the pattern; it takes ECMA-262's syntax
except backreferences and lookaround, which a spec is told to drop (``pattern_problem``) and a
stored spec carrying one fails every check (closed, never slow). ``Validator`` is jsonschema's
Draft 2020-12 validator with every keyword that searches a pattern routed through RE2.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import jsonschema
import jsonschema.validators
import re2
from jsonschema.exceptions import ValidationError

# RE2's default memory budget (8 MiB) bounds a compiled pattern, so a{1000}{1000} is refused
# rather than built; errors are reported to the caller, not logged to stderr by the C++ side.
_OPTIONS = re2.Options()
_OPTIONS.log_errors = False
UNSUPPORTED = (
    "cannot be matched in linear time (backreferences and lookaround such as (?=...) are not "
    "supported, nor \\Z: use $)"
)


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str) -> Any:
    """The RE2 program for ``pattern``, or the error text if RE2 refuses it."""
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as e:
        return str(e.args[0] if e.args else e).removeprefix("b'").removesuffix("'")


def pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` cannot be used in a tool schema, or None."""
    program = _compiled(pattern)
    return f"{UNSUPPORTED}: {program}" if isinstance(program, str) else None


def search(pattern: str, text: str) -> bool:
    """Whether ``pattern`` matches somewhere in ``text`` (JSON Schema's unanchored search);
    a pattern RE2 refuses matches nothing, so a stored spec carrying one fails closed."""
    program = _compiled(pattern)
    return not isinstance(program, str) and program.search(text) is not None


def schema_patterns(schema: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every (JSON pointer, pattern) in ``schema``: ``pattern`` values and ``patternProperties``
    keys, at any depth (data keywords such as ``enum`` and ``const`` are not searched)."""
    if isinstance(schema, dict):
        for key, value in schema.items():
            here = f"{path}/{key}"
            if key in ("const", "enum", "default", "examples"):
                continue
            if key == "pattern" and isinstance(value, str):
                yield here, value
            elif key == "patternProperties" and isinstance(value, dict):
                yield from ((f"{here}/{p}", p) for p in value)
                for p, sub in value.items():
                    yield from schema_patterns(sub, f"{here}/{p}")
            else:
                yield from schema_patterns(value, here)
    elif isinstance(schema, list):
        for i, item in enumerate(schema):
            yield from schema_patterns(item, f"{path}/{i}")


def schema_problem(schema: Any) -> str | None:
    """The first pattern of ``schema`` a check could not run in linear time, as
    ``"at <pointer>: <pattern> <why>"``, or None."""
    for at, pattern in schema_patterns(schema):
        problem = pattern_problem(pattern)
        if problem is not None:
            return f"the pattern {pattern!r} at {at or '/'} {problem}"
    if _uses(schema, "unevaluatedProperties") and _uses(schema, "patternProperties"):
        # jsonschema evaluates these two together with Python's re, out of RE2's reach.
        return (
            "unevaluatedProperties together with patternProperties cannot be checked in linear time"
        )
    return None


def _uses(schema: Any, keyword: str) -> bool:
    if isinstance(schema, dict):
        return keyword in schema or any(_uses(v, keyword) for v in schema.values())
    if isinstance(schema, list):
        return any(_uses(v, keyword) for v in schema)
    return False


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not search(pattern, instance):
        problem = pattern_problem(pattern)
        yield ValidationError(problem or f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: dict[str, Any], instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for k, v in instance.items():
            if search(pattern, k):
                yield from validator.descend(v, subschema, path=k, schema_path=pattern)


def _additional_properties(
    validator: Any, extra_schema: Any, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    known = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    extras = [k for k in instance if k not in known and not any(search(p, k) for p in patterns)]
    if validator.is_type(extra_schema, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], extra_schema, path=extra)
    elif not extra_schema and extras:
        # jsonschema's own wording, so messages read the same with or without patterns
        listed = ", ".join(repr(k) for k in sorted(extras))
        if patterns:
            verb = "does" if len(extras) == 1 else "do"
            regexes = ", ".join(repr(p) for p in sorted(patterns))
            yield ValidationError(f"{listed} {verb} not match any of the regexes: {regexes}")
        else:
            verb = "was" if len(extras) == 1 else "were"
            yield ValidationError(
                f"Additional properties are not allowed ({listed} {verb} unexpected)"
            )


def _unevaluated_properties(
    validator: Any, unevaluated: Any, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if _uses(schema, "patternProperties"):
        # jsonschema resolves these together with Python's re, out of RE2's reach: fail closed.
        yield ValidationError(
            "unevaluatedProperties together with patternProperties cannot be checked in linear time"
        )
        return
    yield from _DRAFT.VALIDATORS["unevaluatedProperties"](validator, unevaluated, instance, schema)


_DRAFT: Any = jsonschema.Draft202012Validator
Validator: Any = jsonschema.validators.extend(
    _DRAFT,
    {
        "unevaluatedProperties": _unevaluated_properties,
        "pattern": _pattern,
        "patternProperties": _pattern_properties,
        "additionalProperties": _additional_properties,
    },
)
