"""An OpenAI Chat Completions request translated into an Anthropic Messages request.

``system`` and ``developer`` messages become the ``system`` parameter,
assistant ``tool_calls`` become ``tool_use`` blocks, and ``tool`` messages
become ``tool_result`` blocks in the next user turn (Anthropic wants every
result of a turn in one user message, before any other content). Consecutive
messages of the same role are merged, because Anthropic alternates roles.

``response_format`` (JSON mode) is served with a forced tool. The JSON schema
(or any object, for ``json_object``) becomes the ``input_schema`` of one tool
the model must call. The response translation turns that call's input back
into the message text, where OpenAI returns a JSON-mode reply.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from thrifty.translation.checks import (
    as_list,
    as_object,
    as_text,
    invalid,
    is_unset,
    parse_arguments,
    reject_unknown,
    untranslatable,
)
from thrifty.translation.content import ANTHROPIC, openai_part_to_block, openai_text

# Anthropic requires max_tokens; an OpenAI request may leave the output
# unbounded. 4,096 is the largest output every Claude model accepts (Claude 3
# Haiku's limit), so a request without a limit is valid on all of them.
DEFAULT_MAX_TOKENS = 4096

# The name of the forced tool that carries a ``json_object`` response.
JSON_OBJECT_TOOL = "json_object"

_KNOWN = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "stream",
        "stream_options",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "user",
        "metadata",
        "n",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "seed",
        "store",
        "service_tier",
        "modalities",
        "prompt_cache_key",
        "safety_identifier",
    }
)


@dataclass(frozen=True, slots=True)
class MessagesRequest:
    """The translated body, and what the response translation must know about it.

    ``json_tool`` names the forced tool that carries a JSON-mode reply, and
    ``include_usage`` is the client's ``stream_options.include_usage``.
    """

    body: dict[str, Any]
    json_tool: str | None
    include_usage: bool


def chat_to_messages(chat: Mapping[str, Any]) -> MessagesRequest:
    """Translate a chat completion request; raise RequestError on what Anthropic cannot take."""
    reject_unknown(chat, _KNOWN, ANTHROPIC)
    _reject_unsupported(chat)
    system, messages = _conversation(as_list(chat.get("messages"), "messages"))
    body: dict[str, Any] = {"model": chat.get("model"), "messages": messages}
    if system:
        body["system"] = system
    body["max_tokens"] = _max_tokens(chat)
    body.update(_sampling(chat))
    json_tool = _add_tools(body, chat)
    user = chat.get("user") or chat.get("safety_identifier")
    if isinstance(user, str) and user:
        body["metadata"] = {"user_id": user}
    stream = chat.get("stream") is True
    if stream:
        body["stream"] = True
    options = chat.get("stream_options")
    include_usage = stream and isinstance(options, Mapping) and options.get("include_usage") is True
    return MessagesRequest(body, json_tool, include_usage)


def _reject_unsupported(chat: Mapping[str, Any]) -> None:
    """Raise for parameters set to a value only OpenAI can honour.

    Some are dropped without an error, because they change nothing Anthropic
    serves. ``metadata`` is read by the gateway for attribution (Anthropic's
    own takes only ``user_id``). ``store`` is OpenAI-side storage of the
    completion. ``seed`` is best-effort determinism that OpenAI does not
    guarantee either. ``prompt_cache_key`` is an OpenAI cache routing hint.
    ``service_tier`` ``auto`` or ``default`` and ``modalities: ["text"]`` are
    the defaults.
    """
    neutral: dict[str, object] = {
        "n": 1,
        "presence_penalty": 0,
        "frequency_penalty": 0,
        "logit_bias": {},
        "logprobs": False,
        "top_logprobs": 0,
        "modalities": ["text"],
    }
    for key, value in neutral.items():
        if not is_unset(chat.get(key), value):
            raise untranslatable(key, ANTHROPIC, f"remove it or set it to {value!r}")
    tier = chat.get("service_tier")
    if tier is not None and tier not in ("auto", "default"):
        raise untranslatable(
            "service_tier", ANTHROPIC, f"tier {tier!r} is OpenAI's; remove it or use 'auto'"
        )
    temperature = chat.get("temperature")
    if isinstance(temperature, int | float) and temperature > 1:
        raise invalid(
            "temperature",
            f"is {temperature}, above Anthropic's maximum of 1",
            "send a value from 0 to 1",
        )


def _max_tokens(chat: Mapping[str, Any]) -> int:
    for key in ("max_completion_tokens", "max_tokens"):
        value = chat.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise invalid(key, f"is {value!r}", "send an integer of at least 1")
        return value
    return DEFAULT_MAX_TOKENS


def _sampling(chat: Mapping[str, Any]) -> dict[str, Any]:
    sampling = {key: chat[key] for key in ("temperature", "top_p") if chat.get(key) is not None}
    stop = chat.get("stop")
    if isinstance(stop, str):
        sampling["stop_sequences"] = [stop]
    elif stop is not None:
        sampling["stop_sequences"] = [as_text(item, "stop") for item in as_list(stop, "stop")]
    return sampling


def _conversation(messages: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Return the system blocks and the Anthropic messages of a chat conversation."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for index, raw in enumerate(messages):
        param = f"messages[{index}]"
        message = as_object(raw, param)
        role = message.get("role")
        if role in ("system", "developer"):
            if turns:
                raise untranslatable(
                    f"{param}.role",
                    ANTHROPIC,
                    f"a {role} message after the conversation started has no place there "
                    "(Anthropic takes system text only before the messages); move it first",
                )
            system.append({"type": "text", "text": openai_text(message.get("content"), param)})
            continue
        role_name, blocks = _turn(message, role, param)
        if turns and turns[-1]["role"] == role_name:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role_name, "content": blocks})
    return system, [_compact(turn) for turn in turns]


def _turn(message: Mapping[str, Any], role: object, param: str) -> tuple[str, list[dict[str, Any]]]:
    # ``name`` (a participant's name) has no Anthropic field; the text is unchanged without it.
    if role == "user":
        return "user", _user_blocks(message.get("content"), f"{param}.content")
    if role == "assistant":
        return "assistant", _assistant_blocks(message, param)
    if role == "tool":
        tool_call_id = as_text(message.get("tool_call_id"), f"{param}.tool_call_id")
        result = {
            "type": "tool_result",
            "tool_use_id": tool_call_id,
            "content": openai_text(message.get("content"), f"{param}.content"),
        }
        return "user", [result]
    raise untranslatable(
        f"{param}.role", ANTHROPIC, f"role {role!r} cannot be sent; use tools and tool messages"
    )


def _user_blocks(content: object, param: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [
        openai_part_to_block(as_object(part, f"{param}[{index}]"), f"{param}[{index}]")
        for index, part in enumerate(as_list(content, param))
    ]


def _assistant_blocks(message: Mapping[str, Any], param: str) -> list[dict[str, Any]]:
    if message.get("audio") is not None or message.get("function_call") is not None:
        key = "audio" if message.get("audio") is not None else "function_call"
        raise untranslatable(f"{param}.{key}", ANTHROPIC, "remove it or use tool_calls")
    blocks: list[dict[str, Any]] = []
    text = openai_text(message.get("content"), f"{param}.content")
    if text:
        blocks.append({"type": "text", "text": text})
    for index, raw in enumerate(message.get("tool_calls") or []):
        where = f"{param}.tool_calls[{index}]"
        call = as_object(raw, where)
        function = as_object(call.get("function"), f"{where}.function")
        blocks.append(
            {
                "type": "tool_use",
                "id": as_text(call.get("id"), f"{where}.id"),
                "name": as_text(function.get("name"), f"{where}.function.name"),
                "input": parse_arguments(function.get("arguments"), f"{where}.function.arguments"),
            }
        )
    return blocks


def _compact(turn: dict[str, Any]) -> dict[str, Any]:
    """Send a turn that is one text block as a plain string, as clients usually write it."""
    content = turn["content"]
    if len(content) == 1 and content[0]["type"] == "text":
        return {"role": turn["role"], "content": content[0]["text"]}
    return turn


def _add_tools(body: dict[str, Any], chat: Mapping[str, Any]) -> str | None:
    """Add ``tools`` and ``tool_choice``; return the JSON-mode tool's name, if one is used."""
    tools = chat.get("tools")
    if tools:
        body["tools"] = [
            _tool(tool, f"tools[{i}]") for i, tool in enumerate(as_list(tools, "tools"))
        ]
    parallel = chat.get("parallel_tool_calls") if tools else None
    choice = _tool_choice(chat.get("tool_choice"), parallel)
    if choice is not None:
        body["tool_choice"] = choice
    json_tool = _json_tool(chat.get("response_format"))
    if json_tool is None:
        return None
    if tools:
        raise untranslatable(
            "response_format",
            ANTHROPIC,
            "JSON mode is served with a forced tool there, so it cannot be combined with "
            "'tools'; drop one of them",
        )
    body["tools"] = [json_tool]
    body["tool_choice"] = {"type": "tool", "name": json_tool["name"]}
    return str(json_tool["name"])


