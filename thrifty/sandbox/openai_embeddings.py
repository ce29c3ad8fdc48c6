"""POST /v1/embeddings: deterministic unit vectors seeded from each input."""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from array import array
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from thrifty.sandbox.catalog import accepts_dimensions, embedding_dimensions, encoding_name
from thrifty.sandbox.errors import ApiError
from thrifty.sandbox.openai_prompt import encode_text
from thrifty.sandbox.params import optional_integer, require_model, require_present
from thrifty.sandbox.state import admit, check_model
from thrifty.sandbox.wire import json_response, read_json_object

# OpenAI's limit on inputs per embeddings request.
MAX_INPUTS = 2048
ENCODING_FORMATS = ("float", "base64")


async def create_embeddings(request: Request) -> Response:
    admission = await admit(request, "openai")
    body = await read_json_object(request)
    check_model(admission, require_model(body))
    reply = embeddings_body(body)
    await admission.pacing.wait_first_token()
    return json_response(reply, admission.headers, admission.disconnect_after_chunks is not None)


def embeddings_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """Return the embeddings ``list`` for a request body; raise ApiError 400 on an invalid one."""
    model = require_model(body)
    inputs = parse_inputs(require_present(body, "input"))
    dimensions = _dimensions(body, model)
    encoding_format = _encoding_format(body)

    encoding = encoding_name(model, "openai")
    data = []
    prompt_tokens = 0
    for index, item in enumerate(inputs):
        tokens = encode_text(encoding, item) if isinstance(item, str) else tuple(item)
        prompt_tokens += len(tokens)
        vector = embedding_vector(tokens, embedding_dimensions(model), dimensions)
        data.append(
            {"object": "embedding", "index": index, "embedding": _encode(vector, encoding_format)}
        )
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def parse_inputs(value: Any) -> list[str | list[int]]:
    """Return the inputs of a request: a string, strings, a token array or token arrays."""
    if isinstance(value, str):
        inputs: list[Any] = [value]
    elif isinstance(value, list) and value and all(_is_token(item) for item in value):
        inputs = [value]
    elif isinstance(value, list):
        inputs = value
    else:
        inputs = [None]
    if not inputs or len(inputs) > MAX_INPUTS:
        raise ApiError(
            400,
            f"Invalid 'input': expected from 1 to {MAX_INPUTS} inputs, got {len(inputs)}.",
            param="input",
        )
    for index, item in enumerate(inputs):
        _check_input(index, item)
    return inputs


def _is_token(item: Any) -> bool:
    return isinstance(item, int) and not isinstance(item, bool)


def _check_input(index: int, item: Any) -> None:
    if isinstance(item, str) and item:
        return
    if isinstance(item, list) and item and all(_is_token(token) and token >= 0 for token in item):
        return
    raise ApiError(
        400,
        f"Invalid 'input[{index}]': each input must be a non-empty string or a non-empty array "
        "of token ids.",
        param="input",
    )


def _encoding_format(body: Mapping[str, Any]) -> str:
    encoding_format = body.get("encoding_format") or "float"
    if encoding_format not in ENCODING_FORMATS:
        raise ApiError(
            400,
            f"Invalid value for 'encoding_format': {encoding_format!r}. "
            "Supported values are: 'float' and 'base64'.",
            param="encoding_format",
            code="invalid_value",
        )
    return str(encoding_format)


def _dimensions(body: Mapping[str, Any], model: str) -> int:
    native = embedding_dimensions(model)
    requested = optional_integer(body, "dimensions", 1, native)
    if requested is None:
        return native
    if not accepts_dimensions(model):
        raise ApiError(
            400, "This model does not support specifying dimensions.", param="dimensions"
        )
    return requested


@lru_cache(maxsize=128)
def _full_vector(tokens: tuple[int, ...], size: int) -> tuple[float, ...]:
    """Return ``size`` components in [-1, 1] drawn from a hash of the tokens.

    SHAKE-256 output for a seed has stable prefixes, so a smaller ``size``
    gives the first components of a larger one.
    """
    seed = hashlib.blake2b(array("q", tokens).tobytes(), digest_size=32).digest()
    raw = hashlib.shake_256(seed).digest(2 * size)
    return tuple(value / 32767.5 - 1.0 for value in struct.unpack(f"<{size}H", raw))


def embedding_vector(tokens: tuple[int, ...], native: int, dimensions: int) -> list[float]:
    """Return a unit vector for the input; fewer dimensions give the normalized prefix.

    As with OpenAI's shortened embeddings, the vector with ``dimensions=d`` is
    the first d of the ``native`` components, scaled back to unit length.
    """
    components = _full_vector(tokens, native)[:dimensions]
    norm = math.sqrt(sum(value * value for value in components)) or 1.0
    return [value / norm for value in components]


def _encode(vector: list[float], encoding_format: str) -> list[float] | str:
    if encoding_format == "float":
        return vector
    # base64 of little-endian float32 values, which the openai SDK decodes.
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
