"""Tool calls in sandbox replies: made when a request forces the model to call a tool.

A request forces a tool with Anthropic's ``tool_choice`` ``{"type": "tool"}``
or ``{"type": "any"}``, or OpenAI's ``{"type": "function", ...}`` or
``"required"``. The reply then calls that tool (the first one for "any" and
"required") with arguments built from its JSON schema: each property gets a
fixed value of its type. The arguments' tokens are the output tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from thrifty.tokens import get_encoding

# A fixed value for each JSON schema type, so replies are the same on every run.
_VALUES: dict[str, Any] = {
    "string": "sandbox",
    "integer": 1,
    "number": 1,
    "boolean": True,
    "array": [],
    "object": {},
    "null": None,
}


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The call a forced tool gets: its name, arguments and their token count."""

    name: str
    arguments: dict[str, Any]
    tokens: int

    @property
    def arguments_json(self) -> str:
        return orjson.dumps(self.arguments).decode()


def forced_anthropic_tool(body: Mapping[str, Any], encoding_name: str) -> ToolCall | None:
    """Return the call an Anthropic request forces, or None."""
    choice = body.get("tool_choice")
    tools = [tool for tool in body.get("tools") or [] if isinstance(tool, Mapping)]
    if not isinstance(choice, Mapping) or not tools:
        return None
    if choice.get("type") == "any":
        chosen: Mapping[str, Any] | None = tools[0]
    elif choice.get("type") == "tool":
        chosen = next((tool for tool in tools if tool.get("name") == choice.get("name")), None)
    else:
        return None
    if chosen is None:
        return None
    return _call(str(chosen.get("name")), chosen.get("input_schema"), encoding_name)


def forced_openai_tool(body: Mapping[str, Any], encoding_name: str) -> ToolCall | None:
    """Return the call an OpenAI chat request forces, or None."""
    choice = body.get("tool_choice")
    functions = [
        tool["function"]
        for tool in body.get("tools") or []
        if isinstance(tool, Mapping) and isinstance(tool.get("function"), Mapping)
    ]
    if not functions:
        return None
    if choice == "required":
        chosen: Mapping[str, Any] | None = functions[0]
    elif isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping):
        name = choice["function"].get("name")
        chosen = next((item for item in functions if item.get("name") == name), None)
    else:
        return None
    if chosen is None:
        return None
    return _call(str(chosen.get("name")), chosen.get("parameters"), encoding_name)


def _call(name: str, schema: object, encoding_name: str) -> ToolCall:
    arguments = arguments_for_schema(schema)
    text = orjson.dumps(arguments).decode()
    return ToolCall(name, arguments, len(get_encoding(encoding_name).encode(text)))


def arguments_for_schema(schema: object) -> dict[str, Any]:
    """Return arguments that give each property of a JSON schema a fixed value of its type."""
    if not isinstance(schema, Mapping):
        return {}
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return {}
    return {
        str(key): _VALUES.get(str(spec.get("type")), "sandbox")
        if isinstance(spec, Mapping)
        else "sandbox"
        for key, spec in properties.items()
    }


def split_json(text: str, pieces: int = 3) -> list[str]:
    """Split a JSON text into about ``pieces`` parts, as streamed argument deltas arrive."""
    size = max(1, -(-len(text) // pieces))
    return [text[start : start + size] for start in range(0, len(text), size)]
