"""Designer and code generator against the scripted loopback model (standing in for a paid LLM)."""

from __future__ import annotations

import ast
import copy
from pathlib import Path

import pytest

from tests.test_spec import BASE
from toolsmith.codegen import code_problems, extract_code, generate_code
from toolsmith.designer import Candidate, design
from toolsmith.errors import LLMResponseError
from toolsmith.llm import LLMConfig, OpenAILLM
from toolsmith.spec import ToolSpec
from toolsmith.testgen import generate_tests
from toolsmith.testing import ScriptedLLMServer

SLUGIFY = """import re


def slugify(text):
    if not text:
        raise ValueError("empty text")
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
"""


def llm(srv: ScriptedLLMServer) -> OpenAILLM:
    return OpenAILLM(LLMConfig(base_url=srv.base_url, model="scripted", max_retries=0))


def test_design_returns_a_valid_spec() -> None:
    """A spec answer is validated into a ToolSpec."""
    with ScriptedLLMServer({"steps": [{"json": {"spec": BASE}}]}) as srv:
        answer = design("make slugs", llm(srv))
    assert answer.spec is not None and answer.spec.name == "slugify"
    assert "make slugs" in srv.requests[0]["messages"][1]["content"]


def test_invalid_spec_is_reasked_with_the_validation_error() -> None:
    """A spec failing validation goes back to the model with the field that failed."""
    bad = copy.deepcopy(BASE)
    bad["name"] = "Bad Name"
    with ScriptedLLMServer({"steps": [{"json": {"spec": bad}}, {"json": {"spec": BASE}}]}) as srv:
        answer = design("make slugs", llm(srv))
    assert answer.spec is not None
    assert "snake_case" in srv.requests[1]["messages"][-1]["content"]


def test_spec_that_never_validates_fails_clearly() -> None:
    """Three invalid designs end in LLMResponseError, not a crash."""
    script = {"steps": [{"json": {"spec": {"name": "x"}}, "times": 3}]}
    with ScriptedLLMServer(script) as srv, pytest.raises(LLMResponseError, match="DesignAnswer"):
        design("anything", llm(srv))


def test_reuse_answer_names_a_candidate() -> None:
    """The model may answer with an offered registry tool instead of a new spec."""
    cand = Candidate(ref="slugify@1.0.0", description="slugs", parameters={}, returns={})
    with ScriptedLLMServer({"steps": [{"json": {"reuse": "slugify@1.0.0"}}]}) as srv:
        answer = design("make slugs", llm(srv), candidates=[cand])
    assert answer.reuse == "slugify@1.0.0"
    assert "slugify@1.0.0" in srv.requests[0]["messages"][1]["content"]


def test_reuse_of_unknown_tool_is_redesigned() -> None:
    """A reuse naming a tool that was not offered is not trusted: a new design is asked for."""
    script = {"steps": [{"json": {"reuse": "ghost@9.9.9"}}, {"json": {"spec": BASE}}]}
    with ScriptedLLMServer(script) as srv:
        answer = design("make slugs", llm(srv), candidates=[])
    assert answer.spec is not None


def test_code_is_extracted_from_prose_and_fences() -> None:
    """The block defining the function is chosen among several."""
    text = f"Here:\n```python\nimport os\n```\nand\n```python\n{SLUGIFY}```\nenjoy"
    assert extract_code(text, "slugify") == SLUGIFY
    assert code_problems(SLUGIFY, "slugify") == []


def test_code_problems_name_syntax_errors_and_wrong_names() -> None:
    """Untestable code is described in words the fix loop can act on."""
    assert "SyntaxError at line 1" in code_problems("def slugify(:\n", "slugify")[0]
    assert "found: slug" in code_problems("def slug(text): pass\n", "slugify")[0]


def test_generate_code_sends_feedback_and_detects_conflicts() -> None:
    """Failures from the last attempt reach the model; a spec conflict is reported as such."""
    spec = ToolSpec.parse(BASE)
    script = {"steps": [{"reply": f"```python\n{SLUGIFY}```"}, {"reply": "SPEC_CONFLICT: ex 1"}]}
    with ScriptedLLMServer(script) as srv:
        first = generate_code(
            spec, llm(srv), previous_code="x = 1\n", feedback="test_example_0 failed"
        )
        second = generate_code(spec, llm(srv))
    assert first.code == SLUGIFY and first.conflict is None
    assert "test_example_0 failed" in srv.requests[0]["messages"][1]["content"]
    assert second.conflict == "ex 1"


