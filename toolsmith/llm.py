"""LLM access over any OpenAI-compatible chat completions endpoint.

One narrow interface (``LLM.complete``) with one error family out (``LLMError``): the openai SDK's
exceptions are translated at this boundary. Retries with backoff on 429/5xx/timeouts are the SDK's
own (it honours ``Retry-After``); we only bound them and count tokens.

Structured output asks for a JSON schema (``response_format``); servers that refuse it get the
schema in the prompt instead, and every answer is extracted, validated with pydantic and, if
invalid, re-asked with the validation errors, a bounded number of times.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar
from urllib.parse import urlparse

import openai
import platformdirs
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from toolsmith.errors import (
    LLMNotConfiguredError,
    LLMResponseError,
    LLMTruncatedError,
    LLMUnavailableError,
    ToolsmithError,
)
from toolsmith.log import get_logger
from toolsmith.models import PublicModel
from toolsmith.settings import URL_EXAMPLE, Settings, check_base_url

log = get_logger(__name__)

Message = dict[str, str]
M = TypeVar("M", bound=BaseModel)

HOW_TO_CONFIGURE = (
    "set OPENAI_BASE_URL (any OpenAI-compatible endpoint: OpenAI, Azure, vLLM, Ollama, "
    "llama.cpp, LiteLLM), TOOLSMITH_MODEL and, if the endpoint needs one, OPENAI_API_KEY; or pass "
    "--base-url/--model/--api-key; or write them under [llm] in "
    f"{platformdirs.user_config_path('toolsmith') / 'config.toml'}; "
    "`toolsmith demo` shows a whole build with a scripted model and no key"
)


class LLMConfig(PublicModel):
    """Where the model is and how patient to be with it.

    ``timeout_s`` bounds one HTTP request (seconds), ``max_retries`` the SDK's retries of 429, 5xx
    and timeouts, and ``max_tokens`` the completion budget of every answer (tokens): a model that
    loops stops there, and its cut-off answer is an ``LLMTruncatedError``.
    """

    invalid: ClassVar[type[ToolsmithError]] = LLMNotConfiguredError

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = None
    model: str
    api_key: SecretStr | None = None
    timeout_s: float = Field(default=120.0, gt=0, le=3600)
    max_retries: int = Field(default=3, ge=0, le=10)
    max_tokens: int = Field(default=4096, ge=64, le=1_000_000)
    structured_output: bool = True

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, v: str | None) -> str | None:
        try:
            return check_base_url(v)
        except ValueError as e:
            raise ValueError(f"{v!r} is {e}") from None

    @property
    def endpoint_kind(self) -> str:
        host = (urlparse(self.base_url).hostname or "") if self.base_url else "api.openai.com"
        if host == "api.openai.com":
            return "openai"
        if host.endswith(".azure.com"):
            return "azure"
        if host in ("localhost", "::1") or host.startswith("127."):
            return "local"
        return "openai-compatible"

    @classmethod
    def resolve(
        cls,
        *,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        timeout_s: float | None = None,
        max_retries: int | None = None,
        max_tokens: int | None = None,
        config_file: str | os.PathLike[str] | None = None,
        **overrides: Any,
    ) -> LLMConfig:
        """Each setting from its flag (the argument), else its environment variable, else
        ``[llm]`` in the config file (``toolsmith.settings``); raises ``LLMNotConfiguredError``
        naming the source of a bad value."""
        flags = {
            "llm.base_url": base_url,
            "llm.model": model,
            "llm.api_key": api_key,
            "llm.timeout_s": timeout_s,
            "llm.max_retries": max_retries,
            "llm.max_tokens": max_tokens,
        }
        settings = Settings.load(flags, config_file=config_file, error=LLMNotConfiguredError)
        llm = settings.llm
        if not llm.base_url and not llm.api_key:
            raise LLMNotConfiguredError("no LLM endpoint is configured", hint=HOW_TO_CONFIGURE)
        if not llm.model:
            raise LLMNotConfiguredError("no model is configured", hint=HOW_TO_CONFIGURE)
        values = llm.model_dump()
        try:
            return cls.model_validate({**values, **overrides})
        except ValidationError as e:
            err = e.errors()[0]
            key = ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            where = settings.sources.get(f"llm.{key}", "the arguments")
            raise LLMNotConfiguredError(
                f"LLM setting {key} (from {where}): {msg}", hint=f"fix the value in {where}"
            ) from None


@dataclass
class Usage:
    """Token accounting across every call an LLM client made; ``since`` gives one build's."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, prompt: int, completion: int) -> None:
        self.calls += 1
        self.prompt_tokens += prompt
        self.completion_tokens += completion

    def as_dict(self) -> dict[str, int]:
        return {
            "calls": self.calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
        }

    def since(self, before: dict[str, int]) -> dict[str, int]:
        """What was spent after ``before`` (an earlier ``as_dict()``): one build's share."""
        return {k: v - before.get(k, 0) for k, v in self.as_dict().items()}


@dataclass
class Completion:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


