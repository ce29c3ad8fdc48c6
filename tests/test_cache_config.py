"""The cache: section of thrifty.yaml."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from thrifty.cache.config import DEFAULT_THRESHOLD, CacheConfig, Policy, parse_cache_config
from thrifty.config import load_config
from thrifty.errors import ConfigError


def test_empty_section_gives_defaults() -> None:
    config = parse_cache_config(None)
    assert config == CacheConfig()
    assert config.default == Policy(enabled=True, mode="exact", threshold=DEFAULT_THRESHOLD)
    assert config.namespace == ("key",)
    assert config.prompt_caching is None
    assert config.uses_semantic is False


def test_full_section_is_parsed() -> None:
    config = parse_cache_config(
        {
            "mode": "semantic",
            "ttl_s": 600,
            "namespace": ["team", "feature"],
            "storage": {"redis_url": "redis://127.0.0.1:6379/0", "usd_per_gb_month": 0.1},
            "semantic": {"embedder": "gateway", "threshold": 0.99, "gateway_url": "http://g:4000/"},
            "rules": [{"match": {"feature": "drafts"}, "enabled": False}],
            "prompt_caching": {"features": ["docs"], "openai_cache_key": "session"},
        }
    )
    assert config.default.mode == "semantic"
    assert config.default.ttl_s == 600
    assert config.default.threshold == 0.99
    assert config.namespace == ("team", "feature")
    assert config.storage.usd_per_gb_month == Decimal("0.1")
    assert config.semantic.gateway_url == "http://g:4000"
    assert config.prompt_caching is not None
    assert config.prompt_caching.applies_to("docs") is True
    assert config.prompt_caching.applies_to("chat") is False
    assert config.uses_semantic is True


def test_rules_apply_in_order() -> None:
    config = parse_cache_config(
        {
            "rules": [
                {"match": {"feature": "faq"}, "mode": "semantic", "ttl_s": 60},
                {"match": {"feature": "faq", "team": "ops"}, "enabled": False},
            ]
        }
    )
    faq = config.policy_for({"feature": "faq", "team": "web"})
    ops = config.policy_for({"feature": "faq", "team": "ops"})
    other = config.policy_for({"feature": "chat"})
    assert (faq.mode, faq.ttl_s, faq.enabled) == ("semantic", 60, True)
    assert ops.enabled is False
    assert other == config.default
    assert config.uses_semantic is True


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"mode": "fuzzy"}, "cache.mode is 'fuzzy'; use 'exact' or 'semantic'"),
        ({"ttl_s": 0}, "cache.ttl_s is 0; it must be a whole number above zero"),
        ({"namespace": ["tenant"]}, "cache.namespace contains 'tenant'"),
        ({"semantic": {"threshold": 1.5}}, "cache.semantic.threshold is 1.5"),
        ({"semantic": {"embedder": "bert"}}, "cache.semantic.embedder is 'bert'"),
        ({"storage": {"redis_url": "localhost"}}, "cache.storage.redis_url is 'localhost'"),
        ({"storage": {"usd_per_gb_month": -1}}, "cache.storage.usd_per_gb_month is -1"),
        ({"rules": [{"match": {}}]}, "cache.rules[0].match is empty"),
        ({"rules": [{"match": {"colour": "red"}}]}, "unknown key cache.rules[0].match.colour"),
        ({"rules": [{"match": {"feature": "x"}, "ttl": 5}]}, "unknown key cache.rules[0].ttl"),
        ({"prompt_caching": {"openai_cache_key": "user"}}, "openai_cache_key is 'user'"),
        ({"ttl": 5}, "unknown key cache.ttl"),
    ],
)
def test_invalid_values_name_the_key(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_cache_config(raw)
    assert message in str(raised.value)


def test_section_loads_from_thrifty_yaml(tmp_path: Path) -> None:
    path = tmp_path / "thrifty.yaml"
    path.write_text("cache:\n  mode: semantic\n  semantic:\n    embedder: gateway\n")
    config = load_config(path)
    section = config.sections["cache"]
    assert isinstance(section, CacheConfig)
    assert section.default.mode == "semantic"
    assert section.semantic.embedder == "gateway"
