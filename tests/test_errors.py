"""Errors mapped at every boundary: one hierarchy, one exit code per family, documented once."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

import toolsmith
from toolsmith import errors
from toolsmith.errors import (
    EXIT_CODES,
    KeyStoreError,
    LLMResponseError,
    LLMUnavailableError,
    ToolsmithError,
)
from toolsmith.keys import KeyStore
from toolsmith.llm import Completion, Usage
from toolsmith.pipeline import BuildOptions, Toolsmith
from toolsmith.registry import Registry

README = Path(__file__).resolve().parents[1] / "README.md"


def family(cls: type[ToolsmithError]) -> type[ToolsmithError]:
    """The direct subclass of ToolsmithError that ``cls`` descends from (or the base itself)."""
    for base in cls.__mro__:
        if ToolsmithError in base.__bases__ or base is ToolsmithError:
            return base
    raise AssertionError(cls)


def every_error() -> list[type[ToolsmithError]]:
    found = [
        v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, ToolsmithError)
    ]
    return sorted(found, key=lambda c: c.__name__)


def test_every_error_exits_with_its_familys_code() -> None:
    """No subclass overrides its family's code, so one fault exits one way from every command."""
    for cls in every_error():
        fam = family(cls)
        assert fam in EXIT_CODES, f"{fam.__name__} has no row in EXIT_CODES"
        assert cls.exit_code == EXIT_CODES[fam][0], cls.__name__


def test_every_error_is_exported() -> None:
    """Library callers can catch each error by its name from the top-level package."""
    assert {c.__name__ for c in every_error()} <= set(toolsmith.__all__)


def test_readme_table_is_the_exit_code_table() -> None:
    """README.md's exit-code table lists exactly the families and codes errors.py uses."""
    rows = re.findall(r"^\| (\d+) \| (`.+?`) \|", README.read_text(), re.M)
    documented = {name.strip("` "): int(code) for code, names in rows for name in names.split(",")}
    assert documented == {cls.__name__: code for cls, (code, _) in EXIT_CODES.items()}


def public_callables() -> list[tuple[str, Any]]:
    """Every function, class constructor and public method the package exports."""
    found: list[tuple[str, Any]] = []
    for name in toolsmith.__all__:
        obj = getattr(toolsmith, name)
        if inspect.isfunction(obj):
            found.append((name, obj))
        elif inspect.isclass(obj) and not issubclass(obj, BaseException):
            for attr, member in vars(obj).items():
                if attr == "__init__" or not attr.startswith("_"):
                    func = (
                        member.__func__
                        if isinstance(member, classmethod | staticmethod)
                        else member
                    )
                    if inspect.isfunction(func):
                        found.append((f"{name}.{attr}", func))
    return found


def test_every_public_path_parameter_takes_str_and_pathlike() -> None:
    """A parameter typed Path also takes str and any os.PathLike (Registry("registry") used to
    fail with TypeError)."""
    narrow = []
    for where, func in public_callables():
        for param in inspect.signature(func).parameters.values():
            note = str(param.annotation)
            if re.search(r"\bPath\b", note) and "PathLike" not in note:
                narrow.append(f"{where}({param.name}: {note})")
    assert narrow == []


def test_every_public_model_maps_bad_fields_to_a_toolsmith_error() -> None:
    """Building any exported pydantic model with bad fields raises a ToolsmithError naming
    them, never pydantic's ValidationError (as httpx checks every transport error is mapped)."""
    models = [
        getattr(toolsmith, n)
        for n in toolsmith.__all__
        if inspect.isclass(getattr(toolsmith, n)) and issubclass(getattr(toolsmith, n), BaseModel)
    ]
    assert len(models) >= 15
    for model in models:
        bad = {field: object() for field in model.model_fields}
        with pytest.raises(ToolsmithError) as e:
            model(**bad)
        assert not isinstance(e.value, ValidationError), model.__name__
        assert e.value.hint and model.__name__ in e.value.message
    with pytest.raises(toolsmith.UsageError, match="max_attempts"):
        toolsmith.BuildOptions(max_attempts=0)
    with pytest.raises(toolsmith.UsageError, match="memory_mb"):
        toolsmith.Limits(memory_mb=1)
    with pytest.raises(toolsmith.SpecError, match="snake_case"):
        toolsmith.ToolSpec(name="Bad Name", description="d", parameters={}, returns={})


def test_a_key_store_under_a_file_is_a_key_store_error(tmp_path: Path) -> None:
    """`keys generate` with the key directory's place taken by a file names the place and fix."""
    blocker = tmp_path / "home"
    blocker.write_text("not a directory")
    store = KeyStore(str(blocker / "keys"))  # a str path, like every public path parameter
    with pytest.raises(KeyStoreError, match="cannot write key 'default'") as e:
        store.generate()
    assert e.value.hint and "TOOLSMITH_HOME" in e.value.hint
    with pytest.raises(KeyStoreError, match="no signing key"):
        store.load()
    assert store.list() == []


class Broken:
    """A custom LLM backend (the LLM protocol) whose complete() fails its own way."""

    model = "custom"
    endpoint_kind = "local"

    def __init__(self, outcome: Any) -> None:
        self.usage = Usage()
        self.outcome = outcome

    def complete(self, messages: Any, *, json_schema: Any = None) -> Completion:
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("outcome", "error", "fragment"),
    [
        (ConnectionResetError("peer reset"), LLMUnavailableError, "raised ConnectionResetError"),
        (KeyError("choices"), LLMUnavailableError, "raised KeyError"),
        ("just a string", LLMResponseError, "returned str, not a Completion"),
    ],
    ids=["oserror", "keyerror", "wrong-type"],
)
def test_a_custom_llm_backends_failures_are_llm_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outcome: Any, error: type, fragment: str
) -> None:
    """Toolsmith.build maps whatever a custom backend raises or returns to an LLMError."""
    monkeypatch.setenv("TOOLSMITH_HOME", str(tmp_path / "home"))
    ts = Toolsmith(Registry(tmp_path / "reg"), Broken(outcome))
    with pytest.raises(error, match=fragment) as e:
        ts.build("add two numbers", BuildOptions(force=True))
    assert "Broken" in e.value.message and e.value.hint
