"""Every knob toolsmith reads, in one place: defaults < config file < environment < flags.

``Settings`` is one pydantic model in sections that match the config file's tables
(``[llm]``, ``[build]``, ``[paths]``, ``[sandbox]``); ``KNOBS`` names each setting's flag and
environment variable, and README.md's configuration table is checked against it. Nothing else in
toolsmith reads configuration from ``os.environ``: modules ask :func:`Settings.load`.

The layering is written here rather than taken from pydantic-settings so that a bad value is
reported with where it came from (``$TOOLSMITH_LLM_TIMEOUT``, ``[llm] timeout_s in FILE`` or a
flag): the fix is in that place, and the error says so.

The config file is ``$TOOLSMITH_CONFIG``, else ``config.toml`` in the per-user config directory;
it is optional. Loading is cheap enough for hot paths: with no flags, the result is reused while
the relevant environment variables and the file's size and modification time are unchanged.
"""

from __future__ import annotations

import functools
import os
import tomllib
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlparse

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from toolsmith.errors import LLMNotConfiguredError, ToolsmithError, UsageError
from toolsmith.models import PublicModel

CONFIG_ENV = "TOOLSMITH_CONFIG"
DEFAULT_MUTANTS = 12
DEFAULT_MUTATION_TIME_S = 60.0


URL_EXAMPLE = "http://localhost:8000/v1"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_base_url(v: str | None) -> str | None:
    """``v`` if it is an http(s) URL with a host (and a valid port, if any); else ValueError
    saying what it lacks (the caller names the value and where it came from). Checked when
    settings are read, so a typo never reaches the network."""
    if v is None:
        return v
    try:
        parsed = urlparse(v)
        parsed.port  # noqa: B018 - parsing the port is what raises for a bad one
    except ValueError as e:
        raise ValueError(f"not a URL ({e}); use one such as {URL_EXAMPLE}") from None
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"not an http:// or https:// URL with a host, such as {URL_EXAMPLE}")
    return v


class LLMSettings(_Section):
    """``[llm]``: where the model is and how patient to be with it (see ``LLMConfig``)."""

    base_url: str | None = None
    model: str | None = None
    api_key: SecretStr | None = None
    timeout_s: float = Field(default=120.0, gt=0, le=3600)
    max_retries: int = Field(default=3, ge=0, le=10)
    max_tokens: int = Field(default=4096, ge=64, le=1_000_000)
    structured_output: bool = True

    _base_url = field_validator("base_url")(check_base_url)


class BuildSettings(_Section):
    """``[build]``: the defaults of ``BuildOptions``."""

    max_attempts: int = Field(default=4, ge=1, le=20)
    max_examples: int = Field(default=100, ge=1, le=10_000)
    mutants: int = Field(default=DEFAULT_MUTANTS, ge=0, le=1000)
    mutation_time_s: float = Field(default=DEFAULT_MUTATION_TIME_S, gt=0, le=3600)


class PathSettings(_Section):
    """``[paths]``: where the registry, keys, consumer state, policy and constitution are.
    ``home`` holds everything toolsmith keeps (keys, state, the default registry, eval runs)
    unless a more specific setting moves one part; the wheel ``cache`` is not kept there (it is
    content-addressed, checked on use and safe to share or delete)."""

    registry: str | None = None
    home: Path | None = None
    state: Path | None = None
    policy: Path | None = None
    constitution: Path | None = None
    cache: Path | None = None

    @property
    def keys(self) -> Path:
        """``home/keys``, else the per-user config dir's ``keys``."""
        if self.home is not None:
            return self.home / "keys"
        return Path(platformdirs.user_config_dir("toolsmith")) / "keys"

    @property
    def state_root(self) -> Path:
        """``state``, else ``home/state``, else the per-user state dir."""
        if self.state is not None:
            return self.state
        if self.home is not None:
            return self.home / "state"
        return Path(platformdirs.user_state_dir("toolsmith"))

    @property
    def default_registry(self) -> Path:
        """The registry used when none is named (no flag, ``registry`` setting or
        ``$TOOLSMITH_REGISTRY``): ``home/registry``, else the per-user data dir's ``registry``.
        Never the working directory: a command must not publish into wherever it was run."""
        if self.home is not None:
            return self.home / "registry"
        return Path(platformdirs.user_data_dir("toolsmith")) / "registry"

    @property
    def wheels(self) -> Path:
        """Where verified wheels of tools' dependencies are kept: ``cache/wheels``, else the
        per-user cache dir's ``wheels``."""
        return (self.cache or Path(platformdirs.user_cache_dir("toolsmith"))) / "wheels"


