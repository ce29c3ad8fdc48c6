"""Routing through the gateway: a `thrifty/<route>` model is served by the model its rules pick."""

from __future__ import annotations

from pathlib import Path

import openai

from tests.gateway_support import running_gateway
from thrifty.ledger import ReportQuery
from thrifty.routing import parse_routing_config

ROUTING = {
    "default": "support",
    "routes": {
        "support": {
            "models": ["gpt-4o-mini", "gpt-4o"],
            "policy": "rules",
            "rules": [{"when": {"feature": ["search"]}, "model": "gpt-4o-mini"}],
            "otherwise": "gpt-4o",
        }
    },
}


def test_rules_route_by_feature_and_are_recorded(tmp_path: Path) -> None:
    sections = {"routing": parse_routing_config(ROUTING)}
    with running_gateway(tmp_path, sections=sections) as gateway:
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk", max_retries=0)
        messages = [{"role": "user", "content": "Find the refund policy."}]
        search = client.chat.completions.with_raw_response.create(
            model="thrifty/support",
            messages=messages,  # type: ignore[arg-type]
            max_tokens=4,
            extra_headers={"X-Thrifty-Feature": "search"},
        )
        other = client.chat.completions.with_raw_response.create(
            model="thrifty/auto",
            messages=messages,
            max_tokens=4,  # type: ignore[arg-type]
        )
        unknown_route = None
        try:
            client.chat.completions.create(
                model="thrifty/nowhere",
                messages=messages,
                max_tokens=4,  # type: ignore[arg-type]
            )
        except openai.NotFoundError as exc:
            unknown_route = exc
        search_record = gateway.record(search.headers["x-thrifty-request-id"])
        other_record = gateway.record(other.headers["x-thrifty-request-id"])
        ledger = gateway.ledger()
        report = ledger.report(ReportQuery(by=["route"]))
        ledger.close()

    assert search.headers["x-thrifty-model"].startswith("gpt-4o-mini")
    assert other.headers["x-thrifty-model"].startswith("gpt-4o")
    assert not other.headers["x-thrifty-model"].startswith("gpt-4o-mini")
    assert search_record.model_requested == "thrifty/support"
    assert search_record.details["routing"]["route"] == "support"
    assert search_record.details["routing"]["policy"] == "rules"
    assert other_record.details["routing"]["model"] == "gpt-4o"
    assert unknown_route is not None
    assert "thrifty/nowhere" in str(unknown_route)
    assert [group.values["route"] for group in report.groups] == ["support"]
    assert report.groups[0].totals.requests == 2
