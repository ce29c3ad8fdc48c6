"""Unpriced requests: cost None and flagged, and one warning per model per UTC day."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime

import pytest

from thrifty.pricing import CostEngine
from thrifty.pricing.unpriced import MAX_WARNINGS_PER_DAY, UnpricedLog
from thrifty.usage import Usage

USAGE = Usage(input_tokens=100, output_tokens=10)
LOGGER = "thrifty.pricing.unpriced"


class Clock:
    """A UTC date that a test moves forward by hand."""

    def __init__(self, day: date) -> None:
        self.day = day

    def __call__(self) -> date:
        return self.day


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == LOGGER]


def test_unknown_model_warns_once_a_day(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock(date(2026, 11, 16))
    engine = CostEngine(today=clock)
    caplog.set_level(logging.WARNING, logger=LOGGER)

    first = engine.price("openai", "gpt-imaginary", USAGE)
    engine.price("openai", "gpt-imaginary", USAGE)
    engine.price("openai", "gpt-imaginary", Usage(input_tokens=5))
    clock.day = date(2026, 11, 17)
    engine.price("openai", "gpt-imaginary", USAGE)

    assert first.cost_usd is None
    assert first.unpriced_reason is not None
    assert (
        warnings_of(caplog)
        == [
            "model 'gpt-imaginary' of provider 'openai' is unpriced, its requests are recorded "
            "with no cost: unknown model 'gpt-imaginary' for provider 'openai'; add it under "
            "`prices:` in thrifty.yaml"
        ]
        * 2
    )


def test_each_model_warns_on_its_own(caplog: pytest.LogCaptureFixture) -> None:
    engine = CostEngine(today=Clock(date(2026, 11, 16)))
    caplog.set_level(logging.WARNING, logger=LOGGER)

    engine.price("openai", "gpt-imaginary", USAGE)
    engine.price("anthropic", "claude-imaginary", USAGE)
    # A tier the model has no price for is unpriced too.
    engine.price(
        "openai", "gpt-4o", USAGE, service_tier="priority", at=datetime(2026, 9, 1, tzinfo=UTC)
    )
    engine.price("openai", "gpt-imaginary", USAGE)

    messages = warnings_of(caplog)
    assert len(messages) == 3
    assert "'gpt-imaginary'" in messages[0]
    assert "'claude-imaginary'" in messages[1]
    assert "no priority price for model 'gpt-4o' of provider 'openai' on 2026-09-01" in messages[2]


def test_priced_models_do_not_warn(caplog: pytest.LogCaptureFixture) -> None:
    engine = CostEngine()
    caplog.set_level(logging.WARNING, logger=LOGGER)

    cost = engine.price("openai", "gpt-4o", USAGE)

    assert cost.priced
    assert warnings_of(caplog) == []


def test_warnings_can_be_off(caplog: pytest.LogCaptureFixture) -> None:
    engine = CostEngine(warn_unpriced=False)
    caplog.set_level(logging.WARNING, logger=LOGGER)

    engine.price("openai", "gpt-imaginary", USAGE)

    assert warnings_of(caplog) == []


def test_warnings_capped_per_day(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock(date(2026, 11, 16))
    log = UnpricedLog(today=clock)
    caplog.set_level(logging.WARNING, logger=LOGGER)

    logged = [
        log.record("openai", f"model-{n}", "no price") for n in range(MAX_WARNINGS_PER_DAY + 5)
    ]
    clock.day = date(2026, 11, 17)
    next_day = log.record("openai", "model-0", "no price")

    messages = warnings_of(caplog)
    assert logged.count(True) == MAX_WARNINGS_PER_DAY
    assert len(messages) == MAX_WARNINGS_PER_DAY + 2
    assert messages[MAX_WARNINGS_PER_DAY] == (
        f"more than {MAX_WARNINGS_PER_DAY} models were unpriced on 2026-11-16; not naming "
        "the others today, run `thrifty prices missing` to list them"
    )
    assert next_day is True
