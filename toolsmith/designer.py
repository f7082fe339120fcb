"""Design: a task in, a ToolSpec out, unless a registry tool already fits.

The model sees the registry's best matches for the task first, and answers either with one of them
to reuse or with a new spec. One call does both, so reuse costs nothing extra.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from toolsmith.llm import LLM, Message, ask_structured
from toolsmith.log import get_logger
from toolsmith.spec import Example, Property, ToolSpec

log = get_logger(__name__)


class Candidate(BaseModel):
    """A registry tool offered to the designer for reuse."""

    ref: str = Field(description="name@version")
    description: str
    parameters: dict[str, object]
    returns: dict[str, object]


def _exactly_one_schema(schema: dict[str, Any]) -> None:
    # One key, never null: what the validator below requires, said in JSON Schema.
    props = schema["properties"]
    for key in ("reuse", "spec"):
        props[key] = next(s for s in props[key]["anyOf"] if s.get("type") != "null")
    props["reuse"].update(pattern="^[a-z][a-z0-9_]*@", description="name@version")
    schema.update(minProperties=1, maxProperties=1)


class DesignAnswer(BaseModel):
    """Exactly one of ``reuse`` (a candidate's ref) or ``spec`` (a new design)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_exactly_one_schema)

    reuse: str | None = None
    spec: ToolSpec | None = None

    @model_validator(mode="after")
    def _one(self) -> DesignAnswer:
        if (self.reuse is None) == (self.spec is None):
            raise ValueError("answer with exactly one of 'reuse' or 'spec'")
        return self


SYSTEM = """You design small, typed, pure-by-default Python tools for AI agents.
Given a task, produce a ToolSpec: a snake_case name, a one-sentence description, JSON Schemas for
the keyword parameters (type object, with "required" and "additionalProperties": false) and the
return value, the exception names raised on bad input, at least 4 examples (ordinary cases, edge
cases, and error cases using "raises"), and properties.
Make every parameter schema precise, because tests draw their inputs from it: give strings a
"pattern", an "enum" or a "format" describing valid input (free text gets a "maxLength"), numbers
their "minimum"/"maximum", arrays their "maxItems". Inputs a valid call never sees are wasted.
Properties are Python sources of `def check(args, result)` asserting what must hold for every
valid input, or `def check(args, result, tool)` where `tool(**kwargs)` calls the tool again, for
metamorphic relations: round trips (decode(encode(x)) == x), idempotence, monotonicity, symmetry
(compare(a, b) == -compare(b, a)), prefix or longest-fit rules. A property may import the standard
library to compare with a reference (zlib.crc32, hashlib.sha256, datetime).
Declare capabilities only if the task truly needs I/O (network:<host>, fs:read:<path>, ...).
If one of the existing tools listed already does the task, answer {"reuse": "<name@version>"}
instead of designing a new one."""


def lessons_text(lessons: Sequence[str]) -> str:
    """The block of recalled lessons (``toolsmith.lessons``) appended to a designer or code
    prompt; empty without lessons, so a build with none sends exactly the prompt it always did."""
    if not lessons:
        return ""
    return (
        "\n\nLessons from earlier builds of similar tools (heed those that apply):\n"
        + "\n".join(f"- {text}" for text in lessons)
    )


def design_messages(
    task: str,
    candidates: Sequence[Candidate],
    revision: tuple[ToolSpec, str] | None,
    lessons: Sequence[str] = (),
    system: str = SYSTEM,
    dependencies: str | None = None,
) -> list[Message]:
    user = f"Task: {task}\n\n"
    if dependencies:
        user += f"{dependencies}\n\n"
    if candidates:
        listing = [c.model_dump(mode="json") for c in candidates]
        user += "Existing tools (reuse one only if it does the task):\n" + json.dumps(listing)
    else:
        user += "There are no existing tools to reuse."
    if revision is not None:
        spec, reason = revision
        user += (
            "\n\nA previous design contradicted itself:\n"
            + json.dumps(spec.model_dump(mode="json"))
            + f"\nProblem: {reason}\nAnswer with a corrected spec."
        )
        vague = spec.vague_parameters()
        if vague:
            user += "\nAlso tighten these parameters:\n" + "\n".join(f"- {w}" for w in vague)
    user += lessons_text(lessons)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def design(
    task: str,
    llm: LLM,
    *,
    candidates: Sequence[Candidate] = (),
    revision: tuple[ToolSpec, str] | None = None,
    lessons: Sequence[str] = (),
    system: str = SYSTEM,
    dependencies: str | None = None,
) -> DesignAnswer:
    """Ask for a new spec or a reuse; a reuse naming a tool not offered is sent back once.
    ``lessons``: recalled lessons' prompt texts, listed after the task. ``system``: the system
    prompt (the active ``toolsmith.prompts.PromptSet``'s; default the shipped one).
    ``dependencies`` tells the model which third-party packages it may declare (the policy's
    ``[dependencies]``, as ``policy.dependency_guidance`` words it)."""
    messages = design_messages(task, candidates, revision, lessons, system, dependencies)
    answer = ask_structured(llm, messages, DesignAnswer)
    if answer.reuse is not None and answer.reuse not in {c.ref for c in candidates}:
        log.info("design.unknown_reuse", reuse=answer.reuse)
        refusal = f"{answer.reuse} is not one of the offered tools; answer with a new spec."
        messages += [
            {"role": "assistant", "content": json.dumps({"reuse": answer.reuse})},
            {"role": "user", "content": refusal},
        ]
        answer = ask_structured(llm, messages, DesignAnswer)
    return answer


class EquivalentMutant(BaseModel):
    """A surviving mutant the designer holds to behave exactly like the candidate."""

    model_config = ConfigDict(extra="forbid")

    mutant: str = Field(description="the mutant's id, e.g. m3")
    reason: str = Field(min_length=10, description="why no valid input tells them apart")


class Strengthening(BaseModel):
    """The designer's answer to surviving mutants: tests that pin the behaviour down, or the
    mutants it holds equivalent (each with a reason). Every survivor gets one or the other."""

    model_config = ConfigDict(extra="forbid")

    examples: list[Example] = Field(default_factory=list, description="examples to add")
    properties: list[Property] = Field(default_factory=list, description="properties to add")
    equivalent: list[EquivalentMutant] = Field(default_factory=list)

    def applied_to(self, spec: ToolSpec) -> ToolSpec:
        """``spec`` with the new examples and properties appended (a ValueError if they do not
        fit it: arguments against its schema, duplicate property names)."""
        if not self.examples and not self.properties:
            return spec
        data = spec.model_dump(mode="json")
        data["examples"] += [e.model_dump(mode="json") for e in self.examples]
        data["properties"] += [p.model_dump(mode="json") for p in self.properties]
        try:
            return ToolSpec.model_validate(data)
        except ValidationError as e:
            raise ValueError(
                "; ".join(str(err["msg"]).removeprefix("Value error, ") for err in e.errors())
            ) from None


STRENGTHEN_SYSTEM = """You review the tests of a tool you designed. Its implementation passed
every test, yet some mutants (copies of the implementation with one small change) passed them
too: behaviour the tests leave open. For each surviving mutant, either
- add examples (args with the expected "returns" or "raises") or properties (`def check(args,
  result)` or `def check(args, result, tool)`, where tool(**kwargs) calls the tool again) that the
  correct tool satisfies and the mutant breaks, or
- if no valid input can tell the mutant from the implementation, list it under "equivalent" with
  the reason.
Expected values must be what the specification says, not what the implementation happens to do.
Tighten vague parameter schemas by saying so in a property only if it matters for a mutant."""


def strengthen_messages(
    spec: ToolSpec, survivors: Sequence[Any], task: str | None
) -> list[Message]:
    lines = [f"Task: {task}" if task else "Task: implement the specification below."]
    lines.append("Specification:\n" + json.dumps(spec.model_dump(mode="json")))
    warnings = spec.vague_parameters()
    if warnings:
        lines.append("Validation warnings:\n" + "\n".join(f"- {w}" for w in warnings))
    lines.append("Surviving mutants:")
    for mutant in survivors:
        text = f"## {mutant.id} ({mutant.operator}, line {mutant.line})\n{mutant.diff}"
        if mutant.distinguishing_input is not None:
            text += f"\nOn args {json.dumps(mutant.distinguishing_input)}: {mutant.difference}."
        else:
            text += "\nNo drawn input told it apart from the implementation."
        lines.append(text)
    return [
        {"role": "system", "content": STRENGTHEN_SYSTEM},
        {"role": "user", "content": "\n\n".join(lines)},
    ]


def strengthen(
    spec: ToolSpec, survivors: Sequence[Any], llm: LLM, *, task: str | None = None
) -> Strengthening:
    """Ask the designer to answer ``survivors`` (``toolsmith.mutation.MutantResult``s): new
    examples and properties that fit ``spec``, or mutants marked equivalent with a reason. An
    answer naming unknown mutants, leaving one unanswered, or adding tests that do not fit the
    spec is sent back with the problem (``ask_structured``'s repairs)."""
    ids = {m.id for m in survivors}

    class Answer(Strengthening):
        @model_validator(mode="after")
        def _fits(self) -> Answer:
            marked = {e.mutant for e in self.equivalent}
            unknown = sorted(marked - ids)
            if unknown:
                raise ValueError(f"equivalent names mutants that did not survive: {unknown}")
            if not self.examples and not self.properties and marked != ids:
                raise ValueError(
                    f"add examples or properties, or mark {sorted(ids - marked)} equivalent"
                )
            self.applied_to(spec)
            return self

    Answer.__name__ = "Strengthening"
    answer = ask_structured(llm, strengthen_messages(spec, survivors, task), Answer)
    return Strengthening.model_validate(answer.model_dump(mode="json"))
