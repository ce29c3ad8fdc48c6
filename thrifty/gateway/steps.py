"""Building the gateway's pipeline steps from its configuration."""

from __future__ import annotations

from dataclasses import dataclass

from thrifty.config import GatewayConfig
from thrifty.gateway.pipeline import Step
from thrifty.gateway.upstream import UpstreamClient
from thrifty.ledger import Ledger, RecordWriter
from thrifty.pricing.engine import CostEngine


@dataclass(frozen=True, slots=True)
class Resources:
    """What a step may use: the ledger, the cost engine, the upstream client and the writer."""

    config: GatewayConfig
    ledger: Ledger
    engine: CostEngine
    client: UpstreamClient
    writer: RecordWriter | None = None


def build_steps(resources: Resources) -> list[Step]:
    """Return the steps the configuration enables, in pipeline order.

    The order is fixed: admission, cache lookup, prompt optimization,
    routing, tier choice, then the observability steps, which only watch.
    A step that is not configured is left out, so an unconfigured gateway
    runs only the metrics step.
    """
    steps: list[Step] = []

    # Admission: virtual keys, cutoffs, rate limits and budget reservations.
    from thrifty.control.setup import admission_step

    admission = admission_step(resources)
    if admission is not None:
        steps.append(admission)
        # The advisor's periodic anomaly and forecast check, alerting through the same sinks.
        from thrifty.advisor.watch import advisor_alert_step

        steps.append(advisor_alert_step(resources.ledger, admission.plane))

    # Cache lookup: the response cache, then provider prompt caching.
    if "cache" in resources.config.sections:
        from thrifty.cache.setup import cache_steps

        steps += cache_steps(resources.config)

    # Prompt optimization.
    prompts = resources.config.sections.get("prompts")
    if prompts is not None and prompts.enabled:
        from thrifty.prompts.step import PromptOptimizationStep

        steps.append(PromptOptimizationStep(prompts, resources.engine))

    # Routing: requests for a `thrifty/<route>` model go to the model the route picks.
    routing = resources.config.sections.get("routing")
    if routing is not None:
        from thrifty.routing.step import RoutingStep

        steps.append(RoutingStep(routing, resources.config, resources.engine))

    # Tier choice: Flex for the requests that set it or that a flex: rule
    # sends there, with retries and a fallback. Without a flex: section the
    # defaults apply, so a request that sets service_tier "flex" still gets them.
    from thrifty.batch.config import FlexConfig
    from thrifty.gateway.flex import FlexStep

    steps.append(FlexStep(resources.config.sections.get("flex") or FlexConfig(), resources.engine))

    # Observability last: metrics (unless disabled) and tracing (when configured) only watch.
    from thrifty.integrations.steps import observability_steps

    steps += observability_steps(resources.config, steps)
    return steps
