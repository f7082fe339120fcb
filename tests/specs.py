"""Specs several test modules build from, kept in one place."""

from __future__ import annotations

from typing import Any

ADD_INTS: dict[str, Any] = {
    "name": "add_ints",
    "description": "Add two integers.",
    "parameters": {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
        "additionalProperties": False,
    },
    "returns": {"type": "integer"},
    "examples": [{"args": {"a": 1, "b": 2}, "returns": 3}],
}
