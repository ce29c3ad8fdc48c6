"""One priced response per provider, in the usage shape that provider returns.

Each case is priced through the usage parser and CostEngine, and through
`thrifty cost` with the same body. Rates (USD per million tokens) are quoted
from the genai-prices 0.2.3 data, or from the thrifty.yaml below for the
self-hosted models, and the expected figures are worked out from them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from thrifty.cli import cost as cost_command
from thrifty.pricing import CostEngine
from thrifty.pricing.config import parse_prices_config
from thrifty.usage import served_from_response, usage_from_response

# 10:00 UTC: inside DeepSeek's peak window, with every tier variant in force.
AT = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)

PRICES_SECTION: dict[str, Any] = {
    "models": {
        "vllm/meta-llama/Llama-3.3-70B-Instruct": {
            "input_mtok": 0.2,
            "cache_read_mtok": 0.02,
            "output_mtok": 0.6,
        },
        # Amortized hardware cost of a model on a workstation.
        "llama3.2": {"input_mtok": "0.05", "output_mtok": "0.1"},
    }
}


@dataclass(frozen=True)
class Case:
    provider: str
    endpoint: str
    body: dict[str, Any]
    expected: str
    model: str | None = None


def chat(model: str, usage: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-provider",
        "object": "chat.completion",
        "created": 1763287200,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "ok"},
                "finish_reason": "stop",
            }
        ],
        "usage": usage,
        **extra,
    }


def message(model: str, usage: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "msg_provider",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": "ok"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": usage,
    }


def gemini(model: str, usage: dict[str, Any]) -> dict[str, Any]:
    return {
        "candidates": [{"content": {"role": "model", "parts": [{"text": "ok"}]}}],
        "usageMetadata": usage,
        "modelVersion": model,
        "responseId": "provider",
    }


CASES = {
    # gpt-5-mini (Responses API): $0.25 input, $0.025 cached, $2 output.
    "openai-responses": Case(
        "openai",
        "responses",
        {
            "id": "resp_provider",
            "object": "response",
            "status": "completed",
            "model": "gpt-5-mini-2025-08-07",
            "service_tier": "default",
            "usage": {
                "input_tokens": 4000,
                "input_tokens_details": {"cached_tokens": 3072},
                "output_tokens": 1200,
                "output_tokens_details": {"reasoning_tokens": 900},
                "total_tokens": 5200,
            },
        },
        "0.0027088",
    ),
    # gpt-image-1.5 (Images API): $5 text and $8 image input, $32 image output.
    "openai-images": Case(
        "openai",
        "images",
        {
            "created": 1763287200,
            "data": [{"b64_json": "aGVsbG8="}],
            "usage": {
                "input_tokens": 350,
                "input_tokens_details": {"text_tokens": 50, "image_tokens": 300},
                "output_tokens": 4160,
                "total_tokens": 4510,
            },
        },
        "0.13577",
        model="gpt-image-1.5",
    ),
    # Azure's own gpt-4o entry: $2.50 input, $1.25 cached, $10 output.
    "azure-openai": Case(
        "azure",
        "chat.completions",
        chat(
            "gpt-4o-2024-11-20",
            {
                "prompt_tokens": 1500,
                "completion_tokens": 200,
                "total_tokens": 1700,
                "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
            },
            prompt_filter_results=[{"prompt_index": 0, "content_filter_results": {}}],
        ),
        "0.00447",
    ),
    # claude-sonnet-4-5: $3 input, $0.30 read, $3.75 5-minute and $6 1-hour
    # writes, $15 output; web search $10 per 1,000.
    "anthropic": Case(
        "anthropic",
        "messages",
        message(
            "claude-sonnet-4-5-20250929",
            {
                "input_tokens": 50,
                "cache_read_input_tokens": 20000,
                "cache_creation_input_tokens": 3000,
                "cache_creation": {
                    "ephemeral_5m_input_tokens": 1000,
                    "ephemeral_1h_input_tokens": 2000,
                },
                "output_tokens": 400,
                "server_tool_use": {"web_search_requests": 2},
                "service_tier": "standard",
            },
        ),
        "0.0479",
    ),
    # Claude Sonnet 4.5 on Bedrock through a US inference profile (Converse
    # API), regional rates: $3.30 input, $0.33 read, $4.125 5-minute and
    # $6.60 1-hour writes, $16.50 output.
    "bedrock-converse": Case(
        "aws",
        "converse",
        {
            "output": {"message": {"role": "assistant", "content": [{"text": "ok"}]}},
            "stopReason": "end_turn",
            "usage": {
                "inputTokens": 120,
                "outputTokens": 350,
                "totalTokens": 9970,
                "cacheReadInputTokens": 8000,
                "cacheWriteInputTokens": 1500,
                "cacheDetails": [
                    {"ttl": "1h", "inputTokens": 500},
                    {"ttl": "5m", "inputTokens": 1000},
                ],
            },
            "metrics": {"latencyMs": 1200},
            "serviceTier": {"type": "default"},
        },
        "0.016236",
        model="us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    ),
    # Claude 3.7 Sonnet on Bedrock through InvokeModel, which returns
    # Anthropic's shape: $3 input, $0.30 read, $15 output.
    "bedrock-invoke": Case(
        "bedrock",
        "messages",
        message(
            "claude-3-7-sonnet-20250219",
            {
                "input_tokens": 1000,
                "cache_read_input_tokens": 2000,
                "cache_creation_input_tokens": 0,
                "output_tokens": 500,
            },
        ),
        "0.0111",
        model="anthropic.claude-3-7-sonnet-20250219-v1:0",
    ),
    # Claude Sonnet 4.5 on Vertex AI, named with its @date: $3 input, $15 output.
    "vertex-claude": Case(
        "vertex_ai",
        "messages",
        message("claude-sonnet-4-5@20250929", {"input_tokens": 2000, "output_tokens": 300}),
        "0.0105",
    ),
    # gemini-2.5-flash (Gemini API): $0.30 text input, $1 audio input, $2.50
    # output with thoughts.
    "gemini-api-audio": Case(
        "google",
        "gemini",
        gemini(
            "gemini-2.5-flash",
            {
                "promptTokenCount": 3000,
                "promptTokensDetails": [
                    {"modality": "TEXT", "tokenCount": 1000},
                    {"modality": "AUDIO", "tokenCount": 2000},
                ],
                "candidatesTokenCount": 400,
                "thoughtsTokenCount": 600,
                "totalTokenCount": 4000,
            },
        ),
        "0.0048",
    ),
    # gemini-2.5-pro on Vertex AI above 200,000 input tokens: $2.50 input,
    # $0.25 cached, $15 output on every token of the request.
    "vertex-gemini-long-context": Case(
        "vertex_ai",
        "gemini",
        gemini(
            "gemini-2.5-pro",
            {
                "promptTokenCount": 300000,
                "cachedContentTokenCount": 200000,
                "candidatesTokenCount": 2000,
                "thoughtsTokenCount": 1000,
                "totalTokenCount": 303000,
            },
        ),
        "0.345",
    ),
    # gemini-2.5-flash-image: $0.30 input, $30 per million image tokens out.
    "gemini-image-output": Case(
        "google",
        "gemini",
        gemini(
            "gemini-2.5-flash-image",
            {
                "promptTokenCount": 50,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 50}],
                "candidatesTokenCount": 1290,
                "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": 1290}],
                "totalTokenCount": 1340,
            },
        ),
        "0.038715",
    ),
    # mistral-large-latest is mistral-large: $2 input, $6 output.
    "mistral": Case(
        "mistral",
        "chat.completions",
        chat(
            "mistral-large-latest",
            {"prompt_tokens": 2000, "completion_tokens": 500, "total_tokens": 2500},
        ),
        "0.007",
    ),
    # deepseek-chat from 00:30 to 16:30 UTC: $0.27 input, $0.07 cache hit,
    # $1.10 output. The cache hits are only in prompt_cache_hit_tokens.
    "deepseek-peak": Case(
        "deepseek",
        "chat.completions",
        chat(
            "deepseek-chat",
            {
                "prompt_tokens": 10000,
                "completion_tokens": 1000,
                "total_tokens": 11000,
                "prompt_cache_hit_tokens": 8000,
                "prompt_cache_miss_tokens": 2000,
            },
        ),
        "0.0022",
    ),
    # grok-4 is grok-4-0709: $3 input, $0.75 cached, $15 output. xAI counts
    # the 500 reasoning tokens outside completion_tokens (total_tokens 1,700).
    "xai-reasoning": Case(
        "xai",
        "chat.completions",
        chat(
            "grok-4",
            {
                "prompt_tokens": 1000,
                "completion_tokens": 200,
                "total_tokens": 1700,
                "prompt_tokens_details": {
                    "text_tokens": 1000,
                    "audio_tokens": 0,
                    "image_tokens": 0,
                    "cached_tokens": 400,
                },
                "completion_tokens_details": {
                    "reasoning_tokens": 500,
                    "audio_tokens": 0,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0,
                },
                "num_sources_used": 0,
            },
        ),
        "0.0126",
    ),
    # llama-3.3-70b-versatile: $0.59 input, $0.79 output; Groq adds timings.
    "groq": Case(
        "groq",
        "chat.completions",
        chat(
            "llama-3.3-70b-versatile",
            {
                "queue_time": 0.031,
                "prompt_tokens": 1200,
                "prompt_time": 0.012,
                "completion_tokens": 300,
                "completion_time": 0.2,
                "total_tokens": 1500,
                "total_time": 0.212,
            },
            x_groq={"id": "req_provider"},
        ),
        "0.000945",
    ),
    # meta-llama/Llama-3.3-70B-Instruct-Turbo on Together: $0.88 both ways.
    "together": Case(
        "together",
        "chat.completions",
        chat(
            "meta-llama/Llama-3.3-70B-Instruct-Turbo",
            {"prompt_tokens": 5000, "completion_tokens": 1000, "total_tokens": 6000},
        ),
        "0.00528",
    ),
    # Fireworks names models by account path; deepseek-v3p2: $0.56 input,
    # $0.28 cached, $1.68 output.
    "fireworks": Case(
        "fireworks",
        "chat.completions",
        chat(
            "accounts/fireworks/models/deepseek-v3p2",
            {
                "prompt_tokens": 4000,
                "total_tokens": 4500,
                "completion_tokens": 500,
                "prompt_tokens_details": {"cached_tokens": 3000},
            },
        ),
        "0.00224",
    ),
    # anthropic/claude-sonnet-4.5 on OpenRouter: $3 input, $0.30 read, $3.75
    # write, $15 output, in OpenAI's shape (prompt_tokens include the cache).
    "openrouter": Case(
        "openrouter",
        "chat.completions",
        chat(
            "anthropic/claude-sonnet-4.5",
            {
                "prompt_tokens": 10000,
                "completion_tokens": 800,
                "total_tokens": 10800,
                "cost": 0.0273,
                "is_byok": False,
                "prompt_tokens_details": {
                    "cached_tokens": 6000,
                    "cache_write_tokens": 2000,
                    "audio_tokens": 0,
                },
                "completion_tokens_details": {"reasoning_tokens": 300, "image_tokens": 0},
            },
        ),
        "0.0273",
    ),
    # vLLM serving Llama 3.3 70B, priced in thrifty.yaml: $0.20 input,
    # $0.02 cached, $0.60 output.
    "vllm-config-price": Case(
        "vllm",
        "chat.completions",
        chat(
            "meta-llama/Llama-3.3-70B-Instruct",
            {
                "prompt_tokens": 3000,
                "completion_tokens": 400,
                "total_tokens": 3400,
                "prompt_tokens_details": {"cached_tokens": 2048},
            },
        ),
        "0.00047136",
    ),
    # Ollama's OpenAI-compatible endpoint, priced in thrifty.yaml for any
    # provider: $0.05 input, $0.10 output.
    "ollama-config-price": Case(
        "ollama",
        "chat.completions",
        chat(
            "llama3.2",
            {"prompt_tokens": 26, "completion_tokens": 298, "total_tokens": 324},
            system_fingerprint="fp_ollama",
        ),
        "0.0000311",
    ),
}


@pytest.fixture(scope="module")
def engine() -> CostEngine:
    return CostEngine.from_config(parse_prices_config(PRICES_SECTION), warn_unpriced=False)


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "thrifty.yaml"
    path.write_text(yaml.safe_dump({"prices": PRICES_SECTION}), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()
    cost_command.register(app)
    app.command("noop")(lambda: None)
    return app


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_engine_prices_provider(engine: CostEngine, case: Case) -> None:
    usage = usage_from_response(case.endpoint, case.body)
    served = served_from_response(case.endpoint, case.body)

    cost = engine.price(
        case.provider,
        case.model or served.model or "",
        usage,
        service_tier=served.service_tier,
        at=AT,
    )

    assert cost.unpriced_reason is None
    assert cost.cost_usd == Decimal(case.expected)
    assert sum(cost.breakdown.values(), Decimal(0)) == cost.cost_usd


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_cost_command_prices_provider(app: typer.Typer, config_file: Path, case: Case) -> None:
    args = ["--provider", case.provider, "--response", json.dumps(case.body)]
    if case.model is not None:
        args += ["--model", case.model]
    result = CliRunner().invoke(
        app, ["cost", *args, "--at", AT.isoformat(), "--config", str(config_file)]
    )

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["cost_usd"] == case.expected


@pytest.mark.parametrize(
    ("provider", "model", "catalog_provider", "catalog_model"),
    [
        ("xai", "grok-4", "x-ai", "grok-4-0709"),
        ("bedrock", "anthropic.claude-3-7-sonnet-20250219-v1:0", "aws", None),
        ("vertex_ai", "claude-sonnet-4-5@20250929", "google", "claude-sonnet-4-5"),
        ("vertex_ai", "gemini-2.5-pro", "google", "gemini-2.5-pro"),
        ("together_ai", "meta-llama/Llama-3.3-70B-Instruct-Turbo", "together", None),
        ("fireworks_ai", "accounts/fireworks/models/deepseek-v3p2", "fireworks", "deepseek-v3p2"),
        ("azure_openai", "gpt-4o-2024-11-20", "azure", "gpt-4o"),
    ],
)
def test_provider_spellings_resolve(
    engine: CostEngine,
    provider: str,
    model: str,
    catalog_provider: str,
    catalog_model: str | None,
) -> None:
    resolved = engine.resolve(provider, model)

    assert resolved is not None
    assert resolved.provider == catalog_provider
    if catalog_model is not None:
        assert resolved.model == catalog_model


def test_deepseek_off_peak(engine: CostEngine) -> None:
    # deepseek-chat outside 00:30-16:30 UTC: $0.135 input, $0.035 hits, $0.55 output.
    case = CASES["deepseek-peak"]
    usage = usage_from_response(case.endpoint, case.body)

    cost = engine.price(
        "deepseek", "deepseek-chat", usage, at=datetime(2026, 11, 16, 18, tzinfo=UTC)
    )

    assert cost.cost_usd == Decimal("0.0011")


def test_deepseek_hits_without_details_are_cached(engine: CostEngine) -> None:
    case = CASES["deepseek-peak"]

    usage = usage_from_response(case.endpoint, case.body)

    assert usage.input_tokens == 10000
    assert usage.cache_read_tokens == 8000


def test_xai_reasoning_added_to_output(engine: CostEngine) -> None:
    case = CASES["xai-reasoning"]

    usage = usage_from_response(case.endpoint, case.body)

    assert usage.output_tokens == 700
    assert usage.reasoning_tokens == 500


def test_unpriced_self_hosted_model_fails_cost_command(app: typer.Typer) -> None:
    body = chat("my-finetune", {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12})

    result = CliRunner().invoke(app, ["cost", "--provider", "vllm", "--response", json.dumps(body)])

    assert result.exit_code != 0
    assert "unknown model 'my-finetune' for provider 'vllm'" in str(result.exception)
