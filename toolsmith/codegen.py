"""Code generation: a ToolSpec (and the last attempt's failures) in, one Python module out.

Models wrap code in prose and fences, name functions wrongly and forget imports; extraction is
forgiving about the wrapping and strict about the result, whose problems go back to the fix loop
like test failures.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from toolsmith.designer import lessons_text
from toolsmith.errors import UsageError
from toolsmith.llm import LLM, Message
from toolsmith.spec import ToolSpec

SPEC_CONFLICT = "SPEC_CONFLICT:"

SYSTEM = """You write one Python module implementing a tool from its specification.
Rules:
- Define a top-level function named exactly `{name}` taking keyword arguments named after the
  parameter schema's properties (give optional ones defaults).
- Return only JSON-serialisable values matching the `returns` schema.
- For bad input raise only the exceptions listed in `raises`, with a helpful message.
- Be deterministic and never modify the arguments you receive.
- {deps}
- {caps}
- Answer with the module in one ```python fenced block and nothing else.
- If the specification contradicts itself (for example an example breaks a stated property),
  answer instead with one line starting with {conflict} and say exactly which parts conflict."""


NO_FENCE = (
    "Your answer held no ```python fenced block, so all of it was read as code. Answer with "
    "the whole module in one ```python fenced block and nothing else."
)


def ambiguous(blocks: int, name: str) -> str:
    """What the model is told when its answer held several code blocks."""
    return (
        f"Your answer was ambiguous: it held {blocks} python code blocks, and only the last "
        f"complete one defining `{name}` was tested. Answer with the whole module in exactly one "
        "```python fenced block: no outline or usage blocks."
    )


@dataclass(frozen=True)
class GeneratedCode:
    """What the model answered: code, or a claim that the spec contradicts itself.

    ``blocks`` counts the python code blocks in the answer; more than one makes it ambiguous.
    """

    code: str = ""
    conflict: str | None = None
    raw: str = ""
    fenced: bool = True
    blocks: int = 1


_OPENING = re.compile(r"[ \t]*(`{3,}|~{3,})[ \t]*([^\s`]*)[ \t]*")
_PYTHON_LABEL = re.compile(r"(python|py)\d*(\.\d+)?", re.I)


def _fence_blocks(text: str) -> list[str]:
    """The fenced blocks labelled python (any case, any version), py or nothing.

    Backtick or tilde fences of three or more, CRLF or LF; a block the model never closed runs
    to the end of the answer. Blocks in other languages are skipped whole.
    """
    blocks: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = _OPENING.fullmatch(lines[i])
        i += 1
        if opening is None:
            continue
        fence, label = opening.groups()
        closing = re.compile(rf"[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*")
        body: list[str] = []
        while i < len(lines) and not closing.fullmatch(lines[i]):
            body.append(lines[i])
            i += 1
        i += 1  # past the closing fence
        if not label or _PYTHON_LABEL.fullmatch(label):
            blocks.append("\n".join(body) + "\n")
    return blocks


def _parses(block: str) -> bool:
    try:
        ast.parse(block)
    except SyntaxError:
        return False
    return True


def extract_code(text: str, name: str) -> str:
    """The module in a model's answer: of the fenced blocks defining ``name``, the last complete
    one (it parses), else the last; with none, the first block, else the whole text.

    Models send an outline, then the module, then a usage example; the module comes last among
    the blocks that define the function, and a block broken off mid-way is never preferred.
    """
    blocks = _fence_blocks(text)
    defining = [
        b for b in blocks if re.search(rf"^\s*(async\s+)?def\s+{re.escape(name)}\s*\(", b, re.M)
    ]
    complete = [b for b in defining if _parses(b)]
    return (complete or defining or blocks[:1] or [text])[-1].strip() + "\n"