class LLM(Protocol):
    """What the designer and code generator need from a model."""

    usage: Usage

    @property
    def model(self) -> str: ...

    @property
    def endpoint_kind(self) -> str: ...

    def complete(
        self, messages: Sequence[Message], *, json_schema: dict[str, Any] | None = None
    ) -> Completion: ...


@dataclass
class OpenAILLM:
    """An OpenAI-compatible endpoint through the official SDK."""

    config: LLMConfig
    usage: Usage = field(default_factory=Usage)

    def __post_init__(self) -> None:
        key = self.config.api_key.get_secret_value() if self.config.api_key else "not-needed"
        try:
            self._client = openai.OpenAI(
                base_url=self.config.base_url,
                api_key=key,
                timeout=self.config.timeout_s,
                max_retries=self.config.max_retries,
            )
        except Exception as e:  # the SDK's HTTP layer refusing the URL, whatever its type
            raise LLMNotConfiguredError(
                f"cannot use the LLM endpoint {self.config.base_url!r}: {e}",
                hint=f"set OPENAI_BASE_URL or --base-url to an http(s) URL such as {URL_EXAMPLE}",
            ) from None
        self._structured = self.config.structured_output

    @property
    def model(self) -> str:
        return self.config.model

    @property
    def endpoint_kind(self) -> str:
        return self.config.endpoint_kind

    def complete(
        self, messages: Sequence[Message], *, json_schema: dict[str, Any] | None = None
    ) -> Completion:
        # OpenAI's own API names the budget max_completion_tokens (max_tokens is refused by its
        # reasoning models); llama.cpp, vLLM, Ollama and the other servers read max_tokens.
        budget = "max_completion_tokens" if self.endpoint_kind == "openai" else "max_tokens"
        kwargs: dict[str, Any] = {budget: self.config.max_tokens}
        if json_schema is not None and self._structured:
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": json_schema},
            }
        try:
            resp = self._client.chat.completions.create(
                model=self.config.model,
                messages=list(messages),  # type: ignore[arg-type]
                **kwargs,
            )
        except openai.BadRequestError as e:
            if "response_format" in kwargs and "response_format" in str(e):
                log.info("llm.structured_output_unsupported", endpoint=self.config.base_url)
                self._structured = False
                return self.complete(messages, json_schema=json_schema)
            raise LLMUnavailableError(
                f"the endpoint rejected the request: {e.message}",
                hint="check the model name and the endpoint's API",
            ) from None
        except openai.AuthenticationError:
            raise LLMUnavailableError(
                "the endpoint refused the API key", hint="set a valid OPENAI_API_KEY"
            ) from None
        except openai.APITimeoutError:
            raise LLMUnavailableError(
                f"the endpoint did not answer within {self.config.timeout_s:g}s "
                f"({self.config.max_retries} retries)",
                hint="check the endpoint is up, or raise the timeout (--llm-timeout or "
                "TOOLSMITH_LLM_TIMEOUT)",
            ) from None
        except openai.APIConnectionError as e:
            raise LLMUnavailableError(
                f"cannot reach the LLM endpoint {self.config.base_url or 'api.openai.com'}: {e}",
                hint="check OPENAI_BASE_URL and that the server is running",
            ) from None
        except openai.APIStatusError as e:
            raise LLMUnavailableError(
                f"the endpoint answered HTTP {e.status_code} after "
                f"{self.config.max_retries} retries: {e.message}",
                hint="wait and retry, or check the endpoint's logs",
            ) from None
        except openai.OpenAIError as e:
            raise LLMUnavailableError(f"LLM call failed: {e}") from None
        return self._completion(resp)

    def _completion(self, resp: Any) -> Completion:
        """The answer's text and token counts; any other shape is an LLMResponseError.

        The SDK does not validate a 200 body, so a proxy's HTML page, a null message or token
        counts that are not numbers arrive here as they are.
        """
        where = self.config.base_url or "api.openai.com"
        choices = _part(resp, "choices")
        if not isinstance(choices, list):
            seen = (
                f"body {resp[:120]!r}"
                if isinstance(resp, str)
                else f"choices is {type(choices).__name__}"
            )
            raise LLMResponseError(
                f"the endpoint {where} answered with something that is not a chat completion "
                f"({seen})",
                hint="check that the base URL points at an OpenAI-compatible /v1 API, "
                "not a proxy or web page",
            )
        if not choices:
            raise LLMResponseError(f"the endpoint {where} answered with no choices")
        message = _part(choices[0], "message")
        if message is None:
            raise LLMResponseError(
                f"the endpoint {where} answered with a choice that has no message",
                hint="check the endpoint's chat completions API",
            )
        content = _part(message, "content")
        text = _text(content)
        if text is None:
            raise LLMResponseError(
                f"the endpoint {where} answered with message content of type "
                f"{type(content).__name__}, not text",
                hint="check the endpoint's chat completions API",
            )
        usage = _part(resp, "usage")
        prompt = _count(_part(usage, "prompt_tokens"))
        completion = _count(_part(usage, "completion_tokens"))
        self.usage.add(prompt, completion)
        if _part(choices[0], "finish_reason") == "length":
            raise LLMTruncatedError(
                f"the model's answer was cut off at the completion budget of "
                f"{self.config.max_tokens} tokens ({len(text)} characters arrived), so it is "
                "incomplete rather than malformed",
                hint="raise the budget (--max-tokens, TOOLSMITH_LLM_MAX_TOKENS or [llm] "
                "max_tokens), or use a model that does not ramble or loop",
                partial=text,
            )
        return Completion(text=text, prompt_tokens=prompt, completion_tokens=completion)


