"""An OpenAI Chat Completions request served by the Gemini API (``generateContent``).

``system`` and ``developer`` messages become ``systemInstruction``; user and
assistant turns become ``contents`` with roles ``user`` and ``model``. An
assistant tool call becomes a ``functionCall`` part and a ``tool`` message a
``functionResponse`` part, which Gemini matches by function name, so the name
is looked up from the earlier call's id. Sampling parameters go into
``generationConfig``, and JSON mode sets ``responseMimeType`` (with
``responseJsonSchema`` for a schema).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

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
from thrifty.translation.content import openai_text, parse_data_url

GEMINI = "Gemini generateContent"

_MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

# Gemini takes at most five stop sequences.
MAX_STOP_SEQUENCES = 5

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
        "response_format",
        "user",
        "metadata",
        "n",
        "presence_penalty",
        "frequency_penalty",
        "seed",
        "store",
        "service_tier",
        "prompt_cache_key",
        "safety_identifier",
        "parallel_tool_calls",
    }
)


def chat_to_gemini(chat: Mapping[str, Any]) -> dict[str, Any]:
    """Translate a chat completion request into a ``generateContent`` body.

    Dropped without an error: ``user``, ``safety_identifier`` and
    ``metadata`` (Gemini has no end-user field, and the gateway has read them
    for attribution), ``store``, ``prompt_cache_key``, ``parallel_tool_calls``
    (Gemini decides how many calls a turn makes) and ``service_tier`` ``auto``
    or ``default``. The model goes in the URL, not the body.
    """
    reject_unknown(chat, _KNOWN, GEMINI)
    if not is_unset(chat.get("n"), 1):
        raise untranslatable("n", GEMINI, "remove it or set it to 1")
    tier = chat.get("service_tier")
    if tier is not None and tier not in ("auto", "default"):
        raise untranslatable("service_tier", GEMINI, "remove it or use 'auto'")
    system, contents = _conversation(as_list(chat.get("messages"), "messages"))
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    config = _generation_config(chat)
    if config:
        body["generationConfig"] = config
    tools = chat.get("tools")
    if tools:
        declarations = [
            _declaration(raw, f"tools[{i}]") for i, raw in enumerate(as_list(tools, "tools"))
        ]
        body["tools"] = [{"functionDeclarations": declarations}]
    tool_config = _tool_config(chat.get("tool_choice"))
    if tool_config is not None:
        body["toolConfig"] = {"functionCallingConfig": tool_config}
    return body


def gemini_path(model: str, *, stream: bool) -> str:
    """Return the Gemini API path of a model's (streamed) ``generateContent``.

    The model goes into the URL, so only a plain model id is accepted.
    """
    if not _MODEL_ID.fullmatch(model):
        raise invalid(
            "model",
            f"is {model!r}, which is not a Gemini model id",
            "use letters, digits, '.', '-' and '_' only, e.g. gemini-2.5-flash",
        )
    if stream:
        return f"/v1beta/models/{model}:streamGenerateContent?alt=sse"
    return f"/v1beta/models/{model}:generateContent"


def _generation_config(chat: Mapping[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    names = {
        "temperature": "temperature",
        "top_p": "topP",
        "presence_penalty": "presencePenalty",
        "frequency_penalty": "frequencyPenalty",
        "seed": "seed",
    }
    for key, name in names.items():
        if chat.get(key) is not None:
            config[name] = chat[key]
    limit = chat.get("max_completion_tokens", chat.get("max_tokens"))
    if limit is not None:
        config["maxOutputTokens"] = limit
    stop = chat.get("stop")
    if stop is not None:
        stops = (
            [stop] if isinstance(stop, str) else [as_text(s, "stop") for s in as_list(stop, "stop")]
        )
        if len(stops) > MAX_STOP_SEQUENCES:
            raise invalid(
                "stop",
                f"has {len(stops)} entries, above Gemini's maximum of {MAX_STOP_SEQUENCES}",
                f"send at most {MAX_STOP_SEQUENCES}",
            )
        config["stopSequences"] = stops
    config.update(_json_mode(chat.get("response_format")))
    return config


def _json_mode(response_format: object) -> dict[str, Any]:
    if response_format is None:
        return {}
    spec = as_object(response_format, "response_format")
    kind = spec.get("type")
    if kind == "text":
        return {}
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    if kind == "json_schema":
        schema = as_object(spec.get("json_schema"), "response_format.json_schema").get("schema")
        mode: dict[str, Any] = {"responseMimeType": "application/json"}
        if schema is not None:
            mode["responseJsonSchema"] = as_object(schema, "response_format.json_schema.schema")
        return mode
    raise untranslatable("response_format.type", GEMINI, f"type {kind!r} is unknown")


def _conversation(messages: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    for index, raw in enumerate(messages):
        param = f"messages[{index}]"
        message = as_object(raw, param)
        role = message.get("role")
        if role in ("system", "developer"):
            system.append({"text": openai_text(message.get("content"), f"{param}.content")})
            continue
        gemini_role, parts = _turn(message, role, param, names)
        if contents and contents[-1]["role"] == gemini_role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": gemini_role, "parts": parts})
    return system, contents


def _turn(
    message: Mapping[str, Any], role: object, param: str, names: dict[str, str]
) -> tuple[str, list[dict[str, Any]]]:
    if role == "user":
        return "user", _user_parts(message.get("content"), f"{param}.content")
    if role == "assistant":
        return "model", _model_parts(message, param, names)
    if role == "tool":
        call_id = as_text(message.get("tool_call_id"), f"{param}.tool_call_id")
        name = names.get(call_id)
        if name is None:
            raise invalid(
                f"{param}.tool_call_id",
                f"is {call_id!r}, which no earlier assistant tool call has",
                "send the assistant message with that tool call first",
            )
        text = openai_text(message.get("content"), f"{param}.content")
        response = {"name": name, "response": _tool_response(text)}
        return "user", [{"functionResponse": response}]
    raise untranslatable(f"{param}.role", GEMINI, f"role {role!r} cannot be sent")


def _tool_response(text: str) -> dict[str, Any]:
    """Return a tool result as Gemini's ``response`` object: the JSON object itself, or text."""
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        parsed = None
    return parsed if isinstance(parsed, dict) else {"result": text}


