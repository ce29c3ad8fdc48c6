"""The ``telemetry:`` section of thrifty.yaml: Prometheus metrics and OTLP traces.

::

    telemetry:
      metrics:
        enabled: true             # serve /metrics (the default)
        max_label_values: 100     # distinct values kept per label; the rest are "other"
        auth: master              # master (the default) or none
      traces:                     # present: one OpenTelemetry span per request
        endpoint: http://127.0.0.1:4318/v1/traces
        headers: {x-team: platform}
        service_name: thrifty-gateway
        timeout_s: 10

Without ``traces`` no span is made. Without ``traces.endpoint`` the OTLP
exporter reads the standard ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_ENDPOINT``) variable, and otherwise sends to
``http://localhost:4318/v1/traces``. The exporter also reads the standard
``OTEL_EXPORTER_OTLP_HEADERS``, which keeps credentials out of the file.

``metrics.auth: master`` makes ``/metrics`` answer 401 unless the scrape
sends the gateway's master key as ``Authorization: Bearer KEY`` (Prometheus:
``authorization: {credentials_file: ...}`` in the scrape config). The
metrics name features, teams and their spend, so this is the default. It
applies only when a master key is set; without one ``/metrics`` is open, as
the rest of the gateway is. ``auth: none`` leaves it open either way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from thrifty.errors import ConfigError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

DEFAULT_MAX_LABEL_VALUES = 100
DEFAULT_SERVICE_NAME = "thrifty-gateway"

_SECTION_KEYS = {"metrics", "traces"}
_METRICS_KEYS = {"enabled", "max_label_values", "auth"}
MetricsAuth = Literal["master", "none"]
_TRACES_KEYS = {"endpoint", "headers", "service_name", "timeout_s"}


@dataclass(frozen=True, slots=True)
class TracesConfig:
    """The destination of spans: an OTLP/HTTP collector, or an exporter object.

    ``exporter`` is for programs and tests that build the config in code,
    with an in-memory exporter for example. It replaces the OTLP exporter and
    cannot be set from YAML.
    """

    endpoint: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    service_name: str = DEFAULT_SERVICE_NAME
    timeout_s: float = 10.0
    exporter: SpanExporter | None = None


@dataclass(frozen=True, slots=True)
class TelemetryConfig:
    """The parsed ``telemetry:`` section; ``traces`` is None when spans are off."""

    metrics_enabled: bool = True
    max_label_values: int = DEFAULT_MAX_LABEL_VALUES
    traces: TracesConfig | None = None
    metrics_auth: MetricsAuth = "master"


def telemetry_config(sections: Mapping[str, Any]) -> TelemetryConfig:
    """Return the gateway's telemetry config, or the defaults when the section is absent."""
    config = sections.get("telemetry")
    return config if isinstance(config, TelemetryConfig) else TelemetryConfig()


def parse_telemetry_config(raw: object) -> TelemetryConfig:
    """Validate the raw ``telemetry:`` YAML value."""
    if raw is None:
        return TelemetryConfig()
    section = _mapping(raw, "telemetry")
    _reject_unknown(section, _SECTION_KEYS, "telemetry")
    metrics = _mapping(section.get("metrics") or {}, "telemetry.metrics")
    _reject_unknown(metrics, _METRICS_KEYS, "telemetry.metrics")

    enabled = metrics.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"telemetry.metrics.enabled is {enabled!r}; use true or false")
    limit = metrics.get("max_label_values", DEFAULT_MAX_LABEL_VALUES)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigError(
            f"telemetry.metrics.max_label_values is {limit!r}; it must be a whole number above zero"
        )
    auth = metrics.get("auth", "master")
    if auth not in ("master", "none"):
        raise ConfigError(
            f"telemetry.metrics.auth is {auth!r}; use master (scrapes send the master key) "
            "or none (open)"
        )
    traces = None
    if "traces" in section:
        traces = _parse_traces(section["traces"])
    return TelemetryConfig(
        metrics_enabled=enabled, max_label_values=limit, traces=traces, metrics_auth=auth
    )


def _parse_traces(raw: object) -> TracesConfig:
    traces = _mapping(raw or {}, "telemetry.traces")
    _reject_unknown(traces, _TRACES_KEYS, "telemetry.traces")

    endpoint = traces.get("endpoint")
    if endpoint is not None and (
        not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://"))
    ):
        raise ConfigError(
            f"telemetry.traces.endpoint is {endpoint!r}; give the collector's OTLP/HTTP "
            "address, e.g. http://127.0.0.1:4318/v1/traces"
        )
    headers = _mapping(traces.get("headers") or {}, "telemetry.traces.headers")
    for name, value in headers.items():
        if not isinstance(value, str):
            raise ConfigError(f"telemetry.traces.headers.{name} is {value!r}; it must be a string")
    service_name = traces.get("service_name", DEFAULT_SERVICE_NAME)
    if not isinstance(service_name, str) or not service_name:
        raise ConfigError(
            f"telemetry.traces.service_name is {service_name!r}; it must be a non-empty string"
        )
    timeout = traces.get("timeout_s", 10.0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ConfigError(
            f"telemetry.traces.timeout_s is {timeout!r}; it must be a number of seconds above zero"
        )
    return TracesConfig(
        endpoint=endpoint,
        headers={str(name): str(value) for name, value in headers.items()},
        service_name=service_name,
        timeout_s=float(timeout),
    )


def _mapping(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {type(value).__name__}")
    return {str(key): item for key, item in value.items()}


def _reject_unknown(entry: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise ConfigError(
            f"unknown key {where}.{unknown[0]}; valid keys are {', '.join(sorted(allowed))}"
        )
