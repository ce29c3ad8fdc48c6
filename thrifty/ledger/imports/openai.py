"""Imports of OpenAI's own records: Batch API output files, Usage API and Costs API pages.

Batch output (JSONL, one line per request of the batch)::

    {"id": "batch_req_...", "custom_id": "...", "error": null,
     "response": {"status_code": 200, "request_id": "...", "body": {...}}}

Each successful line becomes one record, priced at batch rates; its id is
``openai-batch:`` + the line's ``id``. A failed request (``error`` set, or a
status other than 200) is not billed and is skipped with its reason.

Usage API (``GET /v1/organization/usage/completions``) and Costs API
(``GET /v1/organization/costs``) pages hold time buckets of aggregated
results, not requests. Each result of a bucket becomes one record that
stands for the whole group: ``started_at`` and ``ended_at`` are the bucket's
bounds, ``endpoint`` is ``usage.completions`` or ``costs`` (so reports can
tell aggregates from requests), and ``details["import"]["requests"]`` keeps
``num_model_requests``. Reports therefore count such a record as one
request. A usage result is priced by Thrifty when it names its model
(``group_by=model``); a cost result carries OpenAI's billed amount. Importing
both for the same period counts that spend twice, as would importing usage
for traffic the gateway already metered.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import datetime
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
    json_lines,
    load_json,
    parse_time,
    price,
    stable_id,
    text,
    usage_fields,
)
from thrifty.ledger.record import RequestRecord
from thrifty.pricing import Cost
from thrifty.usage import Usage, served_from_response, usage_from_response

# Batch response ``object`` values and the endpoint that returns each.
_BATCH_OBJECTS = {
    "chat.completion": "chat.completions",
    "response": "responses",
    "list": "embeddings",
}

# Usage API result fields that are counts; every other field is a grouping value.
_USAGE_COUNTS = frozenset(
    {
        "input_tokens",
        "output_tokens",
        "input_cached_tokens",
        "input_audio_tokens",
        "output_audio_tokens",
        "num_model_requests",
    }
)


def read_openai_batch(path: Path, options: ImportOptions) -> Iterator[Row]:
    """Read an OpenAI Batch API output file."""
    for number, document in json_lines(path, "a batch output file has one JSON object per line"):
        location = f"line {number}"
        try:
            yield _batch_record(document, path, options)
        except RowError as exc:
            yield Skipped(str(exc), location)


def read_openai_usage(path: Path, options: ImportOptions) -> Iterator[Row]:
    """Read Usage API pages of the completions endpoint."""
    for index, bucket in enumerate(buckets_of(load_json(path), path), 1):
        for position, result in enumerate(_results(bucket), 1):
            location = f"bucket {index} result {position}"
            try:
                yield _usage_record(bucket, result, path, options)
            except RowError as exc:
                yield Skipped(str(exc), location)


def read_openai_costs(path: Path, options: ImportOptions) -> Iterator[Row]:
    """Read Costs API pages."""
    for index, bucket in enumerate(buckets_of(load_json(path), path), 1):
        for position, result in enumerate(_results(bucket), 1):
            location = f"bucket {index} result {position}"
            try:
                yield _cost_record(bucket, result, path)
            except RowError as exc:
                yield Skipped(str(exc), location)


def _batch_record(line: Any, path: Path, options: ImportOptions) -> RequestRecord:
    if not isinstance(line, Mapping):
        raise RowError("line is not a JSON object")
    error = line.get("error")
    response = line.get("response")
    if error:
        code = error.get("code") if isinstance(error, Mapping) else None
        raise RowError(f"request failed ({code or 'error'}); failed requests are not billed")
    if not isinstance(response, Mapping) or not isinstance(response.get("body"), Mapping):
        raise RowError("missing response.body")
    status = response.get("status_code")
    if status != 200:
        raise RowError(f"request failed (HTTP {status}); failed requests are not billed")

    body: Mapping[str, Any] = response["body"]
    endpoint = _BATCH_OBJECTS.get(str(body.get("object")))
    if endpoint is None:
        raise RowError(f"unsupported response object {body.get('object')!r}")
    try:
        usage = usage_from_response(endpoint, body)
    except UsageError as exc:
        raise RowError(f"invalid usage ({exc.field})") from exc
    started = _batch_time(body, options)
    served = served_from_response(endpoint, body)
    model = served.model or text(body.get("model"))
    cost = price(options.engine, "openai", model, usage, started, batch=True)

    line_id = text(line.get("id")) or stable_id("line", line.get("custom_id"), body.get("id"))
    return RequestRecord(
        request_id=f"openai-batch:{line_id}",
        started_at=started,
        provider="openai",
        endpoint=endpoint,
        model_requested=model or "",
        model_served=model,
        http_status=200,
        service_tier_requested="batch",
        service_tier_served="batch",
        **usage_fields(usage),
        **cost_fields(cost),
        details={
            "import": {
                "source": "openai-batch",
                "file": path.name,
                "custom_id": text(line.get("custom_id")),
                "provider_request_id": text(response.get("request_id")),
            }
        },
    )


def _batch_time(body: Mapping[str, Any], options: ImportOptions) -> datetime:
    for name in ("created", "created_at"):
        if body.get(name) is not None:
            return parse_time(body[name], f"response.body.{name}")
    if options.at is not None:
        return options.at
    raise RowError("no timestamp in the response; pass --at with the batch's completion time")


def _usage_record(
    bucket: Mapping[str, Any], result: Mapping[str, Any], path: Path, options: ImportOptions
) -> RequestRecord:
    start = parse_time(bucket.get("start_time"), "start_time")
    end = parse_time(bucket.get("end_time"), "end_time")
    requests = count(result.get("num_model_requests"), "num_model_requests")
    usage = _bucket_usage(result)
    if requests == 0 and usage.total_tokens == 0:
        raise RowError("no requests in the bucket")

    model = text(result.get("model"))
    batch = result.get("batch") is True
    tier = None if batch else text(result.get("service_tier"))
    cost = price(options.engine, "openai", model, usage, start, service_tier=tier, batch=batch)
    if model is None:
        cost = _unpriced_reason(cost, "the bucket has no model; export it with group_by=model")
    groups = {key: value for key, value in result.items() if key not in _USAGE_COUNTS}
    return RequestRecord(
        request_id=stable_id("openai-usage", start, end, sorted(groups.items())),
        started_at=start,
        ended_at=end,
        provider="openai",
        endpoint="usage.completions",
        model_requested=model or "(all models)",
        model_served=model,
        http_status=200,
        service_tier_served="batch" if batch else tier,
        project=text(result.get("project_id")),
        user=text(result.get("user_id")),
        tags=_api_key_tag(result),
        **usage_fields(usage),
        **cost_fields(cost),
        details={
            "import": {
                "source": "openai-usage",
                "file": path.name,
                "aggregate": True,
                "requests": requests,
                "bucket_start": start.isoformat(),
                "bucket_end": end.isoformat(),
            }
        },
    )


def _bucket_usage(result: Mapping[str, Any]) -> Usage:
    input_tokens = count(result.get("input_tokens"), "input_tokens")
    output_tokens = count(result.get("output_tokens"), "output_tokens")
    input_audio = count(result.get("input_audio_tokens"), "input_audio_tokens")
    output_audio = count(result.get("output_audio_tokens"), "output_audio_tokens")
    # Older Usage API versions document input_tokens and output_tokens as text
    # tokens only; a bucket whose audio exceeds them cannot include it, so add it.
    if input_audio > input_tokens:
        input_tokens += input_audio
    if output_audio > output_tokens:
        output_tokens += output_audio
    try:
        return Usage(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read_tokens=count(result.get("input_cached_tokens"), "input_cached_tokens"),
            input_audio_tokens=input_audio,
            output_audio_tokens=output_audio,
        )
    except UsageError as exc:
        raise RowError(f"invalid usage ({exc.field})") from exc


def _cost_record(bucket: Mapping[str, Any], result: Mapping[str, Any], path: Path) -> RequestRecord:
    start = parse_time(bucket.get("start_time"), "start_time")
    end = parse_time(bucket.get("end_time"), "end_time")
    money = result.get("amount")
    if not isinstance(money, Mapping):
        raise RowError("missing amount")
    currency = str(money.get("currency") or "usd").lower()
    if currency != "usd":
        raise RowError(f"amount in {currency.upper()}, not USD; only USD amounts are imported")
    value = amount(money.get("value"), "amount.value")
    if value is None:
        raise RowError("missing amount.value")
    if value < 0:
        raise RowError("negative amount (a credit); credits are not imported")

    line_item = text(result.get("line_item"))
    project = text(result.get("project_id"))
    return RequestRecord(
        request_id=stable_id("openai-costs", start, end, line_item, project),
        started_at=start,
        ended_at=end,
        provider="openai",
        endpoint="costs",
        model_requested=line_item or "(all line items)",
        http_status=200,
        project=project,
        cost_usd=value,
        details={
            "import": {
                "source": "openai-costs",
                "file": path.name,
                "aggregate": True,
                "line_item": line_item,
                "bucket_start": start.isoformat(),
                "bucket_end": end.isoformat(),
                "price_source": "OpenAI Costs API",
            }
        },
    )


def _results(bucket: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    results = bucket.get("results", bucket.get("result"))
    if not isinstance(results, list):
        return []
    return [result for result in results if isinstance(result, Mapping)]


def _api_key_tag(result: Mapping[str, Any]) -> dict[str, str]:
    key_id = text(result.get("api_key_id"))
    return {"api_key_id": key_id} if key_id else {}


def _unpriced_reason(cost: Cost, reason: str) -> Cost:
    return replace(cost, unpriced_reason=reason)
