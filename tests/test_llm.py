"""LLM access through the real openai SDK against a real loopback server with a scripted model.

The scripted server stands in for a paid model (the one thing outside); HTTP, JSON, retries and
timeouts are all real.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from toolsmith.errors import (
    LLMNotConfiguredError,
    LLMResponseError,
    LLMTruncatedError,
    LLMUnavailableError,
    UsageError,
)
from toolsmith.llm import LLMConfig, OpenAILLM, ask_structured, extract_json
from toolsmith.testing import ScriptedLLMServer


class Answer(BaseModel):
    name: str
    count: int


def llm_for(server: ScriptedLLMServer, **cfg: Any) -> OpenAILLM:
    return OpenAILLM(LLMConfig(base_url=server.base_url, model="scripted", **cfg))


def ask(llm: OpenAILLM) -> Answer:
    return ask_structured(llm, [{"role": "user", "content": "Give me an answer"}], Answer)


def test_structured_answer_is_parsed_and_tokens_counted() -> None:
    """A valid JSON answer becomes the model; usage is accounted."""
    with ScriptedLLMServer({"steps": [{"json": {"name": "a", "count": 2}}]}) as srv:
        llm = llm_for(srv)
        assert ask(llm) == Answer(name="a", count=2)
        assert llm.usage.calls == 1 and llm.usage.prompt_tokens > 0
        sent = srv.requests[0]
        assert sent["response_format"]["type"] == "json_schema"


def test_json_in_prose_and_fences_is_extracted() -> None:
    """Answers wrapped in prose or code fences still parse."""
    assert extract_json('Sure!\n```json\n{"a": 1}\n```\nDone.') == {"a": 1}
    assert extract_json('Here you go: {"a": [1, 2]} hope it helps') == {"a": [1, 2]}
    with pytest.raises(ValueError, match="no JSON"):
        extract_json("no json here")


def test_malformed_then_invalid_then_valid_is_repaired() -> None:
    """Malformed JSON and a schema-invalid answer are re-asked with the errors."""
    script = {
        "steps": [
            {"reply": "{not json"},
            {"json": {"name": "a", "count": "many"}},
            {"json": {"name": "a", "count": 3}},
        ]
    }
    with ScriptedLLMServer(script) as srv:
        assert ask(llm_for(srv)) == Answer(name="a", count=3)
        repair = srv.requests[2]["messages"][-1]["content"]
        assert "count" in repair and "invalid" in repair


def test_never_valid_gives_up_with_response_error() -> None:
    """Bounded repairs: after the last try, LLMResponseError names the problem."""
    with ScriptedLLMServer({"steps": [{"reply": "nope", "times": 3}]}) as srv:
        with pytest.raises(LLMResponseError, match=r"in 3 answers.*\(answer\) in 3 of 3"):
            ask(llm_for(srv))
        assert srv.remaining == 0


def test_rate_limit_then_success() -> None:
    """A 429 with Retry-After is retried by the SDK and the build goes on."""
    script = {"steps": [{"status": 429, "retry_after": 0}, {"json": {"name": "b", "count": 1}}]}
    with ScriptedLLMServer(script) as srv:
        assert ask(llm_for(srv)).name == "b"
        assert len(srv.requests) == 2


def test_server_without_structured_output_falls_back() -> None:
    """An endpoint refusing response_format is asked again with the schema in the prompt."""
    script = {
        "steps": [
            {"status": 400, "message": "response_format json_schema is not supported"},
            {"reply": 'ok: {"name": "c", "count": 5}'},
        ]
    }
    with ScriptedLLMServer(script) as srv:
        assert ask(llm_for(srv)).count == 5
        assert "response_format" not in srv.requests[1]
        assert "JSON Schema" in srv.requests[1]["messages"][0]["content"]


def test_hanging_endpoint_times_out() -> None:
    """An endpoint that hangs past the timeout gives LLMUnavailableError, not a hang."""
    with ScriptedLLMServer({"steps": [{"hang_s": 5}]}) as srv:
        llm = llm_for(srv, timeout_s=0.5, max_retries=0)
        with pytest.raises(LLMUnavailableError, match="did not answer within"):
            ask(llm)


def test_dead_endpoint_is_unavailable() -> None:
    """Nothing listening: a clear error naming the endpoint and the fix."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    llm = OpenAILLM(LLMConfig(base_url=f"http://127.0.0.1:{port}/v1", model="m", max_retries=0))
    with pytest.raises(LLMUnavailableError, match=f"127.0.0.1:{port}") as exc:
        ask(llm)
    assert exc.value.hint and "OPENAI_BASE_URL" in exc.value.hint


