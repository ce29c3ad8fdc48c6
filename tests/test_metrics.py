"""Prometheus metrics: /metrics on a running gateway, parsed by prometheus_client's parser."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.control_support import PROVIDER_KEY_ENV
from tests.gateway_support import running_gateway
from tests.ledger_support import make_record, unpriced
from thrifty.config import ProviderConfig, load_config
from thrifty.errors import ConfigError
from thrifty.integrations.config import TelemetryConfig, parse_telemetry_config
from thrifty.integrations.metrics import OTHER, GaugeSample, LabelLimiter, MetricsStep
from thrifty.tokens import count_chat_messages

MILLION = Decimal(1_000_000)
MESSAGES = [{"role": "user", "content": "Count the starfish."}]


def samples(text: str) -> list[Sample]:
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def value(found: Iterable[Sample], name: str, **labels: str) -> float:
    """Return the one sample of ``name`` whose labels include ``labels``."""
    matches = [
        sample
        for sample in found
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(matches) == 1, f"{len(matches)} samples of {name} match {labels}"
    return matches[0].value


def test_gateway_serves_parsed_metrics(tmp_path: Path) -> None:
    with running_gateway(tmp_path) as gateway:
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-test", max_retries=0)
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            max_tokens=10,
            extra_headers={"X-Thrifty-Feature": "census", "X-Thrifty-Team": "reef"},
        )
        list(
            client.chat.completions.create(
                model="gpt-4o-mini",
                messages=MESSAGES,
                max_tokens=4,
                stream=True,
                extra_headers={"X-Thrifty-Feature": "census", "X-Thrifty-Team": "reef"},
            )
        )
        response = httpx.get(f"{gateway.url}/metrics", timeout=10)

    found = samples(response.text)
    spend = {"provider": "openai", "model": "gpt-4o-mini", "feature": "census", "team": "reef"}
    prompt = count_chat_messages(MESSAGES, "gpt-4o-mini")
    expected_cost = (2 * prompt * Decimal("0.15") + 14 * Decimal("0.6")) / MILLION
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert value(found, "thrifty_requests_total", outcome="ok", **spend) == 2.0
    assert value(found, "thrifty_tokens_total", token_type="input", **spend) == 2 * prompt
    assert value(found, "thrifty_tokens_total", token_type="output", **spend) == 14.0
    assert value(found, "thrifty_cost_usd_total", **spend) == pytest.approx(float(expected_cost))
    assert value(found, "thrifty_request_duration_seconds_count", model="gpt-4o-mini") == 2.0
    assert value(found, "thrifty_time_to_first_token_seconds_count", model="gpt-4o-mini") == 1.0
    assert value(found, "thrifty_overhead_seconds_count", provider="openai") == 2.0
    assert not any("user" in sample.labels or "session" in sample.labels for sample in found)


def test_metrics_disabled_answers_404(tmp_path: Path) -> None:
    config = TelemetryConfig(metrics_enabled=False)
    with running_gateway(tmp_path, sections={"telemetry": config}) as gateway:
        response = httpx.get(f"{gateway.url}/metrics", timeout=10)

    assert response.status_code == 404
    assert "telemetry.metrics.enabled" in response.text


def keyed_providers(sandbox_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, ProviderConfig]:
    """Set a master key, and the provider keys a gateway with virtual keys needs."""
    monkeypatch.setenv("THRIFTY_MASTER_KEY", "mk-metrics-test")
    monkeypatch.setenv(PROVIDER_KEY_ENV, "sk-sandbox")
    return {
        name: ProviderConfig(name, name, sandbox_url, PROVIDER_KEY_ENV)
        for name in ("openai", "anthropic")
    }


def test_metrics_need_master_key_when_set(
    tmp_path: Path, sandbox_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    providers = keyed_providers(sandbox_url, monkeypatch)
    with running_gateway(tmp_path, extra_providers=providers) as gateway:
        url = f"{gateway.url}/metrics"
        anonymous = httpx.get(url, timeout=10)
        wrong = httpx.get(url, headers={"authorization": "Bearer mk-wrong"}, timeout=10)
        right = httpx.get(url, headers={"authorization": "Bearer mk-metrics-test"}, timeout=10)

    assert anonymous.status_code == 401
    assert "telemetry.metrics.auth" in anonymous.text
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert wrong.status_code == 401
    assert right.status_code == 200
    assert "# HELP thrifty_requests_total" in right.text


def test_metrics_auth_none_stays_open(
    tmp_path: Path, sandbox_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    providers = keyed_providers(sandbox_url, monkeypatch)
    config = TelemetryConfig(metrics_auth="none")
    with running_gateway(
        tmp_path, extra_providers=providers, sections={"telemetry": config}
    ) as gateway:
        response = httpx.get(f"{gateway.url}/metrics", timeout=10)

    assert response.status_code == 200


def test_label_values_bounded() -> None:
    step = MetricsStep(max_label_values=2)
    for index, feature in enumerate(["a", "b", "c", "d", "a"]):
        step.observe(make_record(f"r{index}", feature=feature))

    found = samples(step.render().decode())
    assert value(found, "thrifty_requests_total", feature="a") == 2.0
    assert value(found, "thrifty_requests_total", feature="b") == 1.0
    assert value(found, "thrifty_requests_total", feature=OTHER) == 2.0


def test_limiter_keeps_empty_and_known_values() -> None:
    limiter = LabelLimiter(1)

    assert limiter(None) == ""
    assert limiter("first") == "first"
    assert limiter("second") == OTHER
    assert limiter("first") == "first"


def test_errors_unpriced_and_cache_counted() -> None:
    step = MetricsStep()
    step.observe(make_record("ok", cache_status="hit", cost_usd=Decimal(0), cost_breakdown={}))
    step.observe(make_record("failed", http_status=500, error_type="server_error"))
    step.observe(unpriced("free", model_served="mystery-model"))

    found = samples(step.render().decode())
    assert value(found, "thrifty_requests_total", outcome="error") == 1.0
    assert value(found, "thrifty_unpriced_requests_total", model="mystery-model") == 1.0
    assert value(found, "thrifty_cache_requests_total", status="hit") == 1.0


def test_streamed_first_token_observed() -> None:
    step = MetricsStep()
    record = make_record("s", streamed=True)
    record = replace(
        record,
        first_token_at=record.started_at + timedelta(seconds=0.3),
        ended_at=record.started_at + timedelta(seconds=2),
    )
    step.observe(record)

    found = samples(step.render().decode())
    assert value(found, "thrifty_time_to_first_token_seconds_bucket", le="0.5") == 1.0
    assert value(found, "thrifty_time_to_first_token_seconds_bucket", le="0.25") == 0.0
    assert value(found, "thrifty_request_duration_seconds_sum") == pytest.approx(2.0)


class BudgetGauges:
    """A step that reports gauges, as a budget step would."""

    name = "budgets"

    def gauges(self) -> list[GaugeSample]:
        return [
            GaugeSample("thrifty_budget_spend_usd", "Spend so far.", 12.5, {"budget": "reef"}),
            GaugeSample("thrifty_budget_spend_usd", "Spend so far.", 3.0, {"budget": "kelp"}),
        ]


def test_gauges_of_watched_steps_exported() -> None:
    step = MetricsStep()
    step.watch([BudgetGauges(), object()])

    found = samples(step.render().decode())
    assert value(found, "thrifty_budget_spend_usd", budget="reef") == 12.5
    assert value(found, "thrifty_budget_spend_usd", budget="kelp") == 3.0


def test_telemetry_section_loaded_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "thrifty.yaml"
    path.write_text(
        "telemetry:\n"
        "  metrics: {max_label_values: 7}\n"
        "  traces:\n"
        "    endpoint: http://127.0.0.1:4318/v1/traces\n"
        "    service_name: edge\n",
        encoding="utf-8",
    )
    assert parse_telemetry_config({"metrics": {"auth": "none"}}).metrics_auth == "none"
    assert parse_telemetry_config({}).metrics_auth == "master"

    config = load_config(path).sections["telemetry"]

    assert isinstance(config, TelemetryConfig)
    assert config.metrics_enabled is True
    assert config.max_label_values == 7
    assert config.traces is not None
    assert config.traces.endpoint == "http://127.0.0.1:4318/v1/traces"
    assert config.traces.service_name == "edge"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"metrics": {"enabled": "yes"}}, "telemetry.metrics.enabled"),
        ({"metrics": {"max_label_values": 0}}, "telemetry.metrics.max_label_values"),
        ({"metrics": {"auth": "token"}}, "telemetry.metrics.auth"),
        ({"traces": {"endpoint": "collector:4318"}}, "telemetry.traces.endpoint"),
        ({"traces": {"timeout_s": -1}}, "telemetry.traces.timeout_s"),
        ({"logs": {}}, "unknown key telemetry.logs"),
        ([], "telemetry must be a mapping"),
    ],
)
def test_invalid_telemetry_config_rejected(raw: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_telemetry_config(raw)
