"""ToolSpec: the typed contract between every stage.

A spec is data an LLM writes and a person reviews, so validation is strict and its messages say
which field is wrong and how to fix it. The implementation of a spec is one Python module that
defines a function named ``spec.name``.
"""

from __future__ import annotations

import ast
import json
import keyword
import os
import re
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
import referencing.exceptions
import yaml
from pydantic import (
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from toolsmith import patterns
from toolsmith.dependencies import requirement_problem
from toolsmith.errors import SpecError, ToolsmithError
from toolsmith.models import PublicModel

# Anchored with \Z, not $: "$" also matches before a trailing newline, so "env:FOO\n" passed.
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*\Z")
IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
# Paths refuse control characters, and [ ] (character classes to the policy's fnmatch patterns);
# a network host is a name, an IPv4 literal or a bracketed IPv6 literal (sandbox.grants checks it).
CAPABILITY_RE = re.compile(
    r"^(network:([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(:\d{1,5})?"
    r"|fs:(read|write):/[^\x00-\x1f\x7f\[\]]*"
    r"|env:[A-Z_][A-Z0-9_]*|subprocess)\Z"
)
_Validator = patterns.Validator


def _ecma(regex: re.Pattern[str]) -> str:
    """A Python regex anchored with \\Z as the ECMA-262 pattern JSON Schema uses."""
    return regex.pattern.replace("\\Z", "$")


# What JSON Schema can say about a field goes into the schema sent to a model, so servers that
# constrain decoding to it (llama.cpp, vLLM, Ollama) never produce the mistake; the validators
# below still enforce everything, and say what no schema can (keywords, examples against schemas).
IDENT_SCHEMA: dict[str, Any] = {"type": "string", "pattern": _ecma(IDENT_RE)}
NAME_SCHEMA: dict[str, Any] = {"pattern": _ecma(NAME_RE), "minLength": 1, "maxLength": 64}
PARAMETERS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "type": {"const": "object"},
        "properties": {"type": "object", "propertyNames": {"pattern": _ecma(IDENT_RE)}},
        "required": {"type": "array", "items": IDENT_SCHEMA},
    },
    "required": ["type"],
}


TOO_DEEP = "is nested too deeply (or refers to itself) to be checked"


