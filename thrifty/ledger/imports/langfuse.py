"""Import of Langfuse observations, as the public API returns or the UI exports them.

The file is a JSON array of observations, an API page
(``{"data": [...], "meta": {...}}``) or JSON lines. Only observations of
type ``GENERATION`` and ``EMBEDDING`` are model calls; spans and events are
skipped. Field names are Langfuse's camelCase (``startTime``,
``usageDetails``); the snake_case forms of the v2 API are read too.

Usage comes from ``usageDetails``, whose keys are free-form usage types.
Langfuse counts every type whose name contains ``input`` as input, and
every one containing ``output`` as output. The importer follows that rule.
It also reads cache reads (``cache_read``, ``cached``), cache writes
(``cache_creation``, ``cache_write``) and reasoning (``reasoning``) from the
names. Without ``usageDetails`` the older ``usage.input`` and
``usage.output`` are used.

The provider is the first of openai, anthropic and google whose price
catalog knows the model. The cost is Thrifty's price; when Thrifty has no
price, Langfuse's ``costDetails.total`` (or ``calculatedTotalCost``) is
used. ``userId`` and ``sessionId`` fill user and session; the metadata keys
``feature``, ``team`` and ``project`` fill those fields. An observation at
level ``ERROR`` is recorded as failed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from thrifty.errors import UsageError
from thrifty.ledger.imports.base import (
    ImportOptions,
    Row,
    RowError,
    Skipped,
    amount,
    cost_fields,
    count,
    load_json,
    parse_time,
    price,
    text,
    usage_fields,
)
from thrifty.ledger.record import RequestRecord
from thrifty.pricing.engine import CostEngine
from thrifty.usage import Usage

MODEL_TYPES = {"GENERATION": "generation", "EMBEDDING": "embedding"}
CATALOG_PROVIDERS = ("openai", "anthropic", "google")


def read_langfuse(path: Path, options: ImportOptions) -> Iterator[Row]:
    """Read a Langfuse observations export."""
    for position, observation in enumerate(_observations(load_json(path)), 1):
        try:
            yield _record(observation, path, options)
        except RowError as exc:
            yield Skipped(str(exc), f"observation {position}")


def _observations(documents: list[Any]) -> Iterator[Any]:
    for document in documents:
        if isinstance(document, Mapping) and isinstance(document.get("data"), list):
            yield from document["data"]
        elif isinstance(document, list):
            yield from document
        else:
            yield document


def _record(observation: Any, path: Path, options: ImportOptions) -> RequestRecord:
    if not isinstance(observation, Mapping):
        raise RowError("observation is not a JSON object")
    kind = str(_field(observation, "type") or "").upper()
    endpoint = MODEL_TYPES.get(kind)
    if endpoint is None:
        raise RowError(f"type {kind or 'missing'} is not a model call")
    observation_id = text(_field(observation, "id"))
    if observation_id is None:
        raise RowError("missing id")
    started = parse_time(_field(observation, "startTime", "start_time"), "startTime")
    model = text(_field(observation, "model"))
    if model is None:
        raise RowError("missing model")

    usage = _usage(observation)
    provider = _provider(options.engine, model)
    cost = price(options.engine, provider, model, usage, started)
    fields = cost_fields(cost)
    source_cost = _source_cost(observation)
    price_source = "thrifty"
    if cost.cost_usd is None and source_cost is not None and source_cost >= 0:
        fields.update(cost_usd=source_cost, cost_breakdown={}, unpriced=False)
        price_source = "langfuse"

    metadata = _field(observation, "metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    failed = str(_field(observation, "level") or "").upper() == "ERROR"
    first = _field(observation, "completionStartTime", "completion_start_time")
    ended = _field(observation, "endTime", "end_time")
    return RequestRecord(
        request_id=f"langfuse:{observation_id}",
        started_at=started,
        first_token_at=None if first is None else parse_time(first, "completionStartTime"),
        ended_at=None if ended is None else parse_time(ended, "endTime"),
        provider=provider,
        endpoint=endpoint,
        model_requested=model,
        model_served=model,
        http_status=0 if failed else 200,
        error_type="langfuse_error" if failed else None,
        user=text(_field(observation, "userId", "user_id")),
        session=text(_field(observation, "sessionId", "session_id")),
        feature=text(metadata.get("feature")),
        team=text(metadata.get("team")),
        project=text(metadata.get("project")),
        **usage_fields(usage),
        **fields,
        details={
            "import": {
                "source": "langfuse",
                "file": path.name,
                "price_source": price_source,
                "source_cost_usd": None if source_cost is None else format(source_cost, "f"),
                "trace_id": text(_field(observation, "traceId", "trace_id")),
                "name": text(_field(observation, "name")),
            }
        },
    )


def _usage(observation: Mapping[str, Any]) -> Usage:
    details = _field(observation, "usageDetails", "usage_details")
    if isinstance(details, Mapping) and details:
        return _usage_from_details(details)
    legacy = _field(observation, "usage")
    legacy = legacy if isinstance(legacy, Mapping) else {}
    input_tokens = legacy.get("input", _field(observation, "promptTokens"))
    output_tokens = legacy.get("output", _field(observation, "completionTokens"))
    return Usage(
        input_tokens=count(input_tokens, "usage.input"),
        output_tokens=count(output_tokens, "usage.output"),
    )


def _usage_from_details(details: Mapping[str, Any]) -> Usage:
    """Sum usage types by name, as Langfuse does: ``*input*`` is input, ``*output*`` output."""
    totals = {"input": 0, "output": 0, "cache_read": 0, "cache_write": 0, "reasoning": 0}
    for key, value in details.items():
        name = str(key).lower()
        tokens = count(value, f"usageDetails.{key}")
        if name == "total":
            continue
        if "cache_read" in name or "cached" in name:
            totals["cache_read"] += tokens
            totals["input"] += tokens
        elif "cache_creation" in name or "cache_write" in name:
            totals["cache_write"] += tokens
            totals["input"] += tokens
        elif "reasoning" in name:
            totals["reasoning"] += tokens
            totals["output"] += tokens
        elif "input" in name:
            totals["input"] += tokens
        elif "output" in name:
            totals["output"] += tokens
    try:
        return Usage(
            input_tokens=totals["input"],
            output_tokens=totals["output"],
            cache_read_tokens=totals["cache_read"],
            cache_write_tokens=totals["cache_write"],
            reasoning_tokens=totals["reasoning"],
        )
    except UsageError as exc:
        raise RowError(f"invalid usage ({exc.field})") from exc


def _provider(engine: CostEngine, model: str) -> str:
    for provider in CATALOG_PROVIDERS:
        if engine.resolve(provider, model) is not None:
            return provider
    return "unknown"


def _source_cost(observation: Mapping[str, Any]) -> Decimal | None:
    details = _field(observation, "costDetails", "cost_details")
    if isinstance(details, Mapping) and details.get("total") is not None:
        return amount(details["total"], "costDetails.total")
    return amount(
        _field(observation, "calculatedTotalCost", "calculated_total_cost"), "calculatedTotalCost"
    )


def _field(observation: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if observation.get(name) is not None:
            return observation[name]
    return None