def _part(obj: Any, name: str) -> Any:
    """A field of a response object the SDK built, or of a dict it left unparsed."""
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _text(content: Any) -> str | None:
    """Message content as text: a string, nothing, or a list of text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [_part(p, "text") for p in content if _part(p, "type") in ("text", None)]
        if texts and all(isinstance(t, str) for t in texts):
            return "".join(texts)
    return None


def _count(value: Any) -> int:
    """A token count, or 0 for a server that reports none (or nonsense)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


_FENCE = re.compile(r"```(?:[A-Za-z0-9_+-]*)\n(.*?)```", re.DOTALL)


def extract_json(text: str) -> Any:
    """The first JSON value in ``text``: the whole text, a fenced block, or a balanced {...}."""
    candidates = [text.strip(), *(m.group(1).strip() for m in _FENCE.finditer(text))]
    try:
        for c in candidates:
            try:
                return json.loads(c)
            except json.JSONDecodeError:
                pass
        decoder = json.JSONDecoder()
        for i, ch in enumerate(text):
            if ch in "{[":
                try:
                    value, _ = decoder.raw_decode(text, i)
                    return value
                except json.JSONDecodeError:
                    continue
    except RecursionError:
        raise ValueError("the answer's JSON is nested too deeply to read") from None
    raise ValueError("no JSON value found in the answer")


def ask_structured(
    llm: LLM, messages: Sequence[Message], model_cls: type[M], *, max_repairs: int = 2
) -> M:
    """Ask for an instance of ``model_cls``; re-ask with the errors when the answer is invalid.

    The JSON Schema sent (in the prompt, and as structured output for servers that constrain
    decoding to it) is ``model_cls.model_json_schema()``; what it cannot express is enforced by
    the model's validators and sent back as their messages. Raises ``LLMResponseError`` naming
    what the model kept getting wrong across all its answers, or ``LLMTruncatedError``.
    """
    schema = model_cls.model_json_schema()
    convo = list(messages)
    convo[0] = {
        "role": convo[0]["role"],
        "content": convo[0]["content"]
        + "\n\nAnswer with one JSON object matching this JSON Schema, and nothing else:\n"
        + json.dumps(schema),
    }
    history: list[list[tuple[str, str]]] = []
    for _ in range(max_repairs + 1):
        answer = llm.complete(convo, json_schema=schema).text
        try:
            return model_cls.model_validate(extract_json(answer))
        except ValueError as e:
            problems = _problems(e)
        except RecursionError:  # a validator walking nesting deeper than Python's stack
            problems = [("(root)", "the answer is nested too deeply (or refers to itself)")]
        history.append(problems)
        text = "\n".join(f"- {where}: {what}" for where, what in problems)
        log.info("llm.invalid_answer", model=model_cls.__name__, problem=text[:300])
        convo += [
            {"role": "assistant", "content": answer},
            {
                "role": "user",
                "content": f"That answer is invalid:\n{text}\nReply with corrected JSON only.",
            },
        ]
    raise LLMResponseError(
        f"the model did not produce a valid {model_cls.__name__} in {len(history)} answers; "
        f"what it kept getting wrong: {_recurring(history)}",
        hint="try a stronger model, or write the spec yourself and use --spec",
    )


def _problems(e: ValueError) -> list[tuple[str, str]]:
    """(where, what) for each problem of one answer: a field path, or "(answer)" for unreadable
    JSON."""
    if isinstance(e, ValidationError):
        return [
            (
                ".".join(str(p) for p in err["loc"]) or "(root)",
                err["msg"].removeprefix("Value error, "),
            )
            for err in e.errors()
        ]
    return [("(answer)", str(e))]


def _recurring(history: list[list[tuple[str, str]]]) -> str:
    """The places the answers went wrong, most often first, each with how many answers did and
    the latest message about it."""
    seen: dict[str, int] = {}
    latest: dict[str, str] = {}
    for problems in history:
        for where in dict.fromkeys(w for w, _ in problems):
            seen[where] = seen.get(where, 0) + 1
        for where, what in problems:
            latest[where] = what
    ranked = sorted(seen, key=lambda w: -seen[w])  # stable: first seen first among equals
    parts = [f"{w} in {seen[w]} of {len(history)} ({latest[w][:200]})" for w in ranked[:5]]
    if len(ranked) > 5:
        parts.append(f"and {len(ranked) - 5} more places")
    return "; ".join(parts)
