"""Integrations with the tools around Thrifty.

- ``track`` wraps an ``openai`` or ``anthropic`` client so that each call is
  recorded to the ledger, for apps that do not go through the gateway;
- ``metrics`` serves Prometheus counters and histograms at the gateway's
  ``/metrics``;
- ``telemetry`` emits an OpenTelemetry span per gateway request, exported by
  OTLP when the ``telemetry:`` section of thrifty.yaml configures it.
"""
