"""Prometheus metrics of the gateway, served at ``/metrics``.

Counters and histograms are updated from each request's ledger record by
``MetricsStep.finish``, so they count exactly what the ledger records:

- ``thrifty_requests_total{provider,model,feature,team,outcome}``, where
  ``outcome`` is ``ok`` or ``error``;
- ``thrifty_tokens_total{provider,model,feature,team,token_type}`` for the
  input, output, cache_read, cache_write and reasoning tokens;
- ``thrifty_cost_usd_total{provider,model,feature,team}``, priced requests only;
- ``thrifty_unpriced_requests_total{provider,model}``;
- ``thrifty_cache_requests_total{status}`` (``hit``, ``semantic-hit``, ``miss``);
- histograms ``thrifty_request_duration_seconds{provider,model}``,
  ``thrifty_time_to_first_token_seconds{provider,model}`` (streams) and
  ``thrifty_overhead_seconds{provider}``, the time the gateway added.

Label sets are bounded: there are no user, session or key labels, and each
of model, feature and team keeps its first ``max_label_values`` distinct
values, counting the rest under ``other``. A request without a feature or
team has the empty value. Costs are floats here, as Prometheus stores them;
the ledger keeps the exact Decimal amounts.

Gauges come from the other pipeline steps: any step with a ``gauges()``
method (see ``GaugeSource``), such as a budget or cache step, has its
current values exported at each scrape.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from thrifty.gateway.metering import Call
from thrifty.integrations.config import MetricsAuth
from thrifty.ledger.record import RequestRecord

logger = logging.getLogger(__name__)

OTHER = "other"

DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
FIRST_TOKEN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
OVERHEAD_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

_SPEND_LABELS = ("provider", "model", "feature", "team")
_TOKEN_FIELDS = (
    ("input", "input_tokens"),
    ("output", "output_tokens"),
    ("cache_read", "cache_read_tokens"),
    ("cache_write", "cache_write_tokens"),
    ("reasoning", "reasoning_tokens"),
)


@dataclass(frozen=True, slots=True)
class GaugeSample:
    """One gauge value a step reports: ``thrifty_budget_spend_usd{budget="team-a"} 12.5``."""

    name: str
    documentation: str
    value: float
    labels: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class GaugeSource(Protocol):
    """A pipeline step that reports gauges; called at each scrape, so keep it cheap."""

    def gauges(self) -> Iterable[GaugeSample]: ...


class LabelLimiter:
    """Keep the first ``limit`` distinct values of one label; map later ones to ``other``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str | None) -> str:
        if not value:
            return ""
        with self._lock:
            if value in self._seen:
                return value
            if len(self._seen) < self.limit:
                self._seen.add(value)
                return value
        return OTHER