def json_problem(value: Any) -> str | None:
    """Why ``value`` is not plain JSON data (which specs are hashed, signed and shipped as), or
    None. YAML dates, NaN, lone surrogates and non-string keys all slip past a schema check."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
        text.encode("utf-8")
        same = json.loads(text) == value
    except UnicodeEncodeError:
        return "holds a lone surrogate, which UTF-8 cannot encode"
    except RecursionError:
        return TOO_DEEP
    except TypeError as e:
        return f"is not JSON data: {e} (in YAML, quote dates and times)"
    except ValueError as e:
        return f"is not JSON data: {e} (NaN and infinities are not JSON)"
    return None if same else "changes in a JSON round trip (keys must be strings, no tuples)"


def _check_schema(schema: dict[str, Any], where: str, *, stored: bool = False) -> None:
    problem = json_problem(schema)
    if problem is not None:
        raise ValueError(f"{where} {problem}")
    # A stored spec loads as signed; its unsupported patterns then fail every check instead.
    problem = None if stored else patterns.schema_problem(schema)
    if problem is not None:
        raise ValueError(
            f"{where}: {problem}; rewrite it in RE2/ECMA-262 syntax without them (values are "
            "checked on your host, where a backtracking pattern could hang it)"
        )
    try:
        _Validator.check_schema(schema)
    except jsonschema.SchemaError as e:
        path = "/".join(str(p) for p in e.path) or "(root)"
        raise ValueError(f"{where} is not a valid JSON Schema at {path}: {e.message}") from None
    except RecursionError:
        raise ValueError(f"{where} {TOO_DEEP}") from None
    cycle = _ref_cycle(schema)
    if cycle is not None:
        raise ValueError(
            f"{where} has a $ref cycle through {cycle!r} that never descends into a property or "
            "item, so no value could ever be checked against it"
        )


def json_pointer(root: Any, ref: str) -> Any:
    """The subschema a local ``$ref`` (``#`` or ``#/json/pointer``, RFC 6901) names in ``root``,
    or None. Self-contained: generated tests embed its source (``testgen.STRATEGIES``)."""
    from urllib.parse import unquote

    if not ref.startswith("#") or (len(ref) > 1 and ref[1] != "/"):
        return None
    node = root
    for token in ref[2:].split("/") if len(ref) > 1 else []:
        token = unquote(token).replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return None
    return node


def _in_place(root: Any, node: dict[str, Any]) -> list[dict[str, Any]]:
    """The subschemas that apply to the same value as ``node`` (not to a part of it)."""
    out: list[Any] = []
    if isinstance(node.get("$ref"), str):
        out.append(json_pointer(root, node["$ref"]))
    for key in ("allOf", "anyOf", "oneOf"):
        if isinstance(node.get(key), list):
            out += node[key]
    out += [node[key] for key in ("not", "if", "then", "else") if key in node]
    if isinstance(node.get("dependentSchemas"), dict):
        out += node["dependentSchemas"].values()
    return [s for s in out if isinstance(s, dict)]


def _ref_cycle(root: Any) -> str | None:
    """A ``$ref`` that leads back to itself without descending into the value: validation of
    anything against it recurses forever. Iterative, so deep schemas cannot overflow here."""
    starts, todo = [], [root]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                starts.append(node)
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)
    done: set[int] = set()
    for start in starts:
        if id(start) in done:
            continue
        path = {id(start)}
        stack = [(start, iter(_in_place(root, start)))]
        while stack:
            node, successors = stack[-1]
            nxt = next(successors, None)
            if nxt is None:
                stack.pop()
                path.discard(id(node))
                done.add(id(node))
            elif id(nxt) in path:
                return str(start["$ref"])
            elif id(nxt) not in done:
                path.add(id(nxt))
                stack.append((nxt, iter(_in_place(root, nxt))))
    return None


def schema_errors(schema: dict[str, Any], instance: Any) -> list[str]:
    """Every way ``instance`` fails ``schema``, as short readable lines."""
    try:
        errors = sorted(_Validator(schema).iter_errors(instance), key=lambda e: list(e.path))
    except referencing.exceptions.Unresolvable as e:
        return [f"(schema): unresolvable $ref {e.ref!r}"]
    except RecursionError:
        return [f"(root): the value or its schema {TOO_DEEP}"]
    return [f"{'/'.join(str(p) for p in e.path) or '(root)'}: {e.message}" for e in errors]


# Keywords whose values are data (any JSON, null included), not schemas or keyword arguments.
DATA_KEYWORDS = frozenset({"const", "default", "enum", "examples"})
# Keywords whose values map names to schemas (so a key there is a name, never a keyword).
NAME_MAPS = frozenset({"properties", "$defs", "patternProperties", "dependentSchemas"})
# What clients do with tool definitions, published by each platform: OpenAI caps a function's
# description at 1,024 characters; Anthropic's API and other MCP clients refuse an input schema
# with a combinator at its root (it must be a plain "type": "object" schema).
MAX_DESCRIPTION = 1024
ROOT_COMBINATORS = ("anyOf", "oneOf", "allOf")
# Specs read back from a registry were signed before a rule may have existed: they load as they
# are, and exports deal with what they carry.
STORED = {"stored": True}


def yaml_accidents(schema: Any, where: str) -> list[str]:
    """Keys holding null in a schema: no JSON Schema keyword takes null, so such a key is what YAML
    makes of a comma in an unquoted flow mapping (``{description: a, b}`` has a key ``b``)."""
    found, todo = [], [(schema, where)]
    while todo:
        node, path = todo.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in DATA_KEYWORDS and path.rsplit("/", 1)[-1] not in NAME_MAPS:
                    continue
                if value is None:
                    found.append(
                        f"{path} has a key {key!r} with value null, which no JSON Schema keyword "
                        "takes: in YAML, a comma inside an unquoted flow mapping starts a new key "
                        '({description: a, b}); quote the text ({description: "a, b"})'
                    )
                else:
                    todo.append((value, f"{path}/{key}"))
        elif isinstance(node, list):
            todo.extend((v, f"{path}/{i}") for i, v in enumerate(node))
    return sorted(found)


def export_problems(description: str, parameters: dict[str, Any], returns: Any) -> list[str]:
    """What would make a spec's definition wrong or refused in OpenAI or MCP clients."""
    problems = []
    if len(description) > MAX_DESCRIPTION:
        problems.append(
            f"description is {len(description)} characters long; OpenAI refuses function "
            f"descriptions over {MAX_DESCRIPTION}: shorten it"
        )
    for key in ROOT_COMBINATORS:
        if key in parameters:
            problems.append(
                f"parameters has {key!r} at its root, which Anthropic's and other MCP clients "
                "refuse: describe every parameter under properties and put the alternatives "
                "inside the parameters they concern"
            )
    return problems + yaml_accidents(parameters, "parameters") + yaml_accidents(returns, "returns")


def _one_outcome_schema(schema: dict[str, Any]) -> None:
    # args plus exactly one of returns/raises; raises is a class name, never null.
    schema["properties"]["raises"] = {"type": "string", "pattern": _ecma(IDENT_RE)}
    schema.update(minProperties=2, maxProperties=2)


class Example(PublicModel):
    """One call and its expected outcome: ``returns`` a value or ``raises`` an exception name."""

    invalid: ClassVar[type[ToolsmithError]] = SpecError

    model_config = ConfigDict(extra="forbid", json_schema_extra=_one_outcome_schema)

    args: dict[str, Any]
    returns: Any = None
    raises: str | None = None

    @model_validator(mode="after")
    def _one_outcome(self) -> Example:
        has_returns = "returns" in self.model_fields_set
        if has_returns == (self.raises is not None):
            raise ValueError("an example needs exactly one of 'returns' or 'raises'")
        if self.raises is not None and not IDENT_RE.match(self.raises):
            raise ValueError(f"'raises' must be an exception class name, got {self.raises!r}")
        for field, value in (("args", self.args), ("returns", self.returns)):
            problem = json_problem(value)
            if problem is not None:
                raise ValueError(f"example {field} {problem}")
        return self

    @model_serializer(mode="wrap")
    def _dump_one_outcome(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        data.pop("raises" if self.raises is None else "returns", None)
        return data

    @property
    def expects_error(self) -> bool:
        return self.raises is not None


class Property(PublicModel):
    """A named hypothesis check: Python source defining ``check(args, result)`` or
    ``check(args, result, tool)``.

    ``tool(**kwargs)`` calls the tool under test again through the same sandboxed harness and
    returns its result (or raises ``ToolRaised``), so metamorphic relations (round trips,
    monotonicity, idempotence) are written directly. The source may import the standard library
    to compare against a reference (``zlib.crc32``, ``hashlib.sha256``).
    """

    invalid: ClassVar[type[ToolsmithError]] = SpecError

    model_config = ConfigDict(extra="forbid")

    name: str = Field(json_schema_extra={"pattern": _ecma(IDENT_RE)})
    source: str = Field(json_schema_extra={"pattern": r"def check\("})

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not IDENT_RE.match(v):
            raise ValueError(f"property name must be an identifier, got {v!r}")
        return v

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        try:
            tree = ast.parse(v)
        except SyntaxError as e:
            raise ValueError(f"property source does not parse: line {e.lineno}: {e.msg}") from None
        funcs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "check"]
        if not funcs or len(funcs[0].args.args) not in (2, 3):
            raise ValueError(
                "property source must define 'def check(args, result)' or "
                "'def check(args, result, tool)'"
            )
        return v


class ToolSpec(PublicModel):
    """What a tool does, what it takes and returns, and how we know it works."""

    invalid: ClassVar[type[ToolsmithError]] = SpecError

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        description="snake_case identifier; also the implementation's function name",
        json_schema_extra=NAME_SCHEMA,
    )
    description: str = Field(min_length=1, json_schema_extra={"maxLength": MAX_DESCRIPTION})
    parameters: dict[str, Any] = Field(
        description="JSON Schema of the keyword arguments (object)",
        json_schema_extra=PARAMETERS_SCHEMA,
    )
    returns: dict[str, Any] = Field(description="JSON Schema of the result")
    raises: list[str] = Field(
        default_factory=list,
        description="exception names on bad input",
        json_schema_extra={"items": IDENT_SCHEMA},
    )
    examples: list[Example] = Field(default_factory=list)
    properties: list[Property] = Field(default_factory=list)
    capabilities: list[str] = Field(
        default_factory=list,
        description="empty means pure",
        json_schema_extra={"items": {"type": "string", "pattern": _ecma(CAPABILITY_RE)}},
    )
    dependencies: list[str] = Field(default_factory=list, description="empty means stdlib only")
    tags: list[str] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if len(v) > 64:
            raise ValueError(f"name is {len(v)} characters long; the limit is 64")
        if not NAME_RE.match(v):
            raise ValueError(
                f"name {v!r} must be a snake_case identifier: lowercase letters, digits and "
                "underscores, starting with a letter (no '/', '.', '-' or spaces)"
            )
        if keyword.iskeyword(v) or keyword.issoftkeyword(v):
            raise ValueError(f"name {v!r} is a Python keyword; choose another")
        return v

    @field_validator("parameters")
    @classmethod
    def _parameters(cls, v: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        _check_schema(v, "parameters", stored=info.context == STORED)
        if v.get("type") != "object":
            raise ValueError('parameters must be a JSON Schema with "type": "object"')
        props = v.get("properties", {})
        for prop in [*props, *v.get("required", [])]:
            if not IDENT_RE.match(prop) or keyword.iskeyword(prop):
                raise ValueError(f"parameter {prop!r} is not usable as a Python keyword argument")
        closed = v.get("additionalProperties") is False
        for name in v.get("required", []):
            if closed and name not in props:
                raise ValueError(
                    f"parameter {name!r} is required but missing from properties while "
                    "additionalProperties is false, so no call could pass it; describe it "
                    "under properties"
                )
        return v

    @field_validator("returns")
    @classmethod
    def _returns(cls, v: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        _check_schema(v, "returns", stored=info.context == STORED)
        return v

    @field_validator("description", "parameters", "returns")
    @classmethod
    def _exportable(cls, v: Any, info: ValidationInfo) -> Any:
        # Field validators, unlike "after" model validators, do not run again when a spec is
        # placed in another model, so a stored spec's STORED context holds.
        if info.context != STORED:
            args: dict[str, Any] = {"description": "", "parameters": {}, "returns": {}}
            problems = export_problems(**{**args, str(info.field_name): v})
            if problems:
                raise ValueError("; ".join(problems))
        return v

    @field_validator("raises")
    @classmethod
    def _raises(cls, v: list[str]) -> list[str]:
        for name in v:
            if not IDENT_RE.match(name):
                raise ValueError(f"raises entry {name!r} is not an exception class name")
        return v

    @field_validator("capabilities")
    @classmethod
    def _capabilities(cls, v: list[str]) -> list[str]:
        for cap in v:
            if not CAPABILITY_RE.match(cap):
                raise ValueError(
                    f"capability {cap!r} is not recognised; use network:<host>[:<port>] (a name, "
                    "an IPv4 address or an [IPv6] one), fs:read:<path>, fs:write:<path>, "
                    "env:<NAME> or subprocess"
                )
        return v

    @field_validator("dependencies")
    @classmethod
    def _dependencies(cls, v: list[str]) -> list[str]:
        for dep in v:
            problem = requirement_problem(dep)
            if problem:
                raise ValueError(f"dependency {dep!r} {problem}")
        return v

    @model_validator(mode="after")
    def _examples_match_schemas(self) -> ToolSpec:
        for i, ex in enumerate(self.examples):
            problems = schema_errors(self.parameters, ex.args)
            if problems:
                raise ValueError(f"examples[{i}].args do not match parameters: {problems[0]}")
            if ex.raises is None:
                problems = schema_errors(self.returns, ex.returns)
                if problems:
                    raise ValueError(f"examples[{i}].returns does not match returns: {problems[0]}")
            elif ex.raises not in self.raises:
                raise ValueError(
                    f"examples[{i}] raises {ex.raises!r}, which is not declared in 'raises' "
                    f"({self.raises}); declare it or fix the example"
                )
        names = [p.name for p in self.properties]
        if len(set(names)) != len(names):
            raise ValueError("property names must be unique")
        return self

    def vague_parameters(self) -> list[str]:
        """Warnings, one per string parameter the schema leaves open-ended (no ``pattern``,
        ``enum``, ``const``, ``format`` or ``maxLength``): inputs drawn for it are random text,
        which seldom reaches the tool's domain, so its tests prove little. Not an error: some
        tools do take free text, and then a ``maxLength`` says how much."""
        precise = ("pattern", "enum", "const", "format", "maxLength")
        out = []
        for name, schema in self.parameters.get("properties", {}).items():
            if not isinstance(schema, dict) or schema.get("type") != "string":
                continue
            if not any(key in schema for key in precise):
                out.append(
                    f"parameter {name!r} is any string: give it a pattern, enum or format that "
                    "describes valid input, or a maxLength if it is free text"
                )
        return out

    @property
    def is_pure(self) -> bool:
        return not self.capabilities

    def canonical_json(self) -> bytes:
        """Stable bytes for digests and signatures: sorted keys, no whitespace, UTF-8."""
        return canonical_json(self.model_dump(mode="json", exclude_unset=False))

    @classmethod
    def parse(cls, data: Any, *, source: str = "spec") -> ToolSpec:
        """Validate ``data`` into a ToolSpec, turning pydantic's errors into one SpecError."""
        try:
            return cls.model_validate(data)
        except RecursionError:
            raise SpecError(
                f"{source} {TOO_DEEP}", hint="flatten the nesting or remove the self-reference"
            ) from None
        except ValidationError as e:
            lines = []
            for err in e.errors():
                loc = ".".join(str(p) for p in err["loc"]) or "(spec)"
                msg = err["msg"].removeprefix("Value error, ")
                lines.append(f"  {loc}: {msg}")
            raise SpecError(
                f"{source} is not a valid ToolSpec:\n" + "\n".join(lines),
                hint="edit the fields named above; `toolsmith spec schema` prints the full schema",
            ) from None

    @classmethod
    def from_text(cls, text: str, *, source: str = "spec") -> ToolSpec:
        """Parse YAML or JSON text (JSON is YAML, but JSON errors read better from json)."""
        try:
            data = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as e:
            raise SpecError(
                f"{source} is neither valid YAML nor JSON: {e}", hint="fix the syntax"
            ) from None
        except RecursionError:
            raise SpecError(
                f"{source} is nested too deeply to read", hint="flatten the nesting"
            ) from None
        if not isinstance(data, dict):
            raise SpecError(f"{source} must be a mapping of fields, got {type(data).__name__}")
        return cls.parse(data, source=source)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> ToolSpec:
        return cls.from_text(read_text(Path(path), "spec file"), source=str(path))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def read_text(path: Path, what: str) -> str:
    """A spec or implementation file's text; unreadable or non-UTF-8 files are SpecErrors."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise SpecError(f"cannot read {what} {path}: {e.strerror}", hint="check the path") from None
    except UnicodeDecodeError as e:
        raise SpecError(
            f"{what} {path} is not UTF-8 text: {e.reason} at byte {e.start}",
            hint="save the file as UTF-8",
        ) from None


def canonical_json(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def spec_json_schema() -> dict[str, Any]:
    """The ToolSpec shape as JSON Schema, e.g. for an LLM's structured output."""
    return ToolSpec.model_json_schema()