def test_unconfigured_says_how_to_configure(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With no endpoint anywhere, the error explains every way to configure one."""
    for var in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "TOOLSMITH_MODEL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TOOLSMITH_CONFIG", str(tmp_path / "none.toml"))
    with pytest.raises(LLMNotConfiguredError) as exc:
        LLMConfig.resolve()
    assert "OPENAI_BASE_URL" in str(exc.value.hint) and "toolsmith demo" in str(exc.value.hint)


def test_config_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Flags beat environment, environment beats the config file."""
    cfg = tmp_path / "config.toml"
    cfg.write_text('[llm]\nbase_url = "http://file/v1"\nmodel = "file-model"\ntimeout_s = 7\n')
    monkeypatch.setenv("TOOLSMITH_CONFIG", str(cfg))
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("TOOLSMITH_MODEL", "env-model")
    c = LLMConfig.resolve(base_url="http://127.0.0.1:9/v1")
    assert (c.base_url, c.model, c.timeout_s) == ("http://127.0.0.1:9/v1", "env-model", 7)
    assert c.endpoint_kind == "local"


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ('llm = "x"\n', "must be a table"),
        ('[llm]\nbase_url = "http://h/v1"\nmodel = "m"\ntimeout_s = "soon"\n', "timeout_s"),
        ("[llm\n", "cannot read config file"),
    ],
)
def test_bad_config_file_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, content: str, fragment: str
) -> None:
    """A malformed config file names the problem instead of raising a traceback."""
    cfg = tmp_path / "config.toml"
    cfg.write_text(content)
    monkeypatch.setenv("TOOLSMITH_CONFIG", str(cfg))
    for var in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "TOOLSMITH_MODEL"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(LLMNotConfiguredError, match=fragment):
        LLMConfig.resolve()


def test_server_closes_without_being_started() -> None:
    """close() on a server that never started returns at once (it used to wait forever)."""
    ScriptedLLMServer({"steps": [{"reply": "x"}]}).close()


def test_usage_since_is_one_builds_share() -> None:
    """Token accounting per build is the difference from a snapshot."""
    with ScriptedLLMServer({"steps": [{"json": {"name": "a", "count": 1}, "times": 2}]}) as srv:
        llm = llm_for(srv)
        ask(llm)
        before = llm.usage.as_dict()
        ask(llm)
    assert llm.usage.since(before)["calls"] == 1 and llm.usage.calls == 2


def completion(message: Any, **extra: Any) -> str:
    choice = {"index": 0, "message": message, "finish_reason": "stop"}
    body = {"id": "x", "object": "chat.completion", "created": 1, "model": "m"}
    return json.dumps({**body, "choices": [choice], **extra})


HI = {"role": "assistant", "content": "hi"}
MALFORMED = {
    "html page": ("text/html", "<html>proxy login</html>", "not a chat completion"),
    "plain text": ("text/plain", "hello", "not a chat completion"),
    "json string": ("application/json", json.dumps("hello"), "not a chat completion"),
    "choices object": ("application/json", json.dumps({"choices": {"a": 1}}), "choices is dict"),
    "message null": ("application/json", completion(None), "no message"),
    "content number": ("application/json", completion({"content": 3}), "of type int"),
}


@pytest.fixture
def raw_server() -> Iterator[tuple[str, dict[str, tuple[str, str]]]]:
    """A loopback server answering every POST 200 with whatever body the test puts in ``answer``."""
    answer: dict[str, tuple[str, str]] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            content_type, body = answer["body"]
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", answer
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_200_answer_is_a_response_error_naming_the_endpoint(
    raw_server: tuple[str, dict[str, tuple[str, str]]], case: str
) -> None:
    """An HTML page, a null message or non-text content is an LLMResponseError, not a crash."""
    base_url, answer = raw_server
    content_type, body, fragment = MALFORMED[case]
    answer["body"] = (content_type, body)
    llm = OpenAILLM(LLMConfig(base_url=base_url, model="m", max_retries=0))
    with pytest.raises(LLMResponseError, match=fragment) as exc:
        llm.complete([{"role": "user", "content": "x"}])
    assert base_url in exc.value.message


@pytest.mark.parametrize(
    ("body", "tokens"),
    [
        (completion(HI, usage={}), 0),
        (completion(HI, usage={"prompt_tokens": None, "completion_tokens": None}), 0),
        (completion({"role": "assistant", "content": [{"type": "text", "text": "hi"}]}), 0),
        (completion(HI, usage={"prompt_tokens": 5, "completion_tokens": 2}), 5),
    ],
    ids=["usage-empty", "usage-null", "content-parts", "usage-counted"],
)
def test_odd_but_usable_answers_are_read(
    raw_server: tuple[str, dict[str, tuple[str, str]]], body: str, tokens: int
) -> None:
    """Missing token counts count as 0; content given as text parts is joined."""
    base_url, answer = raw_server
    answer["body"] = ("application/json", body)
    llm = OpenAILLM(LLMConfig(base_url=base_url, model="m", max_retries=0))
    result = llm.complete([{"role": "user", "content": "x"}])
    assert (result.text, result.prompt_tokens) == ("hi", tokens)


