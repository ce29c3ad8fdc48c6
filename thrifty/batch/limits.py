"""The providers' batch limits, and the request formats their Batch APIs accept."""

from __future__ import annotations

import re
from dataclasses import dataclass

from thrifty.config import ProviderKind

# Endpoints OpenAI's Batch API accepts in a line's ``url`` (its API reference,
# openai-python 3.60), and the body field each requires besides ``model``.
OPENAI_BATCH_URLS: dict[str, tuple[str, ...]] = {
    "/v1/chat/completions": ("messages",),
    "/v1/responses": ("input",),
    "/v1/embeddings": ("input",),
    "/v1/completions": ("prompt",),
    "/v1/moderations": ("input",),
    "/v1/images/generations": ("prompt",),
    "/v1/images/edits": ("image", "prompt"),
}
ANTHROPIC_ENDPOINT = "/v1/messages"
CHAT_URL = "/v1/chat/completions"

# Anthropic's rule for a Message Batch custom_id.
ANTHROPIC_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

# Anthropic's request body wraps the lines: {"requests":[line,line,...]}.
_ANTHROPIC_WRAPPER_BYTES = len(b'{"requests":[]}')


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """The most requests and bytes one provider batch may hold."""

    max_requests: int
    max_bytes: int

    def batch_bytes(self, kind: ProviderKind, line_bytes: int, lines: int) -> int:
        """Return the size of a batch made of ``lines`` lines totalling ``line_bytes``.

        An OpenAI input file has one line per request, each ending in a line
        break. An Anthropic body is one JSON object with the lines in a list.
        """
        if kind == "openai":
            return line_bytes + lines
        return _ANTHROPIC_WRAPPER_BYTES + line_bytes + max(lines - 1, 0)


# OpenAI: 50,000 requests or 200 MB per input file. Anthropic: 100,000
# requests or 256 MB per batch. NOTE: neither provider says whether MB means
# 10^6 or 2^20 bytes, so the byte limits use 10^6, the smaller reading.
DEFAULT_LIMITS: dict[ProviderKind, BatchLimits] = {
    "openai": BatchLimits(max_requests=50_000, max_bytes=200 * 1000 * 1000),
    "anthropic": BatchLimits(max_requests=100_000, max_bytes=256 * 1000 * 1000),
}
