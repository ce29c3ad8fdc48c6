"""Routing decisions: rules, learned, cascade, budget downgrade, fallbacks, and their config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from thrifty.config import load_config
from thrifty.errors import ConfigError
from thrifty.gateway.attribution import Attribution
from thrifty.routing.config import RoutingConfig, parse_routing_config
from thrifty.routing.learned import TrainingOptions, train_router
from thrifty.routing.outcomes import Outcome, OutcomeSet
from thrifty.routing.router import should_fall_back

CHEAP, MIDDLE, STRONG = "gpt-4o-mini", "gpt-4.1", "gpt-4o"


def chat(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "thrifty/support", "messages": [{"role": "user", "content": text}], **extra}


def rules_config(**route: Any) -> RoutingConfig:
    base: dict[str, Any] = {
        "models": [CHEAP, STRONG],
        "policy": "rules",
        "rules": [
            {
                "when": {"feature": ["search", "autocomplete"], "max_input_tokens": 50},
                "model": CHEAP,
            },
            {"when": {"tools": True}, "model": STRONG},
            {"when": {"images": True}, "model": STRONG},
            {"when": {"json_response": True, "team": "data"}, "model": CHEAP},
            {"when": {"tags": {"tier": "free"}}, "model": CHEAP},
            {"when": {"key": "key_batch", "min_input_tokens": 20}, "model": CHEAP},
        ],
        "otherwise": STRONG,
    }
    base.update(route)
    return parse_routing_config({"routes": {"support": base}})


def test_rules_first_match_wins() -> None:
    router = rules_config().routes["support"]
    decision = router.decide(chat("find shoes"), Attribution(feature="search"))
    assert decision.model == CHEAP
    assert decision.policy == "rules"
    assert decision.reason == (
        "rule 1 matched: feature in ['autocomplete', 'search'] and input_tokens <= 50"
    )
    assert decision.route == "support"
    assert decision.score is None


def test_rules_input_length_bound() -> None:
    router = rules_config().routes["support"]
    long_prompt = "word " * 200
    decision = router.decide(chat(long_prompt), Attribution(feature="search"))
    assert decision.model == STRONG
    assert decision.reason == "no rule matched"


def test_rules_tools_images_json() -> None:
    router = rules_config().routes["support"]
    tools = chat("hi", tools=[{"type": "function", "function": {"name": "f"}}])
    assert router.decide(tools).reason.startswith("rule 2 matched")
    image = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}},
                ],
            }
        ]
    }
    assert router.decide(image).reason.startswith("rule 3 matched")
    wants_json = chat("list", response_format={"type": "json_object"})
    assert router.decide(wants_json, Attribution(team="data")).model == CHEAP
    assert router.decide(wants_json, Attribution(team="web")).model == STRONG


def test_rules_tags_and_key() -> None:
    router = rules_config().routes["support"]
    free = router.decide(chat("hello"), Attribution(tags={"tier": "free"}))
    assert free.reason == "rule 5 matched: tag tier=free"
    short = router.decide(chat("short"), key_id="key_batch")
    assert short.model == STRONG
    long = router.decide(chat("a much longer prompt " * 10), key_id="key_batch")
    assert long.model == CHEAP
    assert long.reason == "rule 6 matched: key in ['key_batch'] and input_tokens >= 20"


def test_anthropic_body_shapes() -> None:
    router = rules_config().routes["support"]
    body = {
        "system": "You are terse.",
        "messages": [
            {
                "role": "user",
                "content": [{"type": "image", "source": {"type": "base64", "data": "AA"}}],
            }
        ],
    }
    assert router.decide(body).reason.startswith("rule 3 matched")


def test_budget_downgrade_before_policy() -> None:
    router = rules_config(budget_downgrade={"above": 0.8, "model": CHEAP}).routes["support"]
    decision = router.decide(chat("hello"), budget_used=0.85)
    assert decision.model == CHEAP
    assert decision.policy == "budget"
    assert decision.reason == "85% of the budget is spent, at or above 80%"
    assert router.decide(chat("hello"), budget_used=0.5).policy == "rules"


def test_default_fallbacks_nearest_first() -> None:
    config = parse_routing_config(
        {"routes": {"r": {"models": [CHEAP, MIDDLE, STRONG], "policy": "cascade"}}}
    )
    router = config.routes["r"]
    assert router.fallbacks_for(CHEAP) == (MIDDLE, STRONG)
    assert router.fallbacks_for(MIDDLE) == (STRONG, CHEAP)
    assert router.fallbacks_for(STRONG) == (MIDDLE, CHEAP)


def test_configured_fallbacks_skip_failed_model() -> None:
    router = rules_config(fallbacks=["anthropic/claude-haiku-4-5", CHEAP]).routes["support"]
    decision = router.decide(chat("hello"), Attribution(feature="search"))
    assert decision.model == CHEAP
    assert decision.fallbacks == ("anthropic/claude-haiku-4-5",)


def test_should_fall_back_statuses() -> None:
    assert should_fall_back(429)
    assert should_fall_back(529)
    assert should_fall_back(503)
    assert should_fall_back(None)
    assert should_fall_back(200, timed_out=True)
    assert not should_fall_back(400)
    assert not should_fall_back(401)


def test_cascade_decision_and_checks() -> None:
    config = parse_routing_config(
        {
            "routes": {
                "extract": {
                    "models": [CHEAP, MIDDLE, STRONG],
                    "policy": "cascade",
                    "checks": ["empty", "json", "schema"],
                    "schema": {"type": "object", "required": ["name"]},
                }
            }
        }
    )
    router = config.routes["extract"]
    body = chat("extract", response_format={"type": "json_object"})
    decision = router.decide(body)
    assert decision.model == CHEAP
    assert decision.policy == "cascade"
    assert decision.escalation == (MIDDLE, STRONG)

    def reply(text: str) -> dict[str, Any]:
        return {"choices": [{"message": {"content": text}, "finish_reason": "stop"}]}

    assert router.check_answer(body, reply('{"name": "Ada"}')) is None
    empty = router.check_answer(body, reply(""))
    assert empty is not None
    assert empty.check == "empty"
    not_json = router.check_answer(body, reply("Ada"))
    assert not_json is not None
    assert not_json.check == "json"
    wrong = router.check_answer(body, reply('{"age": 3}'))
    assert wrong is not None
    assert wrong.check == "schema"
    assert wrong.reason == (
        "the answer violates the JSON schema at the top level: 'name' is a required property"
    )


def learned_router_file(tmp_path: Path) -> Path:
    outcomes = []
    for i in range(80):
        hard = i % 2 == 0
        prompt = f"Prove theorem {i} rigorously" if hard else f"Say hello {i}"
        outcomes.append(Outcome(prompt, f"g{i % 4}", {"big": 1.0, "small": 0.0 if hard else 1.0}))
    paired = OutcomeSet(tuple(outcomes), ("big", "small"), ("toy",)).pair("big", "small")
    router = train_router(paired, TrainingOptions(folds=4, dimension=1 << 12))
    path = tmp_path / "router.json"
    router.save(path)
    return path


def test_learned_policy_threshold(tmp_path: Path) -> None:
    path = learned_router_file(tmp_path)
    config = parse_routing_config(
        {
            "routes": {
                "qa": {
                    "models": [CHEAP, STRONG],
                    "policy": "learned",
                    "router_file": str(path),
                    "threshold": 0.5,
                }
            }
        }
    )
    router = config.routes["qa"]
    hard = router.decide(chat("Prove theorem 1000 rigorously"))
    assert hard.model == STRONG
    assert hard.policy == "learned"
    assert hard.score is not None
    assert hard.score < 0.5
    assert hard.threshold == 0.5
    easy = router.decide(chat("Say hello 1000"))
    assert easy.model == CHEAP
    assert easy.score is not None
    assert easy.score >= 0.5
    assert easy.to_details()["policy"] == "learned"
    assert easy.to_details()["fallbacks"] == [STRONG]


def test_learned_policy_target_quality(tmp_path: Path) -> None:
    path = learned_router_file(tmp_path)
    config = parse_routing_config(
        {
            "routes": {
                "qa": {
                    "models": [CHEAP, STRONG],
                    "policy": "learned",
                    "router_file": str(path),
                    "target_quality": 0.9,
                }
            }
        }
    )
    decision = config.routes["qa"].decide(chat("Prove theorem 5 rigorously"))
    assert decision.reason.endswith("(target_quality 0.9 in cross-validation)")


def test_route_names_and_auto() -> None:
    config = parse_routing_config(
        {
            "default": "support",
            "routes": {
                "support": {"models": [CHEAP, STRONG]},
                "other": {"models": [CHEAP]},
            },
        }
    )
    assert config.router_for("thrifty/support") is config.routes["support"]
    assert config.router_for("thrifty/auto") is config.routes["support"]
    assert config.router_for("thrifty/other") is config.routes["other"]
    assert config.router_for("gpt-4o") is None
    assert config.router_for("thrifty/missing") is None


@pytest.mark.parametrize(
    ("route", "message"),
    [
        ({"models": []}, "routing.routes.r.models is []"),
        ({"models": [CHEAP], "policy": "magic"}, "routing.routes.r.policy is 'magic'"),
        ({"models": [CHEAP], "colour": 1}, "unknown key routing.routes.r.colour"),
        (
            {"models": [CHEAP], "rules": [{"when": {}, "model": "gpt-9"}]},
            "routing.routes.r.rules[0].model is 'gpt-9', which is not in the route's models",
        ),
        (
            {"models": [CHEAP], "rules": [{"when": {"tools": "yes"}, "model": CHEAP}]},
            "routing.routes.r.rules[0].when.tools is 'yes'; use true or false",
        ),
        (
            {"models": [CHEAP], "rules": [{"when": {"max_input_tokens": -5}, "model": CHEAP}]},
            "routing.routes.r.rules[0].when.max_input_tokens is -5",
        ),
        (
            {"models": [CHEAP], "policy": "cascade", "rules": []},
            "routing.routes.r.rules belongs to policy 'rules', not 'cascade'",
        ),
        (
            {"models": [CHEAP], "policy": "cascade", "checks": ["vibes"]},
            "routing.routes.r.checks is ['vibes']",
        ),
        (
            {"models": [CHEAP], "policy": "learned"},
            "routing.routes.r.router_file is None",
        ),
        (
            {"models": [CHEAP], "budget_downgrade": {"above": 2, "model": CHEAP}},
            "routing.routes.r.budget_downgrade.above is 2; give a fraction from 0 to 1",
        ),
        (
            {"models": ["thrifty/other"]},
            "routing.routes.r.models names a route",
        ),
    ],
)
def test_config_errors_name_key(route: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_routing_config({"routes": {"r": route}})
    assert message in str(caught.value)


def test_config_missing_router_file(tmp_path: Path) -> None:
    route = {"models": [CHEAP], "policy": "learned", "router_file": str(tmp_path / "no.json")}
    with pytest.raises(ConfigError, match=r"routing.routes.r.router_file: cannot read router file"):
        parse_routing_config({"routes": {"r": route}})


def test_config_unknown_default() -> None:
    with pytest.raises(ConfigError, match=r"routing\.default is 'nope'"):
        parse_routing_config({"default": "nope", "routes": {"r": {"models": [CHEAP]}}})


def test_thrifty_yaml_routing_section(tmp_path: Path) -> None:
    path = tmp_path / "thrifty.yaml"
    path.write_text(
        "routing:\n"
        "  routes:\n"
        "    auto:\n"
        f"      models: [{CHEAP}, {STRONG}]\n"
        "      rules:\n"
        "        - when: {feature: search}\n"
        f"          model: {CHEAP}\n",
        encoding="utf-8",
    )
    config = load_config(path)
    routing = config.sections["routing"]
    assert isinstance(routing, RoutingConfig)
    router = routing.router_for("thrifty/auto")
    assert router is not None
    assert router.decide(chat("x"), Attribution(feature="search")).model == CHEAP
    assert router.decide(chat("x")).model == STRONG
