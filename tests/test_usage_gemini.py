"""Gemini usageMetadata mapped into Usage."""

from __future__ import annotations

import copy

import pytest

from tests.provider_responses import GEMINI_THINKING
from thrifty.errors import UsageError
from thrifty.usage import Usage, usage_from_gemini


def test_thoughts_are_outside_candidates() -> None:
    usage = usage_from_gemini(GEMINI_THINKING)

    assert usage.output_tokens == 400 + 1250
    assert usage.reasoning_tokens == 1250
    assert usage.total_tokens == GEMINI_THINKING["usageMetadata"]["totalTokenCount"]


def test_cached_content_is_subset_of_prompt() -> None:
    usage = usage_from_gemini(GEMINI_THINKING)

    assert usage.input_tokens == 12000
    assert usage.cache_read_tokens == 8000
    assert usage.uncached_input_tokens == 4000


def test_tool_use_prompt_counts_as_input() -> None:
    body = {
        "usageMetadata": {
            "promptTokenCount": 300,
            "candidatesTokenCount": 120,
            "toolUsePromptTokenCount": 2500,
            "totalTokenCount": 2920,
        }
    }

    usage = usage_from_gemini(body)

    assert usage.input_tokens == 2800
    assert usage.total_tokens == 2920


def test_audio_modalities() -> None:
    body = {
        "usageMetadata": {
            "promptTokenCount": 1000,
            "candidatesTokenCount": 800,
            "promptTokensDetails": [
                {"modality": "TEXT", "tokenCount": 200},
                {"modality": "AUDIO", "tokenCount": 800},
            ],
            "candidatesTokensDetails": [{"modality": "AUDIO", "tokenCount": 800}],
        }
    }

    usage = usage_from_gemini(body)

    assert usage == Usage(
        input_tokens=1000, output_tokens=800, input_audio_tokens=800, output_audio_tokens=800
    )


def test_omitted_counts_are_zero() -> None:
    body = {"usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}}

    assert usage_from_gemini(body) == Usage(input_tokens=9)


def test_missing_usage_metadata_raises() -> None:
    body = {"candidates": [], "modelVersion": "gemini-2.5-flash"}

    with pytest.raises(UsageError) as raised:
        usage_from_gemini(body)

    assert raised.value.field == "usageMetadata"


def test_cached_above_prompt_raises() -> None:
    body = copy.deepcopy(GEMINI_THINKING)
    body["usageMetadata"]["cachedContentTokenCount"] = 12001

    with pytest.raises(UsageError) as raised:
        usage_from_gemini(body)

    assert raised.value.field == "usageMetadata.cachedContentTokenCount"


def test_null_candidates_count_is_zero() -> None:
    body = copy.deepcopy(GEMINI_THINKING)
    body["usageMetadata"]["candidatesTokenCount"] = None

    assert usage_from_gemini(body).output_tokens == 1250


@pytest.mark.parametrize("value", [400.0, "400", -2, True])
def test_invalid_candidates_count(value: object) -> None:
    body = copy.deepcopy(GEMINI_THINKING)
    body["usageMetadata"]["candidatesTokenCount"] = value

    with pytest.raises(UsageError) as raised:
        usage_from_gemini(body)

    assert raised.value.field == "usageMetadata.candidatesTokenCount"


def test_malformed_modality_list_raises() -> None:
    body = copy.deepcopy(GEMINI_THINKING)
    body["usageMetadata"]["promptTokensDetails"] = {"modality": "AUDIO"}

    with pytest.raises(UsageError) as raised:
        usage_from_gemini(body)

    assert raised.value.field == "usageMetadata.promptTokensDetails"
