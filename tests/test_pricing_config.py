"""The `prices:` section of thrifty.yaml: validation, discounts, custom prices, and the gateway."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.gateway_support import running_gateway
from thrifty.config import ProviderConfig, load_config
from thrifty.errors import ConfigError
from thrifty.pricing import CATALOG_SOURCE, CUSTOM_SOURCE, CostEngine, CustomPrice
from thrifty.pricing.config import Discounts, PricesConfig, parse_prices_config
from thrifty.tokens import count_chat_messages
from thrifty.usage import Usage

AT = datetime(2026, 11, 16, 12, 0, tzinfo=UTC)
MILLION = Decimal(1_000_000)


def test_parse_full_section() -> None:
    config = parse_prices_config(
        {
            "discounts": {
                "providers": {"OpenAI": 10},
                "models": {"anthropic/claude-sonnet-4-5": 12.5, "gpt-4o": "5%"},
            },
            "models": {
                "vllm/Llama-3.3-70B": {
                    "input_mtok": 0.2,
                    "cache_read_mtok": "0.02",
                    "cache_write_mtok": 0.25,
                    "cache_write_1h_mtok": 0.4,
                    "output_mtok": 0.6,
                }
            },
        }
    )

    assert config.discounts.providers == {"openai": Decimal("10")}
    assert config.discounts.models == {
        "anthropic/claude-sonnet-4-5": Decimal("12.5"),
        "gpt-4o": Decimal("5"),
    }
    assert config.models == {
        "vllm/llama-3.3-70b": CustomPrice(
            input_mtok=Decimal("0.2"),
            output_mtok=Decimal("0.6"),
            cache_read_mtok=Decimal("0.02"),
            cache_write_mtok=Decimal("0.25"),
            cache_write_1h_mtok=Decimal("0.4"),
        )
    }


def test_parse_empty_section() -> None:
    assert parse_prices_config(None) == PricesConfig()
    assert parse_prices_config({}) == PricesConfig()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([1, 2], "prices must be a mapping, got list [1, 2]"),
        ({"discount": {}}, "unknown key prices.discount; valid keys are discounts, models"),
        (
            {"discounts": {"provider": {"openai": 10}}},
            "unknown key prices.discounts.provider; valid keys are models, providers",
        ),
        (
            {"discounts": {"providers": {"openai": 110}}},
            "prices.discounts.providers.openai is 110; give a percentage from 0 to 100, "
            "such as 12.5",
        ),
        (
            {"discounts": {"providers": {"openai": -5}}},
            "prices.discounts.providers.openai is -5; give a percentage",
        ),
        (
            {"discounts": {"models": {"gpt-4o": "ten"}}},
            "prices.discounts.models.gpt-4o is 'ten'; give a percentage",
        ),
        (
            {"discounts": {"models": {"gpt-4o": True}}},
            "prices.discounts.models.gpt-4o is True; give a percentage",
        ),
        (
            {"models": {"acme": {"output_mtok": 1}}},
            "prices.models.acme.input_mtok is missing; give the model's input_mtok in USD "
            "per million tokens",
        ),
        (
            {"models": {"acme": {"input_mtok": 1, "output_mtok": "free"}}},
            "prices.models.acme.output_mtok is 'free'; give USD per million tokens as a "
            "number of at least 0, such as 2.5",
        ),
        (
            {"models": {"acme": {"input_mtok": -1, "output_mtok": 1}}},
            "prices.models.acme.input_mtok is -1; give USD per million tokens",
        ),
        (
            {"models": {"acme": {"input_mtok": 1, "output_mtok": 1, "batch_mtok": 1}}},
            "unknown key prices.models.acme.batch_mtok; valid keys are cache_read_mtok, "
            "cache_write_1h_mtok, cache_write_mtok, input_mtok, output_mtok",
        ),
        (
            {"models": {"acme": "cheap"}},
            "prices.models.acme must be a mapping, got str 'cheap'",
        ),
        (
            {"models": {"Acme": {"input_mtok": 1, "output_mtok": 1}, "acme": {}}},
            "prices.models.acme repeats an earlier entry",
        ),
        (
            {"models": {"acme": {"input_mtok": float("nan"), "output_mtok": 1}}},
            "prices.models.acme.input_mtok is nan",
        ),
    ],
)
def test_invalid_section_names_key_and_value(raw: Any, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_prices_config(raw)

    assert message in str(raised.value)


def test_config_file_section_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "thrifty.yaml"
    path.write_text(
        "prices:\n  discounts:\n    providers:\n      anthropic: 20\n", encoding="utf-8"
    )

    config = load_config(path)

    assert config.sections["prices"].discounts.providers == {"anthropic": Decimal("20")}


def test_config_file_error_names_key(tmp_path: Path) -> None:
    path = tmp_path / "thrifty.yaml"
    path.write_text("prices:\n  models:\n    acme:\n      input_mtok: 1\n", encoding="utf-8")

    with pytest.raises(ConfigError, match=r"prices\.models\.acme\.output_mtok is missing"):
        load_config(path)


def test_provider_discount_lowers_every_rate() -> None:
    # gpt-4o: $2.50 input, $1.25 cached, $10 output, web search $10 per
    # 1,000; 10% off all of them.
    engine = CostEngine(discounts=Discounts(providers={"openai": Decimal("10")}))
    usage = Usage(
        input_tokens=2000, output_tokens=300, cache_read_tokens=1000, web_search_requests=1
    )

    cost = engine.price("openai", "gpt-4o", usage, at=AT)

    assert cost.breakdown == {
        "input": Decimal("0.00225"),
        "cache_read": Decimal("0.001125"),
        "output": Decimal("0.0027"),
        "web_search": Decimal("0.009"),
    }
    assert cost.cost_usd == Decimal("0.015075")
    assert cost.price_source == (
        f"{CATALOG_SOURCE}; 10% discount from prices.discounts.providers.openai"
    )


def test_model_discount_wins_over_provider() -> None:
    engine = CostEngine(
        discounts=Discounts(providers={"openai": Decimal("10")}, models={"gpt-4o": Decimal("25")})
    )
    usage = Usage(input_tokens=1000, output_tokens=1000)

    dated = engine.price("openai", "gpt-4o-2024-08-06", usage, at=AT)
    other = engine.price("openai", "gpt-4.1", usage, at=AT)

    # gpt-4o at 75%: $1.875 and $7.50; gpt-4.1 at 90%: $1.80 and $7.20.
    assert dated.cost_usd == Decimal("0.009375")
    assert other.cost_usd == Decimal("0.009")
    assert dated.price_source is not None
    assert dated.price_source.endswith("25% discount from prices.discounts.models.gpt-4o")


def test_discount_applies_to_batch_rates() -> None:
    # gpt-4o batch: $1.25 input, $5 output; 20% off gives $1 and $4.
    engine = CostEngine(discounts=Discounts(models={"openai/gpt-4o": Decimal("20")}))

    cost = engine.price(
        "openai", "gpt-4o", Usage(input_tokens=1000, output_tokens=1000), batch=True, at=AT
    )

    assert cost.cost_usd == Decimal("0.005")


def test_discount_skips_custom_prices() -> None:
    engine = CostEngine(
        {"vllm/llama": CustomPrice(input_mtok=Decimal("1"), output_mtok=Decimal("2"))},
        discounts=Discounts(providers={"vllm": Decimal("50")}),
    )

    cost = engine.price("vllm", "llama", Usage(input_tokens=1000, output_tokens=1000))

    assert cost.cost_usd == Decimal("0.003")
    assert cost.price_source == CUSTOM_SOURCE


def test_full_discount_is_priced_zero() -> None:
    engine = CostEngine(discounts=Discounts(providers={"openai": Decimal("100")}))

    cost = engine.price("openai", "gpt-4o", Usage(input_tokens=1000), at=AT)

    assert cost.cost_usd == Decimal(0)
    assert cost.priced


def test_custom_1h_write_price() -> None:
    engine = CostEngine(
        {
            "acme": CustomPrice(
                input_mtok=Decimal("2"),
                output_mtok=Decimal("8"),
                cache_write_mtok=Decimal("2.5"),
                cache_write_1h_mtok=Decimal("4"),
            )
        }
    )
    usage = Usage(input_tokens=3000, cache_write_tokens=3000, cache_write_1h_tokens=1000)

    cost = engine.price("acme", "acme", usage)

    assert cost.breakdown == {
        "cache_write_5m": Decimal("0.005"),
        "cache_write_1h": Decimal("0.004"),
    }


def test_custom_price_wins_over_catalog() -> None:
    engine = CostEngine.from_config(
        parse_prices_config({"models": {"openai/gpt-4o": {"input_mtok": 1, "output_mtok": 4}}})
    )

    cost = engine.price("openai", "gpt-4o", Usage(input_tokens=1000, output_tokens=1000))

    assert cost.cost_usd == Decimal("0.005")
    assert cost.model == "gpt-4o"
    assert cost.price_source == CUSTOM_SOURCE


def test_gateway_prices_with_config(tmp_path: Path, sandbox_url: str) -> None:
    # A vLLM-style provider (the sandbox, speaking the OpenAI API) priced
    # from thrifty.yaml, and the catalog's gpt-4o-mini ($0.15 input, $0.60
    # output) with a 40% OpenAI discount.
    prices = parse_prices_config(
        {
            "discounts": {"providers": {"openai": 40}},
            "models": {"vllm/gpt-4o": {"input_mtok": "0.2", "output_mtok": "0.8"}},
        }
    )
    vllm = ProviderConfig("vllm", "openai", sandbox_url)
    messages = [{"role": "user", "content": "Price this with the config."}]
    prompt_tokens = count_chat_messages(messages, "gpt-4o-mini")

    with running_gateway(
        tmp_path, extra_providers={"vllm": vllm}, sections={"prices": prices}
    ) as gateway:
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-test", max_retries=0)
        discounted = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            messages=messages,  # type: ignore[arg-type]
            max_tokens=10,
        )
        custom = client.chat.completions.with_raw_response.create(
            model="vllm/gpt-4o",
            messages=messages,  # type: ignore[arg-type]
            max_tokens=10,
        )
        discounted_record = gateway.record(discounted.headers["x-thrifty-request-id"])
        custom_record = gateway.record(custom.headers["x-thrifty-request-id"])

    assert (
        discounted_record.cost_usd
        == (prompt_tokens * Decimal("0.09") + 10 * Decimal("0.36")) / MILLION
    )
    assert custom_record.provider == "vllm"
    assert (
        custom_record.cost_usd
        == (custom_record.input_tokens * Decimal("0.2") + 10 * Decimal("0.8")) / MILLION
    )
    assert custom_record.unpriced is False
