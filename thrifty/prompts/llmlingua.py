"""LLMLingua-2 as a compressor, for users who have the ``llmlingua`` package installed.

LLMLingua-2 (Microsoft, 2024) classifies each token of a passage as keep or
drop with a small encoder model, so it shortens inside sentences where the
extractive compressor keeps or drops whole ones. Thrifty does not depend on
it: ``compress.method: llmlingua2`` works only where ``pip install
llmlingua`` has been run and its model can be loaded.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Sequence
from typing import Any

from thrifty.errors import ConfigError
from thrifty.prompts.counting import TokenCounter

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "microsoft/llmlingua-2-xlm-roberta-large-meetingbank"


def llmlingua_installed() -> bool:
    return importlib.util.find_spec("llmlingua") is not None


class LLMLinguaCompressor:
    """Compress each passage with ``llmlingua.PromptCompressor`` at the target's rate.

    The model is loaded on first use, once per compressor.
    """

    name = "llmlingua2"

    def __init__(self, model_name: str = DEFAULT_MODEL, device: str = "cpu") -> None:
        if not llmlingua_installed():
            raise ConfigError(
                "compress.method is llmlingua2, but the llmlingua package is not installed; "
                "run `pip install llmlingua` or use method: extractive"
            )
        self.model_name = model_name
        self.device = device
        self._compressor: Any = None

    def compress(
        self, passages: Sequence[str], question: str, target_tokens: int, counter: TokenCounter
    ) -> list[str]:
        total = sum(counter.text(passage) for passage in passages)
        if total == 0:
            return list(passages)
        rate = min(max(target_tokens / total, 0.01), 1.0)
        compressor = self._load()
        shortened: list[str] = []
        for passage in passages:
            if not passage.strip():
                shortened.append(passage)
                continue
            result = compressor.compress_prompt(passage, rate=rate, force_tokens=["\n", "?"])
            shortened.append(str(result["compressed_prompt"]))
        return shortened

    def _load(self) -> Any:
        if self._compressor is None:
            module = importlib.import_module("llmlingua")
            logger.info("loading LLMLingua-2 model %s on %s", self.model_name, self.device)
            self._compressor = module.PromptCompressor(
                model_name=self.model_name, use_llmlingua2=True, device_map=self.device
            )
        return self._compressor
