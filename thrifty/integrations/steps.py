"""The observability steps of the gateway pipeline: metrics and tracing.

They come last, after every step that acts on a request, so that they see
each record as it is finally written. They only watch: ``prepare`` returns
the body unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

from thrifty.config import GatewayConfig
from thrifty.gateway.pipeline import Step
from thrifty.integrations.config import telemetry_config
from thrifty.integrations.metrics import MetricsStep


def observability_steps(config: GatewayConfig, steps: Sequence[Step]) -> list[Step]:
    """Return the metrics step (unless disabled) and the tracing step (when configured).

    The metrics step exports the gauges of ``steps`` that report any.
    """
    telemetry = telemetry_config(config.sections)
    added: list[Step] = []
    if telemetry.metrics_enabled:
        metrics = MetricsStep(
            max_label_values=telemetry.max_label_values, auth=telemetry.metrics_auth
        )
        metrics.watch(steps)
        added.append(metrics)
    if telemetry.traces is not None:
        from thrifty.integrations.telemetry import TracingStep

        added.append(TracingStep(telemetry.traces))
    return added
