"""The prompts: section of thrifty.yaml: defaults, per-feature and per-route settings, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from thrifty.config import load_config
from thrifty.errors import ConfigError
from thrifty.prompts.config import PromptsConfig, parse_prompts_config
from thrifty.prompts.llmlingua import llmlingua_installed
from thrifty.prompts.settings import LOSSLESS_TRANSFORMS

RAW = {
    "transforms": ["lossless"],
    "trim": {"keep_recent_turns": 3},
    "protect": {"patterns": ["(?s)<keep>.*?</keep>"]},
    "features": {
        "support": {"transforms": ["lossless", "trim"], "trim": {"max_input_tokens": 8000}},
        "research": {"transforms": ["compress"], "compress": {"ratio": 0.3}},
    },
    "routes": {
        "/v1/messages": {"transforms": ["whitespace"]},
        "gpt-4o-mini*": {
            "transforms": ["dedupe", "layout"],
            "layout": {"target": "before_last_user"},
        },
    },
}


def test_defaults_apply_without_section_values() -> None:
    config = parse_prompts_config(None)
    assert config == PromptsConfig(default=config.default)
    assert config.default.transforms == LOSSLESS_TRANSFORMS
    assert config.enabled is True


def test_feature_overrides_merge_one_level() -> None:
    config = parse_prompts_config(RAW)
    support = config.settings_for("support", "/v1/chat/completions", "gpt-4o")
    assert support.name == "feature:support"
    assert support.transforms == (*LOSSLESS_TRANSFORMS, "trim")
    assert support.trim.max_input_tokens == 8000
    assert support.trim.keep_recent_turns == 3
    assert [p.pattern for p in support.protect.patterns] == ["(?s)<keep>.*?</keep>"]
    research = config.settings_for("research", "/v1/chat/completions", "gpt-4o")
    assert research.compress.ratio == 0.3


def test_routes_match_path_then_model() -> None:
    config = parse_prompts_config(RAW)
    assert config.settings_for(None, "/v1/messages", "claude").name == "route:/v1/messages"
    mini = config.settings_for("other", "/v1/chat/completions", "gpt-4o-mini-2024-07-18")
    assert mini.name == "route:gpt-4o-mini*"
    assert mini.layout.target == "before_last_user"
    assert config.settings_for(None, "/v1/chat/completions", "gpt-4o").name == "default"
    assert config.settings_for("support", "/v1/messages", "x").name == "feature:support"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"transforms": ["shrink"]}, "prompts.transforms names unknown transform 'shrink'"),
        ({"transforms": "lossless"}, "prompts.transforms is 'lossless'"),
        ({"transforms": ["trim"]}, "prompts.trim.max_input_tokens is not set"),
        ({"trim": {"max_input_tokens": -5}}, "prompts.trim.max_input_tokens is -5"),
        ({"compress": {"ratio": 1.5}}, "prompts.compress.ratio is 1.5"),
        ({"compress": {"method": "magic"}}, "prompts.compress.method is 'magic'"),
        ({"compress": {"roles": ["robot"]}}, "prompts.compress.roles is ['robot']"),
        ({"protect": {"final_user": "all"}}, "prompts.protect.final_user is 'all'"),
        ({"protect": {"patterns": ["("]}}, "prompts.protect.patterns[0] '(' is not a valid"),
        ({"layout": {"target": "top"}}, "prompts.layout.target is 'top'"),
        ({"layout": {"builtin": "yes"}}, "prompts.layout.builtin is 'yes'"),
        ({"speed": 1}, "unknown key prompts.speed"),
        ({"features": {"chat": {"enabled": True}}}, "unknown key prompts.features.chat.enabled"),
        (
            {"features": {"chat": {"trim": {"max_input_tokens": 0}}}},
            "prompts.features.chat.trim.max_input_tokens is 0",
        ),
        ({"enabled": "no"}, "prompts.enabled is 'no'"),
        ([], "prompts must be a mapping"),
    ],
)
def test_invalid_values_name_the_key(raw: object, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_prompts_config(raw)
    assert message in str(caught.value)


def test_llmlingua_method_needs_package() -> None:
    if llmlingua_installed():
        pytest.skip("llmlingua is installed here")
    with pytest.raises(ConfigError, match="pip install llmlingua"):
        parse_prompts_config({"compress": {"method": "llmlingua2"}})


def test_section_loads_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "thrifty.yaml"
    path.write_text(
        "prompts:\n  transforms: [lossless, layout]\n"
        "  features:\n    chat:\n      enabled_transforms: 1\n"
    )
    with pytest.raises(
        ConfigError, match=r"unknown key prompts\.features\.chat\.enabled_transforms"
    ):
        load_config(path)
    path.write_text("prompts:\n  transforms: [lossless, layout]\n")
    section = load_config(path).sections["prompts"]
    assert isinstance(section, PromptsConfig)
    assert section.default.transforms == (*LOSSLESS_TRANSFORMS, "layout")