class MetricsStep:
    """The pipeline step that turns each record into counter and histogram updates."""

    name = "metrics"

    def __init__(self, *, max_label_values: int = 100, auth: MetricsAuth = "master") -> None:
        self.auth = auth
        self.registry = CollectorRegistry()
        self._limiters = {
            label: LabelLimiter(max_label_values) for label in ("model", "feature", "team")
        }
        self._sources: list[GaugeSource] = []
        # Children by metric and label values: ``labels()`` validates and locks on
        # each call, and these label sets are bounded by the limiters.
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self.registry.register(_GaugeCollector(self._sources))
        self._define(self.registry)

    def _define(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "thrifty_requests",
            "Requests recorded, by outcome.",
            [*_SPEND_LABELS, "outcome"],
            registry=registry,
        )
        self.tokens = Counter(
            "thrifty_tokens",
            "Tokens recorded, by token type (cache_read, cache_write are part of input).",
            [*_SPEND_LABELS, "token_type"],
            registry=registry,
        )
        self.cost = Counter(
            "thrifty_cost_usd",
            "Cost in USD of priced requests.",
            list(_SPEND_LABELS),
            registry=registry,
        )
        self.unpriced = Counter(
            "thrifty_unpriced_requests",
            "Requests recorded without a price.",
            ["provider", "model"],
            registry=registry,
        )
        self.cache = Counter(
            "thrifty_cache_requests",
            "Requests with a response-cache status, by status.",
            ["status"],
            registry=registry,
        )
        self.duration = Histogram(
            "thrifty_request_duration_seconds",
            "Time from receiving a request to its last byte.",
            ["provider", "model"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.first_token = Histogram(
            "thrifty_time_to_first_token_seconds",
            "Time from receiving a streamed request to the first upstream byte.",
            ["provider", "model"],
            buckets=FIRST_TOKEN_BUCKETS,
            registry=registry,
        )
        self.overhead = Histogram(
            "thrifty_overhead_seconds",
            "Time the gateway itself added to a request.",
            ["provider"],
            buckets=OVERHEAD_BUCKETS,
            registry=registry,
        )

    def watch(self, steps: Sequence[object]) -> None:
        """Export the gauges of every step that has a ``gauges()`` method."""
        self._sources.extend(step for step in steps if isinstance(step, GaugeSource))

    async def prepare(self, call: Call, request: Request, body: dict[str, Any]) -> dict[str, Any]:
        return body

    def finish(self, call: Call, record: RequestRecord, content: bytes | None) -> None:
        try:
            self.observe(record)
        except Exception:
            # Metrics must never fail a request; the record is still written.
            logger.exception("request %s: updating metrics failed", record.request_id)

    def observe(self, record: RequestRecord) -> None:
        """Count one record."""
        provider = record.provider
        model = self._limiters["model"](record.model_served or record.model_requested)
        spend = (
            provider,
            model,
            self._limiters["feature"](record.feature),
            self._limiters["team"](record.team),
        )
        failed = record.error_type is not None or record.http_status >= 400
        self._child(self.requests, (*spend, "error" if failed else "ok")).inc()
        for token_type, attribute in _TOKEN_FIELDS:
            count = getattr(record, attribute)
            if count:
                self._child(self.tokens, (*spend, token_type)).inc(count)
        if record.cost_usd is None:
            self._child(self.unpriced, (provider, model)).inc()
        elif record.cost_usd:
            self._child(self.cost, spend).inc(float(record.cost_usd))
        if record.cache_status:
            self._child(self.cache, (record.cache_status,)).inc()
        self._observe_times(record, provider, model)

    def _child(self, metric: Counter | Histogram, labels: tuple[str, ...]) -> Any:
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def _observe_times(self, record: RequestRecord, provider: str, model: str) -> None:
        if record.ended_at is not None:
            elapsed = (record.ended_at - record.started_at).total_seconds()
            self._child(self.duration, (provider, model)).observe(max(elapsed, 0.0))
        if record.streamed and record.first_token_at is not None:
            waited = (record.first_token_at - record.started_at).total_seconds()
            self._child(self.first_token, (provider, model)).observe(max(waited, 0.0))
        if record.overhead_ms is not None:
            self._child(self.overhead, (provider,)).observe(record.overhead_ms / 1000)

    def render(self) -> bytes:
        """Return the metrics in the Prometheus text format."""
        return generate_latest(self.registry)


def metrics_response(steps: Sequence[object], headers: Mapping[str, str]) -> Response:
    """Return the ``/metrics`` response of the pipeline's metrics step, or 404 when it is off.

    With ``auth`` "master" and a master key set, a request without that key
    as its bearer token gets 401.
    """
    for step in steps:
        if isinstance(step, MetricsStep):
            if step.auth == "master" and not _has_master_key(steps, headers):
                return Response(
                    b"/metrics needs the master key as 'Authorization: Bearer KEY'; "
                    b"or set telemetry.metrics.auth to none in thrifty.yaml\n",
                    status_code=401,
                    media_type="text/plain",
                    headers={"www-authenticate": "Bearer"},
                )
            return Response(step.render(), media_type=CONTENT_TYPE_LATEST)
    return Response(
        b"metrics are disabled; set telemetry.metrics.enabled to true in thrifty.yaml\n",
        status_code=404,
        media_type="text/plain",
    )


class _GaugeCollector(Collector):
    """Collect the gauges of the watched steps at scrape time."""

    def __init__(self, sources: list[GaugeSource]) -> None:
        self._sources = sources

    def collect(self) -> Iterator[Metric]:
        families: dict[str, tuple[GaugeMetricFamily, list[str]]] = {}
        for source in self._sources:
            try:
                samples = list(source.gauges())
            except Exception:
                logger.exception("reading gauges from step %r failed", source)
                continue
            for sample in samples:
                names = sorted(sample.labels)
                if sample.name not in families:
                    family = GaugeMetricFamily(sample.name, sample.documentation, labels=names)
                    families[sample.name] = (family, names)
                family, expected = families[sample.name]
                if names != expected:
                    logger.warning(
                        "gauge %s: sample labels %s differ from %s; sample skipped",
                        sample.name,
                        names,
                        expected,
                    )
                    continue
                family.add_metric([sample.labels[name] for name in names], sample.value)
        yield from (family for family, _ in families.values())

    def describe(self) -> Iterator[Metric]:
        # No fixed families: registering must not call collect() before steps exist.
        return iter(())


def _has_master_key(steps: Sequence[object], headers: Mapping[str, str]) -> bool:
    """Return whether ``headers`` carry the master key, or True when none is set."""
    from thrifty.control.plane import presented_secret
    from thrifty.control.secrets import same_secret
    from thrifty.control.step import AdmissionStep

    master_key = next(
        (step.plane.master_key for step in steps if isinstance(step, AdmissionStep)), None
    )
    if master_key is None:
        return True
    secret = presented_secret(headers)
    return secret is not None and same_secret(secret, master_key)