class SandboxSettings(_Section):
    """``[sandbox]``: the Docker engine and where the sandbox image is built from."""

    docker_host: str = "unix:///var/run/docker.sock"
    images: Path | None = None
    debian_mirror: str | None = None


class RegistrySettings(_Section):
    """``[registry]``: how a served registry is read."""

    download_deadline_s: float | None = Field(
        default=None, gt=0, le=86400, description="overall seconds per served file"
    )


class LogSettings(_Section):
    """``[log]``: how the CLI writes its log lines to stderr (``toolsmith.log``)."""

    format: Literal["auto", "human", "json"] = Field(
        default="auto", description="auto: JSON lines when stderr is not a terminal"
    )
    level: Literal["debug", "info", "warning", "error"] = "warning"

    @field_validator("format", "level", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> Any:
        return v.lower() if isinstance(v, str) else v


@dataclass(frozen=True)
class Knob:
    """One setting: its place in ``Settings`` (``section.key``, also its config file key), its
    CLI flag and its environment variable (either may be absent)."""

    key: str
    flag: str | None
    env: str | None


KNOBS: tuple[Knob, ...] = (
    Knob("llm.base_url", "--base-url", "OPENAI_BASE_URL"),
    Knob("llm.model", "--model", "TOOLSMITH_MODEL"),
    Knob("llm.api_key", "--api-key", "OPENAI_API_KEY"),
    Knob("llm.timeout_s", "--llm-timeout", "TOOLSMITH_LLM_TIMEOUT"),
    Knob("llm.max_retries", "--llm-retries", "TOOLSMITH_LLM_RETRIES"),
    Knob("llm.max_tokens", "--max-tokens", "TOOLSMITH_LLM_MAX_TOKENS"),
    Knob("build.max_attempts", "--max-attempts", "TOOLSMITH_MAX_ATTEMPTS"),
    Knob("build.max_examples", "--max-examples", "TOOLSMITH_MAX_EXAMPLES"),
    Knob("build.mutants", "--mutants", "TOOLSMITH_MUTANTS"),
    Knob("build.mutation_time_s", "--mutation-time", "TOOLSMITH_MUTATION_TIME"),
    Knob("paths.registry", "--registry", "TOOLSMITH_REGISTRY"),
    Knob("paths.home", None, "TOOLSMITH_HOME"),
    Knob("paths.state", None, "TOOLSMITH_STATE"),
    Knob("paths.policy", None, "TOOLSMITH_POLICY"),
    Knob("paths.constitution", None, "TOOLSMITH_CONSTITUTION"),
    Knob("paths.cache", None, "TOOLSMITH_CACHE"),
    Knob("sandbox.docker_host", None, "DOCKER_HOST"),
    Knob("sandbox.images", None, "TOOLSMITH_SANDBOX_IMAGES"),
    Knob("sandbox.debian_mirror", None, "TOOLSMITH_DEBIAN_MIRROR"),
    Knob("registry.download_deadline_s", None, "TOOLSMITH_DOWNLOAD_DEADLINE_S"),
    Knob("log.format", "--log-format", "TOOLSMITH_LOG_FORMAT"),
    Knob("log.level", "--log-level", "TOOLSMITH_LOG_LEVEL"),
)
_BY_KEY = {k.key: k for k in KNOBS}
_ENV_VARS = (CONFIG_ENV, *(k.env for k in KNOBS if k.env))


def config_path() -> Path:
    """``$TOOLSMITH_CONFIG``, else ``config.toml`` in the per-user config directory."""
    override = os.environ.get(CONFIG_ENV)
    return Path(override) if override else _default_config()


@functools.cache
def _default_config() -> Path:
    return platformdirs.user_config_path("toolsmith") / "config.toml"


class Settings(PublicModel):
    """All of toolsmith's settings, by config file table. Build one with :meth:`load`."""

    invalid: ClassVar[type[ToolsmithError]] = UsageError

    model_config = ConfigDict(extra="forbid", frozen=True)

    llm: LLMSettings = Field(default_factory=LLMSettings)
    build: BuildSettings = Field(default_factory=BuildSettings)
    paths: PathSettings = Field(default_factory=PathSettings)
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    log: LogSettings = Field(default_factory=LogSettings)
    config_file: Path | None = Field(default=None, description="the config file read, if any")
    sources: dict[str, str] = Field(
        default_factory=dict, description="where each setting not left at its default came from"
    )

    @classmethod
    def load(
        cls,
        flags: dict[str, Any] | None = None,
        *,
        config_file: str | os.PathLike[str] | None = None,
        error: type[ToolsmithError] = UsageError,
        only: Collection[str] | None = None,
    ) -> Settings:
        """The settings from ``flags`` (``{"llm.model": ...}``; None and "" mean not given),
        else the environment (``KNOBS``), else the config file, else the defaults.

        ``only`` names the sections to read (the others keep their defaults), so a caller
        needing one section is not stopped by a bad value in another.

        A bad value raises ``LLMNotConfiguredError`` if it is an ``[llm]`` setting, else
        ``UsageError``, naming where it came from; an unreadable config file raises ``error``
        (the family of whoever needs the settings).
        """
        given = {k: v for k, v in (flags or {}).items() if v not in (None, "")}
        unknown = set(given) - set(_BY_KEY)
        if unknown:
            raise UsageError(f"unknown settings {sorted(unknown)}", hint=f"use {sorted(_BY_KEY)}")
        path = Path(config_file) if config_file is not None else config_path()
        key = None
        if not given and only is None:
            key = (path, _stat(path), tuple(os.environ.get(v) for v in _ENV_VARS))
            if _cache is not None and _cache[0] == key:
                return _cache[1]
        settings = cls._layered(given, path, error, only)
        if key is not None:
            _set_cache(key, settings)
        return settings

    @classmethod
    def _layered(
        cls,
        given: dict[str, Any],
        path: Path,
        error: type[ToolsmithError],
        only: Collection[str] | None,
    ) -> Settings:
        tables = _read_config(path, error) if path.is_file() else {}
        if only is not None:
            tables = {name: table for name, table in tables.items() if name in only}
        values: dict[str, dict[str, Any]] = {section: {} for section in cls._sections()}
        sources: dict[str, str] = {}
        for section, table in tables.items():
            for name, value in table.items():
                values[section][name] = value
                sources[f"{section}.{name}"] = f"[{section}] {name} in {path}"
        for knob in KNOBS:
            section, name = knob.key.split(".")
            if only is not None and section not in only:
                continue
            if knob.key in given:
                values[section][name] = given[knob.key]
                sources[knob.key] = knob.flag or f"the {knob.key} argument"
            elif knob.env and os.environ.get(knob.env):
                values[section][name] = os.environ[knob.env]
                sources[knob.key] = f"${knob.env}"
        try:
            return cls.model_validate(
                {**values, "config_file": path if tables else None, "sources": sources}
            )
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            source = sources.get(where, "the arguments")
            raw = err.get("input")
            # A bad flag is a bad argument (exit 2, as README's table says), wherever it points;
            # so is a malformed endpoint URL from any source: a typo to fix where it was typed,
            # not a model left unconfigured (exit 6).
            usage = where in given or where == "llm.base_url"
            family = LLMNotConfiguredError if where.startswith("llm.") and not usage else UsageError
            shown = where.removeprefix("llm.")
            msg = err["msg"].removeprefix("Value error, ")
            if where.endswith("api_key"):
                raw = "…"  # never echo a secret
            raise family(
                f"setting {shown} (from {source}) is {raw!r}: {msg}",
                hint=f"fix the value in {source}",
            ) from None

    @classmethod
    def _sections(cls) -> list[str]:
        return [n for n in cls.model_fields if n not in ("config_file", "sources")]


_cache: tuple[object, Settings] | None = None


def _set_cache(key: object, settings: Settings) -> None:
    global _cache
    _cache = (key, settings)


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def _read_config(path: Path, error: type[ToolsmithError]) -> dict[str, dict[str, Any]]:
    """The config file's tables; only the sections ``Settings`` has, each a table."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise error(f"cannot read config file {path}: {e}", hint="fix or remove the file") from None
    sections = Settings._sections()
    out: dict[str, dict[str, Any]] = {}
    for name, table in data.items():
        if name not in sections:
            raise error(
                f"config file {path}: unknown table or key {name!r}",
                hint=f"settings go under one of {', '.join(f'[{s}]' for s in sections)}",
            )
        if not isinstance(table, dict):
            raise error(
                f"config file {path}: [{name}] must be a table of settings",
                hint=f"write the settings under a [{name}] header",
            )
        out[name] = table
    return out