def _tool(raw: object, param: str) -> dict[str, Any]:
    tool = as_object(raw, param)
    if tool.get("type") != "function":
        raise untranslatable(
            f"{param}.type", ANTHROPIC, "only function tools can be sent; describe it as a function"
        )
    function = as_object(tool.get("function"), f"{param}.function")
    # ``strict`` has no counterpart here: Claude follows the schema but does
    # not guarantee it, so the tool is still sent and the flag is dropped.
    translated: dict[str, Any] = {
        "name": as_text(function.get("name"), f"{param}.function.name"),
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    description = function.get("description")
    if isinstance(description, str) and description:
        translated["description"] = description
    return translated


def _tool_choice(choice: object, parallel: object) -> dict[str, Any] | None:
    translated: dict[str, Any] | None
    if choice is None:
        translated = None
    elif choice == "none":
        return {"type": "none"}
    elif choice == "auto":
        translated = {"type": "auto"}
    elif choice == "required":
        translated = {"type": "any"}
    else:
        function = as_object(
            as_object(choice, "tool_choice").get("function"), "tool_choice.function"
        )
        translated = {
            "type": "tool",
            "name": as_text(function.get("name"), "tool_choice.function.name"),
        }
    if parallel is False:
        translated = {**(translated or {"type": "auto"}), "disable_parallel_tool_use": True}
    return translated


def _json_tool(response_format: object) -> dict[str, Any] | None:
    if response_format is None:
        return None
    kind = as_object(response_format, "response_format").get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {
            "name": JSON_OBJECT_TOOL,
            "description": "Return the answer as a JSON object.",
            "input_schema": {"type": "object"},
        }
    if kind == "json_schema":
        assert isinstance(response_format, Mapping)
        spec = as_object(response_format.get("json_schema"), "response_format.json_schema")
        tool: dict[str, Any] = {
            "name": as_text(spec.get("name"), "response_format.json_schema.name"),
            "input_schema": as_object(spec.get("schema"), "response_format.json_schema.schema"),
        }
        description = spec.get("description")
        tool["description"] = (
            description
            if isinstance(description, str) and description
            else ("Return the answer in this schema.")
        )
        return tool
    raise untranslatable(
        "response_format.type",
        ANTHROPIC,
        f"type {kind!r} is unknown; use json_object or json_schema",
    )
