"""`thrifty prices list|show|missing` and `thrifty reprice`: tables, JSON, and errors."""

from __future__ import annotations

import io
import json
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from tests.ledger_support import make_record, unpriced
from thrifty.cli import prices
from thrifty.cli.main import main
from thrifty.ledger import open_ledger

PEAK = "2026-11-16T10:00:00Z"
CONFIG = """\
prices:
  discounts:
    providers:
      openai: 10
  models:
    vllm/acme-large:
      input_mtok: 1
      output_mtok: 4
"""


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()
    prices.register(app)
    return app


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "thrifty.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = open_ledger(url)
    try:
        ledger.write(
            [
                unpriced(
                    f"acme-{n}",
                    started_at=datetime(2026, 11, 10, n, tzinfo=UTC),
                    provider="vllm",
                    model_requested="acme-large",
                    model_served="acme-large",
                    input_tokens=1000,
                    output_tokens=200,
                )
                for n in range(3)
            ]
            + [
                unpriced(
                    "mystery-1",
                    started_at=datetime(2026, 11, 11, tzinfo=UTC),
                    model_served="mystery",
                ),
                make_record("mini-1", started_at=datetime(2026, 11, 11, tzinfo=UTC)),
            ]
        )
    finally:
        ledger.close()
    return url


def invoke(app: typer.Typer, *args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def invoke_json(app: typer.Typer, *args: str) -> dict[str, Any]:
    output: dict[str, Any] = json.loads(invoke(app, *args, "--json"))
    return output


def test_list_provider_json(app: typer.Typer) -> None:
    output = invoke_json(app, "prices", "list", "--provider", "deepseek", "--at", PEAK)

    chat = next(model for model in output["models"] if model["model"] == "deepseek-chat")
    assert chat == {
        "provider": "deepseek",
        "model": "deepseek-chat",
        "name": "DeepSeek Chat",
        "context_window": 64000,
        "input_mtok": "0.27",
        "cache_read_mtok": "0.07",
        "output_mtok": "1.1",
        "tiered": False,
        "variants": [],
        "since": None,
        "source": "genai-prices 0.2.3",
    }
    assert {model["provider"] for model in output["models"]} == {"deepseek"}


def test_list_off_peak_prices(app: typer.Typer) -> None:
    output = invoke_json(
        app, "prices", "list", "--provider", "deepseek", "--at", "2026-11-16T18:00:00Z"
    )

    chat = next(model for model in output["models"] if model["model"] == "deepseek-chat")
    assert chat["input_mtok"] == "0.135"


def test_list_marks_tiers_and_variants(app: typer.Typer) -> None:
    output = invoke_json(app, "prices", "list", "--provider", "openai", "--at", PEAK)

    gpt5 = next(model for model in output["models"] if model["model"] == "gpt-5")
    assert gpt5["variants"] == [
        "batch",
        "flex",
        "priority",
        "service_tier=default",
        "service_tier=fast",
    ]
    assert gpt5["input_mtok"] == "1.25"


def test_list_includes_custom_models(app: typer.Typer, config_file: Path) -> None:
    output = invoke_json(app, "prices", "list", "--provider", "vllm", "--config", str(config_file))

    assert output["models"] == [
        {
            "provider": "vllm",
            "model": "acme-large",
            "name": None,
            "context_window": None,
            "input_mtok": "1",
            "cache_read_mtok": None,
            "output_mtok": "4",
            "tiered": False,
            "variants": [],
            "since": None,
            "source": "thrifty.yaml",
        }
    ]


def test_list_table(app: typer.Typer) -> None:
    output = invoke(app, "prices", "list", "--provider", "anthropic")

    assert "Prices of anthropic" in output
    assert "claude-sonnet-4-5" in output
    assert "USD per million tokens" in output


def test_show_every_block_with_dates(app: typer.Typer) -> None:
    output = invoke_json(app, "prices", "show", "gpt-5", "--provider", "openai", "--at", PEAK)

    blocks = {block["applies_to"]: block for block in output["blocks"] if block["rates"]}
    assert output["model"] == "gpt-5"
    assert output["provider_name"] == "OpenAI"
    assert [rate["key"] for rate in blocks["standard"]["rates"]] == [
        "input_mtok",
        "cache_read_mtok",
        "output_mtok",
        "web_searches_kcount",
        "storage_searches_kcount",
    ]
    assert blocks["batch"]["starts"] == "2026-10-14"
    assert blocks["flex"]["starts"] == "2026-10-12"
    assert blocks["priority"]["rates"][0] == {
        "key": "input_mtok",
        "label": "input",
        "unit": "per 1M tokens",
        "usd": "2.5",
        "tiers": [],
    }
    rule_notes = [block["note"] for block in output["blocks"] if block["note"]]
    assert rule_notes == [
        "50% of the standard rates until 2026-10-14 (the openai rule)",
        "50% of the standard rates until 2026-10-12 (the openai rule)",
    ]


def test_show_price_history_and_tiers(app: typer.Typer) -> None:
    o3 = invoke_json(app, "prices", "show", "o3", "--provider", "openai", "--at", "2025-06-01")
    sonnet = invoke_json(app, "prices", "show", "claude-sonnet-4-5", "--at", PEAK)

    standard = [block for block in o3["blocks"] if block["applies_to"] == "standard"]
    assert [(block["starts"], block["in_force"]) for block in standard] == [
        (None, True),
        ("2025-06-10", False),
    ]
    assert [rate["usd"] for rate in standard[1]["rates"][:1]] == ["2"]
    first = sonnet["blocks"][0]["rates"][0]
    assert first["key"] == "input_mtok"
    assert first["tiers"] == [{"above_input_tokens": 200000, "usd": "6"}]


def test_show_daily_window(app: typer.Typer) -> None:
    output = invoke_json(app, "prices", "show", "deepseek-chat", "--at", PEAK)

    dailies = [(block["daily"], block["in_force"]) for block in output["blocks"]]
    assert dailies == [(None, False), ("00:30-16:30 UTC", True)]


def test_show_custom_and_discount(app: typer.Typer, config_file: Path) -> None:
    custom = invoke_json(
        app, "prices", "show", "acme-large", "--provider", "vllm", "--config", str(config_file)
    )
    discounted = invoke_json(app, "prices", "show", "gpt-4o", "--config", str(config_file))

    assert custom["source"] == "thrifty.yaml"
    assert custom["blocks"][0]["rates"] == [
        {"key": "input_mtok", "label": "input", "unit": "per 1M tokens", "usd": "1", "tiers": []},
        {"key": "output_mtok", "label": "output", "unit": "per 1M tokens", "usd": "4", "tiers": []},
    ]
    assert discounted["discount"] == {"percent": "10", "key": "prices.discounts.providers.openai"}


def test_show_table(app: typer.Typer) -> None:
    output = invoke(app, "prices", "show", "gpt-4.1", "--at", PEAK)

    assert "gpt-4.1 (OpenAI)" in output
    assert "2026-10-14" in output
    assert "50% of the standard rates until 2026-10-14, then the batch rates" in output


def test_missing_json_and_table(app: typer.Typer, db_url: str) -> None:
    output = invoke_json(app, "prices", "missing", "--db", db_url)
    table = invoke(app, "prices", "missing", "--db", db_url)

    assert output["models"] == [
        {
            "provider": "vllm",
            "model": "acme-large",
            "requests": 3,
            "input_tokens": 3000,
            "output_tokens": 600,
            "first_seen": "2026-11-10T00:00:00+00:00",
            "last_seen": "2026-11-10T02:00:00+00:00",
        },
        {
            "provider": "openai",
            "model": "mystery",
            "requests": 1,
            "input_tokens": 1200,
            "output_tokens": 300,
            "first_seen": "2026-11-11T00:00:00+00:00",
            "last_seen": "2026-11-11T00:00:00+00:00",
        },
    ]
    assert "Unpriced models" in table
    assert "acme-large" in table


def test_reprice_then_missing(app: typer.Typer, db_url: str, config_file: Path) -> None:
    dry = invoke_json(
        app,
        "reprice",
        "--since",
        "2026-11-01",
        "--db",
        db_url,
        "--config",
        str(config_file),
        "--dry-run",
    )
    done = invoke_json(
        app, "reprice", "--since", "2026-11-01", "--db", db_url, "--config", str(config_file)
    )
    after = invoke_json(app, "prices", "missing", "--db", db_url)

    assert dry["dry_run"] is True
    assert dry["changed"] == 4
    # acme-large: 1,000 x $1 + 200 x $4 per million, three times; gpt-4o-mini
    # at 10% off its list $0.15 and $0.60 is a changed figure too.
    assert done == {
        "since": "2026-11-01T00:00:00+00:00",
        "until": None,
        "dry_run": False,
        "examined": 5,
        "changed": 4,
        "newly_priced": 3,
        "unchanged": 0,
        "still_unpriced": 1,
        "skipped": 0,
        "skip_reasons": {},
        "cost_before_usd": "0.00036",
        "cost_after_usd": "0.005724",
    }
    assert [model["model"] for model in after["models"]] == ["mystery"]
    ledger = open_ledger(db_url)
    try:
        record = ledger.get("acme-0")
    finally:
        ledger.close()
    assert record is not None
    assert record.cost_usd == Decimal("0.0018")


def test_reprice_text_summary(app: typer.Typer, db_url: str, config_file: Path) -> None:
    output = invoke(
        app,
        "reprice",
        "--since",
        "2026-11-01",
        "--db",
        db_url,
        "--config",
        str(config_file),
        "--dry-run",
    )

    assert output.splitlines() == [
        "5 requests examined; would change 4 (3 of them unpriced before), 0 unchanged, "
        "1 still unpriced, 0 skipped.",
        "Cost of the changed requests: $0.00036 before, $0.005724 after.",
        "Dry run: nothing was written.",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["prices", "show", "gpt-imaginary"],
            "thrifty: error: unknown model 'gpt-imaginary': no provider in the price catalog "
            "lists it; pass --provider, or add it under `prices:` in thrifty.yaml",
        ),
        (
            ["prices", "show", "gpt-imaginary", "--provider", "openai"],
            "thrifty: error: unknown model 'gpt-imaginary' for provider 'openai'; "
            "add it under `prices:` in thrifty.yaml",
        ),
        (
            ["prices", "list", "--provider", "acme-cloud"],
            "thrifty: error: unknown provider 'acme-cloud'; run `thrifty prices list` to see "
            "every provider, or add the provider's models under `prices:` in thrifty.yaml",
        ),
        (
            ["prices", "list", "--at", "yesterday"],
            "thrifty: error: Invalid value for --at: invalid time 'yesterday'; use an ISO-8601 "
            "date or datetime (2025-01-31, 2025-01-31T13:00:00Z) or a time ago such as 30m, "
            "24h, 7d, 2w",
        ),
    ],
    ids=["unknown-model", "unknown-model-of-provider", "unknown-provider", "bad-time"],
)
def test_errors_are_one_line_exit_2(
    args: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(sys, "argv", ["thrifty", *args])
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))

    with pytest.raises(SystemExit) as exited:
        main()

    captured = capsys.readouterr()
    assert exited.value.code == 2
    assert captured.out == ""
    assert captured.err.splitlines() == [message]


def test_missing_without_ledger_file_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'absent.db'}"
    monkeypatch.setattr(sys, "argv", ["thrifty", "prices", "missing", "--db", url])

    with pytest.raises(SystemExit) as exited:
        main()

    assert exited.value.code == 2
    assert capsys.readouterr().err.startswith("thrifty: error: no ledger database at ")
    assert not (tmp_path / "absent.db").exists()
