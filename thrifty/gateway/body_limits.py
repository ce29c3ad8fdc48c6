"""Limits on the shape of a request body that the JSON parser alone does not enforce."""

from __future__ import annotations

from typing import Any

from thrifty.errors import RequestError

# orjson parses up to 1,024 levels but serializes at most 255, and the gateway
# serializes bodies (forwarding, fingerprints, estimates), so deeper bodies are
# rejected up front, with room left for the levels the gateway adds around them.
MAX_JSON_DEPTH = 128


def check_json_depth(body: Any, limit: int = MAX_JSON_DEPTH) -> None:
    """Raise RequestError (400) when ``body`` nests arrays or objects deeper than ``limit``.

    The walk is iterative and visits containers only, so it is cheap for the
    usual request, whose few containers hold long strings.
    """
    level = [body]
    depth = 1
    while level:
        if depth > limit:
            raise RequestError(
                400,
                f"the request body nests arrays or objects more than {limit} levels deep; "
                "flatten it",
            )
        deeper: list[Any] = []
        for value in level:
            children = value.values() if type(value) is dict else value
            deeper += [child for child in children if type(child) is dict or type(child) is list]
        level = deeper
        depth += 1