def test_generated_tests_parse_and_count() -> None:
    """One test per example and one for generated inputs; the file is valid Python."""
    spec = ToolSpec.parse(BASE)
    suite = generate_tests(spec, max_examples=50)
    assert suite.expected == len(spec.examples) + 1
    source = suite.files["test_tool.py"]
    tree = ast.parse(source)
    tests = [
        n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")
    ]
    assert len(tests) == suite.expected
    assert "max_examples=50" in source


def test_build_refuses_a_reuse_that_was_never_offered(tmp_path: Path) -> None:
    """A model insisting on an unoffered tool (even under --force) fails the build clearly."""
    from toolsmith.pipeline import BuildOptions, Toolsmith
    from toolsmith.registry import Registry

    script = {"steps": [{"json": {"reuse": "rogue@9.9.9"}, "times": 2}]}
    with ScriptedLLMServer(script) as srv:
        ts = Toolsmith(Registry(tmp_path / "reg"), llm(srv))
        with pytest.raises(LLMResponseError, match=r"rogue@9\.9\.9"):
            ts.build("anything", BuildOptions(force=True))
    assert "not one of the offered tools" in srv.requests[1]["messages"][-1]["content"]


def test_self_referencing_design_is_reasked_not_a_recursion_error() -> None:
    """A designed spec whose parameters $ref themselves goes back to the model like any error."""
    looping = copy.deepcopy(BASE)
    looping["parameters"] = {"type": "object", "$ref": "#"}
    deep = "[" * 100_000 + "]" * 100_000
    script = {"steps": [{"json": {"spec": looping}}, {"reply": deep}, {"json": {"spec": BASE}}]}
    with ScriptedLLMServer(script) as srv:
        big_budget = LLMConfig(base_url=srv.base_url, model="scripted", max_tokens=100_000)
        answer = design("make slugs", OpenAILLM(big_budget))
    assert answer.spec is not None and answer.spec.name == "slugify"
    assert "$ref cycle" in srv.requests[1]["messages"][-1]["content"]
    assert "nested too deeply" in srv.requests[2]["messages"][-1]["content"]


@pytest.mark.parametrize(
    "answer",
    [
        f"Here is the implementation:\n```Python\n{SLUGIFY}```\n",
        f"```python3\n{SLUGIFY}```",
        f"```py3.12\n{SLUGIFY}```",
        f"```PY\n{SLUGIFY}```",
        f"~~~python\n{SLUGIFY}~~~\n",
        f"````python\n{SLUGIFY}````",
        f"Sure:\r\n```python\r\n{SLUGIFY.replace(chr(10), chr(13) + chr(10))}```\r\n",
        f"Here you go:\n```python\n{SLUGIFY}",
        f'```json\n{{"a": 1}}\n```\nthen\n```\n{SLUGIFY}```',
    ],
    ids=["Python", "python3", "py3.12", "PY", "tilde", "four", "crlf", "unclosed", "json-first"],
)
def test_fenced_code_is_found_in_its_many_spellings(answer: str) -> None:
    """Labels in any case and version, tildes, CRLF and an unclosed last fence all extract."""
    assert extract_code(answer, "slugify") == SLUGIFY