def _user_parts(content: object, param: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}]
    parts: list[dict[str, Any]] = []
    for index, raw in enumerate(as_list(content, param)):
        where = f"{param}[{index}]"
        part = as_object(raw, where)
        kind = part.get("type")
        if kind == "text":
            parts.append({"text": as_text(part.get("text"), f"{where}.text")})
        elif kind == "image_url":
            url = as_text(as_object(part.get("image_url"), f"{where}.image_url").get("url"), where)
            if not url.startswith("data:"):
                raise untranslatable(
                    f"{where}.image_url.url",
                    GEMINI,
                    "Gemini reads images inline or from its Files API; send a data URL",
                )
            media_type, data = parse_data_url(url, f"{where}.image_url.url")
            parts.append({"inlineData": {"mimeType": media_type, "data": data}})
        else:
            raise untranslatable(f"{where}.type", GEMINI, f"parts of type {kind!r} cannot be sent")
    return parts


def _model_parts(
    message: Mapping[str, Any], param: str, names: dict[str, str]
) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    text = openai_text(message.get("content"), f"{param}.content")
    if text:
        parts.append({"text": text})
    for index, raw in enumerate(message.get("tool_calls") or []):
        where = f"{param}.tool_calls[{index}]"
        call = as_object(raw, where)
        function = as_object(call.get("function"), f"{where}.function")
        name = as_text(function.get("name"), f"{where}.function.name")
        names[as_text(call.get("id"), f"{where}.id")] = name
        arguments = parse_arguments(function.get("arguments"), f"{where}.function.arguments")
        parts.append({"functionCall": {"name": name, "args": arguments}})
    return parts


def _declaration(raw: object, param: str) -> dict[str, Any]:
    tool = as_object(raw, param)
    if tool.get("type") != "function":
        raise untranslatable(f"{param}.type", GEMINI, "only function tools can be sent")
    function = as_object(tool.get("function"), f"{param}.function")
    declaration: dict[str, Any] = {"name": as_text(function.get("name"), f"{param}.function.name")}
    if isinstance(function.get("description"), str):
        declaration["description"] = function["description"]
    if function.get("parameters") is not None:
        declaration["parametersJsonSchema"] = function["parameters"]
    return declaration


def _tool_config(choice: object) -> dict[str, Any] | None:
    if choice is None:
        return None
    if choice == "auto":
        return {"mode": "AUTO"}
    if choice == "none":
        return {"mode": "NONE"}
    if choice == "required":
        return {"mode": "ANY"}
    function = as_object(as_object(choice, "tool_choice").get("function"), "tool_choice.function")
    name = as_text(function.get("name"), "tool_choice.function.name")
    return {"mode": "ANY", "allowedFunctionNames": [name]}
