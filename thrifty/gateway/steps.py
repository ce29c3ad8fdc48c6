"""Building the gateway's pipeline steps from its configuration."""

from __future__ import annotations

from dataclasses import dataclass

from thrifty.config import GatewayConfig
from thrifty.gateway.pipeline import Step
from thrifty.gateway.upstream import UpstreamClient
from thrifty.ledger import Ledger
from thrifty.pricing.engine import CostEngine


@dataclass(frozen=True, slots=True)
class Resources:
    """What a step may use: the ledger, the cost engine and the upstream client."""

    config: GatewayConfig
    ledger: Ledger
    engine: CostEngine
    client: UpstreamClient


def build_steps(resources: Resources) -> list[Step]:
    """Return the steps the configuration enables, in pipeline order.

    The order is fixed: admission, cache lookup, prompt optimization,
    routing, tier choice. A step that is not configured is left out, so an
    unconfigured gateway runs none.
    """
    steps: list[Step] = []
    return steps