def code_problems(code: str, name: str) -> list[str]:
    """Why ``code`` cannot be tested at all; an empty list means it can."""
    try:
        tree = ast.parse(code)
    except SyntaxError as e:
        return [f"SyntaxError at line {e.lineno}: {e.msg}"]
    funcs = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    if name not in funcs:
        found = ", ".join(sorted(funcs)) or "none"
        return [f"the module defines no top-level function named {name!r} (found: {found})"]
    return []


def check_impl(code: str, name: str, path: str | None = None) -> None:
    """Refuse your own implementation (``--impl``, ``build_from_spec``) when it cannot be
    tested, before any build: no model will repair it, so an attempt would only fail.

    Raises ``UsageError``: a syntax error as ``PATH:LINE:COL`` (``<implementation>`` for code
    given as a string) with the offending line and a caret under the column, as compilers
    print it, or a module without a top-level function ``name``; each with what to do.
    """
    source = path or "<implementation>"
    try:
        tree = ast.parse(code, filename=source)
    except SyntaxError as e:
        line, col = e.lineno or 0, e.offset or 0
        shown = ""
        if e.text:
            text = e.text.rstrip("\n").replace("\t", " ")  # one column per character
            shown = f"\n{text}\n{' ' * max(col - 1, 0)}^"
        check = f"; `python -m py_compile {path}` checks it first" if path else ""
        raise UsageError(
            f"{source}:{line}:{col}: SyntaxError: {e.msg}{shown}",
            hint=f"correct line {line} of {source} ({e.msg}) and build again{check}. Code you "
            "bring is built as given: no model repairs it",
        ) from None
    funcs = sorted(
        n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
    )
    if name not in funcs:
        found = ", ".join(funcs) or "none"
        raise UsageError(
            f"{source} defines no top-level function named {name!r} (found: {found})",
            hint=f"define `def {name}(...)` at the top level of {source}, as the spec's name "
            "says, or change the spec's name",
        )


def build_messages(
    spec: ToolSpec,
    previous_code: str | None,
    feedback: str | None,
    lessons: Sequence[str] = (),
    system: str = SYSTEM,
) -> list[Message]:
    deps = (
        f"You may import these dependencies: {', '.join(spec.dependencies)}; otherwise stdlib only."
        if spec.dependencies
        else "Use the Python standard library only."
    )
    caps = (
        f"You may use exactly these capabilities: {', '.join(spec.capabilities)}."
        if spec.capabilities
        else "Do no I/O: no files, network, environment, subprocesses or dynamic imports."
    )
    system = system.format(name=spec.name, deps=deps, caps=caps, conflict=SPEC_CONFLICT)
    user = "Specification:\n" + json.dumps(spec.model_dump(mode="json"), indent=2)
    user += lessons_text(lessons)
    if previous_code is not None and feedback:
        user += (
            "\n\nYour previous implementation:\n```python\n"
            + previous_code
            + "```\n\nIt failed in the sandbox:\n"
            + feedback
            + "\n\nFix the implementation so every test passes."
        )
    elif feedback:  # about an answer that was not code, e.g. a reported conflict
        user += "\n\n" + feedback
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def generate_code(
    spec: ToolSpec,
    llm: LLM,
    *,
    previous_code: str | None = None,
    feedback: str | None = None,
    lessons: Sequence[str] = (),
    system: str = SYSTEM,
) -> GeneratedCode:
    """Ask for the module; ``lessons`` (recalled lessons' prompt texts) follow the spec.
    ``system``: the system template (fields ``{name}``, ``{deps}``, ``{caps}``, ``{conflict}``;
    the active ``toolsmith.prompts.PromptSet``'s, default the shipped one)."""
    text = llm.complete(build_messages(spec, previous_code, feedback, lessons, system)).text
    stripped = text.strip()
    if stripped.startswith(SPEC_CONFLICT):
        return GeneratedCode(conflict=stripped[len(SPEC_CONFLICT) :].strip(), raw=text)
    blocks = len(_fence_blocks(text))
    return GeneratedCode(
        code=extract_code(text, spec.name), raw=text, fenced=blocks > 0, blocks=max(blocks, 1)
    )
