"""Import of LiteLLM spend logs exported as CSV (the ``LiteLLM_SpendLogs`` table).

Columns read, named as in LiteLLM's schema: ``request_id``, ``call_type``,
``spend``, ``prompt_tokens``, ``completion_tokens``, ``startTime``,
``endTime``, ``completionStartTime``, ``model``, ``custom_llm_provider``,
``user``, ``end_user``, ``team_id``, ``session_id``, ``request_tags`` (a JSON
list), ``cache_hit``, ``status`` and ``metadata`` (JSON). Other columns are
ignored; ``request_id``, ``startTime`` and ``model`` are required.

Mapping:

- the record id is ``litellm:`` + ``request_id``;
- ``prompt_tokens`` is all input, as in OpenAI's usage; cache reads and
  writes come from ``metadata.usage_object`` when LiteLLM stored it;
- the provider is ``custom_llm_provider``, else the ``provider/`` prefix of
  the model;
- the cost is Thrifty's price for the usage; when Thrifty has no price,
  LiteLLM's ``spend`` is used (``details["import"]["price_source"]`` names
  the source), and a LiteLLM cache hit costs 0;
- ``end_user`` (the customer) fills ``user`` when ``user`` is empty, and
  each ``key:value`` request tag becomes a tag (a tag without a colon gets
  the value ``"true"``).
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator, Mapping
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from thrifty.errors import ImportFileError, UsageError
from thrifty.ledger.imports.base import (
    ImportOptions,
    Row,
    RowError,
    Skipped,
    amount,
    cost_fields,
    count,
    parse_time,
    price,
    text,
    usage_fields,
    utf8_errors_as_import_errors,
)
from thrifty.ledger.record import RequestRecord
from thrifty.usage import Usage

REQUIRED_COLUMNS = ("request_id", "startTime", "model")

# LiteLLM call types and the endpoint of each; other call types keep their name.
_CALL_TYPES = {
    "completion": "chat.completions",
    "acompletion": "chat.completions",
    "text_completion": "completions",
    "atext_completion": "completions",
    "embedding": "embeddings",
    "aembedding": "embeddings",
    "responses": "responses",
    "aresponses": "responses",
    "anthropic_messages": "messages",
}


def read_litellm(path: Path, options: ImportOptions) -> Iterator[Row]:
    """Read a LiteLLM spend-log CSV export."""
    # Messages and responses columns can hold whole conversations.
    csv.field_size_limit(sys.maxsize)
    try:
        handle = path.open(encoding="utf-8", newline="")
    except OSError as exc:
        raise ImportFileError(f"cannot read import file {path}: {exc.strerror}") from exc
    with handle, utf8_errors_as_import_errors(path):
        reader = csv.DictReader(handle)
        _check_columns(reader.fieldnames, path)
        for row in reader:
            location = f"line {reader.line_num}"
            try:
                yield _record(row, path, options)
            except RowError as exc:
                yield Skipped(str(exc), location)


def _check_columns(columns: object, path: Path) -> None:
    present = set(columns) if isinstance(columns, list) else set()
    missing = [name for name in REQUIRED_COLUMNS if name not in present]
    if missing:
        raise ImportFileError(
            f"{path} has no {', '.join(missing)} column; a LiteLLM spend-log export "
            f"has the LiteLLM_SpendLogs columns ({', '.join(REQUIRED_COLUMNS)}, ...)"
        )


def _record(row: Mapping[str, str | None], path: Path, options: ImportOptions) -> RequestRecord:
    request_id = (row.get("request_id") or "").strip()
    if not request_id:
        raise RowError("missing request_id")
    started = parse_time(row.get("startTime"), "startTime")
    provider, model = _provider_and_model(row)
    metadata = _json_object(row.get("metadata"))
    usage = _usage(row, metadata)
    failed = (row.get("status") or "success").strip().lower() not in ("success", "")
    cache_hit = (row.get("cache_hit") or "").strip().lower() == "true"

    cost = price(options.engine, provider, model, usage, started)
    source_cost = amount(row.get("spend"), "spend")
    fields = cost_fields(cost)
    price_source = "thrifty"
    if cache_hit:
        fields.update(cost_usd=Decimal(0), cost_breakdown={}, unpriced=False)
        price_source = "litellm cache hit"
    elif cost.cost_usd is None and source_cost is not None and source_cost >= 0:
        fields.update(cost_usd=source_cost, cost_breakdown={}, unpriced=False)
        price_source = "litellm spend"

    call_type = (row.get("call_type") or "").strip()
    return RequestRecord(
        request_id=f"litellm:{request_id}",
        started_at=started,
        first_token_at=_optional_time(row.get("completionStartTime"), "completionStartTime"),
        ended_at=_optional_time(row.get("endTime"), "endTime"),
        provider=provider,
        endpoint=_CALL_TYPES.get(call_type, call_type or "unknown"),
        model_requested=model,
        model_served=model,
        http_status=0 if failed else 200,
        error_type="litellm_failure" if failed else None,
        team=text(row.get("team_id")),
        user=text(row.get("user")) or text(row.get("end_user")),
        session=text(row.get("session_id")),
        tags=_tags(row.get("request_tags")),
        cache_status="hit" if cache_hit else None,
        **usage_fields(usage),
        **fields,
        details={
            "import": {
                "source": "litellm",
                "file": path.name,
                "price_source": price_source,
                "source_cost_usd": None if source_cost is None else format(source_cost, "f"),
                "model_group": text(row.get("model_group")),
            }
        },
    )


def _provider_and_model(row: Mapping[str, str | None]) -> tuple[str, str]:
    model = (row.get("model") or "").strip()
    if not model:
        raise RowError("missing model")
    provider = (row.get("custom_llm_provider") or "").strip()
    prefix, sep, rest = model.partition("/")
    if sep and rest and (not provider or provider == prefix):
        return prefix, rest
    return provider or "unknown", model


def _usage(row: Mapping[str, str | None], metadata: Mapping[str, Any]) -> Usage:
    details = metadata.get("usage_object")
    details = details if isinstance(details, Mapping) else {}
    prompt = details.get("prompt_tokens_details")
    prompt = prompt if isinstance(prompt, Mapping) else {}
    completion = details.get("completion_tokens_details")
    completion = completion if isinstance(completion, Mapping) else {}

    input_tokens = count(row.get("prompt_tokens"), "prompt_tokens")
    read = count(
        details.get("cache_read_input_tokens") or prompt.get("cached_tokens"),
        "cache_read_input_tokens",
    )
    write = count(details.get("cache_creation_input_tokens"), "cache_creation_input_tokens")
    # prompt_tokens includes cached input, as in OpenAI's usage; a row whose
    # cache counts exceed it counted them apart, as Anthropic does.
    if read + write > input_tokens:
        input_tokens += read + write
    try:
        return Usage(
            input_tokens=input_tokens,
            output_tokens=count(row.get("completion_tokens"), "completion_tokens"),
            cache_read_tokens=read,
            cache_write_tokens=write,
            reasoning_tokens=count(completion.get("reasoning_tokens"), "reasoning_tokens"),
        )
    except UsageError as exc:
        raise RowError(f"invalid usage ({exc.field})") from exc


def _tags(value: str | None) -> dict[str, str]:
    tags: dict[str, str] = {}
    parsed = _json_value(value)
    if not isinstance(parsed, list):
        return tags
    for item in parsed:
        if not isinstance(item, str) or not item:
            continue
        key, sep, tag_value = item.partition(":")
        if key.strip():
            tags[key.strip()] = tag_value.strip() if sep else "true"
    return tags


def _optional_time(value: str | None, name: str) -> datetime | None:
    return None if not value else parse_time(value, name)


def _json_object(value: str | None) -> Mapping[str, Any]:
    parsed = _json_value(value)
    return parsed if isinstance(parsed, Mapping) else {}


def _json_value(value: str | None) -> Any:
    if not value:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return None
