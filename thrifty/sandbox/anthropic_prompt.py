"""Anthropic prompts as blocks: token counts, prefix hashes and cache breakpoints.

Anthropic's tokenizer is not public. The sandbox counts with ``o200k_base``,
so every Anthropic input count it reports is an estimate. The counting rule:

- each tool: its JSON definition (without ``cache_control``, keys sorted);
- each system block: its text;
- each message: ``MESSAGE_OVERHEAD_TOKENS`` for its role and turn markers, plus
  its content blocks: text, tool_use name and input JSON, tool_result content,
  thinking text. Images and documents count 0 tokens.

The prompt is read in Anthropic's cache order: tools, system, messages.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from thrifty.sandbox.errors import ApiError
from thrifty.sandbox.openai_prompt import encode_text
from thrifty.sandbox.prompt_cache import ANTHROPIC_TTL_1H_S, ANTHROPIC_TTL_5M_S, CacheBlock

ENCODING = "o200k_base"
MESSAGE_OVERHEAD_TOKENS = 3
MAX_BREAKPOINTS = 4
_TTLS = {"5m": ANTHROPIC_TTL_5M_S, "1h": ANTHROPIC_TTL_1H_S}


@dataclass(frozen=True, slots=True)
class _Piece:
    """One block before hashing: what identifies it, its tokens, its breakpoint."""

    material: bytes
    tokens: int
    ttl_s: float | None
    where: str


def prompt_blocks(body: Mapping[str, Any]) -> list[CacheBlock]:
    """Return the request's prompt as cache blocks; raise ApiError 400 on invalid parts."""
    pieces = [*_tool_pieces(body.get("tools")), *_system_pieces(body.get("system"))]
    pieces += _message_pieces(body.get("messages"))
    if "cache_control" in body and pieces:
        # Automatic caching: the top-level breakpoint applies to the last block.
        last = pieces[-1]
        ttl = _ttl(body["cache_control"], "cache_control")
        pieces[-1] = _Piece(last.material, last.tokens, ttl, last.where)
    _check_breakpoints(pieces)
    return _chain(pieces)


def input_tokens(blocks: list[CacheBlock]) -> int:
    return blocks[-1].end if blocks else 0


def _chain(pieces: list[_Piece]) -> list[CacheBlock]:
    blocks: list[CacheBlock] = []
    digest = b""
    end = 0
    for piece in pieces:
        digest = hashlib.blake2b(digest + piece.material, digest_size=16).digest()
        end += piece.tokens
        blocks.append(CacheBlock(end=end, digest=digest, ttl_s=piece.ttl_s))
    return blocks


def _tool_pieces(tools: Any) -> list[_Piece]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise ApiError(400, "tools: Input should be a valid list")
    pieces = []
    for index, tool in enumerate(tools):
        where = f"tools.{index}"
        if not isinstance(tool, Mapping):
            raise ApiError(400, f"{where}: Input should be a valid dictionary")
        definition = orjson.dumps(_without_cache_control(tool), option=orjson.OPT_SORT_KEYS)
        tokens = len(encode_text(ENCODING, definition.decode()))
        pieces.append(_Piece(b"tool" + definition, tokens, _block_ttl(tool, where), where))
    return pieces


def _system_pieces(system: Any) -> list[_Piece]:
    if system is None:
        return []
    if isinstance(system, str):
        return [_text_piece(b"system", system, None, "system")]
    if not isinstance(system, list):
        raise ApiError(400, "system: Input should be a valid string or a list of text blocks")
    pieces = []
    for index, block in enumerate(system):
        where = f"system.{index}"
        if not isinstance(block, Mapping) or block.get("type") != "text":
            raise ApiError(400, f"{where}: system blocks must be text blocks")
        pieces.append(
            _text_piece(
                b"system", _string(block.get("text"), where), _block_ttl(block, where), where
            )
        )
    return pieces


def _message_pieces(messages: Any) -> list[_Piece]:
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages: Input should be a non-empty list of messages")
    pieces = []
    for index, message in enumerate(messages):
        where = f"messages.{index}"
        if not isinstance(message, Mapping):
            raise ApiError(400, f"{where}: Input should be a valid dictionary")
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise ApiError(400, f"{where}.role: Input should be 'user' or 'assistant'")
        pieces += _content_pieces(str(role), message.get("content"), where)
    return pieces


def _content_pieces(role: str, content: Any, where: str) -> list[_Piece]:
    marker = role.encode()
    if isinstance(content, str):
        # A string is shorthand for one text block, and caches the same way.
        content = [{"type": "text", "text": content}]
    if not isinstance(content, list) or not content:
        raise ApiError(
            400, f"{where}.content: Input should be a string or a non-empty list of blocks"
        )
    pieces = []
    for index, block in enumerate(content):
        block_where = f"{where}.content.{index}"
        if not isinstance(block, Mapping):
            raise ApiError(400, f"{block_where}: Input should be a valid dictionary")
        overhead = MESSAGE_OVERHEAD_TOKENS if index == 0 else 0
        material = marker + orjson.dumps(_without_cache_control(block), option=orjson.OPT_SORT_KEYS)
        tokens = len(encode_text(ENCODING, _block_text(block, block_where))) + overhead
        pieces.append(_Piece(material, tokens, _block_ttl(block, block_where), block_where))
    return pieces


def _block_text(block: Mapping[str, Any], where: str) -> str:
    """Return the text of a content block that counts as prompt tokens."""
    block_type = block.get("type")
    if block_type == "text":
        return _string(block.get("text"), where)
    if block_type == "tool_use":
        return str(block.get("name", "")) + orjson.dumps(block.get("input", {})).decode()
    if block_type == "tool_result":
        result = block.get("content", "")
        if isinstance(result, list):
            return "".join(
                str(part.get("text", "")) for part in result if isinstance(part, Mapping)
            )
        return str(result)
    if block_type == "thinking":
        return str(block.get("thinking", ""))
    return ""


def _text_piece(marker: bytes, text: str, ttl_s: float | None, where: str) -> _Piece:
    return _Piece(marker + text.encode(), len(encode_text(ENCODING, text)), ttl_s, where)


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ApiError(400, f"{where}.text: Input should be a valid string")
    return value


def _without_cache_control(block: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in block.items() if key != "cache_control"}


def _block_ttl(block: Mapping[str, Any], where: str) -> float | None:
    control = block.get("cache_control")
    if control is None:
        return None
    return _ttl(control, f"{where}.cache_control")


def _ttl(control: Any, where: str) -> float:
    if not isinstance(control, Mapping) or control.get("type") != "ephemeral":
        raise ApiError(400, f"{where}.type: Input should be 'ephemeral'")
    ttl = control.get("ttl", "5m")
    if not isinstance(ttl, str) or ttl not in _TTLS:
        raise ApiError(400, f"{where}.ttl: Input should be '5m' or '1h', got {ttl!r}")
    return _TTLS[ttl]


def _check_breakpoints(pieces: list[_Piece]) -> None:
    marked = [piece for piece in pieces if piece.ttl_s is not None]
    if len(marked) > MAX_BREAKPOINTS:
        raise ApiError(
            400,
            f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. "
            f"Found {len(marked)}.",
        )
    seen_5m = False
    for piece in marked:
        if piece.ttl_s == ANTHROPIC_TTL_5M_S:
            seen_5m = True
        elif seen_5m:
            raise ApiError(
                400,
                f"{piece.where}.cache_control: a ttl='1h' breakpoint must not come after a "
                "ttl='5m' one; put longer-lived breakpoints first.",
            )
