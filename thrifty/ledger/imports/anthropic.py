"""Imports of Anthropic's Usage and Cost Admin API pages.

Messages usage report (``GET /v1/organizations/usage_report/messages``)::

    {"data": [{"starting_at": "2025-08-01T00:00:00Z", "ending_at": "...",
               "results": [{"uncached_input_tokens": 1500,
                            "cache_creation": {"ephemeral_1h_input_tokens": 1000,
                                               "ephemeral_5m_input_tokens": 500},
                            "cache_read_input_tokens": 200, "output_tokens": 500,
                            "server_tool_use": {"web_search_requests": 10},
                            "model": "claude-sonnet-4-20250514", "service_tier": "standard",
                            "workspace_id": "...", "api_key_id": "...", ...}]}],
     "has_more": false, "next_page": null}

Cost report (``GET /v1/organizations/cost_report``): results with
``amount``, a decimal string in the currency's lowest unit (cents for USD:
``"123.45"`` is $1.23), ``currency``, and, when grouped by description,
``model``, ``cost_type``, ``token_type`` and ``service_tier``.

As with OpenAI's Usage API, each result of a bucket is an aggregate and
becomes one record spanning the bucket, with ``endpoint`` ``usage.messages``
or ``costs``. The usage report has no request count, so
``details["import"]["requests"]`` is absent. Usage is priced by Thrifty when
the result names its model; costs carry Anthropic's amount. The workspace
becomes the record's ``project``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from thrifty.errors import UsageError
from thrifty.ledger.imports.base import (
    ImportOptions,
    Row,
    RowError,
    Skipped,
    amount,
    buckets_of,
    cost_fields,
    count,
    load_json,
    parse_time,
    price,
    stable_id,
    text,
    usage_fields,
)
from thrifty.ledger.record import RequestRecord
from thrifty.usage import Usage

_USAGE_COUNTS = frozenset(
    {
        "uncached_input_tokens",
        "cache_creation",
        "cache_read_input_tokens",
        "output_tokens",
        "server_tool_use",
    }
)


def read_anthropic_usage(path: Path, options: ImportOptions) -> Iterator[Row]:
    """Read messages usage report pages."""
    for index, bucket in enumerate(buckets_of(load_json(path), path), 1):
        for position, result in enumerate(_results(bucket), 1):
            try:
                yield _usage_record(bucket, result, path, options)
            except RowError as exc:
                yield Skipped(str(exc), f"bucket {index} result {position}")


def read_anthropic_costs(path: Path, options: ImportOptions) -> Iterator[Row]:
    """Read cost report pages."""
    for index, bucket in enumerate(buckets_of(load_json(path), path), 1):
        for position, result in enumerate(_results(bucket), 1):
            try:
                yield _cost_record(bucket, result, path)
            except RowError as exc:
                yield Skipped(str(exc), f"bucket {index} result {position}")


def _usage_record(
    bucket: Mapping[str, Any], result: Mapping[str, Any], path: Path, options: ImportOptions
) -> RequestRecord:
    start = parse_time(bucket.get("starting_at"), "starting_at")
    end = parse_time(bucket.get("ending_at"), "ending_at")
    usage = _usage(result)
    if usage.total_tokens == 0 and usage.web_search_requests == 0:
        raise RowError("no usage in the bucket")

    model = text(result.get("model"))
    tier = text(result.get("service_tier"))
    batch = tier == "batch"
    cost = price(
        options.engine,
        "anthropic",
        model,
        usage,
        start,
        service_tier=None if batch else tier,
        batch=batch,
        speed=text(result.get("speed")),
    )
    if model is None:
        cost = replace(cost, unpriced_reason="the bucket has no model; group the report by model")
    groups = {key: value for key, value in result.items() if key not in _USAGE_COUNTS}
    key_id = text(result.get("api_key_id"))
    return RequestRecord(
        request_id=stable_id("anthropic-usage", start, end, sorted(groups.items())),
        started_at=start,
        ended_at=end,
        provider="anthropic",
        endpoint="usage.messages",
        model_requested=model or "(all models)",
        model_served=model,
        http_status=200,
        service_tier_served=tier,
        project=text(result.get("workspace_id")),
        tags={"api_key_id": key_id} if key_id else {},
        **usage_fields(usage),
        **cost_fields(cost),
        details={
            "import": {
                "source": "anthropic-usage",
                "file": path.name,
                "aggregate": True,
                "bucket_start": start.isoformat(),
                "bucket_end": end.isoformat(),
                "context_window": text(result.get("context_window")),
            }
        },
    )


def _usage(result: Mapping[str, Any]) -> Usage:
    """Map a result into Usage; Anthropic's uncached input excludes cache reads and writes."""
    creation = result.get("cache_creation")
    creation = creation if isinstance(creation, Mapping) else {}
    write_1h = count(creation.get("ephemeral_1h_input_tokens"), "ephemeral_1h_input_tokens")
    write_5m = count(creation.get("ephemeral_5m_input_tokens"), "ephemeral_5m_input_tokens")
    read = count(result.get("cache_read_input_tokens"), "cache_read_input_tokens")
    uncached = count(result.get("uncached_input_tokens"), "uncached_input_tokens")
    tools = result.get("server_tool_use")
    tools = tools if isinstance(tools, Mapping) else {}
    try:
        return Usage(
            input_tokens=uncached + read + write_5m + write_1h,
            output_tokens=count(result.get("output_tokens"), "output_tokens"),
            cache_read_tokens=read,
            cache_write_tokens=write_5m + write_1h,
            cache_write_1h_tokens=write_1h,
            web_search_requests=count(tools.get("web_search_requests"), "web_search_requests"),
        )
    except UsageError as exc:
        raise RowError(f"invalid usage ({exc.field})") from exc


def _cost_record(bucket: Mapping[str, Any], result: Mapping[str, Any], path: Path) -> RequestRecord:
    start = parse_time(bucket.get("starting_at"), "starting_at")
    end = parse_time(bucket.get("ending_at"), "ending_at")
    currency = str(result.get("currency") or "USD").upper()
    if currency != "USD":
        raise RowError(f"amount in {currency}, not USD; only USD amounts are imported")
    cents = amount(result.get("amount"), "amount")
    if cents is None:
        raise RowError("missing amount")
    if cents < 0:
        raise RowError("negative amount (a credit); credits are not imported")

    model = text(result.get("model"))
    description = text(result.get("description"))
    groups = {key: value for key, value in result.items() if key not in ("amount", "currency")}
    return RequestRecord(
        request_id=stable_id("anthropic-costs", start, end, sorted(groups.items())),
        started_at=start,
        ended_at=end,
        provider="anthropic",
        endpoint="costs",
        model_requested=model or description or "(all models)",
        model_served=model,
        http_status=200,
        service_tier_served=text(result.get("service_tier")),
        project=text(result.get("workspace_id")),
        cost_usd=cents.scaleb(-2),  # cents to dollars, exactly
        details={
            "import": {
                "source": "anthropic-costs",
                "file": path.name,
                "aggregate": True,
                "bucket_start": start.isoformat(),
                "bucket_end": end.isoformat(),
                "cost_type": text(result.get("cost_type")),
                "token_type": text(result.get("token_type")),
                "description": description,
                "price_source": "Anthropic Cost API",
            }
        },
    )


def _results(bucket: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    results = bucket.get("results")
    if not isinstance(results, list):
        return []
    return [result for result in results if isinstance(result, Mapping)]