def test_structured_output_schema_carries_the_spec_constraints() -> None:
    """Servers that constrain decoding to the schema they are sent (llama.cpp, vLLM, Ollama) can
    only keep to constraints it states: the sent schema refuses what the validators refuse."""
    import jsonschema

    with ScriptedLLMServer({"steps": [{"json": {"spec": BASE}}]}) as srv:
        design("make slugs", llm(srv))
    sent = srv.requests[0]["response_format"]["json_schema"]["schema"]
    check = jsonschema.Draft202012Validator(sent)
    assert check.is_valid({"spec": BASE})
    assert check.is_valid({"reuse": "slugify@1.0.0"})
    bad_cases = {
        "name": {**BASE, "name": "Slug-ify"},
        "long name": {**BASE, "name": "a" * 65},
        "parameters": {**BASE, "parameters": {"type": "string"}},
        "parameter name": {**BASE, "parameters": {"type": "object", "properties": {"a b": {}}}},
        "capability": {**BASE, "capabilities": ["net:anywhere"]},
        "raises": {**BASE, "raises": ["not a class"]},
        "example": {**BASE, "examples": [{"args": {}, "returns": 1, "raises": "ValueError"}]},
        "property": {**BASE, "properties": [{"name": "p", "source": "x = 1"}]},
    }
    for case, spec in bad_cases.items():
        assert not check.is_valid({"spec": spec}), case
        with pytest.raises(ValueError):  # and the validators agree
            ToolSpec.model_validate(spec)
    assert not check.is_valid({"spec": BASE, "reuse": "slugify@1.0.0"})
    assert not check.is_valid({"reuse": None})


def test_failed_design_says_what_the_model_kept_getting_wrong() -> None:
    """Three answers wrong in the same place (and once elsewhere) are summarised across all of
    them, not by quoting the last answer's first problem."""
    answers = [
        {"spec": {**BASE, "name": "Slugify"}},
        {"spec": {**BASE, "name": "slug-ify", "raises": ["not a class"]}},
        {"spec": {**BASE, "name": "class"}},
    ]
    script = {"steps": [{"json": a} for a in answers]}
    with ScriptedLLMServer(script) as srv, pytest.raises(LLMResponseError) as e:
        design("make slugs", llm(srv))
    msg = e.value.message
    assert "in 3 answers" in msg and "spec.name in 3 of 3" in msg and "keyword" in msg
    assert "spec.raises in 1 of 3" in msg
    assert msg.index("spec.name") < msg.index("spec.raises")


OUTLINE = "```python\ndef slugify(text):\n    ...  # TODO\n```\n"
USAGE = '```python\nprint(slugify("Hello World"))\n```\n'


@pytest.mark.parametrize(
    "answer",
    [
        f"Outline:\n{OUTLINE}Module:\n```python\n{SLUGIFY}```\nUsage:\n{USAGE}",
        f"```python\n{SLUGIFY}```\nthen\n{USAGE}",
        f"```python\n{SLUGIFY}```\n```python\ndef slugify(text):\n    return (\n```\n",
        f"{OUTLINE}```python\n{SLUGIFY}",
    ],
    ids=["outline-module-usage", "module-usage", "broken-last", "unclosed-last"],
)
def test_several_blocks_take_the_last_complete_one_defining_the_function(answer: str) -> None:
    """An outline before and a usage example after the module do not hide it; a last block that
    does not parse does not win; an unclosed last module still counts."""
    assert extract_code(answer, "slugify") == SLUGIFY


def test_generated_code_counts_blocks_for_the_ambiguity_note() -> None:
    """One block is a plain answer; three make it ambiguous (the pipeline tells the model)."""
    spec = ToolSpec.model_validate(BASE)
    steps = [
        {"reply": f"```python\n{SLUGIFY}```"},
        {"reply": f"{OUTLINE}```python\n{SLUGIFY}```\n{USAGE}"},
    ]
    with ScriptedLLMServer({"steps": steps}) as srv:
        single, several = generate_code(spec, llm(srv)), generate_code(spec, llm(srv))
    assert (single.blocks, several.blocks) == (1, 3)
    assert several.code == SLUGIFY


def test_check_impl_points_at_the_error_in_code_given_as_a_string() -> None:
    """Code handed to build_from_spec as a string: `<implementation>:LINE:COL`, the line, a
    caret, and no py_compile advice (there is no file)."""
    from toolsmith.codegen import check_impl
    from toolsmith.errors import UsageError

    with pytest.raises(UsageError) as e:
        check_impl("def slugify(text):\n    return text.lower(\n", "slugify")
    message = e.value.message.splitlines()
    assert message[0] == "<implementation>:2:22: SyntaxError: '(' was never closed"
    assert message[2].index("^") == message[1].index("(")
    assert e.value.hint and "py_compile" not in e.value.hint
    check_impl("def slugify(text):\n    return text\n", "slugify")  # fine: no error
