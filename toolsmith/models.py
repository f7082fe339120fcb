"""The base of toolsmith's public pydantic models: bad input is a ``ToolsmithError``.

pydantic's ``ValidationError`` is a third-party error; like httpx mapping every transport error at
its boundary, a public model built with bad fields raises the toolsmith error of its family
(``invalid``), naming each field and what is wrong with it. ``model_validate`` is left as pydantic
defines it for code that reads stored data and maps the error itself.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ValidationError

from toolsmith.errors import ToolsmithError, UsageError


def describe(error: ValidationError) -> str:
    """Each problem pydantic found, as ``field: message``, joined by ``; ``."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '(model)'}: "
        + err["msg"].removeprefix("Value error, ")
        for err in error.errors()
    )


class PublicModel(BaseModel):
    """A pydantic model of the public API whose constructor raises ``invalid``, not pydantic's
    ``ValidationError``."""

    invalid: ClassVar[type[ToolsmithError]] = UsageError

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as e:
            raise self.invalid(
                f"invalid {type(self).__name__}: {describe(e)}",
                hint=f"fix the fields named; help(toolsmith.{type(self).__name__}) lists them",
            ) from None

    # Marks this constructor as pydantic's own, so validation (model_validate, nested models)
    # keeps calling pydantic's core directly and raising ValidationError to the code that reads
    # stored data: only a caller's ``Model(...)`` is mapped.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]
