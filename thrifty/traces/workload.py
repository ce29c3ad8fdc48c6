"""A generated workload for the demo: several features, users and models.

Each feature has its own model and token sizes, and the support bot's
prompts start with the same three 512-token blocks (a shared system prompt),
so a replay shows provider prompt caching at work. The generator is seeded:
the same arguments always give the same rows.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

from thrifty.traces.rows import TraceRow


@dataclass(frozen=True, slots=True)
class FeatureProfile:
    """How one feature's requests look: model, token ranges, share of traffic."""

    name: str
    model: str
    input_tokens: tuple[int, int]
    output_tokens: tuple[int, int]
    weight: int
    shared_prefix_blocks: tuple[int, ...] = ()


DEMO_FEATURES: tuple[FeatureProfile, ...] = (
    FeatureProfile("support-bot", "gpt-4o-mini", (1700, 3200), (60, 300), 5, (101, 102, 103)),
    FeatureProfile("search-summaries", "gpt-4.1-nano", (400, 1500), (80, 200), 4),
    FeatureProfile("code-review", "gpt-4.1", (2000, 6000), (300, 800), 2),
    FeatureProfile("nightly-report", "gpt-4o", (3000, 8000), (500, 1000), 1),
)


@dataclass(frozen=True, slots=True)
class Workload:
    """Generated rows and the attribution headers each row is sent with."""

    rows: tuple[TraceRow, ...]
    headers_by_line: Mapping[int, Mapping[str, str]]

    def headers_for(self, row: TraceRow) -> Mapping[str, str]:
        return self.headers_by_line[row.line]


def demo_workload(requests: int = 300, *, users: int = 12, seed: int = 7) -> Workload:
    """Generate ``requests`` rows spread over the demo features and users."""
    rng = random.Random(seed)
    weights = [feature.weight for feature in DEMO_FEATURES]
    rows: list[TraceRow] = []
    headers: dict[int, dict[str, str]] = {}
    for line in range(1, requests + 1):
        feature = rng.choices(DEMO_FEATURES, weights)[0]
        user = f"user-{rng.randrange(users) + 1:02d}"
        rows.append(
            TraceRow(
                offset_s=line * 0.05,
                input_tokens=rng.randint(*feature.input_tokens),
                output_tokens=rng.randint(*feature.output_tokens),
                model=feature.model,
                prefix_blocks=feature.shared_prefix_blocks,
                line=line,
            )
        )
        headers[line] = {
            "X-Thrifty-Feature": feature.name,
            "X-Thrifty-User": user,
            "X-Thrifty-Session": f"{user}-s{rng.randrange(3) + 1}",
            "X-Thrifty-Team": "platform" if feature.name == "code-review" else "product",
            "X-Thrifty-Tags": "env=demo",
        }
    return Workload(rows=tuple(rows), headers_by_line=headers)