@pytest.mark.parametrize("url", ["http://[::1", "http://h:99999/v1", "ftp://h/v1", "localhost"])
def test_unusable_base_url_is_refused_naming_it(url: str) -> None:
    """A base URL that is not an http(s) URL is refused when configured, naming it: as a bad
    argument when passed to ``resolve``, as a bad LLMConfig when constructed directly."""
    with pytest.raises(UsageError, match="base_url") as exc:
        LLMConfig.resolve(base_url=url, model="m")
    assert repr(url) in exc.value.message
    with pytest.raises(LLMNotConfiguredError, match=re.escape(repr(url))):
        LLMConfig(base_url=url, model="m")


CLI = "from toolsmith.cli import main; main()"


def test_cli_unusable_base_url_is_one_clear_line(tmp_path: Path) -> None:
    """`toolsmith build --base-url 'http://[::1'` is a usage error (exit 2) naming the value, not
    an httpx traceback."""
    proc = subprocess.run(
        [sys.executable, "-c", CLI, "build", "a task", "--base-url", "http://[::1"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TOOLSMITH_MODEL": "m"},
        timeout=60,
    )
    assert proc.returncode == UsageError.exit_code == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "http://[::1" in proc.stderr


def test_completion_budget_is_sent_and_a_cut_off_answer_is_truncated_not_malformed() -> None:
    """Every request carries the budget; an answer that hits it (finish reason `length`, as the
    scripted model's server reports like a real one) is an LLMTruncatedError keeping the text,
    raised at once rather than re-asked as if it were malformed."""
    looping = '{"name": "a", "count": ' + "1" * 2000
    with ScriptedLLMServer({"steps": [{"reply": looping}]}) as srv:
        llm = llm_for(srv, max_tokens=100)
        with pytest.raises(LLMTruncatedError, match="cut off at the completion budget of 100") as e:
            ask(llm)
        assert srv.requests[0]["max_tokens"] == 100 and len(srv.requests) == 1
    assert e.value.partial == looping[:400]
    assert e.value.hint and "--max-tokens" in e.value.hint
    assert llm.usage.completion_tokens == 100  # the spent tokens are still counted


def test_scripted_length_finish_is_truncation_even_under_the_budget() -> None:
    """A server may stop for its own limits: finish reason `length` is what decides."""
    script = {"steps": [{"reply": '{"name"', "finish_reason": "length"}]}
    with ScriptedLLMServer(script) as srv, pytest.raises(LLMTruncatedError):
        ask(llm_for(srv))


def test_timeout_retries_and_budget_come_from_flags_then_environment_then_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The three knobs resolve like the endpoint and model do; defaults are bounded."""
    cfg = tmp_path / "config.toml"
    cfg.write_text('[llm]\nbase_url = "http://h/v1"\nmodel = "m"\nmax_tokens = 900\n')
    monkeypatch.setenv("TOOLSMITH_CONFIG", str(cfg))
    for var in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "TOOLSMITH_MODEL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TOOLSMITH_LLM_TIMEOUT", "30")
    monkeypatch.setenv("TOOLSMITH_LLM_RETRIES", "0")
    monkeypatch.delenv("TOOLSMITH_LLM_MAX_TOKENS", raising=False)
    c = LLMConfig.resolve()
    assert (c.timeout_s, c.max_retries, c.max_tokens) == (30, 0, 900)
    c = LLMConfig.resolve(timeout_s=5, max_retries=2, max_tokens=2000)
    assert (c.timeout_s, c.max_retries, c.max_tokens) == (5, 2, 2000)
    monkeypatch.setenv("TOOLSMITH_LLM_MAX_TOKENS", "lots")
    with pytest.raises(LLMNotConfiguredError, match=r"max_tokens \(from \$TOOLSMITH_LLM_MAX"):
        LLMConfig.resolve()
    assert LLMConfig(model="m").max_tokens == 4096


def test_cli_flags_set_the_budget_and_a_truncated_design_exits_as_an_llm_error(
    tmp_path: Path,
) -> None:
    """`toolsmith build --max-tokens 64 --llm-retries 0 --llm-timeout 9` reaches the request;
    the scripted model rambles past the budget, which is reported as truncated."""
    with ScriptedLLMServer({"steps": [{"reply": "x" * 5000}]}) as srv:
        flags = ["--base-url", srv.base_url, "--model", "scripted", "--max-tokens", "64"]
        flags += ["--llm-retries", "0", "--llm-timeout", "9", "--registry", str(tmp_path / "reg")]
        proc = subprocess.run(
            [sys.executable, "-c", CLI, "build", "a task", *flags],
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
            timeout=120,
        )
        assert srv.requests and srv.requests[0]["max_tokens"] == 64
    assert proc.returncode == LLMTruncatedError.exit_code, proc.stderr
    assert "LLMTruncatedError" in proc.stderr and "--max-tokens" in proc.stderr
