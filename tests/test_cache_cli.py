"""The `thrifty cache` commands: stats, clear, eval and advise."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from tests.ledger_support import make_record
from tests.test_cache_store import entry
from thrifty.cache.store import open_store
from thrifty.cli.main import app
from thrifty.ledger import open_ledger

runner = CliRunner()


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = open_ledger(url)
    ledger.write(
        [
            make_record("m1", feature="faq", cache_status="miss"),
            make_record(
                "h1",
                feature="faq",
                cache_status="hit",
                cost_usd=Decimal(0),
                details={"cache": {"saved_usd": Decimal("0.00036")}},
            ),
            make_record(
                "p1",
                model_served="gpt-4o-mini",
                input_tokens=5000,
                cache_read_tokens=2048,
                cost_usd=Decimal("0.0006"),
            ),
        ]
    )
    ledger.close()
    store = open_store(url)
    store.put([entry("e1"), entry("e2", feature="chat", namespace="key=b")])
    store.close()
    return url


def test_stats_json(db_url: str) -> None:
    result = runner.invoke(app, ["cache", "stats", "--db", db_url, "--format", "json"])
    assert result.exit_code == 0, result.output
    data = orjson.loads(result.stdout)
    assert data["entries"] == 2
    faq = next(row for row in data["response_cache"] if row["feature"] == "faq")
    assert faq["hits"] == 1
    assert faq["misses"] == 1
    assert faq["saved_usd"] == "0.00036"
    assert faq["storage_usd"] is None
    models = {row["model"]: row for row in data["prompt_cache"]}
    assert models["gpt-4o-mini"]["cache_read_tokens"] == 2048


def test_stats_table(db_url: str) -> None:
    result = runner.invoke(app, ["cache", "stats", "--db", db_url, "--by", "feature"])
    assert result.exit_code == 0, result.output
    assert "Response cache by feature" in result.stdout
    assert "Provider prompt caching" in result.stdout


def test_clear_needs_a_filter(db_url: str) -> None:
    result = runner.invoke(app, ["cache", "clear", "--db", db_url])
    assert result.exit_code == 2
    assert "--namespace, --feature or --all" in result.output


def test_clear_by_namespace_then_all(db_url: str) -> None:
    first = runner.invoke(app, ["cache", "clear", "--db", db_url, "--namespace", "key=b"])
    second = runner.invoke(app, ["cache", "clear", "--db", db_url, "--all"])
    assert first.stdout.strip() == "deleted 1 cache entries"
    assert second.stdout.strip() == "deleted 1 cache entries"


def test_missing_ledger_is_named(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'none.db'}"
    result = runner.invoke(app, ["cache", "stats", "--db", url])
    assert result.exit_code != 0
    assert "no ledger database at" in str(result.exception)


def test_advise_from_requests_file(tmp_path: Path) -> None:
    manual = "\n".join(f"Step {n}: check the cable and the light." for n in range(250))
    lines = [
        {
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": f"Time: 10:{n:02d}\n{manual}"},
                {"role": "user", "content": f"Q{n}"},
            ],
        }
        for n in range(3)
    ]
    path = tmp_path / "requests.jsonl"
    path.write_text("".join(orjson.dumps(line).decode() + "\n" for line in lines))
    result = runner.invoke(app, ["cache", "advise", "--requests", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    findings = orjson.loads(result.stdout)["findings"]
    assert [finding["kind"] for finding in findings] == ["changing_early"]
    assert findings[0]["requests"] == 3


def test_eval_with_gateway_embedder(tmp_path: Path) -> None:
    pytest.importorskip("numpy", reason="the evaluation needs numpy")
    from tests.gateway_support import running_gateway

    pairs = tmp_path / "pairs.csv"
    pairs.write_text(
        "question1,question2,is_duplicate\n"
        "What is a fjord?,What is a fjord?,1\n"
        "What is a fjord?,What is a glacier?,0\n"
        "Why is the sky blue?,Why is the sea blue?,1\n"
    )
    with running_gateway(tmp_path) as gateway:
        result = runner.invoke(
            app,
            [
                "cache",
                "eval",
                str(pairs),
                "--embedder",
                "gateway",
                "--gateway",
                gateway.url,
                "--format",
                "json",
            ],
            env={"OPENAI_API_KEY": "sk-test"},
        )
        held_out = runner.invoke(
            app,
            [
                "cache",
                "eval",
                str(pairs),
                "--embedder",
                "gateway",
                "--gateway",
                gateway.url,
                "--split",
                "held-out",
                "--format",
                "json",
            ],
            env={"OPENAI_API_KEY": "sk-test"},
        )
    assert result.exit_code == 0, result.output
    assert held_out.exit_code == 0, held_out.output
    split = orjson.loads(held_out.stdout)
    assert split["split"] == "held-out"
    assert split["pairs"] == 2
    assert split["passed_guards"] == 0
    data = orjson.loads(result.stdout)
    assert data["split"] == "all"
    assert data["pairs"] == 3
    assert data["duplicates"] == 2
    assert data["passed_guards"] == 1
    default = next(row for row in data["rows"] if row["threshold"] == data["default_threshold"])
    assert default["matched"] == 1
    assert default["precision"] == 1.0
    assert [round(bound, 4) for bound in default["precision_interval"]] == [0.2065, 1.0]
    assert default["recall"] == 0.5
