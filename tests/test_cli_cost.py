"""`thrifty cost`: the JSON contract, its inputs, and one-line errors with exit status 2."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from tests.provider_responses import (
    ANTHROPIC_MESSAGE,
    ANTHROPIC_THINKING_SEARCH,
    GEMINI_THINKING,
    OPENAI_CHAT_CACHED,
    OPENAI_CHAT_REASONING,
    OPENAI_EMBEDDINGS,
    OPENAI_RESPONSE,
)
from thrifty.cli import cost
from thrifty.cli.main import main
from thrifty.pricing import CATALOG_SOURCE, TOKEN_CLASSES

THRIFTY = Path(sys.executable).with_name("thrifty")
NOV_2026 = "2026-11-01T12:00:00Z"


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()
    cost.register(app)
    # A second command keeps Typer from collapsing the app into its only command.
    app.command("noop")(lambda: None)
    return app


def run_cost(app: typer.Typer, *args: str, stdin: str | None = None) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["cost", *args], input=stdin)
    assert result.exit_code == 0, result.output
    output: dict[str, Any] = json.loads(result.stdout)
    return output


def run_thrifty(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    assert THRIFTY.exists(), f"{THRIFTY} is missing; install the package into the virtualenv"
    return subprocess.run(
        [str(THRIFTY), "cost", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_response_output_contract(app: typer.Typer) -> None:
    output = run_cost(
        app, "--provider", "openai", "--response", json.dumps(OPENAI_CHAT_CACHED), "--at", NOV_2026
    )

    assert output["cost_usd"] == "0.005615"
    assert output["model"] == "gpt-4o"
    assert output["model_requested"] == "gpt-4o-2024-08-06"
    assert output["service_tier"] == "default"
    assert output["batch"] is False
    assert list(output["breakdown"]) == list(TOKEN_CLASSES)
    assert output["breakdown"]["input"] == "0.000215"
    assert output["breakdown"]["cache_read"] == "0.0024"
    assert output["breakdown"]["output"] == "0.003"
    assert output["breakdown"]["reasoning"] == "0"
    assert output["usage"]["input_tokens"] == 2006
    assert output["usage"]["cache_read_tokens"] == 1920
    assert output["price_source"] == CATALOG_SOURCE
    assert output["notes"] == []


def test_usage_literal_needs_model(app: typer.Typer) -> None:
    usage = json.dumps(OPENAI_CHAT_REASONING["usage"])

    output = run_cost(
        app, "--provider", "openai", "--usage", usage, "--model", "gpt-5", "--at", NOV_2026
    )

    assert output["cost_usd"] == "0.015348"
    assert output["usage"]["reasoning_tokens"] == 1280


def test_service_tier_option_overrides_response(app: typer.Typer) -> None:
    body = json.dumps(OPENAI_CHAT_REASONING)

    from_response = run_cost(app, "--provider", "openai", "--response", body, "--at", NOV_2026)
    overridden = run_cost(
        app,
        "--provider",
        "openai",
        "--response",
        body,
        "--service-tier",
        "priority",
        "--at",
        NOV_2026,
    )

    assert from_response["service_tier"] == "flex"
    assert from_response["cost_usd"] == "0.007674"
    assert overridden["service_tier"] == "priority"
    assert overridden["cost_usd"] == "0.030696"


def test_batch_flag(app: typer.Typer) -> None:
    output = run_cost(
        app,
        "--provider",
        "openai",
        "--response",
        json.dumps(OPENAI_CHAT_CACHED),
        "--batch",
        "--at",
        "2026-09-01",
    )

    assert output["batch"] is True
    assert output["service_tier"] == "batch"
    assert output["cost_usd"] == "0.0028075"
    assert "50% of standard" in output["price_source"]


def test_usage_from_file(app: typer.Typer, tmp_path: Path) -> None:
    path = tmp_path / "message.json"
    path.write_text(json.dumps(ANTHROPIC_MESSAGE), encoding="utf-8")

    output = run_cost(app, "--provider", "anthropic", "--response", f"@{path}")

    assert output["cost_usd"] == "0.0153"
    assert output["model"] == "claude-3-5-sonnet"
    assert output["breakdown"]["cache_write_1h"] == "0.003"


def test_usage_from_stdin(app: typer.Typer) -> None:
    usage = json.dumps(ANTHROPIC_THINKING_SEARCH["usage"])

    output = run_cost(
        app,
        "--provider",
        "anthropic",
        "--usage",
        "-",
        "--model",
        "claude-haiku-4-5",
        "--at",
        NOV_2026,
        stdin=usage,
    )

    assert output["service_tier"] == "batch"
    assert output["batch"] is True
    assert output["cost_usd"] == "0.041"
    assert output["breakdown"]["web_search"] == "0.03"


def test_gemini_usage_metadata(app: typer.Typer) -> None:
    usage = json.dumps(GEMINI_THINKING["usageMetadata"])

    output = run_cost(app, "--provider", "google", "--usage", usage, "--model", "gemini-2.5-flash")

    assert output["cost_usd"] == "0.005565"
    assert output["usage"]["output_tokens"] == 1650


def test_gemini_response_names_model(app: typer.Typer) -> None:
    output = run_cost(app, "--provider", "gemini", "--response", json.dumps(GEMINI_THINKING))

    assert output["model"] == "gemini-2.5-flash"
    assert output["provider"] == "google"


def test_responses_and_embeddings_shapes(app: typer.Typer) -> None:
    response = run_cost(
        app, "--provider", "openai", "--response", json.dumps(OPENAI_RESPONSE), "--at", NOV_2026
    )
    embeddings = run_cost(app, "--provider", "openai", "--response", json.dumps(OPENAI_EMBEDDINGS))

    # o4-mini: $1.10 input, $0.275 cached, $4.40 output (reasoning too) per million.
    assert response["cost_usd"] == "0.0055704"
    assert response["usage"]["reasoning_tokens"] == 640
    # text-embedding-3-small: $0.02 per million input tokens.
    assert embeddings["cost_usd"] == "0.00000016"


def test_price_history_through_at(app: typer.Typer) -> None:
    usage = json.dumps({"prompt_tokens": 10000, "completion_tokens": 2000})
    base = ["--provider", "openai", "--usage", usage, "--model", "o3"]

    before = run_cost(app, *base, "--at", "2025-06-09T23:00:00Z")
    after = run_cost(app, *base, "--at", "2025-06-10")

    assert before["cost_usd"] == "0.18"
    assert after["cost_usd"] == "0.036"


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (
            [
                "--provider",
                "openai",
                "--usage",
                '{"prompt_tokens": 10, "completion_tokens": 2}',
                "--model",
                "gpt-imaginary",
            ],
            "",
            "thrifty: error: unknown model 'gpt-imaginary' for provider 'openai'; "
            "add it under `prices:` in thrifty.yaml",
        ),
        (
            ["--provider", "openai", "--usage", '{"prompt_tokens": 10,', "--model", "gpt-4o"],
            "",
            "thrifty: error: Invalid value for '--usage': invalid JSON: "
            "Expecting property name enclosed in double quotes at line 1 column 22",
        ),
        (
            ["--provider", "openai", "--usage", "-", "--model", "gpt-4o"],
            '{"prompt_tokens": 3.0, "completion_tokens": 2}',
            "thrifty: error: invalid usage field 'usage.prompt_tokens': "
            "3.0 is not an integer token count",
        ),
        (
            ["--provider", "anthropic", "--response", '{"type": "message", "usage": null}'],
            "",
            "thrifty: error: invalid usage field 'usage': "
            "missing from the response; the provider reported no usage",
        ),
        (
            [
                "--provider",
                "openai",
                "--usage",
                '{"prompt_tokens": 1, "completion_tokens": 1}',
                "--model",
                "gpt-4o",
                "--service-tier",
                "turbo",
            ],
            "",
            "thrifty: error: unknown service tier 'turbo'; expected one of: default, auto, "
            "scale, standard, flex, priority, fast, batch, ultrafast",
        ),
        (
            ["--provider", "openai", "--model", "gpt-4o"],
            "",
            "thrifty: error: Invalid value: give exactly one of --usage and --response",
        ),
    ],
    ids=["unknown-model", "invalid-json", "float-count", "no-usage", "bad-tier", "no-input"],
)
def test_error_is_one_line_exit_2(
    args: list[str],
    stdin: str,
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The entry point's own main(), run in this process to keep the table fast."""
    monkeypatch.setattr(sys, "argv", ["thrifty", "cost", *args])
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))

    with pytest.raises(SystemExit) as exited:
        main()

    captured = capsys.readouterr()
    assert exited.value.code == 2
    assert captured.out == ""
    assert captured.err.splitlines() == [message]


def test_entry_point_error_is_one_line() -> None:
    completed = run_thrifty(
        "--provider",
        "openai",
        "--usage",
        "-",
        "--model",
        "gpt-imaginary",
        stdin='{"prompt_tokens": 10, "completion_tokens": 2}',
    )

    assert completed.returncode == 2
    assert completed.stdout == ""
    assert completed.stderr.splitlines() == [
        "thrifty: error: unknown model 'gpt-imaginary' for provider 'openai'; "
        "add it under `prices:` in thrifty.yaml"
    ]


def test_entry_point_success() -> None:
    completed = run_thrifty(
        "--provider", "openai", "--response", json.dumps(OPENAI_CHAT_CACHED), "--at", NOV_2026
    )

    assert completed.returncode == 0
    assert completed.stderr == ""
    assert json.loads(completed.stdout)["cost_usd"] == "0.005615"
